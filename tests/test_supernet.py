"""Tests for the DEA supernet: weight banks, binary gates, paths vs stand-alone networks."""

from __future__ import annotations

import math

import pytest
import torch
from torch.nn import functional

from autospace.arch import Cell, CellBlock, Skeleton, Stage, ZeroBlock, reference_cell
from autospace.errors import AutospaceError
from autospace.nn import build_network
from autospace.nn.gates import GatedCellLayer, sample_pair, sample_single
from autospace.nn.supernet import CellSupernet
from autospace.nn.weight_bank import CellWeightBank, cell_keys

# Slots: fixed first block 8->8; searchable 8->8 s1, 8->8 s1, 8->12 s2, 12->12 s1.
SKELETON = Skeleton(stages=(Stage(8, 2, 1), Stage(12, 2, 2)), stem_channels=8, first_channels=8,
                    head_channels=16, num_classes=5, resolution=12)

REF = reference_cell()                                                        # e6: 0->1 dw, 1->3 id
SUM_E1 = Cell(("conv1x1", "conv3x3", "dwconv3x3", "identity", "conv1x1", "conv3x3"), 1, "sum")
CONCAT_E3 = Cell(("conv3x3", "identity", "conv1x1", "dwconv3x3", "zero", "identity"), 3, "concat")
CONCAT_E1 = Cell(("conv1x1", "conv1x1", "dwconv3x3", "conv3x3", "identity", "conv1x1"), 1, "concat")
SHARES_REF = Cell(("dwconv3x3", "zero", "zero", "conv1x1", "identity", "zero"), 6, "sum")  # REF's 0->1 op
EMPTY = Cell(("zero",) * 6, 1, "sum")

CELLS = [[REF, CONCAT_E3, SUM_E1, EMPTY],
         [SHARES_REF, CONCAT_E1, REF, CONCAT_E3],
         [CONCAT_E3, SUM_E1, CONCAT_E1, REF],      # stride 2: strided identity, no residual
         [CONCAT_E1, EMPTY, SHARES_REF, SUM_E1]]
FITNESS = [[0.3, -0.2, 0.1, 0.0], [0.0, 0.5, -0.4, 0.2], [0.1, 0.1, -0.3, 0.6], [-0.1, 0.2, 0.0, 0.4]]


def make_supernet(seed: int = 0, cells=CELLS, fitness=FITNESS) -> CellSupernet:
    generator = torch.Generator().manual_seed(seed)
    supernet = CellSupernet(SKELETON, generator)
    supernet.set_candidates(cells, fitness, generator)
    return supernet


def make_layer(alpha=(0.4, -0.3, 0.9, 0.1), cells=(REF, CONCAT_E3, SUM_E1, EMPTY), size: int = 6):
    slot = SKELETON.searchable_slots()[0]
    slot = type(slot)(slot.index, slot.in_channels, slot.out_channels, slot.stride, size, True)
    bank = CellWeightBank(slot)
    layer = GatedCellLayer(bank, list(cells), list(alpha), torch.Generator().manual_seed(1))
    return bank, layer


def images(batch: int = 2, size: int = 12, seed: int = 5) -> torch.Tensor:
    return torch.randn(batch, 3, size, size, generator=torch.Generator().manual_seed(seed))


def cell_parameter_ids(module) -> set[int]:
    return {id(parameter) for parameter in module.parameters()}


# ---- binary gates ----------------------------------------------------------------------------

def test_all_mode_gate_gradient_is_exact_for_a_linear_loss():
    _, layer = make_layer()
    x = torch.randn(2, 8, 6, 6, generator=torch.Generator().manual_seed(2))
    outputs = [module(x).detach() for module in layer.cell_modules]
    weight = torch.randn_like(outputs[0], generator=torch.Generator().manual_seed(3))
    reference = layer.alpha.detach().clone().requires_grad_(True)
    p = torch.softmax(reference, 0)
    (weight * sum(p[i] * out for i, out in enumerate(outputs))).sum().backward()
    for chosen in range(layer.num_cells):
        layer.alpha.grad = None
        y = layer(x, tuple(range(layer.num_cells)), chosen)
        assert torch.equal(y, outputs[chosen])  # the value is the chosen cell's output, exactly
        (weight * y).sum().backward()
        assert torch.allclose(layer.alpha.grad, reference.grad, rtol=1e-4, atol=1e-6)
    layer.alpha.grad = None
    (weight * layer.mixed_output(x)).sum().backward()
    assert torch.allclose(layer.alpha.grad, reference.grad, rtol=1e-4, atol=1e-6)


