"""The stand-alone `model.py` of a `state_dict` export: the network's modules in plain PyTorch (it
imports only torch, and repeats autospace's module definitions on purpose), the input it expects
(MEAN, STD, RESOLUTION, CLASS_NAMES) and a `preprocess` function for raw uint8 images."""

from __future__ import annotations

from autospace.arch import CellBlock, InvertedResidual, MultiBranch, Network, canonical
from autospace.arch.ops import EDGES, INNER_NODES
from autospace.nn.blocks import irb_mid_channels
from autospace.nn.cell import cell_mid_channels
from autospace.nn.operators import squeeze_excite_channels


def block_spec(block, slot) -> dict:
    """One block at its slot as plain data: everything `model.py` needs to build its module."""
    shape = {"in_channels": slot.in_channels, "out_channels": slot.out_channels, "stride": slot.stride}
    if block.is_empty():
        return {"kind": "skip", **shape}
    if isinstance(block, InvertedResidual):
        return {"kind": "irb", **shape, "kernel": block.kernel, "expansion": block.expansion,
                "mid_channels": irb_mid_channels(block, slot.in_channels),
                "dilation": block.dilation, "activation": block.activation,
                "se_channels": squeeze_excite_channels(slot.in_channels) if block.squeeze_excite else 0}
    if isinstance(block, CellBlock):
        cell = canonical(block.cell)
        return {"kind": "cell", **shape, "mid_channels": cell_mid_channels(cell, slot.in_channels),
                "edges": [[source, target, op] for (source, target), op in zip(EDGES, cell.ops) if op != "zero"],
                "concat_nodes": [node for node in range(1, INNER_NODES) if cell.uses_concat_projection(node)]}
    if isinstance(block, MultiBranch):
        return {"kind": "multi", **shape, "branches": [block_spec(branch, slot) for branch in block.branches]}
    raise TypeError(f"not a block: {block!r}")


def layer_specs(network: Network) -> list[dict]:
    """Each layer as plain data (`block_spec`)."""
    return [block_spec(layer.block, slot) for layer, slot in zip(network.layers, network.slots())]


def plain_pytorch_source(network: Network, preprocessing: dict | None = None) -> str:
    """The text of a self-contained `model.py` (imports only torch) that builds `network`; with
    `preprocessing` (`autospace.data.preprocessing.preprocessing_record`) it states the input too."""
    preprocessing = preprocessing or {}
    settings = {key: getattr(network, key) for key in (
        "in_channels", "resolution", "stem_channels", "stem_stride", "head_channels", "num_classes",
        "activation", "dropout")}
    layers = "".join(f"    {spec!r},\n" for spec in layer_specs(network))
    summary = "".join(f"    {line}\n" for line in network.describe())
    constants = {"MEAN": _tuple(preprocessing.get("mean")), "STD": _tuple(preprocessing.get("std")),
                 "RESOLUTION": network.resolution, "CLASS_NAMES": _tuple(preprocessing.get("class_names")),
                 "CHANNEL_ORDER": preprocessing.get("channel_order"), "TRAINED_ON": preprocessing.get("data")}
    return (_TEMPLATE.replace("@SUMMARY@", summary.rstrip("\n"))
            .replace("@NETWORK@", repr(settings)).replace("@LAYERS@", layers)
            .replace("@CONSTANTS@", "".join(f"{name} = {value!r}\n" for name, value in constants.items())))


def _tuple(values):
    return None if values is None else tuple(values)


