"""Does the order hold with longer training? (issue 28, item 3)

For each budget, the best learned and the best manual network of the paired comparison's rows (the
highest test top-1 of that arm and budget over its seeds) get one final training with the same longer
recipe: by default 45 epochs on the full 50,000 training images, everything else as the comparison's
final training (its seed included). Every finished training appends one row to ROWS (arm, budget, the
source row's seed and 15-epoch top-1, the network, test top-1, MAdds, params, epochs, images, seconds);
a rerun skips finished trainings and resumes an interrupted one from OUT. Prints one JSON line with the
order and the gap per budget.

    OMP_NUM_THREADS=1 python bench/longer_training.py docs/results/space_vs_manual_fair.jsonl \\
        --networks docs/results/space_vs_manual_fair_seed0_networks.jsonl --budget-madds 10M --arms manual \\
        --out runs/longer   # one arm per process, two 1-thread processes at a time
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import replace
from pathlib import Path

import torch

from autospace.arch.codec import arch_from_dict, arch_to_dict
from autospace.cost.units import parse_madds
from autospace.pipeline import load_run_config, stage_configs
from autospace.runtime.atomic import append_jsonl


def read_rows(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()] if path.exists() else []


def with_networks(rows: list[dict], networks: list[dict]) -> list[dict]:
    """`rows` where a row without `arch` takes it from `networks` (same arm, seed and budget)."""
    known = {(network["arm"], network["seed"], network["budget_madds"]): network["arch"] for network in networks}
    return [row if "arch" in row or (row.get("arm"), row["seed"], row["budget_madds"]) not in known
            else {**row, "arch": known[(row["arm"], row["seed"], row["budget_madds"])]} for row in rows]


def best_row(rows: list[dict], arm: str, budget: int) -> dict:
    """The arm's best network at `budget` (highest test top-1; the lower seed on a tie)."""
    members = [row for row in rows if row.get("arm") == arm and row["budget_madds"] == budget]
    if not members:
        raise SystemExit(f"longer_training: no {arm} row at {budget / 1e6:g}M; run bench/space_vs_manual_fair.py first")
    best = max(members, key=lambda row: (row["test_top1"], -row["seed"]))
    if "arch" not in best:
        raise SystemExit(f"longer_training: the best {arm} row at {budget / 1e6:g}M (seed {best['seed']}) holds no "
                         f"`arch`; name a file that holds it with --networks (e.g. "
                         f"docs/results/space_vs_manual_fair_seed0_networks.jsonl)")
    return best


def order_and_gaps(rows: list[dict]) -> dict:
    """Per budget: learned minus manual after the longer training, and before it (the source rows)."""
    result = {}
    for budget in sorted({row["budget_madds"] for row in rows}):
        by_arm = {row["arm"]: row for row in rows if row["budget_madds"] == budget}
        if {"learned", "manual"} <= set(by_arm):
            learned, manual = by_arm["learned"], by_arm["manual"]
            result[str(budget)] = {
                "learned_minus_manual": round(learned["test_top1"] - manual["test_top1"], 2),
                "learned_minus_manual_short": round(learned["source_test_top1"] - manual["source_test_top1"], 2),
                "order_holds": (learned["test_top1"] > manual["test_top1"])
                == (learned["source_test_top1"] > manual["source_test_top1"])}
    return result


def main() -> None:
    from autospace.train import train

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("source", type=Path, help="the paired comparison's rows (bench/space_vs_manual_fair.py)")
    parser.add_argument("--networks", type=Path, action="append", default=[],
                        help="JSONL of {arm, seed, budget_madds, arch} for source rows written without `arch`")
    parser.add_argument("--budget-madds", nargs="+", default=["10M", "20M"])
    parser.add_argument("--arms", nargs="+", default=["learned", "manual"], choices=("learned", "manual", "union"))
    parser.add_argument("--epochs", type=int, default=45)
    parser.add_argument("--train-subset", type=int, default=None, help="training images (default: all of them)")
    parser.add_argument("--config", default="cpu", help="run preset whose final training the longer one extends")
    parser.add_argument("--out", type=Path, default=Path("runs/longer"))
    parser.add_argument("--rows", type=Path, default=None, help="JSONL to append to (default: OUT/rows.jsonl)")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    args = parser.parse_args()
    rows_path = args.rows or args.out / "rows.jsonl"
    source = with_networks(read_rows(args.source), [row for path in args.networks for row in read_rows(path)])

    for budget in sorted(parse_madds(text) for text in args.budget_madds):
        for arm in args.arms:
            if any((row["arm"], row["budget_madds"]) == (arm, budget) for row in read_rows(rows_path)):
                continue
            best = best_row(source, arm, budget)
            run = load_run_config(args.config, [f"seed={best['seed']}", "progress=false", *args.overrides])
            config = replace(stage_configs(run, args.out)[2], epochs=args.epochs, train_subset=args.train_subset)
            folder = args.out / f"{arm}-{budget // 1_000_000}M-seed{best['seed']}"
            network = arch_from_dict(best["arch"])
            started = time.perf_counter()
            metrics = train(network, config, folder, resume=(folder / "config.yaml").exists())
            append_jsonl(rows_path, {
                "bench": "longer_training", "config": args.config, "arm": arm, "budget_madds": budget,
                "seed": best["seed"], "source_test_top1": best["test_top1"], "arch": arch_to_dict(network),
                "epochs": config.epochs, "train_images": metrics["train_images"],
                "test_top1": metrics["test_top1"], "madds": metrics["madds"], "params": metrics["params"],
                "train_seconds": metrics.get("wall_time_s"), "device": metrics.get("device"),
                "torch_version": torch.__version__, "run_dir": str(folder),
                "wall_seconds_this_process": round(time.perf_counter() - started, 1)})
    finished = read_rows(rows_path)
    print(json.dumps({"bench": "longer_training", "rows": str(rows_path), "finished": len(finished),
                      "by_budget": order_and_gaps(finished)}))


if __name__ == "__main__":
    main()
