"""Tests for the listed-space supernet, the shared binary gate and BN recalibration."""

from __future__ import annotations

import pytest
import torch
from torch import nn
from torch.nn import functional

from autospace.arch import (
    Candidate, Cell, CellBlock, InvertedResidual, SearchSpace, Skeleton, Stage, ZeroBlock, manual_space,
    reference_cell,
)
from autospace.cost import network_madds
from autospace.errors import AutospaceError
from autospace.nn import SkipLayer, build_network
from autospace.nn.batchnorm import recalibrate_batch_norm
from autospace.nn.block_supernet import BlockSupernet, network_madds_of_choice
from autospace.nn.gates import gated_output, rescale_pair
from autospace.nn.supernet import CellSupernet

# Slots: fixed first block 8->8; searchable 8->8 s1, 8->8 s1, 8->12 s2, 12->12 s1.
SKELETON = Skeleton(stages=(Stage(8, 2, 1), Stage(12, 2, 2)), stem_channels=8, first_channels=8,
                    head_channels=16, num_classes=5, resolution=12)

REF = CellBlock(reference_cell())
SUM_E1 = CellBlock(Cell(("conv1x1", "conv3x3", "dwconv3x3", "identity", "conv1x1", "conv3x3"), 1, "sum"))
CONCAT_E3 = CellBlock(Cell(("conv3x3", "identity", "conv1x1", "dwconv3x3", "zero", "identity"), 3, "concat"))
CONCAT_E1 = CellBlock(Cell(("conv1x1", "conv1x1", "dwconv3x3", "conv3x3", "identity", "conv1x1"), 1, "concat"))
EMPTY_CELL = CellBlock(Cell(("zero",) * 6, 1, "sum"))

MIXED_BLOCKS = [
    [InvertedResidual(3, 3), REF, SUM_E1],                                          # residual: + zero
    [InvertedResidual(5, 6, squeeze_excite=True), CONCAT_E3, ZeroBlock()],          # has zero already
    [InvertedResidual(3, 6), CONCAT_E1, InvertedResidual(7, 1, activation="swish")],  # stride 2: no zero
    [EMPTY_CELL, InvertedResidual(7, 3), SUM_E1],                                   # empty cell counts as zero
]
MIXED = SearchSpace(SKELETON, tuple(tuple(Candidate(b) for b in blocks) for blocks in MIXED_BLOCKS), name="mixed")


def images(batch: int = 2, size: int = 12, seed: int = 5) -> torch.Tensor:
    return torch.randn(batch, 3, size, size, generator=torch.Generator().manual_seed(seed))


def make(space: SearchSpace = MIXED, seed: int = 0, **kwargs) -> BlockSupernet:
    return BlockSupernet(space, torch.Generator().manual_seed(seed), **kwargs)


def single(choice) -> list:
    return [((index,), index) for index in choice]


def parameter_ids(module: nn.Module) -> set[int]:
    return {id(parameter) for parameter in module.parameters()}


def random_choices(supernet: BlockSupernet, count: int, seed: int) -> list[list[int]]:
    generator = torch.Generator().manual_seed(seed)
    return [[int(torch.randint(n, (1,), generator=generator)) for n in supernet.num_choices()] for _ in range(count)]


# ---- structure --------------------------------------------------------------------------------

def test_zero_is_appended_only_where_a_residual_exists_and_no_empty_block_is_listed():
    supernet = make()
    assert supernet.choices[0] == (*MIXED_BLOCKS[0], ZeroBlock())
    assert [supernet.choices[i] for i in (1, 2, 3)] == [tuple(MIXED_BLOCKS[i]) for i in (1, 2, 3)]
    assert isinstance(supernet.layers[1][3], SkipLayer) and isinstance(supernet.layers[4][0], SkipLayer)
    assert [len(layer) for layer in supernet.layers[1:]] == supernet.num_choices() == [4, 3, 3, 3]
    assert make(add_zero=False).choices[0] == tuple(MIXED_BLOCKS[0])

    manual = manual_space(SKELETON)
    assert make(manual).choices == [tuple(manual.blocks(i)) for i in range(4)]  # zero listed already
    bare = make(manual_space(SKELETON, with_zero=False))
    assert [ZeroBlock() in blocks for blocks in bare.choices] == [True, True, False, True]
    assert [len(blocks) for blocks in bare.choices] == [7, 7, 6, 7]


