"""The paper's headline comparison: learned space vs manual space at one budget.

For each seed, runs `autospace run` twice with the same search method and the
same training recipe: once searching in a space evolved by AutoSpace, once in
the manual inverted-residual space. Prints one JSON line with both test
accuracies (mean and standard deviation over seeds), params and MAdds.

    # CPU smoke (quick preset, minutes per run):
    python bench/space_vs_manual.py --budget-madds 15M --seeds 1
    # GPU (full CIFAR-10 preset):
    python bench/space_vs_manual.py --config cifar10 --budget-madds 60M --seeds 3 --device cuda
"""

from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path

from autospace.cost.units import parse_madds
from autospace.pipeline import load_run_config, run_pipeline


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--budget-madds", default="15M")
    parser.add_argument("--seeds", type=int, default=1)
    parser.add_argument("--config", default="quick", help="run preset (configs/run) or YAML path")
    parser.add_argument("--search-method", default="proxyless-g")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--out", default="runs/space_vs_manual")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    args = parser.parse_args()

    budget = parse_madds(args.budget_madds)
    results = {"autospace": [], "manual": []}
    for seed in range(args.seeds):
        for space in results:
            overrides = [f"budget_madds={budget}", f"space_method={space}", f"search_method={args.search_method}",
                         f"seed={seed}", f"device={args.device}", "progress=false", *args.overrides]
            out = Path(args.out) / f"{space}-{args.budget_madds}-seed{seed}"
            resume = (out / "config.yaml").exists()  # a rerun continues where it stopped
            metrics = run_pipeline(load_run_config(out / "config.yaml" if resume else args.config, overrides),
                                   out, resume=resume)
            results[space].append(metrics)

    def summary(runs: list[dict]) -> dict:
        accuracies = [run["test_top1"] for run in runs]
        return {"test_top1_mean": round(statistics.mean(accuracies), 2),
                "test_top1_std": round(statistics.stdev(accuracies), 2) if len(accuracies) > 1 else 0.0,
                "test_top1": accuracies, "params": [run["params"] for run in runs],
                "madds": [run["madds"] for run in runs], "wall_time_s": [run["wall_time_s"] for run in runs]}

    print(json.dumps({"bench": "space_vs_manual", "budget_madds": budget, "search_method": args.search_method,
                      "config": args.config, "seeds": args.seeds, "learned": summary(results["autospace"]),
                      "manual": summary(results["manual"])}))


if __name__ == "__main__":
    main()