def test_pair_gate_gradient_is_exact_over_the_pair_for_a_linear_loss():
    _, layer = make_layer()
    x = torch.randn(2, 8, 6, 6, generator=torch.Generator().manual_seed(2))
    active = (1, 3)
    outputs = {i: layer.cell_modules[i](x).detach() for i in active}
    weight = torch.randn_like(outputs[1], generator=torch.Generator().manual_seed(4))
    reference = layer.alpha.detach().clone().requires_grad_(True)
    p = torch.softmax(torch.stack([reference[i] for i in active]), 0)
    (weight * (p[0] * outputs[1] + p[1] * outputs[3])).sum().backward()
    for chosen in active:
        layer.alpha.grad = None
        (weight * layer(x, active, chosen)).sum().backward()
        assert torch.allclose(layer.alpha.grad, reference.grad, rtol=1e-4, atol=1e-7)
        assert layer.alpha.grad[0] == 0 and layer.alpha.grad[2] == 0
        assert layer.alpha.grad[1] != 0 and layer.alpha.grad[3] != 0


def test_gate_estimator_is_unbiased_for_a_quadratic_loss():
    """dL/dy affine in y: E_{chosen ~ p}[estimator] equals the gradient of L(sum_i p_i out_i)."""
    _, layer = make_layer(size=4)
    x = torch.randn(1, 8, 4, 4, generator=torch.Generator().manual_seed(2))
    outputs = [module(x).detach() for module in layer.cell_modules]
    weight = torch.randn_like(outputs[0], generator=torch.Generator().manual_seed(6))

    def loss(y):
        return (weight * y).sum() + 0.5 * y.square().sum()

    reference = layer.alpha.detach().clone().requires_grad_(True)
    p = torch.softmax(reference, 0)
    loss(sum(p[i] * out for i, out in enumerate(outputs))).backward()
    exact = reference.grad
    linear_only = torch.autograd.grad((weight * sum(torch.softmax(layer.alpha, 0)[i] * out
                                                    for i, out in enumerate(outputs))).sum(), layer.alpha)[0]
    assert (exact - linear_only).norm() > 0.2 * exact.norm()  # the quadratic term matters

    all_paths = tuple(range(layer.num_cells))
    estimates = []
    for chosen in all_paths:
        layer.alpha.grad = None
        loss(layer(x, all_paths, chosen)).backward()
        estimates.append(layer.alpha.grad.clone())
    expectation = sum(p[c].detach() * estimates[c] for c in all_paths)
    assert torch.allclose(expectation, exact, rtol=1e-4, atol=1e-5)

    generator = torch.Generator().manual_seed(7)
    samples = 400
    monte_carlo = sum(estimates[sample_single(p.detach(), generator)] for _ in range(samples)) / samples
    assert (monte_carlo - exact).norm() < 0.2 * exact.norm()


def test_sample_single_and_pair_frequencies_follow_p():
    p = torch.tensor([0.1, 0.2, 0.3, 0.4])
    generator = torch.Generator().manual_seed(11)
    draws = 20000
    counts = torch.zeros(4)
    for _ in range(draws):
        counts[sample_single(p, generator)] += 1
    expected = p * draws
    assert ((counts - expected).square() / expected).sum() < 20  # chi-square, 3 dof (p(>16.3) = 0.001)

    outcomes = {}
    for a in range(4):
        for b in range(a + 1, 4):
            pair = p[a] * p[b] / (1 - p[a]) + p[b] * p[a] / (1 - p[b])
            outcomes[((a, b), a)] = float(pair * p[a] / (p[a] + p[b]))
            outcomes[((a, b), b)] = float(pair * p[b] / (p[a] + p[b]))
    assert math.isclose(sum(outcomes.values()), 1.0, rel_tol=1e-6)
    observed = dict.fromkeys(outcomes, 0)
    for _ in range(draws):
        observed[sample_pair(p, generator)] += 1
    statistic = sum((observed[k] - draws * q) ** 2 / (draws * q) for k, q in outcomes.items())
    assert statistic < 35  # 11 dof (p(>31.3) = 0.001)
    assert sample_pair(torch.tensor([1.0]), generator) == ((0,), 0)
    with pytest.raises(AutospaceError):
        sample_pair(torch.tensor([1.0, 0.0, 0.0]), generator)


