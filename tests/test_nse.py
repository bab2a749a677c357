"""NSE (DESIGN 2.5): the two-subset estimator, the Pareto front, the pool, and whole runs."""

from __future__ import annotations

import itertools
import json
import random
from dataclasses import replace

import pytest
import torch

from autospace.arch import InvertedResidual, load_space, preset_skeleton
from autospace.errors import AutospaceError
from autospace.evolve.api import nse_report
from autospace.evolve.nse import evolve_nse, pick_near_budget
from autospace.evolve.nse_config import NseConfig
from autospace.evolve.pareto import pareto_front
from autospace.arch.pools import inverted_residual_pool, layer_pools
from autospace.evolve.pool import LayerSubset, surviving_operators
from autospace.evolve.branch_masks import (
    expected_branch_madds, mask_madds, sample_masks, squared_budget_penalty, two_subset_gradient,
)


# ---- the two-subset estimator ------------------------------------------------------------------

def toy_layer_loss(mask, outputs, x, target):
    """A residual multi-branch layer: y = mean of the active branch outputs + x; L nonlinear in y."""
    y = x if not mask else torch.stack([outputs[i] for i in mask]).mean(0) + x
    return float(((y - target) ** 2).sum() + torch.sin(3 * y).sum())


def all_masks(size):
    return [tuple(i for i in range(size) if bits >> i & 1) for bits in range(1 << size)]


def mask_probability(mask, p):
    on = torch.zeros_like(p)
    on[list(mask)] = 1.0
    return torch.prod(on * p + (1 - on) * (1 - p))


def test_two_subset_estimator_is_unbiased_exactly():
    """E over both masks of 1/2 (m - m')(L(m) - L(m')) equals the autograd gradient of the exact
    E_m[L(m)] (every mask enumerated) with respect to alpha."""
    torch.manual_seed(0)
    size = 4
    outputs, x, target = torch.randn(size, 5), torch.randn(5), torch.randn(5)
    alpha = torch.tensor([0.3, -1.2, 0.8, 0.0], requires_grad=True)
    masks = all_masks(size)
    losses = {mask: toy_layer_loss(mask, outputs, x, target) for mask in masks}
    p = torch.sigmoid(alpha)
    expected_loss = sum(mask_probability(mask, p) * losses[mask] for mask in masks)
    (exact,) = torch.autograd.grad(expected_loss, alpha)

    p = p.detach().double()
    estimate = torch.zeros(size, dtype=torch.float64)
    for first, second in itertools.product(masks, masks):
        weight = mask_probability(first, p) * mask_probability(second, p)
        (g,) = two_subset_gradient([first], [second], losses[first], losses[second], [size])
        estimate += weight * g.double()
    torch.testing.assert_close(estimate.float(), exact, rtol=1e-5, atol=1e-6)
    assert exact.abs().min() > 1e-3  # a real gradient, not a trivial zero


def test_two_subset_estimator_monte_carlo_with_sampled_masks():
    """The same, through `sample_masks`: the sample mean lies within 5 standard errors."""
    torch.manual_seed(1)
    size = 3
    outputs, x, target = torch.randn(size, 4), torch.randn(4), torch.randn(4)
    alpha = torch.tensor([0.5, -0.5, 1.0], requires_grad=True)
    p = torch.sigmoid(alpha)
    expected_loss = sum(mask_probability(m, p) * toy_layer_loss(m, outputs, x, target) for m in all_masks(size))
    (exact,) = torch.autograd.grad(expected_loss, alpha)
    generator = torch.Generator().manual_seed(2)
    samples = []
    for _ in range(6000):
        first, second = (sample_masks([p.detach()], generator, [False])[0] for _ in range(2))
        (g,) = two_subset_gradient([first], [second], toy_layer_loss(first, outputs, x, target),
                                   toy_layer_loss(second, outputs, x, target), [size])
        samples.append(g)
    samples = torch.stack(samples)
    error = (samples.mean(0) - exact).abs()
    assert (error <= 5 * samples.std(0) / len(samples) ** 0.5 + 1e-6).all(), (samples.mean(0), exact)


def test_sample_masks_frequencies_and_required_layers():
    generator = torch.Generator().manual_seed(0)
    p = torch.tensor([0.1, 0.5, 0.9])
    counts = torch.zeros(3)
    for _ in range(4000):
        (mask,) = sample_masks([p], generator, [False])
        counts[list(mask)] += 1
    torch.testing.assert_close(counts / 4000, p, atol=0.03, rtol=0)
    # a layer without a residual is never empty: the most probable candidate is turned on
    tiny = torch.tensor([1e-6, 2e-6])
    for _ in range(20):
        assert sample_masks([tiny], generator, [True])[0] == (1,)
        assert sample_masks([tiny], generator, [False])[0] == ()


