"""Latency tables (issue 18): round trip, refusal, prediction = sum of entries, a tiny real measurement."""

from __future__ import annotations

import json
import random

import pytest
import torch

from autospace.arch.presets import preset_skeleton
from autospace.arch.space import manual_space
from autospace.latency.keys import block_key, fixed_keys
from autospace.latency.prediction import network_latency_ms
from autospace.latency.table import (
    OVERHEAD_KEY, LatencyEntry, LatencyTable, load_table, require_same_conditions, save_table,
)
from autospace.errors import AutospaceError
from autospace.nn.block_supernet import layer_choices
from autospace.runtime.device import hardware_info

HERE = hardware_info("cpu")["device_name"]  # fake tables are this machine's: other conditions are refused


def fake_table(space, seed: int = 0, overhead: float = 0.0) -> LatencyTable:
    """Every key a network of `space` needs, with a distinct random time."""
    rng = random.Random(seed)
    skeleton = space.skeleton
    keys = fixed_keys(skeleton) + [block_key(block, slot) for slot, blocks in
                                   zip(skeleton.searchable_slots(), layer_choices(space)) for block in blocks
                                   if not block.is_empty()]
    entries = {key: LatencyEntry(rng.uniform(0.1, 2.0), 0.01, 5, rng.uniform(0.05, 0.1)) for key in keys}
    if overhead:
        entries[OVERHEAD_KEY] = LatencyEntry(overhead, 0.0, 3, overhead)
    return LatencyTable("cpu", HERE, 1, 1, torch.__version__, "fp32", statistic="median", entries=entries)


def small_space():
    return manual_space(preset_skeleton("cifar-small"))


def test_table_round_trips_through_json(tmp_path):
    table = fake_table(small_space())
    save_table(tmp_path / "t.json", table)
    assert load_table(tmp_path / "t.json") == table
    data = json.loads((tmp_path / "t.json").read_text())
    data["entries"][next(iter(data["entries"]))]["median_ms"] = -1
    (tmp_path / "bad.json").write_text(json.dumps(data))
    with pytest.raises(AutospaceError, match="damaged"):
        load_table(tmp_path / "bad.json")
    (tmp_path / "other.json").write_text("{}")
    with pytest.raises(AutospaceError, match="not a latency table"):
        load_table(tmp_path / "other.json")


def test_table_of_another_device_or_batch_size_is_refused_naming_both():
    table = fake_table(small_space())
    require_same_conditions(table, "cpu", HERE, 1)
    with pytest.raises(AutospaceError, match=r"at batch size 1.*cuda:0 \(H200\) at batch size 1"):
        require_same_conditions(table, "cuda:0", "H200", 1)
    with pytest.raises(AutospaceError, match="batch size 1, but this is cpu .* at batch size 8"):
        require_same_conditions(table, "cpu", HERE, 8)


@pytest.mark.parametrize("statistic", ["median", "min"])
def test_predicted_latency_is_the_sum_of_the_entries(statistic):
    from dataclasses import replace

    space = small_space()
    table = replace(fake_table(space, overhead=0.25), statistic=statistic)
    rng = random.Random(1)
    for _ in range(5):
        network = space.skeleton.network([rng.choice(blocks) for blocks in layer_choices(space)])
        keys = fixed_keys(network) + [OVERHEAD_KEY] + [block_key(layer.block, slot) for layer, slot in
                                                       zip(network.layers, network.slots())
                                                       if slot.searchable and not layer.block.is_empty()]
        expected = sum(table.entries[key].value(statistic) for key in keys)
        assert network_latency_ms(table, network) == pytest.approx(expected, rel=1e-12)


def test_missing_entry_names_the_layer_and_the_command():
    space = small_space()
    table = fake_table(space)
    network = space.skeleton.network([blocks[0] for blocks in layer_choices(space)])
    key = block_key(network.layers[1].block, network.slots()[1])
    del table.entries[key]
    with pytest.raises(AutospaceError, match="no entry for layer 1.*autospace latency-table"):
        network_latency_ms(table, network)


