"""Import a network from a ProxylessNAS / Once-for-All `net.config` file.

These JSON files (`ProxylessNASNets.config` in both code bases) describe a
network as `first_conv`, a list of `blocks`, `feature_mix_layer` and
`classifier`. The mapping onto our `Network`:

- `first_conv` (a 3x3 `ConvLayer`)          -> stem channels and stride; its activation is the network's
- block 0                                    -> a fixed (non-searchable) layer, as ProxylessNAS's MBConv1
- other blocks, `MBInvertedConvLayer` / `MBConvLayer`
                                             -> searchable `InvertedResidual(kernel, expansion, use_se)`
- `ZeroLayer` with an `IdentityLayer` shortcut -> `ZeroBlock` (the layer is skipped)
- `feature_mix_layer` (1x1 `ConvLayer`, or null) -> head channels (0: no head conv)
- `classifier` (`LinearLayer`)               -> number of classes and dropout

Activations: `relu6` stays relu6; `swish` and `h_swish` become our `swish`
(h_swish is MobileNetV3's piecewise-linear approximation of it). Only the
architecture is imported, not weights, so that approximation changes no
params or MAdds. Squeeze-excite follows our MnasNet convention (reduction to
C_in / 4), not OFA's make_divisible(C_mid / 4, 8). The `bn` settings
(momentum, eps) are training choices and are not part of an arch.json. Both
points are recorded as notes. Anything our networks cannot express exactly
(another kernel for the stem, a missing residual where one is possible, other
block types, MobileNetV3's final expand layer) is an error, never a silent change.
"""

from __future__ import annotations

import json
import os
from typing import Any

from autospace.arch import InvertedResidual, Layer, Network, ZeroBlock, save_arch
from autospace.arch.codec import read_json_file
from autospace.runtime.atomic import require_file_path
from autospace.errors import AutospaceError

NETWORK_TYPES = ("ProxylessNASNets", "MobileNetV2")
BLOCK_TYPES = ("MobileInvertedResidualBlock", "ResidualBlock")
CONV_TYPES = ("MBInvertedConvLayer", "MBConvLayer", "ZeroLayer")
SHORTCUT_TYPES = ("IdentityLayer", "ZeroLayer")
ACTIVATIONS = {"relu6": "relu6", "swish": "swish", "h_swish": "swish"}

_MISSING = object()
# Optional ConvLayer / LinearLayer fields and the only values our stem, head and classifier have.
_CONV_FIXED = {"dilation": 1, "groups": 1, "bias": False, "has_shuffle": False, "use_se": False,
               "use_bn": True, "dropout_rate": 0, "ops_order": "weight_bn_act"}
_LINEAR_FIXED = {"bias": True, "use_bn": False, "act_func": None, "ops_order": "weight_bn_act"}


def _field(data: dict, key: str, where: str, kind: str, default: Any = _MISSING) -> Any:
    """`data[key]`, checked: kind is 'int', 'number', 'bool', 'str', 'dict', 'list'; a trailing '?' allows null."""
    if key not in data:
        if default is _MISSING:
            raise AutospaceError(f"{where} is missing field {key!r}")
        return default
    value = data[key]
    nullable = kind.endswith("?")
    kind = kind.rstrip("?")
    if value is None and nullable:
        return None
    valid = {
        "int": type(value) is int,
        "number": type(value) in (int, float),
        "bool": type(value) is bool,
        "str": type(value) is str,
        "dict": type(value) is dict,
        "list": type(value) is list,
    }[kind]
    if not valid:
        expected = {"int": "an integer", "number": "a number", "bool": "true or false", "str": "a string",
                    "dict": "a JSON object", "list": "a list"}[kind] + (" or null" if nullable else "")
        raise AutospaceError(f"{where}.{key} is {value!r}; expected {expected}")
    return value


def _layer(data: dict, key: str, where: str, allowed: tuple[str, ...], nullable: bool = False) -> dict | None:
    """A nested layer config `data[key]` whose `name` is one of `allowed`."""
    layer = _field(data, key, where, "dict?" if nullable else "dict")
    if layer is None:
        return None
    name = _field(layer, "name", f"{where}.{key}", "str")
    if name not in allowed:
        raise AutospaceError(f"{where}.{key}: unsupported layer type {name!r}; supported: {', '.join(allowed)}"
                             + (", null" if nullable else ""))
    return layer


def _check_fixed(data: dict, where: str, fixed: dict) -> None:
    for key, expected in fixed.items():
        if key in data and data[key] != expected and not (expected == 0 and data[key] in (0, 0.0, None)):
            raise AutospaceError(f"{where}.{key} is {data[key]!r}; autospace networks support only "
                                 f"{json.dumps(expected)} here")


def _activation(data: dict, where: str, notes: list[str], default: Any = _MISSING) -> str:
    name = _field(data, "act_func", where, "str", default)
    if name not in ACTIVATIONS:
        raise AutospaceError(f"{where}.act_func is {name!r}; supported: {', '.join(ACTIVATIONS)} "
                             f"(h_swish is imported as swish)")
    if name == "h_swish":
        note = "h_swish is imported as swish (same params and MAdds; swish is what it approximates)"
        if note not in notes:
            notes.append(note)
    return ACTIVATIONS[name]


