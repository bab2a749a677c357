"""The tied DEA on NAS-Bench-201 (DESIGN 2.3 + 2.6), one flat loop.

One population of NB201 cells; the supernet runs one cell in all 3N positions
(`Nb201TiedSupernet`, a weight bank per position keyed by (edge, op)). Weight
steps train one sampled cell on the training split (uniform during warm-up,
then by p = softmax(alpha) as in the DEA); fitness steps draw two cells by p
and move alpha with the binary-gate estimator on the held-out split (Eq. 3,
`nn.gates.gated_output`), its gradient scaled by T_bar / T_i (Eq. 4, plain SGD
on alpha, so nothing normalises the factor away). Every N weight steps the
fitness goes back to the population with momentum (Eq. 5); in search mode
tournament winners are then mutated into children and the oldest or weakest
leave. Every N steps the run checkpoints; `resume` continues bit for bit.

Comparable training (issue 29): `weight_sampling=fair` trains every member once per shuffled
round (trained steps differ by at most one; a new round after each regeneration); each write-back
after warm-up is a window, and the fitness compared (tournaments, departures, the fitness pick) is
the mean over a member's windows, with at least `min_windows` of them before it can win.
"""

from __future__ import annotations

import json
import math
import random
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as functional

from autospace.arch.nb201 import (
    Nb201Skeleton, canonical_nb201, mutate_nb201, parse_nb201_string, require_nonempty, to_nb201_string,
)
from autospace.runtime.atomic import append_jsonl, atomic_write_text, truncate_jsonl
from autospace.runtime.checkpoints import load_rotating_checkpoint, require_finite_loss, save_rotating_checkpoint
from autospace.runtime.config import save_config
from autospace.data import load_dataset, stratified_split
from autospace.data.stream import BatchStream
from autospace.runtime.device import resolve_device
from autospace.nb201.config import Nb201Config
from autospace.nn.gates import gated_output, rescale_pair, sample_pair, sample_single
from autospace.nn.nb201 import Nb201TiedSupernet
from autospace.train.checkpoint import require_new_run_dir
from autospace.train.optim import learning_rate_at

CHECKPOINT_FORMAT = "autospace.nb201-checkpoint/1"
MAX_COUNT_FACTOR = 10.0  # Eq. 4 for a child with ~0 steps would be huge: one noisy step must not decide it


def proxy_description(config: Nb201Config) -> dict:
    """What the run trained on; differs from NB201 (C=16, N=5, 32x32, all images) on a CPU proxy."""
    return {"channels": config.channels, "cells_per_stage": config.cells_per_stage, "image_size": config.image_size,
            "train_subset": config.train_subset, "augment": config.augment, "steps": config.steps,
            "batch_size": config.batch_size, "weight_sampling": config.weight_sampling,
            "data": "CIFAR-10 (JPEG q75 copy)" if config.data == "cifar10" else config.data}


def load_streams(config: Nb201Config, device: torch.device) -> tuple[BatchStream, BatchStream, int]:
    """Training and held-out streams (the held-out split of the training set; the test set is never read)."""
    dataset = load_dataset(config.data, config.data_dir)
    if config.train_subset is not None:
        dataset = dataset.subset(config.train_subset, None, torch.Generator().manual_seed(config.seed))
    images = dataset.train_images
    if images.shape[-1] != config.image_size:
        images = functional.interpolate(images.float(), size=config.image_size, mode="area")
        images = images.round().clamp(0, 255).to(torch.uint8)
    train_indices, held_out = stratified_split(dataset.train_labels, validation_fraction=config.validation_fraction,
                                               seed=config.seed)
    images = images.to(device)
    train = BatchStream(images, dataset.train_labels, train_indices, config.batch_size, dataset.mean, dataset.std,
                        seed=config.seed, augment=config.augment)
    # no augmentation on the held-out batches: the fitness compares cells, not crops
    validation = BatchStream(images, dataset.train_labels, held_out, config.batch_size, dataset.mean, dataset.std,
                             seed=config.seed + 1, augment=False)
    return train, validation, dataset.num_classes


def individual(cell, fitness: float = 0.0) -> dict:
    return {"arch_str": to_nb201_string(cell), "fitness": float(fitness), "count": 0, "age": 0,
            "windows": 0, "fitness_sum": 0.0}


def mean_fitness(member: dict) -> float:
    """The fitness averaged over the member's windows (write-backs after warm-up); before its first
    window, its current fitness. One noisy window cannot make a cell win."""
    windows = member.get("windows", 0)
    return member["fitness_sum"] / windows if windows else member["fitness"]


def can_win(member: dict, config: Nb201Config) -> bool:
    return member["count"] >= config.min_trained_steps and member.get("windows", 0) >= config.min_windows


