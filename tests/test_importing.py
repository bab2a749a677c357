"""Importing ProxylessNAS / Once-for-All net.config files (`autospace.arch.netconfig`)."""

from __future__ import annotations

import copy
import json
from dataclasses import replace

import pytest
import torch

from autospace.arch import InvertedResidual, Layer, Network, ZeroBlock, load_arch, mobilenetv2
from autospace.cost import network_cost
from autospace.errors import AutospaceError
from autospace.arch.netconfig import import_config_to_file, import_network_config, network_from_config
from autospace.nn import build_network


def conv_layer(in_channels, out_channels, kernel, stride, act="relu6"):
    return {"name": "ConvLayer", "kernel_size": kernel, "stride": stride, "dilation": 1, "groups": 1,
            "bias": False, "has_shuffle": False, "in_channels": in_channels, "out_channels": out_channels,
            "use_bn": True, "act_func": act, "dropout_rate": 0, "ops_order": "weight_bn_act"}


def identity_layer(channels):
    return {"name": "IdentityLayer", "in_channels": [channels], "out_channels": [channels], "use_bn": False,
            "act_func": None, "dropout_rate": 0, "ops_order": "weight_bn_act"}


def mobilenetv2_config():
    """MobileNetV2 1.0 as ProxylessNAS writes it (`ProxylessNASNets.config`)."""
    blocks, channels = [], 32
    for expand, width, repeats, first_stride in ((1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2),
                                                 (6, 96, 3, 1), (6, 160, 3, 2), (6, 320, 1, 1)):
        for position in range(repeats):
            stride = first_stride if position == 0 else 1
            blocks.append({
                "name": "MobileInvertedResidualBlock",
                "mobile_inverted_conv": {"name": "MBInvertedConvLayer", "in_channels": channels,
                                         "out_channels": width, "kernel_size": 3, "stride": stride,
                                         "expand_ratio": expand, "mid_channels": None, "act_func": "relu6",
                                         "use_se": False},
                "shortcut": identity_layer(channels) if stride == 1 and channels == width else None,
            })
            channels = width
    return {"name": "ProxylessNASNets", "bn": {"momentum": 0.1, "eps": 0.001},
            "first_conv": conv_layer(3, 32, 3, 2), "blocks": blocks,
            "feature_mix_layer": conv_layer(320, 1280, 1, 1),
            "classifier": {"name": "LinearLayer", "in_features": 1280, "out_features": 1000, "bias": True,
                           "use_bn": False, "act_func": None, "dropout_rate": 0.1, "ops_order": "weight_bn_act"}}


# Hand-written: ProxylessNAS-style blocks (block 1 as the original ProxylessNAS code writes them: no act_func,
# use_se or mid_channels), one Once-for-All-style block (ResidualBlock / conv / MBConvLayer), zero layers,
# kernels 3/5/7, expand_ratio or mid_channels, squeeze-excite and h_swish.
MIXED_CONFIG = """
{
  "name": "ProxylessNASNets",
  "bn": {"momentum": 0.1, "eps": 0.001},
  "first_conv": {"name": "ConvLayer", "kernel_size": 3, "stride": 2, "in_channels": 3, "out_channels": 16,
                 "use_bn": true, "act_func": "relu6", "ops_order": "weight_bn_act"},
  "blocks": [
    {"name": "MobileInvertedResidualBlock",
     "mobile_inverted_conv": {"name": "MBInvertedConvLayer", "in_channels": 16, "out_channels": 8, "kernel_size": 3,
                              "stride": 1, "expand_ratio": 1, "mid_channels": null, "act_func": "relu6",
                              "use_se": false},
     "shortcut": null},
    {"name": "MobileInvertedResidualBlock",
     "mobile_inverted_conv": {"name": "MBInvertedConvLayer", "in_channels": 8, "out_channels": 16, "kernel_size": 5,
                              "stride": 2, "expand_ratio": 3},
     "shortcut": null},
    {"name": "MobileInvertedResidualBlock",
     "mobile_inverted_conv": {"name": "ZeroLayer", "stride": 1},
     "shortcut": {"name": "IdentityLayer", "in_channels": [16], "out_channels": [16], "use_bn": false,
                  "act_func": null, "dropout_rate": 0, "ops_order": "weight_bn_act"}},
    {"name": "MobileInvertedResidualBlock",
     "mobile_inverted_conv": {"name": "MBInvertedConvLayer", "in_channels": 16, "out_channels": 16, "kernel_size": 7,
                              "stride": 1, "expand_ratio": 6, "mid_channels": null, "act_func": "h_swish",
                              "use_se": true},
     "shortcut": {"name": "IdentityLayer", "in_channels": [16], "out_channels": [16]}},
    {"name": "MobileInvertedResidualBlock",
     "mobile_inverted_conv": {"name": "MBInvertedConvLayer", "in_channels": 16, "out_channels": 24, "kernel_size": 3,
                              "stride": 2, "expand_ratio": 6, "mid_channels": 96, "act_func": "relu6",
                              "use_se": false},
     "shortcut": null},
    {"name": "MobileInvertedResidualBlock",
     "mobile_inverted_conv": {"name": "ZeroLayer", "stride": 1},
     "shortcut": {"name": "IdentityLayer", "in_channels": [24], "out_channels": [24]}},
    {"name": "ResidualBlock",
     "conv": {"name": "MBConvLayer", "in_channels": 24, "out_channels": 24, "kernel_size": 5, "stride": 1,
              "expand_ratio": null, "mid_channels": 72, "act_func": "relu6", "use_se": false, "groups": null},
     "shortcut": {"name": "IdentityLayer", "in_channels": 24, "out_channels": 24}}
  ],
  "feature_mix_layer": {"name": "ConvLayer", "kernel_size": 1, "stride": 1, "in_channels": 24, "out_channels": 64,
                        "use_bn": true, "act_func": "relu6", "ops_order": "weight_bn_act"},
  "classifier": {"name": "LinearLayer", "in_features": 64, "out_features": 10, "dropout_rate": 0.1}
}
"""

