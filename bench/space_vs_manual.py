"""The paper's headline comparison: learned space vs manual space, at one or more budgets.

For each budget and seed, runs `autospace run` twice with the same search
method and the same training recipe: once searching in a space evolved by
AutoSpace, once in the manual inverted-residual space. Every finished run
appends one JSON row to OUT/rows.jsonl (budget, space, seed, test top-1,
params, MAdds, wall seconds per stage, device, versions); a rerun skips the
runs already there and resumes an interrupted one. Prints one JSON line
with, per budget, both spaces' test accuracies (mean and standard deviation
over seeds). `--markdown FILE` also writes the results table
(bench/results_table.py) for docs/RESULTS.md.

    # CPU smoke (quick preset, minutes per run):
    python bench/space_vs_manual.py --budget-madds 15M --seeds 1
    # GPU, issue 6 target 4 (one H100; 12 runs of configs/run/gpu.yaml):
    python bench/space_vs_manual.py --config gpu --budget-madds 30M 90M --seeds 3 --device cuda \\
        --out runs/space_vs_manual --markdown runs/space_vs_manual/table.md
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))  # results_table.py beside this file

from autospace.runtime.atomic import append_jsonl, atomic_write_text, read_optional_json  # noqa: E402
from autospace.cost.units import parse_madds  # noqa: E402
from autospace.pipeline import load_run_config, run_pipeline  # noqa: E402
from autospace.report.manual_reference import recipe_of  # noqa: E402
from autospace.report.markdown import read_optional_yaml, stage_times  # noqa: E402
from results_table import markdown_table, read_rows  # noqa: E402


def run_row(out: Path, config, budget: int, space: str, seed: int, recipe: str, metrics: dict) -> dict:
    """One finished run as a row of rows.jsonl."""
    result = read_optional_json(out / "search" / "result.json") or {}
    space_metadata = (read_optional_json(out / "evolve" / "space.json") or {}).get("metadata", {})
    diagnostics = space_metadata.get("fitness_diagnostics") or {}
    hardware = read_optional_json(out / "hardware.json") or metrics.get("hardware") or {}
    stages = {stage: (None if value is None else round(value, 1)) for stage, value in stage_times(out).items()}
    return {
        "bench": "space_vs_manual", "config": recipe, "search_method": config.search_method,
        "budget_madds": budget, "space_method": space, "seed": seed, "data": config.data,
        "test_top1": metrics["test_top1"], "params": metrics["params"], "madds": metrics["madds"],
        "madds_over_target": result.get("madds_over_target"), "within_budget": result.get("within_budget"),
        "argmax_madds": result.get("argmax_madds"), "fitted_to_budget": result.get("fitted_to_budget"),
        "validation_accuracy": result.get("validation_accuracy"),
        "evolve_heldout_top1": diagnostics.get("heldout_top1"), "fitness_persistence": diagnostics.get("persistence"),
        "fitness_noise_warning": bool(diagnostics.get("warning")),
        "space_uniform_mean_over_budget": (space_metadata.get("space_madds") or {}).get("uniform_mean_over_budget"),
        "stage_seconds": stages, "total_seconds": round(sum(value for value in stages.values() if value), 1),
        "device": hardware.get("device_name", metrics.get("device")), "precision": metrics.get("precision"),
        "train_compile": metrics.get("compile"), "torch_version": hardware.get("torch_version", torch.__version__),
        "cuda_version": hardware.get("cuda_version"), "run_dir": str(out),
        # what a learned run's report matches its manual reference on (report/manual_reference.py)
        "recipe": recipe_of(read_optional_yaml(out / "config.yaml") or {}),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--budget-madds", nargs="+", default=["15M"], help="one or more budgets, e.g. 30M 90M")
    parser.add_argument("--seeds", type=int, default=1, help="seeds 0..N-1 per budget and space")
    parser.add_argument("--seed-ids", type=int, nargs="+", default=None, metavar="SEED",
                        help="run only these seeds (overrides --seeds); lets separate processes share the work")
    parser.add_argument("--config", default="quick", help="run preset (configs/run) or YAML path")
    parser.add_argument("--search-method", default="proxyless-g")
    parser.add_argument("--spaces", nargs="+", default=["autospace", "manual"], choices=("autospace", "manual"),
                        help="space methods to compare (default both)")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--precision", default="auto")
    parser.add_argument("--out", default="runs/space_vs_manual")
    parser.add_argument("--rows", default=None, help="JSONL of finished runs (default OUT/rows.jsonl)")
    parser.add_argument("--markdown", default=None, metavar="FILE", help="also write the results table here")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    parser.add_argument("--label", default=None,
                        help="recipe name in the rows and the table (default: --config, marked when --set is used)")
    args = parser.parse_args()
    seeds = args.seed_ids if args.seed_ids is not None else list(range(args.seeds))
    recipe = args.label or (args.config if not args.overrides else f"{args.config}+set")

    out_root = Path(args.out)
    rows_path = Path(args.rows) if args.rows else out_root / "rows.jsonl"
    rows = read_rows(rows_path) if rows_path.exists() else []
    budgets = [parse_madds(text) for text in args.budget_madds]
    results: dict[int, dict[str, list[dict]]] = {}
    for budget, budget_text in zip(budgets, args.budget_madds):
        results[budget] = {space: [] for space in args.spaces}
        for seed in seeds:
            for space in args.spaces:
                key = (recipe, args.search_method, budget, space, seed)
                done = [row for row in rows if (row.get("config"), row.get("search_method"), row["budget_madds"],
                                                row["space_method"], row["seed"]) == key]
                if done:
                    results[budget][space].append(done[-1])
                    continue
                overrides = [f"budget_madds={budget}", f"space_method={space}",
                             f"search_method={args.search_method}", f"seed={seed}", f"device={args.device}",
                             f"precision={args.precision}", "progress=false", *args.overrides]
                out = out_root / f"{space}-{budget_text}-seed{seed}"
                resume = (out / "config.yaml").exists()  # a rerun continues where it stopped
                config = load_run_config(out / "config.yaml" if resume else args.config, [] if resume else overrides)
                metrics = run_pipeline(config, out, resume=resume)
                row = run_row(out, config, budget, space, seed, recipe, metrics)
                rows_path.parent.mkdir(parents=True, exist_ok=True)
                append_jsonl(rows_path, row)
                rows.append(row)
                results[budget][space].append(row)

    def summary(runs: list[dict]) -> dict:
        accuracies = [run["test_top1"] for run in runs]
        return {"test_top1_mean": round(statistics.mean(accuracies), 2) if accuracies else None,
                "test_top1_std": round(statistics.stdev(accuracies), 2) if len(accuracies) > 1 else 0.0,
                "test_top1": accuracies, "params": [run["params"] for run in runs],
                "madds": [run["madds"] for run in runs], "total_seconds": [run["total_seconds"] for run in runs]}

    names = {"autospace": "learned", "manual": "manual"}
    per_budget = []
    for budget, by_space in results.items():
        entry = {"budget_madds": budget, **{names[space]: summary(runs) for space, runs in by_space.items()}}
        if "learned" in entry and "manual" in entry and entry["learned"]["test_top1"] and entry["manual"]["test_top1"]:
            entry["learned_minus_manual"] = round(entry["learned"]["test_top1_mean"]
                                                  - entry["manual"]["test_top1_mean"], 2)
        per_budget.append(entry)
    if args.markdown:
        Path(args.markdown).parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(Path(args.markdown), markdown_table(rows))
    print(json.dumps({"bench": "space_vs_manual", "config": args.config, "recipe": recipe,
                      "search_method": args.search_method, "seeds": args.seed_ids or args.seeds, "budgets": per_budget,
                      "rows": str(rows_path),
                      "markdown": args.markdown, "device": rows[-1].get("device") if rows else None,
                      "torch_version": torch.__version__}))


if __name__ == "__main__":
    main()
