"""AutoSpace's differentiable evolutionary algorithm (DESIGN 2.3), one flat loop.

Per searchable layer a population of cells evolves: a supernet holds M cells
per layer behind binary gates; weight steps train one sampled path on the
training split, fitness steps move the fitness alpha on the held-out split
with the binary-gate gradient scaled by T_bar / T_i (Eq. 4); every N weight
steps the fitness goes back to the population with momentum (Eq. 5), winners
of tournaments are mutated into offspring, the oldest or weakest leave, and
the supernet is rebuilt from the weight banks (weights are inherited).

Under torchrun (`autospace.runtime.distributed`) every rank holds the same populations
and samples the same cells; each trains on its slice of every global batch,
weight and fitness gradients are averaged and BN sees the global batch, so all
ranks keep identical populations, fitness and weights. Rank 0 writes the folder.
"""

from __future__ import annotations

import math
import random
import sys
from dataclasses import replace
from pathlib import Path

import torch
import torch.nn.functional as functional

from autospace.arch.blocks import CellBlock
from autospace.arch.cell import Cell, cell_to_string, reference_cell
from autospace.arch.codec import block_from_dict, cell_to_dict, save_space
from autospace.arch.presets import preset_skeleton
from autospace.arch.space import Candidate, SearchSpace
from autospace.runtime.atomic import read_jsonl
from autospace.runtime.checkpoints import require_finite_loss
from autospace.cost.analytic import block_cost
from autospace.latency.prediction import cell_latency_ms, fixed_latency_ms
from autospace.data import load_dataset, stratified_split
from autospace.data.split import class_balanced_order
from autospace.data.stream import BatchStream
from autospace.runtime.device import hardware_info
from autospace.runtime.distributed import (
    all_reduce_mean, average_gradients, average_tensors, check_same_on_all_ranks, sync_batch_layers,
)
from autospace.errors import AutospaceError
from autospace.evolve.checkpoint import EVOLVE_CHECKPOINT_FORMAT, restore_supernet, supernet_snapshot
from autospace.runtime.checkpoints import load_optimizer_state_by_name, optimizer_state_by_name
from autospace.evolve.config import EvolveConfig
from autospace.evolve.diagnostics import (
    FitnessPersistence, centred_changes, fitness_spread, noise_warning,
)
from autospace.evolve.layer_budget import (
    fixed_madds, layer_budgets, space_madds_summary)
from autospace.evolve.latency_budget import (
    dea_latency_table, latency_bands, layer_latency_models, space_latency_summary,
)
from autospace.evolve.cost_tiers import check_tiered_budget, skeleton_tiers, tier_sizes
from autospace.evolve.population import LayerPopulation, earned
from autospace.evolve.tiered_population import TieredPopulation
from autospace.report.notes import unreachable_budget_warning
from autospace.data import normalize_batch
from autospace.nn.batchnorm import recalibrate_batch_norm
from autospace.nn.supernet import CellSupernet
from autospace.runtime.run import open_run
from autospace.train.optim import fast_update_options, learning_rate_at


def parse_reference(text: str) -> Cell:
    """'irb' or a cell string `e6-sum:op,op,op,op,op,op` (edges 0->1, 0->2, 1->2, 0->3, 1->3, 2->3)."""
    if text == "irb":
        return reference_cell()
    try:
        head, ops = text.split(":")
        expansion, aggregation = head.split("-")
        ops = ops.split(",")
        return block_from_dict({"type": "cell", "expansion": int(expansion.lstrip("e")),
                                "aggregation": aggregation,
                                "ops": dict(zip(("0->1", "0->2", "1->2", "0->3", "1->3", "2->3"), ops))}).cell
    except (ValueError, AutospaceError) as error:
        raise AutospaceError(
            f"reference {text!r} is not 'irb' or a cell like e6-sum:dwconv3x3,zero,zero,zero,identity,zero "
            f"({error})") from None


MIN_COUNT_FACTOR = 0.25  # our bound on Eq. 4's factor from below


