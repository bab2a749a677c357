"""Modules built from architecture data (`autospace.nn`)."""

from __future__ import annotations

import random

import pytest
import torch
from torch import nn

from autospace.arch import (
    Cell, CellBlock, InvertedResidual, LayerSlot, Network, Skeleton, Stage, ZeroBlock, canonical, mobilenetv2,
    preset_skeleton, reference_cell,
)
from autospace.arch.ops import (
    ACTIVATIONS, AGGREGATIONS, CELL_EXPANSIONS, EDGE_OPERATORS, EDGES, IRB_DILATIONS, IRB_EXPANSIONS,
    IRB_KERNELS,
)
from autospace.errors import AutospaceError
from autospace.nn import CellModule, InvertedResidualModule, SkipLayer, build_block, build_network
from autospace.nn.operators import ConvBNAct, make_edge_operator


def slot_for(in_channels, out_channels, stride, size=8):
    return LayerSlot(index=0, in_channels=in_channels, out_channels=out_channels, stride=stride,
                     input_size=size, searchable=True)


SLOTS = [slot_for(8, 8, 1), slot_for(8, 16, 1), slot_for(8, 8, 2), slot_for(8, 16, 2), slot_for(8, 8, 2, size=7)]


def random_cell(rng: random.Random) -> Cell:
    return Cell(tuple(rng.choice(EDGE_OPERATORS) for _ in EDGES), rng.choice(CELL_EXPANSIONS),
                rng.choice(AGGREGATIONS))


def random_nonempty_cell(rng: random.Random) -> Cell:
    while True:
        cell = random_cell(rng)
        if not cell.is_empty():
            return cell


def random_irb(rng: random.Random) -> InvertedResidual:
    return InvertedResidual(kernel=rng.choice(IRB_KERNELS), expansion=rng.choice(IRB_EXPANSIONS),
                            squeeze_excite=rng.random() < 0.5, activation=rng.choice(ACTIVATIONS),
                            dilation=rng.choice(IRB_DILATIONS))


def randomise_batch_norms(module: nn.Module, generator: torch.Generator) -> None:
    """Non-trivial running statistics and affine parameters, so eval-mode BN is not the identity."""
    with torch.no_grad():
        for child in module.modules():
            if isinstance(child, nn.BatchNorm2d):
                child.running_mean.copy_(torch.randn(child.num_features, generator=generator) * 0.1)
                child.running_var.copy_(torch.rand(child.num_features, generator=generator) + 0.5)
                child.weight.copy_(torch.rand(child.num_features, generator=generator) + 0.5)
                child.bias.copy_(torch.randn(child.num_features, generator=generator) * 0.1)


TINY = Skeleton(stages=(Stage(8, 2, 1), Stage(16, 2, 2)), stem_channels=8, first_channels=8,
                head_channels=32, num_classes=5, resolution=8)


# ---- whole networks -----------------------------------------------------------

def test_networks_give_logits():
    torch.manual_seed(0)
    rng = random.Random(0)
    small = preset_skeleton("cifar-small", num_classes=7, resolution=16)
    networks = [
        mobilenetv2(num_classes=10, resolution=32, width_stride=1),
        small.network([random_irb(rng) if i % 2 else CellBlock(random_nonempty_cell(rng))
                       for i in range(small.num_searchable)]),
        Network(layers=TINY.network([InvertedResidual()] * 4).layers, stem_channels=8, head_channels=0,
                num_classes=3, in_channels=1, resolution=8, activation="swish", dropout=0.5),
    ]
    for network in networks:
        module = build_network(network)
        images = torch.randn(2, network.in_channels, network.resolution, network.resolution)
        for training in (True, False):
            logits = module.train(training)(images)
            assert logits.shape == (2, network.num_classes)
            assert torch.isfinite(logits).all()


