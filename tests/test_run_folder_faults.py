"""Damaged run folders and faults during a run (issue 17, items 10-14): a full disk, two processes in
one folder, bytes flipped in a checkpoint, a state gone non-finite, a learning rate lowered on resume."""

from __future__ import annotations

import errno
import io
import os
import signal
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
import torch

from autospace.runtime.atomic import read_jsonl
from autospace.runtime.checkpoints import (
    NEWEST, PREVIOUS, NonFiniteStateError, load_rotating_checkpoint, save_rotating_checkpoint,
)
from autospace.cli import main
from autospace.runtime.config import load_config
from autospace.runtime.resume import recorded_changes
from autospace.train import TrainConfig
from test_bad_input import ARCH, fails_cleanly

ROOT = Path(__file__).resolve().parents[1]
TRAIN = ["--data", "synthetic:64,32", "--device", "cpu", "--set", "progress=false", "--set", "batch_size=16",
         "--set", "warmup_epochs=0"]


@pytest.fixture(autouse=True)
def isolated_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("AUTOSPACE_CACHE", str(tmp_path / "decoded-cache"))
    monkeypatch.setenv("AUTOSPACE_NO_DOWNLOAD", "1")
    monkeypatch.delenv("AUTOSPACE_DATA", raising=False)


def train_run(out: Path, epochs: int, *extra: str) -> int:
    return main(["train", str(ARCH), "--out", str(out), *TRAIN, "--set", f"epochs={epochs}", *extra])


def weights(out: Path) -> dict:
    return torch.load(out / "model.pt", weights_only=True)


def same_weights(first: Path, second: Path) -> bool:
    a, b = weights(first), weights(second)
    return a.keys() == b.keys() and all(torch.equal(a[key], b[key]) for key in a)


@pytest.fixture(scope="module")
def reference(tmp_path_factory) -> Path:
    """An uninterrupted 3-epoch run."""
    out = tmp_path_factory.mktemp("reference") / "run"
    os.environ.setdefault("AUTOSPACE_NO_DOWNLOAD", "1")
    assert train_run(out, 3) == 0
    return out


# ---- 10. disk full -----------------------------------------------------------------------------------

def test_disk_full_stops_with_one_line_exit_2_and_the_resume_hint(tmp_path, capsys, monkeypatch, reference):
    out = tmp_path / "run"
    real_fsync, checkpoint_writes = os.fsync, []

    def fsync_without_space(descriptor):
        if ".checkpoint.pt." in os.readlink(f"/proc/self/fd/{descriptor}"):
            checkpoint_writes.append(descriptor)
            if len(checkpoint_writes) == 2:  # the checkpoint of epoch 2
                raise OSError(errno.ENOSPC, "No space left on device")
        real_fsync(descriptor)

    monkeypatch.setattr(os, "fsync", fsync_without_space)
    line = fails_cleanly(capsys, ["train", ARCH, "--out", out, *TRAIN, "--set", "epochs=3"],
                         "no space left on the device of", "checkpoint.pt, which needs", "MiB free",
                         f"continue with --resume {out}")
    assert "Traceback" not in line
    assert not list(out.glob(".*.tmp")) and (out / PREVIOUS).exists()  # nothing torn, epoch 1 kept
    monkeypatch.setattr(os, "fsync", real_fsync)
    assert main(["train", "--resume", str(out)]) == 0
    assert same_weights(out, reference)
    assert [record["epoch"] for record in read_jsonl(out / "metrics.jsonl")] == [1, 2, 3]


# ---- 11. one process at a time in a run folder -----------------------------------------------------------

HOLD_THE_LOCK = """
import sys, time
from autospace.runtime.run_lock import run_folder_lock
with run_folder_lock(sys.argv[1]):
    print("locked", flush=True)
    time.sleep(600)
"""


@pytest.mark.skipif(os.name != "posix", reason="flock")
def test_a_second_process_in_a_run_folder_is_refused_and_a_killed_holder_blocks_nothing(tmp_path, capsys):
    out = tmp_path / "run"
    assert train_run(out, 1) == 0
    holder = subprocess.Popen([sys.executable, "-c", HOLD_THE_LOCK, str(out)], stdout=subprocess.PIPE, text=True,
                              cwd=ROOT)
    try:
        assert holder.stdout.readline().strip() == "locked"
        fails_cleanly(capsys, ["train", "--resume", out, "--set", "epochs=2"], f"run folder {out} is in use by "
                      f"process {holder.pid}", "--resume")
        fails_cleanly(capsys, ["train", ARCH, "--out", out, *TRAIN], f"in use by process {holder.pid}")
    finally:
        holder.send_signal(signal.SIGKILL)  # a killed holder: the kernel drops its lock
        holder.wait()
    assert (out / ".autospace.lock").exists()  # the stale file stays and blocks nothing
    assert main(["train", "--resume", str(out)]) == 0
    assert [record["epoch"] for record in read_jsonl(out / "metrics.jsonl")] == [1]


# ---- 12. checksums --------------------------------------------------------------------------------------

def flip_tensor_bytes(path: Path) -> None:
    """Invert 64 bytes in the middle of the largest tensor entry, keeping the file's size (bit rot)."""
    data = bytearray(path.read_bytes())
    with zipfile.ZipFile(io.BytesIO(bytes(data))) as archive:
        entry = max((info for info in archive.infolist() if "/data/" in info.filename), key=lambda i: i.file_size)
    name_length = int.from_bytes(data[entry.header_offset + 26: entry.header_offset + 28], "little")
    extra_length = int.from_bytes(data[entry.header_offset + 28: entry.header_offset + 30], "little")
    start = entry.header_offset + 30 + name_length + extra_length + entry.file_size // 2
    data[start: start + 64] = bytes(255 - byte for byte in data[start: start + 64])
    path.write_bytes(bytes(data))


