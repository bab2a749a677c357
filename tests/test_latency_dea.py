"""The DEA under a latency target (issue 18): the cell-component model and the per-layer latency bands."""

from __future__ import annotations

import json
import random

import pytest
import torch

from autospace.arch.cell import Cell, canonical, reference_cell
from autospace.arch.ops import AGGREGATIONS, CELL_EXPANSIONS, EDGE_OPERATORS, EDGES
from autospace.arch.presets import preset_skeleton
from autospace.cli import main
from autospace.latency.keys import cell_components, fixed_keys, layer_component_keys, scale_key
from autospace.latency.prediction import cell_latency_ms, cell_network_latency_ms, fixed_latency_ms
from autospace.latency.table import LatencyEntry, LatencyTable, save_table
from autospace.runtime.device import hardware_info
from autospace.evolve import evolve
from autospace.evolve.config import EvolveConfig
from autospace.evolve.latency_budget import latency_bands, layer_latency_models
from autospace.evolve.layer_budget import layer_budgets
from autospace.evolve.population import LayerPopulation


def component_table(skeleton, seed: int = 0, device: str = "cpu", device_name: str | None = None) -> LatencyTable:
    """Every fixed and cell-component key of `skeleton`, each with a distinct random time."""
    rng = random.Random(seed)
    keys = fixed_keys(skeleton) + [key for slot in skeleton.searchable_slots() for key in layer_component_keys(slot)]
    entries = {key: LatencyEntry(rng.uniform(0.01, 0.3), 0.0, 5, rng.uniform(0.005, 0.01)) for key in keys}
    return LatencyTable(device, device_name or hardware_info("cpu")["device_name"], 1, 1, torch.__version__, "fp32",
                        statistic="median", entries=entries)


def random_cell(rng: random.Random) -> Cell:
    return Cell(tuple(rng.choice(EDGE_OPERATORS) for _ in EDGES), rng.choice(CELL_EXPANSIONS), rng.choice(AGGREGATIONS))


def test_cell_prediction_is_the_sum_of_its_component_entries():
    skeleton = preset_skeleton("cifar-small")
    table = component_table(skeleton)
    rng = random.Random(1)
    for _ in range(200):
        cell, slot = random_cell(rng), rng.choice(skeleton.searchable_slots())
        parts = cell_components(cell, slot)
        scale = table.entries[scale_key(slot)].median_ms
        expected = scale * sum(times * table.entries[key].median_ms for key, times in parts.items())
        assert cell_latency_ms(table, cell, slot) == pytest.approx(expected)
        if canonical(cell).is_empty():
            assert not parts
        else:  # input conv, output conv, one entry per live edge, residual where the layer has one
            live = sum(op != "zero" for op in canonical(cell).ops)
            assert sum(v for k, v in parts.items() if " edge " in k) == live
            assert any(k.endswith(" residual") for k in parts) == (slot.stride == 1 and slot.in_channels == slot.out_channels)
    from autospace.arch.blocks import CellBlock

    cells = [canonical(random_cell(rng)) for _ in skeleton.searchable_slots()]
    cells = [cell if not cell.is_empty() else reference_cell() for cell in cells]
    network = skeleton.network([CellBlock(cell) for cell in cells])
    assert cell_network_latency_ms(table, network) == pytest.approx(
        fixed_latency_ms(table, skeleton) + sum(cell_latency_ms(table, c, s) for c, s in
                                                zip(cells, skeleton.searchable_slots())))


def reference_target_ms(table, skeleton) -> float:
    """A network of reference cells: the bands then lie near the reference (a quick initialisation)."""
    return fixed_latency_ms(table, skeleton) + sum(cell_latency_ms(table, reference_cell(), slot)
                                                   for slot in skeleton.searchable_slots())


def banded_populations(size: int = 8, seed: int = 0):
    skeleton = preset_skeleton("cifar-small")
    table = component_table(skeleton)
    target_ms = reference_target_ms(table, skeleton)
    budgets = layer_budgets(skeleton, 200_000_000, reference_cell(), 1.08, 0.6)
    budgets = latency_bands(skeleton, budgets, table, target_ms, reference_cell(), 1.08, 0.6)
    rng = random.Random(seed)
    populations = [LayerPopulation(slot, band, 3, model) for slot, band, model in
                   zip(skeleton.searchable_slots(), budgets, layer_latency_models(table, skeleton))]
    for population in populations:
        population.initialise(size, rng)
    return populations, rng


def within_band(population, cell) -> bool:
    latency = population.latency_ms(cell)
    return population.budget.latency_floor <= latency <= population.budget.latency_cap


def test_population_with_a_latency_band_only_admits_cells_within_it_over_many_regenerations():
    populations, rng = banded_populations()
    caps = [population.budget.latency_cap for population in populations]
    assert all(cap > 0 for cap in caps) and len(set(caps)) > 1
    for population in populations:
        assert population.budget.floor == 0  # with a latency target MAdds is only a cap
        assert population.budget.scaled_reference == population.budget.family[0]
    born = 0
    for regeneration in range(120):
        for population in populations:
            population.write_back(population.cells(), [rng.gauss(0, 1) for _ in population.individuals],
                                  [ind.count + 5 for ind in population.individuals], 0.5)
            born += len(population.regenerate(2, 3, 4, 1, regeneration < 30, rng))
            for individual in population.individuals:
                assert individual.cell in population.budget.family or within_band(population, individual.cell)
                assert population.madds(individual.cell) <= population.budget.cap or individual.reference
    assert born > 500


