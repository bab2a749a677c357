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

from autospace.runtime.atomic import append_jsonl, read_jsonl, truncate_jsonl
from autospace.runtime.checkpoints import load_rotating_checkpoint, require_finite_loss, save_rotating_checkpoint
from autospace.runtime.distributed import all_reduce_mean, barrier, check_same_on_all_ranks, sync_batch_layers
from autospace.errors import AutospaceError
from autospace.runtime.checkpoints import load_optimizer_state_by_name, optimizer_state_by_name
from autospace.nn.block_supernet import recalibrate_batch_norm
from autospace.runtime.tensorboard import ScalarMirror
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


def search_spos(session: SearchSession, encoding: SposEncoding, stop_after_epoch: int | None = None,
                stop_after_generation: int | None = None):
    """Returns (best architecture, its held-out accuracy, records)."""
    config, device = session.config, session.device
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
    epoch, evolution_state = 0, None
    records = []
    checkpoint = load_rotating_checkpoint(session.out, CHECKPOINT_FORMAT)
    barrier(dist)  # every rank has read the checkpoint before rank 0 writes again
    if checkpoint is not None:
        encoding.load_state(checkpoint["encoding"])
        supernet.load_state_dict(checkpoint["supernet"])
        weights = make_optimizer(supernet, config.weight_lr, config.weight_momentum, True, config.weight_decay)
        load_optimizer_state_by_name(supernet, weights, checkpoint["weights"])
        rng.setstate(checkpoint["rng"])
        session.train_stream.load_state_dict(checkpoint["train_stream"])
        epoch, evolution_state = checkpoint["epoch"], checkpoint["evolution"]
        session.started -= checkpoint["elapsed_seconds"]
        guard.load_state_dict(checkpoint.get("nonfinite"))
        kept = epoch + (len(evolution_state["history"]) if evolution_state else 0)
        records = read_jsonl(session.out / "search.jsonl")[:kept]
        if dist.is_main:
            truncate_jsonl(session.out / "search.jsonl", kept)
    sync_batch_layers(dist, supernet)

    def checkpoint_now(evolution=None):
        if not dist.is_main:
            return
        save_rotating_checkpoint(session.out, {
            "epoch": epoch, "supernet": supernet.state_dict(), "encoding": encoding.state(),
            "weights": optimizer_state_by_name(supernet, weights),
            "rng": rng.getstate(), "train_stream": session.train_stream.state_dict(), "evolution": evolution,
            "elapsed_seconds": time.perf_counter() - session.started, "nonfinite": guard.state_dict()},
            CHECKPOINT_FORMAT)

    def log(record: dict, prefix: str, step: int) -> None:
        records.append(record)
        if dist.is_main:
            append_jsonl(session.out / "search.jsonl", record)
            scalars.log(prefix, record, step)

    scalars = ScalarMirror(session.out, config.tensorboard and dist.is_main)
    progress = None
    if config.progress and dist.is_main and epoch < config.epochs:
        from tqdm import tqdm
        progress = tqdm(total=total_steps, initial=epoch * steps_per_epoch, desc="search spos (supernet)",
                        dynamic_ncols=True)
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
            if progress is not None:
                progress.update(1)
        epoch += 1
        loss_sum = all_reduce_mean(dist, loss_sum).item()  # the global batches' mean, the same on every rank
        record = {"phase": "supernet", "epoch": epoch,
                  "train_loss": loss_sum / weight_steps if weight_steps else float("nan"),
                  "lr": lr, "epoch_seconds": round(time.perf_counter() - epoch_started, 2),
                  "elapsed_seconds": round(time.perf_counter() - session.started, 2)}
        if guard.enabled:
            record["skipped_nonfinite"] = guard.skipped
        require_finite_loss(record["train_loss"], "search spos", f"epoch {epoch}", session.out,
                            f"lower weight_lr (now {config.weight_lr}), then --resume")
        log(record, "search/spos-supernet", epoch)
        checkpoint_now()
        if stop_after_epoch is not None and epoch >= stop_after_epoch and epoch < config.epochs:
            if progress is not None:
                progress.close()
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

    stopped = []

    def on_generation(generation: int, state: dict) -> None:
        last = state["history"][-1]
        record = {"phase": "evolution", "generation": generation, "best_accuracy": last["best_score"],
                  "mean_top_accuracy": last["mean_top_score"],
                  "best_madds": int(encoding.madds(last["best_arch"])),
                  "elapsed_seconds": round(time.perf_counter() - session.started, 2)}
        log(record, "search/spos-evolution", generation)
        checkpoint_now(state)
        if progress_bar is not None:
            progress_bar.update(1)
            progress_bar.set_postfix(best=f"{last['best_score']:.3f}", madds=f"{record['best_madds'] / 1e6:.1f}M")
        if stop_after_generation is not None and generation >= stop_after_generation:
            stopped.append(generation)
            raise _Stop()

    evolution_config = EvolutionConfig(population=config.population, top=config.top, mutations=config.mutations,
                                       crossovers=config.crossovers, generations=config.generations,
                                       mutation_probability=config.mutation_probability)
    progress_bar = None
    if config.progress and dist.is_main:
        from tqdm import tqdm
        done = len(evolution_state["history"]) if evolution_state else 0
        progress_bar = tqdm(total=config.generations + 1, initial=done,  # generation 0: the first population
                            desc="search spos (evolution)",
                            dynamic_ncols=True)
    try:
        best, score, _ = evolutionary_search(
            encoding.sample, encoding.mutate, encoding.crossover, evaluate, encoding.madds, config.target_madds,
            evolution_config, random.Random(config.seed + 6), on_generation=on_generation, state=evolution_state)
    except _Stop:
        return None, None, records
    finally:
        if progress_bar is not None:
            progress_bar.close()
    check_same_on_all_ranks(dist, {"supernet": supernet.state_dict(), "best": repr(best), "score": score},
                            "the supernet weights and the evolution's result")
    return best, score, records


class _Stop(Exception):
    """Raised inside the evolution callback to simulate a kill (tests)."""
