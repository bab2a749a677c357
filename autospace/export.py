"""Export a trained network: ONNX, TorchScript, or a state dict plus a plain-PyTorch `model.py`.

Every format is read back after writing and its outputs compared with the
autospace module on one random batch, so a file this module returns computes
the trained network. None of the exported files needs autospace to run:

- `onnx`        one `.onnx` file (opset 17, dynamic batch axis; needs `onnx` + `onnxruntime`)
- `torchscript` one `.pt` file for `torch.jit.load` (traced in eval mode)
- `state_dict`  a folder with `model_state.pt` and a generated `model.py` that only
                imports torch; its parameter names equal `NetworkModule`'s, so
                `load_state_dict(strict=True)` takes the trained weights as they are.
"""

from __future__ import annotations

import importlib
import importlib.util
import io
import uuid
import warnings
from pathlib import Path

import torch
from torch import nn

from autospace.arch import CellBlock, InvertedResidual, MultiBranch, Network, canonical, load_arch
from autospace.arch.ops import EDGES, INNER_NODES
from autospace.runtime.atomic import atomic_write_bytes, atomic_write_text
from autospace.errors import AutospaceError
from autospace.nn import build_network
from autospace.nn.blocks import irb_mid_channels
from autospace.nn.cell import cell_mid_channels
from autospace.nn.operators import squeeze_excite_channels

EXPORT_FORMATS = ("onnx", "torchscript", "state_dict")
ONNX_OPSET = 17
DEFAULT_NAMES = {"onnx": "model.onnx", "torchscript": "model.torchscript.pt", "state_dict": "state_dict"}
# fp32 agreement demanded of a fresh export; larger gaps mean the export is wrong, not rounding
TOLERANCE = {"onnx": 1e-4, "torchscript": 1e-5, "state_dict": 1e-5}


# ---- finding the model ----------------------------------------------------------