MIXED_NETWORK = Network(
    layers=(
        Layer(InvertedResidual(kernel=3, expansion=1), 8, 1, searchable=False),
        Layer(InvertedResidual(kernel=5, expansion=3), 16, 2),
        Layer(ZeroBlock(), 16, 1),
        Layer(InvertedResidual(kernel=7, expansion=6, squeeze_excite=True, activation="swish"), 16, 1),
        Layer(InvertedResidual(kernel=3, expansion=6), 24, 2),
        Layer(ZeroBlock(), 24, 1),
        Layer(InvertedResidual(kernel=5, expansion=3), 24, 1),
    ),
    stem_channels=16, stem_stride=2, head_channels=64, num_classes=10, resolution=64, dropout=0.1,
)


def write(tmp_path, config, name="net.config"):
    path = tmp_path / name
    path.write_text(config if isinstance(config, str) else json.dumps(config, indent=2))
    return path


def test_mobilenetv2_config_imports_as_our_mobilenetv2(tmp_path):
    network = import_network_config(write(tmp_path, mobilenetv2_config()))
    cost = network_cost(network)
    assert (cost.params, cost.madds) == (3_504_872, 300_774_272)
    assert network == replace(mobilenetv2(), dropout=0.1)
    assert [layer.searchable for layer in network.layers] == [False] + [True] * 16


def test_mixed_config_with_zero_layers_and_kernels_3_5_7(tmp_path):
    path = write(tmp_path, MIXED_CONFIG)
    network = import_network_config(path, resolution=64)
    assert network == MIXED_NETWORK
    out = tmp_path / "arch.json"
    imported, notes = import_config_to_file(path, out, resolution=64)
    assert imported == MIXED_NETWORK and load_arch(out) == MIXED_NETWORK
    assert any("h_swish" in note for note in notes) and any("use_se" in note for note in notes)
    assert json.loads(out.read_text())["info"]["import_notes"] == notes
    with torch.no_grad():
        assert build_network(network).eval()(torch.randn(2, 3, 64, 64)).shape == (2, 10)


def test_resolution_is_a_parameter(tmp_path):
    network = import_network_config(write(tmp_path, mobilenetv2_config()), resolution=160)
    assert network.resolution == 160 and network == replace(mobilenetv2(resolution=160), dropout=0.1)
    with pytest.raises(AutospaceError, match="resolution 16 is too small"):
        import_network_config(write(tmp_path, mobilenetv2_config()), resolution=16)


def mixed() -> dict:
    return json.loads(MIXED_CONFIG)