def _expansion(conv: dict, where: str, in_channels: int) -> int:
    ratio = _field(conv, "expand_ratio", where, "number?", None)
    mid = _field(conv, "mid_channels", where, "int?", None)
    if ratio is not None and float(ratio).is_integer():
        ratio = int(ratio)
    if mid is not None and in_channels < 1:  # would divide by zero below
        raise AutospaceError(f"{where} follows a layer with {in_channels} output channels; every layer needs "
                             f"at least 1 channel")
    if mid is None:
        if ratio is None:
            raise AutospaceError(f"{where} has neither expand_ratio nor mid_channels; give one of them")
        return ratio
    if mid % in_channels or (ratio is not None and mid != round(in_channels * ratio)):
        raise AutospaceError(
            f"{where}.mid_channels is {mid} with in_channels {in_channels} and expand_ratio {ratio}; "
            f"autospace's inverted residual has mid_channels = in_channels * expansion exactly")
    return mid // in_channels


def _block(block: Any, index: int, in_channels: int, notes: list[str]) -> Layer:
    where = f"blocks[{index}]"
    if type(block) is not dict:
        raise AutospaceError(f"{where} is {block!r}; expected a JSON object")
    name = _field(block, "name", where, "str")
    if name not in BLOCK_TYPES:
        raise AutospaceError(f"block {index}: unknown block type {name!r} in {where}.name; "
                             f"supported: {', '.join(BLOCK_TYPES)}")
    key = "conv" if "conv" in block else "mobile_inverted_conv"
    if key not in block:
        raise AutospaceError(f"{where} is missing field 'mobile_inverted_conv' (or 'conv')")
    conv = _field(block, key, where, "dict?")
    if conv is not None:
        conv_name = _field(conv, "name", f"{where}.{key}", "str")
        if conv_name not in CONV_TYPES:
            raise AutospaceError(f"block {index}: unknown layer type {conv_name!r} in {where}.{key}.name; "
                                 f"supported: {', '.join(CONV_TYPES)}")
    shortcut = _layer(block, "shortcut", where, SHORTCUT_TYPES, nullable=True)
    identity = shortcut is not None and shortcut["name"] == "IdentityLayer"
    where = f"{where}.{key}"

    if conv is None or conv["name"] == "ZeroLayer":  # both mean "output = input" in ProxylessNAS / OFA
        if not identity:
            raise AutospaceError(
                f"block {index}: a ZeroLayer (or null conv) needs an IdentityLayer shortcut, since the zero "
                f"block only skips a layer through its residual; blocks[{index}].shortcut is "
                f"{'null' if shortcut is None else repr(shortcut['name'])}")
        stride = 1 if conv is None else _field(conv, "stride", where, "int", 1)
        if stride != 1:
            raise AutospaceError(f"block {index}: {where}.stride is {stride!r}; a ZeroLayer must have stride 1")
        return Layer(ZeroBlock(), in_channels, 1, searchable=index > 0)

    block_in = _field(conv, "in_channels", where, "int")
    if block_in != in_channels:
        raise AutospaceError(f"block {index}: {where}.in_channels is {block_in} but the previous layer "
                             f"gives {in_channels} channels")
    out_channels = _field(conv, "out_channels", where, "int")
    kernel = _field(conv, "kernel_size", where, "int")
    stride = _field(conv, "stride", where, "int")
    if _field(conv, "groups", where, "int?", None) is not None:
        raise AutospaceError(f"block {index}: {where}.groups is {conv['groups']!r}; autospace supports "
                             f"only a depthwise middle conv (groups null)")
    use_se = _field(conv, "use_se", where, "bool", False)
    # ProxylessNAS's own MBInvertedConvLayer writes no act_func: it is always ReLU6
    activation = _activation(conv, where, notes, default="relu6")
    expansion = _expansion(conv, where, in_channels)
    try:
        irb = InvertedResidual(kernel=kernel, expansion=expansion, squeeze_excite=use_se, activation=activation)
    except AutospaceError as error:
        raise AutospaceError(f"block {index}: {where}: {error}") from None
    if use_se:
        note = ("use_se is imported as autospace's squeeze-excite (reduction to C_in / 4, MnasNet style), "
                "not OFA's make_divisible(C_mid / 4, 8)")
        if note not in notes:
            notes.append(note)
    residual_possible = stride == 1 and in_channels == out_channels
    if identity and not residual_possible:
        raise AutospaceError(f"block {index}: {where} has an IdentityLayer shortcut but stride {stride} and "
                             f"{in_channels} -> {out_channels} channels; a shortcut needs stride 1 and equal widths")
    if residual_possible and not identity:
        raise AutospaceError(
            f"block {index}: {where} has stride 1 and {in_channels} -> {out_channels} channels but no "
            f"IdentityLayer shortcut; autospace adds a residual to every such layer, so this network "
            f"cannot be imported exactly")
    if stride not in (1, 2):
        raise AutospaceError(f"block {index}: {where}.stride is {stride!r}; allowed: 1, 2")
    return Layer(irb, out_channels, stride, searchable=index > 0)


