"""NAS-Bench-201, issue 29: fair weight sampling, window-averaged fitness, the measured pick,
NASWOT and the side-by-side report."""

import csv
import math
import random

import pytest
import torch
from torch import nn

from autospace.arch.nb201 import parse_nb201_string
from test_nb201 import THREE, tiny_config, write_cells


def test_naswot_equals_the_hand_computed_log_determinant():
    """Two ReLU layers over three inputs; K[i, j] counts the units on which i and j agree."""
    from autospace.nb201.naswot import naswot_score

    first = nn.Linear(2, 3, bias=False)
    second = nn.Linear(3, 2, bias=False)
    with torch.no_grad():
        first.weight.copy_(torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, -1.0]]))
        second.weight.copy_(torch.tensor([[1.0, 1.0, 1.0], [-1.0, 0.0, 0.0]]))
    model = nn.Sequential(first, nn.ReLU(), second, nn.ReLU())
    inputs = torch.tensor([[1.0, 2.0], [-1.0, 1.0], [2.0, -1.0]])
    # layer 1 pre-activations: (1, 2, -1), (-1, 1, -2), (2, -1, 3) -> codes 110, 010, 101
    # layer 2 pre-activations: from relu outputs (1,2,0), (0,1,0), (2,0,3): (3, -1), (1, 0), (5, -2) -> 10, 10, 10
    codes = [[1, 1, 0, 1, 0], [0, 1, 0, 1, 0], [1, 0, 1, 1, 0]]
    kernel = [[sum(a == b for a, b in zip(ci, cj)) for cj in codes] for ci in codes]
    assert kernel == [[5, 4, 3], [4, 5, 2], [3, 2, 5]]
    determinant = (5 * (5 * 5 - 2 * 2) - 4 * (4 * 5 - 2 * 3) + 3 * (4 * 2 - 5 * 3))  # = 105 - 56 - 21 = 28
    assert naswot_score(model, inputs) == pytest.approx(math.log(determinant), abs=1e-9)


def test_naswot_tells_an_identity_cell_from_a_conv_cell():
    from autospace.nb201.naswot import nb201_naswot_scores

    images = torch.randn(16, 3, 8, 8, generator=torch.Generator().manual_seed(0))
    cells = [parse_nb201_string(text) for text in THREE]
    scores = nb201_naswot_scores(cells, images, 10, channels=4, cells_per_stage=1)
    assert all(math.isfinite(score) for score in scores) and len(set(scores)) == 3
    assert scores == nb201_naswot_scores(cells, images, 10, channels=4, cells_per_stage=1)


def test_fair_sampling_trains_every_cell_equally(tmp_path):
    from autospace.nb201.loop import run_tied_dea

    cells = [parse_nb201_string(text) for text in THREE]
    result = run_tied_dea(tiny_config(weight_sampling="fair", steps=41), tmp_path / "run", cells, search=False)
    counts = [member["count"] for member in result["population"]]
    assert sum(counts) == 41 and max(counts) - min(counts) <= 1, counts


def test_fair_sampling_resumes_bit_for_bit(tmp_path):
    from autospace.nb201.loop import run_tied_dea

    cells = [parse_nb201_string(text) for text in THREE]
    config = tiny_config(weight_sampling="fair", steps=40, regenerate_every=7)
    whole = run_tied_dea(config, tmp_path / "whole", cells, search=False)
    assert run_tied_dea(config, tmp_path / "split", cells, search=False, stop_after_regeneration=2) is None
    resumed = run_tied_dea(config, tmp_path / "split", cells, search=False, resume=True)
    for key in ("fitness", "count", "windows", "fitness_sum"):
        assert [m[key] for m in resumed["population"]] == [m[key] for m in whole["population"]]


def test_fitness_is_averaged_over_the_windows_after_warm_up(tmp_path):
    from autospace.nb201.loop import mean_fitness, run_tied_dea

    cells = [parse_nb201_string(text) for text in THREE]
    config = tiny_config(steps=40, warmup_fraction=0.25, regenerate_every=10)  # windows end at 20, 30, 40
    result = run_tied_dea(config, tmp_path / "run", cells, search=False)
    assert [m["windows"] for m in result["population"]] == [3, 3, 3]
    for member in result["population"]:
        assert mean_fitness(member) == pytest.approx(member["fitness_sum"] / 3)
    assert mean_fitness({"fitness": 0.7, "fitness_sum": 0.0, "windows": 0}) == 0.7


def test_a_cell_needs_its_windows_before_it_can_win_a_tournament():
    from autospace.nb201.loop import individual, regenerate

    cells = [parse_nb201_string(text) for text in THREE]
    population = [individual(cell) for cell in cells]
    for member, (windows, total) in zip(population, [(5, 5.0), (4, 2.0), (1, 9.0)]):
        member.update(count=100, windows=windows, fitness_sum=total, fitness=total / windows)
    config = tiny_config(population_size=6, offspring=1, tournament_size=3, min_windows=2,
                         child_fitness_shrink=0.5)
    # the third cell has the highest fitness (9.0) from a single window: it may not win; the first may
    regenerate(population, config, random.Random(0), set())
    assert len(population) == 4 and population[-1]["fitness"] == pytest.approx(0.5 * 1.0)