def count_compensation(counts: list[int], population_mean_count: float) -> list[float]:
    """Eq. 4's factor T_bar / T_i per supernet cell, T_i its weight steps (at least 1) and T_bar the
    mean over the layer's population, bounded to [1/4, 1]. It scales the fitness *update* after
    the optimiser's own normalisation: Adam divides the gradient by its running scale, so a
    factor on the gradient would cancel (measured: alphas equal to 4e-7 with and without it).

    Our choice, measured (tests/test_evolve_ranking.py, 3 cells on CIFAR-10): factors above 1
    amplify the noisy unit-size Adam steps of rarely trained cells and flipped the medium/bad order
    (bound 4: 1 start in 3; bound 2: a tie), so the factor never exceeds 1; it slows the cells
    trained more than average, which gives the others the same fair hearing."""
    return [min(1.0, max(MIN_COUNT_FACTOR, population_mean_count / max(count, 1))) for count in counts]


def compensated_fitness_step(optimizer: torch.optim.Optimizer, alphas, gradients, factors: list[list[float]]) -> None:
    """One optimiser step on the fitness alphas, then Eq. 4: each cell's update times its factor."""
    old = [alpha.detach().clone() for alpha in alphas]
    for alpha, gradient in zip(alphas, gradients):
        alpha.grad = gradient
    optimizer.step()
    with torch.no_grad():
        for alpha, before, layer_factors in zip(alphas, old, factors):
            scale = torch.tensor(layer_factors, dtype=alpha.dtype).to(alpha.device)
            alpha.copy_(before + (alpha - before) * scale)


def weight_optimizer(supernet: CellSupernet, config: EvolveConfig, previous=None) -> torch.optim.SGD:
    """SGD over every weight in the supernet (banks included); momentum carries across rebuilds."""
    parameters = supernet.weight_parameters()
    groups = [{"params": [p for p in parameters if p.dim() > 1], "weight_decay": config.weight_decay},
              {"params": [p for p in parameters if p.dim() <= 1], "weight_decay": 0.0}]
    optimizer = torch.optim.SGD(groups, lr=config.weight_lr, momentum=config.weight_momentum, nesterov=True,
                                **fast_update_options(parameters))
    if previous is not None:
        for parameter in parameters:
            if parameter in previous.state:
                optimizer.state[parameter] = previous.state[parameter]
    return optimizer


def fitness_optimizer(supernet: CellSupernet, config: EvolveConfig) -> torch.optim.Adam:
    # ProxylessNAS's architecture optimiser: Adam with beta1 = 0 (no momentum on noisy gate gradients).
    return torch.optim.Adam(supernet.alphas(), lr=config.fitness_lr, betas=(0.0, 0.999), eps=1e-8,
                            **fast_update_options(supernet.alphas()))


