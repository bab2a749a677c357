"""Analytic params and MAdds (`autospace.cost`) against counts taken on the built modules."""

from __future__ import annotations

import itertools
import random

import pytest
import torch

from autospace.arch import (
    Cell, CellBlock, InvertedResidual, canonical, LayerSlot, Network, ZeroBlock, mobilenetv2, preset_skeleton,
    reference_cell,
)
from autospace.arch.ops import (
    ACTIVATIONS, AGGREGATIONS, CELL_EXPANSIONS, EDGE_OPERATORS, EDGES, IRB_DILATIONS, IRB_EXPANSIONS,
    IRB_KERNELS,
)
from autospace.cost import Cost, block_cost, layer_costs, network_cost, network_madds, network_params
from autospace.cost.counter import counted_madds, counted_params
from autospace.nn import build_block, build_network


def slot_for(in_channels, out_channels, stride, size=8):
    return LayerSlot(index=0, in_channels=in_channels, out_channels=out_channels, stride=stride,
                     input_size=size, searchable=True)


SLOTS = [slot_for(8, 8, 1), slot_for(8, 16, 1), slot_for(8, 16, 2), slot_for(8, 8, 2, size=7)]


def assert_block_cost_matches(block, slot):
    module = build_block(block, slot)
    shape = (1, slot.in_channels, slot.input_size, slot.input_size)
    analytic = block_cost(block, slot)
    counted = Cost(counted_params(module), counted_madds(module, shape))
    assert analytic == counted, (block, slot, analytic, counted)
    with torch.no_grad():
        out = module.train(False)(torch.zeros(shape))
    assert out.shape == (1, slot.out_channels, slot.output_size, slot.output_size)


def random_cell(rng: random.Random) -> Cell:
    return Cell(tuple(rng.choice(EDGE_OPERATORS) for _ in EDGES), rng.choice(CELL_EXPANSIONS),
                rng.choice(AGGREGATIONS))


def random_irb(rng: random.Random) -> InvertedResidual:
    return InvertedResidual(kernel=rng.choice(IRB_KERNELS), expansion=rng.choice(IRB_EXPANSIONS),
                            squeeze_excite=rng.random() < 0.5, activation=rng.choice(ACTIVATIONS),
                            dilation=rng.choice(IRB_DILATIONS))


def random_block(rng, slot, kinds=("cell", "irb", "zero")):
    while True:
        kind = rng.choice(kinds)
        if kind == "irb":
            return random_irb(rng)
        block = ZeroBlock() if kind == "zero" else CellBlock(random_cell(rng))
        if not block.is_empty() or slot.has_residual:
            return block


def counted_network_cost(network: Network) -> Cost:
    """Count on the meta device: shapes only, so even 224px networks of wide cells are instant."""
    with torch.device("meta"):
        module = build_network(network)
        shape = (1, network.in_channels, network.resolution, network.resolution)
        return Cost(counted_params(module), counted_madds(module, shape))


# ---- hand-computed anchors (independent of the analytic module) -----------------

def test_reference_cell_cost_by_hand():
    slot = slot_for(8, 8, 1)
    mid = 48
    expected_params = (8 * mid + 2 * mid) + (9 * mid + 2 * mid) + (mid * 8 + 2 * 8)
    expected_madds = (8 * mid + 9 * mid + mid * 8) * 64
    assert block_cost(CellBlock(reference_cell()), slot) == Cost(expected_params, expected_madds)
    # the reference cell and irb k3 e6 compute the same structure: same cost
    assert block_cost(CellBlock(reference_cell()), slot) == block_cost(InvertedResidual(3, 6), slot)


def test_irb_squeeze_excite_cost_by_hand():
    slot = slot_for(8, 16, 2)
    base = block_cost(InvertedResidual(5, 3), slot)
    with_se = block_cost(InvertedResidual(5, 3, squeeze_excite=True), slot)
    mid, reduced = 24, 2  # reduced = max(1, int(8 * 0.25))
    assert with_se.params - base.params == mid * reduced + reduced + reduced * mid + mid
    assert with_se.madds - base.madds == 2 * mid * reduced


def test_zero_and_empty_cost_nothing():
    slot = slot_for(8, 8, 1)
    assert block_cost(ZeroBlock(), slot) == Cost(0, 0)
    assert block_cost(CellBlock(Cell(("conv3x3", "zero", "zero", "zero", "zero", "zero"))), slot) == Cost(0, 0)
    assert_block_cost_matches(ZeroBlock(), slot)


# ---- analytic == counted ---------------------------------------------------------