def test_supernet_weight_paths_follow_softmax_alpha():
    supernet = make_supernet()
    generator = torch.Generator().manual_seed(12)
    draws = 3000
    counts = torch.zeros(4, 4)
    for _ in range(draws):
        for layer, (active, chosen) in enumerate(supernet.sample_weight_paths(generator)):
            assert active == (chosen,)
            counts[layer, chosen] += 1
    expected = torch.softmax(torch.tensor(FITNESS), 1) * draws
    assert (((counts - expected).square() / expected).sum(1) < 20).all()


def test_rescale_after_step_keeps_the_pair_logsumexp_and_the_others():
    _, layer = make_layer()
    x = torch.randn(2, 8, 6, 6, generator=torch.Generator().manual_seed(2))
    optimizer = torch.optim.Adam([layer.alpha], lr=0.1, betas=(0.0, 0.999))
    active = (0, 2)
    old = layer.alpha.detach().clone()
    layer(x, active, 2).square().mean().backward()
    optimizer.step()
    stepped = layer.alpha.detach().clone()
    assert not torch.equal(stepped[[0, 2]], old[[0, 2]])
    layer.rescale_after_step(old, active)
    new = layer.alpha.detach()
    assert torch.allclose(torch.logsumexp(new[[0, 2]], 0), torch.logsumexp(old[[0, 2]], 0), atol=1e-6)
    assert torch.equal(new[[1, 3]], old[[1, 3]])
    assert torch.allclose(new[0] - new[2], stepped[0] - stepped[2], atol=1e-6)
    assert torch.allclose(torch.logsumexp(new, 0), torch.logsumexp(old, 0), atol=1e-6)


# ---- weight bank -----------------------------------------------------------------------------

def test_rebuilt_cells_inherit_the_very_same_parameters():
    supernet = make_supernet()
    bank = supernet.banks[1]
    before = supernet.gated_layers[1].cell_modules[2]  # REF
    parameters = list(before.parameters())
    pointers = [parameter.data_ptr() for parameter in parameters]
    generator = torch.Generator().manual_seed(9)
    cells = [list(reversed(layer)) for layer in CELLS]
    created = supernet.set_candidates(cells, [[0.0] * 4] * 4, generator)
    assert created == []  # nothing new: every cell was seen before
    after = supernet.gated_layers[1].cell_modules[1]
    assert supernet.gated_layers[1].cells[1] == REF and after is before
    assert all(a is b for a, b in zip(after.parameters(), parameters))
    assert [parameter.data_ptr() for parameter in after.parameters()] == pointers

    sharer = supernet.gated_layers[1].cell_modules[3]  # SHARES_REF: same e6 0->1 dwconv3x3
    assert sharer.edges["0->1"][0].weight is before.edges["0->1"][0].weight
    assert sharer.input_conv is before.input_conv and sharer.output_conv is before.output_conv
    other = bank.cell_module(Cell(REF.ops, 3, "sum"), generator)  # another expansion shares nothing
    assert not cell_parameter_ids(other) & cell_parameter_ids(before)
    keys_before = [set(b.keys()) for b in supernet.banks]
    new = supernet.set_candidates([[Cell(REF.ops, 3, "sum")]] * 4, [[0.0]] * 4, generator)
    added = [key for b, seen in zip(supernet.banks, keys_before) for key in b.keys() if key not in seen]
    assert added and all(key.startswith(("input|e3", "output|e3", "e3|0->1|dwconv3x3")) for key in added)
    assert [id(p) for p in new] == [id(p) for b, seen in zip(supernet.banks, keys_before)
                                    for key in b.keys() if key not in seen for p in b.module(key).parameters()]


def test_bank_keys_follow_the_cell_and_resume_restores_the_bank():
    assert cell_keys(REF) == ["input|e6", "e6|0->1|dwconv3x3", "output|e6"]
    assert cell_keys(CONCAT_E1)[-2:] == ["e1|node3|concat3", "output|e1"]
    assert "e1|node2|concat2" in cell_keys(CONCAT_E1) and cell_keys(EMPTY) == []
    supernet = make_supernet(seed=3)
    with torch.no_grad():
        for parameter in supernet.parameters():
            parameter.add_(0.01)
    keys = [bank.keys() for bank in supernet.banks]
    resumed = CellSupernet(SKELETON, torch.Generator().manual_seed(99))
    for bank, bank_keys in zip(resumed.banks, keys):
        bank.ensure(bank_keys, torch.Generator().manual_seed(100))
    resumed.set_candidates(CELLS, [[0.0] * 4] * 4, torch.Generator().manual_seed(101))
    resumed.load_state_dict(supernet.state_dict())
    assert [bank.keys() for bank in resumed.banks] == keys
    assert [p.shape for p in resumed.weight_parameters()] == [p.shape for p in supernet.weight_parameters()]
    supernet.train(False), resumed.train(False)
    paths = supernet.sample_fitness_paths(torch.Generator().manual_seed(0))
    assert torch.equal(supernet(images(), paths), resumed(images(), paths))
    with pytest.raises(AutospaceError, match="bad weight-bank key"):
        resumed.banks[0].ensure(["e6|0->3|maxpool"], torch.Generator())