def test_same_seed_same_weights_without_the_global_rng():
    state = torch.random.get_rng_state()
    first, second = make(seed=4), make(seed=4)
    assert torch.equal(state, torch.random.get_rng_state())
    assert list(first.state_dict()) == list(second.state_dict())
    assert all(torch.equal(a, b) for a, b in zip(first.state_dict().values(), second.state_dict().values()))
    assert not torch.equal(make(seed=5).layers[1][0].expand[0].weight, first.layers[1][0].expand[0].weight)
    assert first.weight_parameters() == list(first.parameters())


# ---- paths --------------------------------------------------------------------------------------

def test_a_path_equals_the_built_standalone_network():
    supernet = make()
    generator = torch.Generator().manual_seed(8)
    with torch.no_grad():  # non-trivial BN statistics and affine parameters
        for step, choice in enumerate(random_choices(supernet, 4, seed=1)):
            supernet(images(seed=20 + step), single(choice))
        for name, parameter in supernet.named_parameters():
            if name.endswith(("1.weight", "1.bias")):
                parameter.uniform_(0.5, 1.5, generator=generator)
    supernet.train(False)
    choices = [[j % n for n in supernet.num_choices()] for j in range(4)]  # every candidate of every layer
    choices += random_choices(supernet, 3, seed=2)
    x = images(batch=3)
    logits = [torch.randn(n, generator=generator) for n in supernet.num_choices()]
    for choice in choices:
        module = build_network(supernet.path_network(choice))
        module.load_state_dict(supernet.path_state_dict(choice))  # strict
        module.train(False)
        expected = supernet(x, single(choice))
        assert torch.allclose(module(x), expected, rtol=1e-5, atol=1e-5)
        all_active = [(tuple(range(n)), c) for n, c in zip(supernet.num_choices(), choice)]
        assert torch.equal(supernet(x, all_active, logits), expected)  # gates change no value
    assert supernet.path_network(choices[3]).layers[1].block == ZeroBlock()
    assert supernet.path_network(choices[1]).layers[1].block == REF


def test_single_path_step_trains_only_the_chosen_candidates():
    supernet = make()
    supernet.train()
    choice = [1, 0, 2, 2]
    functional.cross_entropy(supernet(images(), single(choice)), torch.tensor([0, 3])).backward()
    chosen = set().union(*(parameter_ids(layer[c]) for layer, c in zip(supernet.layers[1:], choice)))
    candidates = set().union(*(parameter_ids(layer) for layer in supernet.layers[1:]))
    for parameter in supernet.weight_parameters():
        expected = id(parameter) in chosen or id(parameter) not in candidates  # stem, fixed, head, classifier
        assert (parameter.grad is not None) == expected
    for layer, c in zip(supernet.layers[1:], choice):
        assert all(parameter.grad is None for parameter in layer.parameters()) == (len(parameter_ids(layer[c])) == 0)
        assert sum(parameter.grad.abs().sum() for parameter in layer[c].parameters()) > 0 or not parameter_ids(layer[c])


# ---- the gate ----------------------------------------------------------------------------------

def gate_setup():
    supernet = make(seed=3)
    supernet.train(False)
    modules = supernet.layers[1]  # irb, REF, SUM_E1, zero at 8->8 s1
    x = torch.randn(2, 8, 6, 6, generator=torch.Generator().manual_seed(2))
    outputs = [module(x).detach() for module in modules]
    weight = torch.randn_like(outputs[0], generator=torch.Generator().manual_seed(3))
    logits = torch.tensor([0.4, -0.3, 0.9, 0.1], requires_grad=True)
    return modules, x, outputs, weight, logits


