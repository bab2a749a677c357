"""NAS-Bench-201: cell data, exact cost against the shared table, modules, the tied DEA run."""

import csv
import json
import random
from pathlib import Path

import pytest
import torch

from autospace.arch.nb201 import (
    EXAMPLE_STRING, Nb201Cell, Nb201Skeleton, all_nb201_cells, canonical_nb201, mutate_nb201,
    parse_nb201_string, random_nb201_cell, read_nb201_strings, require_nonempty, to_nb201_string,
)
from autospace.cli import main
from autospace.cost.nb201 import nb201_network_cost
from autospace.errors import AutospaceError
from autospace.nn.nb201 import Nb201Network, Nb201TiedSupernet
from autospace.nb201.table import kendall, spearman

TABLE = Path(__file__).resolve().parents[2] / "shared" / "data" / "nb201" / "nb201_cifar10_valid.csv"
needs_table = pytest.mark.skipif(not TABLE.is_file(), reason="the shared NB201 table is not here")


def table_rows():
    with TABLE.open(newline="") as file:
        return list(csv.DictReader(file))


def test_string_round_trip_and_edge_order():
    cell = parse_nb201_string(EXAMPLE_STRING)
    assert to_nb201_string(cell) == EXAMPLE_STRING
    assert cell.ops == ("conv3x3", "conv3x3", "avgpool3x3", "identity", "conv3x3", "identity")
    assert sum(1 for _ in all_nb201_cells()) == 15625


@pytest.mark.parametrize("text", ["", "|none~0|", "|none~1|+|none~0|none~1|+|none~0|none~1|none~2|",
                                  "|conv~0|+|none~0|none~1|+|none~0|none~1|none~2|",
                                  "none~0+|none~0|none~1|+|none~0|none~1|none~2|"])
def test_bad_strings_are_refused_with_the_right_form(text):
    with pytest.raises(AutospaceError, match=r"write it like \|nor_conv_3x3~0\|"):
        parse_nb201_string(text)


def test_empty_cells_and_canonical_form():
    empty = parse_nb201_string("|nor_conv_3x3~0|+|none~0|none~1|+|none~0|none~1|nor_conv_1x1~2|")
    assert empty.is_empty()
    with pytest.raises(AutospaceError, match="no path from node 0 to node 3"):
        require_nonempty(empty)
    with pytest.raises(AutospaceError, match="no path"):
        Nb201Network(empty)
    dead = parse_nb201_string("|nor_conv_3x3~0|+|skip_connect~0|none~1|+|none~0|none~1|skip_connect~2|")
    assert canonical_nb201(dead).ops == ("zero", "identity", "zero", "zero", "zero", "identity")
    rng = random.Random(0)
    for _ in range(200):
        assert not mutate_nb201(random_nb201_cell(rng), rng).is_empty()


@needs_table
def test_cost_matches_every_row_of_the_nb201_table():
    rows = table_rows()
    assert len(rows) == 15625
    wrong = []
    for row in rows:
        cell = parse_nb201_string(row["arch_str"])
        assert cell.ops == tuple({"none": "zero", "skip_connect": "identity", "nor_conv_1x1": "conv1x1",
                                  "nor_conv_3x3": "conv3x3", "avg_pool_3x3": "avgpool3x3"}[name]
                                 for name in row["edges"].split(";"))
        cost = nb201_network_cost(cell)
        if (cost.params != round(float(row["params_m"]) * 1e6)
                or cost.madds != round(float(row["flops_m"]) * 1e6) - 10):
            wrong.append(row["arch_str"])
    assert not wrong, f"{len(wrong)} cells differ, e.g. {wrong[:3]}"


@needs_table
def test_built_module_parameter_count_equals_the_table_on_a_sample():
    rows = [row for row in table_rows() if row["empty"] == "0"]
    for row in random.Random(1).sample(rows, 40):
        network = Nb201Network(parse_nb201_string(row["arch_str"]))
        assert sum(p.numel() for p in network.parameters()) == round(float(row["params_m"]) * 1e6)


@pytest.mark.slow
@needs_table
def test_built_module_parameter_count_on_all_nonempty_rows():
    for row in table_rows():
        if row["empty"] == "0":
            network = Nb201Network(parse_nb201_string(row["arch_str"]))
            assert sum(p.numel() for p in network.parameters()) == round(float(row["params_m"]) * 1e6)


