"""Cost of DEA supernet steps against the stand-alone network of the same path.

For a sequence of sampled paths, times (a) supernet weight steps (one cell per
layer), (b) supernet fitness steps (two cells per layer, alpha gradient only),
and (c) a training step of the stand-alone network that the builder makes for
the same path (built before timing). Every candidate cell runs once before any
timing, so lazy bank creation and cuDNN autotuning of unseen shapes are not
counted. Prints one JSON line with the ratios (target on a GPU: weight <= 1.05,
fitness <= 2.0) and, on CUDA, peak-memory ratios; then a sequence of steps on
fresh paths, as in training, whose slowest step over the median should stay
<= 1.5. The fitness step is also timed with the cells' sharing of bank results
turned off (`GatedCellLayer.share_subcomputations`): `fitness_sharing_speedup`
is what reusing a shared input conv and node-0 edges saves.

    python bench/evolve_speed.py --preset cifar --budget-madds 60M --batch-size 128
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import time

import torch
import torch.nn.functional as functional

from autospace.arch import preset_skeleton, reference_cell
from autospace.cost.units import parse_madds
from autospace.runtime.device import hardware_info, resolve_channels_last, resolve_device, resolve_precision
from autospace.evolve.layer_budget import layer_budgets
from autospace.evolve.population import LayerPopulation
from autospace.nn import build_network
from autospace.nn.supernet import CellSupernet
from autospace.train.optim import fast_update_options


def synchronize(device):
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed(device, function) -> float:
    synchronize(device)
    start = time.perf_counter()
    function()
    synchronize(device)
    return time.perf_counter() - start


def peak_memory(device, function) -> int | None:
    if device.type != "cuda":
        return None
    synchronize(device)
    torch.cuda.reset_peak_memory_stats(device)
    base = torch.cuda.memory_allocated(device)
    function()
    synchronize(device)
    return torch.cuda.max_memory_allocated(device) - base


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="cifar")
    parser.add_argument("--budget-madds", default="60M")
    parser.add_argument("--candidates", type=int, default=9, help="M cells per layer")
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--paths", type=int, default=10, help="sampled paths to time")
    parser.add_argument("--repeats", type=int, default=3, help="timed steps per path")
    parser.add_argument("--sequence", type=int, default=40,
                        help="then this many weight + fitness step pairs on fresh paths, as in training, each "
                             "timed: the largest over the median (target: <= 1.5)")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--precision", default="auto")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    device = resolve_device(args.device)
    autocast_dtype = resolve_precision(args.precision, device)
    channels_last = resolve_channels_last("auto", device)
    memory_format = torch.channels_last if channels_last else torch.contiguous_format
    skeleton = preset_skeleton(args.preset)
    bands = layer_budgets(skeleton, parse_madds(args.budget_madds), reference_cell(), 1.08, 0.6)
    rng = random.Random(args.seed)
    cells = []
    for slot, band in zip(skeleton.searchable_slots(), bands):
        population = LayerPopulation(slot, band, 3)
        population.initialise(args.candidates, rng)
        cells.append(population.cells())
    generator = torch.Generator().manual_seed(args.seed)
    supernet = CellSupernet(skeleton, generator)
    supernet.set_candidates(cells, [[0.0] * len(layer) for layer in cells], generator)
    supernet = supernet.to(device=device, memory_format=memory_format)
    weights = torch.optim.SGD(supernet.weight_parameters(), lr=0.01, momentum=0.9, nesterov=True,
                              **fast_update_options(supernet.weight_parameters()))
    inputs = torch.randn(args.batch_size, 3, skeleton.resolution, skeleton.resolution, device=device)
    inputs = inputs.contiguous(memory_format=memory_format)
    labels = torch.randint(0, skeleton.num_classes, (args.batch_size,), device=device)

    def loss_of(model, *extra):
        with torch.autocast(device.type, dtype=autocast_dtype, enabled=autocast_dtype is not None):
            return functional.cross_entropy(model(inputs, *extra).float(), labels)

    def weight_step(paths):
        loss = loss_of(supernet, paths)
        weights.zero_grad(set_to_none=True)
        loss.backward()
        weights.step()

    def fitness_step(paths):
        torch.autograd.grad(loss_of(supernet, paths), supernet.alphas())

    def unshared_fitness_step(paths):
        for layer in supernet.gated_layers:
            layer.share_subcomputations = False
        try:
            fitness_step(paths)
        finally:
            for layer in supernet.gated_layers:
                layer.share_subcomputations = True

    # Warm every candidate: cell index i of every layer, forward and backward.
    for index in range(args.candidates):
        weight_step([((index,), index) for _ in cells])
    sampler = torch.Generator().manual_seed(args.seed + 1)
    ratios_weight, ratios_fitness, memory_weight, memory_fitness = [], [], [], []
    alone_times, weight_times, fitness_times, unshared_times = [], [], [], []
    for _ in range(args.paths):
        weight_paths = supernet.sample_weight_paths(sampler)
        fitness_paths = supernet.sample_fitness_paths(sampler)
        alone = build_network(supernet.path_network(weight_paths)).to(device=device, memory_format=memory_format)
        alone.load_state_dict(supernet.path_state_dict(weight_paths))
        alone_optimizer = torch.optim.SGD(alone.parameters(), lr=0.01, momentum=0.9, nesterov=True,
                                          **fast_update_options(alone.parameters()))

        def alone_step():
            loss = loss_of(alone)
            alone_optimizer.zero_grad(set_to_none=True)
            loss.backward()
            alone_optimizer.step()

        alone_step()
        fitness_step(fitness_paths)  # warm the pair's shapes too
        alone_time = statistics.median(timed(device, alone_step) for _ in range(args.repeats))
        weight_time = statistics.median(timed(device, lambda: weight_step(weight_paths)) for _ in range(args.repeats))
        fitness_time = statistics.median(timed(device, lambda: fitness_step(fitness_paths)) for _ in range(args.repeats))
        unshared_fitness_step(fitness_paths)
        unshared_time = statistics.median(timed(device, lambda: unshared_fitness_step(fitness_paths))
                                          for _ in range(args.repeats))
        unshared_times.append(1000 * unshared_time)
        alone_times.append(1000 * alone_time)
        weight_times.append(1000 * weight_time)
        fitness_times.append(1000 * fitness_time)
        ratios_weight.append(weight_time / alone_time)
        ratios_fitness.append(fitness_time / alone_time)
        alone_memory = peak_memory(device, alone_step)
        if alone_memory:
            memory_weight.append(peak_memory(device, lambda: weight_step(weight_paths)) / alone_memory)
            memory_fitness.append(peak_memory(device, lambda: fitness_step(fitness_paths)) / alone_memory)

    # As in a DEA epoch: a new path every step. Spikes here are lazy work (allocator growth,
    # cuDNN heuristics for a new shape) that the warm-up did not catch.
    sequence_weight, sequence_fitness = [], []
    for _ in range(args.sequence):
        weight_paths = supernet.sample_weight_paths(sampler)
        fitness_paths = supernet.sample_fitness_paths(sampler)
        sequence_weight.append(timed(device, lambda: weight_step(weight_paths)))
        sequence_fitness.append(timed(device, lambda: fitness_step(fitness_paths)))

    def summary(values):
        return round(statistics.median(values), 3) if values else None

    def max_over_median(values):
        return round(max(values) / statistics.median(values), 3) if values else None

    print(json.dumps({
        "bench": "evolve_speed", "preset": args.preset, "budget_madds": parse_madds(args.budget_madds),
        "candidates_per_layer": args.candidates, "batch_size": args.batch_size, "paths": args.paths,
        "weight_step_ratio": summary(ratios_weight), "weight_step_ratio_max": round(max(ratios_weight), 3),
        "fitness_step_ratio": summary(ratios_fitness), "fitness_step_ratio_max": round(max(ratios_fitness), 3),
        "fitness_sharing_speedup": round(statistics.median(u / f for u, f in zip(unshared_times, fitness_times)), 3),
        "weight_step_memory_ratio": summary(memory_weight), "fitness_step_memory_ratio": summary(memory_fitness),
        "precision": str(autocast_dtype or "fp32"), "channels_last": channels_last,
        "sequence_steps": args.sequence,
        "sequence_weight_step_max_over_median": max_over_median(sequence_weight),
        "sequence_fitness_step_max_over_median": max_over_median(sequence_fitness),
        "median_step_ms": {"alone": summary(alone_times), "weight": summary(weight_times),
                           "fitness": summary(fitness_times), "fitness_unshared": summary(unshared_times)},
        "device": hardware_info(device).get("device_name", str(device)), "hardware": hardware_info(device),
    }))


if __name__ == "__main__":
    main()
