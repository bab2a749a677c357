"""Exporting trained networks (`autospace.export`): every format computes the trained network."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch

from autospace.arch import Cell, CellBlock, InvertedResidual, Layer, Network, ZeroBlock, save_arch
from autospace.errors import AutospaceError
from autospace.export import export_model, find_trained_model, plain_pytorch_source
from autospace.nn import build_network

# Odd resolutions make stride-2 layers meet odd sizes (ceil-mode pooling, padding at the border).
IRB_NETWORK = Network(
    layers=(
        Layer(InvertedResidual(kernel=3, expansion=1), 8, 1, searchable=False),
        Layer(InvertedResidual(kernel=5, expansion=3, squeeze_excite=True, activation="swish"), 12, 2),
        Layer(InvertedResidual(kernel=3, expansion=6, dilation=2), 12, 1),
        Layer(ZeroBlock(), 12, 1),
        Layer(InvertedResidual(kernel=7, expansion=6, squeeze_excite=True), 16, 2),
        Layer(InvertedResidual(kernel=3, expansion=1, activation="swish", dilation=2), 16, 1),
    ),
    stem_channels=8, stem_stride=1, head_channels=32, num_classes=5, resolution=19, activation="swish",
    dropout=0.2,
)
# edges: (0,1), (0,2), (1,2), (0,3), (1,3), (2,3)
SUM_CELL = Cell(("conv3x3", "identity", "dwconv3x3", "zero", "conv1x1", "identity"), expansion=3, aggregation="sum")
CONCAT_CELL = Cell(("dwconv3x3", "conv1x1", "identity", "identity", "zero", "conv3x3"), expansion=1,
                   aggregation="concat")
CELL_NETWORK = Network(
    layers=(
        Layer(CellBlock(SUM_CELL), 8, 2),
        Layer(CellBlock(CONCAT_CELL), 8, 1),
        Layer(ZeroBlock(), 8, 1),
        Layer(CellBlock(CONCAT_CELL), 12, 2),
        Layer(CellBlock(SUM_CELL), 12, 1),
        Layer(InvertedResidual(kernel=3, expansion=3), 16, 2),
    ),
    stem_channels=8, stem_stride=1, head_channels=0, num_classes=3, resolution=13,
)
NETWORKS = {"irb": IRB_NETWORK, "cell": CELL_NETWORK}


def write_trained_run(folder: Path, network: Network, seed: int = 0) -> torch.nn.Module:
    """A train run folder whose weights and BN statistics are all non-trivial."""
    generator = torch.Generator().manual_seed(seed)
    model = build_network(network)
    with torch.no_grad():
        for name, tensor in model.state_dict().items():
            if name.endswith("num_batches_tracked"):
                continue
            if name.endswith("running_var"):
                tensor.copy_(torch.rand(tensor.shape, generator=generator) + 0.5)
            else:
                tensor.copy_(torch.randn(tensor.shape, generator=generator) * 0.3)
    folder.mkdir(parents=True, exist_ok=True)
    save_arch(folder / "arch.json", network)
    torch.save(model.state_dict(), folder / "model.pt")
    return model.eval()


def example_inputs(network: Network, batch: int = 3) -> torch.Tensor:
    generator = torch.Generator().manual_seed(1)
    return torch.randn(batch, network.in_channels, network.resolution, network.resolution, generator=generator)


def test_cell_network_covers_strided_identity_and_concat():
    source = plain_pytorch_source(CELL_NETWORK)
    assert '"concat_nodes": [2, 3]' in source.replace("'", '"')
    assert "[0, 2, 'identity']" in source  # leaves node 0: a 2x2 average pool where the layer has stride 2


def test_find_trained_model_accepts_train_and_run_folders(tmp_path):
    write_trained_run(tmp_path / "train-run", IRB_NETWORK)
    write_trained_run(tmp_path / "pipeline-run" / "train", CELL_NETWORK)
    network, weights = find_trained_model(tmp_path / "train-run")
    assert network == IRB_NETWORK and weights == tmp_path / "train-run" / "model.pt"
    network, weights = find_trained_model(tmp_path / "pipeline-run")
    assert network == CELL_NETWORK and weights == tmp_path / "pipeline-run" / "train" / "model.pt"


def test_find_trained_model_errors_say_what_was_looked_for(tmp_path):
    with pytest.raises(AutospaceError, match="does not exist"):
        find_trained_model(tmp_path / "nowhere")
    with pytest.raises(AutospaceError, match=r"arch\.json \+ model\.pt.*train"):
        find_trained_model(tmp_path)
    save_arch(tmp_path / "arch.json", IRB_NETWORK)
    with pytest.raises(AutospaceError, match="no model.pt: its training has not finished"):
        find_trained_model(tmp_path)


def test_bad_format_batch_size_and_mismatched_weights_are_errors(tmp_path):
    write_trained_run(tmp_path, IRB_NETWORK)
    with pytest.raises(AutospaceError, match="onnx, torchscript, state_dict"):
        export_model(tmp_path, "tflite")
    with pytest.raises(AutospaceError, match="batch_size"):
        export_model(tmp_path, "torchscript", batch_size=0)
    with pytest.raises(AutospaceError, match="is a file"):
        export_model(tmp_path, "state_dict", out=tmp_path / "arch.json")
    with pytest.raises(AutospaceError, match="is a folder"):
        export_model(tmp_path, "torchscript", out=tmp_path)
    torch.save(build_network(CELL_NETWORK).state_dict(), tmp_path / "model.pt")
    with pytest.raises(AutospaceError, match="does not match"):
        export_model(tmp_path, "torchscript")
    (tmp_path / "model.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(AutospaceError, match="cannot read"):
        export_model(tmp_path, "state_dict")


# Runs in a fresh interpreter where `import autospace` fails: the exports must stand alone.
STANDALONE_CHECK = textwrap.dedent("""
    import importlib.util
    import sys
    sys.modules["autospace"] = None
    import torch
    for index, (torchscript_path, state_dir, data_path) in enumerate(zip(*[iter(sys.argv[1:])] * 3)):
        data = torch.load(data_path)
        scripted = torch.jit.load(torchscript_path)
        spec = importlib.util.spec_from_file_location(f"model{index}", state_dir + "/model.py")
        model = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(model)
        plain = model.load_model()
        with torch.no_grad():
            for name, net in (("torchscript", scripted), ("state_dict", plain)):
                difference = (net(data["inputs"]) - data["expected"]).abs().max().item()
                assert difference <= 1e-5, (torchscript_path, name, difference)
        print("standalone ok", index)
