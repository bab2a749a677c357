"""Multi-branch layers (NSE): data, JSON, cost (analytic == counted), modules, export, show."""

from __future__ import annotations

import json
import random

import pytest
import torch

from autospace.arch import (
    CellBlock, InvertedResidual, MultiBranch, ZeroBlock, block_to_string, canonical_block, preset_skeleton,
)
from autospace.arch.codec import arch_from_dict, arch_to_dict, block_from_dict, block_to_dict
from autospace.cost import Cost, block_cost, network_cost
from autospace.cost.counter import counted_madds, counted_params
from autospace.errors import AutospaceError
from autospace.nn import build_block, build_network
from tests.test_cost import SLOTS, counted_network_cost, random_cell, random_irb, slot_for


def random_multi(rng: random.Random, branches: int) -> MultiBranch:
    chosen, seen = [], set()
    while len(chosen) < branches:
        block = random_irb(rng) if rng.random() < 0.5 else CellBlock(random_cell(rng))
        if block.is_empty() or canonical_block(block) in seen:
            continue
        seen.add(canonical_block(block))
        chosen.append(block)
    return MultiBranch(tuple(chosen))


@pytest.mark.parametrize("slot", SLOTS)
def test_multi_branch_cost_is_counted_cost(slot):
    rng = random.Random(slot.in_channels * 10 + slot.stride)
    for branches in (1, 2, 3, 4):
        block = random_multi(rng, branches)
        module = build_block(block, slot)
        shape = (1, slot.in_channels, slot.input_size, slot.input_size)
        assert block_cost(block, slot) == Cost(counted_params(module), counted_madds(module, shape))
        # the cost is the sum of the branches' costs (the mean adds nothing)
        assert block_cost(block, slot) == sum((block_cost(b, slot) for b in block.branches), Cost())


@pytest.mark.parametrize("preset", ["cifar", "cifar-small", "imagenet"])
def test_multi_branch_networks_analytic_equals_counted(preset):
    rng = random.Random(7)
    skeleton = preset_skeleton(preset)
    blocks = []
    for slot in skeleton.searchable_slots():
        count = rng.choice((0, 1, 2, 3) if slot.has_residual else (1, 2, 3))
        blocks.append(ZeroBlock() if count == 0 else random_multi(rng, count))
    network = skeleton.network(blocks)
    assert network_cost(network) == counted_network_cost(network)


def test_output_is_mean_of_branches_plus_identity():
    torch.manual_seed(0)
    irb_a, irb_b = InvertedResidual(3, 3), InvertedResidual(5, 6)
    for slot in (slot_for(8, 8, 1), slot_for(8, 16, 2)):
        module = build_block(MultiBranch((irb_a, irb_b)), slot).eval()
        x = torch.randn(2, 8, 8, 8)
        with torch.no_grad():
            outputs = [branch(x) for branch in module.branches]  # each branch adds its own residual
            got = module(x)
        if slot.has_residual:
            residual_free = [out - x for out in outputs]
            expected = (residual_free[0] + residual_free[1]) / 2 + x
        else:
            expected = (outputs[0] + outputs[1]) / 2
        torch.testing.assert_close(got, expected)
        # one branch: exactly the plain block (same weights)
        single = build_block(MultiBranch((irb_a,)), slot).eval()
        plain = build_block(irb_a, slot).eval()
        plain.load_state_dict(single.branches[0].state_dict())
        with torch.no_grad():
            torch.testing.assert_close(single(x), plain(x))


def test_canonical_multi_branch():
    a, b = InvertedResidual(3, 3), InvertedResidual(7, 1)
    assert canonical_block(MultiBranch((a, b))) == canonical_block(MultiBranch((b, a)))
    assert canonical_block(MultiBranch((a,))) == a
    assert canonical_block(MultiBranch(())) == ZeroBlock()
    assert MultiBranch(()).is_empty() and not MultiBranch((a,)).is_empty()
    assert block_to_string(MultiBranch((a, b))) == "multi[irb_k3_e3+irb_k7_e1]"


def test_json_round_trip_and_errors():
    rng = random.Random(3)
    block = random_multi(rng, 3)
    assert block_from_dict(json.loads(json.dumps(block_to_dict(block)))) == block
    skeleton = preset_skeleton("cifar-small")
    network = skeleton.network([random_multi(rng, 2) for _ in skeleton.searchable_slots()])
    assert arch_from_dict(json.loads(json.dumps(arch_to_dict(network)))) == network
    bad = [
        ({"type": "multi"}, "missing"),
        ({"type": "multi", "branches": "irb"}, "list"),
        ({"type": "multi", "branches": [{"type": "zero"}]}, "irb or a cell"),
        ({"type": "multi", "branches": [{"type": "multi", "branches": []}]}, "irb or a cell"),
        ({"type": "multi", "branches": [{"type": "irb"}, {"type": "irb"}]}, "repeats"),
        ({"type": "multi", "branches": [{"type": "irb", "kernel": 4}]}, "kernel"),
    ]
    for data, words in bad:
        with pytest.raises(AutospaceError, match=words):
            block_from_dict(data)


def test_empty_multi_branch_needs_a_residual():
    skeleton = preset_skeleton("cifar-small")
    blocks = [MultiBranch(()) for _ in skeleton.searchable_slots()]
    with pytest.raises(AutospaceError, match="residual"):
        skeleton.network(blocks)


def test_built_network_runs_and_exports(tmp_path):
    from autospace.export import plain_pytorch_source, _import_file

    rng = random.Random(5)
    skeleton = preset_skeleton("cifar-small", resolution=16)
    blocks = [random_multi(rng, rng.choice((1, 2, 3))) for _ in skeleton.searchable_slots()]
    network = skeleton.network(blocks)
    model = build_network(network).eval()
    (tmp_path / "model.py").write_text(plain_pytorch_source(network))
    generated = _import_file(tmp_path / "model.py").build_model().eval()
    generated.load_state_dict(model.state_dict(), strict=True)
    x = torch.randn(2, 3, 16, 16)
    with torch.no_grad():
        torch.testing.assert_close(generated(x), model(x))


def test_show_draws_multi_branch(tmp_path):
    from autospace.arch.codec import save_arch
    from autospace.report.show import draw

    rng = random.Random(6)
    skeleton = preset_skeleton("cifar-small")
    network = skeleton.network([random_multi(rng, 2) for _ in skeleton.searchable_slots()])
    save_arch(tmp_path / "arch.json", network)
    out = draw(tmp_path / "arch.json", tmp_path / "arch.svg")
    assert out.stat().st_size > 1000