def test_same_seed_same_weights_and_paths_and_no_global_rng():
    state = torch.random.get_rng_state()
    first, second = make_supernet(seed=4), make_supernet(seed=4)
    assert torch.equal(state, torch.random.get_rng_state())
    for (name, a), (other, b) in zip(first.state_dict().items(), second.state_dict().items()):
        assert name == other and torch.equal(a, b)
    assert not torch.equal(make_supernet(seed=5).banks[0].module("input|e6")[0].weight,
                           first.banks[0].module("input|e6")[0].weight)
    samplers = torch.Generator().manual_seed(6), torch.Generator().manual_seed(6)
    for _ in range(5):
        assert first.sample_weight_paths(samplers[0]) == second.sample_weight_paths(samplers[1])
        assert first.sample_fitness_paths(samplers[0]) == second.sample_fitness_paths(samplers[1])


# ---- supernet --------------------------------------------------------------------------------

def test_a_supernet_path_equals_the_built_standalone_network():
    supernet = make_supernet()
    generator = torch.Generator().manual_seed(8)
    with torch.no_grad():  # give BN non-trivial statistics and affine parameters
        for step in range(4):
            supernet(images(seed=20 + step), supernet.sample_fitness_paths(generator))
        for name, parameter in supernet.named_parameters():
            if name.endswith(("1.weight", "1.bias")):
                parameter.uniform_(0.5, 1.5, generator=generator)
    supernet.train(False)
    paths = [[((j,), j)] * 4 for j in range(4)]  # every candidate of every layer, empty cells included
    paths += [supernet.sample_fitness_paths(generator) for _ in range(2)]
    x = images(batch=3)
    for path in paths:
        network = supernet.path_network(path)
        module = build_network(network)
        module.load_state_dict(supernet.path_state_dict(path))  # strict
        module.train(False)
        assert torch.allclose(module(x), supernet(x, path), rtol=1e-5, atol=1e-5)
    assert supernet.path_network(paths[3]).layers[1].block == ZeroBlock()
    assert supernet.path_network(paths[0]).layers[1].block == CellBlock(REF)


def test_weight_step_trains_only_the_chosen_cells_and_fitness_step_only_the_pair():
    supernet = make_supernet()
    supernet.train()
    labels = torch.tensor([0, 3])
    paths = [((0,), 0), ((3,), 3), ((1,), 1), ((2,), 2)]
    functional.cross_entropy(supernet(images(), paths), labels).backward()
    chosen = set().union(*(cell_parameter_ids(layer.cell_modules[c])
                           for layer, (_, c) in zip(supernet.gated_layers, paths)))
    for parameter in supernet.weight_parameters():
        banked = any(parameter is p for bank in supernet.banks for p in bank.parameters())
        assert (parameter.grad is not None) == (id(parameter) in chosen or not banked)
    assert all(alpha.grad is None for alpha in supernet.alphas())

    supernet.zero_grad(set_to_none=True)
    paths = [((0, 2), 2), ((1, 3), 1), ((0, 3), 0), ((0, 1), 1)]
    functional.cross_entropy(supernet(images(), paths), labels).backward()
    for layer, (active, chosen_index) in zip(supernet.gated_layers, paths):
        grad = layer.alpha.grad
        assert all((grad[i] != 0) == (i in active) for i in range(4)), (grad, active)
        only_other = (cell_parameter_ids(layer.cell_modules[sum(active) - chosen_index])
                      - cell_parameter_ids(layer.cell_modules[chosen_index]))
        assert all(p.grad is None for p in layer.bank.parameters() if id(p) in only_other)