def test_madds_counted_by_hooks_on_a_proxy_skeleton():
    skeleton = Nb201Skeleton(channels=4, cells_per_stage=2, resolution=16)
    cell = parse_nb201_string(EXAMPLE_STRING)
    network = Nb201Network(cell, skeleton)
    counted = []

    def hook(module, inputs, output):
        if isinstance(module, torch.nn.Conv2d):
            counted.append(module.weight.numel() * output.shape[2] * output.shape[3])
        elif isinstance(module, torch.nn.Linear):
            counted.append(module.weight.numel())

    for module in network.modules():
        module.register_forward_hook(hook)
    network(torch.randn(2, 3, 16, 16))
    assert sum(counted) == nb201_network_cost(cell, skeleton).madds


def test_supernet_path_equals_the_stand_alone_network():
    skeleton = Nb201Skeleton(channels=4, cells_per_stage=2, resolution=8)
    supernet = Nb201TiedSupernet(skeleton, torch.Generator().manual_seed(0))
    x = torch.randn(3, 3, 8, 8)
    rng = random.Random(2)
    for _ in range(4):
        cell = random_nb201_cell(rng)
        network = Nb201Network(cell, skeleton)
        network.load_state_dict(supernet.path_state_dict(cell))
        torch.testing.assert_close(network(x), supernet(x, cell))


def _average_ranks(values):
    """1-based ranks, ties sharing the mean of their positions (what Spearman's rho ranks by)."""
    order = sorted(range(len(values)), key=lambda index: values[index])
    ranks = [0.0] * len(values)
    start = 0
    while start < len(order):
        end = start
        while end + 1 < len(order) and values[order[end + 1]] == values[order[start]]:
            end += 1
        for position in range(start, end + 1):
            ranks[order[position]] = (start + end) / 2 + 1
        start = end + 1
    return ranks


def _reference_spearman(first, second):
    """Pearson's r of the average ranks, written out (independent of autospace.nb201's code)."""
    x, y = _average_ranks(first), _average_ranks(second)
    mx, my = sum(x) / len(x), sum(y) / len(y)
    sxy = sum((a - mx) * (b - my) for a, b in zip(x, y))
    return sxy / (sum((a - mx) ** 2 for a in x) * sum((b - my) ** 2 for b in y)) ** 0.5


def _reference_kendall_tau_b(first, second):
    """Kendall's tau-b by counting every pair: (concordant - discordant) / sqrt((n0 - ties_x)(n0 - ties_y))."""
    concordant = discordant = ties_x = ties_y = pairs = 0
    for i in range(len(first)):
        for j in range(i + 1, len(first)):
            pairs += 1
            dx, dy = first[i] - first[j], second[i] - second[j]
            ties_x += dx == 0
            ties_y += dy == 0
            if dx * dy > 0:
                concordant += 1
            elif dx * dy < 0:
                discordant += 1
    return (concordant - discordant) / ((pairs - ties_x) * (pairs - ties_y)) ** 0.5


def test_rank_correlations_agree_with_hand_values():
    assert spearman([1, 2, 3, 4], [10, 20, 30, 40]) == pytest.approx(1.0)
    assert spearman([1, 2, 3, 4], [4, 3, 2, 1]) == pytest.approx(-1.0)
    assert kendall([1, 2, 3], [1, 3, 2]) == pytest.approx(1 / 3)
    # with ties, by hand: ranks (1.5, 1.5, 3, 4) and (1, 2.5, 2.5, 4) give rho 3.75 / 4.5; 4 concordant
    # pairs, none discordant, one tie in each variable: tau-b 4 / sqrt(5 * 5)
    assert spearman([1, 1, 2, 3], [1, 2, 2, 3]) == pytest.approx(3.75 / 4.5)
    assert kendall([1, 1, 2, 3], [1, 2, 2, 3]) == pytest.approx(0.8)
    rng = random.Random(3)
    first = [rng.randint(0, 5) for _ in range(30)]  # many ties
    second = [rng.random() for _ in range(30)]
    assert spearman(first, second) == pytest.approx(_reference_spearman(first, second))
    assert kendall(first, second) == pytest.approx(_reference_kendall_tau_b(first, second))


