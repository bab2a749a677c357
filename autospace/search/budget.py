"""MAdds terms of a search under a budget (DESIGN 2.4, Eq. 6).

A network's MAdds are `fixed` (stem, head, fixed blocks) plus one candidate's
MAdds per searchable layer, so under per-layer categorical distributions the
expected MAdds is linear in the probabilities and differentiable:
E = fixed + sum_l sum_i p_li * madds_li (ProxylessNAS's expected latency, with MAdds).

Everything here takes plain numbers (per-layer candidate MAdds, as from
`autospace.cost.block_cost`), never modules.
"""

from __future__ import annotations

import math
from typing import Sequence

import torch
from torch import Tensor

from autospace.cost.expected import check_candidates, expected_madds
from autospace.errors import AutospaceError

PENALTY_KINDS = ("mul-log", "add-linear", "absolute")


def _format_up(value: int) -> str:
    """MAdds in millions with one decimal, rounded up (so 'at least X' is never below the value)."""
    return f"{math.ceil(value / 1e5) / 10:.1f}M"


def madds_penalized_loss(cross_entropy: Tensor, expected: Tensor, target: int, kind: str = "mul-log",
                         alpha: float = 0.2, beta: float = 0.3, weight: float = 1.0) -> Tensor:
    """The architecture loss with its MAdds term.

    - "mul-log" (ProxylessNAS's latency loss, with MAdds): CE * alpha * (log E / log target) ** beta.
    - "add-linear": CE + weight * E / target. Our choice: E is measured in units of the target, so
      `weight` is scale-free (the same weight means the same pressure at 60M and at 600M MAdds);
      DESIGN's `CE + lambda * E[MAdds]` is this with lambda = weight / target.
    - "absolute" (TuNAS's absolute reward, as a loss): CE + weight * |E / target - 1|: two-sided, it
      pulls a cheap distribution up to the budget as hard as it pulls an expensive one down.

    `expected` is not checked against the host (that would wait for the device each step);
    it is > 1 whenever it comes from `expected_madds` of a real space.
    """
    if kind not in PENALTY_KINDS:
        raise AutospaceError(f"unknown MAdds penalty kind {kind!r}; valid kinds: {', '.join(PENALTY_KINDS)}")
    if not target > 1:
        raise AutospaceError(f"target MAdds must be > 1 (the loss divides by log(target)); got {target}")
    if kind == "mul-log":
        if not alpha > 0:
            raise AutospaceError(f"alpha of the mul-log penalty must be > 0; got {alpha}")
        return cross_entropy * alpha * (torch.log(expected) / math.log(target)) ** beta
    if kind == "absolute":
        return cross_entropy + weight * torch.abs(expected / float(target) - 1.0)
    return cross_entropy + weight * (expected / float(target))


def minimum_madds(candidate_madds: Sequence[Sequence[int]], fixed_madds: int) -> int:
    """MAdds of the smallest network: fixed plus the cheapest candidate of every layer."""
    check_candidates(candidate_madds, fixed_madds)
    return int(fixed_madds) + sum(int(min(values)) for values in candidate_madds)


def maximum_madds(candidate_madds: Sequence[Sequence[int]], fixed_madds: int) -> int:
    """MAdds of the largest network: fixed plus the most expensive candidate of every layer."""
    check_candidates(candidate_madds, fixed_madds)
    return int(fixed_madds) + sum(int(max(values)) for values in candidate_madds)


def check_budget(target: int, candidate_madds: Sequence[Sequence[int]], fixed_madds: int) -> None:
    """Refuse a target that no network of the space can meet."""
    if not target > 0:
        raise AutospaceError(f"target MAdds must be positive, e.g. 60M; got {target}")
    smallest = minimum_madds(candidate_madds, fixed_madds)
    if target < smallest:
        exact = f"{target / 1e6:.1f}" == f"{smallest / 1e6:.1f}"  # 1 decimal would print "18.0M below 18.0M"
        shown = (lambda value: f"{value:,}") if exact else (lambda value: f"{value / 1e6:.1f}M")
        raise AutospaceError(
            f"target {shown(target)} MAdds is below the smallest network this space allows "
            f"({shown(smallest)} MAdds = {fixed_madds / 1e6:.1f}M fixed + the cheapest candidate of each "
            f"of {len(candidate_madds)} layers); raise --target-madds to at least "
            f"{smallest if exact else _format_up(smallest)}")


def reward(accuracy: float, madds: int, target: int, exponent: float, kind: str = "soft",
           weight: float = 0.5) -> float:
    """The RL reward of a sampled network.

    - "soft" (ProxylessNAS-RL / MnasNet): accuracy * (target / madds) ** exponent; with exponent > 0 a
      network above the target is penalised and one below it rewarded (MnasNet's w = -0.07 on
      madds / target is exponent = 0.07 here).
    - "absolute" (TuNAS): accuracy - weight * |madds / target - 1|, two-sided."""
    if not madds > 0:
        raise AutospaceError(f"madds must be positive; got {madds}")
    if not target > 0:
        raise AutospaceError(f"target MAdds must be positive, e.g. 60M; got {target}")
    if kind == "absolute":
        return float(accuracy) - float(weight) * abs(float(madds) / float(target) - 1.0)
    return float(accuracy) * (float(target) / float(madds)) ** float(exponent)


