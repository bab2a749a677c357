"""Issue 27: cost tiers instead of one band, a trained prior with receptive fields 3/5/7, fitness
averaged over windows and earned before it counts."""

from __future__ import annotations

import json
import random

import pytest

from autospace.arch.blocks import CellBlock, InvertedResidual
from autospace.arch.cell import canonical, reference_cell
from autospace.arch.codec import block_from_dict, load_space
from autospace.arch.presets import preset_skeleton
from autospace.cost.analytic import block_cost
from autospace.evolve import evolve
from autospace.evolve.config import EvolveConfig
from autospace.evolve.cost_tiers import layer_tiers, stacked_family, stacked_reference, tier_bounds, tier_sizes
from autospace.evolve.layer_budget import cell_madds
from autospace.evolve.population import Individual, LayerPopulation, earned
from autospace.evolve.tiered_population import TieredPopulation


def _dwconvs_on_the_path(cell) -> int:
    """dwconv3x3 edges on the longest path 0 -> 3 of a stacked reference (its receptive field is 1 + 2 x this)."""
    depth = {0: 0}
    for target in (1, 2, 3):
        incoming = [depth[source] + (cell.op(source, target) == "dwconv3x3") for source in range(target)
                    if source in depth and cell.op(source, target) != "zero"]
        if incoming:
            depth[target] = max(incoming)
    return depth[3]


def test_the_prior_is_every_expansion_times_receptive_fields_3_5_7():
    family = stacked_family(reference_cell())
    assert len(set(family)) == 9
    assert stacked_reference(6, 1) == canonical(reference_cell())
    assert sorted((cell.expansion, 1 + 2 * _dwconvs_on_the_path(cell)) for cell in family) == sorted(
        (e, field) for e in (1, 3, 6) for field in (3, 5, 7))


@pytest.mark.parametrize("preset", ["cifar-small", "cifar"])
def test_every_layer_spans_the_manual_space_cost_range_in_disjoint_tiers(preset):
    for slot in preset_skeleton(preset).searchable_slots():
        tiers = layer_tiers(slot, reference_cell(), 3)
        k3e3 = block_cost(InvertedResidual(kernel=3, expansion=3), slot).madds
        k7e6 = block_cost(InvertedResidual(kernel=7, expansion=6), slot).madds
        assert tiers[0].floor <= k3e3 and tiers[-1].cap >= k7e6
        assert all(low.cap + 1 == high.floor for low, high in zip(tiers, tiers[1:]))  # disjoint, no gap
        family = [cell for tier in tiers for cell in tier.family]
        assert sorted(family, key=str) == sorted(stacked_family(reference_cell()), key=str)  # each member in one tier
        for tier in tiers:
            assert all(tier.floor <= cell_madds(cell, slot) <= tier.cap for cell in tier.family)
        assert min(cell_madds(cell, slot) for cell in family) <= k3e3


def test_tier_bounds_cover_the_range_in_equal_ratios():
    bounds = tier_bounds(1000, 8000, 3)
    assert bounds[0][0] == 500 and bounds[-1][1] == 8000
    assert [high for _, high in bounds[:-1]] == [1999, 3999]
    assert tier_sizes(15, layer_tiers(preset_skeleton("cifar-small").searchable_slots()[0], reference_cell(), 3)) == [5] * 3


def _tiered(slot_index=3, size=15, seed=0):
    slot = preset_skeleton("cifar-small").searchable_slots()[slot_index]
    tiers = layer_tiers(slot, reference_cell(), 3)
    population = TieredPopulation(slot, tiers, 3, tier_sizes(size, tiers))
    population.initialise(size, random.Random(seed))
    return slot, population