def test_gradient_reaches_every_parameter():
    torch.manual_seed(1)
    rng = random.Random(1)
    for _ in range(3):
        network = TINY.network([CellBlock(random_nonempty_cell(rng)) for _ in range(TINY.num_searchable)])
        module = build_network(network)
        images, labels = torch.randn(4, 3, 8, 8), torch.tensor([0, 1, 2, 3])
        # train mode: every parameter is in the graph
        module.train(True)
        nn.functional.cross_entropy(module(images), labels).backward()
        for name, parameter in module.named_parameters():
            assert parameter.grad is not None, name
            assert torch.isfinite(parameter.grad).all(), name
        # eval mode: BN is affine, so every parameter tensor gets a non-zero gradient
        module.zero_grad(set_to_none=True)
        module.train(False)
        nn.functional.cross_entropy(module(images), labels).backward()
        for name, parameter in module.named_parameters():
            assert parameter.grad is not None and parameter.grad.abs().sum() > 0, name


def test_empty_cell_on_residual_layer_builds_and_runs():
    torch.manual_seed(2)
    empty = CellBlock(Cell(("conv3x3", "zero", "identity", "zero", "zero", "zero")))
    assert empty.is_empty()
    blocks = [InvertedResidual(), empty, CellBlock(reference_cell()), ZeroBlock()]
    network = TINY.network(blocks)
    module = build_network(network)
    assert isinstance(module.layers[2], SkipLayer) and isinstance(module.layers[4], SkipLayer)
    assert module(torch.randn(2, 3, 8, 8)).shape == (2, 5)


def test_same_seed_same_network():
    network = TINY.network([CellBlock(reference_cell())] * 4)
    outputs = []
    for _ in range(2):
        torch.manual_seed(3)
        module = build_network(network).train(False)
        outputs.append(module(torch.ones(1, 3, 8, 8)))
    assert torch.equal(outputs[0], outputs[1])


# ---- the cell module ----------------------------------------------------------

