"""SPOS: single-path one-shot supernet training, then evolutionary search (DESIGN 2.4).

Phase 1 trains the supernet on uniformly drawn single paths, redrawing any path
over the budget. Phase 2 runs the evolutionary search of `search.evolution`;
each candidate is scored after BN recalibration on fixed training batches, by
its accuracy on the first `eval_batches` held-out batches. Both phases
checkpoint (per epoch, per generation) and resume to the same result.

The architecture encoding is given by a `SposEncoding`, so the same loop runs in
a listed space (one index per layer) and in the open space (one cell per layer).
"""

from __future__ import annotations

import random
import time
from dataclasses import dataclass
from typing import Any, Callable

import torch

from autospace.runtime.atomic import read_jsonl
from autospace.runtime.checkpoints import require_finite_loss
from autospace.runtime.distributed import all_reduce_mean, check_same_on_all_ranks, sync_batch_layers
from autospace.errors import AutospaceError
from autospace.runtime.checkpoints import load_optimizer_state_by_name, optimizer_state_by_name
from autospace.nn.block_supernet import recalibrate_batch_norm
from autospace.search.evolution import EvolutionConfig, evolutionary_search
from autospace.train.session import PathModule, SearchSession
from autospace.train.optim import learning_rate_at, make_optimizer

CHECKPOINT_FORMAT = "autospace.search-spos/1"


@dataclass
class SposEncoding:
    """How architectures of one space are drawn, varied, costed and run."""

    supernet: torch.nn.Module
    sample: Callable[[random.Random], Any]
    mutate: Callable[[Any, random.Random, float], Any]
    crossover: Callable[[Any, Any, random.Random], Any]
    madds: Callable[[Any], int]
    paths: Callable[[Any], Any]      # what supernet.forward takes for this architecture
    network: Callable[[Any], Any] = None                # the stand-alone Network of an architecture
    prepare: Callable[[Any], bool] = lambda arch: False  # create lazy weights; True if new ones appeared
    state: Callable[[], dict] = lambda: {}               # what must exist before load_state_dict (resume)
    load_state: Callable[[dict], None] = lambda state: None


def sample_within_budget(encoding: SposEncoding, budget: int, rng: random.Random, tries: int = 1000):
    for _ in range(tries):
        arch = encoding.sample(rng)
        if encoding.madds(arch) <= budget:
            return arch
    raise AutospaceError(
        f"no architecture under the {budget / 1e6:.1f}M MAdds budget in {tries} uniform draws; "
        f"the budget is close to the smallest network of this space: raise it")