def test_cost_command_prints_one_json_line_per_cell(tmp_path, capsys):
    cells = tmp_path / "cells.txt"
    cells.write_text(EXAMPLE_STRING + "\n\n# a comment\n")
    assert main(["nb201", "cost", "--cells", str(cells)]) == 0
    line = json.loads(capsys.readouterr().out)
    assert line == {"arch_str": EXAMPLE_STRING, "params": 802426, "madds": 113951360}
    cells.write_text(EXAMPLE_STRING + "\n|nor_conv_3x3~0|\n")
    assert main(["nb201", "cost", "--cells", str(cells)]) == 2
    assert "line 2" in capsys.readouterr().err


def tiny_config(**changes):
    from autospace.nb201.config import Nb201Config

    values = dict(data="synthetic:512,64", channels=4, cells_per_stage=1, image_size=8, steps=40, batch_size=16,
                  warmup_fraction=0.25, regenerate_every=10, device="cpu", population_size=6, offspring=2,
                  min_trained_steps=1, max_age=3, min_windows=1, recalibration_images=64, naswot_batch=16,
                  naswot_channels=4, naswot_cells_per_stage=1)
    values.update(changes)
    return Nb201Config(**values)


def write_cells(path, texts):
    path.write_text("".join(text + "\n" for text in texts))
    return path


THREE = ["|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|nor_conv_3x3~0|nor_conv_3x3~1|nor_conv_3x3~2|",
         "|avg_pool_3x3~0|+|none~0|none~1|+|none~0|avg_pool_3x3~1|none~2|",
         "|none~0|+|none~0|none~1|+|skip_connect~0|none~1|none~2|"]


def test_rank_resumes_to_the_same_fitness(tmp_path):
    from autospace.nb201.loop import run_tied_dea

    cells = [parse_nb201_string(text) for text in THREE]
    whole = run_tied_dea(tiny_config(), tmp_path / "whole", cells, search=False)
    assert run_tied_dea(tiny_config(), tmp_path / "split", cells, search=False, stop_after_regeneration=2) is None
    resumed = run_tied_dea(tiny_config(), tmp_path / "split", cells, search=False, resume=True)
    assert [m["fitness"] for m in resumed["population"]] == [m["fitness"] for m in whole["population"]]
    assert [m["count"] for m in resumed["population"]] == [m["count"] for m in whole["population"]]
    assert len((tmp_path / "split" / "history.jsonl").read_text().splitlines()) == 4
    assert sum(m["count"] for m in whole["population"]) == 40


def held_out_losses(config, run_dir, cells):
    """Each cell's cross-entropy on held-out batches, with the run's final supernet weights."""
    from autospace.runtime.checkpoints import load_rotating_checkpoint
    from autospace.nb201.loop import CHECKPOINT_FORMAT, load_streams

    _, validation, num_classes = load_streams(config, torch.device("cpu"))
    skeleton = Nb201Skeleton(channels=config.channels, cells_per_stage=config.cells_per_stage,
                             num_classes=num_classes, resolution=config.image_size)
    supernet = Nb201TiedSupernet(skeleton, torch.Generator().manual_seed(0))
    supernet.load_state_dict(load_rotating_checkpoint(run_dir, CHECKPOINT_FORMAT)["supernet"])
    batches = [validation.next() for _ in range(8)]
    with torch.no_grad():
        return [sum(torch.nn.functional.cross_entropy(supernet(x, cell), y).item() for x, y in batches) / 8
                for cell in cells]


