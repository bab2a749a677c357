"""Fitness ranks cells by quality (in the spirit of AutoSpace's Table 6).

One searchable layer holds three cells of clearly different capacity; weight
steps and fitness steps (binary gates, Eq. 4 scaling, Adam, ProxylessNAS
rescaling) run on a real CIFAR-10 subset. From three different initial
fitness settings, including one that favours the worst cell, the final
fitness order must be good > medium > bad.
"""

from pathlib import Path

import pytest
import torch
import torch.nn.functional as functional

from autospace.arch import Cell, Skeleton, Stage
from autospace.data import load_dataset, stratified_split
from autospace.data.stream import BatchStream
from autospace.evolve.dea import compensated_fitness_step, count_compensation
from autospace.nn.supernet import CellSupernet

CIFAR = Path(__file__).resolve().parents[2] / "shared" / "data" / "cifar10_jpeg.npz"

GOOD = Cell(("conv3x3", "zero", "zero", "zero", "conv3x3", "zero"), expansion=6)     # two full 3x3 convs, wide
MEDIUM = Cell(("dwconv3x3", "zero", "zero", "zero", "identity", "zero"), expansion=3)  # an e3 inverted residual
BAD = Cell(("zero", "zero", "zero", "identity", "zero", "zero"), expansion=1)          # 1x1 convs only


def _fitness_after_training(dataset, initial_fitness, seed=0, steps=400, warmup=60):
    # a stride-2 stem keeps the one searchable layer cheap (16x16 in, 8x8 out)
    skeleton = Skeleton(stages=(Stage(32, 1, 2),), stem_channels=16, stem_stride=2, first_block=None,
                        head_channels=0, resolution=32)
    generator = torch.Generator().manual_seed(seed)
    supernet = CellSupernet(skeleton, generator)
    supernet.set_candidates([[GOOD, MEDIUM, BAD]], [list(initial_fitness)], generator)
    supernet = supernet.to(memory_format=torch.channels_last)
    train, held_out = stratified_split(dataset.train_labels, validation_fraction=0.25, seed=seed)
    streams = [BatchStream(dataset.train_images, dataset.train_labels, indices, 64, dataset.mean, dataset.std,
                           seed=seed + offset, channels_last=True) for offset, indices in enumerate((train, held_out))]
    weights = torch.optim.SGD(supernet.weight_parameters(), lr=0.05, momentum=0.9, nesterov=True)
    fitness = torch.optim.Adam(supernet.alphas(), lr=0.05, betas=(0.0, 0.999))
    counts = [[0, 0, 0]]
    sampler = torch.Generator().manual_seed(seed + 7)
    supernet.train()
    for step in range(steps):
        paths = supernet.sample_weight_paths(sampler, uniform=step < warmup)
        inputs, labels = streams[0].next()
        loss = functional.cross_entropy(supernet(inputs, paths), labels)
        weights.zero_grad(set_to_none=True)
        loss.backward()
        weights.step()
        counts[0][paths[0][1]] += 1
        if step >= warmup:
            paths = supernet.sample_fitness_paths(sampler)
            inputs, labels = streams[1].next()
            loss = functional.cross_entropy(supernet(inputs, paths), labels)
            (gradient,) = torch.autograd.grad(loss, supernet.alphas())
            old = [alpha.detach().clone() for alpha in supernet.alphas()]
            factors = count_compensation(counts[0], sum(counts[0]) / len(counts[0]))
            compensated_fitness_step(fitness, supernet.alphas(), [gradient], [factors])
            supernet.rescale_after_step(old, paths)
    return supernet.alphas()[0].detach().tolist()


@pytest.mark.skipif(not CIFAR.exists(), reason="the CIFAR-10 copy is not beside the repository")
def test_fitness_orders_cells_by_quality_from_any_start():
    dataset = load_dataset("cifar10", CIFAR.parent)
    dataset = dataset.subset(3000, None, torch.Generator().manual_seed(0))
    for initial in ((0.0, 0.0, 0.0), (-1.0, 0.0, 1.0), (0.5, -0.5, 0.0)):
        good, medium, bad = _fitness_after_training(dataset, initial)
        assert good > medium > bad, f"from {initial}: fitness good {good:.3f}, medium {medium:.3f}, bad {bad:.3f}"