def test_measured_table_covers_a_space_resumes_and_refuses_another_batch_size(tmp_path):
    from autospace.arch.blocks import CellBlock, InvertedResidual, MultiBranch
    from autospace.arch.cell import reference_cell
    from autospace.arch.network import Skeleton, Stage
    from autospace.arch.space import Candidate, SearchSpace
    from autospace.latency.timing import measure_latency_table

    skeleton = Skeleton(stages=(Stage(8, 2, 2),), stem_channels=8, first_channels=8, head_channels=16, resolution=8)
    multi = MultiBranch((InvertedResidual(3, 3), CellBlock(reference_cell())))
    space = SearchSpace(skeleton, ((Candidate(InvertedResidual(3, 3)), Candidate(multi)),
                                   (Candidate(CellBlock(reference_cell())), Candidate(InvertedResidual(5, 6)))))
    out = tmp_path / "t.json"
    table = measure_latency_table(space, "cpu", 1, out, warmup=1, repeats=3, progress=False)
    assert table.calibration is not None and load_table(out) == table
    rng = random.Random(0)
    for _ in range(4):  # every network of the space, multi-branch included, has a prediction
        network = skeleton.network([rng.choice(blocks) for blocks in layer_choices(space)])
        assert network_latency_ms(table, network) > 0
    again = measure_latency_table(space, "cpu", 1, out, warmup=1, repeats=3, progress=False)
    assert again == table  # nothing left to measure: the table is kept as it was
    with pytest.raises(AutospaceError, match="batch size 1.*batch size 2"):
        measure_latency_table(space, "cpu", 2, out, warmup=1, repeats=3, progress=False)


# ---- searching under a latency target ---------------------------------------------------------------

def test_expected_latency_equals_brute_force_enumeration():
    import itertools

    import torch

    from autospace.latency.prediction import candidate_latencies_ms, fixed_latency_ms
    from autospace.search.budget import expected_madds

    space = small_space()
    table = fake_table(space, overhead=0.1)
    choices = layer_choices(space)[:3]  # three layers: every network of them enumerated
    tables = candidate_latencies_ms(table, space.skeleton, layer_choices(space))[:3]
    fixed = 1.5
    logits = [torch.randn(len(c), generator=torch.Generator().manual_seed(i), requires_grad=True)
              for i, c in enumerate(choices)]
    probabilities = [torch.softmax(l.double(), 0) for l in logits]
    expected = expected_madds(probabilities, tables, fixed)
    brute = sum(float((probabilities[0][a] * probabilities[1][b] * probabilities[2][c]).detach())
                * (fixed + tables[0][a] + tables[1][b] + tables[2][c])
                for a, b, c in itertools.product(*(range(len(t)) for t in tables)))
    assert float(expected) == pytest.approx(brute, rel=1e-10)
    expected.backward()
    assert all(l.grad is not None and l.grad.abs().sum() > 0 for l in logits)
    assert fixed_latency_ms(table, space.skeleton) > 0


def test_most_probable_within_several_constraints_matches_brute_force():
    import itertools

    from autospace.search.constraints import Constraint, most_probable_within

    rng = random.Random(3)
    for trial in range(30):
        sizes = [rng.randint(2, 4) for _ in range(4)]
        scores = [[rng.uniform(-3, 0) for _ in range(n)] for n in sizes]
        # latency in microseconds with sub-microsecond parts: the DP's rounding must stay exact and safe
        latency = Constraint("latency_us", tuple(tuple(rng.randint(1, 40) + 0.25 for _ in range(n)) for n in sizes),
                             5.0, float(rng.randint(40, 120)))
        madds = Constraint("madds", tuple(tuple(float(rng.randint(1, 50)) for _ in range(n)) for n in sizes),
                           3.0, float(rng.randint(60, 150)))
        floor = 0.9 if trial % 2 else 0.0
        feasible = [c for c in itertools.product(*(range(n) for n in sizes))
                    if latency.cost(c) <= latency.target and madds.cost(c) <= madds.target]
        if not feasible:
            continue
        in_band = [c for c in feasible if latency.cost(c) >= floor * latency.target]
        pool = in_band or feasible
        best = max(sum(s[i] for s, i in zip(scores, c)) for c in pool)
        found = most_probable_within(scores, [madds, latency], floor)
        assert latency.cost(found) <= latency.target and madds.cost(found) <= madds.target
        assert sum(s[i] for s, i in zip(scores, found)) == pytest.approx(best), (trial, found)