def fair_draw(queue: list[int], size: int, sampler: torch.Generator) -> int:
    """Fair weight sampling: the next member of a shuffled round over the population (refilled when
    empty, emptied when the population changes), so trained steps differ by at most one per round."""
    if not queue:
        queue.extend(torch.randperm(size, generator=sampler).tolist())
    return queue.pop()


def count_factor(counts: list[int]) -> torch.Tensor:
    """Eq. 4: T_bar / T_i over the population (T_i clamped to 1), at most MAX_COUNT_FACTOR."""
    trained = torch.tensor(counts, dtype=torch.float32).clamp(min=1)
    return (trained.mean() / trained).clamp(max=MAX_COUNT_FACTOR)


def tournament(population: list[dict], size: int, rng: random.Random) -> dict:
    return max(rng.sample(population, min(size, len(population))), key=mean_fitness)


def regenerate(population: list[dict], config: Nb201Config, rng: random.Random, evaluated: set[str]) -> None:
    """Search mode, step 4: children of tournament winners (one edge changed), then the oldest or weakest leave."""
    eligible = [member for member in population if can_win(member, config)] or population
    present = {to_nb201_string(canonical_nb201(parse_nb201_string(m["arch_str"]))) for m in population}
    children = []
    for _ in range(config.offspring):
        parent = tournament(eligible, config.tournament_size, rng)
        for _attempt in range(20):  # a child that duplicates a member (up to canonical form) is redrawn
            child = mutate_nb201(parse_nb201_string(parent["arch_str"]), rng)
            key = to_nb201_string(canonical_nb201(child))
            if key not in present:
                break
        else:
            continue
        present.add(key)
        evaluated.add(key)
        children.append(individual(child, config.child_fitness_shrink * parent["fitness"]))
    for member in population:
        member["age"] += 1
    population.extend(children)
    while len(population) > config.population_size:
        old = [m for m in population if m["age"] > config.max_age and m not in children]
        judged = [m for m in population if can_win(m, config) and m not in children]
        if old:
            leaving = max(old, key=lambda m: m["age"])
        elif judged:
            leaving = min(judged, key=mean_fitness)
        else:
            leaving = max((m for m in population if m not in children), key=lambda m: m["age"])
        population.remove(leaving)


