"""SIGKILL at many points of evolve, search (spos, proxyless-g) and train, then `--resume` until
done: the final outputs equal those of an uninterrupted run.

Every run here is the real CLI in its own process: `autospace.cli.main`, what `python -m
autospace` runs, behind the small launcher below. Kill points:

- deterministic, from inside the process: the launcher wraps `os.replace` and
  `autospace.runtime.atomic.append_jsonl` (in this test only; the library has no hook) and sends
  itself SIGKILL at the k-th checkpoint: after its rename (`checkpoint:k`), between the
  fsync of the new file and its rename (`write:k`: a kill during the checkpoint write), right
  after checkpoint.pt was rotated to checkpoint.prev.pt (`rotate:k`), right after the k-th
  log line (`log:k`, before that line's checkpoint) or in the middle of writing it (`torn:k`);
- from outside: SIGKILL once the process has used a CPU time drawn from a seeded RNG
  (`delay`; CPU time, so that where the kill lands does not depend on the machine's load).

Outputs compared: evolve space.json, space.md and history.jsonl; search arch.json, result.json
and search.jsonl; train metrics.json, metrics.jsonl and every tensor of model.pt; timing
fields (wall time, seconds, images per second, hardware) aside.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
TIMING_KEYS = {"elapsed_seconds", "epoch_seconds", "wall_time_s", "images_per_second", "hardware"}

COMMON = ["--data", "synthetic:128,32", "--device", "cpu", "--set", "progress=false"]
COMMANDS = {
    # 6 steps of 16 images, fitness steps after the first 3, a regeneration every 2: 3 checkpoints.
    "evolve": ["evolve", "--preset", "cifar-small", "--budget-madds", "15M", "--set", "epochs=1",
               "--set", "warmup_epochs=0.5", "--set", "batch_size=16", "--set", "population_size=4",
               "--set", "candidates_per_layer=2", "--set", "top_k=2", "--set", "regenerate_every=2"],
    # 2 supernet epochs, then generations 0..2: 5 checkpoints (one per epoch, one per generation).
    "spos": ["search", "--space", "manual", "--preset", "cifar-small", "--method", "spos", "--target-madds", "14M",
             "--set", "epochs=2", "--set", "warmup_epochs=1", "--set", "batch_size=16", "--set", "population=6",
             "--set", "top=2", "--set", "mutations=3", "--set", "crossovers=3", "--set", "generations=2",
             "--set", "recalibration_batches=1", "--set", "eval_batches=1"],
    # 3 epochs, architecture steps after the first: 3 checkpoints.
    "proxyless-g": ["search", "--space", "manual", "--preset", "cifar-small", "--method", "proxyless-g",
                    "--target-madds", "14M", "--set", "epochs=3", "--set", "warmup_epochs=1",
                    "--set", "batch_size=16", "--set", "arch_every=2", "--set", "arch_lr=0.01",
                    "--set", "recalibration_batches=1"],
    # 4 steps per epoch, 3 epochs: 3 checkpoints.
    "train": ["train", "configs/archs/cifar_small.json", "--set", "epochs=3", "--set", "batch_size=32"],
}
LOGS = {"evolve": "history.jsonl", "spos": "search.jsonl", "proxyless-g": "search.jsonl", "train": "metrics.jsonl"}
CHECKPOINTS = {"evolve": 3, "spos": 5, "proxyless-g": 3, "train": 3}

LAUNCHER = r"""
import os, signal, sys
from pathlib import Path

import autospace.runtime.atomic as atomic

# Ctrl-C semantics even when the test runner was started with SIGINT ignored (a background job).
signal.signal(signal.SIGINT, signal.default_int_handler)

kind, _, number = os.environ.get("AUTOSPACE_TEST_KILL_AT", "").partition(":")
number = int(number or 0)
seen = {"checkpoint": 0, "log": 0}


def die():
    sys.stdout.flush()
    sys.stderr.flush()
    os.kill(os.getpid(), signal.SIGKILL)


real_replace = os.replace