@pytest.mark.parametrize("method", ["proxyless-g", "proxyless-rl", "spos"])
def test_search_with_a_latency_target_returns_a_network_within_it(method, tmp_path):
    from autospace.search import SearchConfig, search
    from autospace.search.constraints import Constraint

    space = small_space()
    table = fake_table(space)
    save_table(tmp_path / "table.json", table)
    from autospace.latency.prediction import candidate_latencies_ms, fixed_latency_ms

    rows = candidate_latencies_ms(table, space.skeleton, layer_choices(space))
    span = Constraint("latency_us", tuple(map(tuple, rows)), fixed_latency_ms(table, space.skeleton), 1.0)
    smallest = span.smallest()
    largest = span.fixed + sum(max(row) for row in rows)
    target = smallest + 0.3 * (largest - smallest)  # binds: most networks of the space are slower
    config = SearchConfig(data="synthetic:256,64", preset="cifar-small", method=method, target_madds=10**9,
                          target_latency_ms=target, latency_table=str(tmp_path / "table.json"), epochs=2,
                          warmup_epochs=1, batch_size=32, arch_every=1, arch_lr=0.01, device="cpu", progress=False,
                          population=6, top=2, mutations=3, crossovers=3, generations=2, recalibration_batches=1,
                          eval_batches=1)
    network = search(config, tmp_path / method)
    result = json.loads((tmp_path / method / "result.json").read_text())
    predicted = network_latency_ms(table, network)
    assert predicted <= target
    assert result["predicted_latency_ms"] == pytest.approx(predicted, abs=1e-3)
    assert result["target_latency_ms"] == pytest.approx(target) and result["within_budget"]


def test_latency_target_without_a_table_is_refused():
    from autospace.search import SearchConfig

    with pytest.raises(AutospaceError, match="needs latency_table"):
        SearchConfig(target_latency_ms=2.0)


def test_nse_latency_penalty_pulls_expected_latency_to_the_target():
    """The squared latency term's gradient moves E[latency] toward the target from either side,
    and the MAdds cap adds nothing below the budget."""
    import torch
    from types import SimpleNamespace

    from autospace.search.budget import expected_madds
    from autospace.evolve.branch_masks import latency_penalty

    rows, fixed = [[100.0, 300.0], [50.0, 400.0]], 200.0
    config = SimpleNamespace(target_latency_ms=0.6, budget_madds=10**9, madds_weight=1.0)
    for start, direction in ((3.0, -1), (-3.0, 1)):  # expensive -> pulled down; cheap -> pulled up
        alphas = [torch.full((2,), 0.0).index_fill(0, torch.tensor([1]), start).requires_grad_() for _ in rows]
        probabilities = [torch.sigmoid(a) for a in alphas]
        before = float(expected_madds(probabilities, rows, fixed).detach())
        latency_penalty(torch.tensor(1.0), probabilities, (rows, fixed), config).backward()
        with torch.no_grad():
            after = float(expected_madds([torch.sigmoid(a - 0.1 * a.grad) for a in alphas], rows, fixed))
        assert (after - before) * direction > 0, (start, before, after)


def test_nse_with_a_latency_target_runs_and_measures_missing_entries(tmp_path, monkeypatch):
    from autospace.latency import timing
    from autospace.evolve.nse import evolve_nse
    from autospace.evolve.nse_config import NseConfig
    from autospace.latency.timing import measure_latency_table

    table = tmp_path / "table.json"
    monkeypatch.setattr(timing, "CALIBRATION_NETWORKS", 4)  # the extension's recalibration: kept short here
    measure_latency_table(small_space(), "cpu", 1, table, warmup=1, repeats=3, progress=False)
    config = NseConfig(data="synthetic:256,64", preset="cifar-small", budget_madds=10**9, subset_size=2,
                       rounds=1, epochs_per_round=1, batch_size=32, warmup_epochs=0.3, samples=4, sample_draws=20,
                       recalibration_batches=1, eval_batches=1, checkpoint_every=3, progress=False, device="cpu",
                       target_latency_ms=3.0, latency_table=str(table))
    space = evolve_nse(config, tmp_path / "nse")
    assert space is not None
    assert len(load_table(table).entries) > len(fake_table(small_space()).entries)  # the pool's entries were added


def test_timing_a_table_restores_the_callers_thread_count():
    """A table is timed on its own thread count; the process keeps its own afterwards (tests that train
    after this one in the same process must not silently run on one thread)."""
    import torch

    from autospace.latency.timing import restores_torch_threads

    before = torch.get_num_threads()
    restores_torch_threads(lambda: torch.set_num_threads(1))()
    assert torch.get_num_threads() == before
