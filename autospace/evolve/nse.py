"""NSE: progressive search-space evolution with learnable multi-branch layers (DESIGN 2.5).

Per searchable layer a subset of K operators from a larger pool. Each round:

1. train a supernet over the subsets (`BlockSupernet` with one module per operator; a
   layer's output is the mean of the operators that are on, each on with probability
   sigmoid(alpha)); weight steps on the training split, architecture steps on the held-out
   split with the two-subset estimator (`search.branch_masks`) plus the MAdds term
   lambda ((E[MAdds] - target) / target)^2;
2. draw architectures, keep those near the budget, evaluate each after BN recalibration;
3. keep the operators the Pareto front (MAdds vs accuracy) uses, drop those whose
   sigmoid(alpha) fell below the threshold, refill each subset from operators the layer has
   never tried (weights and alphas of the survivors carry over).

It stops after `rounds` rounds or once a round has searched the last untried operators.
The space it writes has, per layer, the surviving operators and the multi-branch blocks of
the last Pareto front, so `autospace search` can return multi-branch networks.
"""

from __future__ import annotations

import random
import time
from pathlib import Path

import torch
import torch.nn.functional as functional

from autospace.arch.blocks import MultiBranch, block_to_string, canonical_block
from autospace.arch.codec import load_space, save_space
from autospace.arch.presets import preset_skeleton
from autospace.arch.space import Candidate, SearchSpace
from autospace.runtime.atomic import atomic_write_json
from autospace.runtime.checkpoints import load_rotating_checkpoint, require_finite_loss
from autospace.cost.analytic import block_cost, head_cost, stem_cost
from autospace.runtime.device import hardware_info
from autospace.runtime.distributed import all_reduce_mean, sync_batch_layers
from autospace.runtime.run import open_run
from autospace.errors import AutospaceError
from autospace.runtime.checkpoints import load_optimizer_state_by_name, optimizer_state_by_name
from autospace.evolve.nse_config import NseConfig
from autospace.evolve.pareto import pareto_front, write_pareto_plot
from autospace.arch.pools import layer_pools
from autospace.evolve.pool import LayerSubset, surviving_operators
from autospace.nn.batchnorm import recalibrate_batch_norm
from autospace.nn.block_supernet import BlockSupernet
from autospace.evolve.branch_masks import (
    expected_branch_madds, latency_penalty, mask_madds, sample_masks, squared_budget_penalty, two_subset_gradient,
)
from autospace.latency.timing import round_latency_us
from autospace.train.session import PathModule, open_session
from autospace.train.optim import learning_rate_at, make_optimizer

CHECKPOINT_FORMAT = "autospace.evolve-nse/1"


def branch_paths(masks):
    """What `BlockSupernet.forward` takes for multi-branch masks."""
    return [(tuple(mask), None) for mask in masks]


def round_supernet(skeleton, layers: list[LayerSubset], initialiser: torch.Generator, session,
                   previous: BlockSupernet | None) -> BlockSupernet:
    """A supernet over the current subsets; modules of operators that were already in the
    previous round's subsets (and the stem, fixed layers, head, classifier) inherit its weights."""
    space = SearchSpace(skeleton=skeleton, layers=tuple(tuple(Candidate(b) for b in layer.subset) for layer in layers),
                        name="nse-round")
    supernet = BlockSupernet(space, initialiser, add_zero=False).to(session.device)
    sync_batch_layers(session.distributed, supernet)  # under torchrun BN sees the global batch
    if session.channels_last:
        supernet = supernet.to(memory_format=torch.channels_last)
    if previous is not None:
        for name in ("stem", "head", "classifier"):
            getattr(supernet, name).load_state_dict(getattr(previous, name).state_dict())
        for new, old in zip(supernet._fixed, previous._fixed):
            new.load_state_dict(old.state_dict())
        for new_modules, old_modules, new_blocks, old_blocks in zip(
                supernet._candidates, previous._candidates, supernet.choices, previous.choices):
            for index, block in enumerate(new_blocks):
                if block in old_blocks:
                    new_modules[index].load_state_dict(old_modules[old_blocks.index(block)].state_dict())
    return supernet