def evolve_autospace(config: EvolveConfig, out: str | Path, resume: bool = False,
                     stop_after_regeneration: int | None = None, report=None) -> SearchSpace:
    """Run the DEA and write `out/space.json`; `resume` continues from the last checkpoint. `report(out,
    space)` gives the report layer's writes of its readable outputs, made just before space.json (`evolve()`
    passes space.md and fitness.png)."""
    run = open_run(config, out, resume, "evolve", EVOLVE_CHECKPOINT_FORMAT,
                   f"lower weight_lr (now {config.weight_lr}) or fitness_lr, then --resume",
                   stop_after={"regeneration": stop_after_regeneration})
    out, device, dist, guard = run.out, run.device, run.distributed, run.guard
    autocast_dtype, channels_last = run.autocast_dtype, run.channels_last

    dataset = load_dataset(config.data, config.data_dir, config.image_size)
    if config.train_subset is not None:
        dataset = dataset.subset(config.train_subset, None, torch.Generator().manual_seed(config.seed))
    skeleton = preset_skeleton(config.preset, num_classes=dataset.num_classes,
                               in_channels=dataset.channels, resolution=dataset.resolution)
    train_indices, validation_indices = stratified_split(
        dataset.train_labels, validation_fraction=config.validation_fraction, seed=config.seed)
    images = dataset.train_images.to(device)
    train_stream = BatchStream(images, dataset.train_labels, train_indices, config.batch_size,
                               dataset.mean, dataset.std, seed=config.seed, channels_last=channels_last,
                               distributed=dist)
    validation_stream = BatchStream(images, dataset.train_labels, validation_indices, config.batch_size,
                                    dataset.mean, dataset.std, seed=config.seed + 1, channels_last=channels_last,
                                    distributed=dist)

    reference = parse_reference(config.reference)
    latency_table = None
    tiered = config.tiers > 0 and config.target_latency_ms is None
    if tiered:  # issue 27: each layer spans the manual space's cost range, in tiers
        check_tiered_budget(skeleton, reference, config.budget_madds, config.family_stack_depth)
        populations = [TieredPopulation(slot, tiers, config.max_distance, tier_sizes(config.population_size, tiers))
                       for slot, tiers in zip(skeleton.searchable_slots(),
                                              skeleton_tiers(skeleton, reference, config.tiers,
                                                             config.family_stack_depth))]
    else:  # one MAdds band per layer (and a latency band with a latency target, issue 18)
        budgets = layer_budgets(skeleton, config.budget_madds, reference, config.cap_slack, config.cap_floor,
                                config.skipped_share)
        latency_models = [None] * len(budgets)
        if config.target_latency_ms is not None:  # latency bands from cell components; MAdds a cap
            latency_table = dea_latency_table(config.latency_table, skeleton)
            budgets = latency_bands(skeleton, budgets, latency_table, config.target_latency_ms, reference,
                                    config.cap_slack, config.cap_floor)
            latency_models = layer_latency_models(latency_table, skeleton)
        populations = [LayerPopulation(slot, band, config.max_distance, model)
                       for slot, band, model in zip(skeleton.searchable_slots(), budgets, latency_models)]
    rng = random.Random(config.seed)                          # population decisions
    sampler = torch.Generator().manual_seed(config.seed + 2)  # gate samples (CPU: no device sync)
    initialiser = torch.Generator().manual_seed(config.seed + 3)  # bank weights, created lazily
    persistence = FitnessPersistence()
    diagnostic_batches = fixed_diagnostic_batches(images, dataset, train_indices, validation_indices, config,
                                                  channels_last, device)
    supernet = CellSupernet(skeleton, initialiser, config.zero_residual).to(device)
    if channels_last:
        supernet = supernet.to(memory_format=torch.channels_last)

    total_steps = config.epochs * train_stream.batches_per_epoch
    warmup_steps = int(config.warmup_epochs * train_stream.batches_per_epoch)
    constrained_steps = int(config.constrained_fraction * total_steps)

    def rebuild(uniform: bool):
        """Pick each layer's supernet cells: first those that have not earned their fitness, then
        uniformly before any fitness exists (a tournament of all-zero fitness would only pick by list
        position), by tournament afterwards."""
        cells, fitness, counts = [], [], []
        for population in populations:
            picked = population.supernet_pick(config.candidates_per_layer, config.tournament_size, rng,
                                              config.min_steps, config.min_windows, uniform, regeneration)
            chosen = [population.individuals[i] for i in picked]
            cells.append([individual.cell for individual in chosen])
            fitness.append([individual.fitness for individual in chosen])
            counts.append([individual.count for individual in chosen])
        supernet.set_candidates(cells, fitness, initialiser)
        sync_batch_layers(dist, supernet)  # new bank modules see the global batch too
        return cells, counts

    step, regeneration, fitness_steps_total = 0, 0, 0
    cells: list[list[Cell]] = []
    counts: list[list[int]] = []

    def load_populations(states: list) -> None:
        for population, state in zip(populations, states):
            population.load_state(state)

    def load_bands(bands) -> None:
        for population, band in zip(populations, bands):
            population.load_band_state(band)

    def load_latency_bands(bands) -> None:
        for population, (floor, cap) in zip(populations, bands):
            population.budget = replace(population.budget, latency_floor=floor, latency_cap=cap)

    def load_fitness_steps_total(total: int) -> None:
        nonlocal fitness_steps_total
        fitness_steps_total = total

    def load_supernet(snapshot: dict) -> None:  # a rebuild: its banks draw from the initialiser, restored after it
        nonlocal cells
        cells = restore_supernet(supernet, snapshot, initialiser)
        sync_batch_layers(dist, supernet)

    def load_counts(state: list[list[int]]) -> None:
        nonlocal counts
        counts = state

    def load_optimizer(state: dict) -> None:
        nonlocal optimizer
        optimizer = weight_optimizer(supernet, config)
        load_optimizer_state_by_name(supernet, optimizer, state)

    run.track("initialiser", initialiser)
    run.track("populations", save=lambda: [population.state() for population in populations], load=load_populations)
    run.track("bands", save=lambda: [population.band_state() for population in populations], load=load_bands)
    run.track("latency_bands", save=lambda: [[p.budget.latency_floor, p.budget.latency_cap] for p in populations
                                             if isinstance(p, LayerPopulation)],
              load=load_latency_bands, optional=True)
    run.track("persistence", save=lambda: persistence.state_dict(cell_to_dict),
              load=lambda state: persistence.load_state_dict(state, cell_from_dict))
    run.track("fitness_steps_total", save=lambda: fitness_steps_total, load=load_fitness_steps_total)
    run.track("supernet", save=lambda: supernet_snapshot(supernet, cells), load=load_supernet, rebuild=True)
    run.track("counts", save=lambda: counts, load=load_counts)
    run.track("weight_optimizer", save=lambda: optimizer_state_by_name(supernet, optimizer), load=load_optimizer)
    for name, thing in (("python_rng", rng), ("sampler", sampler), ("train_stream", train_stream),
                        ("validation_stream", validation_stream)):
        run.track(name, thing)
    checkpoint = run.restore()
    if checkpoint is not None:
        step, regeneration = checkpoint["step"], checkpoint["regeneration"]
        run.keep_log("history.jsonl", regeneration)
    else:
        if resume:  # killed before the first checkpoint: begin again in the same folder
            run.keep_log("history.jsonl", 0)
        for population in populations:
            population.initialise(config.population_size, rng)
        cells, counts = rebuild(uniform=True)
        optimizer = weight_optimizer(supernet, config)
    others = other_counts(populations, cells)  # fixed until the next write-back
    alpha_optimizer = fitness_optimizer(supernet, config)

    progress = run.progress(total_steps, step, "evolve")
    running_loss = torch.zeros((), device=device)
    running_fitness_loss = torch.zeros((), device=device)
    fitness_steps = weight_steps = 0  # in the current regeneration window
    supernet.train()
    while step < total_steps:
        # -- weight step: one sampled cell per layer, training split ---------------------------
        lr = learning_rate_at(step, total_steps, 0, config.weight_lr)
        for group in optimizer.param_groups:
            group["lr"] = lr
        if step >= warmup_steps:
            # Sampling brings p = softmax(alpha) to the host anyway: a NaN there means the run went bad
            # since the last regeneration's check; stop with the usual message, not inside the sampler.
            probabilities = supernet.path_probabilities()
            if not all(math.isfinite(value) for layer in probabilities for value in layer):
                require_finite_loss(float("nan"), "evolve", f"weight step {step + 1} (the fitness is NaN)", out,
                                    f"lower weight_lr (now {config.weight_lr}) or fitness_lr, then --resume")
        paths = supernet.sample_weight_paths(sampler, uniform=step < warmup_steps)
        inputs, labels = train_stream.next()
        guard.remember(supernet)
        with torch.autocast(device.type, dtype=autocast_dtype, enabled=autocast_dtype is not None):
            logits = supernet(inputs, paths)
        loss = functional.cross_entropy(logits.float(), labels, label_smoothing=config.label_smoothing)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        parameters = [parameter for group in optimizer.param_groups for parameter in group["params"]]
        average_gradients(dist, parameters)
        if guard.accept(loss, (parameter.grad for parameter in parameters), f"weight step {step + 1}"):
            optimizer.step()
            for layer_counts, (_, chosen) in zip(counts, paths):
                layer_counts[chosen] += 1
            running_loss += loss.detach()
            weight_steps += 1

        # -- fitness step: two sampled cells per layer, held-out split ---------------------------
        if step >= warmup_steps and step % config.fitness_every == 0:
            paths = supernet.sample_fitness_paths(sampler)
            inputs, labels = validation_stream.next()
            guard.remember(supernet)
            with torch.autocast(device.type, dtype=autocast_dtype, enabled=autocast_dtype is not None):
                logits = supernet(inputs, paths)
            fitness_loss = functional.cross_entropy(logits.float(), labels)
            # Only the alphas move on a fitness step: autograd.grad skips the weight gradients.
            gradients = list(torch.autograd.grad(fitness_loss, supernet.alphas()))
            average_tensors(dist, gradients)  # each rank's loss is on its slice of the held-out batch
            if guard.accept(fitness_loss, gradients, f"the fitness step after weight step {step + 1}"):
                old_alphas = [alpha.detach().clone() for alpha in supernet.alphas()]
                factors = [count_compensation(layer_counts, (rest + sum(layer_counts)) / len(population.individuals))
                           for layer_counts, rest, population in zip(counts, others, populations)]
                compensated_fitness_step(alpha_optimizer, supernet.alphas(), gradients, factors)
                supernet.rescale_after_step(old_alphas, paths)
                running_fitness_loss += fitness_loss.detach()
                fitness_steps += 1
                fitness_steps_total += 1
        step += 1
        progress.update(1)

        # -- regeneration every N weight steps ------------------------------------------------------
        if step % config.regenerate_every == 0 or step == total_steps:
            regeneration += 1
            alphas = [alpha.detach().float().cpu().tolist() for alpha in supernet.alphas()]
            starts = [[population.individuals[population.cells().index(cell)].fitness for cell in layer_cells]
                      for population, layer_cells in zip(populations, cells)]
            persistent = persistence.observe(centred_changes(cells, starts, alphas)) if fitness_steps else None
            for population, layer_cells, layer_alpha, layer_counts in zip(populations, cells, alphas, counts):
                population.write_back(layer_cells, layer_alpha, layer_counts, config.momentum,
                                      window=fitness_steps > 0, average=config.fitness_average)
            heldout = heldout_top1(supernet, diagnostic_batches, config, regeneration, uniform=not fitness_steps_total,
                                   autocast_dtype=autocast_dtype, device=device)
            # Means over the global batches, the same on every rank (one all-reduce per regeneration).
            weight_total, fitness_total = all_reduce_mean(dist, torch.stack([running_loss,
                                                                             running_fitness_loss])).tolist()
            record = {"regeneration": regeneration, "step": step, "epoch": train_stream.epoch,
                      "weight_loss": weight_total / weight_steps if weight_steps else float("nan"),
                      "fitness_loss": fitness_total / max(fitness_steps, 1),
                      "fitness_steps": fitness_steps,
                      "images_seen": step * config.batch_size,
                      "heldout_top1": heldout,
                      "fitness_spread": fitness_spread([[ind.fitness for ind in population.individuals
                                                         if earned(ind, config.min_steps, config.min_windows)]
                                                        for population in populations]),
                      "persistence": persistent,
                      "constrained": step <= constrained_steps,
                      "populations": [population.state() for population in populations],
                      "elapsed_seconds": round(run.elapsed(), 2)}
            if guard.enabled:
                record["skipped_nonfinite"] = guard.skipped
            require_finite_loss(record["weight_loss"] + record["fitness_loss"], "evolve",
                                f"regeneration {regeneration} (step {step})", out,
                                f"lower weight_lr (now {config.weight_lr}) or fitness_lr, then --resume")
            running_loss.zero_()
            running_fitness_loss.zero_()
            fitness_steps = weight_steps = 0
            if step < total_steps:
                constrained = step < constrained_steps
                if fitness_steps_total:  # no reproduction or removal before any fitness exists
                    for population in populations:
                        population.regenerate(config.offspring, config.tournament_size, config.max_age,
                                              config.min_steps, constrained, rng, config.min_windows)
                cells, counts = rebuild(uniform=not fitness_steps_total)
                others = other_counts(populations, cells)  # fixed until the next write-back
                optimizer = weight_optimizer(supernet, config, previous=optimizer)
                alpha_optimizer = fitness_optimizer(supernet, config)
            run.log("history.jsonl", record, "evolve", step)
            if run.show:
                best = [cell_to_string(population.top(1)[0].cell) for population in populations]
                progress.set_postfix(epoch=train_stream.epoch + 1, loss=f"{record['weight_loss']:.3f}",
                                     fit=f"{record['fitness_loss']:.3f}", regen=regeneration)
                progress.write(f"regeneration {regeneration} (epoch {train_stream.epoch + 1}, step {step}): loss "
                               f"{record['weight_loss']:.3f}, fitness loss {record['fitness_loss']:.3f}, held-out "
                               f"top-1 {_percent(heldout)}, persistence {_signed(persistent)}; best cells: "
                               + "; ".join(f"L{i} {name}" for i, name in enumerate(best[:3]))
                               + (" ..." if len(best) > 3 else ""))
            run.checkpoint(step=step, regeneration=regeneration)  # and every tracked state
            if run.stop_requested(regeneration=regeneration) and step < total_steps:
                run.close()
                return None
    run.close()
    check_same_on_all_ranks(dist, {"populations": [population.state() for population in populations],
                                   "supernet": supernet.state_dict()}, "the populations and supernet weights")

    history = read_jsonl(out / "history.jsonl")
    # the last three regenerations' held-out top-1: one regeneration scores only a few paths
    recent = [record["heldout_top1"] for record in history[-3:] if record.get("heldout_top1") is not None]
    diagnostics = {"heldout_top1": round(sum(recent) / len(recent), 4) if recent else None,
                   "chance": round(1.0 / dataset.num_classes, 4), "persistence": persistence.overall(),
                   "persistence_pairs": persistence.pairs,
                   "fitness_spread": history[-1].get("fitness_spread") if history else None}
    diagnostics["warning"] = noise_warning(diagnostics["heldout_top1"], dataset.num_classes,
                                           diagnostics["persistence"], persistence.pairs, config)
    if diagnostics["warning"] and dist.is_main:
        print(f"autospace: warning: evolve: {diagnostics['warning']}", file=sys.stderr, flush=True)
    cost_ranges = ({"layer_cost_tiers": [[[t.budget.floor, t.budget.cap] for t in p.tiers] for p in populations]}
                   if tiered else {"layer_madds_bands": [[p.budget.floor, p.budget.cap] for p in populations]})
    space = learned_space(skeleton, populations, config, {
        "method": "autospace", "budget_madds": config.budget_madds,
        "budget_range_madds": [config.budget_madds, config.budget_madds_max or config.budget_madds],
        **cost_ranges, "min_trained_steps": config.min_steps, "min_windows": config.min_windows,
        "steps": total_steps, "regenerations": regeneration, "fitness_diagnostics": diagnostics,
        "wall_time_s": round(run.elapsed(), 1), "hardware": hardware_info(device)})
    slots = skeleton.searchable_slots()
    space.metadata["space_madds"] = space_madds_summary(
        fixed_madds(skeleton), [[block_cost(c.block, slot).madds for c in layer] for slot, layer in
                                zip(slots, space.layers)], config.budget_madds, [slot.has_residual for slot in slots])
    low, high = space.metadata["budget_range_madds"]
    summary = space.metadata["space_madds"]
    # One space serves a budget range: it must hold networks below its low end and above its high end.
    summary["covers_budget_range"] = (summary["cheapest_madds"] <= 0.9 * low and summary["costliest_madds"] >= high)
    unreachable = unreachable_budget_warning(space.metadata["space_madds"])
    if unreachable and dist.is_main:
        print(f"autospace: warning: evolve: {unreachable}", file=sys.stderr, flush=True)
    if latency_table is not None:  # the DEA's own prediction (cell components) against the target
        layer_ms = [[round(cell_latency_ms(latency_table, c.block.cell, slot), 5) for c in layer]
                    for slot, layer in zip(slots, space.layers)]
        space.metadata.update({
            "layer_latency_bands_ms": [[round(p.budget.latency_floor, 5), round(p.budget.latency_cap, 5)]
                                       for p in populations],
            "layer_latency_ms": layer_ms,
            "space_latency": space_latency_summary(fixed_latency_ms(latency_table, skeleton), layer_ms,
                                                   config.target_latency_ms)})

    def annotate(layer: int, block) -> dict:
        cost = block_cost(block, slots[layer])
        return {"madds": cost.madds, "params": cost.params}

    run.finish(None, "", [*(report(out, space) if report else []),
                          lambda: save_space(out / "space.json", space, annotate)])  # last: "stage done"
    return space


