"""bench/layout_identity.py: the before/after comparison ignores the clock and nothing else."""

import importlib.util
import json
from pathlib import Path

import torch

BENCH = Path(__file__).resolve().parents[1] / "bench" / "layout_identity.py"


def load_bench():
    spec = importlib.util.spec_from_file_location("layout_identity", BENCH)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def write_run(root: Path, loss: float, seconds: float, weight: float) -> None:
    (root / "job").mkdir(parents=True)
    (root / "job" / "result.json").write_text(json.dumps({"loss": loss, "wall_time_s": seconds,
                                                          "nested": {"elapsed_seconds": seconds, "steps": 3}}))
    (root / "job" / "history.jsonl").write_text(json.dumps({"step": 1, "elapsed_seconds": seconds}) + "\n")
    torch.save({"weights": torch.tensor([1.0, weight]), "elapsed_seconds": seconds, 0: "int keys too"},
               root / "job" / "checkpoint.pt")


def test_clock_fields_are_ignored_and_every_other_difference_is_found(tmp_path):
    bench = load_bench()
    write_run(tmp_path / "a", loss=0.5, seconds=10.0, weight=2.0)
    write_run(tmp_path / "b", loss=0.5, seconds=99.0, weight=2.0)
    write_run(tmp_path / "c", loss=0.25, seconds=10.0, weight=2.0 + 1e-6)  # one float32 step is 2.4e-7 here
    same = bench.compare(tmp_path / "a", tmp_path / "b")
    assert same["compared"] == 3 and same["different"] == []
    assert bench.compare(tmp_path / "a", tmp_path / "c")["different"] == ["job/checkpoint.pt", "job/result.json"]
    (tmp_path / "b" / "job" / "extra.json").write_text("{}")
    assert bench.compare(tmp_path / "a", tmp_path / "b")["only_after"] == ["job/extra.json"]