def find_trained_model(run_dir: str | Path) -> tuple[Network, Path]:
    """The network and weights file of a `train` run folder, or of an `autospace run` folder (its train/)."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise AutospaceError(f"run folder {run_dir} does not exist (or is not a folder); give a folder "
                             f"written by `autospace train` or `autospace run`")
    for folder in (run_dir, run_dir / "train"):
        arch, weights = folder / "arch.json", folder / "model.pt"
        if arch.is_file() and weights.is_file():
            return load_arch(arch), weights
        if arch.is_file():
            raise AutospaceError(
                f"{folder} holds arch.json but no model.pt: its training has not finished "
                f"(continue it with `autospace train --resume {folder}`)")
    raise AutospaceError(
        f"{run_dir} holds no trained model: looked for arch.json + model.pt in {run_dir} (a train run folder) "
        f"and in {run_dir / 'train'} (an `autospace run` folder)")


def load_trained_module(run_dir: str | Path) -> tuple[Network, nn.Module, Path]:
    """The built network with the trained weights loaded (CPU, eval mode), and the weights file."""
    network, weights = find_trained_model(run_dir)
    try:
        state = torch.load(weights, map_location="cpu", weights_only=True)
    except Exception as error:  # torch raises many kinds for a damaged file
        raise AutospaceError(f"cannot read {weights}: {error}") from None
    if not isinstance(state, dict):
        raise AutospaceError(f"{weights} is not a state dict (found {type(state).__name__})")
    module = build_network(network)
    try:
        module.load_state_dict(state, strict=True)
    except RuntimeError as error:
        raise AutospaceError(f"{weights} does not match {weights.parent / 'arch.json'}: {error}") from None
    return network, module.eval(), weights


# ---- export -----------------------------------------------------------------------

def export_model(run_dir: str | Path, format: str, out: str | Path | None = None, batch_size: int = 1) -> Path:
    """Export the trained network of `run_dir`; returns the file written (a folder for `state_dict`).

    `out` defaults to `export/` beside the weights (model.onnx, model.torchscript.pt,
    state_dict/). `batch_size` shapes the example input used to trace and to verify.
    """
    if format not in EXPORT_FORMATS:
        raise AutospaceError(f"unknown export format {format!r}; valid formats: {', '.join(EXPORT_FORMATS)}")
    if type(batch_size) is not int or batch_size < 1:
        raise AutospaceError(f"batch_size is {batch_size!r}; it must be a positive integer")
    if format == "onnx":
        _require_onnx()
    network, module, weights = load_trained_module(run_dir)
    out = Path(out) if out is not None else weights.parent / "export" / DEFAULT_NAMES[format]
    if format == "state_dict" and out.exists() and not out.is_dir():
        raise AutospaceError(f"{out} is a file; the state_dict export writes a folder (model.py, model_state.pt)")
    if format != "state_dict" and out.is_dir():
        raise AutospaceError(f"{out} is a folder; give the path of the {format} file to write")
    generator = torch.Generator().manual_seed(0)
    example = torch.randn(batch_size, network.in_channels, network.resolution, network.resolution,
                          generator=generator)
    with torch.no_grad():
        expected = module(example)
    writer = {"onnx": _export_onnx, "torchscript": _export_torchscript, "state_dict": _export_state_dict}[format]
    found = writer(network, module, example, out)
    difference = (found - expected).abs().max().item()
    if not difference <= TOLERANCE[format]:
        raise RuntimeError(f"the {format} export of {run_dir} differs from the trained network by "
                           f"{difference:.3g} (allowed {TOLERANCE[format]:g}); this is a bug in autospace")
    return out


def _require_onnx():
    try:
        for name in ("onnx", "onnxruntime"):
            importlib.import_module(name)
    except ImportError:
        raise AutospaceError("ONNX export needs the onnx and onnxruntime packages: "
                             "pip install onnx onnxruntime") from None


def _export_onnx(network: Network, module: nn.Module, example: torch.Tensor, out: Path) -> torch.Tensor:
    import onnx
    import onnxruntime

    buffer = io.BytesIO()
    with warnings.catch_warnings():
        # the TorchScript-based exporter is deprecated, but the torch.export-based one needs
        # onnxscript as a further dependency; the result is checked with onnxruntime below
        warnings.simplefilter("ignore")
        torch.onnx.export(module, (example,), buffer, dynamo=False, opset_version=ONNX_OPSET,
                          input_names=["input"], output_names=["logits"],
                          dynamic_axes={"input": {0: "batch"}, "logits": {0: "batch"}})
    data = buffer.getvalue()
    onnx.checker.check_model(onnx.load_from_string(data))
    atomic_write_bytes(out, data)
    session = onnxruntime.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    return torch.from_numpy(session.run(None, {"input": example.numpy()})[0])


def _export_torchscript(network: Network, module: nn.Module, example: torch.Tensor, out: Path) -> torch.Tensor:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch.jit is deprecated upstream but still the one self-contained format
        with torch.no_grad():
            traced = torch.jit.trace(module, example, check_trace=False)  # verified below
        buffer = io.BytesIO()
        torch.jit.save(traced, buffer)
        atomic_write_bytes(out, buffer.getvalue())
        loaded = torch.jit.load(str(out), map_location="cpu")
        with torch.no_grad():
            return loaded(example)


def _export_state_dict(network: Network, module: nn.Module, example: torch.Tensor, out: Path) -> torch.Tensor:
    state = {key: value.detach().cpu().contiguous() for key, value in module.state_dict().items()}
    buffer = io.BytesIO()
    torch.save(state, buffer)
    atomic_write_bytes(out / "model_state.pt", buffer.getvalue())
    atomic_write_text(out / "model.py", plain_pytorch_source(network))
    generated = _import_file(out / "model.py")
    rebuilt = generated.build_model()
    rebuilt.load_state_dict(torch.load(out / "model_state.pt", map_location="cpu", weights_only=True), strict=True)
    with torch.no_grad():
        return rebuilt.eval()(example)


def _import_file(path: Path):
    spec = importlib.util.spec_from_file_location(f"autospace_export_{uuid.uuid4().hex}", path)
    generated = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(generated)
    return generated


# ---- the plain-PyTorch model.py ------------------------------------------------------

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


def plain_pytorch_source(network: Network) -> str:
    """The text of a self-contained `model.py` (imports only torch) that builds `network`."""
    settings = {key: getattr(network, key) for key in (
        "in_channels", "resolution", "stem_channels", "stem_stride", "head_channels", "num_classes",
        "activation", "dropout")}
    layers = "".join(f"    {spec!r},\n" for spec in layer_specs(network))
    summary = "".join(f"    {line}\n" for line in network.describe())
    return (_TEMPLATE.replace("@SUMMARY@", summary.rstrip("\n"))
            .replace("@NETWORK@", repr(settings)).replace("@LAYERS@", layers))


_TEMPLATE = '''"""A network exported by autospace, in plain PyTorch (this file imports only torch).

    from model import load_model
    model = load_model()          # builds the network, loads model_state.pt beside this file, eval mode
    logits = model(images)        # images: float (N, C, H, W), normalised as in training

Layers (index, channels, stride, input size, block):
@SUMMARY@
"""

import os

import torch
from torch import nn

NETWORK = @NETWORK@

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