def test_unknown_types_name_the_type_the_block_and_the_supported_types(tmp_path):
    config = mixed()
    config["blocks"][3]["mobile_inverted_conv"]["name"] = "DartsCell"
    with pytest.raises(AutospaceError, match=r"block 3: unknown layer type 'DartsCell'.*MBInvertedConvLayer, "
                                             r"MBConvLayer, ZeroLayer"):
        import_network_config(write(tmp_path, config))
    config = mixed()
    config["blocks"][1]["name"] = "ShuffleBlock"
    with pytest.raises(AutospaceError, match=r"block 1: unknown block type 'ShuffleBlock'.*"
                                             r"MobileInvertedResidualBlock, ResidualBlock"):
        import_network_config(write(tmp_path, config))
    config = mixed()
    config["blocks"][2]["shortcut"]["name"] = "ConvLayer"
    with pytest.raises(AutospaceError, match=r"blocks\[2\]\.shortcut: unsupported layer type 'ConvLayer'"):
        network_from_config(config)


def test_zero_layer_needs_an_identity_shortcut():
    config = mixed()
    config["blocks"][5]["shortcut"] = None
    with pytest.raises(AutospaceError, match=r"block 5: a ZeroLayer .* needs an IdentityLayer shortcut"):
        network_from_config(config)


def test_missing_and_wrong_fields_are_named():
    config = mixed()
    del config["blocks"][1]["mobile_inverted_conv"]["kernel_size"]
    with pytest.raises(AutospaceError, match=r"blocks\[1\]\.mobile_inverted_conv is missing field 'kernel_size'"):
        network_from_config(config)
    config = mixed()
    del config["classifier"]
    with pytest.raises(AutospaceError, match="missing field 'classifier'"):
        network_from_config(config)
    config = mixed()
    config["blocks"][1]["mobile_inverted_conv"]["kernel_size"] = [5, 5]
    with pytest.raises(AutospaceError, match=r"kernel_size is \[5, 5\]; expected an integer"):
        network_from_config(config)


@pytest.mark.parametrize("change, message", [
    (lambda c: c["first_conv"].update(kernel_size=5), "first_conv.kernel_size is 5; autospace's stem is a 3x3"),
    (lambda c: c.update(name="MobileNetV3"), "MobileNetV3.*final_expand_layer"),
    (lambda c: c["blocks"][1]["mobile_inverted_conv"].update(act_func="relu"), "act_func is 'relu'; supported"),
    (lambda c: c["blocks"][1]["mobile_inverted_conv"].update(expand_ratio=4), r"irb.expansion is 4; allowed"),
    (lambda c: c["blocks"][4]["mobile_inverted_conv"].update(mid_channels=88), "mid_channels is 88"),
    (lambda c: c["blocks"][3].update(shortcut=None), "block 3: .* no IdentityLayer shortcut"),
    (lambda c: c["blocks"][4].update(shortcut={"name": "IdentityLayer"}), "block 4: .* shortcut needs stride 1"),
    (lambda c: c["blocks"][1]["mobile_inverted_conv"].update(in_channels=9), "previous layer gives 8"),
    (lambda c: c["blocks"][2]["mobile_inverted_conv"].update(stride=2), "ZeroLayer must have stride 1"),
    (lambda c: c["classifier"].update(in_features=32), "classifier.in_features is 32"),
    (lambda c: c["feature_mix_layer"].update(act_func="swish"), "share one activation"),
    (lambda c: c["first_conv"].update(groups=2), "first_conv.groups is 2"),
])
def test_configs_autospace_cannot_express_exactly_are_errors(change, message):
    config = copy.deepcopy(mixed())
    change(config)
    with pytest.raises(AutospaceError, match=message):
        network_from_config(config, resolution=64)


def test_no_feature_mix_layer_means_no_head_conv():
    config = mixed()
    config["feature_mix_layer"] = None
    config["classifier"]["in_features"] = 24
    network = network_from_config(config, resolution=64)
    assert network.head_channels == 0 and network.final_channels == 24


def test_unreadable_files_are_errors(tmp_path):
    with pytest.raises(AutospaceError, match="does not exist"):
        import_network_config(tmp_path / "missing.config")
    with pytest.raises(AutospaceError, match="not valid JSON"):
        import_network_config(write(tmp_path, "{not json"))
    with pytest.raises(AutospaceError, match="expected a JSON object"):
        import_network_config(write(tmp_path, "[1, 2]"))