def replace(source, target, *args, **kwargs):
    target_name, source_name = Path(target).name, Path(source).name
    if target_name == "checkpoint.prev.pt" and source_name == "checkpoint.pt":
        real_replace(source, target, *args, **kwargs)
        if kind == "rotate" and seen["checkpoint"] + 1 == number:
            die()  # the newest checkpoint is now .prev; the new one is not written yet
        return
    if target_name == "checkpoint.pt" and source_name.endswith(".tmp"):
        seen["checkpoint"] += 1
        if kind == "write" and seen["checkpoint"] == number:
            die()  # written and synced to a temporary file, not yet renamed
        real_replace(source, target, *args, **kwargs)
        if kind == "checkpoint" and seen["checkpoint"] == number:
            die()
        return
    real_replace(source, target, *args, **kwargs)


os.replace = replace
real_append = atomic.append_jsonl


def append_jsonl(path, record):
    seen["log"] += 1
    if kind == "torn" and seen["log"] == number:
        import json
        line = json.dumps(record) + "\n"
        with open(path, "a", encoding="utf-8") as file:
            file.write(line[: len(line) // 2])
            file.flush()
            os.fsync(file.fileno())
        die()
    real_append(path, record)
    if kind == "log" and seen["log"] == number:
        die()


atomic.append_jsonl = append_jsonl  # before the run modules import it by name

from autospace.cli import main

sys.exit(main(sys.argv[1:]))
"""


def _environment(kill_at: str = "") -> dict:
    # One thread per process: the same for every run compared, and several times faster than
    # two OpenMP threads fighting other processes for two cores.
    environment = dict(os.environ, AUTOSPACE_NO_DOWNLOAD="1", AUTOSPACE_TEST_KILL_AT=kill_at,
                       OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
    environment.pop("AUTOSPACE_DATA", None)  # synthetic data only
    return environment


def _arguments(kind: str, out: Path, resume: bool) -> list[str]:
    if resume:
        return [COMMANDS[kind][0], "--resume", str(out)]
    return [*COMMANDS[kind], *COMMON, "--out", str(out)]


class Run:
    """One CLI process; its output goes to files (no pipe to fill while nobody reads it)."""

    def __init__(self, kind: str, out: Path, resume: bool, kill_at: str = ""):
        out.parent.mkdir(parents=True, exist_ok=True)
        self.what = f"{kind} {kill_at or ('resume' if resume else 'run')} in {out}"
        self.stderr_path = out.parent / f".{out.name}.stderr"
        with open(out.parent / f".{out.name}.stdout", "w") as stdout, open(self.stderr_path, "w") as stderr:
            self.process = subprocess.Popen([sys.executable, "-c", LAUNCHER, *_arguments(kind, out, resume)],
                                            cwd=ROOT, env=_environment(kill_at), stdout=stdout, stderr=stderr)
        self.started = time.monotonic()
        self.code: int | None = None
        self.cpu_seconds = 0.0

    def running(self) -> bool:
        if self.code is None:
            pid, status, usage = os.wait4(self.process.pid, os.WNOHANG)
            if pid:
                self._finished(status, usage)
        return self.code is None

    def cpu_seconds_so_far(self) -> float:
        """CPU time used so far (Linux /proc; else wall time since the start): a moment of the run
        that does not depend on how busy the machine is."""
        try:
            fields = Path(f"/proc/{self.process.pid}/stat").read_text().rsplit(")", 1)[1].split()
            return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
        except (OSError, IndexError, ValueError):
            return time.monotonic() - self.started

    def kill(self) -> None:
        if self.running():
            self.process.send_signal(signal.SIGKILL)

    def wait(self) -> int:
        """The exit status (negative: killed by that signal); a traceback fails the test."""
        if self.code is None:
            _, status, usage = os.wait4(self.process.pid, 0)
            self._finished(status, usage)
        error = self.stderr_path.read_text()
        assert "Traceback" not in error, f"{self.what}:\n{error}"
        return self.code

    def _finished(self, status: int, usage) -> None:
        self.code = os.waitstatus_to_exitcode(status)
        self.process.returncode = self.code
        # One thread: CPU time is the run's length on an idle core, whatever else the machine runs.
        self.cpu_seconds = usage.ru_utime + usage.ru_stime


def _log_lines(kind: str, out: Path) -> int:
    path = out / LOGS[kind]
    return path.read_text(encoding="utf-8").count("\n") if path.exists() else 0


def run_with_kills(kind: str, out: Path, plan: list[str], delays: dict[int, float] | None = None) -> list[str]:
    """Run `kind` into `out`, killed once per entry of `plan` (a kill point of the launcher, or
    "delay" for an outside SIGKILL once the process has used `delays[index]` seconds of CPU),
    resuming after each kill, then resume to the end. Returns what happened at each kill."""
    happened = []
    for index, point in enumerate(plan + [""]):
        resume = (out / "config.yaml").exists()
        if point == "delay":
            run = Run(kind, out, resume)
            deadline = time.monotonic() + 600
            while run.running() and run.cpu_seconds_so_far() < delays[index] and time.monotonic() < deadline:
                time.sleep(0.005)
            finished_first = not run.running()
            run.kill()
            code = run.wait()
            happened.append(f"delay {delays[index]:.2f}s CPU: " + ("finished before the kill" if finished_first else
                                                              f"killed with {_log_lines(kind, out)} log lines"))
            assert code == (0 if finished_first else -signal.SIGKILL), run.stderr_path.read_text()
            continue
        run = Run(kind, out, resume, point)
        code = run.wait()
        if point:
            happened.append(f"{point}: killed with {_log_lines(kind, out)} log lines")
            assert code == -signal.SIGKILL, f"{kind}: the kill point {point} was never reached (exit {code})"
        else:
            assert code == 0, f"{kind}: the final resume failed: {run.stderr_path.read_text()}"
    return happened


def _without_timing(value):
    if isinstance(value, dict):
        return {key: _without_timing(item) for key, item in value.items() if key not in TIMING_KEYS}
    if isinstance(value, list):
        return [_without_timing(item) for item in value]
    return value


def _jsonl(path: Path) -> list:
    return [_without_timing(json.loads(line)) for line in path.read_text(encoding="utf-8").splitlines()]


def final_outputs(kind: str, out: Path) -> dict:
    """Everything a finished run leaves that must not depend on being killed."""
    outputs = {"log": _jsonl(out / LOGS[kind])}
    if kind == "evolve":
        outputs["space.json"] = _without_timing(json.loads((out / "space.json").read_text()))
        outputs["space.md"] = (out / "space.md").read_text()
        outputs["fitness.png"] = (out / "fitness.png").stat().st_size > 0
    elif kind == "train":
        outputs["metrics.json"] = _without_timing(json.loads((out / "metrics.json").read_text()))
        weights = torch.load(out / "model.pt", map_location="cpu", weights_only=True)
        outputs["model.pt"] = {key: tensor.tolist() for key, tensor in weights.items()}
    else:
        outputs["arch.json"] = _without_timing(json.loads((out / "arch.json").read_text()))
        outputs["result.json"] = _without_timing(json.loads((out / "result.json").read_text()))
    leftovers = sorted(path.name for path in out.glob(".*.tmp"))
    assert not leftovers, f"temporary files left after the final resume: {leftovers}"
    assert (out / "checkpoint.pt").exists() and (out / "checkpoint.prev.pt").exists()
    return outputs


class References:
    """Uninterrupted runs of every kind, started together in the background when the module's
    first test starts (they overlap the killed runs on the second core); each is waited for,
    and its outputs read, when a test first needs it."""

    def __init__(self, folder: Path):
        self.folder = folder
        self.runs = {kind: Run(kind, folder / kind, resume=False) for kind in COMMANDS}
        self.outputs: dict[str, tuple[dict, float]] = {}

    def __call__(self, kind: str) -> tuple[dict, float]:
        """The outputs of the uninterrupted run and its length in seconds (CPU time, one thread)."""
        if kind not in self.outputs:
            run = self.runs[kind]
            assert run.wait() == 0, run.stderr_path.read_text()
            self.outputs[kind] = (final_outputs(kind, self.folder / kind), run.cpu_seconds)
        return self.outputs[kind]

    def close(self) -> None:
        for run in self.runs.values():
            if run.running():  # a test failed before it needed this reference
                run.kill()
                run.wait()


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    references = References(tmp_path_factory.mktemp("uninterrupted"))
    yield references
    references.close()


def _check(kind: str, plan: list[str], tmp_path: Path, reference: References, seed: int = 0) -> list[str]:
    expected, seconds = reference(kind)
    # An outside kill lands somewhere inside the run: mostly after start-up (~2 s of CPU), before the end.
    rng = random.Random(seed)
    delays = {index: rng.uniform(0.5 * seconds, 0.95 * seconds) for index, point in enumerate(plan)
              if point == "delay"}
    happened = run_with_kills(kind, tmp_path / "killed", plan, delays)
    print(f"{kind}: " + "; ".join(happened))
    assert final_outputs(kind, tmp_path / "killed") == expected
    return happened


# ---- default: one or two points per kind, each a different way a kill can land ------------------

QUICK_PLANS = {
    "evolve": ["torn:2"],                   # in the middle of the 2nd log line, before its checkpoint
    "spos": ["log:1"],                      # after the 1st log line, before the 1st checkpoint
    "proxyless-g": ["rotate:2", "checkpoint:2"],  # checkpoint 1 rotated to .prev, the 2nd not written;
}                                           # then after the last checkpoint, before arch.json


@pytest.mark.parametrize("kind", list(QUICK_PLANS))
def test_killed_run_resumes_to_the_uninterrupted_outputs(kind, tmp_path, reference):
    _check(kind, QUICK_PLANS[kind], tmp_path, reference)


def test_train_killed_during_a_checkpoint_write_and_at_a_random_moment(tmp_path, reference):
    """A kill inside the write leaves the older checkpoint whole and the new one only as a
    temporary file, never a torn checkpoint.pt; the resumed run, killed again at a random
    moment, still ends with the uninterrupted run's weights and metrics."""
    expected, seconds = reference("train")
    out = tmp_path / "killed"
    assert Run("train", out, resume=False, kill_at="write:2").wait() == -signal.SIGKILL
    assert not (out / "checkpoint.pt").exists() and (out / "checkpoint.prev.pt").exists()
    assert len(list(out.glob(".checkpoint.pt.*.tmp"))) == 1
    assert torch.load(out / "checkpoint.prev.pt", weights_only=True)["epoch"] == 1
    delay = random.Random(7).uniform(0.5 * seconds, 0.95 * seconds)
    print("train: write:2: killed;", *run_with_kills("train", out, ["delay"], {0: delay}))
    assert final_outputs("train", out) == expected


def test_sigint_stops_cleanly_and_resumes_to_the_uninterrupted_outputs(tmp_path, reference):
    """Ctrl-C after the first checkpoint: exit status 130, a one-line hint to --resume, no
    traceback; the resumed run ends where an uninterrupted one does (SIGTERM: test_interrupt.py)."""
    expected, _ = reference("train")
    out = tmp_path / "interrupted"
    run = Run("train", out, resume=False)
    deadline = time.monotonic() + 300
    while not (out / "checkpoint.pt").exists() and run.running() and time.monotonic() < deadline:
        time.sleep(0.01)
    run.process.send_signal(signal.SIGINT)
    assert run.wait() == 130
    error = run.stderr_path.read_text().strip()
    assert error == f"autospace: interrupted; the last checkpoint is kept; continue with --resume {out}"
    assert Run("train", out, resume=True).wait() == 0
    assert final_outputs("train", out) == expected


# ---- slow: every checkpoint of every kind, several kills in one run, random delays ------------

def _thorough_plan(kind: str) -> list[str]:
    """Every way a kill can land, at every checkpoint, one after the other in one run folder (a
    resumed process counts its own writes and lines from 1: "k=1" is the next checkpoint)."""
    plan = []
    for number in range(1, CHECKPOINTS[kind] + 1):
        plan += ["log:1", "torn:1"] + (["rotate:1"] if number > 1 else []) + ["write:1", "checkpoint:1"]
    return plan


@pytest.mark.slow
@pytest.mark.parametrize("kind", list(COMMANDS))
def test_killed_at_every_checkpoint_resumes_to_the_uninterrupted_outputs(kind, tmp_path, reference):
    _check(kind, _thorough_plan(kind), tmp_path, reference, seed=11)


@pytest.mark.slow
@pytest.mark.parametrize("seed", [1, 2, 3])
@pytest.mark.parametrize("kind", list(COMMANDS))
def test_killed_at_random_delays_resumes_to_the_uninterrupted_outputs(kind, seed, tmp_path, reference):
    _check(kind, ["delay", "delay", "delay"], tmp_path, reference, seed=seed)