def search_spos(session: SearchSession, encoding: SposEncoding):
    """Returns (best architecture, its held-out accuracy, records)."""
    run, config, device = session.run, session.config, session.device
    dist, guard = session.distributed, session.guard
    supernet = encoding.supernet
    weights = make_optimizer(supernet, config.weight_lr, config.weight_momentum, True, config.weight_decay)

    def grown_optimizer(previous):
        """A new optimiser over every current parameter, keeping the state of the old ones."""
        optimizer = make_optimizer(supernet, config.weight_lr, config.weight_momentum, True, config.weight_decay)
        for group in optimizer.param_groups:
            for parameter in group["params"]:
                if parameter in previous.state:
                    optimizer.state[parameter] = previous.state[parameter]
        return optimizer

    rng = random.Random(config.seed + 5)
    steps_per_epoch = session.train_stream.batches_per_epoch
    total_steps = config.epochs * steps_per_epoch
    epoch, evolution = 0, None  # evolution: the evolutionary search's state, once it runs

    def load_weights(state: dict) -> None:  # the supernet (restored first) may have grown lazy modules
        nonlocal weights
        weights = make_optimizer(supernet, config.weight_lr, config.weight_momentum, True, config.weight_decay)
        load_optimizer_state_by_name(supernet, weights, state)

    run.track("encoding", save=encoding.state, load=encoding.load_state)
    run.track("supernet", supernet)
    run.track("weights", save=lambda: optimizer_state_by_name(supernet, weights), load=load_weights)
    run.track("rng", rng)
    run.track("train_stream", session.train_stream)
    run.track("evolution", save=lambda: evolution, load=lambda state: None)
    checkpoint = run.restore()
    records = []
    if checkpoint is not None:
        epoch, evolution = checkpoint["epoch"], checkpoint["evolution"]
        kept = epoch + (len(evolution["history"]) if evolution else 0)
        records = read_jsonl(session.out / "search.jsonl")[:kept]
        run.keep_log("search.jsonl", kept)
    evolution_state = evolution
    sync_batch_layers(dist, supernet)

    def log(record: dict, prefix: str, step: int) -> None:
        records.append(record)
        run.log("search.jsonl", record, prefix, step)

    progress = run.progress(total_steps, epoch * steps_per_epoch, "search spos (supernet)") \
        if epoch < config.epochs else None
    # -- phase 1: uniform single-path training within the budget ------------------------------------
    while epoch < config.epochs:
        supernet.train()
        loss_sum, weight_steps = torch.zeros((), device=device), 0
        epoch_started = time.perf_counter()
        for position in range(steps_per_epoch):
            step = epoch * steps_per_epoch + position
            lr = learning_rate_at(step, total_steps, 0, config.weight_lr)
            arch = sample_within_budget(encoding, config.target_madds, rng)
            if encoding.prepare(arch):
                weights = grown_optimizer(weights)
                sync_batch_layers(dist, supernet)
            loss = session.weight_step(supernet, weights, encoding.paths(arch), lr,
                                       f"weight step {step + 1} (epoch {epoch + 1})")
            if loss is not None:
                loss_sum += loss
                weight_steps += 1
            progress.update(1)
        epoch += 1
        loss_sum = all_reduce_mean(dist, loss_sum).item()  # the global batches' mean, the same on every rank
        record = {"phase": "supernet", "epoch": epoch,
                  "train_loss": loss_sum / weight_steps if weight_steps else float("nan"),
                  "lr": lr, "epoch_seconds": round(time.perf_counter() - epoch_started, 2),
                  "elapsed_seconds": round(run.elapsed(), 2)}
        if guard.enabled:
            record["skipped_nonfinite"] = guard.skipped
        require_finite_loss(record["train_loss"], "search spos", f"epoch {epoch}", session.out,
                            f"lower weight_lr (now {config.weight_lr}), then --resume")
        log(record, "search/spos-supernet", epoch)
        run.checkpoint(epoch=epoch)
        if run.stop_requested(epoch=epoch) and epoch < config.epochs:
            run.close()
            return None, None, records
    if progress is not None:
        progress.close()

    # -- phase 2: evolutionary search, BN recalibrated before every evaluation ------------------------
    recalibration = session.recalibration_batches(config.recalibration_batches)

    def evaluate(arch) -> float:
        if encoding.prepare(arch):  # a new cell's modules exist (and are synchronised) before it runs
            sync_batch_layers(dist, supernet)
        paths = encoding.paths(arch)
        with session.autocast():
            recalibrate_batch_norm(supernet, recalibration, lambda inputs: supernet(inputs, paths))
        return session.validation_accuracy(PathModule(supernet, paths), config.eval_batches)[1]

    def on_generation(generation: int, state: dict) -> None:
        last = state["history"][-1]
        record = {"phase": "evolution", "generation": generation, "best_accuracy": last["best_score"],
                  "mean_top_accuracy": last["mean_top_score"],
                  "best_madds": int(encoding.madds(last["best_arch"])),
                  "elapsed_seconds": round(run.elapsed(), 2)}
        log(record, "search/spos-evolution", generation)
        nonlocal evolution
        evolution = state
        run.checkpoint(epoch=epoch)
        progress_bar.update(1)
        progress_bar.set_postfix(best=f"{last['best_score']:.3f}", madds=f"{record['best_madds'] / 1e6:.1f}M")
        if run.stop_requested(generation=generation):
            raise _Stop()

    evolution_config = EvolutionConfig(population=config.population, top=config.top, mutations=config.mutations,
                                       crossovers=config.crossovers, generations=config.generations,
                                       mutation_probability=config.mutation_probability)
    done = len(evolution_state["history"]) if evolution_state else 0
    # generation 0: the first population
    progress_bar = run.progress(config.generations + 1, done, "search spos (evolution)")
    try:
        best, score, _ = evolutionary_search(
            encoding.sample, encoding.mutate, encoding.crossover, evaluate, encoding.madds, config.target_madds,
            evolution_config, random.Random(config.seed + 6), on_generation=on_generation, state=evolution_state)
    except _Stop:
        return None, None, records
    finally:
        run.close()
    check_same_on_all_ranks(dist, {"supernet": supernet.state_dict(), "best": repr(best), "score": score},
                            "the supernet weights and the evolution's result")
    return best, score, records


class _Stop(Exception):
    """Raised inside the evolution callback to simulate a kill (tests)."""
