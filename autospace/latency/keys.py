"""The names of a latency table's entries, plain data: each names a module and the shape it runs at.

Blocks (`block SHAPE BLOCK`), the stem and the head of a network; identical layers
of a stage share one entry. And the *components* of an open-space cell (issue 18:
the DEA's latency caps): a DEA run meets thousands of distinct cells, too many to
time one by one, so each searchable layer's cell components are timed once at that
layer's shape (`autospace latency-table open:PRESET`): the input 1x1 conv per
expansion, every edge operator per (stride, operator, expansion) (edges out of
inner node 0 carry the layer's stride), the concat projections per fan-in, one
sum-aggregation add, the output 1x1 conv per expansion and the residual add. A
cell's predicted latency is the sum of its components' entries times the layer's
`scale` entry, a factor (not milliseconds) fitted on whole networks of open-space
cells timed under the same conditions (`cell_timing.py` says why and how).

Component keys start with `cellpart`, so they never collide with a whole block's
`block ...` entry.
"""

from __future__ import annotations

from collections import Counter
from typing import Sequence

from autospace.arch.blocks import Block, block_to_string, canonical_block
from autospace.arch.cell import Cell, canonical
from autospace.arch.network import LayerSlot, conv_output_size
from autospace.arch.ops import EDGES, INNER_NODES

PREFIX = "cellpart"


# ---- blocks, stem, head ------------------------------------------------------------------------

def slot_shape(slot: LayerSlot) -> str:
    return f"{slot.in_channels}x{slot.input_size}->{slot.out_channels}s{slot.stride}"


def block_key(block: Block, slot: LayerSlot) -> str:
    return f"block {slot_shape(slot)} {block_to_string(canonical_block(block))}"


def stem_key(network) -> str:
    """`network`: a Network or a Skeleton (both carry the stem's settings)."""
    size = conv_output_size(network.resolution, network.stem_stride)
    return (f"stem {network.in_channels}x{network.resolution}->{network.stem_channels}x{size}"
            f"s{network.stem_stride} {network.activation}")


def head_key(network, last_channels: int, final_size: int) -> str:
    return (f"head {last_channels}x{final_size}->{network.head_channels}->{network.num_classes} "
            f"{network.activation}")


def fixed_keys(network) -> list[str]:
    """Stem, every non-searchable layer and head of a Network or Skeleton."""
    slots = network.slots()
    keys = [stem_key(network)]
    if hasattr(network, "first_block"):  # a Skeleton
        keys += [block_key(network.first_block, slot) for slot in slots if not slot.searchable]
    else:
        keys += [block_key(layer.block, slot) for layer, slot in zip(network.layers, slots) if not slot.searchable]
    return keys + [head_key(network, slots[-1].out_channels, slots[-1].output_size)]


def network_keys(network) -> list[str | None]:
    """The entry of each timed segment of a forward pass: stem, every layer (None: an empty one), head."""
    slots = network.slots()
    return ([stem_key(network)]
            + [None if layer.block.is_empty() else block_key(layer.block, slot)
               for layer, slot in zip(network.layers, slots)]
            + [head_key(network, slots[-1].out_channels, slots[-1].output_size)])


# ---- cell components ---------------------------------------------------------------------------


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


def missing_components(table, slots: Sequence[LayerSlot]) -> list[str]:
    """The component keys of `slots` that `table` (a LatencyTable) lacks."""
    return [key for slot in slots for key in layer_component_keys(slot) if key not in table.entries]


__all__ = ["block_key", "cell_components", "component_key", "fixed_keys", "head_key", "layer_component_keys",
           "missing_components", "network_keys", "scale_key", "slot_shape", "stem_key"]