def reference_cell_forward(module: CellModule, cell: Cell, stride: int, x, dead_edges: dict):
    """DESIGN 2.1 evaluated on the raw (non-canonical) cell: every non-zero edge whose source has a
    value are computed, dead ones (and dead nodes' projections) with their own random modules."""
    nodes = {0: module.input_conv(x)}
    for node in (1, 2, 3):
        inputs = []
        for (source, target), op in zip(EDGES, cell.ops):
            if target != node or op == "zero" or source not in nodes:
                continue
            key = f"{source}->{target}"
            operator = module.edges[key] if key in module.edges else dead_edges[key]
            inputs.append(operator(nodes[source]))
        if not inputs:
            continue
        if cell.aggregation == "concat" and len(inputs) >= 2:
            joined = torch.cat(inputs, dim=1)
            projection = (module.projections[str(node)] if str(node) in module.projections
                          else ConvBNAct(joined.shape[1], joined.shape[1] // len(inputs), 1, activation=None).train(False))
            nodes[node] = projection(joined)
        else:
            nodes[node] = sum(inputs[1:], inputs[0])
    out = module.output_conv(nodes[3])
    return out + x if module.has_residual else out


def test_cell_output_does_not_depend_on_dead_edges():
    torch.manual_seed(4)
    generator = torch.Generator().manual_seed(4)
    rng = random.Random(4)
    checked = 0
    while checked < 40:
        cell = random_nonempty_cell(rng)
        if canonical(cell) == cell:
            continue
        slot = rng.choice(SLOTS)
        module = build_block(CellBlock(cell), slot)
        randomise_batch_norms(module, generator)
        module.train(False)
        mid = cell.expansion * slot.in_channels
        dead = {f"{s}->{t}": make_edge_operator(op, mid, slot.stride if s == 0 else 1)
                for (s, t), op in zip(EDGES, cell.ops) if op != "zero"}
        for operator in dead.values():
            randomise_batch_norms(operator, generator)
            operator.train(False)
        x = torch.randn(2, slot.in_channels, slot.input_size, slot.input_size)
        with torch.no_grad():
            torch.testing.assert_close(module(x), reference_cell_forward(module, cell, slot.stride, x, dead))
        # no module exists for a dead edge
        live = {f"{s}->{t}" for (s, t), op in zip(EDGES, canonical(cell).ops) if op != "zero"}
        assert set(module.edges.keys()) == live
        checked += 1


def test_cells_with_equal_canonical_form_compute_the_same_function():
    torch.manual_seed(5)
    rng = random.Random(5)
    pairs = 0
    while pairs < 20:
        first = random_nonempty_cell(rng)
        ops = list(canonical(first).ops)
        # add a dead edge: into node 2 when node 2 cannot reach 3, or out of an unreachable node
        for index, (source, target) in enumerate(EDGES):
            if ops[index] == "zero" and rng.random() < 0.5:
                trial = ops.copy()
                trial[index] = rng.choice(EDGE_OPERATORS[:4])
                if canonical(Cell(tuple(trial), first.expansion, first.aggregation)) == canonical(first):
                    ops = trial
        second = Cell(tuple(ops), first.expansion, first.aggregation)
        if second == first:
            continue
        slot = rng.choice(SLOTS)
        a, b = build_block(CellBlock(first), slot), build_block(CellBlock(second), slot)
        b.load_state_dict(a.state_dict())
        x = torch.randn(2, slot.in_channels, slot.input_size, slot.input_size)
        with torch.no_grad():
            torch.testing.assert_close(a.train(False)(x), b.train(False)(x))
        pairs += 1


def test_reference_cell_equals_inverted_residual_with_shared_weights():
    torch.manual_seed(6)
    generator = torch.Generator().manual_seed(6)
    for slot in SLOTS:
        cell_module = build_block(CellBlock(reference_cell()), slot)
        irb_module = build_block(InvertedResidual(kernel=3, expansion=6), slot)
        randomise_batch_norms(cell_module, generator)
        irb_module.expand.load_state_dict(cell_module.input_conv.state_dict())
        irb_module.depthwise.load_state_dict(cell_module.edges["0->1"].state_dict())
        irb_module.project.load_state_dict(cell_module.output_conv.state_dict())
        x = torch.randn(2, slot.in_channels, slot.input_size, slot.input_size)
        with torch.no_grad():
            torch.testing.assert_close(cell_module.train(False)(x), irb_module.train(False)(x))


def test_concat_projection_exists_iff_fan_in_two():
    # node 3 joins 0->3 and 1->3; node 1 has fan-in 1
    cell = Cell(("conv1x1", "zero", "zero", "identity", "dwconv3x3", "zero"), 3, "concat")
    module = build_block(CellBlock(cell), slot_for(8, 8, 1))
    assert set(module.projections.keys()) == {"3"}
    conv = module.projections["3"][0]
    assert isinstance(conv, nn.Conv2d) and conv.weight.shape == (24, 48, 1, 1)
    # three inputs into node 3, two into node 2
    cell = Cell(("identity", "conv1x1", "identity", "conv3x3", "identity", "dwconv3x3"), 1, "concat")
    module = build_block(CellBlock(cell), slot_for(8, 16, 2))
    assert set(module.projections.keys()) == {"2", "3"}
    assert module.projections["2"][0].weight.shape == (8, 16, 1, 1)
    assert module.projections["3"][0].weight.shape == (8, 24, 1, 1)
    # the same DAGs with sum, and a chain with concat, have no projection
    assert len(build_block(CellBlock(Cell(cell.ops, 1, "sum")), slot_for(8, 16, 2)).projections) == 0
    chain = Cell(("conv1x1", "zero", "identity", "zero", "zero", "dwconv3x3"), 3, "concat")
    assert len(build_block(CellBlock(chain), slot_for(8, 8, 1)).projections) == 0


# ---- blocks -----------------------------------------------------------------

def test_zero_block_returns_its_input():
    x = torch.randn(2, 8, 8, 8)
    for block in (ZeroBlock(), CellBlock(Cell(("zero",) * 6, 6, "concat"))):
        module = build_block(block, slot_for(8, 8, 1))
        assert isinstance(module, SkipLayer)
        assert torch.equal(module(x), x)
        assert sum(p.numel() for p in module.parameters()) == 0
    for slot in (slot_for(8, 16, 1), slot_for(8, 8, 2)):
        with pytest.raises(AutospaceError, match="residual"):
            build_block(ZeroBlock(), slot)


def _silence_output_batch_norm(module):
    """Zero the last BN's affine parameters: the block's output is then exactly its residual (or zero)."""
    bn = module.project[1] if isinstance(module, InvertedResidualModule) else module.output_conv[1]
    with torch.no_grad():
        bn.weight.zero_()
        bn.bias.zero_()


@pytest.mark.parametrize("kind", ["irb", "cell"])
def test_residual_iff_stride_one_and_same_width(kind):
    torch.manual_seed(7)
    rng = random.Random(7)
    for slot in SLOTS:
        block = random_irb(rng) if kind == "irb" else CellBlock(random_nonempty_cell(rng))
        module = build_block(block, slot)
        expected = slot.stride == 1 and slot.in_channels == slot.out_channels
        assert module.has_residual == expected == slot.has_residual
        _silence_output_batch_norm(module)
        x = torch.randn(2, slot.in_channels, slot.input_size, slot.input_size)
        with torch.no_grad():
            out = module.train(False)(x)
        if expected:
            assert torch.equal(out, x)
        else:
            assert out.shape == (2, slot.out_channels, slot.output_size, slot.output_size)
            assert torch.count_nonzero(out) == 0


def test_irb_structure():
    module = build_block(InvertedResidual(kernel=7, expansion=1, squeeze_excite=True, activation="swish",
                                          dilation=2), slot_for(16, 24, 2))
    assert module.expand is None
    depthwise = module.depthwise[0]
    assert (depthwise.kernel_size, depthwise.dilation, depthwise.stride, depthwise.groups) == ((7, 7), (2, 2), (2, 2), 16)
    assert module.squeeze_excite.reduce.weight.shape == (4, 16, 1, 1)  # max(1, int(16 * 0.25))
    assert module.squeeze_excite.reduce.bias is not None
    assert any(isinstance(m, nn.SiLU) for m in module.modules())
    assert not any(isinstance(m, nn.ReLU6) for m in module.modules())
    module = build_block(InvertedResidual(kernel=3, expansion=6, squeeze_excite=True), slot_for(2, 4, 1))
    assert module.expand[0].weight.shape == (12, 2, 1, 1)
    assert module.squeeze_excite.reduce.weight.shape == (1, 12, 1, 1)  # max(1, int(0.5)) == 1


def test_squeeze_excite_is_a_channel_gate():
    torch.manual_seed(8)
    module = build_block(InvertedResidual(kernel=3, expansion=3, squeeze_excite=True), slot_for(8, 8, 1))
    se = module.squeeze_excite
    x = torch.randn(2, 24, 4, 4)
    with torch.no_grad():
        gate = torch.sigmoid(se.expand(nn.functional.relu6(se.reduce(x.mean((2, 3), keepdim=True)))))
        torch.testing.assert_close(se(x), x * gate)


def test_strided_edge_operators_agree_on_odd_sizes():
    x = torch.randn(1, 4, 7, 7)
    shapes = {op: make_edge_operator(op, 4, 2)(x).shape for op in EDGE_OPERATORS if op != "zero"}
    assert set(shapes.values()) == {torch.Size([1, 4, 4, 4])}
    with pytest.raises(AutospaceError, match="'zero'"):
        make_edge_operator("zero", 4, 1)


def test_strided_identity_is_average_pool():
    x = torch.arange(16.0).reshape(1, 1, 4, 4)
    out = make_edge_operator("identity", 1, 2)(x)
    torch.testing.assert_close(out, torch.tensor([[[[2.5, 4.5], [10.5, 12.5]]]]))
    assert make_edge_operator("identity", 1, 1)(x) is x
