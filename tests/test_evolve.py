"""The AutoSpace DEA: population mechanics, Eq. 4 / Eq. 5, constraints, determinism, resume."""

import json
import random
from dataclasses import replace

import pytest
import torch

from autospace.arch import load_space, preset_skeleton, reference_cell
from autospace.arch.cell import hamming, mutate
from autospace.arch.codec import block_from_dict
from autospace.cli import main
from autospace.runtime.config import load_config
from autospace.errors import AutospaceError
from autospace.evolve import EvolveConfig, evolve
from autospace.evolve.dea import compensated_fitness_step, count_compensation, parse_reference
from autospace.evolve.diagnostics import FitnessPersistence, centred_changes, noise_warning
from autospace.evolve.layer_budget import LayerBudget, cell_madds, layer_budgets, reference_family
from autospace.evolve.population import Individual, LayerPopulation, neighbours


def _slot(index=3):
    return preset_skeleton("cifar-small").searchable_slots()[index]


def _band(slot=None, floor=0, cap=10**12):
    slot = slot or _slot()
    family = tuple(cell for cell in reference_family(reference_cell()) if floor <= cell_madds(cell, slot) <= cap)
    return LayerBudget(floor=floor, cap=cap, scaled_reference=family[0] if family else reference_cell(),
                       family=family or (reference_cell(),))


def _population(delta=3, size=10, seed=0, band=None):
    population = LayerPopulation(_slot(), band or _band(), delta)
    population.initialise(size, random.Random(seed))
    return population


# ---- Eq. 4 and Eq. 5 against hand-computed values ------------------------------------------

def test_eq4_factor_is_population_mean_count_over_count_and_bounded():
    assert count_compensation([10, 20, 40], 20.0) == pytest.approx([1.0, 1.0, 0.5])
    assert count_compensation([0, 1000], 20.0) == pytest.approx([1.0, 0.25])  # bounded to [1/4, 1]


def test_eq4_acts_after_adams_normalisation():
    """Two cells with the same gradient: Adam alone moves them equally (and a factor on the gradient
    would cancel); the compensated step moves the less trained one by its factor more."""
    alphas = [torch.nn.Parameter(torch.zeros(2))]
    optimizer = torch.optim.Adam(alphas, lr=0.1, betas=(0.0, 0.999))
    compensated_fitness_step(optimizer, alphas, [torch.tensor([-1.0, -1.0])], [count_compensation([5, 20], 10.0)])
    moved = alphas[0].detach()
    assert moved[0] == pytest.approx(2 * moved[1]) and moved[1] > 0


def test_eq5_momentum_write_back():
    population = _population(size=4)
    cells = population.cells()
    population.individuals = [Individual(c, fitness=f, count=1) for c, f in zip(cells, (1.0, -1.0, 0.5, 2.0))]
    population.write_back(cells[:2], [3.0, 1.0], [7, 9], momentum=0.25)
    fitness = [i.fitness for i in population.individuals]
    assert fitness == pytest.approx([0.25 * 1.0 + 0.75 * 3.0, 0.25 * -1.0 + 0.75 * 1.0, 0.5, 2.0])
    assert [i.count for i in population.individuals] == [7, 9, 1, 1]


# ---- the budget band and the prior -----------------------------------------------------------

def test_bands_keep_the_reference_family_at_every_budget():
    skeleton = preset_skeleton("cifar-small")
    family = reference_family(reference_cell())
    assert [cell.expansion for cell in family] == [6, 3, 1]
    for budget in (5_000_000, 10_000_000, 15_000_000, 25_000_000, 60_000_000):
        for slot, band in zip(skeleton.searchable_slots(), layer_budgets(skeleton, budget, reference_cell(), 1.08, 0.6)):
            assert band.floor <= band.cap and band.scaled_reference in family
            assert band.family[0] == band.scaled_reference
            fitting = [cell for cell in family if cell_madds(cell, slot) <= band.cap]
            if fitting:  # the largest expansion of the reference that fits
                assert band.scaled_reference == max(fitting, key=lambda cell: cell_madds(cell, slot))
            assert band.admits(band.scaled_reference, cell_madds(band.scaled_reference, slot))
    with pytest.raises(AutospaceError, match="below the fixed part"):
        layer_budgets(skeleton, 1000, reference_cell(), 1.08, 0.6)


