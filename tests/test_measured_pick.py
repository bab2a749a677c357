"""Issue 27: the final pick of proxyless-g/rl is measured on held-out images, not fitted by log-probability."""

from __future__ import annotations

import json

import pytest
import torch

from autospace.cost import network_madds
from autospace.search import SearchConfig, search
from autospace.search.distribution import LayerDistributions
from autospace.report.markdown import pick_note, pick_table
from autospace.search.pick import draw_candidates, pick_record


def test_candidates_start_with_the_most_probable_and_are_distinct_and_acceptable():
    distributions = LayerDistributions([3, 3, 3])
    acceptable = lambda choice: sum(choice) in (2, 3)  # noqa: E731
    candidates = draw_candidates(distributions, (1, 1, 0), 6, acceptable, torch.Generator().manual_seed(0))
    assert candidates[0] == (1, 1, 0) and len(candidates) == 6 == len(set(candidates))
    assert all(acceptable(choice) for choice in candidates[1:])
    few = draw_candidates(distributions, (0, 0, 0), 5, lambda choice: choice == (2, 2, 2), torch.Generator())
    assert few == [(0, 0, 0), (2, 2, 2)]  # the band holds one other network: fewer candidates, no hang


def test_the_pick_is_the_best_held_out_score_and_ties_go_to_the_more_probable():
    record = pick_record([(0,), (1,), (2,)], [0.40, 0.55, 0.55], [-0.1, -1.0, -2.0], [9, 10, 10], [1, 2, 3],
                         [[], [], []], 2000)
    assert record["picked"] == 1 and record["method"] == "measured"
    assert [c["heldout_top1"] for c in record["candidates"]] == [40.0, 55.0, 55.0]
    assert "returned #2 (55.00% held-out top-1" in pick_note(record, 10) and "most probable one scored 40.00%" in pick_note(record, 10)
    table = pick_table(record, 10)
    assert table[0] == "## The pick" and "| 2 (returned) | 0.00M | 2 | -1.00 | 55.00% |" in table
    assert pick_table({"method": "fitted"}, 10) == []


def _config(**changes):
    settings = dict(data="synthetic:256,64", preset="cifar-small", target_madds=14_000_000, epochs=2,
                    warmup_epochs=1, batch_size=32, arch_every=1, arch_lr=0.01, device="cpu", progress=False,
                    recalibration_batches=1, eval_batches=1, pick_candidates=5, pick_images=64)
    settings.update(changes)
    return SearchConfig(**settings)


@pytest.mark.parametrize("method", ["proxyless-g", "proxyless-rl"])
def test_a_search_returns_the_best_measured_network_inside_the_target_band(method, tmp_path, capsys):
    network = search(_config(method=method), tmp_path / "run")
    result = json.loads((tmp_path / "run" / "result.json").read_text())
    pick = result["pick"]
    assert pick["method"] == "measured" and len(pick["candidates"]) >= 2
    assert all(0.9 * 14_000_000 <= c["madds"] <= 14_000_000 for c in pick["candidates"])
    best = max(c["heldout_top1"] for c in pick["candidates"])
    chosen = pick["candidates"][pick["picked"]]
    assert chosen["heldout_top1"] == best and chosen["madds"] == result["madds"] == network_madds(network)
    assert not result["fitted_to_budget"] and result["validation_accuracy"] == pytest.approx(best / 100)
    assert "measured pick" in capsys.readouterr().err

    search(_config(method=method, pick="fitted"), tmp_path / "fitted")
    assert json.loads((tmp_path / "fitted" / "result.json").read_text())["pick"] == {"method": "fitted"}


def test_the_union_space_adds_the_manual_blocks_to_a_learned_space(tmp_path):
    from autospace.arch import InvertedResidual, preset_skeleton, save_space
    from autospace.arch.space import Candidate, SearchSpace, manual_space
    from autospace.search.spaces import resolve_space

    skeleton = preset_skeleton("cifar-small")
    learned = SearchSpace(skeleton, tuple((Candidate(InvertedResidual(3, 3), 0.5), Candidate(InvertedResidual(5, 1)))
                                          for _ in skeleton.searchable_slots()), name="mine")
    save_space(tmp_path / "space.json", learned)
    union = resolve_space(f"union:{tmp_path / 'space.json'}", "cifar-small", 10, 3, 32)
    manual = manual_space(skeleton, with_zero=False)
    for layer, manual_layer in zip(union.layers, manual.layers):
        blocks = [c.block for c in layer]
        assert blocks[:2] == [InvertedResidual(3, 3), InvertedResidual(5, 1)]  # the learned blocks first, once
        assert set(blocks) == {InvertedResidual(5, 1)} | {c.block for c in manual_layer} and len(blocks) == 7


def test_pretraining_gives_a_built_in_space_uniform_steps_before_the_search(tmp_path, monkeypatch):
    """pretrain_steps: that many weight steps on uniformly drawn paths run before the first epoch, then a
    checkpoint; the search's own steps follow as without it."""
    from autospace.train.session import SearchSession

    positions, paths = [], []
    original = SearchSession.weight_step

    def counting(self, supernet, optimizer, path, lr, position="a weight step"):
        positions.append(position)
        paths.append([index for _, index in path])
        return original(self, supernet, optimizer, path, lr, position)

    monkeypatch.setattr(SearchSession, "weight_step", counting)
    search(_config(method="proxyless-g", epochs=2, warmup_epochs=1, pretrain_steps=12), tmp_path / "pre")
    pretraining = [i for i, position in enumerate(positions) if position.startswith("pre-training")]
    assert pretraining == list(range(12)) and len(positions) > 12
    assert len({index for choice in paths[:12] for index in choice}) > 2  # uniform draws, not one path
