"""The learned-vs-manual results table (Markdown) from bench/space_vs_manual.py's rows.

Each row of the JSONL file is one finished `autospace run` (one budget, one
space, one seed). Rows are grouped by (recipe, search method, budget, space);
each group gives mean and standard deviation of test top-1 over its seeds,
the found networks' MAdds (mean and per seed) and params (and, where a search's argmax was over the
budget and `fit_to_budget` took the most probable network within it, the
argmax's MAdds and how many seeds), and the mean wall time per stage. The
learned row also gives its difference to the manual row of the same budget.

    python bench/results_table.py runs/space_vs_manual/rows.jsonl > table.md
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path

SPACE_NAMES = {"autospace": "learned (AutoSpace DEA)", "nse": "learned (NSE)", "manual": "manual (IRB k3/5/7 e3/6)",
               "learned": "learned (AutoSpace DEA)", "union": "union (learned + manual blocks)"}


def read_rows(path: str | Path) -> list[dict]:
    rows = []
    for number, line in enumerate(Path(path).read_text().splitlines(), 1):
        if line.strip():
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError as error:
                raise SystemExit(f"{path}:{number}: not a JSON line ({error}); fix or delete that line") from None
    return rows


def _mean(values: list) -> float | None:
    values = [value for value in values if value is not None]
    return statistics.mean(values) if values else None


def _millions(value: float | None, digits: int) -> str:
    return "-" if value is None else f"{value / 1e6:.{digits}f}M"


def _minutes(seconds: float | None) -> str:
    return "-" if seconds is None else f"{seconds / 60:.1f}"


def summarise(rows: list[dict]) -> list[dict]:
    """One summary per (config, search_method, budget, space), sorted by budget then space (learned first)."""
    groups: dict[tuple, list[dict]] = {}
    for row in rows:
        key = (row.get("config"), row.get("search_method"), row["budget_madds"], row.get("arm") or row["space_method"])
        groups.setdefault(key, []).append(row)
    summaries = []
    for (config, method, budget, space), members in groups.items():
        members = sorted(members, key=lambda row: row["seed"])
        accuracies = [row["test_top1"] for row in members]
        stages = {stage: _mean([(row.get("stage_seconds") or {}).get(stage) for row in members])
                  for stage in ("evolve", "search", "train")}
        summaries.append({
            "config": config, "search_method": method, "budget_madds": budget, "space_method": space,
            "seeds": [row["seed"] for row in members], "test_top1": accuracies,
            "test_top1_mean": statistics.mean(accuracies),
            "test_top1_std": statistics.stdev(accuracies) if len(accuracies) > 1 else 0.0,
            "madds_mean": _mean([row.get("madds") for row in members]),
            "madds": [row.get("madds") for row in members],
            # Runs whose argmax lay outside the budget band and which returned the most probable network in it.
            "fitted": sum(1 for row in members if row.get("fitted_to_budget")),
            "argmax_madds_mean": _mean([row.get("argmax_madds") for row in members]),
            "params_mean": _mean([row.get("params") for row in members]),
            "stage_seconds_mean": stages,
            "devices": sorted({str(row.get("device")) for row in members}),
        })
    summaries.sort(key=lambda item: (str(item["config"]), str(item["search_method"]), item["budget_madds"],
                                     item["space_method"] == "manual", item["space_method"]))
    return summaries


def _fitted_note(item: dict) -> str:
    """' (argmax 21.1M, fitted 3/3)' when some seeds' argmax lay outside [budget_floor, 1] x the budget
    and the search returned the most probable network inside (fit_to_budget)."""
    if not item["fitted"]:
        return ""
    return f" (argmax {_millions(item['argmax_madds_mean'], 1)}, fitted {item['fitted']}/{len(item['seeds'])})"


def markdown_table(rows: list[dict], manual_recipe: str | None = None) -> str:
    """`manual_recipe`: compare every learned row with that recipe's manual rows (for learned-space
    variants that change only evolve settings, which the manual space never reads), except where the
    learned row's own recipe has manual rows (a variant that also changes the search or training)."""
    summaries = summarise(rows)
    manual = {(item["config"], item["search_method"], item["budget_madds"]): item["test_top1_mean"]
              for item in summaries if item["space_method"] == "manual"}
    lines = ["| recipe | search | budget | space | seeds | test top-1 % (mean ± std) | per seed | vs manual "
             "| found MAdds | MAdds per seed | params | evolve / search / train (min, mean) | device |",
             "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    for item in summaries:
        own = (item["config"], item["search_method"], item["budget_madds"])
        reference = manual.get(own, manual.get((manual_recipe or item["config"],) + own[1:]))
        difference = ("-" if reference is None or item["space_method"] == "manual"
                      else f"{item['test_top1_mean'] - reference:+.2f}")
        stages = item["stage_seconds_mean"]
        lines.append(
            f"| {item['config']} | {item['search_method']} | {item['budget_madds'] / 1e6:.0f}M "
            f"| {SPACE_NAMES.get(item['space_method'], item['space_method'])} | {len(item['seeds'])} "
            f"| {item['test_top1_mean']:.2f} ± {item['test_top1_std']:.2f} "
            f"| {', '.join(f'{value:.2f}' for value in item['test_top1'])} | {difference} "
            f"| {_millions(item['madds_mean'], 1)}{_fitted_note(item)} "
            f"| {', '.join(_millions(value, 2) for value in item['madds'])} | {_millions(item['params_mean'], 2)} "
            f"| {_minutes(stages['evolve'])} / {_minutes(stages['search'])} / {_minutes(stages['train'])} "
            f"| {', '.join(item['devices'])} |")
    return "\n".join(lines) + "\n"


# Two-sided 95% quantiles of Student's t for 1..30 degrees of freedom (beyond: the normal's 1.96).
T_975 = (12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179, 2.160, 2.145, 2.131,
         2.120, 2.110, 2.101, 2.093, 2.086, 2.080, 2.074, 2.069, 2.064, 2.060, 2.056, 2.052, 2.048, 2.045, 2.042)


def arm_of(row: dict) -> str:
    """A row's arm (issue 28): its `arm` field, else its space method (autospace rows are the learned arm)."""
    return row.get("arm") or {"autospace": "learned"}.get(row["space_method"], row["space_method"])


def paired_difference(rows: list[dict], first: str, second: str, budget: int) -> dict | None:
    """Mean test top-1 difference first - second over the seeds both arms finished at `budget`, its 95%
    confidence interval (t distribution over the seed pairs) and how many seeds `first` won."""
    by_arm: dict[str, dict[int, float]] = {first: {}, second: {}}
    for row in rows:
        if row["budget_madds"] == budget and arm_of(row) in by_arm:
            by_arm[arm_of(row)][row["seed"]] = row["test_top1"]
    seeds = sorted(set(by_arm[first]) & set(by_arm[second]))
    if not seeds:
        return None
    differences = [by_arm[first][seed] - by_arm[second][seed] for seed in seeds]
    mean = statistics.mean(differences)
    half = None
    if len(differences) > 1:
        quantile = T_975[len(differences) - 2] if len(differences) - 1 <= len(T_975) else 1.96
        half = quantile * statistics.stdev(differences) / len(differences) ** 0.5
    return {"first": first, "second": second, "budget_madds": budget, "seeds": seeds, "differences": differences,
            "mean": mean, "ci95": None if half is None else (mean - half, mean + half),
            "wins": sum(1 for value in differences if value > 0)}


def paired_table(rows: list[dict], pairs=(("learned", "manual"), ("union", "manual"), ("learned", "union"))) -> str:
    """Per budget and pair of arms: the mean paired difference, its 95% interval and the seeds won."""
    lines = ["| budget | arms | seeds | mean difference (points) | 95% interval | won | per seed |",
             "| --- | --- | --- | --- | --- | --- | --- |"]
    for budget in sorted({row["budget_madds"] for row in rows}):
        for first, second in pairs:
            result = paired_difference(rows, first, second, budget)
            if result is None:
                continue
            interval = "-" if result["ci95"] is None else f"[{result['ci95'][0]:+.2f}, {result['ci95'][1]:+.2f}]"
            lines.append(f"| {budget / 1e6:.0f}M | {first} - {second} | {len(result['seeds'])} | {result['mean']:+.2f} "
                         f"| {interval} | {result['wins']}/{len(result['seeds'])} "
                         f"| {', '.join(f'{value:+.2f}' for value in result['differences'])} |")
    return "\n".join(lines) + "\n"


def network_listings(rows: list[dict]) -> str:
    """Per-layer listing of every found network whose row carries its architecture (issue 28's rows)."""
    from autospace.arch.codec import arch_from_dict
    from autospace.report.markdown import network_layer_table

    parts = []
    for row in sorted((row for row in rows if row.get("arch")), key=lambda r: (r["budget_madds"], arm_of(r), r["seed"])):
        parts += [f"{arm_of(row)}, {row['budget_madds'] / 1e6:.0f}M, seed {row['seed']}: {row['test_top1']:.2f}% at "
                  f"{row['madds'] / 1e6:.2f}M MAdds, {row['params']:,} params", "",
                  *network_layer_table(arch_from_dict(row["arch"])), ""]
    return "\n".join(parts)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("rows", help="JSONL rows written by bench/space_vs_manual.py (OUT/rows.jsonl)")
    parser.add_argument("--manual-recipe", default=None, metavar="RECIPE",
                        help="compare every learned row with this recipe's manual rows (learned variants that "
                             "change only evolve settings share the manual rows); a recipe with manual rows "
                             "of its own is compared with those")
    args = parser.parse_args()
    rows = read_rows(args.rows)
    sys.stdout.write(markdown_table(rows, args.manual_recipe))
    if any("arm" in row for row in rows):  # issue 28's paired arms
        sys.stdout.write("\n" + paired_table(rows))
        listings = network_listings(rows)
        if listings:
            sys.stdout.write("\n" + listings)


if __name__ == "__main__":
    main()
