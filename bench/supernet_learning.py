"""Do the one-shot supernets learn? Held-out top-1 against images seen, one JSON line.

Trains, on the same data, split, initialisation scheme and learning-rate schedule:
- `standalone`: one fixed network (each layer the scaled reference cell of the DEA's band:
  the DEA supernet with one candidate per layer, so the code path is the same);
- `dea`: the DEA supernet, `--candidates` cells per layer from a freshly initialised
  population, one path drawn uniformly per step (the DEA's warm-up);
- `dea-fair`: the same, FairNAS-style strict fairness: every step runs each layer's M cells
  once (a random permutation per layer), gradients accumulated, one update;
- `dea-fixed`: the DEA supernet trained on one fixed path only (`--fixed-path K`: each layer's
  K-th cell), a check that the supernet code itself learns like a stand-alone network;
- `dea-independent`: the same cells with independent weights per cell (no weight bank), to
  see what the bank's sharing does;
- `search`: the listed-space supernet of the manual space (ProxylessNAS's, zero included),
  one uniform path per step;
- `search-fair`: the same with strict fairness.
At each checkpoint every supernet is scored by `--eval-paths` paths drawn uniformly (a fixed
generator), each after BN recalibration on fixed training batches, on a fixed held-out set.
Rows give images seen and forward-backward passes (fair variants spend M passes per step).

    python bench/supernet_learning.py --steps 300 --checkpoints 100 200 300   # CIFAR-10 (JPEG q75 copy)
"""

from __future__ import annotations

import argparse
import json
import random
import time

import torch
import torch.nn.functional as functional

from autospace.arch.cell import reference_cell
from autospace.arch.presets import preset_skeleton
from autospace.arch.blocks import CellBlock
from autospace.arch.space import Candidate, SearchSpace, manual_space
from autospace.cost.units import parse_madds
from autospace.data import load_dataset, normalize_batch, stratified_split
from autospace.data.split import class_balanced_order
from autospace.data.stream import BatchStream
from autospace.evolve.layer_budget import layer_budgets
from autospace.evolve.population import LayerPopulation
from autospace.nn.batchnorm import recalibrate_batch_norm
from autospace.nn.block_supernet import BlockSupernet
from autospace.nn.supernet import CellSupernet
from autospace.train.optim import learning_rate_at

VARIANTS = ("standalone", "dea", "dea-fair", "dea-fixed", "dea-independent", "search", "search-fair")


def build(variant: str, skeleton, args, generator: torch.Generator):
    """(supernet, candidates per layer) for one variant."""
    if variant.startswith("search"):
        supernet = BlockSupernet(manual_space(skeleton, with_zero=False), generator, zero_residual=args.zero_init)
        return supernet, supernet.num_choices()
    if variant == "dea-independent":
        cell_supernet, _ = build("dea", skeleton, args, generator)
        layers = tuple(tuple(Candidate(CellBlock(cell)) for cell in layer) for layer in cell_supernet.candidates())
        supernet = BlockSupernet(SearchSpace(skeleton=skeleton, layers=layers), generator, add_zero=False,
                                 zero_residual=args.zero_init)
        return supernet, supernet.num_choices()
    bands = layer_budgets(skeleton, parse_madds(args.budget_madds), reference_cell(), 1.08, 0.6)
    rng = random.Random(args.seed)
    cells = []
    for slot, band in zip(skeleton.searchable_slots(), bands):
        if variant == "standalone":
            cells.append([band.scaled_reference])
            continue
        population = LayerPopulation(slot, band, 3)
        population.initialise(args.candidates, rng)
        cells.append(population.cells())
    supernet = CellSupernet(skeleton, generator, args.zero_init)
    supernet.set_candidates(cells, [[0.0] * len(layer) for layer in cells], generator)
    return supernet, [len(layer) for layer in cells]


def weight_parameters(supernet) -> list:
    return supernet.weight_parameters()


def heldout_top1(supernet, counts, recalibration, held_out, paths_to_score: int, seed: int,
                 fixed_path: int | None = None) -> float:
    generator = torch.Generator().manual_seed(seed)
    scores = []
    for _ in range(paths_to_score if max(counts) > 1 and fixed_path is None else 1):
        choice = ([min(fixed_path, count - 1) for count in counts] if fixed_path is not None else
                  [int(torch.randint(count, (1,), generator=generator)) for count in counts])
        paths = [((index,), index) for index in choice]
        recalibrate_batch_norm(supernet, recalibration, lambda inputs, paths=paths: supernet(inputs, paths))
        supernet.eval()
        with torch.no_grad():
            correct = sum(int((supernet(x, paths).argmax(1) == y).sum()) for x, y in held_out)
        supernet.train()
        scores.append(correct / sum(int(y.numel()) for _, y in held_out))
    return round(sum(scores) / len(scores), 4)