def test_expected_madds_and_penalty_gradient():
    alphas = [torch.tensor([0.0, 1.0], requires_grad=True), torch.tensor([-1.0], requires_grad=True)]
    madds = [[10, 30], [50]]
    p = [torch.sigmoid(a) for a in alphas]
    expected = expected_branch_madds(p, madds, 100)
    by_enumeration = sum(
        float(mask_probability(m0, p[0].detach()) * mask_probability(m1, p[1].detach())) * mask_madds([m0, m1], madds, 100)
        for m0 in all_masks(2) for m1 in all_masks(1))
    assert float(expected.detach()) == pytest.approx(by_enumeration)
    penalty = squared_budget_penalty(expected, 80, 2.0)
    assert float(penalty.detach()) == pytest.approx(2.0 * ((by_enumeration - 80) / 80) ** 2)
    penalty.backward()
    # dP/dalpha_li = 2 w (E - T) / T^2 * madds_li * p (1 - p)
    factor = 2 * 2.0 * (by_enumeration - 80) / 80 ** 2
    for a, row in zip(alphas, madds):
        s = torch.sigmoid(a.detach())
        torch.testing.assert_close(a.grad, factor * torch.tensor(row, dtype=torch.float32) * s * (1 - s))


# ---- Pareto front ------------------------------------------------------------------------------

def brute_force_front(points):
    return sorted(i for i, (m, a) in enumerate(points)
                  if not any(m2 <= m and a2 >= a and (m2, a2) != (m, a) for m2, a2 in points))


@pytest.mark.parametrize("seed", range(20))
def test_pareto_front_matches_brute_force(seed):
    rng = random.Random(seed)
    n = rng.randint(1, 40)
    # small integer grids force ties in MAdds, in accuracy and duplicate points
    points = [(rng.randint(0, 8) * 1e6, rng.randint(0, 6) / 6) for _ in range(n)]
    assert sorted(pareto_front(points)) == brute_force_front(points)


def test_pareto_front_empty_and_order():
    assert pareto_front([]) == []
    front = pareto_front([(3, 0.9), (1, 0.5), (2, 0.7), (2, 0.6)])
    assert front == [1, 2, 0]  # ascending MAdds


# ---- the pool, survivors and refills -----------------------------------------------------------

def test_pool_contents():
    pool = inverted_residual_pool()
    assert len(pool) == 4 * 3 + 3
    assert InvertedResidual(kernel=9, expansion=1) in pool
    assert InvertedResidual(kernel=3, expansion=6, dilation=2) in pool
    assert len(inverted_residual_pool(plain=False)) == 3
    with pytest.raises(AutospaceError, match="empty operator pool"):
        layer_pools(2, irb=False, dilated=False)


@pytest.mark.parametrize("seed", range(5))
def test_refill_never_re_adds_a_tried_operator(seed):
    rng = random.Random(seed)
    layer = LayerSubset(inverted_residual_pool())
    ever_added = []
    while True:
        added = layer.refill(5, rng)
        assert not set(added) & set(ever_added), "an operator was tried twice"
        ever_added += added
        assert len(layer.subset) <= 5 and len(set(layer.subset)) == len(layer.subset)
        if not layer.untried():
            break
        # keep a random part, as a round would
        layer.keep_only([block for block in layer.subset if rng.random() < 0.4])
    assert sorted(map(str, ever_added)) == sorted(map(str, layer.pool))  # every operator tried exactly once
    assert layer.refill(5, rng) == []  # an exhausted pool adds nothing


def test_surviving_operators():
    subset = ["a", "b", "c", "d"]
    front = [(0, 2), (2,), ()]
    assert surviving_operators(subset, front, [0.9, 0.9, 0.9, 0.9], 0.3) == ["a", "c"]
    assert surviving_operators(subset, front, [0.2, 0.9, 0.9, 0.9], 0.3) == ["c"]
    # nothing survives the threshold: the front's most probable operator stays
    assert surviving_operators(subset, front, [0.2, 0.9, 0.25, 0.9], 0.3) == ["c"]
    # nothing on the front at all: the most probable operator stays
    assert surviving_operators(subset, [()], [0.1, 0.2, 0.15, 0.05], 0.3) == ["b"]


def test_pick_near_budget():
    rng = random.Random(0)
    draws = [[(i,)] for i in range(10)]
    madds = [50, 90, 95, 100, 105, 110, 200, 30, 100, 101]
    picked = pick_near_budget(draws, madds, 100, 0.06, 3, rng)
    assert len(picked) == 3 and all(abs(madds[i] - 100) <= 6 for i in picked)
    picked = pick_near_budget(draws, madds, 100, 0.001, 4, rng)  # too few near: nearest others fill
    assert sorted(madds[i] for i in picked) == [100, 100, 101, 105] or sorted(madds[i] for i in picked) == [
        95, 100, 100, 101]


