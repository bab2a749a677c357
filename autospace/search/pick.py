"""The final pick of a gradient or RL search: measured, not fitted (DESIGN 2.4).

Fitting by log-probability alone lets a rule decide the network: with spread distributions the
most probable network inside the budget is whatever the MAdds cap leaves. The measured pick
draws candidates inside the target from the final distributions (the most probable one first,
then samples), scores each with the shared weights on held-out images after BN recalibration on
that path, and returns the best; the same for every space. Everything here uses the held-out
split of the training set.
"""

from __future__ import annotations

import math
from typing import Callable, Sequence

import torch

from autospace.search.distribution import LayerDistributions

PICK_METHODS = ("measured", "fitted")
PICK_SAMPLE_TRIES = 400  # draws per wanted candidate before the band is taken as (nearly) empty


def draw_candidates(distributions: LayerDistributions, first: Sequence[int], count: int,
                    acceptable: Callable[[tuple[int, ...]], bool], generator: torch.Generator) -> list[tuple[int, ...]]:
    """`first` (the most probable acceptable network), then up to `count - 1` distinct networks drawn
    from the distributions that are `acceptable` (inside the target band); fewer when the band holds
    few networks the distributions reach."""
    candidates = [tuple(first)]
    for _ in range(PICK_SAMPLE_TRIES * count):
        if len(candidates) >= count:
            break
        choice = tuple(distributions.sample(generator))
        if choice not in candidates and acceptable(choice):
            candidates.append(choice)
    return candidates


def score_candidates(candidates: Sequence[tuple[int, ...]], score: Callable[[tuple[int, ...]], float]) -> list[float]:
    return [float(score(choice)) for choice in candidates]


def pick_record(candidates: Sequence[tuple[int, ...]], scores: Sequence[float], log_probabilities: Sequence[float],
                madds: Sequence[int], params: Sequence[int], blocks: Sequence[list], images: int) -> dict:
    """result.json's "pick": every candidate with its cost, log-probability and held-out top-1 (%),
    and which one was returned (the best score; ties go to the more probable, listed first)."""
    best = max(range(len(candidates)), key=lambda i: (scores[i], -i))
    return {"method": "measured", "heldout_images": images, "picked": best,
            "candidates": [{"choice": list(choice), "madds": int(cost), "params": int(size),
                            "log_probability": round(float(logp), 4) if math.isfinite(logp) else None,
                            "heldout_top1": round(100.0 * float(value), 2), "blocks": described}
                           for choice, value, logp, cost, size, described
                           in zip(candidates, scores, log_probabilities, madds, params, blocks)]}


def measured_pick(session, supernet, distributions: LayerDistributions, first: Sequence[int],
                  acceptable: Callable[[tuple[int, ...]], bool], recalibration: list) -> tuple[tuple[int, ...], dict]:
    """Draw up to `pick_candidates` networks (`draw_candidates`), score each on `pick_images` class-balanced
    held-out images after recalibrating BN on its path, and return the best with the `pick_record`.
    Its own generator (seed + 17): the pick is a function of the final state, so a run killed during
    it repeats it exactly on --resume."""
    from autospace.cost import network_cost
    from autospace.nn.block_supernet import recalibrate_batch_norm
    from autospace.train.session import PathModule

    config = session.config
    generator = torch.Generator().manual_seed(config.seed + 17)
    candidates = draw_candidates(distributions, first, config.pick_candidates, acceptable, generator)
    batches = max(1, math.ceil(config.pick_images / config.batch_size))

    def score(choice: tuple[int, ...]) -> float:
        paths = [((index,), index) for index in choice]
        with session.autocast():
            recalibrate_batch_norm(supernet, recalibration, lambda inputs: supernet(inputs, paths))
        return session.validation_accuracy(PathModule(supernet, paths), batches)[1]

    scores = score_candidates(candidates, score)
    log_probabilities = distributions.host_log_probabilities()
    networks = [supernet.path_network(choice) for choice in candidates]
    costs = [network_cost(network) for network in networks]
    images = min(batches * config.batch_size, int(session.validation_indices.numel()))
    record = pick_record(candidates, scores,
                         [sum(layer[index] for layer, index in zip(log_probabilities, choice)) for choice in candidates],
                         [cost.madds for cost in costs], [cost.params for cost in costs],
                         [network.describe() for network in networks], images)
    return candidates[record["picked"]], record