def most_probable_in_band(log_probabilities: Sequence[Sequence[float]], candidate_madds: Sequence[Sequence[int]],
                          fixed_madds: int, target: int, lower: int) -> tuple[int, ...]:
    """The most probable choice within `target`, lifted into [lower, target] when it falls below `lower`
    and some network of the space lies in that band (otherwise the within-target choice).

    The within-target optimum is exact (`most_probable_within_budget`); when it is under `lower`, a
    dynamic programme over MAdds buckets of width target / 5000 keeps, per bucket, the most probable
    partial network that can still end in the band: exact wherever no two partial networks share a
    bucket near the band's edges (always when target <= 5000), and within 0.02% of the target otherwise."""
    choice = most_probable_within_budget(log_probabilities, candidate_madds, fixed_madds, target)
    madds = fixed_madds + sum(values[i] for values, i in zip(candidate_madds, choice))
    if madds >= lower:
        return choice
    layers = len(candidate_madds)
    least, most = [0] * (layers + 1), [0] * (layers + 1)  # MAdds the layers after l can still add
    for layer in range(layers - 1, -1, -1):
        least[layer] = least[layer + 1] + int(min(candidate_madds[layer]))
        most[layer] = most[layer + 1] + int(max(candidate_madds[layer]))
    width = max(1, int(target) // 5000)
    states = {int(fixed_madds) // width: (0.0, int(fixed_madds), None, -1)}
    history = []
    for layer, (scores, values) in enumerate(zip(log_probabilities, candidate_madds)):
        grown: dict[int, tuple[float, int, int | None, int]] = {}
        for key, (score, total, _, _) in states.items():
            for index, value in enumerate(values):
                new_total = total + int(value)
                if new_total + least[layer + 1] > target or new_total + most[layer + 1] < lower:
                    continue
                new_key, new_score = new_total // width, score + float(scores[index])
                kept = grown.get(new_key)
                if kept is None or (new_score, -new_total) > (kept[0], -kept[1]):
                    grown[new_key] = (new_score, new_total, key, index)
        history.append(grown)
        states = grown
    finals = [key for key, (_, total, _, _) in states.items() if lower <= total <= target]
    if not finals:
        return choice
    return trace_back(history, max(finals, key=lambda k: (states[k][0], -states[k][1])))


def most_probable_within_budget(log_probabilities: Sequence[Sequence[float]],
                                candidate_madds: Sequence[Sequence[int]], fixed_madds: int,
                                target: int) -> tuple[int, ...]:
    """The choice (one candidate index per layer) of largest sum_l log p_l[choice_l] among those with
    fixed + sum_l madds_l[choice_l] <= target; exact.

    The per-layer argmax when it fits (so a search that met its budget keeps its result). Otherwise
    a dynamic programme over (MAdds, log-probability) Pareto fronts: after each layer only the partial
    networks that no other one beats on both MAdds and probability are kept, so the front stays small
    (hundreds to thousands of states for 21 layers of 7 candidates) and the answer is the true optimum
    of this multiple-choice knapsack, not a greedy guess. Ties go to fewer MAdds.
    """
    check_candidates(candidate_madds, fixed_madds)
    if len(log_probabilities) != len(candidate_madds):
        raise AutospaceError(f"{len(log_probabilities)} log-probability vectors but {len(candidate_madds)} "
                             f"layers of candidate MAdds; give one of each per searchable layer")
    for layer, (scores, values) in enumerate(zip(log_probabilities, candidate_madds)):
        if len(scores) != len(values):
            raise AutospaceError(f"layer {layer}: {len(scores)} log-probabilities but {len(values)} candidates")
    check_budget(target, candidate_madds, fixed_madds)
    argmax = tuple(max(range(len(scores)), key=lambda i, s=scores: (s[i], -i)) for scores in log_probabilities)
    if fixed_madds + sum(values[i] for values, i in zip(candidate_madds, argmax)) <= target:
        return argmax

    # Each state: (madds, score, parent state of the previous layer, candidate index of this layer).
    fronts: list[list[tuple[int, float, int, int]]] = []
    front = [(int(fixed_madds), 0.0, -1, -1)]
    room = [0] * (len(candidate_madds) + 1)  # least MAdds the layers after l still need
    for layer in range(len(candidate_madds) - 1, -1, -1):
        room[layer] = room[layer + 1] + int(min(candidate_madds[layer]))
    for layer, (scores, values) in enumerate(zip(log_probabilities, candidate_madds)):
        limit = target - room[layer + 1]
        grown = [(madds + int(values[index]), score + float(scores[index]), parent, index)
                 for parent, (madds, score, _, _) in enumerate(front)
                 for index in range(len(values)) if madds + int(values[index]) <= limit]
        grown.sort(key=lambda state: (state[0], -state[1]))
        front, best = [], -math.inf
        for state in grown:  # ascending MAdds: keep a state only if it is more probable than every cheaper one
            if state[1] > best:
                front.append(state)
                best = state[1]
        fronts.append(front)
    return trace_back(fronts, max(range(len(front)), key=lambda k: (front[k][1], -front[k][0])))


def trace_back(layers: Sequence, last) -> tuple[int, ...]:
    """The choice ending in state `last` of the final layer, read back through the states' parents.
    `layers[l]` maps a state key to (..., parent key in layers[l - 1], candidate index of layer l)."""
    picked = []
    for states in reversed(layers):
        *_, parent, index = states[last]
        picked.append(index)
        last = parent
    return tuple(reversed(picked))
