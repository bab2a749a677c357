"""Does a refactoring change what runs? The same seeded jobs under two checkouts, file by file. One JSON line.

Runs, on synthetic data and the CPU, a seeded DEA evolve, an NSE evolve, the three searches
(proxyless-g, proxyless-rl, spos) in the manual space and a train of the found network, each through
the CLI of a checkout (`--tree`, imported by `python -m autospace` with the tree first on the path),
into OUT/<tree name>/. Then compares the two trees' outputs: every file by name, JSON/JSONL/YAML by
value with the wall-clock fields left out (`elapsed_seconds`, `wall_time_s`, times, dates, hardware),
checkpoints by loading them and comparing every tensor exactly, pictures by bytes. Prints the
number of files compared and the names of those that differ.

    python bench/layout_identity.py --before /tmp/before --after . --out runs/layout_identity
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

QUICK = ["--device", "cpu", "--set", "progress=false"]
DATA = ["--data", "synthetic:128,32"]
TINY_SEARCH = ["--set", "epochs=1", "--set", "warmup_epochs=0.5", "--set", "batch_size=16",
               "--set", "population=4", "--set", "top=2", "--set", "mutations=2", "--set", "crossovers=2",
               "--set", "generations=1", "--set", "recalibration_batches=1", "--set", "eval_batches=1"]
JOBS = {
    "dea": ["evolve", "--method", "autospace", "--preset", "cifar-small", "--budget-madds", "15M", "--seed", "3",
            "--set", "epochs=1", "--set", "warmup_epochs=0.5", "--set", "batch_size=16",
            "--set", "population_size=4", "--set", "candidates_per_layer=2", "--set", "top_k=2",
            "--set", "regenerate_every=2", *DATA, *QUICK],
    "nse": ["evolve", "--method", "nse", "--preset", "cifar-small", "--budget-madds", "15M", "--seed", "3",
            "--set", "rounds=1", "--set", "epochs_per_round=1", "--set", "batch_size=8", "--set", "subset_size=2",
            "--set", "samples=2", "--set", "sample_draws=5", "--set", "recalibration_batches=1",
            "--set", "eval_batches=1", *DATA, *QUICK],
    **{f"search-{method}": ["search", "--space", "manual", "--preset", "cifar-small", "--method", method,
                            "--target-madds", "14M", "--seed", "3", *TINY_SEARCH, *DATA, *QUICK]
       for method in ("proxyless-g", "proxyless-rl", "spos")},
    "train": ["train", "OUT/search-spos/arch.json", "--seed", "3", "--set", "epochs=1", "--set", "batch_size=16",
              *DATA, *QUICK],
}
CLOCK_KEYS = {"elapsed_seconds", "wall_time_s", "wall_seconds", "time", "timestamp", "date", "started", "finished",
              "hardware", "images_per_second", "img_per_s", "throughput", "stage_seconds", "total_seconds",
              "rescore_s", "naswot_s", "latency_ms", "duration_s", "seconds"}


def run_jobs(tree: Path, out: Path) -> None:
    environment = dict(os.environ, PYTHONPATH=str(tree.resolve()), OMP_NUM_THREADS="1",
                       AUTOSPACE_NO_DOWNLOAD="1", AUTOSPACE_CACHE=str(out / ".cache"))
    where = subprocess.run([sys.executable, "-c", "import autospace; print(autospace.__file__)"], env=environment,
                           cwd=tree, check=True, capture_output=True, text=True).stdout.strip()
    if not Path(where).resolve().is_relative_to(tree.resolve()):
        raise SystemExit(f"python imports autospace from {where}, not from {tree}")
    for name, argv in JOBS.items():
        target = out / name
        if (target / ".done").exists():
            continue
        argv = [str(out) + arg[3:] if arg.startswith("OUT/") else arg for arg in argv]
        subprocess.run([sys.executable, "-m", "autospace", *argv, "--out", str(target)], env=environment,
                       check=True, cwd=tree, stdout=subprocess.DEVNULL)
        (target / ".done").write_text("")


def without_clock(value):
    if isinstance(value, dict):
        return {key: without_clock(item) for key, item in value.items()
                if not (isinstance(key, str) and (key in CLOCK_KEYS or key.endswith(("_seconds", "_time", "_at"))))}
    if isinstance(value, list):
        return [without_clock(item) for item in value]
    return value


def comparable(path: Path):
    import torch
    import yaml

    if path.suffix == ".json":
        return without_clock(json.loads(path.read_text()))
    if path.suffix == ".jsonl":
        return [without_clock(json.loads(line)) for line in path.read_text().splitlines() if line.strip()]
    if path.suffix in (".yaml", ".yml"):
        return without_clock(yaml.safe_load(path.read_text()))
    if path.suffix == ".pt":
        return without_clock(torch.load(path, map_location="cpu", weights_only=False))
    return path.read_bytes()


def equal(a, b) -> bool:
    import torch

    if isinstance(a, torch.Tensor) or isinstance(b, torch.Tensor):
        return isinstance(a, torch.Tensor) and isinstance(b, torch.Tensor) and a.dtype == b.dtype \
            and a.shape == b.shape and torch.equal(a, b)
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(equal(a[key], b[key]) for key in a)
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return len(a) == len(b) and all(equal(x, y) for x, y in zip(a, b))
    return a == b


def compare(before: Path, after: Path) -> dict:
    files = lambda root: {p.relative_to(root) for p in root.rglob("*")  # noqa: E731
                          if p.is_file() and ".cache" not in p.parts and p.name not in (".done", "run.lock")
                          and p.suffix not in (".log", ".lock")}
    names_before, names_after = files(before), files(after)
    common = sorted(names_before & names_after)
    different = [str(name) for name in common if not equal(comparable(before / name), comparable(after / name))]
    return {"compared": len(common), "only_before": sorted(map(str, names_before - names_after)),
            "only_after": sorted(map(str, names_after - names_before)), "different": different}


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--before", required=True, help="checkout before the change")
    parser.add_argument("--after", required=True, help="checkout after the change")
    parser.add_argument("--out", required=True)
    args = parser.parse_args(argv)
    out = Path(args.out).resolve()
    for label, tree in (("before", args.before), ("after", args.after)):
        run_jobs(Path(tree), out / label)
    commit = lambda tree: subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=tree,  # noqa: E731
                                         capture_output=True, text=True).stdout.strip() or None
    row = {"bench": "layout_identity", "before": str(args.before), "after": str(args.after),
           "before_commit": commit(args.before), "after_commit": commit(args.after), "jobs": list(JOBS),
           **compare(out / "before", out / "after")}
    print(json.dumps(row))
    return row


if __name__ == "__main__":
    main()