def learned_space(skeleton, populations: list, config: EvolveConfig, metadata: dict) -> SearchSpace:
    """Step 5: per layer the top-K trained cells by fitness (and the scaled reference, or the whole
    reference family), with fitness and training counts."""
    layers = []
    for population in populations:
        exported = (population.exported(config.top_k_per_tier, config.min_steps, config.min_windows)
                    if isinstance(population, TieredPopulation) else
                    population.exported(config.top_k, config.min_steps, config.export_reference,
                                        config.export_reference_family, config.min_windows))
        layers.append(tuple(Candidate(CellBlock(individual.cell), round(individual.fitness, 6), individual.count)
                            for individual in exported))
    short = [index for index, layer in enumerate(layers) if any(c.trained_iterations < config.min_steps for c in layer)]
    if short:
        print(f"autospace: warning: evolve: no cell of layers {', '.join(map(str, short))} reached min_trained_steps "
              f"({config.min_steps}) in this run, so those layers list their most trained cells; more epochs (now "
              f"{config.epochs}) train every listed cell", file=sys.stderr, flush=True)
    return SearchSpace(skeleton=skeleton, layers=tuple(layers), name="autospace", metadata=metadata)


def other_counts(populations: list, cells: list[list[Cell]]) -> list[int]:
    """Per layer, the training counts of the population's cells that are not in the supernet."""
    in_supernet = [set(layer_cells) for layer_cells in cells]
    return [sum(ind.count for ind in population.individuals if ind.cell not in chosen)
            for population, chosen in zip(populations, in_supernet)]