def test_fitness_orders_cells_as_their_held_out_loss_does(tmp_path):
    """Can fail: the binary-gate fitness must rank the best cell of the trained supernet (by held-out
    loss) first and order every clearly separated pair; a wrong sign or a broken estimator does not."""
    from autospace.nb201 import rank_cells

    config = tiny_config(steps=240, warmup_fraction=0.5, channels=8, image_size=16, fitness_lr=2.0,
                         data="synthetic:2048,64", weight_sampling="uniform", validation_fraction=0.25)
    summary = rank_cells(config, tmp_path / "run", write_cells(tmp_path / "cells.txt", THREE))
    rows = list(csv.DictReader((tmp_path / "run" / "fitness.csv").open()))
    assert [row["arch_str"] for row in rows] == THREE
    fitness = [float(row["fitness"]) for row in rows]
    losses = held_out_losses(config, tmp_path / "run", [parse_nb201_string(text) for text in THREE])
    assert fitness.index(max(fitness)) == losses.index(min(losses)), (fitness, losses)
    # Every pair of cells whose held-out losses clearly differ is ordered by fitness the same way; a near
    # tie (the 2-thread and 1-thread runs order two cells 0.02 apart differently) decides nothing.
    for i in range(3):
        for j in range(3):
            if losses[i] < losses[j] - 0.05:
                assert fitness[i] > fitness[j], (fitness, losses)
    assert summary["cells"] == 3 and summary["proxy"]["channels"] == 8


def test_search_keeps_its_population_and_reports_the_found_cell(tmp_path):
    from autospace.nb201 import search_nb201

    lines = search_nb201(tiny_config(steps=60), tmp_path / "run")
    found = lines[0]
    assert not parse_nb201_string(found["arch_str"]).is_empty()
    assert found["evaluated"] >= 6 and found["steps"] == 60
    state = json.loads((tmp_path / "run" / "found.json").read_text())
    assert state[0]["arch_str"] == found["arch_str"]


def test_rank_command_refuses_bad_input(tmp_path, capsys):
    empty = "|nor_conv_3x3~0|+|none~0|none~1|+|none~0|none~1|nor_conv_1x1~2|"
    cells = write_cells(tmp_path / "cells.txt", [EXAMPLE_STRING, empty])
    assert main(["nb201", "rank", "--cells", str(cells), "--out", str(tmp_path / "a")]) == 2
    assert "no path from node 0 to node 3" in capsys.readouterr().err
    assert main(["nb201", "rank", "--cells", str(cells)]) == 2
    assert "--out" in capsys.readouterr().err
    cells = write_cells(tmp_path / "one.txt", [EXAMPLE_STRING])
    assert main(["nb201", "rank", "--cells", str(cells), "--out", str(tmp_path / "b"),
                 "--set", "image_size=10"]) == 2
    assert "multiple of 4" in capsys.readouterr().err


@needs_table
@pytest.mark.parametrize("script", ["nb201_rank", "nb201_search"])
def test_bench_scripts_print_one_json_line(tmp_path, script):
    import os
    import subprocess
    import sys

    settings = ["data=synthetic:256,32", f"table={TABLE}", "channels=4", "cells_per_stage=1", "image_size=8",
                "steps=20", "batch_size=16", "regenerate_every=5", "device=cpu", "population_size=4",
                "min_trained_steps=1", "min_windows=1", "recalibration_images=32", "naswot_batch=8",
                "naswot_channels=4", "naswot_cells_per_stage=1"]
    command = [sys.executable, str(Path(__file__).resolve().parents[1] / "bench" / f"{script}.py"),
               "--out", str(tmp_path / "run")] + [item for setting in settings for item in ("--set", setting)]
    if script == "nb201_rank":
        command += ["--cells", "5"]
    done = subprocess.run(command, capture_output=True, text=True, timeout=300,
                          env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert done.returncode == 0, done.stderr
    lines = done.stdout.strip().splitlines()
    assert len(lines) == 1
    record = json.loads(lines[0])
    assert record["bench"] == script
    if script == "nb201_rank":
        assert record["cells"] == 5 and -1 <= record["fitness_spearman"] <= 1
        for name in ("fitness", "rescored", "params", "naswot", "rescored+naswot"):
            assert -1 <= record[f"{name}_spearman"] <= 1 and f"{name}_top10_valid" in record
    else:
        assert record["random"]["evaluated"] == record["dea"]["evaluated"] and "rank" in record["dea"]
        assert record["params"]["evaluated"] == record["dea"]["evaluated"] and "valid" in record["dea"]["fitness_pick"]
        assert {"rescored", "params", "naswot", "rescored+params+naswot"} <= set(record["rescored"]["pick_valid"])
        assert {"fitness", "fitness+params+naswot"} <= set(record["population"]["pick_valid"])
