"""One rank of `test_distributed.py::test_primitives_equal_one_process` (run by torchrun, 2 gloo processes).

Every rank holds the whole global batch, so it can compute the one-process
reference itself (a plain copy of the model on the full batch) and compare it
with what the distributed path computes from its slice: synchronised BN,
sharded dropout, averaged gradients (weights, architecture logits, DEA
fitness), BN recalibration, sharded evaluation, batch streams, RL reward counts,
the non-finite guard and the agreement checks. Models run in float64, so the
comparisons are tight: anything beyond rounding is a bug. Writes
OUT/rank<R>.json with the worst differences and the checks' outcomes.
"""

from __future__ import annotations

import copy
import json
import sys
from pathlib import Path

import torch
from torch.nn import functional

from autospace.arch import Candidate, Cell, InvertedResidual, Layer, Network, SearchSpace, Skeleton, Stage
from autospace.arch import reference_cell
from autospace.data import normalize_batch, synthetic_dataset
from autospace.data.stream import BatchStream
from autospace.runtime.distributed import (
    RankDivergenceError, all_equal, all_reduce_sum, average_gradients, average_tensors, broadcast_object,
    check_same_on_all_ranks, destroy, init_distributed, shard_batch, sync_batch_layers,
)
from autospace.errors import AutospaceError
from autospace.nn import build_network
from autospace.nn.batchnorm import recalibrate_batch_norm
from autospace.nn.block_supernet import BlockSupernet
from autospace.nn.supernet import CellSupernet
from autospace.runtime.nonfinite import NonfiniteSteps
from autospace.train.evaluate import evaluate

BATCH = 8
SKELETON = Skeleton(stages=(Stage(8, 2, 1), Stage(12, 2, 2)), stem_channels=8, first_channels=8,
                    head_channels=16, num_classes=5, resolution=12, dropout=0.2)


def worst(pairs) -> float:
    return max(((a - b).abs().max().item() for a, b in pairs if a.numel()), default=0.0)


def gradient_pairs(model, reference):
    return [(p.grad, q.grad) for p, q in zip(model.parameters(), reference.parameters())
            if p.grad is not None or q.grad is not None]


def buffer_pairs(model, reference):
    return [(b.double(), c.double()) for b, c in zip(model.buffers(), reference.buffers())]


def inputs(seed: int, channels: int = 3, resolution: int = 12):
    generator = torch.Generator().manual_seed(seed)
    return (torch.randn(BATCH, channels, resolution, resolution, generator=generator, dtype=torch.float64) * 2 + 0.5,
            torch.randint(0, 5, (BATCH,), generator=generator))


def compare_step(dist, model, reference, forward, reference_forward, x, y, what: str, results: dict) -> None:
    """One forward/backward on the full batch (reference) and on this rank's slice (distributed)."""
    torch.manual_seed(7)  # dropout: both draw from the same global stream
    loss_reference = functional.cross_entropy(reference_forward(x), y, label_smoothing=0.1)
    loss_reference.backward()
    torch.manual_seed(7)
    loss = functional.cross_entropy(forward(shard_batch(dist, x)), shard_batch(dist, y), label_smoothing=0.1)
    loss.backward()
    average_gradients(dist, model.parameters())
    mean_loss = all_reduce_sum(dist, loss.detach()) / dist.world_size
    results[f"{what}: loss"] = (mean_loss - loss_reference.detach()).abs().item()
    results[f"{what}: gradients"] = worst(gradient_pairs(model, reference))
    results[f"{what}: buffers"] = worst(buffer_pairs(model, reference))
    results[f"{what}: same parameters with a gradient"] = (
        [p.grad is None for p in model.parameters()] == [q.grad is None for q in reference.parameters()])


