"""The DEA under a latency target (issue 18): per-layer latency bands from a cell-component table.

With `target_latency_ms`, a cell's latency at a layer is predicted from the table's
cell components (`autospace.latency.keys`: thousands of distinct cells meet in a
run, too many to time one by one). The latency left after the fixed parts (stem,
fixed first block, head, the table's network overhead) is shared among the searchable
layers in proportion to the reference cell's predicted latency there, and each layer
admits cells in a band [cap_floor x L_l, L_l] placed, as the MAdds band is, so that
the open-space cells in it cost `cap_slack` x the layer's share on average.

Latency is then the primary budget and MAdds only a cap (the MAdds band loses its
floor), as in the search (`search/constraints.py`): two floors on two costs that do
not rank cells alike would leave few cells between them. The reference family stays:
the scaled reference is the largest expansion of the reference within both caps (the
cheapest where none fits) and is admitted whatever the bands say.
"""

from __future__ import annotations

import sys
from dataclasses import replace
from typing import Sequence

from autospace.arch.cell import Cell, canonical
from autospace.arch.network import Skeleton
from autospace.arch.pools import calibration_pool
from autospace.latency.keys import fixed_keys, missing_components
from autospace.latency.prediction import cell_latency_ms, fixed_latency_ms
from autospace.latency.table import LatencyTable, load_table
from autospace.errors import AutospaceError
from autospace.evolve.layer_budget import (
    CALIBRATION_CELLS, LayerBudget, cell_madds, centred_cap, reference_family,
)

NANOSECONDS = 1e6  # centred_cap bisects integer costs: latency in ns


def dea_latency_table(path: str | None, skeleton: Skeleton) -> LatencyTable:
    """The table, with the cell components of every searchable layer of `skeleton`: missing ones are
    measured when the table is this CPU's (a note on stderr), else refused in one line."""
    if not path:
        raise AutospaceError("a latency target needs a latency table: give --latency-table TABLE.json (make one "
                             "with `autospace latency-table open:PRESET --device cpu -o TABLE.json`)")
    from autospace.latency.table import require_table_conditions

    table = load_table(path)
    require_table_conditions(table, path)  # a table of other conditions is neither used nor extended here
    slots = skeleton.searchable_slots()
    missing = missing_components(table, slots) + [key for key in fixed_keys(skeleton) if key not in table.entries]
    if not missing:
        return table
    from autospace.runtime.device import hardware_info

    here = hardware_info("cpu")["device_name"]
    if table.device != "cpu" or table.device_name != here:
        raise AutospaceError(
            f"{path} lacks {len(missing)} entries of this skeleton (e.g. {missing[0]!r}) and was measured on "
            f"{table.device} ({table.device_name}), not this machine's cpu ({here}); measure them there with "
            f"`autospace latency-table open:PRESET --device {table.device} --batch-size {table.batch_size} -o {path}`")
    from autospace.latency.cell_timing import measure_cell_components

    print(f"autospace: note: {path} lacks the cell components of this skeleton; measuring them on this CPU "
          f"({here}) and adding them to the table", file=sys.stderr)
    return measure_cell_components(skeleton, "cpu", table.batch_size, path, threads=table.threads,
                                   warmup=table.warmup, precision=table.precision, statistic=table.statistic,
                                   progress=False)


def latency_bands(skeleton: Skeleton, budgets: Sequence[LayerBudget], table: LatencyTable, target_ms: float,
                  reference: Cell, slack: float, floor_fraction: float) -> list[LayerBudget]:
    """`budgets` (the MAdds bands of `layer_budget.layer_budgets`) with a latency band each, the MAdds
    floor dropped and the reference family re-chosen within both caps."""
    fixed = fixed_latency_ms(table, skeleton)
    available = target_ms - fixed
    if available <= 0:
        raise AutospaceError(f"latency target {target_ms} ms is below the fixed part of the skeleton (stem, first "
                             f"block, head and overhead: {fixed:.3f} ms); give a target above {fixed:.3f} ms")
    slots = skeleton.searchable_slots()
    weights = [cell_latency_ms(table, canonical(reference), slot) for slot in slots]
    pool = calibration_pool(CALIBRATION_CELLS)
    family = reference_family(reference)
    banded = []
    for slot, weight, budget in zip(slots, weights, budgets):
        share = slack * available * weight / sum(weights)
        costs = [round(cell_latency_ms(table, cell, slot) * NANOSECONDS) for cell in pool]
        cap = centred_cap(costs, share * NANOSECONDS, floor_fraction) / NANOSECONDS
        floor = floor_fraction * cap
        latency = {cell: cell_latency_ms(table, cell, slot) for cell in family}
        madds = {cell: cell_madds(cell, slot) for cell in family}
        fitting = [cell for cell in family if latency[cell] <= cap and madds[cell] <= budget.cap]
        scaled = max(fitting, key=latency.__getitem__) if fitting else min(family, key=latency.__getitem__)
        members = (scaled,) + tuple(cell for cell in fitting if cell != scaled and latency[cell] >= floor)
        banded.append(replace(budget, floor=0, scaled_reference=scaled, family=members, latency_floor=floor,
                              latency_cap=cap))
    return banded


def layer_latency_models(table: LatencyTable, skeleton: Skeleton) -> list:
    """Per searchable layer, cell -> predicted ms (what `LayerPopulation` admits by)."""
    return [lambda cell, slot=slot: cell_latency_ms(table, cell, slot) for slot in skeleton.searchable_slots()]


def space_latency_summary(fixed_ms: float, layer_ms: Sequence[Sequence[float]], target_ms: float) -> dict:
    """Cheapest, uniform-mean and costliest network of a space in predicted ms, and against the target."""
    if any(len(layer) == 0 for layer in layer_ms):
        raise AutospaceError("every layer needs at least one block to summarise a space's latency")
    cheapest = fixed_ms + sum(min(layer) for layer in layer_ms)
    mean = fixed_ms + sum(sum(layer) / len(layer) for layer in layer_ms)
    costliest = fixed_ms + sum(max(layer) for layer in layer_ms)
    return {"target_latency_ms": target_ms, "cheapest_latency_ms": round(cheapest, 4),
            "uniform_mean_latency_ms": round(mean, 4), "costliest_latency_ms": round(costliest, 4),
            "cheapest_over_target": round(cheapest / target_ms, 3),
            "uniform_mean_over_target": round(mean / target_ms, 3),
            "costliest_over_target": round(costliest / target_ms, 3)}


__all__ = ["dea_latency_table", "latency_bands", "layer_latency_models", "space_latency_summary"]