def test_skipped_share_pays_only_for_the_layers_the_search_keeps():
    """With skipped_share 1 the bands are those of a network that skips every skippable layer: the
    band-mean cells of the kept layers alone cost slack x what the budget leaves after the fixed
    parts (with 0, all layers together do); with 0 the bands are the default ones."""
    from autospace.arch.pools import calibration_pool
    from autospace.evolve.layer_budget import CALIBRATION_CELLS, fixed_madds

    skeleton, budget, slack, floor = preset_skeleton("cifar-small"), 10_000_000, 1.08, 0.6
    slots = skeleton.searchable_slots()
    pool = calibration_pool(CALIBRATION_CELLS)

    def band_mean(slot, band):
        inside = [cost for cost in (cell_madds(cell, slot) for cell in pool) if band.floor <= cost <= band.cap]
        return sum(inside) / len(inside)

    available = budget - fixed_madds(skeleton)
    default = layer_budgets(skeleton, budget, reference_cell(), slack, floor)
    assert layer_budgets(skeleton, budget, reference_cell(), slack, floor, 0.0) == default
    skipping = layer_budgets(skeleton, budget, reference_cell(), slack, floor, 1.0)
    kept = [i for i, slot in enumerate(slots) if not slot.has_residual]
    assert 0 < len(kept) < len(slots)
    assert sum(band_mean(slots[i], default[i]) for i in range(len(slots))) == pytest.approx(slack * available, rel=0.02)
    assert sum(band_mean(slots[i], skipping[i]) for i in kept) == pytest.approx(slack * available, rel=0.02)
    assert all(wide.cap > narrow.cap for wide, narrow in zip(skipping, default))
    with pytest.raises(AutospaceError, match="skipped_share"):
        EvolveConfig(skipped_share=1.5)


def test_evolve_warns_when_no_network_of_the_space_fits_the_budget():
    """skipped_share 1 at 10M without the reference family: the scaled references of the kept layers
    alone cost more than the budget, so the search refuses the space (seen on a real run: 11.1M).
    The summary says so, and the family export (e1 in every layer) makes the budget reachable."""
    from autospace.evolve.layer_budget import fixed_madds, space_madds_summary
    from autospace.report.notes import unreachable_budget_warning

    skeleton, budget = preset_skeleton("cifar-small"), 10_000_000
    slots = skeleton.searchable_slots()
    skippable = [slot.has_residual for slot in slots]
    bands = layer_budgets(skeleton, budget, reference_cell(), 1.08, 0.6, 1.0)
    scaled = [[cell_madds(band.scaled_reference, slot)] for band, slot in zip(bands, slots)]
    summary = space_madds_summary(fixed_madds(skeleton), scaled, budget, skippable)
    expected = fixed_madds(skeleton) + sum(costs[0] for costs, skip in zip(scaled, skippable) if not skip)
    assert summary["smallest_searchable_madds"] == expected > budget
    assert summary["cheapest_madds"] > expected  # the skippable layers' blocks count there
    warning = unreachable_budget_warning(summary)
    assert "export_reference_family=true" in warning and f"{expected / 1e6:.2f}M" in warning
    family = [costs + [cell_madds(cell, slot) for cell in reference_family(reference_cell())]
              for costs, slot in zip(scaled, slots)]
    assert unreachable_budget_warning(space_madds_summary(fixed_madds(skeleton), family, budget, skippable)) is None
    with pytest.raises(AutospaceError, match="skippable flags"):
        space_madds_summary(fixed_madds(skeleton), scaled, budget, skippable[:-1])