def main(out: Path) -> None:
    dist = init_distributed("cpu")
    assert dist.enabled and dist.world_size == 2, dist
    results: dict = {"rank": dist.rank, "world_size": dist.world_size, "backend": dist.backend}

    # -- a stand-alone network (train): BN, squeeze-excite, dropout ------------------------------------
    network = Network(layers=(Layer(InvertedResidual(3, 1), 8, 1, searchable=False),
                              Layer(InvertedResidual(3, 3), 12, 2),
                              Layer(InvertedResidual(5, 3, squeeze_excite=True), 12, 1)),
                      stem_channels=8, head_channels=16, num_classes=5, resolution=12, dropout=0.3)
    torch.manual_seed(0)
    model = build_network(network).double()
    reference = copy.deepcopy(model)
    sync_batch_layers(dist, model)
    sync_batch_layers(dist, model)  # idempotent
    x, y = inputs(1)
    compare_step(dist, model, reference, model, reference, x, y, "network", results)
    for optimiser_model in (model, reference):
        torch.optim.SGD(optimiser_model.parameters(), lr=0.1, momentum=0.9).step()
    results["network: weights after a step"] = worst(zip(model.parameters(), reference.parameters()))
    check_same_on_all_ranks(dist, model.state_dict(), "the network")

    # -- BN recalibration (momentum None, cumulative) on sharded batches -------------------------------
    batches = [inputs(seed)[0] for seed in (2, 3)]
    recalibrate_batch_norm(model, [shard_batch(dist, batch) for batch in batches], model)
    recalibrate_batch_norm(reference, batches, reference)
    results["recalibration: buffers"] = worst(buffer_pairs(model, reference))

    # -- sharded evaluation: eval mode, uneven parts (13 images over 2 ranks) ---------------------------
    data = synthetic_dataset(train_count=16, test_count=13, num_classes=5, resolution=12, seed=4)
    evaluation_model = build_network(network).eval()
    figures = evaluate(evaluation_model, data.test_images, data.test_labels, data.mean, data.std, batch_size=4,
                       distributed=dist)
    reference_figures = evaluate(evaluation_model, data.test_images, data.test_labels, data.mean, data.std,
                                 batch_size=4)
    results["evaluate: loss"] = abs(figures[0] - reference_figures[0])
    results["evaluate: accuracy equal"] = figures[1] == reference_figures[1]

    # -- a batch stream: this rank's slices, in order, are the one-process batches' rows ----------------
    indices = torch.arange(16)
    sharded = BatchStream(data.train_images, data.train_labels, indices, BATCH, data.mean, data.std, seed=5,
                          distributed=dist)
    whole = BatchStream(data.train_images, data.train_labels, indices, BATCH, data.mean, data.std, seed=5)
    stream_equal = True
    for _ in range(5):  # crosses an epoch boundary
        (images, labels), (all_images, all_labels) = sharded.next(), whole.next()
        stream_equal &= torch.equal(images, shard_batch(dist, all_images))
        stream_equal &= torch.equal(labels, shard_batch(dist, all_labels))
    results["stream: slices equal"] = bool(stream_equal)
    try:
        BatchStream(data.train_images, data.train_labels, indices, 7, data.mean, data.std, seed=5, distributed=dist)
        results["stream: odd batch refused"] = False
    except AutospaceError as error:
        results["stream: odd batch refused"] = "multiple of 2" in str(error)

    # -- the search supernet: a weight step on one path, an architecture step on two paths ---------------
    space = SearchSpace(SKELETON, tuple((Candidate(InvertedResidual(3, 3)), Candidate(InvertedResidual(5, 1)))
                                        for _ in SKELETON.searchable_slots()), name="tiny")
    supernet = BlockSupernet(space, torch.Generator().manual_seed(1)).double()
    reference = copy.deepcopy(supernet)
    sync_batch_layers(dist, supernet)
    counts = supernet.num_choices()
    paths = [((count - 1,), count - 1) if layer % 2 else ((0,), 0) for layer, count in enumerate(counts)]
    x, y = inputs(6)
    compare_step(dist, supernet, reference, lambda v: supernet(v, paths), lambda v: reference(v, paths), x, y,
                 "search supernet", results)
    logits = [torch.linspace(-0.3, 0.2, count, dtype=torch.float64).requires_grad_() for count in counts]
    pairs = [((0, count - 1), count - 1 if layer % 2 else 0) for layer, count in enumerate(counts)]
    x, y = inputs(7)
    torch.manual_seed(8)
    gradient_reference = torch.autograd.grad(functional.cross_entropy(reference(x, pairs, logits), y), logits)
    torch.manual_seed(8)
    gradients = list(torch.autograd.grad(
        functional.cross_entropy(supernet(shard_batch(dist, x), pairs, logits), shard_batch(dist, y)), logits))
    average_tensors(dist, gradients)
    results["search supernet: architecture gradients"] = worst(zip(gradients, gradient_reference))

    # -- RL reward: correct counts over the global batch ----------------------------------------------
    with torch.no_grad():
        predictions = reference.eval()(x, paths).argmax(1)
        local = supernet.eval()(shard_batch(dist, x), paths).argmax(1)
    correct = all_reduce_sum(dist, (local == shard_batch(dist, y)).sum()).item()
    results["rl reward: counts equal"] = correct == (predictions == y).sum().item()

    # -- the DEA supernet: weight step and the fitness gradient of the alphas --------------------------
    other = Cell(("conv3x3", "identity", "conv1x1", "dwconv3x3", "zero", "identity"), 3, "concat")
    cells = [[reference_cell(), other]] * 4
    cell_supernet = CellSupernet(SKELETON, torch.Generator().manual_seed(2))
    cell_supernet.set_candidates(cells, [[0.1, -0.2]] * 4, torch.Generator().manual_seed(3))
    cell_supernet = cell_supernet.double()
    reference = copy.deepcopy(cell_supernet)
    sync_batch_layers(dist, cell_supernet)
    paths = [((0,), 0), ((1,), 1), ((1,), 1), ((0,), 0)]
    x, y = inputs(9)
    compare_step(dist, cell_supernet, reference, lambda v: cell_supernet(v, paths), lambda v: reference(v, paths),
                 x, y, "evolve supernet", results)
    fitness_paths = [((0, 1), 0), ((0, 1), 1), ((0, 1), 1), ((0, 1), 0)]
    x, y = inputs(10)
    torch.manual_seed(11)
    fitness_reference = torch.autograd.grad(functional.cross_entropy(reference(x, fitness_paths), y),
                                            reference.alphas())
    torch.manual_seed(11)
    fitness = list(torch.autograd.grad(functional.cross_entropy(cell_supernet(shard_batch(dist, x), fitness_paths),
                                                                shard_batch(dist, y)), cell_supernet.alphas()))
    average_tensors(dist, fitness)
    results["evolve supernet: fitness gradients"] = worst(zip(fitness, fitness_reference))
    check_same_on_all_ranks(dist, {"weights": cell_supernet.state_dict(), "fitness": fitness}, "the DEA supernet")

    # -- the non-finite guard: a NaN on one rank makes every rank skip, and the BN statistics come back ----
    guard = NonfiniteSteps(1, "test", out, "no advice", dist)
    before = [buffer.clone() for buffer in model.buffers()]
    guard.remember(model)
    model.train()
    x, y = inputs(12)
    x = shard_batch(dist, x).clone()
    if dist.rank == 1:
        x[0, 0, 0, 0] = float("nan")
    loss = functional.cross_entropy(model(x), shard_batch(dist, y))
    results["guard: skipped on every rank"] = guard.accept(loss, [], "step 1") is False
    results["guard: buffers restored"] = worst(zip(before, model.buffers())) == 0
    guard.remember(model)
    try:
        guard.accept(loss, [], "step 2")
        results["guard: stops after the limit"] = False
    except AutospaceError as error:
        results["guard: stops after the limit"] = "skip_nonfinite=1" in str(error)

    # -- agreement checks ------------------------------------------------------------------------------
    results["all_equal: same"] = all_equal(dist, {"a": torch.ones(3), "b": [1, 2.5, "x"]})
    results["all_equal: different"] = all_equal(dist, torch.tensor([float(dist.rank)]))
    try:
        check_same_on_all_ranks(dist, {"weights": torch.ones(2) + dist.rank}, "a test value")
        results["check_same: raises"] = False
    except RankDivergenceError as error:
        results["check_same: raises"] = "rank(s) [1]" in str(error)
    results["broadcast_object"] = broadcast_object(dist, {"from": dist.rank})
    try:
        shard_batch(dist, torch.zeros(3))
        results["shard_batch: odd refused"] = False
    except AutospaceError:
        results["shard_batch: odd refused"] = True

    (out / f"rank{dist.rank}.json").write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    try:
        main(Path(sys.argv[1]))
    finally:
        # End the gloo group before the interpreter exits, as the CLI does: a process that exits with
        # it alive can abort in gloo's thread teardown ("terminate called without an active
        # exception", seen once under load), after both ranks had written their results.
        destroy()