def train_variant(variant: str, dataset, split, skeleton, args) -> dict:
    torch.manual_seed(args.seed)  # dropout, the only user of the global generator
    generator = torch.Generator().manual_seed(args.seed)
    supernet, counts = build(variant, skeleton, args, generator)
    supernet = supernet.to(memory_format=torch.channels_last)
    parameters = weight_parameters(supernet)
    optimizer = torch.optim.SGD([{"params": [p for p in parameters if p.dim() > 1], "weight_decay": 4e-5},
                                 {"params": [p for p in parameters if p.dim() <= 1], "weight_decay": 0.0}],
                                lr=args.lr, momentum=0.9, nesterov=True)
    train_indices, validation_indices = split
    stream = BatchStream(dataset.train_images, dataset.train_labels, train_indices, args.batch_size,
                         dataset.mean, dataset.std, seed=args.seed, channels_last=True)
    order = train_indices[torch.randperm(train_indices.numel(), generator=torch.Generator().manual_seed(11))]

    def fixed(indices):
        return normalize_batch(dataset.train_images[indices], dataset.mean, dataset.std, channels_last=True)

    recalibration = [fixed(order[i * args.batch_size:(i + 1) * args.batch_size]) for i in range(args.recal_batches)]
    held = class_balanced_order(validation_indices, dataset.train_labels, args.seed)[:args.eval_images]
    held_out = [(fixed(held[i:i + 256]), dataset.train_labels[held[i:i + 256]]) for i in range(0, held.numel(), 256)]
    sampler = torch.Generator().manual_seed(args.seed + 2)
    fair = variant.endswith("fair") and max(counts) > 1
    rows, passes, started, running = [], 0, time.perf_counter(), []
    for step in range(args.steps):
        lr = learning_rate_at(step, args.steps, 0, args.lr)
        for group in optimizer.param_groups:
            group["lr"] = lr
        inputs, labels = stream.next()
        optimizer.zero_grad(set_to_none=True)
        if fair:  # FairNAS: each layer's candidates all run once on this batch, in a random order
            orders = [torch.randperm(count, generator=sampler).tolist() for count in counts]
            rounds = max(counts)
            for k in range(rounds):
                choice = [order[k % len(order)] for order in orders]
                loss = functional.cross_entropy(supernet(inputs, [((i,), i) for i in choice]), labels,
                                                label_smoothing=0.1)
                (loss / rounds).backward()
                passes += 1
        else:
            choice = ([min(args.fixed_path, count - 1) for count in counts] if variant == "dea-fixed" else
                      [int(torch.randint(count, (1,), generator=sampler)) for count in counts])
            loss = functional.cross_entropy(supernet(inputs, [((i,), i) for i in choice]), labels,
                                            label_smoothing=0.1)
            loss.backward()
            passes += 1
        optimizer.step()
        running.append(float(loss.detach()))
        if step + 1 in args.checkpoints:
            rows.append({"step": step + 1, "images": (step + 1) * args.batch_size, "passes": passes,
                         "train_loss": round(sum(running[-30:]) / len(running[-30:]), 4),
                         "heldout_top1": heldout_top1(supernet, counts, recalibration, held_out, args.eval_paths,
                                                      args.seed + 99,
                                                      args.fixed_path if variant == "dea-fixed" else None),
                         "seconds": round(time.perf_counter() - started, 1)})
            print(json.dumps({"variant": variant, **rows[-1]}), flush=True, file=__import__("sys").stderr)
    return {"candidates": counts[0] if len(set(counts)) == 1 else counts, "curve": rows}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default="cifar10")
    parser.add_argument("--data-dir", default=None)
    parser.add_argument("--preset", default="cifar-small")
    parser.add_argument("--image-size", type=int, default=None, help="area-resize the images (CPU proxy, e.g. 16)")
    parser.add_argument("--budget-madds", default="15M", help="places the DEA's band (which cells the DEA draws)")
    parser.add_argument("--train-subset", type=int, default=6000)
    parser.add_argument("--candidates", type=int, default=5, help="DEA cells per layer")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--lr", type=float, default=0.05)
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--checkpoints", type=int, nargs="+", default=[100, 200, 300])
    parser.add_argument("--eval-paths", type=int, default=3)
    parser.add_argument("--eval-images", type=int, default=1000)
    parser.add_argument("--recal-batches", type=int, default=4)
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=VARIANTS)
    parser.add_argument("--fixed-path", type=int, default=0, help="dea-fixed: train (and score) each layer's K-th cell")
    parser.add_argument("--zero-init", action="store_true", help="residual cells start as identity (BN gamma 0)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    args.checkpoints = sorted(set(args.checkpoints) | {args.steps})

    dataset = load_dataset(args.data, args.data_dir, args.image_size)
    if args.train_subset:
        dataset = dataset.subset(args.train_subset, None, torch.Generator().manual_seed(args.seed))
    skeleton = preset_skeleton(args.preset, num_classes=dataset.num_classes, in_channels=dataset.channels,
                               resolution=dataset.resolution)
    split = stratified_split(dataset.train_labels, validation_fraction=0.2, seed=args.seed)
    started = time.perf_counter()
    results = {variant: train_variant(variant, dataset, split, skeleton, args) for variant in args.variants}
    print(json.dumps({"bench": "supernet_learning", "data": args.data, "preset": args.preset,
                      "candidates": args.candidates, "fixed_path": args.fixed_path, "zero_init": args.zero_init,
                      "resolution": dataset.resolution, "train_subset": args.train_subset,
                      "batch_size": args.batch_size, "lr": args.lr, "steps": args.steps,
                      "chance": round(1.0 / dataset.num_classes, 3), "threads": torch.get_num_threads(),
                      "torch": torch.__version__, "wall_s": round(time.perf_counter() - started, 1),
                      "variants": results}))


if __name__ == "__main__":
    main()