_TEMPLATE = '''"""A network exported by autospace, in plain PyTorch (this file imports only torch).

    from model import CLASS_NAMES, load_model, preprocess
    model = load_model()                      # builds the network, loads model_state.pt beside this file, eval mode
    logits = model(preprocess(images))        # images: uint8 (N, C, H, W) or (C, H, W), channels as trained
    names = [CLASS_NAMES[i] for i in logits.argmax(1)]

The input: uint8 images, channels first (NCHW), in CHANNEL_ORDER, like those of TRAINED_ON;
`preprocess` area-resizes them to RESOLUTION x RESOLUTION when they differ, then normalises
x = (image / 255 - MEAN) / STD per channel, in float32 (MEAN, STD in [0, 1] units). None means the
run folder did not record it (trained before autospace recorded preprocessing).

Layers (index, channels, stride, input size, block):
@SUMMARY@
"""

import os

import torch
from torch import nn

NETWORK = @NETWORK@

@CONSTANTS@
LAYERS = [
@LAYERS@]


def activation(name):
    if name is None:
        return nn.Identity()
    if name == "relu6":
        return nn.ReLU6(inplace=True)
    if name == "swish":
        return nn.SiLU(inplace=True)
    raise ValueError(f"unknown activation {name!r}")


class ConvBNAct(nn.Sequential):
    """Conv (no bias, same padding) -> BatchNorm -> activation."""

    def __init__(self, in_channels, out_channels, kernel=1, stride=1, groups=1, act="relu6", dilation=1):
        super().__init__(
            nn.Conv2d(in_channels, out_channels, kernel, stride, dilation * (kernel - 1) // 2,
                      dilation=dilation, groups=groups, bias=False),
            nn.BatchNorm2d(out_channels),
            activation(act),
        )


class SqueezeExcite(nn.Module):
    def __init__(self, channels, reduced_channels, act):
        super().__init__()
        self.reduce = nn.Conv2d(channels, reduced_channels, 1)
        self.activation = activation(act)
        self.expand = nn.Conv2d(reduced_channels, channels, 1)

    def forward(self, x):
        scale = x.mean((2, 3), keepdim=True)
        return x * self.expand(self.activation(self.reduce(scale))).sigmoid()


class InvertedResidual(nn.Module):
    """[1x1 expand] -> kxk depthwise -> [squeeze-excite] -> 1x1 project (+ residual)."""

    def __init__(self, spec):
        super().__init__()
        mid, act = spec["mid_channels"], spec["activation"]
        self.has_residual = spec["stride"] == 1 and spec["in_channels"] == spec["out_channels"]
        self.expand = ConvBNAct(spec["in_channels"], mid, 1, act=act) if spec["expansion"] != 1 else None
        self.depthwise = ConvBNAct(mid, mid, spec["kernel"], spec["stride"], groups=mid, act=act,
                                   dilation=spec["dilation"])
        self.squeeze_excite = SqueezeExcite(mid, spec["se_channels"], act) if spec["se_channels"] else None
        self.project = ConvBNAct(mid, spec["out_channels"], 1, act=None)

    def forward(self, x):
        out = x if self.expand is None else self.expand(x)
        out = self.depthwise(out)
        if self.squeeze_excite is not None:
            out = self.squeeze_excite(out)
        out = self.project(out)
        return out + x if self.has_residual else out


class StridedIdentity(nn.Module):
    def forward(self, x):
        return nn.functional.avg_pool2d(x, 2, 2, ceil_mode=True)


def edge_operator(op, channels, stride):
    if op == "conv1x1":
        return ConvBNAct(channels, channels, 1, stride)
    if op == "conv3x3":
        return ConvBNAct(channels, channels, 3, stride)
    if op == "dwconv3x3":
        return ConvBNAct(channels, channels, 3, stride, groups=channels)
    if op == "identity":
        return nn.Identity() if stride == 1 else StridedIdentity()
    raise ValueError(f"unknown edge operator {op!r}")


class Cell(nn.Module):
    """1x1 input conv (node 0) -> DAG of edges over nodes 0..3 -> 1x1 output conv (+ residual).

    A node sums its incoming edges, or concatenates them and projects back with a 1x1 conv;
    edges leaving node 0 carry the layer's stride.
    """

    def __init__(self, spec):
        super().__init__()
        mid, stride = spec["mid_channels"], spec["stride"]
        self.has_residual = stride == 1 and spec["in_channels"] == spec["out_channels"]
        self.input_conv = ConvBNAct(spec["in_channels"], mid, 1)
        self.edges = nn.ModuleDict()
        for source, target, op in spec["edges"]:
            self.edges[f"{source}->{target}"] = edge_operator(op, mid, stride if source == 0 else 1)
        self.projections = nn.ModuleDict()
        for node in spec["concat_nodes"]:
            fan_in = sum(1 for _, target, _ in spec["edges"] if target == node)
            self.projections[str(node)] = ConvBNAct(fan_in * mid, mid, 1, act=None)
        self.output_conv = ConvBNAct(mid, spec["out_channels"], 1, act=None)
        self.plan = [(node, [(f"{s}->{t}", s) for s, t, _ in spec["edges"] if t == node]) for node in (1, 2, 3)]

    def forward(self, x):
        nodes = {0: self.input_conv(x)}
        for node, incoming in self.plan:
            inputs = [self.edges[key](nodes[source]) for key, source in incoming]
            if not inputs:
                continue
            if str(node) in self.projections:
                nodes[node] = self.projections[str(node)](torch.cat(inputs, dim=1))
            else:
                total = inputs[0]
                for extra in inputs[1:]:
                    total = total + extra
                nodes[node] = total
        out = self.output_conv(nodes[3])
        return out + x if self.has_residual else out


class Skip(nn.Module):
    """A layer that computes nothing: only its residual (the input) remains."""

    def forward(self, x):
        return x


class MultiBranch(nn.Module):
    """Several blocks on the same input; the output is the mean of theirs (each adds its own
    residual where shapes allow, so the mean carries the identity once)."""

    def __init__(self, spec):
        super().__init__()
        self.branches = nn.ModuleList(build_layer(branch) for branch in spec["branches"])

    def forward(self, x):
        total = self.branches[0](x)
        for branch in self.branches[1:]:
            total = total + branch(x)
        return total / len(self.branches) if len(self.branches) > 1 else total


def build_layer(spec):
    if spec["kind"] == "multi":
        return MultiBranch(spec)
    if spec["kind"] == "irb":
        return InvertedResidual(spec)
    if spec["kind"] == "cell":
        return Cell(spec)
    if spec["kind"] == "skip":
        return Skip()
    raise ValueError(f"unknown layer kind {spec['kind']!r}")


class ExportedNetwork(nn.Module):
    """Stem -> layers -> head (1x1 conv) -> global average pool -> dropout -> linear classifier."""

    def __init__(self, network=NETWORK, layers=LAYERS):
        super().__init__()
        act = network["activation"]
        self.stem = ConvBNAct(network["in_channels"], network["stem_channels"], 3, network["stem_stride"], act=act)
        self.layers = nn.ModuleList(build_layer(spec) for spec in layers)
        last = layers[-1]["out_channels"]
        head = network["head_channels"]
        self.head = ConvBNAct(last, head, 1, act=act) if head else nn.Identity()
        self.dropout = nn.Dropout(network["dropout"]) if network["dropout"] > 0 else nn.Identity()
        self.classifier = nn.Linear(head if head else last, network["num_classes"])

    def forward(self, x):
        x = self.stem(x)
        for layer in self.layers:
            x = layer(x)
        x = self.head(x).mean((2, 3))
        return self.classifier(self.dropout(x))


def build_model():
    return ExportedNetwork(NETWORK, LAYERS)


def preprocess(images):
    """Raw uint8 images, (N, C, H, W) or one (C, H, W), to the float32 input the network was trained on."""
    if MEAN is None or STD is None:
        raise ValueError("this export does not record its input mean and std; normalise as in training")
    images = torch.as_tensor(images)
    if images.dim() == 3:
        images = images.unsqueeze(0)
    if images.dtype != torch.uint8 or images.dim() != 4 or images.shape[1] != NETWORK["in_channels"]:
        raise ValueError(f"preprocess takes uint8 images (N, {NETWORK['in_channels']}, H, W); "
                         f"got {images.dtype} {tuple(images.shape)}")
    if tuple(images.shape[2:]) != (RESOLUTION, RESOLUTION):
        images = nn.functional.interpolate(images.float(), size=(RESOLUTION, RESOLUTION), mode="area")
        images = images.round().clamp(0, 255)
    mean = torch.tensor(MEAN, dtype=torch.float32).view(1, -1, 1, 1)
    std = torch.tensor(STD, dtype=torch.float32).view(1, -1, 1, 1)
    # the training pipeline's arithmetic: x * (1 / (255 std)) + (-mean / std)
    return images.float() * (1.0 / (255.0 * std)) + (-mean / std)


def load_model(path=None, map_location="cpu"):
    """The network with the weights of `path` (default: model_state.pt beside this file), in eval mode."""
    if path is None:
        path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "model_state.pt")
    model = build_model()
    model.load_state_dict(torch.load(path, map_location=map_location, weights_only=True), strict=True)
    return model.eval()


if __name__ == "__main__":
    model = load_model()
    size = NETWORK["resolution"]
    print(model(torch.randn(1, NETWORK["in_channels"], size, size)).shape)
'''