def latency_config(tmp_path) -> EvolveConfig:
    skeleton = preset_skeleton("cifar-small", num_classes=10, in_channels=3, resolution=32)
    table = component_table(skeleton)
    save_table(tmp_path / "t.json", table)
    return EvolveConfig(data="synthetic:256,64", preset="cifar-small", budget_madds=200_000_000, epochs=1,
                        batch_size=32, population_size=5, candidates_per_layer=2, top_k=2, regenerate_every=3,
                        warmup_epochs=0.5, device="cpu", progress=False,
                        target_latency_ms=round(reference_target_ms(table, skeleton), 3),
                        latency_table=str(tmp_path / "t.json"), diagnostic_paths=0)


def test_evolve_with_a_latency_target_writes_a_space_within_its_latency_bands(tmp_path):
    config = latency_config(tmp_path)
    target = config.target_latency_ms
    space = evolve("autospace", config, tmp_path / "run")
    metadata = json.loads((tmp_path / "run" / "space.json").read_text())["metadata"]
    bands, latencies = metadata["layer_latency_bands_ms"], metadata["layer_latency_ms"]
    reference_family = {canonical(Cell(reference_cell().ops, e, "sum")) for e in CELL_EXPANSIONS}
    for layer, (band, layer_ms, candidates) in enumerate(zip(bands, latencies, space.layers)):
        for ms, candidate in zip(layer_ms, candidates):
            assert band[0] - 1e-4 <= ms <= band[1] + 1e-4 or candidate.block.cell in reference_family
    summary = metadata["space_latency"]
    assert summary["target_latency_ms"] == target
    assert summary["cheapest_latency_ms"] <= summary["uniform_mean_latency_ms"] <= summary["costliest_latency_ms"]
    assert f"Latency target {target} ms" in (tmp_path / "run" / "space.md").read_text()


def test_evolve_with_a_latency_target_resumes_to_the_same_space(tmp_path):
    from autospace.evolve.dea import evolve_autospace

    config = latency_config(tmp_path)
    evolve("autospace", config, tmp_path / "whole")
    assert evolve_autospace(config, tmp_path / "killed", stop_after_regeneration=1) is None
    evolve("autospace", config, tmp_path / "killed", resume=True)
    whole, resumed = (json.loads((tmp_path / name / "space.json").read_text()) for name in ("whole", "killed"))
    assert resumed["layers"] == whole["layers"]
    assert resumed["metadata"]["layer_latency_bands_ms"] == whole["metadata"]["layer_latency_bands_ms"]


def test_cli_evolve_latency_target_bad_input_is_one_line(tmp_path, capsys):
    base = ["evolve", "--method", "autospace", "--data", "synthetic:128,32", "--preset", "cifar-small",
            "--device", "cpu", "--target-latency-ms", "3", "--set", "batch_size=16"]
    assert main(base + ["--out", str(tmp_path / "a")]) == 2
    error = capsys.readouterr().err.strip()
    assert "latency_table" in error and len(error.splitlines()) == 1  # the config's check: the DEA takes the target
    other = component_table(preset_skeleton("cifar-small"), device="cuda:0", device_name="H200")
    other = LatencyTable(**{**other.conditions(), "entries": {}})  # lacks every component
    save_table(tmp_path / "gpu.json", other)
    assert main(base + ["--latency-table", str(tmp_path / "gpu.json"), "--out", str(tmp_path / "b")]) == 2
    error = capsys.readouterr().err.strip()
    assert "device_name 'H200' in the table" in error and "--latency-remeasure" in error  # the differing fields
    assert len(error.splitlines()) == 1


def test_measured_component_table_covers_every_layer_resumes_and_refuses_another_batch_size(tmp_path):
    from autospace.latency.cell_timing import measure_cell_components
    from autospace.latency.keys import missing_components

    skeleton = preset_skeleton("cifar-small", resolution=16)
    out = tmp_path / "open.json"
    table = measure_cell_components(skeleton, "cpu", 1, out, warmup=0, repeats=1, rounds=1, progress=False)
    assert not missing_components(table, skeleton.searchable_slots())
    assert all(key in table.entries for key in fixed_keys(skeleton))
    assert all(table.entries[scale_key(slot)].median_ms > 0 for slot in skeleton.searchable_slots())
    again = measure_cell_components(skeleton, "cpu", 1, out, warmup=0, repeats=1, rounds=1, progress=False)
    assert again == table  # nothing missing: nothing measured
    from autospace.errors import AutospaceError

    with pytest.raises(AutospaceError, match="batch size 1, but this is .* at batch size 2"):
        measure_cell_components(skeleton, "cpu", 2, out, warmup=0, repeats=1, rounds=1, progress=False)
