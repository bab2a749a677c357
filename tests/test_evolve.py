"""The AutoSpace DEA: population mechanics, Eq. 4 / Eq. 5, constraints, determinism, resume."""

import json
import random

import pytest
import torch

from autospace.arch import load_space, preset_skeleton, reference_cell
from autospace.arch.cell import hamming, mutate
from autospace.arch.codec import block_from_dict
from autospace.cli import main
from autospace.config import load_config
from autospace.errors import AutospaceError
from autospace.evolve import EvolveConfig, evolve
from autospace.evolve.dea import parse_reference, scale_fitness_gradient
from autospace.evolve.population import Individual, LayerPopulation, cell_madds, layer_madds_caps


def _slot(index=3):
    return preset_skeleton("cifar-small").searchable_slots()[index]


def _population(cap=10**12, delta=3, size=10, seed=0):
    population = LayerPopulation(_slot(), reference_cell(), cap, delta)
    population.initialise(size, random.Random(seed))
    return population


# ---- Eq. 4 and Eq. 5 against hand-computed values ------------------------------------------

def test_eq4_scales_by_mean_count_over_count():
    gradient = torch.tensor([1.0, -2.0, 3.0])
    scaled = scale_fitness_gradient(gradient, [10, 20, 30])  # T_bar = 20
    assert torch.allclose(scaled, torch.tensor([2.0, -2.0, 2.0]))
    # an untrained cell counts as one step, never a division by zero
    assert torch.allclose(scale_fitness_gradient(torch.ones(2), [0, 3]), torch.tensor([2.0, 2.0 / 3.0]))


def test_eq5_momentum_write_back():
    population = _population(size=4)
    cells = population.cells()
    population.individuals = [Individual(c, fitness=f, count=1) for c, f in zip(cells, (1.0, -1.0, 0.5, 2.0))]
    population.write_back(cells[:2], [3.0, 1.0], [7, 9], momentum=0.25)
    fitness = [i.fitness for i in population.individuals]
    assert fitness == pytest.approx([0.25 * 1.0 + 0.75 * 3.0, 0.25 * -1.0 + 0.75 * 1.0, 0.5, 2.0])
    assert [i.count for i in population.individuals] == [7, 9, 1, 1]


# ---- population constraints ------------------------------------------------------------------

def test_initialisation_respects_distance_cap_and_distinctness():
    slot = _slot()
    cap = cell_madds(reference_cell(), slot)
    population = LayerPopulation(slot, reference_cell(), cap, 2)
    population.initialise(12, random.Random(1))
    cells = population.cells()
    assert len(cells) == len(set(cells)) == 12
    for cell in cells:
        assert not cell.is_empty()
        assert hamming(cell, reference_cell()) <= 2
        assert cell_madds(cell, slot) <= cap


def test_initialisation_that_cannot_fill_says_why():
    with pytest.raises(AutospaceError, match="MAdds cap"):
        LayerPopulation(_slot(), reference_cell(), 1, 1).initialise(10, random.Random(0))


def test_reference_constraint_holds_then_lifts():
    population = _population(delta=2, size=12, seed=3)
    rng = random.Random(0)
    constrained = [c for _ in range(30) for c in population.reproduce(4, 3, True, rng)]
    assert constrained and all(hamming(c.cell, population.reference) <= 2 for c in constrained)
    free = [c for _ in range(30) for c in population.reproduce(4, 3, False, rng)]
    assert any(hamming(c.cell, population.reference) > 2 for c in free)


def test_offspring_never_break_the_cap():
    slot = _slot()
    cap = cell_madds(reference_cell(), slot)
    population = LayerPopulation(slot, reference_cell(), cap, 3)
    population.initialise(10, random.Random(2))
    rng = random.Random(5)
    for _ in range(40):
        for child in population.reproduce(3, 3, False, rng):
            assert cell_madds(child.cell, slot) <= cap and not child.cell.is_empty()


def test_tournament_picks_distinct_and_best():
    population = _population(size=8)
    population.individuals = [Individual(i.cell, fitness=float(k)) for k, i in enumerate(population.individuals)]
    winners = population.tournament(5, 3, random.Random(0))
    assert len(set(winners)) == 5
    assert population.tournament(1, 8, random.Random(0)) == [7]  # everyone enters: the fittest wins


def test_removal_takes_oldest_past_max_age_else_weakest():
    population = _population(size=4)
    cells = population.cells()
    population.individuals = [Individual(cells[0], 5.0, age=10), Individual(cells[1], -3.0, age=1),
                              Individual(cells[2], 1.0, age=2), Individual(cells[3], 2.0, age=0)]
    child = Individual(mutate(cells[0], random.Random(0)), 0.0)
    population.replace_with([child], max_age=8, protected={child.cell})
    assert cells[0] not in population.cells() and child.cell in population.cells()  # oldest, though fittest
    child2 = Individual(mutate(cells[1], random.Random(1)), 0.0)
    population.replace_with([child2], max_age=8, protected={child2.cell})
    assert cells[1] not in population.cells()  # nobody past max_age: the weakest goes
    assert len(population.individuals) == 4


def test_layer_caps_share_the_budget_and_refuse_too_small_budgets():
    skeleton = preset_skeleton("cifar-small")
    caps = layer_madds_caps(skeleton, 20_000_000, reference_cell(), 1.0)
    assert len(caps) == skeleton.num_searchable and all(cap > 0 for cap in caps)
    assert sum(caps) <= 20_000_000
    with pytest.raises(AutospaceError, match="below the fixed part"):
        layer_madds_caps(skeleton, 1000, reference_cell(), 1.0)


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
                    regenerate_every=4, warmup_epochs=0.5, device="cpu", progress=False)
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
    assert all(len(layer) == 2 for layer in space.layers)
    for name in ("space.md", "fitness.png", "history.jsonl", "config.yaml"):
        assert (finished_run / name).stat().st_size > 0
    entries = _layers(finished_run)
    assert all({"fitness", "madds", "params", "trained_iterations"} <= set(e) for layer in entries for e in layer)


def test_constraints_hold_throughout_the_run(finished_run):
    config = _config()
    skeleton = preset_skeleton("cifar-small")
    caps = layer_madds_caps(skeleton, config.budget_madds, reference_cell(), config.cap_slack)
    slots = skeleton.searchable_slots()
    history = _history(finished_run)
    assert any(r["constrained"] for r in history) and not all(r["constrained"] for r in history)
    for record in history:
        for layer, population in enumerate(record["populations"]):
            for entry in population:
                cell = block_from_dict({"type": "cell", **entry["cell"]}).cell
                assert cell_madds(cell, slots[layer]) <= caps[layer]


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