def test_a_prior_without_stacked_chains_is_the_reference_at_each_expansion_and_seeds_only_it():
    family = stacked_family(reference_cell(), deepest=1)
    assert sorted(family, key=str) == sorted((stacked_reference(e, 1) for e in (1, 3, 6)), key=str)
    assert len(set(family)) == 3
    assert all(_dwconvs_on_the_path(cell) == 1 for cell in family)
    slot = preset_skeleton("cifar-small").searchable_slots()[3]
    tiers = layer_tiers(slot, reference_cell(), 3, deepest=1)
    assert sorted((member for tier in tiers for member in tier.family), key=str) == sorted(family, key=str)
    # the tiers still span the manual range (k3e3 .. k7e6): the chains only widened it, never set its ends here
    assert tiers[-1].cap >= block_cost(InvertedResidual(kernel=7, expansion=6), slot).madds
    population = TieredPopulation(slot, tiers, 3, tier_sizes(15, tiers))
    population.initialise(15, random.Random(0))
    assert set(family) <= set(population.cells())


def test_the_prior_depth_is_checked():
    with pytest.raises(Exception, match="family_stack_depth is 4; valid: 1, 2, 3"):
        EvolveConfig(family_stack_depth=4)


def test_no_tier_drifts_under_evolution_with_random_fitness():
    """Mutation and removal act within a tier: after many regenerations with random fitness every cell
    still costs what its tier allows, every tier keeps its size and every family member stays."""
    slot, population = _tiered()
    rng = random.Random(1)
    sizes = [len(tier.individuals) for tier in population.tiers]
    for regeneration in range(60):
        picked = population.supernet_pick(3, 3, rng, 1, 1, uniform=False, rotation=regeneration)
        cells = [population.individuals[i].cell for i in picked]
        counts = [population.individuals[i].count + 5 for i in picked]
        population.write_back(cells, [rng.gauss(0, 1) for _ in cells], counts, 0.5, True, "windows")
        population.regenerate(2, 3, 8, 1, regeneration < 30, rng, 1)
        for tier in population.tiers:
            assert all(tier.budget.floor <= cell_madds(ind.cell, slot) <= tier.budget.cap for ind in tier.individuals)
        assert [len(tier.individuals) for tier in population.tiers] == sizes
        assert len(set(population.cells())) == len(population.cells())
    held = set(population.cells())
    assert set(stacked_family(reference_cell())) <= held
    assert len(held - set(stacked_family(reference_cell()))) == sum(sizes) - 9


def test_supernet_slots_go_to_every_tier_and_to_unearned_cells_first():
    _, population = _tiered()
    picked = population.supernet_pick(3, 3, random.Random(0), 10, 2, uniform=False)
    tiers = [population.tier_of(population.individuals[i].cell) for i in picked]
    assert sorted(tiers) == [0, 1, 2]
    single = population.tiers[1]
    single.individuals = [Individual(ind.cell, fitness=5.0, count=50, windows=3) for ind in single.individuals]
    fresh = single.individuals[-1].cell
    single.individuals[-1] = Individual(fresh, fitness=-5.0, count=0, windows=0)
    for seed in range(5):  # the worst cell by fitness, but it has not earned it: it is picked first
        assert single.individuals[single.supernet_pick(1, 3, random.Random(seed), 10, 2, False)[0]].cell == fresh


def test_fitness_is_the_mean_over_a_cells_windows_and_needs_two_to_count():
    slot = preset_skeleton("cifar-small").searchable_slots()[0]
    population = LayerPopulation(slot, layer_tiers(slot, reference_cell(), 1)[0], 3)
    cell = reference_cell()
    population.individuals = [Individual(cell, fitness=0.7)]  # inherited: gives way to the first own window
    for value, count in ((0.3, 10), (0.9, 20), (-0.3, 30)):
        population.write_back([cell], [value], [count], momentum=0.5, window=True, average="windows")
    assert population.individuals[0].fitness == pytest.approx((0.3 + 0.9 - 0.3) / 3)
    assert population.individuals[0].windows == 3 and population.individuals[0].count == 30
    population.write_back([cell], [5.0], [40], momentum=0.5, window=False, average="windows")  # no fitness step ran
    assert population.individuals[0].windows == 3 and population.individuals[0].fitness == pytest.approx(0.3)
    assert not earned(Individual(cell, count=100, windows=1), 10, 2) and earned(Individual(cell, count=10, windows=2), 10, 2)


