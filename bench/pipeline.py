"""Wall time of the whole `autospace run` (evolve + search + train), split per stage.

Runs the pipeline at one budget and prints ONE JSON line: each stage's wall
seconds as the stage logged them (`stage_seconds`: evolve space.json,
search result.json, train metrics.json) and as the clock saw them from the
files' completion times (`stage_wall_seconds`: data loading, set-up and
compilation included), the total, the final test accuracy, the found
network's MAdds against the target, the device and the versions. The same
line is written to RUN/bench.json. Issue 6 target 3: <= 15 minutes (900 s)
in total on one H100 at 60M MAdds.

    # GPU (one H100): the full CIFAR-10 copy, configs/run/gpu.yaml
    python bench/pipeline.py --config gpu --budget-madds 60M --out runs/bench-pipeline
    # CPU smoke (synthetic data, tiny settings; tens of seconds):
    python bench/pipeline.py --smoke --device cpu --out /tmp/bench-pipeline
    # anything else: --set KEY=VALUE as for `autospace run` (evolve.KEY, search.KEY, train.KEY)

A rerun with --resume continues an interrupted run (e.g. one stopped by a
per-command time limit: `timeout 570 python bench/pipeline.py ...`, then
`python bench/pipeline.py --resume --out SAME`); its stage_wall_seconds and
total_wall_s then cover only what this process ran, while stage_seconds and
total_stage_seconds (kept in the stages' checkpoints) cover the whole run.
"""

from __future__ import annotations

import argparse
import json
import time
from datetime import datetime
from pathlib import Path

import torch

from autospace.runtime.atomic import atomic_write_json, read_optional_json
from autospace.cost.units import parse_madds
from autospace.pipeline import load_run_config, run_pipeline
from autospace.report.markdown import stage_times

# Settings for a CPU smoke run on synthetic data (seconds per stage): the pipeline's
# code paths, not its results.
SMOKE = [
    "data=synthetic:160,32", "progress=false",
    "evolve.preset=cifar-small", "evolve.epochs=1", "evolve.batch_size=16", "evolve.population_size=3",
    "evolve.candidates_per_layer=2", "evolve.top_k=2", "evolve.regenerate_every=2",
    "search.epochs=1", "search.warmup_epochs=0", "search.batch_size=16", "search.arch_every=1",
    "search.recalibration_batches=1", "search.eval_batches=1",
    "train.epochs=1", "train.batch_size=16", "train.warmup_epochs=0.5", "train.eval_batch_size=16",
]

STAGE_OUTPUTS = {"evolve": "evolve/space.json", "search": "search/arch.json", "train": "train/metrics.json"}


def wall_seconds_from_files(out: Path, started: float) -> dict[str, float | None]:
    """Per stage: completion time of its output minus that of the stage before (the first: minus `started`)."""
    seconds, previous = {}, started
    for stage, output in STAGE_OUTPUTS.items():
        path = out / output
        if not path.exists() or path.stat().st_mtime < started:
            seconds[stage] = None  # skipped (manual space) or done by an earlier process
            continue
        finished = path.stat().st_mtime
        seconds[stage] = round(finished - previous, 1)
        previous = finished
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default="gpu", help="run preset (configs/run) or YAML path")
    parser.add_argument("--budget-madds", default=None, help="MAdds budget (default: the preset's)")
    parser.add_argument("--data", default=None, help="data set (default: the preset's, cifar10)")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--precision", default="auto")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default=None, help="run folder (default runs/bench-pipeline-<time>)")
    parser.add_argument("--resume", action="store_true", help="continue the run in --out")
    parser.add_argument("--smoke", action="store_true", help="tiny settings on synthetic data (CPU check)")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    args = parser.parse_args()

    out = Path(args.out or f"runs/bench-pipeline-{datetime.now():%Y%m%d-%H%M%S}")
    overrides = [f"device={args.device}", f"precision={args.precision}", f"seed={args.seed}", "progress=false"]
    if args.smoke:
        overrides += SMOKE + ["budget_madds=14000000"]
    if args.budget_madds is not None:
        overrides.append(f"budget_madds={parse_madds(args.budget_madds)}")
    if args.data is not None:
        overrides.append(f"data={args.data}")
    overrides += args.overrides
    config = load_run_config(out / "config.yaml" if args.resume else args.config, [] if args.resume else overrides)

    started = time.time()
    clock = time.perf_counter()
    metrics = run_pipeline(config, out, resume=args.resume)
    total_wall = time.perf_counter() - clock

    logged = stage_times(out)
    result = read_optional_json(out / "search" / "result.json") or {}
    hardware = read_optional_json(out / "hardware.json") or metrics.get("hardware") or {}
    line = {
        "bench": "pipeline", "config": str(args.config), "smoke": args.smoke,
        "data": config.data, "space_method": config.space_method, "search_method": config.search_method,
        "budget_madds": config.budget_madds, "found_madds": result.get("madds"),
        "madds_over_target": result.get("madds_over_target"), "params": metrics.get("params"),
        "test_top1": metrics.get("test_top1"),
        "stage_seconds": {stage: (None if value is None else round(value, 1)) for stage, value in logged.items()},
        "stage_wall_seconds": wall_seconds_from_files(out, started),
        "total_stage_seconds": round(sum(value for value in logged.values() if value), 1),
        "total_wall_s": round(total_wall, 1),
        "total_minutes": round(total_wall / 60, 2),
        "within_15_minutes": (total_wall if not args.resume else sum(v for v in logged.values() if v)) <= 900,
        "train_images_per_s": metrics.get("images_per_second"), "train_compile": metrics.get("compile"),
        "precision": metrics.get("precision"), "seed": config.seed, "resumed": args.resume,
        "device": hardware.get("device_name", metrics.get("device")), "torch_version": torch.__version__,
        "cuda_version": torch.version.cuda, "hardware": hardware, "run_dir": str(out),
    }
    atomic_write_json(out / "bench.json", line)
    print(json.dumps(line))


if __name__ == "__main__":
    main()