""")


def test_torchscript_and_plain_pytorch_exports_run_without_autospace(tmp_path):
    arguments = []
    for kind, network in sorted(NETWORKS.items()):
        run = tmp_path / kind
        model = write_trained_run(run, network)
        scripted = export_model(run, "torchscript")
        state_dir = export_model(run, "state_dict", out=tmp_path / f"{kind}-plain")
        assert scripted == run / "export" / "model.torchscript.pt" and scripted.is_file()
        assert sorted(p.name for p in state_dir.iterdir()) == ["export.json", "model.py", "model_state.pt"]
        imports = [line for line in (state_dir / "model.py").read_text().splitlines()
                   if line.startswith(("import ", "from "))]
        assert imports == ["import os", "import torch", "from torch import nn"]
        inputs = example_inputs(network, batch=3)  # another batch size than the traced one
        with torch.no_grad():
            expected = model(inputs)
        torch.save({"inputs": inputs, "expected": expected}, tmp_path / f"{kind}-data.pt")
        arguments += [str(scripted), str(state_dir), str(tmp_path / f"{kind}-data.pt")]
    result = subprocess.run([sys.executable, "-c", STANDALONE_CHECK, *arguments],
                            capture_output=True, text=True, cwd=tmp_path, timeout=300)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split("\n")[:2] == ["standalone ok 0", "standalone ok 1"]


def test_plain_pytorch_parameter_names_equal_the_builders():
    for network in NETWORKS.values():
        namespace = {}
        exec(compile(plain_pytorch_source(network), "model.py", "exec"), namespace)
        plain = namespace["build_model"]().state_dict()
        built = build_network(network).state_dict()
        assert list(plain) == list(built)
        assert all(plain[key].shape == built[key].shape for key in built)


@pytest.mark.parametrize("kind", sorted(NETWORKS))
def test_onnx_export_matches_pytorch_with_a_dynamic_batch(tmp_path, kind):
    onnxruntime = pytest.importorskip("onnxruntime")
    pytest.importorskip("onnx")
    network = NETWORKS[kind]
    model = write_trained_run(tmp_path, network)
    path = export_model(tmp_path, "onnx", out=tmp_path / "net.onnx", batch_size=2)
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    for batch in (1, 5):
        inputs = example_inputs(network, batch)
        with torch.no_grad():
            expected = model(inputs).numpy()
        found = session.run(None, {"input": inputs.numpy()})[0]
        assert found.shape == expected.shape
        assert abs(found - expected).max() <= 1e-4


def test_onnx_without_its_packages_says_what_to_install(tmp_path, monkeypatch):
    write_trained_run(tmp_path, IRB_NETWORK)
    monkeypatch.setitem(sys.modules, "onnxruntime", None)
    with pytest.raises(AutospaceError, match="pip install onnx onnxruntime"):
        export_model(tmp_path, "onnx")

