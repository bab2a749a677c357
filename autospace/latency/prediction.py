"""Predicted latency from a table (DESIGN 2.7), plain data: a network's latency is the table's
calibration (`table.Calibration`, intercept + slope * sum) applied to the sum of its entries.

Blocks are looked up whole (a multi-branch block without its own entry is the sum
of its branches'); an open-space cell is predicted from its components times its
layer's scale (`keys.py`). Under per-layer distributions the expected latency is
linear in the probabilities, exactly like expected MAdds.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Sequence

from autospace.arch.blocks import Block, CellBlock, MultiBranch, canonical_block
from autospace.arch.cell import Cell
from autospace.arch.network import LayerSlot
from autospace.errors import AutospaceError
from autospace.latency.keys import block_key, cell_components, fixed_keys, scale_key
from autospace.latency.table import OVERHEAD_KEY, LatencyTable


# ---- blocks and networks -------------------------------------------------------------------------

def _missing(table: LatencyTable, key: str, where: str) -> AutospaceError:
    return AutospaceError(
        f"the latency table has no entry for {where} ({key!r}); measure it with `autospace latency-table "
        f"SPACE --device {table.device} --batch-size {table.batch_size} -o TABLE.json` (an existing table is "
        f"extended)")


def entry_ms(table: LatencyTable, key: str, where: str = "a module") -> float:
    entry = table.entries.get(key)
    if entry is None:
        raise _missing(table, key, where)
    return entry.value(table.statistic)


def block_latency_ms(table: LatencyTable, block: Block, slot: LayerSlot) -> float:
    """A block's entry; an empty block costs 0. A multi-branch block without its own entry is the sum of
    its branches' entries (the mean of the branches is cheap next to them)."""
    if block.is_empty():
        return 0.0
    key = block_key(block, slot)
    if key in table.entries:
        return slope(table) * table.entries[key].value(table.statistic)
    block = canonical_block(block)
    if isinstance(block, MultiBranch):
        return sum(block_latency_ms(table, branch, slot) for branch in block.branches)
    raise _missing(table, key, f"layer {slot.index}")


def slope(table: LatencyTable) -> float:
    """What each block entry is multiplied by: the calibration's slope (1 without one)."""
    return table.calibration.slope if table.calibration is not None else 1.0


def fixed_latency_ms(table: LatencyTable, network) -> float:
    """Stem, fixed blocks and head; with a calibration, its intercept plus its slope times their entries
    (so a network's prediction is the calibration applied to the sum of its entries, and stays linear in
    per-layer probabilities), else plus the table's per-network overhead entry when it has one."""
    fixed = sum(entry_ms(table, key, "the stem, fixed block or head") for key in fixed_keys(network))
    if table.calibration is not None:
        return table.calibration.apply(fixed)
    overhead = table.entries[OVERHEAD_KEY].value(table.statistic) if OVERHEAD_KEY in table.entries else 0.0
    return overhead + fixed


def entries_sum_ms(table: LatencyTable, network) -> float:
    """The plain sum of a network's block, stem and head entries: what a calibration maps to a whole pass."""
    uncalibrated = replace(table, calibration=None, entries={key: entry for key, entry in table.entries.items()
                                                             if key != OVERHEAD_KEY})
    return network_latency_ms(uncalibrated, network)


def network_latency_ms(table: LatencyTable, network) -> float:
    """Predicted latency of a Network: the sum of its entries."""
    searchable = sum(block_latency_ms(table, layer.block, slot)
                     for layer, slot in zip(network.layers, network.slots()) if slot.searchable)
    return fixed_latency_ms(table, network) + searchable


def candidate_latencies_ms(table: LatencyTable, skeleton, choices: Sequence[Sequence[Block]]) -> list[list[float]]:
    """Per searchable layer of `skeleton`, the entry of each block of `choices[l]`."""
    return [[block_latency_ms(table, block, slot) for block in blocks]
            for slot, blocks in zip(skeleton.searchable_slots(), choices)]


def trust_note(table: LatencyTable) -> str:
    """How far to trust the table's predictions, in one sentence: its calibration's error on the whole
    networks it was fitted on, the measurement's own round-to-round noise (a prediction cannot beat it),
    and whether the machine's drift since the table was made can be measured (its anchors), or that the
    table predates calibration."""
    if table.calibration is None:
        return ("an uncalibrated table (the sum of its entries plus an overhead entry; measured on another CPU "
                "such tables under-predicted by ~7%): measure a new one with `autospace latency-table`")
    drift = (f"a virtual CPU's speed also moves over minutes (a 2-core Xeon VM: -19% to +11%): `autospace profile "
             f"--latency-table` times the table's {len(table.anchors)} anchor networks beside a network and scales "
             f"the prediction by that drift" if table.anchors else
             "a virtual CPU's speed also moves over minutes (a 2-core Xeon VM: -19% to +11%), which this table "
             "cannot correct: it keeps no anchor networks (remake it with `autospace latency-table`)")
    return f"{table.calibration.trust()}; {drift}"


def predicted_vs_measured(predicted_ms: float, measured_ms: float) -> dict:
    return {"predicted_latency_ms": round(predicted_ms, 4), "measured_latency_ms": round(measured_ms, 4),
            "relative_error": round((predicted_ms - measured_ms) / measured_ms, 4) if measured_ms > 0 else None}


# ---- open-space cells, from their components ----------------------------------------------------

def raw_cell_latency_ms(table: LatencyTable, cell: Cell, slot: LayerSlot) -> float:
    """The plain sum of a cell's component entries (no calibration)."""
    total = 0.0
    for key, times in cell_components(cell, slot).items():
        entry = table.entries.get(key)
        if entry is None:
            raise AutospaceError(
                f"the latency table has no entry for the cell component {key!r} of layer {slot.index}; measure "
                f"the open space's components with `autospace latency-table open:PRESET --device {table.device} "
                f"--batch-size {table.batch_size} -o TABLE.json` (an existing table is extended)")
        total += times * entry.value(table.statistic)
    return total


def cell_latency_ms(table: LatencyTable, cell: Cell, slot: LayerSlot) -> float:
    """Predicted latency of a cell at `slot`: its components' entries times the layer's scale entry."""
    scale = table.entries.get(scale_key(slot))
    return raw_cell_latency_ms(table, cell, slot) * (scale.value(table.statistic) if scale is not None else 1.0)


def cell_network_latency_ms(table: LatencyTable, network) -> float:
    """A network of cells (a Network whose searchable layers hold CellBlocks or zero blocks): the fixed
    parts' entries (and the table's network overhead) plus every cell's component prediction."""
    total = fixed_latency_ms(table, network)
    for layer, slot in zip(network.layers, network.slots()):
        if slot.searchable and not layer.block.is_empty():
            if not isinstance(layer.block, CellBlock):
                raise AutospaceError(f"layer {slot.index} holds a {type(layer.block).__name__}, not a cell; the "
                                     f"component model predicts cells only")
            total += cell_latency_ms(table, layer.block.cell, slot)
    return total


__all__ = ["block_latency_ms", "candidate_latencies_ms", "cell_latency_ms", "cell_network_latency_ms", "entries_sum_ms",
           "entry_ms", "fixed_latency_ms", "network_latency_ms", "predicted_vs_measured", "raw_cell_latency_ms", "slope",
           "trust_note"]