def smallest_madds(skeleton, pools) -> int:
    """The cheapest network any subset allows: fixed parts, nothing on residual layers, the
    cheapest pool operator elsewhere."""
    slots = skeleton.slots()
    total = stem_cost(skeleton).madds + head_cost(skeleton, slots[-1].out_channels, slots[-1].output_size).madds
    total += sum(block_cost(skeleton.first_block, slot).madds for slot in slots if not slot.searchable)
    for slot, pool in zip(skeleton.searchable_slots(), pools):
        if not slot.has_residual:
            total += min(block_cost(block, slot).madds for block in pool)
    return total


def pick_near_budget(draws: list, madds: list[int], budget: int, tolerance: float, count: int,
                     rng: random.Random) -> list[int]:
    """Indices of `count` distinct draws: random ones among those within `tolerance` of the
    budget, topped up with the nearest others (by |log(MAdds / budget)|) when too few are."""
    import math

    distinct, seen = [], set()
    for index, masks in enumerate(draws):
        key = tuple(masks)
        if key not in seen:
            seen.add(key)
            distinct.append(index)
    near = [i for i in distinct if abs(madds[i] / budget - 1.0) <= tolerance]
    if len(near) >= count:
        return sorted(rng.sample(near, count))
    rest = sorted((i for i in distinct if i not in set(near)), key=lambda i: abs(math.log(madds[i] / budget)))
    return sorted(near + rest[: count - len(near)])


