"""What the manual space gives under a run's own recipe: the comparison a learned space's report owes.

The main job has no time to search the manual space too, so its report reads a committed reference:
rows that `bench/space_vs_manual.py --spaces manual` measured and appended, unedited, to
`docs/results/manual_reference.jsonl`. A row is used only when its recipe equals the run's: the
same data, budget, search method and the same search and train settings, apart from what names
the space and where and how the run ran (`recipe_of`). A run of another recipe gets no comparison,
and the report says how to measure one.
"""

from __future__ import annotations

import json
from pathlib import Path

# What may differ between a run and its manual reference: the space and how the search enters it, the seed
# (a reference of the same seed is preferred, else the mean over seeds is shown), and
# where and how the run ran (none changes the recipe's numerics).
_RUN_ONLY = {"space_method", "seed", "evolve", "nse", "data_dir", "device", "precision", "progress", "tensorboard"}
_STAGE_ONLY = {"space", "warm_start", "seed", "data_dir", "device", "precision", "channels_last", "progress",
               "tensorboard", "log_every", "compile", "skip_nonfinite"}


def reference_rows_path() -> Path:
    import autospace

    return Path(autospace.__file__).resolve().parents[1] / "docs" / "results" / "manual_reference.jsonl"


def recipe_of(run_config: dict) -> dict:
    """The part of a resolved run config (config.yaml as a dict) that a manual reference must share."""
    recipe = {key: value for key, value in run_config.items() if key not in _RUN_ONLY}
    for stage in ("search", "train"):
        if isinstance(recipe.get(stage), dict):
            recipe[stage] = {key: value for key, value in recipe[stage].items() if key not in _STAGE_ONLY}
    return recipe


def matching_references(run_config: dict, path: Path | None = None) -> list[dict]:
    """The manual rows measured under `run_config`'s recipe (any seed), oldest first."""
    path = path or reference_rows_path()
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError):
        return []
    recipe = recipe_of(run_config)
    rows = []
    for line in lines:
        try:
            row = json.loads(line)
        except ValueError:
            continue
        if isinstance(row, dict) and row.get("space_method") == "manual" and row.get("recipe") == recipe:
            rows.append(row)
    return rows


def manual_comparison(run_config: dict | None, test_top1: float | None, path: Path | None = None) -> str | None:
    """One sentence for a learned-space run's report: the manual space's test top-1 under the same recipe
    (same seed where measured, else the mean over the measured seeds) and the difference; or how to
    measure it. None for a run in the manual space or without a result."""
    if not run_config or test_top1 is None or run_config.get("space_method") == "manual":
        return None
    rows = matching_references(run_config, path)
    if not rows:
        return ("No manual-space reference for this recipe: `python bench/space_vs_manual.py --spaces manual "
                "--config RECIPE --budget-madds BUDGET --rows docs/results/manual_reference.jsonl` measures one.")
    same_seed = [row for row in rows if row.get("seed") == run_config.get("seed")]
    used = same_seed[-1:] or rows
    manual = sum(row["test_top1"] for row in used) / len(used)
    seeds = ", ".join(str(row.get("seed")) for row in used)
    where = used[-1].get("device") or "unknown device"
    difference = test_top1 - manual
    return (f"The manual space under the same recipe and budget: {manual:.2f}% "
            f"(reference measured by bench/space_vs_manual.py on {where}, seed {seeds}, "
            f"docs/results/manual_reference.jsonl); this run's learned space: {test_top1:.2f}% "
            f"({difference:+.2f} points).")


__all__ = ["manual_comparison", "matching_references", "recipe_of", "reference_rows_path"]
