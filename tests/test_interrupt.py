"""A run stopped by SIGTERM exits cleanly, keeps its last checkpoint and resumes to the same result."""

import json
import os
import signal
import subprocess
import sys
import time

TRAIN = ["-m", "autospace", "train", "configs/archs/cifar_small.json", "--data", "synthetic:256,64",
         "--device", "cpu", "--set", "epochs=2", "--set", "batch_size=32", "--set", "progress=false"]


def test_sigterm_then_resume_matches_an_uninterrupted_run(tmp_path):
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    killed, full = tmp_path / "killed", tmp_path / "full"
    process = subprocess.Popen([sys.executable, *TRAIN, "--out", str(killed)], cwd=root,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 120
    while not (killed / "checkpoint.pt").exists() and time.time() < deadline and process.poll() is None:
        time.sleep(0.05)
    process.send_signal(signal.SIGTERM)
    _, error = process.communicate(timeout=120)
    if process.returncode == 0:  # it finished before the signal landed: nothing to test
        return
    assert process.returncode == 130, error
    assert "--resume" in error and "Traceback" not in error
    subprocess.run([sys.executable, "-m", "autospace", "train", "--resume", str(killed)], cwd=root, check=True,
                   capture_output=True)
    subprocess.run([sys.executable, *TRAIN, "--out", str(full)], cwd=root, check=True, capture_output=True)
    assert json.loads((killed / "metrics.json").read_text())["test_top1"] == \
        json.loads((full / "metrics.json").read_text())["test_top1"]
    import torch

    first, second = torch.load(killed / "model.pt"), torch.load(full / "model.pt")
    assert all(torch.equal(first[key], second[key]) for key in first)
