"""Does the search respond to the budget? One space, one seed, several budgets.

A search under a MAdds budget should spend more where it is allowed more. For each budget this
runs the search stage of a run preset (its `search` settings, as `autospace run` would) in one
space and reads what the architecture distributions chose on their own, before fit_to_budget
replaced their argmax by a network within the budget: the expected MAdds and the argmax network,
each against the target. Prints one JSON line: those figures per budget, and whether every budget
ended with the same argmax network (a search blind to the budget, whose found networks differ only
by what the fitting step added). Resumes: a finished search is read, an interrupted one resumed.

    # the manual space of the cpu recipe, as it searches today and with TuNAS's two-sided term:
    python bench/search_budget_response.py --config cpu --space manual --budget-madds 10M 20M \\
        --device cpu --out runs/budget_response/mul-log
    python bench/search_budget_response.py --config cpu --space manual --budget-madds 10M 20M \\
        --device cpu --set search.penalty=absolute --out runs/budget_response/absolute
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import replace
from pathlib import Path

import torch

from autospace.cost.units import parse_madds
from autospace.errors import AutospaceError
from autospace.pipeline import load_run_config, search_initialiser, stage_configs, stage_state
from autospace.runtime.atomic import read_jsonl
from autospace.search import search
from autospace.search.spaces import BUILT_IN_SPACES


def budget_figures(folder: Path) -> dict:
    """What one finished search chose, from its result.json and the last record of search.jsonl."""
    result = json.loads((folder / "result.json").read_text())
    last = read_jsonl(folder / "search.jsonl")[-1]
    target = result["target_madds"]
    return {"target_madds": target,
            "expected_madds": round(last["expected_madds"]),
            "expected_over_target": round(last["expected_madds"] / target, 3),
            "argmax_madds": last["argmax_madds"], "argmax_over_target": round(last["argmax_madds"] / target, 3),
            "argmax": last["argmax"], "found_madds": result["madds"],
            "found_over_target": round(result["madds_over_target"], 3),
            "fitted_to_budget": result.get("fitted_to_budget"),
            "validation_accuracy": result["validation_accuracy"], "wall_seconds": result.get("wall_time_s")}


def summary(per_budget: list[dict]) -> dict:
    """Whether the distributions moved with the budget: the same argmax everywhere says they did not."""
    first, last = per_budget[0], per_budget[-1]
    return {"argmax_identical_across_budgets": all(entry["argmax"] == first["argmax"] for entry in per_budget),
            "budget_ratio": round(last["target_madds"] / first["target_madds"], 3),
            "expected_madds_ratio": round(last["expected_madds"] / first["expected_madds"], 3)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default="quick", help="run preset (configs/run) or YAML path")
    parser.add_argument("--space", default="manual",
                        help=f"a built-in space ({', '.join(BUILT_IN_SPACES)}) or an evolve stage's space.json "
                             "(searched from the DEA supernet beside it when the preset's search has warm_start)")
    parser.add_argument("--budget-madds", nargs="+", default=["10M", "20M"], help="two or more budgets, e.g. 10M 20M")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--search-method", default="proxyless-g", choices=("proxyless-g", "proxyless-rl"))
    parser.add_argument("--device", default="auto")
    parser.add_argument("--out", default="runs/budget_response")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="run-config override, e.g. search.penalty=absolute")
    args = parser.parse_args()
    if len(args.budget_madds) < 2:
        parser.error(f"give two or more budgets to compare (e.g. --budget-madds 10M 20M); got {args.budget_madds}")
    if args.space not in BUILT_IN_SPACES and not Path(args.space).is_file():
        parser.error(f"--space {args.space!r} is neither a built-in space ({', '.join(BUILT_IN_SPACES)}) "
                     "nor an existing space.json file")

    out_root = Path(args.out)
    space_method = "manual" if args.space in BUILT_IN_SPACES else "autospace"
    per_budget = []
    for text in args.budget_madds:
        budget = parse_madds(text)
        config = load_run_config(args.config, [f"budget_madds={budget}", f"space_method={space_method}",
                                               f"search_method={args.search_method}", f"seed={args.seed}",
                                               f"device={args.device}", "progress=false", *args.overrides])
        folder = out_root / f"search-{text}"
        _, search_config, _ = stage_configs(config, folder.parent)
        search_config = replace(search_config, space=args.space)
        state = stage_state(folder, "arch.json")
        if state != "done":
            if search(search_config, folder, resume=state == "resume",
                      initialise_supernet=search_initialiser(search_config)) is None:
                raise AutospaceError(f"the search at {text} stopped before it found a network")
        per_budget.append(budget_figures(folder))

    print(json.dumps({"bench": "search_budget_response", "config": args.config, "space": args.space,
                      "seed": args.seed, "search_method": args.search_method, "overrides": args.overrides,
                      "budgets": per_budget, **summary(per_budget), "device": args.device,
                      "torch_version": torch.__version__}))


if __name__ == "__main__":
    try:
        main()
    except AutospaceError as error:  # bad settings: one line and status 2, as the CLI does
        print(f"search_budget_response: {error}", file=sys.stderr)
        sys.exit(2)
