"""Latency of open-space cells from their components (issue 18: the DEA's latency caps), plain data.

A DEA run meets thousands of distinct cells, too many to time one by one. So each
searchable layer's cell *components* are timed once at that layer's shape
(`autospace latency-table open:PRESET`): the input 1x1 conv per expansion, every
edge operator per (stride, operator, expansion) (edges out of inner node 0 carry
the layer's stride), the concat projections per fan-in, one sum-aggregation add,
the output 1x1 conv per expansion and the residual add. A cell's predicted latency
is the sum of its components' entries times the layer's `scale` entry, a factor
(not milliseconds) fitted on whole networks of open-space cells timed under the
same conditions (`autospace.cell_latency_timing` says why and how).

Component keys start with `cellpart`, so they never collide with a whole block's
`block ...` entry.
"""

from __future__ import annotations

from collections import Counter
from typing import Sequence

from autospace.arch.cell import Cell, canonical
from autospace.arch.network import LayerSlot
from autospace.arch.ops import EDGES, INNER_NODES
from autospace.cost.latency import LatencyTable, slot_shape
from autospace.errors import AutospaceError

PREFIX = "cellpart"


def component_key(slot: LayerSlot, part: str, expansion: int | None = None) -> str:
    """`part`: input, output, add, concatK, `edge sS OP` (per expansion); residual or scale (per layer)."""
    middle = "" if expansion is None else f" e{expansion}"
    return f"{PREFIX} {slot_shape(slot)}{middle} {part}"


def scale_key(slot: LayerSlot) -> str:
    return component_key(slot, "scale")


def cell_components(cell: Cell, slot: LayerSlot) -> Counter:
    """The component keys of a cell at `slot`, each with how often it runs (sum adds repeat);
    an empty cell has none (its layer is skipped through the residual)."""
    cell = canonical(cell)
    parts: Counter = Counter()
    if cell.is_empty():
        return parts
    e = cell.expansion
    parts[component_key(slot, "input", e)] += 1
    for (source, _), op in zip(EDGES, cell.ops):
        if op != "zero":
            parts[component_key(slot, f"edge s{slot.stride if source == 0 else 1} {op}", e)] += 1
    for node in range(1, INNER_NODES):
        fan_in = len(cell.incoming(node))
        if cell.uses_concat_projection(node):
            parts[component_key(slot, f"concat{fan_in}", e)] += 1
        elif fan_in >= 2:
            parts[component_key(slot, "add", e)] += fan_in - 1
    parts[component_key(slot, "output", e)] += 1
    if slot.stride == 1 and slot.in_channels == slot.out_channels:
        parts[component_key(slot, "residual")] += 1
    return parts


def layer_component_keys(slot: LayerSlot) -> list[str]:
    """Every component key a cell at `slot` can need (what a complete table holds for the layer)."""
    from autospace.arch.ops import CELL_EXPANSIONS

    keys = []
    for e in CELL_EXPANSIONS:
        keys += [component_key(slot, part, e) for part in ("input", "output", "add", "concat2", "concat3")]
        strides = sorted({1, slot.stride})
        keys += [component_key(slot, f"edge s{stride} {op}", e) for stride in strides
                 for op in ("conv1x1", "conv3x3", "dwconv3x3", "identity")]
    if slot.stride == 1 and slot.in_channels == slot.out_channels:
        keys.append(component_key(slot, "residual"))
    return keys + [scale_key(slot)]


def missing_components(table: LatencyTable, slots: Sequence[LayerSlot]) -> list[str]:
    return [key for slot in slots for key in layer_component_keys(slot) if key not in table.entries]


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
    from autospace.arch.blocks import CellBlock
    from autospace.cost.latency import fixed_latency_ms

    total = fixed_latency_ms(table, network)
    for layer, slot in zip(network.layers, network.slots()):
        if slot.searchable and not layer.block.is_empty():
            if not isinstance(layer.block, CellBlock):
                raise AutospaceError(f"layer {slot.index} holds a {type(layer.block).__name__}, not a cell; the "
                                     f"component model predicts cells only")
            total += cell_latency_ms(table, layer.block.cell, slot)
    return total


__all__ = ["cell_components", "cell_latency_ms", "cell_network_latency_ms", "component_key", "layer_component_keys",
           "missing_components", "raw_cell_latency_ms", "scale_key"]