def test_a_cell_with_one_window_never_wins_and_regeneration_waits_for_judged_cells():
    slot, population = _tiered()
    tier = population.tiers[0]
    tier.individuals = [Individual(ind.cell, fitness=0.1 * i, count=50, windows=2, reference=ind.reference)
                        for i, ind in enumerate(tier.individuals)]
    lucky = tier.individuals[-1]
    tier.individuals[-1] = Individual(lucky.cell, fitness=9.0, count=50, windows=1)
    assert tier.top(1, 10, 2)[0].cell != lucky.cell
    assert lucky.cell not in [ind.cell for ind in population.exported(2, 10, 2)]
    assert tier.regenerate(2, 3, 8, 10, False, random.Random(0), 2) != []  # one unearned: room for one child
    assert len([ind for ind in tier.individuals if not earned(ind, 10, 2)]) == 2
    assert tier.regenerate(2, 3, 8, 10, False, random.Random(0), 2) == []  # two waiting: no more children


# ---- end to end on synthetic data --------------------------------------------------------------------

@pytest.fixture(scope="module")
def tiered_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("tiers") / "run"
    config = EvolveConfig(data="synthetic:384,64", preset="cifar-small", budget_madds=10_000_000,
                          budget_madds_max=20_000_000, epochs=4, batch_size=32, population_size=12,
                          candidates_per_layer=3, regenerate_every=3, warmup_epochs=0.5, min_trained_steps=1,
                          device="cpu", progress=False, diagnostic_paths=1, diagnostic_batches=1)
    evolve("autospace", config, out)
    return out, config


def test_a_tiered_space_spans_the_manual_range_and_exports_only_trained_blocks(tiered_run):
    out, config = tiered_run
    space = load_space(out / "space.json")
    metadata = space.metadata
    assert metadata["budget_range_madds"] == [10_000_000, 20_000_000]
    assert len(metadata["layer_cost_tiers"]) == len(space.layers)
    for slot, layer in zip(space.slots(), space.layers):
        costs = [block_cost(candidate.block, slot).madds for candidate in layer]
        assert all(candidate.trained_iterations >= config.min_steps for candidate in layer)
        assert min(costs) <= block_cost(InvertedResidual(kernel=3, expansion=3), slot).madds
    summary = metadata["space_madds"]
    assert summary["covers_budget_range"] == (summary["cheapest_madds"] <= 9_000_000
                                              and summary["costliest_madds"] >= 20_000_000)
    assert "cost tiers" in (out / "space.md").read_text()
    history = [json.loads(line) for line in (out / "history.jsonl").read_text().splitlines()]
    assert all({entry["tier"] for entry in layer} == {0, 1, 2} for layer in history[-1]["populations"])
    for layer, population in zip(space.layers, history[-1]["populations"]):  # every trained family member is listed
        listed = {str(candidate.block.cell) for candidate in layer}
        trained = [entry for entry in population if entry["reference"] and entry["count"] >= config.min_steps]
        assert len(trained) >= 3
        assert {str(block_from_dict({"type": "cell", **entry["cell"]}).cell) for entry in trained} <= listed


def test_the_warm_start_copies_every_exported_cell(tiered_run):
    from autospace.evolve.checkpoint import dea_warm_start
    from autospace.nn.block_supernet import BlockSupernet
    from autospace.search.spaces import resolve_space

    import torch

    out, _ = tiered_run
    space = resolve_space(str(out / "space.json"), "cifar-small", 10, 3, 32)
    supernet = BlockSupernet(space, torch.Generator().manual_seed(0))
    copied = dea_warm_start(out)(supernet)
    cells = sum(isinstance(block, CellBlock) for layer in supernet.choices for block in layer)
    assert copied == cells > 0