# ---- whole runs (synthetic data) --------------------------------------------------------------------

def tiny_config(**changes) -> NseConfig:
    config = NseConfig(data="synthetic:256,64", preset="cifar-small", budget_madds=15_000_000, subset_size=2,
                       rounds=2, epochs_per_round=1, batch_size=32, warmup_epochs=0.3, samples=4, sample_draws=20,
                       recalibration_batches=1, eval_batches=1, checkpoint_every=3, progress=False, device="cpu")
    return replace(config, **changes)


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("nse") / "run"
    space = evolve_nse(tiny_config(), out, report=nse_report)  # as evolve("nse", ...) does
    return out, space


def test_run_writes_space_pareto_history(finished_run):
    out, space = finished_run
    for name in ("space.json", "space.md", "pareto.json", "pareto.png", "history.jsonl", "config.yaml",
                 "pareto/round-01.json", "pareto/round-01.png", "pareto/round-02.json"):
        assert (out / name).is_file(), name
    loaded = load_space(out / "space.json")
    assert loaded.layers == space.layers and loaded.metadata["method"] == "nse"
    history = [json.loads(line) for line in (out / "history.jsonl").read_text().splitlines()]
    assert [record["round"] for record in history] == [1, 2]
    first, second = history
    for layer, (before, kept, added, after) in enumerate(zip(first["subsets"], first["kept"], first["added"],
                                                           second["subsets"])):
        assert set(kept) <= set(before) and after == kept + added, layer
        assert not set(added) & set(before)  # refill takes untried operators only
    pareto = json.loads((out / "pareto.json").read_text())
    front = [p for p in pareto["points"] if p["on_front"]]
    assert front and len(pareto["points"]) == 4
    # every front point's operators of a layer survive in the space, alone or as its multi-branch block
    names = [{c.block.__class__.__name__ for c in layer} for layer in space.layers]
    assert all(names)


def test_space_feeds_search(finished_run, tmp_path):
    from autospace.search import search
    from autospace.search.config import SearchConfig

    out, _ = finished_run
    config = SearchConfig(method="spos", space=str(out / "space.json"), target_madds=15_000_000,
                          data="synthetic:256,64", epochs=1, batch_size=32, population=4, top=2, mutations=2,
                          crossovers=2, generations=1, recalibration_batches=1, eval_batches=1, progress=False,
                          device="cpu")
    result = search(config, tmp_path / "search")
    assert (tmp_path / "search" / "arch.json").is_file() and result is not None


def test_resume_after_stops_gives_the_same_space(finished_run, tmp_path):
    out, space = finished_run
    stopped = tmp_path / "run"
    assert evolve_nse(tiny_config(), stopped, stop_after_checkpoints=2) is None  # inside round 1's training
    assert evolve_nse(tiny_config(), stopped, resume=True, stop_after_checkpoints=2) is None  # at evaluation
    resumed = evolve_nse(tiny_config(), stopped, resume=True)
    assert resumed.layers == space.layers
    assert (stopped / "space.json").read_text() != "" and \
        json.loads((stopped / "pareto.json").read_text()) == json.loads((out / "pareto.json").read_text())
    assert len((stopped / "history.jsonl").read_text().splitlines()) == 2


def test_budget_below_the_smallest_network_is_refused(tmp_path):
    with pytest.raises(AutospaceError, match="below the smallest network"):
        evolve_nse(tiny_config(budget_madds=1_000_000), tmp_path / "run")


def test_bad_config_values_are_refused():
    for changes, words in (({"subset_size": 0}, "subset_size"), ({"samples": 30, "sample_draws": 10}, "sample_draws"),
                           ({"pool_irb": False, "pool_dilated": False}, "pool is empty"),
                           ({"drop_threshold": 1.5}, "drop_threshold")):
        with pytest.raises(AutospaceError, match=words):
            tiny_config(**changes)


def test_cli_nse_and_resume_detects_the_method(tmp_path, capsys):
    from autospace.cli import main
    from autospace.runtime.config import save_config

    preset = tmp_path / "tiny.yaml"
    save_config(preset, tiny_config(rounds=1))
    out = tmp_path / "run"
    assert main(["evolve", "--method", "nse", "--config", str(preset), "--out", str(out)]) == 0
    assert (out / "space.json").is_file()
    # --resume without --method: the folder's config says nse (a finished run resumes to the same space)
    before = (out / "space.json").read_text()
    assert main(["evolve", "--resume", str(out)]) == 0
    assert json.loads((out / "space.json").read_text())["layers"] == json.loads(before)["layers"]
    assert main(["evolve", "--pool", str(out / "space.json"), "--out", str(tmp_path / "x")]) == 2
    assert "--pool belongs to --method nse" in capsys.readouterr().err


