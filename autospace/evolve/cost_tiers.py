"""Cost tiers: where each layer's cells may cost, so that fitness, not a band, chooses across costs.

A layer's population spans the costs a network in the budget range can use there: at least the
manual space's range in that layer, from the cheapest reference-family member (the e1 reference,
cheaper than the manual k3e3 block) to the costliest of the manual k7e6 block and the family.
That range is cut into `tiers` tiers of equal MAdds ratio; tournaments, mutation and removal act
within a tier, so no tier drifts cheap or dear, and the top cells of every tier are exported.
The search, under the network's budget, then allocates the budget across layers.

The reference family (the prior) grows to every expansion (1, 3, 6) x one, two and three stacked
dwconv3x3 (receptive fields 3, 5, 7: what the manual space's k3/k5/k7 kernels see); each member
is seeded in the tier its cost falls in.
"""

from __future__ import annotations

import math
from typing import Sequence

from autospace.arch.blocks import InvertedResidual
from autospace.arch.cell import Cell, canonical, reference_cell
from autospace.arch.network import LayerSlot, Skeleton
from autospace.arch.ops import CELL_EXPANSIONS, EDGES
from autospace.cost.analytic import block_cost
from autospace.errors import AutospaceError
from autospace.evolve.layer_budget import LayerBudget, cell_madds, fixed_madds, reference_family

STACK_DEPTHS = (1, 2, 3)         # stacked dwconv3x3: receptive fields 3, 5, 7
CHEAPEST_TIER_FLOOR = 0.5        # tier 0 also admits cells down to half the cheapest family member


def stacked_reference(expansion: int, depth: int) -> Cell:
    """The inverted residual cell with `depth` dwconv3x3 in a row (0->1, 1->2, 2->3), the path
    closed by identities: depth 1 is the reference DAG itself."""
    if depth not in STACK_DEPTHS:
        raise AutospaceError(f"stack depth {depth!r}; allowed: {', '.join(map(str, STACK_DEPTHS))}")
    ops = ["zero"] * len(EDGES)
    chain = [(0, 1), (1, 2), (2, 3)][:depth]
    for edge in chain:
        ops[EDGES.index(edge)] = "dwconv3x3"
    if depth < 3:
        ops[EDGES.index((depth, 3))] = "identity"
    return canonical(Cell(ops=tuple(ops), expansion=expansion, aggregation="sum"))


def stacked_family(reference: Cell, deepest: int = STACK_DEPTHS[-1]) -> list[Cell]:
    """The prior: with the inverted-residual reference, every expansion x stack depth up to `deepest`
    (9 cells with 3, largest first); with another reference, that reference at every expansion."""
    if canonical(reference) != canonical(reference_cell()):
        return reference_family(reference)
    return [stacked_reference(expansion, depth) for expansion in sorted(CELL_EXPANSIONS, reverse=True)
            for depth in STACK_DEPTHS if depth <= deepest]


def manual_range(slot: LayerSlot) -> tuple[int, int]:
    """MAdds of the manual space's cheapest (k3e3) and costliest (k7e6) blocks at this layer."""
    return (block_cost(InvertedResidual(kernel=3, expansion=3), slot).madds,
            block_cost(InvertedResidual(kernel=7, expansion=6), slot).madds)


def tier_bounds(low: int, high: int, tiers: int) -> list[tuple[int, int]]:
    """`tiers` disjoint integer ranges [floor, cap] covering [low, high] in equal MAdds ratios."""
    if tiers < 1 or not 0 < low <= high:
        raise AutospaceError(f"cannot cut [{low}, {high}] MAdds into {tiers} tiers")
    edges = [low * (high / low) ** (t / tiers) for t in range(tiers + 1)]
    bounds = []
    for t in range(tiers):
        floor = int(round(edges[t])) if t else int(CHEAPEST_TIER_FLOOR * low)
        cap = int(round(edges[t + 1])) - (0 if t == tiers - 1 else 1)
        bounds.append((floor if not bounds else bounds[-1][1] + 1, max(cap, floor)))
    return bounds


def layer_tiers(slot: LayerSlot, reference: Cell, tiers: int, deepest: int = STACK_DEPTHS[-1]) -> list[LayerBudget]:
    """One LayerBudget per tier of this layer: its [floor, cap], the family members whose cost falls in
    it, and its anchor (`scaled_reference`, the centre of the d_H <= delta constraint): the tier's
    family member nearest the tier's middle in cost ratio, or the family member nearest the tier."""
    family = stacked_family(reference, deepest)
    costs = {cell: cell_madds(cell, slot) for cell in family}
    cheapest_manual, costliest_manual = manual_range(slot)
    low = min(min(costs.values()), cheapest_manual)
    high = max(max(costs.values()), costliest_manual)
    budgets = []
    for floor, cap in tier_bounds(low, high, tiers):
        members = tuple(cell for cell in family if floor <= costs[cell] <= cap)
        middle = (max(floor, 1) * cap) ** 0.5
        nearest = min(members or family, key=lambda cell: abs(_log_ratio(costs[cell], middle)))
        members = (nearest,) + tuple(cell for cell in members if cell != nearest) if members else ()
        budgets.append(LayerBudget(floor=floor, cap=cap, scaled_reference=nearest, family=members))
    return budgets


def skeleton_tiers(skeleton: Skeleton, reference: Cell, tiers: int,
                   deepest: int = STACK_DEPTHS[-1]) -> list[list[LayerBudget]]:
    return [layer_tiers(slot, reference, tiers, deepest) for slot in skeleton.searchable_slots()]


def tier_sizes(population_size: int, budgets: Sequence[LayerBudget], minimum_learned: int = 2) -> list[int]:
    """Individuals per tier: an even share of `population_size`, and at least the tier's family plus
    `minimum_learned` cells of the open space (a tier of family members alone would learn nothing)."""
    share = -(-population_size // len(budgets))
    return [max(share, len(budget.family) + minimum_learned) for budget in budgets]


def _log_ratio(value: float, reference: float) -> float:
    return math.log(max(value, 1) / max(reference, 1))


def check_tiered_budget(skeleton: Skeleton, reference: Cell, budget_madds: int,
                        deepest: int = STACK_DEPTHS[-1]) -> None:
    """Refuse a budget no network of a tiered space can meet: below the skeleton's fixed part, or below the
    fixed part plus the cheapest family member of every layer a search cannot skip (no residual)."""
    fixed = fixed_madds(skeleton)
    if budget_madds <= fixed:
        raise AutospaceError(
            f"budget {budget_madds:,} MAdds is below the fixed part of the skeleton (stem, first block, "
            f"head: {fixed:,} MAdds); give a budget above {fixed:,}")
    family = stacked_family(reference, deepest)
    smallest = fixed + sum(min(cell_madds(cell, slot) for cell in family)
                           for slot in skeleton.searchable_slots() if not slot.has_residual)
    if budget_madds < smallest:
        raise AutospaceError(
            f"budget {budget_madds:,} MAdds is below the smallest network of the space ({smallest:,} MAdds: the fixed "
            f"part and the cheapest reference cell of every layer that cannot be skipped; no layer's MAdds cap "
            f"goes lower); raise the budget to at least {smallest:,}")
