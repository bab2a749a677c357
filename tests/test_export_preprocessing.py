"""Exports carry their preprocessing (issue 32): a fresh process that knows only the exported files
classifies raw uint8 images as the trained PyTorch model does."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
import torch

from autospace.arch import InvertedResidual, Layer, Network
from autospace.data import load_dataset, normalize_batch
from autospace.export import export_model, load_trained_module
from autospace.train.api import train
from autospace.train.config import TrainConfig

DATA = "synthetic:96,40"
NETWORK = Network(layers=(Layer(InvertedResidual(kernel=3, expansion=1), 8, 1, searchable=False),
                          Layer(InvertedResidual(kernel=3, expansion=3), 12, 2),
                          Layer(InvertedResidual(kernel=5, expansion=3), 12, 1)),
                  stem_channels=8, stem_stride=1, head_channels=16, num_classes=10, resolution=16)

# Runs where `import autospace` fails: only the export's own files and what they say.
FRESH_PROCESS = r'''
import importlib.util, json, sys
sys.modules["autospace"] = None
import numpy as np, onnx, onnxruntime, torch

onnx_path, plain_dir, data_path = sys.argv[1:4]
data = np.load(data_path)
raw_small, raw_large, expected = data["raw_small"], data["raw_large"], data["expected"]

# ONNX: the mean, std, resolution and class names from the file's metadata_props
model = onnx.load(onnx_path)
props = {prop.key: prop.value for prop in model.metadata_props}
mean = np.array(json.loads(props["mean"]), dtype=np.float32).reshape(1, -1, 1, 1)
std = np.array(json.loads(props["std"]), dtype=np.float32).reshape(1, -1, 1, 1)
assert props["input_layout"] == "NCHW" and props["input_dtype"] == "uint8", props
assert raw_small.shape[2:] == (int(props["resolution"]),) * 2
names = json.loads(props["class_names"])
session = onnxruntime.InferenceSession(onnx_path, providers=["CPUExecutionProvider"])
logits = session.run(None, {props["input_name"]: ((raw_small / np.float32(255) - mean) / std).astype(np.float32)})[0]
print("onnx", float(np.abs(logits - expected).max()), int((logits.argmax(1) == expected.argmax(1)).all()), len(names))

# model.py: its constants and preprocess, on images at the data set's own size (it resizes them)
spec = importlib.util.spec_from_file_location("model", plain_dir + "/model.py")
plain = importlib.util.module_from_spec(spec)
spec.loader.exec_module(plain)
with torch.no_grad():
    logits = plain.load_model()(plain.preprocess(torch.from_numpy(raw_large))).numpy()
print("model.py", float(np.abs(logits - expected).max()), int((logits.argmax(1) == expected.argmax(1)).all()),
      len(plain.CLASS_NAMES), plain.RESOLUTION)

described = json.load(open(plain_dir + "/export.json"))
print("export.json", described["resolution"], len(described["mean"]), len(described["class_names"]))
'''


def test_exports_classify_raw_uint8_images_with_only_what_they_say(tmp_path):
    pytest.importorskip("onnxruntime")
    pytest.importorskip("onnx")
    run = tmp_path / "run"
    # trained on the images area-resized from 32 to 16 px: the exports must say so and do it
    train(NETWORK, TrainConfig(data=DATA, image_size=16, epochs=1, batch_size=32, warmup_epochs=0,
                               device="cpu", progress=False), run)
    onnx_path = export_model(run, "onnx")
    plain_dir = export_model(run, "state_dict")
    small = load_dataset(DATA, image_size=16)
    large = load_dataset(DATA)
    with torch.no_grad():  # the PyTorch model on the input the training pipeline makes
        expected = load_trained_module(run)[1](normalize_batch(small.test_images, small.mean, small.std))
    np.savez(tmp_path / "data.npz", raw_small=small.test_images.numpy(), raw_large=large.test_images.numpy(),
             expected=expected.numpy())
    result = subprocess.run([sys.executable, "-c", FRESH_PROCESS, str(onnx_path), str(plain_dir),
                             str(tmp_path / "data.npz")], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    lines = {line.split()[0]: line.split()[1:] for line in result.stdout.splitlines()}
    onnx_diff, onnx_same, onnx_classes = lines["onnx"]
    assert float(onnx_diff) <= 1e-4 and onnx_same == "1" and onnx_classes == "10"
    plain_diff, plain_same, plain_classes, resolution = lines["model.py"]
    assert float(plain_diff) <= 1e-4 and plain_same == "1" and plain_classes == "10" and resolution == "16"
    assert lines["export.json"] == ["16", "3", "10"]
    described = json.loads((onnx_path.parent / "export.json").read_text())
    assert described["mean"] == pytest.approx(list(small.mean)) and described["class_names"][0] == "class_0"


def test_an_export_of_a_run_that_recorded_no_preprocessing_says_so(tmp_path):
    from autospace.arch import save_arch
    from autospace.nn import build_network

    run = tmp_path / "old"
    run.mkdir()
    save_arch(run / "arch.json", NETWORK)
    torch.save(build_network(NETWORK).state_dict(), run / "model.pt")
    plain_dir = export_model(run, "state_dict")
    described = json.loads((plain_dir / "export.json").read_text())
    assert described["mean"] is None and "does not record its preprocessing" in described["unknown"]
    assert described["resolution"] == 16 and described["num_classes"] == 10
