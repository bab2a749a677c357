"""Several hardware budgets at once (DESIGN 2.7): MAdds, latency from a lookup table, parameters.

Each is a `Constraint`: per searchable layer the cost of every candidate, a fixed
cost (stem, fixed blocks, head) and a target. All three are sums over layers, so
what `budget.py` does for MAdds (expected cost under the distributions, the most
probable network within the target) holds for each. The *primary* constraint is
the one the search aims at (its penalty and the `budget_floor` band): latency when
a latency target is given, else MAdds; the others are caps (one-sided terms, and
hard limits when the result is fitted).

Latency is held in microseconds, so that `madds_penalized_loss`'s log terms see
numbers well above 1; the dynamic programmes work on integer costs (MAdds and
params as they are, latency in nanoseconds rounded up, the targets down, so that
a choice they accept is within every target in floating point too).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

from autospace.errors import AutospaceError
from autospace.search.budget import most_probable_in_band, trace_back

UNITS = {"madds": ("MAdds", 1.0), "latency_us": ("us", 1000.0), "params": ("params", 1.0)}  # name: unit, DP scale


@dataclass(frozen=True)
class Constraint:
    name: str                                  # madds, latency_us or params
    candidates: tuple[tuple[float, ...], ...]  # per searchable layer, per candidate
    fixed: float
    target: float
    note: str = ""  # how far to trust the costs (a latency table's calibration and noise)

    def cost(self, choice: Sequence[int]) -> float:
        return self.fixed + sum(row[index] for row, index in zip(self.candidates, choice))

    def smallest(self) -> float:
        return self.fixed + sum(min(row) for row in self.candidates)

    def integer_tables(self) -> tuple[list[list[int]], int, int]:
        scale = UNITS[self.name][1]
        return ([[math.ceil(value * scale - 1e-9) for value in row] for row in self.candidates],
                math.ceil(self.fixed * scale - 1e-9), math.floor(self.target * scale + 1e-9))


def constraint(name: str, candidates, fixed: float, target: float) -> Constraint:
    rows = tuple(tuple(float(value) for value in row) for row in candidates)
    made = Constraint(name, rows, float(fixed), float(target))
    if not made.target > 0:
        raise AutospaceError(f"the {name} target must be > 0; got {target}")
    if made.smallest() > made.target:
        raise AutospaceError(
            f"target {_shown(name, made.target)} is below the smallest network this space allows "
            f"({_shown(name, made.smallest())}); raise it to at least {_shown(name, made.smallest())}")
    return made


def _shown(name: str, value: float) -> str:
    if name == "latency_us":
        return f"{value / 1000:.3f} ms"
    if name == "madds":
        return f"{value / 1e6:.2f}M MAdds"
    return f"{value:,.0f} params"


def primary(constraints: Sequence[Constraint]) -> Constraint:
    return next((c for c in constraints if c.name == "latency_us"), constraints[0])


def within(constraints: Sequence[Constraint], choice: Sequence[int], tolerance: float = 0.0) -> bool:
    return all(c.cost(choice) <= c.target * (1 + tolerance) for c in constraints)


def search_constraints(config, supernet) -> list[Constraint]:
    """MAdds (always), latency (with `target_latency_ms`) and params (with `target_params`) of a supernet's
    choices. A latency table missing entries of this space is extended first when it was measured on this
    machine's CPU (a note on stderr), else refused."""
    from autospace.cost.analytic import block_cost, head_cost, stem_cost

    skeleton, choices = supernet.skeleton, supernet.choices
    found = [constraint("madds", supernet.candidate_madds(), supernet.fixed_madds(), config.target_madds)]
    if config.target_latency_ms is not None:
        from autospace.latency.timing import latency_table_for

        table = latency_table_for(config.latency_table, supernet.space)
        from autospace.latency.prediction import candidate_latencies_ms, fixed_latency_ms

        from dataclasses import replace

        from autospace.latency.prediction import trust_note

        found.append(replace(constraint("latency_us", [[1000 * v for v in row] for row in
                                                       candidate_latencies_ms(table, skeleton, choices)],
                                        1000 * fixed_latency_ms(table, skeleton), 1000 * config.target_latency_ms),
                             note=trust_note(table)))
    if config.target_params is not None:
        slots = skeleton.slots()
        fixed = stem_cost(skeleton).params + head_cost(skeleton, slots[-1].out_channels, slots[-1].output_size).params
        fixed += sum(block_cost(skeleton.first_block, slot).params for slot in slots if not slot.searchable)
        found.append(constraint("params", [[block_cost(block, slot).params for block in blocks] for slot, blocks
                                           in zip(skeleton.searchable_slots(), choices)], fixed, config.target_params))
    return found


def most_probable_within(log_probabilities: Sequence[Sequence[float]], constraints: Sequence[Constraint],
                         floor: float = 0.0) -> tuple[int, ...]:
    """The most probable choice within every target, lifted into [floor x target, target] of the primary
    constraint when one exists there. One constraint: `budget.most_probable_in_band` (exact). Several: a
    dynamic programme over buckets of every constraint's cost (width target / 1000 each), keeping the most
    probable partial network per bucket: always within every target, exact when no two partial networks
    share a bucket (integer costs below 1000, as in the tests)."""
    lead = primary(constraints)
    tables = {id(c): c.integer_tables() for c in constraints}
    if len(constraints) == 1:
        costs, fixed, target = tables[id(lead)]
        return most_probable_in_band(log_probabilities, costs, fixed, target, int(floor * target))
    argmax = tuple(max(range(len(s)), key=lambda i, s=s: (s[i], -i)) for s in log_probabilities)
    ordered = [lead] + [c for c in constraints if c is not lead]
    data = [tables[id(c)] for c in ordered]
    if all(fixed + sum(row[i] for row, i in zip(costs, argmax)) <= target for costs, fixed, target in data):
        lead_costs, lead_fixed, lead_target = data[0]
        if lead_fixed + sum(row[i] for row, i in zip(lead_costs, argmax)) >= floor * lead_target:
            return argmax
    for lower in ([int(floor * data[0][2])] if floor > 0 else []) + [0]:
        choice = _bucket_programme(log_probabilities, data, lower)
        if choice is not None:
            return choice
    raise AutospaceError("no network of this space meets every target at once (MAdds, latency, params); "
                         "loosen one of them")


