"""Where each layer's cells may cost: a MAdds band per layer, and the reference family kept in it.

The budget left after the fixed parts (stem, fixed first block, head) is shared
among the searchable layers in proportion to the reference cell's MAdds there.
A layer admits cells whose MAdds lie in [floor x tau_l, tau_l], tau_l = slack x
its share: a band, not just a cap, so that mutation cannot drift to ever cheaper
cells and a network drawn from the learned space costs about the budget.

The reference family (the reference cell at every expansion ratio) is the prior:
its members in the band, and always the *scaled reference* (the largest
expansion of the reference that fits under tau_l, or the cheapest one where
none fits), are admissible whatever the band says.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Sequence

from autospace.arch.blocks import CellBlock
from autospace.arch.cell import Cell, canonical
from autospace.arch.network import LayerSlot, Skeleton
from autospace.arch.ops import CELL_EXPANSIONS
from autospace.arch.pools import calibration_pool
from autospace.cost.analytic import block_cost, head_cost, stem_cost
from autospace.errors import AutospaceError


def cell_madds(cell: Cell, slot: LayerSlot) -> int:
    return block_cost(CellBlock(cell), slot).madds


def fixed_madds(skeleton: Skeleton) -> int:
    """MAdds of what no search changes: stem, fixed first block, head and classifier."""
    slots = skeleton.slots()
    fixed = stem_cost(skeleton) + head_cost(skeleton, slots[-1].out_channels, slots[-1].output_size)
    if skeleton.first_block is not None:
        fixed += block_cost(skeleton.first_block, slots[0])
    return fixed.madds


@dataclass(frozen=True)
class LayerBudget:
    floor: int                 # cells cheaper than this are not admitted (the reference family aside)
    cap: int                   # tau_l: no admitted cell costs more
    scaled_reference: Cell     # the largest expansion of the reference within the cap
    family: tuple[Cell, ...]   # reference-family members admitted here (scaled reference first)
    latency_floor: float = 0.0        # with a latency target (`latency_budget`): the band on predicted ms
    latency_cap: float | None = None

    def admits(self, cell: Cell, madds: int, latency_ms: float | None = None) -> bool:
        in_latency = self.latency_cap is None or (latency_ms is not None
                                                  and self.latency_floor <= latency_ms <= self.latency_cap)
        return (self.floor <= madds <= self.cap and in_latency) or cell in self.family


def reference_family(reference: Cell) -> list[Cell]:
    """The reference cell at every expansion ratio, largest expansion first."""
    family = []
    for expansion in sorted(CELL_EXPANSIONS, reverse=True):
        cell = canonical(replace(reference, expansion=expansion))
        if cell not in family:
            family.append(cell)
    return family


CALIBRATION_CELLS = 600  # random cells per layer whose costs place the band


def centred_cap(costs: Sequence[int], share: float, floor_fraction: float) -> int:
    """The cap tau such that the cells costing [floor x tau, tau] have mean cost `share`
    (the admitted mean grows with tau; bisection over the pool's costs)."""
    ordered = sorted(costs)

    def admitted_mean(cap: float) -> float:
        inside = [c for c in ordered if floor_fraction * cap <= c <= cap]
        return sum(inside) / len(inside) if inside else cap

    low, high = share, max(ordered[-1], share) * 2.0
    for _ in range(60):
        middle = (low + high) / 2
        if admitted_mean(middle) < share:
            low = middle
        else:
            high = middle
    return int(high)


def layer_budgets(skeleton: Skeleton, budget_madds: int, reference: Cell, slack: float,
                  floor_fraction: float, skipped_share: float = 0.0) -> list[LayerBudget]:
    """Per searchable layer, its MAdds band and the reference-family members it admits.

    The band [floor x tau_l, tau_l] is placed so that the open-space cells it admits cost
    `slack` x the layer's share on average (measured on a fixed sample of cells): a population
    drawn from it, and so the exported space, costs about the budget.

    `skipped_share` is the share of the skippable layers (those with a residual, where the search
    may place the zero block) that the budget assumes the search skips: their reference cost leaves
    the denominator of the shares, so every layer's band is that of a network holding fewer
    blocks, and wider cells. 0: every layer holds a cell; 1: only the layers that change stride
    or width are paid for (at a small budget the manual-space search skips every skippable layer),
    and the space's uniform-mean network costs more than the budget."""
    available = budget_madds - fixed_madds(skeleton)
    if available <= 0:
        fixed = fixed_madds(skeleton)
        raise AutospaceError(
            f"budget {budget_madds:,} MAdds is below the fixed part of the skeleton (stem, first block, "
            f"head: {fixed:,} MAdds); give a budget above {fixed:,}")
    slots = skeleton.searchable_slots()
    weights = [cell_madds(canonical(reference), slot) for slot in slots]
    total = sum(weight * (1.0 - skipped_share if slot.has_residual else 1.0) for slot, weight in zip(slots, weights))
    family = reference_family(reference)
    pool = calibration_pool(CALIBRATION_CELLS)
    budgets = []
    for slot, weight in zip(slots, weights):
        share = slack * available * weight / total
        cap = centred_cap([cell_madds(cell, slot) for cell in pool], share, floor_fraction)
        floor = int(floor_fraction * cap)
        costs = {cell: cell_madds(cell, slot) for cell in family}
        fitting = [cell for cell in family if costs[cell] <= cap]
        # The prior stays: where even the cheapest member is over the cap it is admitted all the same
        # (the band stays where the budget puts it, so the space stays centred on the budget).
        scaled = max(fitting, key=costs.__getitem__) if fitting else min(family, key=costs.__getitem__)
        members = (scaled,) + tuple(cell for cell in fitting if cell != scaled and costs[cell] >= floor)
        budgets.append(LayerBudget(floor=floor, cap=cap, scaled_reference=scaled, family=members))
    return budgets


def space_madds_summary(fixed: int, layer_madds: Sequence[Sequence[int]], budget_madds: int,
                        skippable: Sequence[bool]) -> dict:
    """Cheapest, uniform-mean and costliest network of a space (one block per layer, each layer's
    listed blocks equally likely), in MAdds and as a fraction of the budget; and the smallest
    network a search can reach, which also skips every `skippable` (residual) layer."""
    if any(len(layer) == 0 for layer in layer_madds):
        raise AutospaceError("every layer needs at least one block to summarise a space's MAdds")
    if len(skippable) != len(layer_madds):
        raise AutospaceError(f"{len(skippable)} skippable flags for {len(layer_madds)} layers")
    cheapest = fixed + sum(min(layer) for layer in layer_madds)
    mean = fixed + sum(sum(layer) / len(layer) for layer in layer_madds)
    costliest = fixed + sum(max(layer) for layer in layer_madds)
    smallest = fixed + sum(0 if skip else min(layer) for layer, skip in zip(layer_madds, skippable))
    return {"budget_madds": int(budget_madds), "cheapest_madds": int(cheapest),
            "uniform_mean_madds": int(round(mean)), "costliest_madds": int(costliest),
            "smallest_searchable_madds": int(smallest),
            "cheapest_over_budget": round(cheapest / budget_madds, 3),
            "uniform_mean_over_budget": round(mean / budget_madds, 3),
            "costliest_over_budget": round(costliest / budget_madds, 3)}