def cell_from_dict(entry: dict) -> Cell:
    return block_from_dict({"type": "cell", **entry}).cell


def fixed_diagnostic_batches(images, dataset, train_indices, validation_indices, config: EvolveConfig,
                             channels_last: bool, device) -> tuple[list, list]:
    """Fixed, un-augmented batches: training ones for BN recalibration, held-out ones (with labels)
    for accuracy, so the diagnostic is a function of the weights alone (and resumable)."""
    generator = torch.Generator().manual_seed(config.seed + 11)
    order = train_indices[torch.randperm(train_indices.numel(), generator=generator)]
    size, count = config.batch_size, config.diagnostic_batches
    validation_indices = class_balanced_order(validation_indices, dataset.train_labels, config.seed)

    def batch(indices):
        indices = indices.to(device)
        return normalize_batch(images[indices], dataset.mean, dataset.std, channels_last=channels_last)

    recalibration = [batch(order[i * size:(i + 1) * size]) for i in range(min(count, max(order.numel() // size, 1)))]
    held_out = [(batch(validation_indices[i * size:(i + 1) * size]),
                 dataset.train_labels[validation_indices[i * size:(i + 1) * size]].to(device))
                for i in range(min(count, max(validation_indices.numel() // size, 1)))]
    return recalibration, held_out


@torch.no_grad()
def heldout_top1(supernet: CellSupernet, batches: tuple[list, list], config: EvolveConfig, regeneration: int,
                 uniform: bool, autocast_dtype, device) -> float | None:
    """Mean held-out top-1 of `diagnostic_paths` paths drawn from the supernet (by fitness, or
    uniformly before any fitness step), each after BN recalibration on fixed training batches."""
    if config.diagnostic_paths == 0:
        return None
    recalibration, held_out = batches
    generator = torch.Generator().manual_seed(config.seed * 1_000_003 + regeneration)  # not the run's sampler
    accuracies = []
    for _ in range(config.diagnostic_paths):
        paths = supernet.sample_weight_paths(generator, uniform=uniform)
        recalibrate_batch_norm(supernet, recalibration, lambda inputs, paths=paths: supernet(inputs, paths))
        supernet.eval()
        correct = total = 0
        for inputs, labels in held_out:
            with torch.autocast(device.type, dtype=autocast_dtype, enabled=autocast_dtype is not None):
                logits = supernet(inputs, paths)
            correct += (logits.argmax(1) == labels).sum()
            total += labels.numel()
        supernet.train()
        accuracies.append(float(correct) / total)
    return round(sum(accuracies) / len(accuracies), 4)


def _percent(value: float | None) -> str:
    return "n/a" if value is None else f"{100 * value:.1f}%"


def _signed(value: float | None) -> str:
    return "n/a" if value is None else f"{value:+.2f}"