def _simulate(preset, budget, seed=0):
    import importlib.util
    from pathlib import Path
    import argparse

    path = Path(__file__).resolve().parents[1] / "bench" / "space_centring.py"
    spec = importlib.util.spec_from_file_location("space_centring", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    defaults = EvolveConfig()
    settings = argparse.Namespace(cap_slack=defaults.cap_slack, cap_floor=defaults.cap_floor, max_distance=3,
                                  population_size=10, candidates_per_layer=5, tournament_size=3, momentum=0.5,
                                  offspring=2, max_age=8, top_k=4, regenerate_every=30, regenerations=12)
    return module.simulate(preset, budget, seed, settings)


@pytest.mark.parametrize("preset,budget", [("cifar-small", 10_000_000), ("cifar-small", 25_000_000),
                                           ("cifar-small", 60_000_000), ("cifar", 60_000_000),
                                           ("cifar", 300_000_000)])
def test_a_space_evolved_on_noise_fitness_is_centred_on_the_budget(preset, budget):
    """With pure-noise fitness the admission rules alone must not pull the space off the budget
    (before: 0.41-0.71 of the budget at 15M-60M on cifar-small)."""
    row = _simulate(preset, budget)
    assert 0.85 <= row["uniform_mean_over_budget"] <= 1.15, row
    assert row["costliest_over_budget"] >= 1.0, row


def test_initialisation_seeds_the_family_and_respects_band_and_distance():
    slot = _slot()
    band = layer_budgets(preset_skeleton("cifar-small"), 25_000_000, reference_cell(), 1.08, 0.6)[3]
    population = LayerPopulation(slot, band, 2)
    population.initialise(12, random.Random(1))
    cells = population.cells()
    assert len(cells) == len(set(cells)) == 12
    assert [ind.cell for ind in population.individuals if ind.reference] == list(band.family)
    for cell in cells:
        assert not cell.is_empty() and band.admits(cell, cell_madds(cell, slot))
        assert hamming(cell, band.scaled_reference) <= population.max_distance


def test_children_are_admissible_neighbours_drawn_uniformly():
    slot = _slot()
    reference_madds = cell_madds(reference_cell(), slot)
    band = _band(slot, floor=reference_madds // 2, cap=2 * reference_madds)
    population = LayerPopulation(slot, band, 3)
    parent = reference_cell()
    population.individuals = [Individual(parent, fitness=1.0, count=50)]
    options = [cell for cell in neighbours(parent) if not cell.is_empty() and band.admits(cell, cell_madds(cell, slot))]
    assert len(options) >= 3
    drawn = {cell: 0 for cell in options}
    rng = random.Random(3)
    for _ in range(600):
        population.individuals = [Individual(parent, fitness=1.0, count=50), Individual(options[0], -5.0, count=50)]
        (child,) = population.regenerate(1, 1, 8, 1, False, rng) or [None]
        if child is not None:
            assert hamming(child.cell, parent) >= 1 and child.cell in drawn
            drawn[child.cell] += 1
    counts = [count for cell, count in drawn.items() if cell != options[0]]  # options[0] was taken
    assert min(counts) > 0.5 * max(counts)  # uniform, up to sampling noise


def test_regeneration_only_judges_trained_cells_and_keeps_the_family():
    population = _population(size=6)
    cells = population.cells()
    # the reference-family cell is the weakest and oldest: it stays; an untrained cell is never removed
    # as weakest nor a parent; the child's fitness is pulled halfway to the population mean
    population.individuals = [Individual(cells[0], -9.0, age=20, count=100, reference=True),
                              Individual(cells[1], -8.0, age=1, count=0),
                              Individual(cells[2], 1.0, age=1, count=100),
                              Individual(cells[3], 2.0, age=1, count=100),
                              Individual(cells[4], 3.0, age=1, count=100),
                              Individual(cells[5], 4.0, age=1, count=100)]
    mean = sum(ind.fitness for ind in population.individuals) / 6
    children = population.regenerate(1, 6, 8, 10, False, random.Random(0))
    assert len(children) == 1 and len(population.individuals) == 6
    remaining = population.cells()
    assert cells[0] in remaining and cells[1] in remaining and cells[2] not in remaining
    assert children[0].fitness == pytest.approx(4.0 + 0.5 * (mean - 4.0))  # parent: the fittest trained cell
    assert children[0].count == 0 and children[0].cell in neighbours(cells[5])


def test_populations_stay_distinct_and_sized_through_many_regenerations():
    """Random fitness and counts, some regenerations with fewer children than planned leavers."""
    rng, noise = random.Random(4), random.Random(5)
    band = layer_budgets(preset_skeleton("cifar-small"), 25_000_000, reference_cell(), 1.08, 0.6)[8]
    population = LayerPopulation(preset_skeleton("cifar-small").searchable_slots()[8], band, 3)
    population.initialise(10, rng)
    for round_ in range(300):
        population.individuals = [replace(ind, fitness=noise.gauss(0, 1), count=noise.choice([0, 3, 50]))
                                  for ind in population.individuals]
        population.regenerate(3, 3, 4, 10, round_ < 150, rng)
        cells = population.cells()
        assert len(cells) == len(set(cells)) == 10
        assert any(ind.reference for ind in population.individuals)


def test_removal_takes_oldest_past_max_age_first():
    population = _population(size=4)
    cells = population.cells()
    population.individuals = [Individual(cells[0], 5.0, age=10, count=50), Individual(cells[1], -3.0, age=1, count=50),
                              Individual(cells[2], 1.0, age=2, count=50), Individual(cells[3], 2.0, age=0, count=50)]
    population.regenerate(1, 3, 8, 1, False, random.Random(0))
    assert cells[0] not in population.cells()  # oldest, though fittest
    population.regenerate(1, 3, 8, 1, False, random.Random(1))
    assert cells[1] not in population.cells()  # nobody past max_age: the weakest goes
    assert len(population.individuals) == 4


def test_tournament_picks_distinct_and_best_and_breaks_ties_at_random():
    population = _population(size=8)
    population.individuals = [Individual(i.cell, fitness=float(k)) for k, i in enumerate(population.individuals)]
    winners = population.tournament(5, 3, random.Random(0))
    assert len(set(winners)) == 5
    assert population.tournament(1, 8, random.Random(0)) == [7]  # everyone enters: the fittest wins
    population.individuals = [replace(i, fitness=0.0) for i in population.individuals]
    firsts = {population.tournament(1, 8, random.Random(seed))[0] for seed in range(40)}
    assert len(firsts) > 4  # all tied: not always the first in the list


def test_top_and_export_rank_trained_cells_first_and_add_the_scaled_reference():
    population = _population(size=5)
    cells = population.cells()
    population.individuals = [Individual(cells[0], -1.0, count=50, reference=True), Individual(cells[1], 9.0, count=2),
                              Individual(cells[2], 1.0, count=50), Individual(cells[3], 2.0, count=50),
                              Individual(cells[4], 0.5, count=50)]
    assert [i.cell for i in population.top(2, min_steps=10)] == [cells[3], cells[2]]
    exported = [i.cell for i in population.exported(2, 10, True)]
    assert exported == [cells[3], cells[2], population.budget.scaled_reference]


def test_family_export_adds_every_expansion_of_the_reference_over_the_cap_too():
    """At 10M on cifar-small the band of the first layer admits only e1 cells; with the family
    exported the search also gets the reference at e3 and e6 (costlier than the cap), untrained
    where the population never held them, each once; without it the space stays inside the band."""
    skeleton = preset_skeleton("cifar-small")
    band = layer_budgets(skeleton, 10_000_000, reference_cell(), 1.08, 0.6)[0]
    population = LayerPopulation(skeleton.searchable_slots()[0], band, 3)
    population.initialise(6, random.Random(0))
    population.individuals = [replace(ind, fitness=float(k), count=50) for k, ind in enumerate(population.individuals)]
    family = reference_family(band.scaled_reference)
    over_cap = [cell for cell in family if population.madds(cell) > band.cap]
    assert over_cap  # the premise: some members cost more than the layer may
    plain = [ind.cell for ind in population.exported(2, 10, True)]
    assert all(population.madds(cell) <= band.cap for cell in plain)
    with_family = population.exported(2, 10, True, with_family=True)
    cells = [ind.cell for ind in with_family]
    assert cells[:len(plain)] == plain and len(cells) == len(set(cells))
    assert set(family) <= set(cells)
    held = set(population.cells())
    for ind in with_family:
        if ind.cell not in held:
            assert ind.fitness == 0.0 and ind.count == 0 and ind.cell in family


def test_learned_space_lists_the_family_only_when_asked():
    from autospace.evolve.dea import learned_space

    skeleton = preset_skeleton("cifar-small")
    bands = layer_budgets(skeleton, 10_000_000, reference_cell(), 1.08, 0.6)
    populations = []
    for slot, band in zip(skeleton.searchable_slots(), bands):
        population = LayerPopulation(slot, band, 3)
        population.initialise(5, random.Random(1))
        populations.append(population)
    family_sizes = [len(reference_family(band.scaled_reference)) for band in bands]
    plain = learned_space(skeleton, populations, EvolveConfig(top_k=2, min_trained_steps=0), {})
    widened = learned_space(skeleton, populations, EvolveConfig(top_k=2, min_trained_steps=0,
                                                                export_reference_family=True), {})
    for layer, (a, b) in enumerate(zip(plain.layers, widened.layers)):
        family = set(reference_family(bands[layer].scaled_reference))
        assert family <= {c.block.cell for c in b}
        assert len(b) >= max(len(a), family_sizes[layer])
    assert sum(len(layer) for layer in widened.layers) > sum(len(layer) for layer in plain.layers)


# ---- fitness diagnostics -----------------------------------------------------------------

def test_persistence_is_positive_for_signal_and_not_for_noise():
    rng = random.Random(0)
    quality = [rng.gauss(0, 1) for _ in range(12)]
    signal, noise = FitnessPersistence(), FitnessPersistence()
    for _ in range(8):
        alphas = [q * 0.1 + rng.gauss(0, 0.02) for q in quality]
        signal.observe(centred_changes([list(range(12))], [[0.0] * 12], [alphas]))
        noise.observe(centred_changes([list(range(12))], [[0.0] * 12], [[rng.gauss(0, 0.1) for _ in range(12)]]))
    assert signal.overall() > 0.8 and abs(noise.overall()) < 0.3


def test_noise_warning_names_the_numbers_and_what_helps():
    config = EvolveConfig()
    assert noise_warning(0.45, 10, 0.3, 400, config) is None
    text = noise_warning(0.12, 10, -0.05, 400, config)
    assert "12.0%" in text and "-0.05" in text and "epochs" in text and "candidates_per_layer" in text
    assert noise_warning(0.45, 10, -0.1, 400, config) is not None  # learned, but the ranking does not persist
    assert noise_warning(0.45, 10, 0.05, 400, config) is not None  # within two standard errors of zero (0.1)
    assert noise_warning(0.45, 10, None, 0, config) is not None  # never measured: not signal


def test_parse_reference():
    assert parse_reference("irb") == reference_cell()
    cell = parse_reference("e3-concat:conv3x3,zero,zero,identity,identity,zero")
    assert cell.expansion == 3 and cell.aggregation == "concat" and cell.op(0, 1) == "conv3x3"
    with pytest.raises(AutospaceError, match="reference"):
        parse_reference("e3-sum:conv3x3")


# ---- end to end on synthetic data ---------------------------------------------------------

def _config(**changes):
    settings = dict(data="synthetic:384,64", preset="cifar-small", budget_madds=20_000_000, epochs=2,
                    batch_size=32, population_size=6, candidates_per_layer=3, top_k=2,
                    regenerate_every=4, warmup_epochs=0.5, device="cpu", progress=False,
                    tiers=0, min_windows=0, fitness_average="momentum")  # the band mode (tests/test_cost_tiers.py: tiers)
    settings.update(changes)
    return EvolveConfig(**settings)


def _layers(path):
    return json.loads((path / "space.json").read_text())["layers"]


def _history(path):
    return [json.loads(line) for line in (path / "history.jsonl").read_text().splitlines()]


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("evolve") / "run"
    evolve("autospace", _config(), out)
    return out


def test_run_writes_a_valid_space_and_reports(finished_run):
    space = load_space(finished_run / "space.json")
    assert len(space.layers) == preset_skeleton("cifar-small").num_searchable
    assert all(2 <= len(layer) <= 3 for layer in space.layers)  # top-K, plus the scaled reference if not in it
    references = [band.scaled_reference for band in layer_budgets(
        preset_skeleton("cifar-small"), 20_000_000, reference_cell(), 1.08, 0.6)]
    assert all(any(c.block.cell == reference for c in layer) for layer, reference in zip(space.layers, references))
    for name in ("space.md", "fitness.png", "history.jsonl", "config.yaml"):
        assert (finished_run / name).stat().st_size > 0
    entries = _layers(finished_run)
    assert all({"fitness", "madds", "params", "trained_iterations"} <= set(e) for layer in entries for e in layer)
    from autospace.evolve.layer_budget import fixed_madds
    slots = preset_skeleton("cifar-small").searchable_slots()
    smallest = fixed_madds(preset_skeleton("cifar-small")) + sum(
        0 if slot.has_residual else min(e["madds"] for e in layer) for slot, layer in zip(slots, entries))
    assert space.metadata["space_madds"]["smallest_searchable_madds"] == smallest


def test_constraints_hold_throughout_the_run(finished_run):
    skeleton = preset_skeleton("cifar-small")
    bands = json.loads((finished_run / "space.json").read_text())["metadata"]["layer_madds_bands"]
    slots = skeleton.searchable_slots()
    history = _history(finished_run)
    assert any(r["constrained"] for r in history) and not all(r["constrained"] for r in history)
    for record in history:
        for layer, population in enumerate(record["populations"]):
            assert any(entry["reference"] for entry in population)  # the prior stays
            for entry in population:
                cell = block_from_dict({"type": "cell", **entry["cell"]}).cell
                floor, cap = bands[layer]
                assert entry["reference"] or floor <= cell_madds(cell, slots[layer]) <= cap


def test_no_reproduction_before_the_first_fitness_step(tmp_path):
    """Warm-up regenerations (no fitness yet) keep every population as it was initialised."""
    out = tmp_path / "warm"
    evolve("autospace", _config(warmup_epochs=1.0, epochs=2), out)
    history = _history(out)
    warm = [r for r in history if r["fitness_steps"] == 0]
    assert len(warm) >= 2
    first = [sorted(str(e["cell"]) for e in layer) for layer in warm[0]["populations"]]
    for record in warm[1:]:
        assert [sorted(str(e["cell"]) for e in layer) for layer in record["populations"]] == first
    assert [sorted(str(e["cell"]) for e in layer) for layer in history[-1]["populations"]] != first


def test_every_regeneration_logs_the_fitness_diagnostics(finished_run):
    history = _history(finished_run)
    assert all(0.0 <= r["heldout_top1"] <= 1.0 for r in history)
    assert any(r["persistence"] is not None for r in history)
    metadata = json.loads((finished_run / "space.json").read_text())["metadata"]
    assert {"heldout_top1", "persistence", "chance", "warning"} <= set(metadata["fitness_diagnostics"])
    summary = metadata["space_madds"]
    assert summary["cheapest_madds"] <= summary["uniform_mean_madds"] <= summary["costliest_madds"]
    assert "uniform-mean" in (finished_run / "space.md").read_text()


def test_fitness_moves_during_the_run(finished_run):
    history = _history(finished_run)
    fitness = [e["fitness"] for layer in history[-1]["populations"] for e in layer]
    assert max(fitness) - min(fitness) > 0


def test_same_seed_same_space(finished_run, tmp_path):
    evolve("autospace", _config(), tmp_path / "again")
    assert _layers(tmp_path / "again") == _layers(finished_run)


def test_resume_after_kill_gives_the_same_space(finished_run, tmp_path):
    from autospace.evolve.dea import evolve_autospace

    out = tmp_path / "killed"
    assert evolve_autospace(_config(), out, stop_after_regeneration=2) is None
    assert not (out / "space.json").exists()
    evolve("autospace", _config(), out, resume=True)
    assert _layers(out) == _layers(finished_run)
    assert len(_history(out)) == len(_history(finished_run))


def test_cli_evolve_and_errors(tmp_path, capsys):
    assert main(["evolve", "--data", "synthetic:256,64", "--preset", "cifar-small", "--budget-madds", "15M",
                 "--out", str(tmp_path / "cli"), "--device", "cpu", "--set", "epochs=1",
                 "--set", "batch_size=32", "--set", "population_size=4", "--set", "candidates_per_layer=2",
                 "--set", "top_k=2", "--set", "regenerate_every=3", "--set", "progress=false"]) == 0
    assert load_space(tmp_path / "cli" / "space.json").name == "autospace"
    assert main(["evolve", "--data", "synthetic", "--budget-madds", "lots", "--out", str(tmp_path / "x")]) == 2
    assert "60M" in capsys.readouterr().err
    assert main(["evolve", "--out", str(tmp_path / "cli"), "--data", "synthetic"]) == 2  # not empty
    assert "--resume" in capsys.readouterr().err


def test_config_rejects_inconsistent_values():
    with pytest.raises(AutospaceError, match="candidates_per_layer"):
        load_config(EvolveConfig, None, ["candidates_per_layer=20", "population_size=10"])
    with pytest.raises(AutospaceError, match="momentum"):
        load_config(EvolveConfig, None, ["momentum=1.5"])