def interrupted_after_checkpoint(monkeypatch, out: Path, count: int, epochs: int, *extra: str) -> None:
    """A CLI train run stopped (like Ctrl-C) right after its `count`-th checkpoint."""
    import autospace.runtime.run as loop

    real_save, saved = loop.save_checkpoint, []

    def save_then_stop(run_dir, state):
        real_save(run_dir, state)
        saved.append(state["epoch"])
        if len(saved) == count:
            raise KeyboardInterrupt

    monkeypatch.setattr(loop, "save_checkpoint", save_then_stop)
    assert train_run(out, epochs, *extra) == 130
    monkeypatch.setattr(loop, "save_checkpoint", real_save)


def test_flipped_bytes_in_the_newest_checkpoint_fall_back_to_the_previous_one(tmp_path, capsys, monkeypatch,
                                                                                reference):
    out = tmp_path / "run"
    interrupted_after_checkpoint(monkeypatch, out, 2, 3)
    size = (out / NEWEST).stat().st_size
    flip_tensor_bytes(out / NEWEST)
    assert (out / NEWEST).stat().st_size == size
    capsys.readouterr()
    assert main(["train", "--resume", str(out)]) == 0
    error = capsys.readouterr().err
    assert "warning" in error and "damaged" in error and "checksum mismatch" in error and str(out / PREVIOUS) in error
    assert same_weights(out, reference)  # epoch 2 was trained again from epoch 1, bit for bit


def test_checksums_catch_flips_and_both_damaged_is_one_error(tmp_path, capsys):
    for epoch in (1, 2):
        save_rotating_checkpoint(tmp_path, {"epoch": epoch, "w": torch.arange(4096.0)}, "test/1")
    flip_tensor_bytes(tmp_path / NEWEST)
    state = load_rotating_checkpoint(tmp_path, "test/1")
    assert state["epoch"] == 1 and torch.equal(state["w"], torch.arange(4096.0))
    assert "checksum mismatch" in capsys.readouterr().err
    flip_tensor_bytes(tmp_path / PREVIOUS)
    from autospace.errors import AutospaceError

    with pytest.raises(AutospaceError, match="no readable checkpoint.*checksum mismatch.*checksum mismatch"):
        load_rotating_checkpoint(tmp_path, "test/1")


# ---- 13. a checkpoint is good only when every tensor in it is finite --------------------------------------

def test_a_non_finite_state_is_never_saved_over_the_last_good_checkpoint(tmp_path):
    save_rotating_checkpoint(tmp_path, {"epoch": 1, "bn.running_var": torch.ones(3)}, "test/1")
    with pytest.raises(NonFiniteStateError, match=r"1 tensors hold inf or NaN \(bn.running_var\).*"
                                                  r"the last good checkpoint is .*checkpoint.pt"):
        save_rotating_checkpoint(tmp_path, {"epoch": 2, "bn.running_var": torch.tensor([1.0, float("inf"), 2.0])},
                                 "test/1")
    assert load_rotating_checkpoint(tmp_path, "test/1")["epoch"] == 1 and not (tmp_path / PREVIOUS).exists()


def test_train_whose_batch_norm_statistics_blow_up_names_a_finite_checkpoint(tmp_path, capsys, monkeypatch):
    from autospace.train import loop

    real_evaluate = loop.evaluate

    def evaluate_then_poison(model, *args, **kwargs):  # epoch 2: running_var overflows, the loss is still finite
        result = real_evaluate(model, *args, **kwargs)
        if evaluate_then_poison.calls == 1:
            for name, buffer in model.named_buffers():
                if name.endswith("running_var"):
                    buffer.fill_(float("inf"))
        evaluate_then_poison.calls += 1
        return result

    evaluate_then_poison.calls = 0
    monkeypatch.setattr(loop, "evaluate", evaluate_then_poison)
    out = tmp_path / "run"
    fails_cleanly(capsys, ["train", ARCH, "--out", out, *TRAIN, "--set", "epochs=3"], "state became non-finite",
                  "running_var", f"the last good checkpoint is {out / NEWEST}", f"--resume {out} --set lr=")
    checkpoint = torch.load(out / NEWEST, weights_only=True)
    assert checkpoint["epoch"] == 1
    assert all(torch.isfinite(value).all() for value in checkpoint["model"].values() if value.is_floating_point())


# ---- 14. --resume may lower the learning rate, and says so in config.yaml ------------------------------------

def test_resume_with_a_lower_learning_rate_is_recorded_with_its_step(tmp_path, capsys, monkeypatch):
    out = tmp_path / "run"
    interrupted_after_checkpoint(monkeypatch, out, 1, 2, "--set", "lr=0.05")
    capsys.readouterr()
    assert main(["train", "--resume", str(out), "--set", "lr=0.01", "--set", "warmup_epochs=0.5"]) == 0
    assert recorded_changes(out) == ["changed on --resume at step 4 (epoch 1): lr 0.05 -> 0.01, "
                                     "warmup_epochs 0.0 -> 0.5"]
    config = load_config(TrainConfig, out / "config.yaml")
    assert config.lr == 0.01 and config.warmup_epochs == 0.5
    records = read_jsonl(out / "metrics.jsonl")
    assert [record["epoch"] for record in records] == [1, 2] and records[1]["lr"] < 0.01 < records[0]["lr"]
    capsys.readouterr()
    fails_cleanly(capsys, ["train", "--resume", out, "--set", "seed=7"], "seed: 0 -> 7", "may change lr, "
                  "warmup_epochs")