def test_pool_from_a_learned_space_adds_its_cells(tmp_path):
    from autospace.arch import CellBlock, reference_cell
    from autospace.arch.codec import save_space
    from autospace.arch.space import Candidate, SearchSpace

    skeleton = preset_skeleton("cifar-small")
    cell = CellBlock(reference_cell())
    space = SearchSpace(skeleton, tuple((Candidate(cell, 0.5, 10),) for _ in skeleton.searchable_slots()))
    save_space(tmp_path / "space.json", space)
    pools = layer_pools(len(space.layers), irb=False, dilated=True, space=load_space(tmp_path / "space.json"))
    assert all(len(pool) == 4 and pool[-1] == cell for pool in pools)
    with pytest.raises(AutospaceError, match="searchable layers"):
        layer_pools(3, irb=True, dilated=True, space=space)


def test_search_returns_multi_branch_networks_and_train_takes_them(tmp_path):
    """A space whose candidates are multi-branch blocks: spos finds a multi-branch network,
    `autospace train` trains it, and its counted MAdds equal the analytic ones."""
    from autospace.arch import MultiBranch, load_arch
    from autospace.arch.codec import save_space
    from autospace.arch.space import Candidate, SearchSpace
    from autospace.cost import network_cost
    from autospace.search import search
    from autospace.search.config import SearchConfig
    from autospace.train import train
    from autospace.train.config import TrainConfig
    from tests.test_cost import counted_network_cost

    skeleton = preset_skeleton("cifar-small")
    pair = MultiBranch((InvertedResidual(3, 1), InvertedResidual(5, 3)))
    triple = MultiBranch((InvertedResidual(3, 1), InvertedResidual(7, 1), InvertedResidual(3, 1, dilation=2)))
    space = SearchSpace(skeleton, tuple((Candidate(pair), Candidate(triple)) for _ in skeleton.searchable_slots()))
    save_space(tmp_path / "space.json", space)
    config = SearchConfig(method="spos", space=str(tmp_path / "space.json"), target_madds=40_000_000,
                          data="synthetic:256,64", epochs=1, batch_size=32, population=4, top=2, mutations=2,
                          crossovers=2, generations=1, recalibration_batches=1, eval_batches=1, progress=False,
                          device="cpu")
    search(config, tmp_path / "search")
    network = load_arch(tmp_path / "search" / "arch.json")
    assert any(isinstance(layer.block, MultiBranch) for layer in network.layers)
    assert network_cost(network) == counted_network_cost(network)
    metrics = train(network, TrainConfig(data="synthetic:128,64", epochs=1, batch_size=32, progress=False,
                                         device="cpu"), tmp_path / "train")
    assert metrics["madds"] == network_cost(network).madds


def test_sigkill_mid_round_then_resume_gives_the_same_space(finished_run, tmp_path):
    """A real `autospace evolve --method nse` process killed with SIGKILL once its first
    in-round checkpoint exists resumes (`--resume`, method found in the folder) to the
    space of the uninterrupted run."""
    import os
    import signal
    import subprocess
    import sys
    import time

    from autospace.runtime.config import save_config

    out, space = finished_run
    preset = tmp_path / "tiny.yaml"
    save_config(preset, tiny_config())
    run = tmp_path / "run"
    environment = {**os.environ, "PYTHONUNBUFFERED": "1"}
    process = subprocess.Popen([sys.executable, "-m", "autospace", "evolve", "--method", "nse", "--config",
                                str(preset), "--out", str(run)], env=environment,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while not (run / "checkpoint.pt").exists() and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert not (run / "space.json").exists(), "the run finished before the kill; the test proves nothing"
    finished = subprocess.run([sys.executable, "-m", "autospace", "evolve", "--resume", str(run)], env=environment,
                              capture_output=True, text=True, timeout=300)
    assert finished.returncode == 0, finished.stderr[-2000:]
    # The reference is an uninterrupted process with the same environment (thread count included): the
    # in-process fixture's numbers depend on torch settings that earlier tests of the suite may change.
    whole = subprocess.run([sys.executable, "-m", "autospace", "evolve", "--method", "nse", "--config", str(preset),
                            "--out", str(tmp_path / "whole")], env=environment, capture_output=True, text=True,
                           timeout=300)
    assert whole.returncode == 0, whole.stderr[-2000:]
    assert load_space(run / "space.json").layers == load_space(tmp_path / "whole" / "space.json").layers
