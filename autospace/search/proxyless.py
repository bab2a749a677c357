"""ProxylessNAS inside a listed space: gradient (G) and REINFORCE (RL), one flat loop.

Both train the supernet's weights on single paths drawn from the per-layer
architecture distributions (binary gates: one candidate runs per layer). After
`warmup_epochs`, every `arch_every` weight steps one architecture step runs on
a held-out batch:
- G: two paths per layer, the binary-gate gradient of CE plus the MAdds term
  (`mul-log` or `add-linear`) whose expectation is analytic and differentiable;
  Adam (betas 0, 0.999), then the pair's logits are shifted so the other
  candidates keep their probabilities (ProxylessNAS's rescaling).
- RL: `rl_samples` paths drawn from the policy, each scored on one held-out batch
  with reward acc * (target / MAdds)^w, REINFORCE against a moving-average baseline.
The result (`pick=measured`, the default) is the best of `pick_candidates` networks in
[budget_floor x target, target] drawn from the final distributions, scored on held-out images
after BN recalibration (`search.pick`). With `pick=fitted` it is the argmax path, or, with
`fit_to_budget` when the argmax is over the target, the most probable path within it, and when it
is under `budget_floor` x target, the most probable path in [budget_floor x target, target]
(`budget.most_probable_in_band`). The measured pick starts from that network too. The log-MAdds
penalty of raw MAdds counts is weak (a 2x change of MAdds moves log E / log T by about 4%), so a
short search can end far from its budget, and a learned-vs-manual comparison needs networks of one
budget. `penalty=absolute` (TuNAS) makes the MAdds term itself two-sided.
"""

from __future__ import annotations

import math
import time

import torch
import torch.nn.functional as functional

from autospace.runtime.atomic import read_jsonl
from autospace.runtime.checkpoints import require_finite_loss
from autospace.runtime.distributed import all_reduce_mean, all_reduce_sum, average_tensors, check_same_on_all_ranks
from autospace.nn.block_supernet import BlockSupernet, recalibrate_batch_norm
from autospace.nn.gates import rescale_pair
from autospace.search.budget import (
    expected_madds, madds_penalized_loss, most_probable_in_band, reward,
)
from autospace.search.constraints import constrained_arch_loss, constrained_reward, most_probable_within
from autospace.search.constraints import within as within_targets
from autospace.search.distribution import LayerDistributions, MovingAverageBaseline, reinforce_loss
from autospace.search.pick import measured_pick
from autospace.train.session import PathModule, SearchSession
from autospace.train.optim import learning_rate_at, make_optimizer

CHECKPOINT_FORMAT = "autospace.search-proxyless/1"