def network_from_config(config: Any, resolution: int = 224, notes: list[str] | None = None) -> Network:
    """The `Network` described by a parsed net.config; conversion notes are appended to `notes`."""
    notes = [] if notes is None else notes
    if type(config) is not dict:
        raise AutospaceError(f"net.config is {type(config).__name__}; expected a JSON object")
    name = _field(config, "name", "net.config", "str", NETWORK_TYPES[0])
    if name == "MobileNetV3":
        raise AutospaceError("net.config.name is 'MobileNetV3': its head (final_expand_layer, then a "
                             "feature_mix_layer with bias and no BN after pooling) has no autospace "
                             f"equivalent; supported network types: {', '.join(NETWORK_TYPES)}")
    if name not in NETWORK_TYPES:
        raise AutospaceError(f"net.config.name is {name!r}; supported network types: {', '.join(NETWORK_TYPES)}")

    first = _layer(config, "first_conv", "net.config", ("ConvLayer",))
    where = "first_conv"
    kernel = _field(first, "kernel_size", where, "int")
    if kernel != 3:
        raise AutospaceError(f"first_conv.kernel_size is {kernel}; autospace's stem is a 3x3 conv")
    _check_fixed(first, where, _CONV_FIXED)
    stem_stride = _field(first, "stride", where, "int")
    in_channels = _field(first, "in_channels", where, "int")
    stem_channels = _field(first, "out_channels", where, "int")
    activation = _activation(first, where, notes)

    blocks = _field(config, "blocks", "net.config", "list")
    if not blocks:
        raise AutospaceError("net.config.blocks is empty; a network needs at least one block")
    layers, channels = [], stem_channels
    for index, block in enumerate(blocks):
        layer = _block(block, index, channels, notes)
        layers.append(layer)
        channels = layer.out_channels

    mix = _layer(config, "feature_mix_layer", "net.config", ("ConvLayer",), nullable=True)
    head_channels = 0
    if mix is not None:
        where = "feature_mix_layer"
        _check_fixed(mix, where, _CONV_FIXED)
        for key in ("kernel_size", "stride"):
            if _field(mix, key, where, "int", 1) != 1:
                raise AutospaceError(f"{where}.{key} is {mix[key]!r}; autospace's head is a 1x1 conv of stride 1")
        if _field(mix, "in_channels", where, "int") != channels:
            raise AutospaceError(f"{where}.in_channels is {mix['in_channels']} but the last block gives {channels}")
        if _activation(mix, where, notes) != activation:
            raise AutospaceError(f"{where}.act_func is {mix['act_func']!r} but first_conv's is "
                                 f"{first['act_func']!r}; autospace's stem and head share one activation")
        head_channels = _field(mix, "out_channels", where, "int")
        channels = head_channels

    classifier = _layer(config, "classifier", "net.config", ("LinearLayer",))
    where = "classifier"
    _check_fixed(classifier, where, _LINEAR_FIXED)
    if _field(classifier, "in_features", where, "int") != channels:
        raise AutospaceError(f"{where}.in_features is {classifier['in_features']} but the layer before it "
                             f"gives {channels} features")
    num_classes = _field(classifier, "out_features", where, "int")
    dropout = _field(classifier, "dropout_rate", where, "number?", 0) or 0
    if "bn" in config:
        notes.append("the bn settings (momentum, eps) are training settings and are not imported")
    try:
        return Network(layers=tuple(layers), stem_channels=stem_channels, stem_stride=stem_stride,
                       head_channels=head_channels, num_classes=num_classes, in_channels=in_channels,
                       resolution=resolution, activation=activation, dropout=float(dropout))
    except AutospaceError as error:
        raise AutospaceError(f"the imported network is not valid: {error}") from None


def _read_config(path: str | os.PathLike) -> Any:
    return read_json_file(path, "net.config")


def _import(path, resolution: int) -> tuple[Network, list[str]]:
    notes: list[str] = []
    config = _read_config(path)
    try:
        return network_from_config(config, resolution, notes), notes
    except AutospaceError as error:
        raise AutospaceError(f"{path}: {error}") from None


def import_network_config(path: str | os.PathLike, resolution: int = 224) -> Network:
    """The network of a ProxylessNAS / Once-for-All net.config file, at input `resolution`."""
    return _import(path, resolution)[0]


def import_config_to_file(path: str | os.PathLike, out_json: str | os.PathLike,
                          resolution: int = 224) -> tuple[Network, list[str]]:
    """Import `path` and write it as an arch.json; returns the network and the conversion notes."""
    require_file_path(out_json, "arch file")
    network, notes = _import(path, resolution)
    save_arch(out_json, network, {"imported_from": str(path), "import_notes": notes})
    return network, notes