def test_rescoring_recalibrates_each_cell_so_order_does_not_matter():
    from autospace.arch.nb201 import Nb201Skeleton
    from autospace.data.stream import BatchStream
    from autospace.nb201.rescore import measured_pick, rescore_cells
    from autospace.nn.nb201 import Nb201TiedSupernet

    generator = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (96, 3, 8, 8), dtype=torch.uint8, generator=generator)
    labels = torch.randint(0, 10, (96,), generator=generator)
    train = BatchStream(images, labels, torch.arange(64), 16, (0.5,) * 3, (0.25,) * 3, seed=0, augment=False)
    held_out = BatchStream(images, labels, torch.arange(64, 96), 16, (0.5,) * 3, (0.25,) * 3, seed=1, augment=False)
    supernet = Nb201TiedSupernet(Nb201Skeleton(channels=4, cells_per_stage=1, resolution=8), generator)
    cells = [parse_nb201_string(text) for text in THREE]
    forward = rescore_cells(supernet, cells, train, held_out, recalibration_images=48)
    backward = rescore_cells(supernet, cells[::-1], train, held_out, recalibration_images=48)
    assert forward == backward[::-1]
    rows = [{"arch_str": "a", "accuracy": 50.0, "loss": 1.2}, {"arch_str": "b", "accuracy": 60.0, "loss": 1.5},
            {"arch_str": "c", "accuracy": 60.0, "loss": 1.1}]
    assert measured_pick(rows)["arch_str"] == "c"


def test_recalibration_images_come_from_every_class_of_a_sorted_split():
    from autospace.nb201.rescore import random_subset

    labels = torch.arange(10).repeat_interleave(100)  # sorted by class, as the CIFAR-10 copy's split is
    chosen = random_subset(torch.arange(1000), 200, seed=0)
    assert chosen.numel() == 200 and chosen.unique().numel() == 200
    assert labels[chosen].bincount(minlength=10).min() >= 5
    assert torch.equal(chosen, random_subset(torch.arange(1000), 200, seed=0))
    assert random_subset(torch.arange(5), 200, seed=0).numel() == 5


def test_search_picks_the_best_rescored_cell(tmp_path):
    from autospace.nb201 import search_nb201

    lines = search_nb201(tiny_config(steps=60, pick="rescored"), tmp_path / "run")
    rows = list(csv.DictReader((tmp_path / "run" / "rescored.csv").open()))
    assert len(rows) >= lines[0]["evaluated"]  # every evaluated cell, one per canonical form
    best = max(rows, key=lambda row: (float(row["accuracy"]), -float(row["loss"])))
    assert lines[0]["arch_str"] == best["arch_str"] and lines[0]["rescored_accuracy"] == float(best["accuracy"])


def ranks(values):
    """Average ranks (1 = lowest), ties sharing the mean rank: an independent rank computation."""
    order = sorted(values)
    return [sum(i + 1 for i, v in enumerate(order) if v == value) / order.count(value) for value in values]


def test_the_default_pick_is_the_best_mean_rank_of_rescored_params_and_naswot(tmp_path):
    from autospace.nb201 import search_nb201

    lines = search_nb201(tiny_config(steps=60), tmp_path / "run")
    rows = list(csv.DictReader((tmp_path / "run" / "rescored.csv").open()))
    columns = [[float(row[name]) for row in rows] for name in ("accuracy", "params", "naswot")]
    mean_rank = [sum(r) / 3 for r in zip(*(ranks(column) for column in columns))]
    best = max(range(len(rows)), key=lambda i: (mean_rank[i], columns[0][i], -float(rows[i]["loss"])))
    assert lines[0]["arch_str"] == rows[best]["arch_str"]
    assert lines[0]["method"] == "tied-dea, measured pick (rescored+params+naswot)"
    with pytest.raises(Exception, match="needs NASWOT"):
        tiny_config(naswot=False)
    assert tiny_config(naswot=False, pick="rescored").pick == "rescored"


def test_rank_writes_every_score_per_cell(tmp_path):
    from autospace.nb201 import rank_cells

    summary = rank_cells(tiny_config(), tmp_path / "run", write_cells(tmp_path / "cells.txt", THREE))
    rows = list(csv.DictReader((tmp_path / "run" / "fitness.csv").open()))
    assert [row["arch_str"] for row in rows] == THREE
    for row in rows:
        assert 0 <= float(row["rescored_accuracy"]) <= 100 and math.isfinite(float(row["naswot"]))
        assert int(row["windows"]) == 3
    assert summary["rescore_s"] >= 0 and summary["naswot_s"] >= 0


def test_side_by_side_report_against_hand_values():
    from autospace.nb201.report import compare_scores, rank_average, top_mean, with_combinations

    valid = [90.0, 80.0, 70.0, 60.0]
    assert top_mean([4, 3, 2, 1], valid, 2) == 85.0 and top_mean([1, 2, 3, 4], valid, 2) == 65.0
    assert rank_average([1, 2, 3, 4], [4, 3, 2, 1]) == [2.5, 2.5, 2.5, 2.5]
    report = compare_scores({"params": [4, 3, 1, 2]}, valid, k=2)
    assert report["params_spearman"] == 0.8 and report["params_top2_valid"] == 85.0
    assert report["oracle_top2_valid"] == 85.0 and report["mean_valid"] == 75.0
    combined = with_combinations({"rescored": [1, 2, 3, 4], "params": [4, 3, 2, 1], "naswot": [1, 1, 1, 1]})
    assert set(combined) >= {"rescored+params", "rescored+naswot", "rescored+params+naswot", "params+naswot"}