def test_gated_output_value_is_the_chosen_output_and_the_logit_gradient_is_exact_for_a_linear_loss():
    modules, x, outputs, weight, logits = gate_setup()
    reference = logits.detach().clone().requires_grad_(True)
    p = torch.softmax(reference, 0)
    (weight * sum(p[i] * out for i, out in enumerate(outputs))).sum().backward()
    everything = tuple(range(4))
    for chosen in everything:
        logits.grad = None
        y = gated_output(modules, x, everything, chosen, logits)
        assert torch.equal(y, outputs[chosen])
        (weight * y).sum().backward()
        assert torch.allclose(logits.grad, reference.grad, rtol=1e-4, atol=1e-6)
    assert torch.equal(gated_output(modules, x, (2,), 2, None), outputs[2])

    active = (0, 2)
    reference.grad = None
    p = torch.softmax(reference[list(active)], 0)
    (weight * (p[0] * outputs[0] + p[1] * outputs[2])).sum().backward()
    logits.grad = None
    (weight * gated_output(modules, x, active, 2, logits)).sum().backward()
    assert torch.allclose(logits.grad, reference.grad, rtol=1e-4, atol=1e-7)
    assert logits.grad[1] == 0 and logits.grad[3] == 0 and (logits.grad[[0, 2]] != 0).all()


def test_gated_output_runs_the_others_without_gradients():
    modules, x, _, _, logits = gate_setup()
    for module in modules:
        module.zero_grad(set_to_none=True)
    gated_output(modules, x, (0, 1), 1, logits).square().sum().backward()
    assert all(p.grad is not None for p in modules[1].parameters())
    assert all(p.grad is None for p in modules[0].parameters())


def test_rescale_pair_keeps_the_pair_logsumexp_and_the_others():
    old = torch.tensor([0.4, -0.3, 0.9, 0.1])
    logits = nn.Parameter(old + torch.tensor([0.5, 7.0, -0.2, 3.0]))
    stepped = logits.detach().clone()
    rescale_pair(logits, old, (0, 2))
    new = logits.detach()
    assert torch.allclose(torch.logsumexp(new[[0, 2]], 0), torch.logsumexp(old[[0, 2]], 0), atol=1e-6)
    assert torch.equal(new[[1, 3]], stepped[[1, 3]])
    assert torch.allclose(new[0] - new[2], stepped[0] - stepped[2], atol=1e-6)
    rescale_pair(logits, old, (1,))
    assert torch.equal(logits.detach(), new)


# ---- cost --------------------------------------------------------------------------------------

@pytest.mark.parametrize("space", [MIXED, manual_space(SKELETON)], ids=["mixed", "manual"])
def test_candidate_and_fixed_madds_add_up_to_the_network_madds(space):
    supernet = make(space)
    table = supernet.candidate_madds()
    assert [len(row) for row in table] == supernet.num_choices()
    for choice in random_choices(supernet, 20, seed=3) + [[0] * 4]:
        expected = network_madds(supernet.path_network(choice))
        assert supernet.fixed_madds() + sum(row[c] for row, c in zip(table, choice)) == expected
        assert network_madds_of_choice(supernet, choice) == expected
    assert all(madds == 0 for row, blocks in zip(table, supernet.choices)
               for madds, block in zip(row, blocks) if block.is_empty())


# ---- BN recalibration --------------------------------------------------------------------------

def batch_norm_inputs(model: nn.Module, run) -> dict[nn.Module, list[torch.Tensor]]:
    """The input of every BN call during `run()` (e.g. the recalibration's own forwards)."""
    seen, hooks = {}, []

    def record(module, args, output):  # returns None: the output is left alone
        seen.setdefault(module, []).append(args[0].detach().clone())

    for module in model.modules():
        if isinstance(module, nn.BatchNorm2d):
            hooks.append(module.register_forward_hook(record))
    try:
        run()
    finally:
        for hook in hooks:
            hook.remove()
    return seen