def test_fitness_step_sharing_bank_results_changes_no_value_or_gradient():
    """Cells of one expansion share the bank's input conv (and REF / SHARES_REF their 0->1 edge):
    with sharing each runs once per fitness step, and the logits and every gradient are the same."""
    paths = [((0, 2), 2), ((0, 2), 0), ((0, 3), 3), ((2, 3), 3)]  # layer 1: SHARES_REF + REF, both e6
    labels = torch.tensor([0, 3, 1])
    results = {}
    for share in (False, True):
        supernet = make_supernet().double()
        supernet.train()
        for layer in supernet.gated_layers:
            layer.share_subcomputations = share
        bank = supernet.banks[1]
        calls = {"input|e6": 0, "e6|0->1|dwconv3x3": 0}
        for key in calls:
            bank.module(key).register_forward_hook(lambda *_, key=key: calls.__setitem__(key, calls[key] + 1))
        logits = supernet(images(batch=3).double(), paths)
        functional.cross_entropy(logits, labels).backward()
        results[share] = (logits.detach(), [alpha.grad.clone() for alpha in supernet.alphas()],
                          {name: p.grad.clone() for name, p in supernet.named_parameters() if p.grad is not None},
                          calls)
    (plain_logits, plain_alpha, plain_weights, plain_calls), (logits, alpha, weights, calls) = results[False], results[True]
    assert plain_calls == {"input|e6": 2, "e6|0->1|dwconv3x3": 2}
    assert calls == {"input|e6": 1, "e6|0->1|dwconv3x3": 1}
    assert torch.allclose(logits, plain_logits, rtol=0, atol=1e-12)
    for shared, plain in zip(alpha, plain_alpha):
        assert torch.allclose(shared, plain, rtol=0, atol=1e-12)
    assert weights.keys() == plain_weights.keys()
    for name in weights:
        assert torch.allclose(weights[name], plain_weights[name], rtol=0, atol=1e-12), name


def test_probabilities_follow_alpha_updates_and_rescale():
    supernet = make_supernet()
    assert torch.allclose(torch.tensor(supernet.path_probabilities()), torch.softmax(torch.tensor(FITNESS), 1))
    optimizer = torch.optim.Adam(supernet.alphas(), lr=0.5)
    paths = supernet.sample_fitness_paths(torch.Generator().manual_seed(1))
    old = [alpha.detach().clone() for alpha in supernet.alphas()]
    functional.cross_entropy(supernet(images(), paths), torch.tensor([1, 2])).backward()
    optimizer.step()
    stepped = torch.stack([torch.softmax(alpha.detach(), 0) for alpha in supernet.alphas()])
    assert torch.allclose(torch.tensor(supernet.path_probabilities()), stepped)
    supernet.rescale_after_step(old, paths)
    rescaled = torch.stack([torch.softmax(alpha.detach(), 0) for alpha in supernet.alphas()])
    assert torch.allclose(torch.tensor(supernet.path_probabilities()), rescaled)
    for alpha, before, (active, _) in zip(supernet.alphas(), old, paths):
        others = [i for i in range(4) if i not in active]
        assert torch.allclose(torch.softmax(alpha.detach(), 0)[others], torch.softmax(before, 0)[others])


def test_bad_input_is_rejected_with_a_message():
    supernet = CellSupernet(SKELETON, torch.Generator().manual_seed(0))
    with pytest.raises(AutospaceError, match="set_candidates"):
        supernet(images(), [])
    with pytest.raises(AutospaceError, match="searchable layers"):
        supernet.set_candidates(CELLS[:2], FITNESS[:2], torch.Generator())
    with pytest.raises(AutospaceError, match="only valid where the layer has a residual"):
        supernet.set_candidates([CELLS[0], CELLS[1], [EMPTY], CELLS[3]],
                                [FITNESS[0], FITNESS[1], [0.0], FITNESS[3]], torch.Generator())
    with pytest.raises(AutospaceError, match="one per cell"):
        supernet.set_candidates(CELLS, [[0.0]] * 4, torch.Generator())
    supernet.set_candidates(CELLS, FITNESS, torch.Generator())
    with pytest.raises(AutospaceError, match="chosen"):
        supernet(images(), [((0, 1), 2)] * 4)


def test_lazily_created_modules_follow_the_supernet_layout_and_dtype():
    generator = torch.Generator().manual_seed(0)
    supernet = CellSupernet(SKELETON, generator).to(memory_format=torch.channels_last)
    supernet.set_candidates([[SUM_E1]] * 4, [[0.0]] * 4, generator)
    weight = supernet.banks[0].module("e1|0->2|conv3x3")[0].weight
    assert weight.is_contiguous(memory_format=torch.channels_last) and not weight.is_contiguous()
    bank = CellWeightBank(SKELETON.searchable_slots()[0]).to(torch.float64)
    assert bank.cell_module(REF, generator).input_conv[0].weight.dtype == torch.float64