def evolve_nse(config: NseConfig, out: str | Path, resume: bool = False,
               stop_after_checkpoints: int | None = None, report=None) -> SearchSpace | None:
    """Run NSE and write `out/space.json`; `resume` continues from the last checkpoint.
    `stop_after_checkpoints` (tests) returns None right after writing that many checkpoints. `report(out,
    space)` gives the report layer's writes of its readable outputs, made just before space.json (`evolve()`
    passes space.md)."""
    out = Path(out)
    run = open_run(config, out, resume, f"search {config.method}", CHECKPOINT_FORMAT,
                   f"lower weight_lr (now {config.weight_lr}) or arch_lr, then --resume",
                   stop_after={"checkpoints": stop_after_checkpoints})
    if resume and load_rotating_checkpoint(out, CHECKPOINT_FORMAT) is None:
        run.keep_log("history.jsonl", 0)  # killed before its first checkpoint: it starts afresh in the folder
    session = open_session(run)
    device, dist = session.device, session.distributed  # under torchrun: same draws everywhere, rank 0 writes
    dataset = session.dataset
    skeleton = preset_skeleton(config.preset, num_classes=dataset.num_classes, in_channels=dataset.channels,
                               resolution=dataset.resolution)
    slots = skeleton.searchable_slots()
    pools = layer_pools(len(slots), config.pool_irb, config.pool_dilated,
                        load_space(config.pool) if config.pool else None)
    smallest = smallest_madds(skeleton, pools)
    if config.budget_madds < smallest:
        raise AutospaceError(
            f"budget {config.budget_madds / 1e6:.1f}M MAdds is below the smallest network the pool allows on "
            f"preset {config.preset!r} ({smallest / 1e6:.2f}M MAdds); raise --budget-madds to at least "
            f"{(smallest + 99_999) // 100_000 / 10:.1f}M")
    layers = [LayerSubset(pool) for pool in pools]
    required = [not slot.has_residual for slot in slots]
    rng = random.Random(config.seed)                              # refills and picks near the budget
    sampler = torch.Generator().manual_seed(config.seed + 2)       # branch masks
    initialiser = torch.Generator().manual_seed(config.seed + 3)   # weights of operators entering a subset
    steps_per_round = config.epochs_per_round * session.train_stream.batches_per_epoch
    warmup_steps = int(config.warmup_epochs * session.train_stream.batches_per_epoch)
    recalibration = session.recalibration_batches(config.recalibration_batches)

    # -- state of the run ----------------------------------------------------------------------------
    round_index, phase, step = 1, "train", 0
    alphas: list[torch.Tensor]
    counts: list[list[int]]
    evaluation = None  # {"draws": [...], "picked": [...], "results": [...]} during the evaluate phase
    running = {"weight_loss": 0.0, "arch_loss": 0.0, "arch_steps": 0}

    def load_layers(states: list) -> None:  # a rebuild: the supernet below is built from the subsets
        for layer, state in zip(layers, states):
            layer.load_state(state)

    def load_alphas(values: list) -> None:
        nonlocal alphas
        alphas = [torch.tensor(row, dtype=torch.float32, requires_grad=True) for row in values]

    def load_counts(state: list[list[int]]) -> None:
        nonlocal counts
        counts = state

    def load_supernet(state: dict) -> None:  # a rebuild: new operators draw from the initialiser, restored after
        nonlocal supernet
        supernet = round_supernet(skeleton, layers, initialiser, session, None)
        supernet.load_state_dict(state)

    def load_weights(state: dict) -> None:
        nonlocal weights
        weights = make_optimizer(supernet, config.weight_lr, config.weight_momentum, True, config.weight_decay)
        load_optimizer_state_by_name(supernet, weights, state)

    def load_arch_optimizer(state: dict) -> None:
        nonlocal arch_optimizer
        arch_optimizer = torch.optim.Adam(alphas, lr=config.arch_lr, betas=(0.0, 0.999))
        arch_optimizer.load_state_dict(state)

    def load_evaluation(state) -> None:
        nonlocal evaluation
        evaluation = state

    def load_running(state: dict) -> None:
        nonlocal running
        running = state

    run.track("layers", save=lambda: [layer.state() for layer in layers], load=load_layers, rebuild=True)
    run.track("alphas", save=lambda: [a.detach().tolist() for a in alphas], load=load_alphas)
    run.track("counts", save=lambda: counts, load=load_counts)
    run.track("supernet", save=lambda: supernet.state_dict(), load=load_supernet, rebuild=True)
    run.track("weights", save=lambda: optimizer_state_by_name(supernet, weights), load=load_weights)
    run.track("arch_optimizer", save=lambda: arch_optimizer.state_dict(), load=load_arch_optimizer)
    run.track("initialiser", initialiser)
    run.track("evaluation", save=lambda: evaluation, load=load_evaluation)
    run.track("running", save=lambda: running, load=load_running)
    for name, thing in (("rng", rng), ("sampler", sampler), ("train_stream", session.train_stream),
                        ("validation_stream", session.validation_stream)):
        run.track(name, thing)
    checkpoint = run.restore()
    if checkpoint is None:
        for layer in layers:
            layer.refill(config.subset_size, rng)
        supernet = round_supernet(skeleton, layers, initialiser, session, None)
        alphas = [torch.full((len(layer.subset),), float(config.alpha_init), requires_grad=True) for layer in layers]
        counts = [[0] * len(layer.subset) for layer in layers]
        weights = make_optimizer(supernet, config.weight_lr, config.weight_momentum, True, config.weight_decay)
        arch_optimizer = torch.optim.Adam(alphas, lr=config.arch_lr, betas=(0.0, 0.999))
    else:
        round_index, phase, step = checkpoint["round"], checkpoint["phase"], checkpoint["step"]
        run.keep_log("history.jsonl", round_index - 1)

    def save_checkpoint() -> bool:
        """Write a checkpoint (the counters and every tracked state); True when a test asked to stop here."""
        run.checkpoint(round=round_index, phase=phase, step=step)
        return run.stop_requested(checkpoints=run.checkpoints_written)

    show = run.show
    fixed_madds = supernet.fixed_madds()  # stem, head, fixed layers: the same every round
    while True:
        sizes = [len(layer.subset) for layer in layers]
        candidate_madds = supernet.candidate_madds()
        latency = round_latency_us(config.latency_table, supernet) if config.target_latency_ms is not None else None
        # ---- 1. train the supernet over the subsets ------------------------------------------------
        if phase == "train":
            progress = run.progress(steps_per_round, step, f"nse round {round_index}/{config.rounds}")
            supernet.train()
            weight_loss = torch.zeros((), device=device)
            while step < steps_per_round:
                lr = learning_rate_at(step, steps_per_round, 0, config.weight_lr)
                if step < warmup_steps:
                    probabilities = [torch.full((size,), 0.5) for size in sizes]
                else:
                    probabilities = [torch.sigmoid(alpha.detach()) for alpha in alphas]
                masks = sample_masks(probabilities, sampler, required)
                loss = session.weight_step(supernet, weights, branch_paths(masks), lr,
                                           f"round {round_index}, step {step + 1}")
                if loss is not None:  # None: --skip-nonfinite skipped this step
                    weight_loss += loss
                    for layer_counts, mask in zip(counts, masks):
                        for index in mask:
                            layer_counts[index] += 1
                if step >= warmup_steps and step % config.arch_every == 0:
                    probabilities = [torch.sigmoid(alpha.detach()) for alpha in alphas]
                    first = sample_masks(probabilities, sampler, required)
                    second = sample_masks(probabilities, sampler, required)
                    inputs, labels = session.validation_stream.next()
                    if session.guard is not None:
                        session.guard.remember(supernet)
                    with torch.no_grad(), session.autocast():
                        losses = torch.stack([
                            functional.cross_entropy(supernet(inputs, branch_paths(m)).float(), labels)
                            for m in (first, second)])
                    losses = all_reduce_mean(dist, losses)  # this rank's slice -> the global batch's losses
                    finite = session.guard is None or session.guard.accept(
                        losses, (), f"round {round_index}, architecture step at step {step + 1}")
                    if finite:  # (without --skip-nonfinite the per-round loss check stops a non-finite run)
                        loss_first, loss_second = losses.tolist()  # one host sync per architecture step
                        gradients = two_subset_gradient(first, second, loss_first, loss_second, sizes)
                        expected = expected_branch_madds([torch.sigmoid(a) for a in alphas], candidate_madds,
                                                         fixed_madds)
                        arch_optimizer.zero_grad(set_to_none=True)
                        if latency is None:
                            squared_budget_penalty(expected, config.budget_madds, config.madds_weight).backward()
                        else:
                            latency_penalty(expected, [torch.sigmoid(a) for a in alphas], latency, config).backward()
                        for alpha, gradient in zip(alphas, gradients):
                            alpha.grad += gradient
                        arch_optimizer.step()
                        running["arch_loss"] += (loss_first + loss_second) / 2
                        running["arch_steps"] += 1
                step += 1
                progress.update(1)
                if step % config.checkpoint_every == 0 and step < steps_per_round:
                    running["weight_loss"] += all_reduce_mean(dist, weight_loss).item()  # the global batch's loss
                    weight_loss.zero_()
                    require_finite_loss(running["weight_loss"] + running["arch_loss"], "evolve nse",
                                        f"round {round_index}, step {step}", out,
                                        f"lower weight_lr (now {config.weight_lr}), then --resume")
                    if save_checkpoint():
                        return None
            running["weight_loss"] += all_reduce_mean(dist, weight_loss).item()  # the global batch's loss
            progress.close()
            require_finite_loss(running["weight_loss"] + running["arch_loss"], "evolve nse",
                                f"round {round_index}, step {step}", out,
                                f"lower weight_lr (now {config.weight_lr}), then --resume")
            phase, evaluation = "evaluate", None

        # ---- 2. architectures near the budget, evaluated after BN recalibration -----------------------
        if evaluation is None:
            draws = []
            for _ in range(config.sample_draws):
                # a random shift of every alpha spreads the draws over MAdds around the learned distribution
                shift = float(torch.empty(()).uniform_(-2.0, 2.0, generator=sampler))
                draws.append(sample_masks([torch.sigmoid(a.detach() + shift) for a in alphas], sampler, required))
            madds = [mask_madds(masks, candidate_madds, fixed_madds) for masks in draws]
            picked = pick_near_budget(draws, madds, config.budget_madds, config.budget_tolerance, config.samples, rng)
            evaluation = {"architectures": [[list(mask) for mask in draws[i]] for i in picked],
                          "madds": [madds[i] for i in picked], "accuracy": []}
            if save_checkpoint():
                return None
        while len(evaluation["accuracy"]) < len(evaluation["architectures"]):
            masks = [tuple(mask) for mask in evaluation["architectures"][len(evaluation["accuracy"])]]
            paths = branch_paths(masks)
            with session.autocast():
                recalibrate_batch_norm(supernet, recalibration, lambda inputs: supernet(inputs, paths))
            evaluation["accuracy"].append(session.validation_accuracy(PathModule(supernet, paths),
                                                                      config.eval_batches)[1])
            if len(evaluation["accuracy"]) % 8 == 0 and len(evaluation["accuracy"]) < len(evaluation["madds"]):
                if save_checkpoint():
                    return None

        # ---- 3. the Pareto front; survivors; refill --------------------------------------------------
        points = list(zip(evaluation["madds"], evaluation["accuracy"]))
        front = pareto_front(points)
        probabilities = [torch.sigmoid(alpha.detach()).tolist() for alpha in alphas]
        survivors = [surviving_operators(layer.subset, [evaluation["architectures"][i][index] for i in front],
                                         probabilities[index], config.drop_threshold)
                     for index, layer in enumerate(layers)]
        exhausted_before = all(not layer.untried() for layer in layers)
        last_round = round_index >= config.rounds or exhausted_before
        names = [[block_to_string(block) for block in layer.subset] for layer in layers]
        pareto = {"round": round_index, "budget_madds": config.budget_madds,
                  "subsets": names,
                  "points": [{"madds": m, "accuracy": round(a, 6), "on_front": i in front,
                              "layers": [[names[l][j] for j in mask] for l, mask in
                                         enumerate(evaluation["architectures"][i])]}
                             for i, (m, a) in enumerate(points)]}
        for stem in (out / "pareto" / f"round-{round_index:02d}", out / "pareto"):
            if not dist.is_main:
                break
            stem.parent.mkdir(parents=True, exist_ok=True)
            atomic_write_json(stem.with_suffix(".json"), pareto)
            write_pareto_plot(stem.with_suffix(".png"), points, front, config.budget_madds,
                              f"NSE round {round_index}: {len(points)} architectures, {len(front)} on the front")
        record = {"round": round_index, "subsets": names,
                  "probabilities": [[round(p, 4) for p in row] for row in probabilities],
                  "trained_steps": counts,
                  "weight_loss": running["weight_loss"] / steps_per_round,
                  "arch_loss": running["arch_loss"] / max(running["arch_steps"], 1),
                  "expected_madds": round(float(expected_branch_madds(
                      [torch.sigmoid(a.detach()) for a in alphas], candidate_madds, fixed_madds))),
                  "front": [{"madds": points[i][0], "accuracy": round(points[i][1], 6),
                             "layers": pareto["points"][i]["layers"]} for i in front],
                  "kept": [[block_to_string(b) for b in kept] for kept in survivors],
                  "elapsed_seconds": round(run.elapsed(), 2)}
        if not last_round:
            old_alpha = {l: dict(zip(layer.subset, alphas[l].detach().tolist())) for l, layer in enumerate(layers)}
            old_counts = {l: dict(zip(layer.subset, counts[l])) for l, layer in enumerate(layers)}
            record["dropped"] = [[block_to_string(b) for b in layer.keep_only(kept)]
                                 for layer, kept in zip(layers, survivors)]
            record["added"] = [[block_to_string(b) for b in layer.refill(config.subset_size, rng)] for layer in layers]
            supernet = round_supernet(skeleton, layers, initialiser, session, supernet)
            alphas = [torch.tensor([old_alpha[l].get(b, float(config.alpha_init)) for b in layer.subset],
                                   dtype=torch.float32, requires_grad=True) for l, layer in enumerate(layers)]
            counts = [[old_counts[l].get(b, 0) for b in layer.subset] for l, layer in enumerate(layers)]
            weights = make_optimizer(supernet, config.weight_lr, config.weight_momentum, True, config.weight_decay)
            arch_optimizer = torch.optim.Adam(alphas, lr=config.arch_lr, betas=(0.0, 0.999))
        run.log("history.jsonl", record, "evolve/nse", round_index,
                {key: record[key] for key in ("weight_loss", "arch_loss", "expected_madds")})
        if show:
            best = max(front, key=lambda i: points[i][1])
            print(f"round {round_index}: weight loss {record['weight_loss']:.3f}, arch loss {record['arch_loss']:.3f}, "
                  f"E[MAdds] {record['expected_madds'] / 1e6:.1f}M; front of {len(front)}, best "
                  f"{100 * points[best][1]:.1f}% at {points[best][0] / 1e6:.1f}M MAdds", flush=True)
        if last_round:
            break
        round_index, phase, step, evaluation = round_index + 1, "train", 0, None
        running = {"weight_loss": 0.0, "arch_loss": 0.0, "arch_steps": 0}
        if save_checkpoint():
            return None

    space = learned_space(skeleton, layers, survivors, probabilities, counts,
                          [evaluation["architectures"][i] for i in front], {
                              "method": "nse", "budget_madds": config.budget_madds, "rounds": round_index,
                              "pool_sizes": [len(pool) for pool in pools],
                              "wall_time_s": round(run.elapsed(), 1),
                              "hardware": hardware_info(device)})

    def annotate(layer: int, block) -> dict:
        cost = block_cost(block, slots[layer])
        return {"madds": cost.madds, "params": cost.params}

    # Every rank took the same decisions from the same draws and all-reduced losses; make sure.
    run.finish({"space": [[block_to_string(c.block) for c in layer] for layer in space.layers],
                "alphas": [a.detach().tolist() for a in alphas]}, "the NSE space and alphas",
               [*(report(out, space) if report else []),
                lambda: save_space(out / "space.json", space, annotate)])  # last: `autospace run` reads it
    return space


def learned_space(skeleton, layers: list[LayerSubset], survivors, probabilities, counts, front_masks,
                  metadata: dict) -> SearchSpace:
    """Per layer: the surviving operators (fitness sigmoid(alpha), trained steps), most probable
    first, then the distinct multi-branch blocks the last Pareto front used there."""
    space_layers = []
    for index, (layer, kept) in enumerate(zip(layers, survivors)):
        singles = sorted(kept, key=lambda block: -probabilities[index][layer.subset.index(block)])
        candidates = [Candidate(block, round(probabilities[index][layer.subset.index(block)], 6),
                                counts[index][layer.subset.index(block)]) for block in singles]
        seen = {canonical_block(block) for block in singles}
        for masks in front_masks:
            mask = masks[index]
            if len(mask) < 2:
                continue
            block = canonical_block(MultiBranch(tuple(layer.subset[i] for i in mask)))
            if block not in seen:
                seen.add(block)
                candidates.append(Candidate(block))
        space_layers.append(tuple(candidates))
    return SearchSpace(skeleton=skeleton, layers=tuple(space_layers), name="nse", metadata=metadata)
