"""A learned run's report compares it with the manual space under the same recipe (issue 32, item 3)."""

import json

from autospace.pipeline import load_run_config, recorded_run_config
from autospace.report.manual_reference import manual_comparison, matching_references, recipe_of
from autospace.runtime.config import config_to_dict


def recorded(tmp_path, *overrides):
    config = load_run_config("quick", list(overrides))
    return config_to_dict(recorded_run_config(config, tmp_path / "run"))


def write_rows(path, *rows):
    path.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
    return path


def test_a_learned_and_a_manual_run_of_one_recipe_share_the_recipe(tmp_path):
    learned = recorded(tmp_path, "space_method=autospace")
    manual = recorded(tmp_path, "space_method=manual", "device=cpu", "progress=false")
    assert learned["search"]["space"] != manual["search"]["space"]  # the records differ where they must
    assert recipe_of(learned) == recipe_of(manual)
    # ... and not where the recipe differs
    assert recipe_of(recorded(tmp_path, "train.epochs=11")) != recipe_of(learned)
    assert recipe_of(recorded(tmp_path, "budget_madds=20000000")) != recipe_of(learned)
    assert recipe_of(recorded(tmp_path, "search.arch_lr=0.02")) != recipe_of(learned)


def test_the_report_sentence_uses_the_matching_row_of_the_same_seed(tmp_path):
    learned = recorded(tmp_path, "space_method=autospace")
    recipe = recipe_of(recorded(tmp_path, "space_method=manual"))
    other = recipe_of(recorded(tmp_path, "space_method=manual", "train.epochs=3"))
    rows = write_rows(tmp_path / "rows.jsonl",
                      {"space_method": "manual", "seed": 0, "test_top1": 61.0, "recipe": recipe, "device": "cpu X"},
                      {"space_method": "manual", "seed": 1, "test_top1": 70.0, "recipe": recipe},
                      {"space_method": "manual", "seed": 0, "test_top1": 10.0, "recipe": other},
                      {"space_method": "autospace", "seed": 0, "test_top1": 99.0, "recipe": recipe})
    assert len(matching_references(learned, rows)) == 2
    sentence = manual_comparison(learned, 63.5, rows)
    assert "61.00%" in sentence and "+2.50 points" in sentence and "seed 0" in sentence and "cpu X" in sentence
    other_seed = dict(learned, seed=5)  # no row of that seed: the mean over the measured seeds
    assert "65.50%" in manual_comparison(other_seed, 63.5, rows)


def test_no_reference_says_how_to_measure_one_and_a_manual_run_gets_none(tmp_path):
    learned = recorded(tmp_path, "space_method=autospace")
    missing = tmp_path / "none.jsonl"
    assert "bench/space_vs_manual.py --spaces manual" in manual_comparison(learned, 50.0, missing)
    assert manual_comparison(recorded(tmp_path, "space_method=manual"), 50.0, missing) is None
    assert manual_comparison(learned, None, missing) is None


def test_a_damaged_rows_file_is_skipped_line_by_line(tmp_path):
    learned = recorded(tmp_path, "space_method=autospace")
    rows = tmp_path / "rows.jsonl"
    rows.write_text("not json\n" + json.dumps({"space_method": "manual", "seed": 0, "test_top1": 60.0,
                                                "recipe": recipe_of(learned)}) + "\n[1, 2]\n", encoding="utf-8")
    assert [row["test_top1"] for row in matching_references(learned, rows)] == [60.0]