def _bucket_programme(log_probabilities, data, lower: int):
    layers = len(log_probabilities)
    least = [[0] * (layers + 1) for _ in data]
    most = [0] * (layers + 1)
    for k, (costs, _, _) in enumerate(data):
        for layer in range(layers - 1, -1, -1):
            least[k][layer] = least[k][layer + 1] + min(costs[layer])
            if k == 0:
                most[layer] = most[layer + 1] + max(costs[layer])
    widths = [max(1, target // 1000) for _, _, target in data]
    start = tuple(fixed for _, fixed, _ in data)
    states = {tuple(t // w for t, w in zip(start, widths)): (0.0, start, None, -1)}
    history = []
    for layer, scores in enumerate(log_probabilities):
        grown = {}
        for key, (score, totals, _, _) in states.items():
            for index in range(len(scores)):
                new = tuple(t + data[k][0][layer][index] for k, t in enumerate(totals))
                if any(new[k] + least[k][layer + 1] > data[k][2] for k in range(len(data))):
                    continue
                if new[0] + most[layer + 1] < lower:
                    continue
                new_key = tuple(t // w for t, w in zip(new, widths))
                new_score = score + float(scores[index])
                kept = grown.get(new_key)
                if kept is None or (new_score, -new[0]) > (kept[0], -kept[1][0]):
                    grown[new_key] = (new_score, new, key, index)
        history.append(grown)
        states = grown
    finals = [key for key, (_, totals, _, _) in states.items() if totals[0] >= lower]
    if not finals:
        return None
    return trace_back(history, max(finals, key=lambda k: (states[k][0], -states[k][1][0])))


def index_sampler_within(constraints: Sequence[Constraint], rejection_tries: int = 50):
    """Uniform index tuples within every target: rejection first, then a sequential draw in random layer
    order among the candidates that leave room for the cheapest choice of every layer not yet drawn."""
    def sample(rng) -> tuple[int, ...]:
        layers = len(constraints[0].candidates)
        for _ in range(rejection_tries):
            choice = tuple(rng.randrange(len(row)) for row in constraints[0].candidates)
            if within(constraints, choice):
                return choice
        order = list(range(layers))
        rng.shuffle(order)
        room = [c.target - c.smallest() for c in constraints]
        choice = [0] * layers
        for layer in order:
            extra = [[row[i] - min(row) for i in range(len(row))] for row in (c.candidates[layer] for c in constraints)]
            allowed = [i for i in range(len(extra[0])) if all(e[i] <= r + 1e-9 for e, r in zip(extra, room))]
            if not allowed:  # the cheapest candidates differ between constraints: the least overshoot
                allowed = [min(range(len(extra[0])), key=lambda i: max(e[i] - r for e, r in zip(extra, room)))]
            choice[layer] = rng.choice(allowed)
            room = [r - e[choice[layer]] for r, e in zip(room, extra)]
        return tuple(choice)

    return sample


def constraint_summary(constraints: Sequence[Constraint], choice: Sequence[int]) -> dict:
    """What result.json states beyond MAdds: predicted latency and params against their targets."""
    summary = {}
    for c in constraints:
        if c.name == "latency_us":
            summary.update({"predicted_latency_ms": round(c.cost(choice) / 1000, 4),
                            "target_latency_ms": c.target / 1000,
                            "latency_over_target": round(c.cost(choice) / c.target, 4),
                            "latency_trust": c.note})
        elif c.name == "params":
            summary.update({"target_params": int(c.target), "params_over_target": round(c.cost(choice) / c.target, 4)})
    summary["within_all_targets"] = within(constraints, choice)
    return summary


def constrained_arch_loss(cross_entropy, probabilities, constraints: Sequence[Constraint], config):
    """ProxylessNAS-G's architecture loss under several budgets: the configured penalty on the primary
    constraint's expected cost (as for MAdds alone), plus `penalty_weight * max(0, E/T - 1)` per cap."""
    import torch

    from autospace.search.budget import expected_madds, madds_penalized_loss

    lead = primary(constraints)
    loss = madds_penalized_loss(cross_entropy, expected_madds(probabilities, lead.candidates, lead.fixed),
                                lead.target, config.penalty, config.penalty_alpha, config.penalty_beta,
                                config.penalty_weight)
    for cap in constraints:
        if cap is not lead:
            expected = expected_madds(probabilities, cap.candidates, cap.fixed)
            loss = loss + config.penalty_weight * torch.relu(expected / cap.target - 1.0)
    return loss


def constrained_reward(accuracy: float, choice: Sequence[int], constraints: Sequence[Constraint], config) -> float:
    """ProxylessNAS-RL's reward under several budgets: the configured reward on the primary constraint,
    less `penalty_weight * max(0, cost/T - 1)` per cap."""
    from autospace.search.budget import reward

    lead = primary(constraints)
    value = reward(accuracy, lead.cost(choice), lead.target, config.rl_exponent,
                   "absolute" if config.penalty == "absolute" else "soft", config.penalty_weight)
    return value - sum(config.penalty_weight * max(0.0, cap.cost(choice) / cap.target - 1.0)
                       for cap in constraints if cap is not lead)
