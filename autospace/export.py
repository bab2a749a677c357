"""Export a trained network: ONNX, TorchScript, or a state dict plus a plain-PyTorch `model.py`.

Every format is read back after writing and its outputs compared with the
autospace module on one random batch, so a file this module returns computes
the trained network. None of the exported files needs autospace to run:

- `onnx`        one `.onnx` file (opset 17, dynamic batch axis; needs `onnx` + `onnxruntime`)
- `torchscript` one `.pt` file for `torch.jit.load` (traced in eval mode)
- `state_dict`  a folder with `model_state.pt` and a generated `model.py` that only
                imports torch; its parameter names equal `NetworkModule`'s, so
                `load_state_dict(strict=True)` takes the trained weights as they are.

Every export carries the input the network expects (mean, std, resolution, class names, input
layout and dtype; `autospace.data.preprocessing`): in the ONNX file's metadata_props, in the
TorchScript file as the extra file `export.json`, in model.py as constants with a `preprocess`
function, and beside the file(s) as `export.json`.
"""

from __future__ import annotations

import importlib
import importlib.util
import io
import json
import uuid
import warnings
from pathlib import Path

import torch
from torch import nn

from autospace.arch import Network, load_arch
from autospace.errors import AutospaceError
from autospace.export_source import block_spec, layer_specs, plain_pytorch_source  # noqa: F401 (public here too)
from autospace.nn import build_network
from autospace.runtime.atomic import atomic_write_bytes, atomic_write_json, atomic_write_text

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
    description = export_description(network, find_preprocessing(weights.parent))
    found = writer(network, module, example, out, description)
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


def _export_onnx(network: Network, module: nn.Module, example: torch.Tensor, out: Path,
                 description: dict) -> torch.Tensor:
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
    model = onnx.load_from_string(buffer.getvalue())
    # every value a string, as metadata_props holds them; lists and dicts as JSON
    onnx.helper.set_model_props(model, {key: value if isinstance(value, str) else json.dumps(value)
                                        for key, value in description.items()})
    onnx.checker.check_model(model)
    atomic_write_bytes(out, model.SerializeToString())
    _write_description(out.parent, description)
    session = onnxruntime.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    return torch.from_numpy(session.run(None, {"input": example.numpy()})[0])


def _export_torchscript(network: Network, module: nn.Module, example: torch.Tensor, out: Path,
                        description: dict) -> torch.Tensor:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch.jit is deprecated upstream but still the one self-contained format
        with torch.no_grad():
            traced = torch.jit.trace(module, example, check_trace=False)  # verified below
        buffer = io.BytesIO()
        torch.jit.save(traced, buffer, _extra_files={"export.json": json.dumps(description, indent=1)})
        atomic_write_bytes(out, buffer.getvalue())
        _write_description(out.parent, description)
        loaded = torch.jit.load(str(out), map_location="cpu")
        with torch.no_grad():
            return loaded(example)


def _export_state_dict(network: Network, module: nn.Module, example: torch.Tensor, out: Path,
                       description: dict) -> torch.Tensor:
    state = {key: value.detach().cpu().contiguous() for key, value in module.state_dict().items()}
    buffer = io.BytesIO()
    torch.save(state, buffer)
    atomic_write_bytes(out / "model_state.pt", buffer.getvalue())
    atomic_write_text(out / "model.py", plain_pytorch_source(network, description))
    _write_description(out, description)
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


# ---- what the input must be ---------------------------------------------------------

def find_preprocessing(train_dir: Path) -> dict | None:
    """The preprocessing record of a train run folder: metrics.json's (autospace.train records it); for
    a folder trained before that, rebuilt from its config.yaml's data set; None when neither can tell."""
    from autospace.runtime.atomic import read_optional_json

    try:
        recorded = (read_optional_json(train_dir / "metrics.json") or {}).get("preprocessing")
    except AutospaceError:
        recorded = None
    if recorded:
        return recorded
    if not (train_dir / "config.yaml").is_file():
        return None
    from autospace.data import load_dataset
    from autospace.data.preprocessing import preprocessing_record
    from autospace.runtime.config import load_saved_config
    from autospace.train.config import TrainConfig

    try:
        config = load_saved_config(TrainConfig, train_dir)
        return preprocessing_record(load_dataset(config.data, config.data_dir, config.image_size))
    except AutospaceError:
        return None


def export_description(network: Network, preprocessing: dict | None) -> dict:
    """export.json: what a user needs to feed the exported network raw images."""
    preprocessing = preprocessing or {}
    unknown = None if preprocessing else ("this run folder does not record its preprocessing (trained before "
                                          "autospace recorded it, and its data set could not be loaded)")
    return {
        "format": "autospace.export/1", "input_name": "input", "output_name": "logits",
        "input_layout": "NCHW", "input_dtype": "uint8",
        "model_input_dtype": "float32 (the raw uint8 images after the normalisation below)",
        "resolution": network.resolution, "channels": network.in_channels,
        "channel_order": preprocessing.get("channel_order"),
        "mean": preprocessing.get("mean"), "std": preprocessing.get("std"),
        "normalisation": preprocessing.get("normalisation", "unknown"), "resize": preprocessing.get("resize"),
        "num_classes": network.num_classes, "class_names": preprocessing.get("class_names"),
        "data": preprocessing.get("data"), **({"unknown": unknown} if unknown else {}),
    }


def _write_description(folder: Path, description: dict) -> None:
    atomic_write_json(folder / "export.json", description)