def test_recalibrate_batch_norm_gives_the_batch_statistics_and_restores_the_model():
    supernet = make()
    choice = [1, 0, 2, 1]
    with torch.no_grad():
        supernet.train()
        for step in range(3):  # stale statistics from other paths
            supernet(images(seed=40 + step), single([3, 2, 0, 2]))
    supernet.train(False)
    supernet.stem[1].momentum = 0.3
    supernet.layers[1].train()  # a mixed mode must come back as it was
    x = images(batch=4, seed=9)
    forward = lambda inputs: supernet(inputs, single(choice))  # noqa: E731
    inputs = batch_norm_inputs(supernet, lambda: recalibrate_batch_norm(supernet, [(x, torch.zeros(4))], forward))

    assert supernet.stem[1].momentum == 0.3 and supernet.head[1].momentum == 0.1
    assert not supernet.training and supernet.layers[1].training and supernet.layers[1][0].training
    assert not supernet.layers[2].training and not supernet.stem.training
    assert len(inputs) > 5
    for norm, (value,) in inputs.items():
        assert torch.allclose(norm.running_mean, value.mean((0, 2, 3)), rtol=1e-5, atol=1e-6)
        assert torch.allclose(norm.running_var, value.var((0, 2, 3), unbiased=True), rtol=1e-5, atol=1e-6)
        assert norm.num_batches_tracked == 1
    untouched = supernet.layers[1][0].expand[1]  # irb_k3_e3, not on the path: reset statistics
    assert untouched not in inputs and torch.equal(untouched.running_mean, torch.zeros(24))

    second = images(batch=4, seed=10)
    inputs = batch_norm_inputs(supernet, lambda: recalibrate_batch_norm(supernet, iter([x, second]), forward))
    for norm, values in inputs.items():  # cumulative average of the batch means
        assert len(values) == 2 and norm.num_batches_tracked == 2
        expected = (values[0].mean((0, 2, 3)) + values[1].mean((0, 2, 3))) / 2
        assert torch.allclose(norm.running_mean, expected, rtol=1e-5, atol=1e-6)
    with pytest.raises(AutospaceError, match="no batches"):
        recalibrate_batch_norm(supernet, [], forward)


def test_recalibrate_batch_norm_works_for_the_dea_supernet():
    generator = torch.Generator().manual_seed(0)
    supernet = CellSupernet(SKELETON, generator)
    cells = [[REF.cell, SUM_E1.cell]] * 2 + [[CONCAT_E1.cell, REF.cell], [SUM_E1.cell, CONCAT_E3.cell]]
    supernet.set_candidates(cells, [[0.0, 0.0]] * 4, generator)
    paths = [((1,), 1), ((0,), 0), ((0,), 0), ((1,), 1)]
    supernet.train(False)
    x = images(batch=4, seed=11)
    inputs = batch_norm_inputs(
        supernet, lambda: recalibrate_batch_norm(supernet, [(x,)], lambda batch: supernet(batch, paths)))
    assert not supernet.training and not any(module.training for bank in supernet.banks
                                             for module in bank._cell_modules.values())
    banked = [norm for norm in inputs if any(norm is m for bank in supernet.banks for m in bank.modules())]
    assert len(banked) > 5
    for norm in banked:
        assert torch.allclose(norm.running_mean, inputs[norm][0].mean((0, 2, 3)), rtol=1e-5, atol=1e-6)


# ---- bad input ---------------------------------------------------------------------------------

def test_bad_input_is_rejected_with_a_message():
    supernet = make()
    with pytest.raises(AutospaceError, match="searchable layers"):
        supernet(images(), single([0, 0]))
    with pytest.raises(AutospaceError, match="needs the layer's logits"):
        supernet(images(), [((0, 1), 0)] + single([0, 0, 0]))
    with pytest.raises(AutospaceError, match="chosen"):
        supernet(images(), [((0, 1), 2)] + single([0, 0, 0]))
    with pytest.raises(AutospaceError, match=r"in \[0, 4\)"):
        supernet(images(), [((4,), 4)] + single([0, 0, 0]))
    with pytest.raises(AutospaceError, match="shape"):
        supernet(images(), [((0, 1), 0)] + single([0, 0, 0]), [torch.zeros(3)] * 4)
    with pytest.raises(AutospaceError, match=r"choice 3 is not in \[0, 3\)"):
        supernet.path_network([0, 0, 3, 0])
    with pytest.raises(AutospaceError, match="searchable layers"):
        supernet.path_state_dict([0, 0, 0])