@pytest.mark.parametrize("op", EDGE_OPERATORS)
@pytest.mark.parametrize("stride", [1, 2])
def test_every_edge_operator(op, stride):
    for slot in (slot_for(8, 8, stride), slot_for(8, 16, stride), slot_for(8, 16, stride, size=7)):
        for expansion in CELL_EXPANSIONS:
            # the operator on an edge leaving node 0 (strided) and on an inner edge (not strided)
            leaving = Cell(("zero", "zero", "zero", op, "zero", "zero") if op != "zero" else
                           ("zero", "zero", "zero", "identity", "zero", "zero"), expansion)
            inner = Cell(("identity", "zero", "zero", "zero", op if op != "zero" else "identity", "zero"),
                         expansion)
            for cell in (leaving, inner):
                assert_block_cost_matches(CellBlock(cell), slot)


@pytest.mark.parametrize("kernel", IRB_KERNELS)
@pytest.mark.parametrize("expansion", IRB_EXPANSIONS)
def test_every_irb_variant(kernel, expansion):
    for squeeze_excite, dilation, activation in itertools.product((False, True), IRB_DILATIONS, ACTIVATIONS):
        block = InvertedResidual(kernel, expansion, squeeze_excite, activation, dilation)
        for slot in SLOTS:
            assert_block_cost_matches(block, slot)


def test_concat_cells():
    everything = Cell(("conv3x3", "dwconv3x3", "conv1x1", "identity", "dwconv3x3", "conv1x1"), 3, "concat")
    for slot in SLOTS:
        assert_block_cost_matches(CellBlock(everything), slot)
        assert block_cost(CellBlock(everything), slot).params > block_cost(
            CellBlock(Cell(everything.ops, 3, "sum")), slot).params


def test_random_cells():
    rng = random.Random(0)
    checked = 0
    while checked < 200:
        slot = rng.choice(SLOTS)
        cell = random_cell(rng)
        if cell.is_empty() and not slot.has_residual:
            continue
        assert_block_cost_matches(CellBlock(cell), slot)
        checked += 1


def test_dead_edges_cost_nothing():
    rng = random.Random(1)
    for _ in range(200):
        cell = random_cell(rng)
        for slot in SLOTS:
            if not cell.is_empty():
                assert block_cost(CellBlock(cell), slot) == block_cost(CellBlock(canonical(cell)), slot)


@pytest.mark.parametrize("preset", ["cifar", "imagenet", "cifar-small"])
@pytest.mark.parametrize("seed, kinds", [(10, ("irb", "zero")), (11, ("cell", "zero")), (12, ("cell", "irb", "zero"))])
def test_presets_with_random_blocks(preset, seed, kinds):
    rng = random.Random(seed)
    skeleton = preset_skeleton(preset)
    for _ in range(2):
        network = skeleton.network([random_block(rng, slot, kinds) for slot in skeleton.searchable_slots()])
        analytic = network_cost(network)
        assert analytic == counted_network_cost(network)
        assert sum(layer_costs(network), Cost()).madds < analytic.madds
        assert network_madds(network) == analytic.madds and network_params(network) == analytic.params


def test_preset_counted_on_cpu_matches_meta():
    rng = random.Random(2)
    skeleton = preset_skeleton("cifar-small", resolution=16)
    network = skeleton.network([random_block(rng, slot) for slot in skeleton.searchable_slots()])
    module = build_network(network)
    cpu = Cost(counted_params(module), counted_madds(module, (1, 3, 16, 16)))
    assert cpu == counted_network_cost(network) == network_cost(network)


def test_mobilenetv2_published_figures():
    network = mobilenetv2()
    assert network_cost(network) == Cost(params=3_504_872, madds=300_774_272)
    assert counted_network_cost(network) == Cost(params=3_504_872, madds=300_774_272)
    # the real CPU module agrees on params
    assert counted_params(build_network(network)) == 3_504_872


def test_network_without_head_and_other_shapes():
    rng = random.Random(3)
    skeleton = preset_skeleton("cifar-small", num_classes=5, in_channels=1, resolution=20)
    network = skeleton.network([random_block(rng, slot) for slot in skeleton.searchable_slots()])
    for head in (0, 64):
        variant = Network(layers=network.layers, stem_channels=16, stem_stride=2, head_channels=head,
                          num_classes=5, in_channels=1, resolution=20, activation="swish")
        assert network_cost(variant) == counted_network_cost(variant)


# ---- odd spatial sizes --------------------------------------------------------------

@pytest.mark.parametrize("size", [7, 9, 5, 3])
@pytest.mark.parametrize("aggregation", AGGREGATIONS)
def test_odd_sizes_strided_paths_agree(size, aggregation):
    """identity (2x2 pool), dwconv3x3, conv1x1 and conv3x3 leaving node 0 at stride 2 meet at one node."""
    cell = Cell(("identity", "dwconv3x3", "conv1x1", "conv3x3", "identity", "identity"), 1, aggregation)
    slot = slot_for(4, 8, 2, size=size)
    module = build_block(CellBlock(cell), slot).train(False)
    out = module(torch.randn(2, 4, size, size))
    expected = -(-size // 2)
    assert out.shape == (2, 8, expected, expected) and slot.output_size == expected
    assert_block_cost_matches(CellBlock(cell), slot)