def run_tied_dea(config: Nb201Config, out: Path, initial_cells: list | None, search: bool,
                 resume: bool = False, stop_after_regeneration: int | None = None,
                 extra_files: dict[str, str] | None = None) -> dict | None:
    """Train the tied supernet and learn one fitness per cell; returns the final state
    ({"population", "evaluated", "steps", "wall_time_s"}), or None when stopped early."""
    out = Path(out)
    started = time.perf_counter()
    device = resolve_device(config.device)
    checkpoint = load_rotating_checkpoint(out, CHECKPOINT_FORMAT) if resume else None
    if not resume:
        require_new_run_dir(out)
        out.mkdir(parents=True, exist_ok=True)
        save_config(out / "config.yaml", config)
        for name, text in (extra_files or {}).items():
            atomic_write_text(out / name, text)
    train_stream, validation_stream, num_classes = load_streams(config, device)
    skeleton = Nb201Skeleton(channels=config.channels, cells_per_stage=config.cells_per_stage,
                             num_classes=num_classes, resolution=config.image_size)
    rng = random.Random(config.seed)                              # population decisions
    sampler = torch.Generator().manual_seed(config.seed + 2)      # cells drawn per step
    supernet = Nb201TiedSupernet(skeleton, torch.Generator().manual_seed(config.seed + 3)).to(device)
    parameters = list(supernet.parameters())
    optimizer = torch.optim.SGD(
        [{"params": [p for p in parameters if p.dim() > 1], "weight_decay": config.weight_decay},
         {"params": [p for p in parameters if p.dim() <= 1], "weight_decay": 0.0}],
        lr=config.weight_lr, momentum=config.weight_momentum, nesterov=True)
    warmup_steps = int(config.warmup_fraction * config.steps)

    if checkpoint is not None:
        population, evaluated = checkpoint["population"], set(checkpoint["evaluated"])
        supernet.load_state_dict(checkpoint["supernet"])
        optimizer.load_state_dict(checkpoint["optimizer"])
        rng.setstate(checkpoint["python_rng"])
        sampler.set_state(checkpoint["sampler"])
        train_stream.load_state_dict(checkpoint["train_stream"])
        validation_stream.load_state_dict(checkpoint["validation_stream"])
        step, regeneration = checkpoint["step"], checkpoint["regeneration"]
        started -= checkpoint["elapsed_seconds"]
        fair_queue = list(checkpoint.get("fair_queue", []))
        for member in population:  # a checkpoint written before window averaging
            member.setdefault("windows", 0)
            member.setdefault("fitness_sum", 0.0)
    else:
        population = [individual(require_nonempty(cell)) for cell in initial_cells]  # rank: duplicates stay apart
        evaluated = {to_nb201_string(canonical_nb201(parse_nb201_string(m["arch_str"]))) for m in population}
        step, regeneration = 0, 0
        fair_queue = []
    truncate_jsonl(out / "history.jsonl", regeneration)

    cells = [parse_nb201_string(member["arch_str"]) for member in population]
    alpha = torch.tensor([member["fitness"] for member in population], requires_grad=True)
    running = {"weight_loss": 0.0, "fitness_loss": 0.0, "weight_steps": 0, "fitness_steps": 0}
    supernet.train()
    while step < config.steps:
        # -- weight step: one cell in every position, training split ---------------------------
        for group in optimizer.param_groups:
            group["lr"] = learning_rate_at(step, config.steps, 0, config.weight_lr)
        if config.weight_sampling == "fair":
            chosen = fair_draw(fair_queue, len(cells), sampler)
        else:
            uniform = step < warmup_steps or config.weight_sampling == "uniform"
            probabilities = [1.0] * len(cells) if uniform else torch.softmax(alpha.detach(), 0).tolist()
            chosen = sample_single(probabilities, sampler)
        inputs, labels = train_stream.next()
        loss = functional.cross_entropy(supernet(inputs.to(device), cells[chosen]), labels)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        population[chosen]["count"] += 1
        running["weight_loss"] += loss.item()
        running["weight_steps"] += 1

        # -- fitness step: two cells by p, held-out split, binary gates (Eq. 3, 4) ---------------
        if step >= warmup_steps and step % config.fitness_every == 0 and len(cells) > 1:
            active, pick = sample_pair(torch.softmax(alpha.detach(), 0), sampler)
            inputs, labels = validation_stream.next()
            paths = [lambda x, cell=cell: supernet(x, cell) for cell in cells]
            fitness_loss = functional.cross_entropy(gated_output(paths, inputs.to(device), active, pick, alpha),
                                                    labels)
            (gradient,) = torch.autograd.grad(fitness_loss, alpha)
            old_alpha = alpha.detach().clone()
            with torch.no_grad():
                alpha -= config.fitness_lr * gradient * count_factor([m["count"] for m in population])
            rescale_pair(alpha, old_alpha, active)
            running["fitness_loss"] += fitness_loss.item()
            running["fitness_steps"] += 1
        step += 1

        # -- every N steps: Eq. 5 write-back, (search) children and departures, checkpoint -------
        if step % config.regenerate_every == 0 or step == config.steps:
            regeneration += 1
            for member, learned in zip(population, alpha.detach().tolist()):
                member["fitness"] = config.momentum * member["fitness"] + (1 - config.momentum) * learned
                if step > warmup_steps:  # a window with fitness steps in it
                    member["windows"] += 1
                    member["fitness_sum"] += member["fitness"]
            record = {"regeneration": regeneration, "step": step,
                      "weight_loss": running["weight_loss"] / max(running["weight_steps"], 1),
                      "fitness_loss": running["fitness_loss"] / max(running["fitness_steps"], 1),
                      "fitness_steps": running["fitness_steps"],
                      "fitness_spread": _spread([m["fitness"] for m in population]),
                      "population": len(population), "evaluated": len(evaluated),
                      "elapsed_seconds": round(time.perf_counter() - started, 1)}
            require_finite_loss(record["weight_loss"] + record["fitness_loss"] + record["fitness_spread"],
                                "nb201", f"step {step}", out, "lower weight_lr or fitness_lr, then --resume")
            running = dict.fromkeys(running, 0)
            if search and step > warmup_steps and step < config.steps:
                regenerate(population, config, rng, evaluated)
                fair_queue.clear()  # a new round over the new population
            cells = [parse_nb201_string(member["arch_str"]) for member in population]
            alpha = torch.tensor([member["fitness"] for member in population], requires_grad=True)
            append_jsonl(out / "history.jsonl", record)
            if config.progress:
                print(json.dumps(record), file=sys.stderr, flush=True)
            save_rotating_checkpoint(out, {
                "step": step, "regeneration": regeneration, "population": population,
                "evaluated": sorted(evaluated), "supernet": supernet.state_dict(),
                "optimizer": optimizer.state_dict(), "python_rng": rng.getstate(), "sampler": sampler.get_state(), "fair_queue": list(fair_queue),
                "train_stream": train_stream.state_dict(), "validation_stream": validation_stream.state_dict(),
                "elapsed_seconds": time.perf_counter() - started}, CHECKPOINT_FORMAT)
            if stop_after_regeneration is not None and regeneration >= stop_after_regeneration and step < config.steps:
                return None
    return {"population": population, "evaluated": sorted(evaluated), "steps": step,
            "wall_time_s": round(time.perf_counter() - started, 1), "supernet": supernet,
            "train_stream": train_stream, "validation_stream": validation_stream, "num_classes": num_classes}


def _spread(values: list[float]) -> float:
    mean = sum(values) / len(values)
    return math.sqrt(sum((v - mean) ** 2 for v in values) / len(values))