def search_proxyless(session: SearchSession, supernet: BlockSupernet, gradient: bool, constraints=None):
    """Returns the found choice (one candidate index per layer), the supernet, the records and the measured
    pick's record (None with `pick=fitted`).
    `constraints` (`search.constraints`): with a latency or params target beside MAdds, they replace the
    MAdds term, the RL reward and the fitting to the budget."""
    several = constraints is not None and len(constraints) > 1
    run, config, device = session.run, session.config, session.device
    dist, guard = session.distributed, session.guard
    candidate_madds = supernet.candidate_madds()
    fixed_madds = supernet.fixed_madds()
    madds_tables = [torch.tensor(m, dtype=torch.float64, device=device) for m in candidate_madds]
    distributions = LayerDistributions([len(choices) for choices in supernet.choices], device=device)
    weights = make_optimizer(supernet, config.weight_lr, config.weight_momentum, True, config.weight_decay)
    architecture = torch.optim.Adam(distributions.logits, lr=config.arch_lr, betas=(0.0, 0.999), eps=1e-8)
    baseline = MovingAverageBaseline(config.rl_baseline_decay)
    sampler = torch.Generator().manual_seed(config.seed + 2)
    steps_per_epoch = session.train_stream.batches_per_epoch
    total_steps = config.epochs * steps_per_epoch
    warmup_steps = int(config.warmup_epochs * steps_per_epoch)

    def network_madds(choice) -> int:
        return fixed_madds + sum(table[index] for table, index in zip(candidate_madds, choice))

    def result_choice():
        """The network the search returns if it stops now: the argmax, fitted to the budget if asked."""
        if not config.fit_to_budget:
            return distributions.argmax()
        if several:
            return most_probable_within(distributions.host_log_probabilities(), constraints, config.budget_floor)
        return most_probable_in_band(distributions.host_log_probabilities(), candidate_madds, fixed_madds,
                                     config.target_madds, int(config.budget_floor * config.target_madds))

    recalibration = session.recalibration_batches(config.recalibration_batches)
    for name, thing in (("supernet", supernet), ("weights", weights), ("distributions", distributions),
                        ("architecture", architecture), ("baseline", baseline), ("sampler", sampler),
                        ("train_stream", session.train_stream), ("validation_stream", session.validation_stream)):
        run.track(name, thing)
    checkpoint = run.restore()
    epoch, records = 0, []
    if checkpoint is not None:
        architecture.param_groups[0]["lr"] = config.arch_lr  # a --resume may lower it (autospace/runtime/resume.py)
        epoch = checkpoint["epoch"]
        records = read_jsonl(session.out / "search.jsonl")[:epoch]
        run.keep_log("search.jsonl", epoch)

    if checkpoint is None and config.pretrain_steps:
        # Equal supernet compute (issue 28): uniform single paths, as many weight steps as a learned space's
        # evolve gave its supernet, on the same training split; then the search as usual.
        for step in range(config.pretrain_steps):
            choice = [int(torch.randint(len(options), (1,), generator=sampler)) for options in supernet.choices]
            session.weight_step(supernet, weights, [((index,), index) for index in choice],
                                learning_rate_at(step, config.pretrain_steps, 0, config.weight_lr),
                                f"pre-training weight step {step + 1}")
        run.checkpoint(epoch=0)

    progress = run.progress(total_steps, epoch * steps_per_epoch, f"search {config.method}")
    while epoch < config.epochs:
        supernet.train()
        loss_sum, weight_steps = torch.zeros((), device=device), 0
        arch_loss_sum, arch_steps = torch.zeros((), device=device), 0
        epoch_started = time.perf_counter()
        for position in range(steps_per_epoch):
            step = epoch * steps_per_epoch + position
            # -- weight step: one path drawn from the current distributions -------------------------
            lr = learning_rate_at(step, total_steps, 0, config.weight_lr)
            choice = distributions.sample(sampler)
            loss = session.weight_step(supernet, weights, [((index,), index) for index in choice], lr,
                                       f"weight step {step + 1} (epoch {epoch + 1})")
            if loss is not None:
                loss_sum += loss
                weight_steps += 1
            progress.update(1)
            if step < warmup_steps or step % config.arch_every:
                continue

            # -- architecture step on a held-out batch ----------------------------------------------
            inputs, labels = session.validation_stream.next()
            guard.remember(supernet)
            position = f"architecture step after weight step {step + 1} (epoch {epoch + 1})"
            if gradient:
                pairs = distributions.sample_pairs(sampler)
                with session.autocast():
                    logits = supernet(inputs, pairs, distributions.logits)
                cross_entropy = functional.cross_entropy(logits.float(), labels)
                probabilities = [torch.softmax(layer_logits, 0) for layer_logits in distributions.logits]
                expected = expected_madds(probabilities, madds_tables, fixed_madds)
                arch_loss = madds_penalized_loss(cross_entropy, expected, config.target_madds, config.penalty,
                                                 config.penalty_alpha, config.penalty_beta, config.penalty_weight)
                if several:
                    arch_loss = constrained_arch_loss(cross_entropy, probabilities, constraints, config)
                old = [layer_logits.detach().clone() for layer_logits in distributions.logits]
                architecture.zero_grad(set_to_none=True)
                gradients = list(torch.autograd.grad(arch_loss, distributions.logits))
                average_tensors(dist, gradients)  # each rank's CE is on its slice of the held-out batch
                if not guard.accept(arch_loss, gradients, position):
                    continue
                for layer_logits, layer_gradient in zip(distributions.logits, gradients):
                    layer_logits.grad = layer_gradient
                architecture.step()
                for layer_logits, layer_old, (active, _) in zip(distributions.logits, old, pairs):
                    rescale_pair(layer_logits, layer_old, active)
            else:
                choices, correct = [], []
                # Score with the batch's own BN statistics (train mode, no gradient): the running
                # statistics mix every path the supernet has run and would make the reward noise.
                with torch.no_grad():
                    for _ in range(config.rl_samples):
                        sampled = distributions.sample(sampler)
                        with session.autocast():
                            logits = supernet(inputs, [((index,), index) for index in sampled])
                        choices.append(sampled)
                        correct.append((logits.argmax(1) == labels).sum())
                # Counted over the global batch (every rank's slice), so every rank gets the same rewards;
                # one all-reduce and one wait for the device for all samples, not one per sample.
                counts = all_reduce_sum(dist, torch.stack(correct)).tolist()
                rewards = [reward(count / (labels.shape[0] * dist.world_size), int(network_madds(sampled)),
                                  config.target_madds, config.rl_exponent,
                                  "absolute" if config.penalty == "absolute" else "soft", config.penalty_weight)
                           for count, sampled in zip(counts, choices)]
                if several:
                    rewards = [constrained_reward(count / (labels.shape[0] * dist.world_size), sampled, constraints,
                                                  config) for count, sampled in zip(counts, choices)]
                mean_reward = sum(rewards) / len(rewards)
                arch_loss = reinforce_loss(distributions, choices, rewards, baseline.update(mean_reward))
                architecture.zero_grad(set_to_none=True)
                arch_loss.backward()  # the rewards are the same on every rank: so are these gradients
                if not guard.accept(arch_loss, [logits.grad for logits in distributions.logits], position):
                    continue
                architecture.step()
            distributions.refresh()  # the logits changed: the next draw brings them to the host once
            arch_loss_sum += arch_loss.detach()
            arch_steps += 1
            # The next draw needs finite probabilities: stop here with the usual message, not in the sampler.
            # (This reads the host copy that the next draw would fetch anyway: no extra device sync.)
            if not all(math.isfinite(value) for layer in distributions.host_probabilities() for value in layer):
                require_finite_loss(float("nan"), f"search {config.method}", position, session.out,
                                    f"lower weight_lr (now {config.weight_lr}) or arch_lr, then --resume")

        # -- end of epoch: validate the path the search would return, log, checkpoint -----------------
        epoch += 1
        argmax, best = distributions.argmax(), result_choice()
        best_paths = [((index,), index) for index in best]
        with session.autocast():  # that path's own BN statistics, as SPOS does before evaluating
            recalibrate_batch_norm(supernet, recalibration, lambda inputs: supernet(inputs, best_paths))
        validation_loss, validation_accuracy = session.validation_accuracy(PathModule(supernet, best_paths))
        probabilities = [p.detach() for p in distributions.probabilities()]
        # Means over the global batches, the same on every rank (one all-reduce per epoch).
        loss_sum, arch_loss_sum = all_reduce_mean(dist, torch.stack([loss_sum, arch_loss_sum])).tolist()
        record = {
            "epoch": epoch, "images_seen": epoch * steps_per_epoch * config.batch_size,
            "train_loss": loss_sum / weight_steps if weight_steps else float("nan"),
            "arch_loss": arch_loss_sum / arch_steps if arch_steps else None,
            "validation_loss": validation_loss, "validation_accuracy": validation_accuracy,
            "expected_madds": float(expected_madds(probabilities, madds_tables, fixed_madds)),
            "argmax": list(argmax), "argmax_madds": int(network_madds(argmax)),
            "choice": list(best), "choice_madds": int(network_madds(best)),
            "target_madds": config.target_madds, "lr": lr,
            "epoch_seconds": round(time.perf_counter() - epoch_started, 2),
            "elapsed_seconds": round(run.elapsed(), 2),
        }
        record["choice_blocks"] = supernet.path_network(best).describe()
        if several:
            record.update({f"choice_{c.name}": round(c.cost(best), 3) for c in constraints if c.name != "madds"})
        if guard.enabled:
            record["skipped_nonfinite"] = guard.skipped
        require_finite_loss(record["train_loss"] + (record["arch_loss"] or 0.0), f"search {config.method}",
                            f"epoch {epoch}", session.out, f"lower weight_lr (now {config.weight_lr}) or arch_lr, "
                                                          f"then --resume")
        records.append(record)
        progress.set_postfix(loss=f"{record['train_loss']:.3f}", val=f"{validation_accuracy:.3f}",
                             madds=f"{record['choice_madds'] / 1e6:.1f}M")
        run.log("search.jsonl", record, f"search/{config.method}", epoch,
                {key: value for key, value in record.items() if key != "argmax"})
        run.checkpoint(epoch=epoch)
        if run.stop_requested(epoch=epoch) and epoch < config.epochs:
            run.close()
            return None, supernet, records, None
    run.close()
    check_same_on_all_ranks(dist, {"supernet": supernet.state_dict(), "distributions": distributions.state_dict()},
                            "the supernet weights and architecture parameters")
    if config.pick == "fitted" or not config.fit_to_budget:
        return result_choice(), supernet, records, None

    def acceptable(choice) -> bool:
        if several:
            return within_targets(constraints, choice) and network_madds(choice) >= config.budget_floor * config.target_madds
        return config.budget_floor * config.target_madds <= network_madds(choice) <= config.target_madds

    choice, pick = measured_pick(session, supernet, distributions, result_choice(), acceptable, recalibration)
    return choice, supernet, records, pick
