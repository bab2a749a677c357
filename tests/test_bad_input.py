"""Bad input never gives a traceback: every case below ends with exit status 2 and one line on
stderr that names the problem (and, in its wording, what would be right).

The CLI runs in-process (`autospace.cli.main`) for speed; one case runs as a real subprocess."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from autospace.arch import manual_space, preset_skeleton, save_space
from autospace.cli import main
from autospace.runtime.config import save_config
from autospace.train import TrainConfig

ROOT = Path(__file__).resolve().parents[1]
ARCH = ROOT / "configs" / "archs" / "cifar_small.json"
QUICK = ["--device", "cpu", "--set", "progress=false", "--set", "epochs=1", "--set", "batch_size=8"]
SYNTHETIC = ["--data", "synthetic:64,32"]
SEARCH = ["search", "--space", "manual", "--preset", "cifar-small", "--method", "spos", "--target-madds", "14M",
          "--set", "warmup_epochs=0"]


@pytest.fixture(autouse=True)
def isolated_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("AUTOSPACE_CACHE", str(tmp_path / "decoded-cache"))
    monkeypatch.setenv("AUTOSPACE_NO_DOWNLOAD", "1")
    monkeypatch.delenv("AUTOSPACE_DATA", raising=False)


def fails_cleanly(capsys, argv: list[str], *expected: str) -> str:
    """Exit status 2, exactly one line on stderr that starts `autospace: error:` and holds every
    `expected` fragment, no traceback; returns the line."""
    code = main([str(item) for item in argv])
    error = capsys.readouterr().err
    assert code == 2, error
    assert "Traceback" not in error
    lines = error.strip().splitlines()
    assert len(lines) == 1, error
    assert lines[0].startswith("autospace: error: "), error
    for fragment in expected:
        assert fragment in lines[0], f"{fragment!r} not in: {lines[0]}"
    return lines[0]


def write_json(path: Path, value) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(value if isinstance(value, str) else json.dumps(value))
    return path


def valid_arch() -> dict:
    return json.loads(ARCH.read_text())


def valid_space(tmp_path) -> dict:
    path = tmp_path / "valid-space.json"
    save_space(path, manual_space(preset_skeleton("cifar-small")))
    return json.loads(path.read_text())


def _jpeg(size, shade) -> np.ndarray:
    buffer = io.BytesIO()
    Image.new("RGB", size, (shade, 60, 120)).save(buffer, format="JPEG")
    return np.frombuffer(buffer.getvalue(), np.uint8)


def write_npz(path: Path, train_sizes, test_sizes=None, train_labels=None, classes=10) -> Path:
    """A cifar10_jpeg.npz-style file: JPEG bytes + offsets + labels per split."""
    arrays = {"classes": np.array([f"class{index}" for index in range(classes)])}
    for split, sizes, labels in (("train", train_sizes, train_labels), ("test", test_sizes or train_sizes[:8], None)):
        blobs = [_jpeg(size, (17 * index) % 256) for index, size in enumerate(sizes)]
        arrays[f"{split}_jpeg"] = np.concatenate(blobs)
        arrays[f"{split}_offsets"] = np.concatenate([[0], np.cumsum([len(blob) for blob in blobs])]).astype(np.int64)
        arrays[f"y_{split}"] = np.array(labels if labels is not None else [i % classes for i in range(len(sizes))],
                                        np.uint8)
    np.savez(path, **arrays)
    return path


def write_image_folder(root: Path, size=(32, 32), odd_one: tuple[int, int] | None = None) -> Path:
    for split in ("train", "test"):
        for name in ("cat", "dog"):
            for index in range(4):
                path = root / split / name / f"{index}.png"
                path.parent.mkdir(parents=True, exist_ok=True)
                shape = odd_one if (odd_one and split == "train" and name == "dog" and index == 2) else size
                Image.new("RGB", shape, (40 * index, 200 if name == "cat" else 0, 0)).save(path)
    return root


# ---- arch.json and space.json ---------------------------------------------------------------------

def test_malformed_arch_json(tmp_path, capsys):
    fails_cleanly(capsys, ["train", write_json(tmp_path / "arch.json", "{not json"), "--out", tmp_path / "run",
                           *SYNTHETIC, *QUICK], "not valid JSON")


def test_missing_arch_json(tmp_path, capsys):
    fails_cleanly(capsys, ["train", tmp_path / "nothing.json", "--out", tmp_path / "run", *SYNTHETIC, *QUICK],
                  "does not exist")


def test_wrong_version_arch_json(tmp_path, capsys):
    arch = valid_arch() | {"format": "autospace.arch/99"}
    fails_cleanly(capsys, ["profile", write_json(tmp_path / "arch.json", arch)],
                  "'autospace.arch/99'", "'autospace.arch/1'")


def test_malformed_space_json(tmp_path, capsys):
    fails_cleanly(capsys, [*SEARCH, "--space", write_json(tmp_path / "space.json", "[1, 2"), "--out",
                           tmp_path / "run", *SYNTHETIC, *QUICK], "not valid JSON")


def test_wrong_version_space_json(tmp_path, capsys):
    space = valid_space(tmp_path) | {"format": "autospace.space/7"}
    fails_cleanly(capsys, [*SEARCH, "--space", write_json(tmp_path / "space.json", space), "--out",
                           tmp_path / "run", *SYNTHETIC, *QUICK], "'autospace.space/7'", "'autospace.space/1'")


def test_unknown_block_in_arch_json(tmp_path, capsys):
    arch = valid_arch()
    arch["network"]["layers"][1]["block"]["type"] = "conv9x9"
    fails_cleanly(capsys, ["profile", write_json(tmp_path / "arch.json", arch)], "'conv9x9'", "allowed: cell, irb")


def test_unknown_operator_in_space_json(tmp_path, capsys):
    space = valid_space(tmp_path)
    space["layers"][0][0]["block"] = {"type": "cell", "expansion": 6, "aggregation": "sum",
                                      "ops": {"0->1": "conv9x9", "0->2": "zero", "1->2": "zero", "0->3": "zero",
                                              "1->3": "identity", "2->3": "zero"}}
    fails_cleanly(capsys, [*SEARCH, "--space", write_json(tmp_path / "space.json", space), "--out",
                           tmp_path / "run", *SYNTHETIC, *QUICK], "unknown operator 'conv9x9'", "allowed: conv1x1")


@pytest.mark.parametrize("field, value, expected", [
    ("stride", 5, "allowed: 1, 2"),
    ("expansion", 7, "allowed: 1, 3, 6"),
    ("kernel", 11, "allowed: 3, 5, 7"),
])
def test_out_of_range_value_in_arch_json(tmp_path, capsys, field, value, expected):
    arch = valid_arch()
    target = arch["network"]["layers"][1] if field == "stride" else arch["network"]["layers"][1]["block"]
    target[field] = value
    fails_cleanly(capsys, ["profile", write_json(tmp_path / "arch.json", arch)], f"is {value}", expected)


@pytest.mark.parametrize("argv, expected", [
    (["train", ARCH, "--set", "epochs=0"], ("epochs is 0", ">= 1")),
    (["train", ARCH, "--set", "lr=-1"], ("lr is -1.0", "> 0")),
    (["train", ARCH, "--set", "batch_size=many"], ("'batch_size' = 'many'", "expected an integer")),
    (["train", ARCH, "--set", "colour=blue"], ("unknown config key 'colour'", "valid keys: data")),
    (["evolve", "--budget-madds", "-5"], ("'-5' must be positive", "60M")),
    (["search", "--space", "manual", "--target-madds", "lots"], ("'lots'", "60M")),
])
def test_out_of_range_config_values(tmp_path, capsys, argv, expected):
    fails_cleanly(capsys, [*argv, "--out", tmp_path / "run", *SYNTHETIC, "--device", "cpu"], *expected)


# ---- data files ---------------------------------------------------------------------------------------

def _train_on(tmp_path, data) -> list:
    return ["train", ARCH, "--out", tmp_path / "run", "--data", data, *QUICK]


def test_missing_data_file(tmp_path, capsys):
    fails_cleanly(capsys, _train_on(tmp_path, tmp_path / "cifar10_jpeg.npz"), "does not exist", "Accepted formats")


def test_cifar10_absent_from_the_data_folder(tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    fails_cleanly(capsys, [*_train_on(tmp_path, "cifar10"), "--data-dir", tmp_path / "empty"],
                  "CIFAR-10 was not found", "AUTOSPACE_DATA")


def test_corrupt_data_file(tmp_path, capsys):
    (tmp_path / "cifar10_jpeg.npz").write_bytes(b"PK\x03\x04 but not a zip archive at all")
    fails_cleanly(capsys, _train_on(tmp_path, tmp_path / "cifar10_jpeg.npz"), "could not be read", "corrupt")


def test_truncated_data_file(tmp_path, capsys):
    whole = write_npz(tmp_path / "whole.npz", [(32, 32)] * 20).read_bytes()
    (tmp_path / "cut.npz").write_bytes(whole[: len(whole) // 2])
    fails_cleanly(capsys, _train_on(tmp_path, tmp_path / "cut.npz"), "could not be read", "truncated")


def test_corrupt_image_in_an_image_folder(tmp_path, capsys):
    root = write_image_folder(tmp_path / "pets")
    (root / "train" / "cat" / "1.png").write_bytes(b"\x89PNG not really")
    fails_cleanly(capsys, _train_on(tmp_path, root), "1.png could not be read as an image")


def test_image_folder_with_mixed_sizes(tmp_path, capsys):
    root = write_image_folder(tmp_path / "pets", odd_one=(30, 28))
    fails_cleanly(capsys, _train_on(tmp_path, root), "2.png is 30x28", "must all be 32x32", "resize")


def test_npz_with_mixed_image_sizes(tmp_path, capsys):
    path = write_npz(tmp_path / "mixed.npz", [(32, 32)] * 10 + [(28, 28)] + [(32, 32)] * 9)
    fails_cleanly(capsys, _train_on(tmp_path, path), "image 10 is 28x28", "all images must have the same size")


def test_npz_images_of_the_wrong_size_for_the_network(tmp_path, capsys):
    path = write_npz(tmp_path / "small.npz", [(16, 16)] * 20)
    fails_cleanly(capsys, _train_on(tmp_path, path), "expects 32 resolution", "has 16")


def test_npz_with_non_square_images(tmp_path, capsys):
    path = write_npz(tmp_path / "wide.npz", [(32, 24)] * 20)
    fails_cleanly(capsys, _train_on(tmp_path, path), "32x24 (width x height)", "square")


def test_label_count_differs_from_image_count(tmp_path, capsys):
    path = write_npz(tmp_path / "labels.npz", [(32, 32)] * 20, train_labels=list(range(10)) * 3)
    fails_cleanly(capsys, _train_on(tmp_path, path), "20 train images but y_train holds 30 labels",
                  "one label per image")


def test_labels_out_of_range_of_the_classes(tmp_path, capsys):
    path = write_npz(tmp_path / "labels.npz", [(32, 32)] * 20, train_labels=[i % 12 for i in range(20)])
    fails_cleanly(capsys, _train_on(tmp_path, path), "ranges over 0..11", "expected 0..9")


def test_class_count_differs_from_the_network(tmp_path, capsys):
    path = write_npz(tmp_path / "eleven.npz", [(32, 32)] * 22, classes=11)
    fails_cleanly(capsys, _train_on(tmp_path, path), "expects 10 classes", "has 11")


# ---- budgets and resolutions ---------------------------------------------------------------------------

def test_search_budget_below_the_smallest_network(tmp_path, capsys):
    fails_cleanly(capsys, [*SEARCH, "--target-madds", "1M", "--out", tmp_path / "run", *SYNTHETIC, *QUICK],
                  "below the smallest network", "raise --target-madds to at least")
    assert not (tmp_path / "run" / "search.jsonl").exists()


def test_evolve_budget_below_the_fixed_part_of_the_network(tmp_path, capsys):
    fails_cleanly(capsys, ["evolve", "--preset", "cifar-small", "--budget-madds", "1M", "--out", tmp_path / "run",
                           *SYNTHETIC, *QUICK], "below the fixed part", "give a budget above")


def test_evolve_budget_too_small_for_any_cell(tmp_path, capsys):
    fails_cleanly(capsys, ["evolve", "--preset", "cifar-small", "--budget-madds", "3M", "--out", tmp_path / "run",
                           *SYNTHETIC, *QUICK, "--set", "population_size=4",
                           "--set", "candidates_per_layer=2", "--set", "top_k=2"], "MAdds cap", "raise the budget")


def test_resolution_too_small_for_the_strides_of_an_arch(tmp_path, capsys):
    arch = valid_arch()
    arch["network"]["resolution"] = 4
    fails_cleanly(capsys, ["profile", write_json(tmp_path / "arch.json", arch)],
                  "resolution 4 is too small for the network's total stride 8", "at least 8")


def test_resolution_of_the_data_too_small_for_the_skeleton(tmp_path, capsys):
    root = write_image_folder(tmp_path / "tiny", size=(4, 4))
    fails_cleanly(capsys, ["evolve", "--preset", "cifar", "--out", tmp_path / "run", "--data", root, *QUICK],
                  "resolution 4 is too small", "at least 8")


# ---- output folders -------------------------------------------------------------------------------------

@pytest.mark.parametrize("command", [
    ["train", ARCH], ["evolve", "--preset", "cifar-small"], SEARCH, ["run"],
])
def test_unwritable_output_folder_fails_before_any_work(tmp_path, capsys, command):
    fails_cleanly(capsys, [*command, "--out", "/proc/autospace-run", "--data", tmp_path / "absent-data"],
                  "cannot write the run folder /proc/autospace-run", "choose a writable folder")


def test_output_folder_inside_a_file(tmp_path, capsys):
    (tmp_path / "notes.txt").write_text("a file")
    fails_cleanly(capsys, ["train", ARCH, "--out", tmp_path / "notes.txt" / "run", *SYNTHETIC, *QUICK],
                  "notes.txt is a file, not a folder")


@pytest.mark.skipif(os.name != "posix" or os.geteuid() == 0, reason="root writes into read-only folders")
def test_read_only_output_folder(tmp_path, capsys):
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o555)
    try:
        fails_cleanly(capsys, ["train", ARCH, "--out", locked / "run", *SYNTHETIC, *QUICK], "cannot write")
    finally:
        locked.chmod(0o755)


def test_unwritable_picture_output(capsys):
    fails_cleanly(capsys, ["show", ARCH, "-o", "/proc/autospace.svg"], "cannot write the picture /proc/autospace.svg")


# ---- run folders from another version ----------------------------------------------------------------

def _train_run_folder(tmp_path) -> Path:
    out = tmp_path / "old-run"
    out.mkdir()
    save_config(out / "config.yaml", TrainConfig(data="synthetic:64,32", device="cpu", epochs=2, batch_size=16,
                                                 progress=False))
    (out / "arch.json").write_text(ARCH.read_text())
    return out


def test_resume_of_a_config_from_another_version(tmp_path, capsys):
    out = _train_run_folder(tmp_path)
    lines = (out / "config.yaml").read_text().splitlines()
    header = lines[0].replace("config format autospace.config/1", "config format autospace.config/9")
    header = header.replace("(autospace 0.1.0", "(autospace 9.0.0")
    (out / "config.yaml").write_text("\n".join([header, *lines[1:]]) + "\n")
    fails_cleanly(capsys, ["train", "--resume", out], "written by autospace 9.0.0 (config format autospace.config/9)",
                  "config format autospace.config/1", "start a new run")


def test_resume_of_a_config_with_unknown_keys(tmp_path, capsys):
    out = _train_run_folder(tmp_path)
    text = (out / "config.yaml").read_text().replace("(autospace 0.1.0", "(autospace 0.0.1")
    (out / "config.yaml").write_text(text + "stochastic_depth: 0.1\n")
    fails_cleanly(capsys, ["train", "--resume", out], "unknown config key 'stochastic_depth'",
                  "written by autospace 0.0.1", "this is autospace")


def test_resume_of_a_checkpoint_from_another_version(tmp_path, capsys):
    out = _train_run_folder(tmp_path)
    torch.save({"format": "autospace.train-checkpoint/9", "epoch": 1}, out / "checkpoint.pt")
    fails_cleanly(capsys, ["train", "--resume", out], "'autospace.train-checkpoint/9'",
                  "expected 'autospace.train-checkpoint/1'", "another version")


def test_resume_of_another_kind_of_run(tmp_path, capsys):
    fails_cleanly(capsys, ["search", "--resume", _train_run_folder(tmp_path)],
                  "as a SearchConfig run", "holds a TrainConfig")


def test_resume_of_a_folder_without_a_run(tmp_path, capsys):
    fails_cleanly(capsys, ["evolve", "--resume", tmp_path], "holds no run (no config.yaml)", "--out")


# ---- the real thing, once: a subprocess ------------------------------------------------------------------

def test_subprocess_bad_input_exits_2_with_one_line(tmp_path):
    bad = write_json(tmp_path / "arch.json", {"format": "autospace.arch/1", "network": {"layers": "many"}})
    result = subprocess.run([sys.executable, "-m", "autospace", "train", str(bad), "--out", str(tmp_path / "run"),
                             "--data", "synthetic"], cwd=ROOT, capture_output=True, text=True,
                            env=dict(os.environ, AUTOSPACE_NO_DOWNLOAD="1"))
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("autospace: error: ") and "arch.json" in lines[0], result.stderr
