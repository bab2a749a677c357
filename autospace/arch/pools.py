"""Fixed collections of candidates, plain data: NSE's operator pool per layer (DESIGN 2.5) and a seeded
sample of the open space's cells (what the DEA's MAdds and latency bands are placed by, and what the
latency tables of cell components probe and calibrate on)."""

from __future__ import annotations

import random

from autospace.arch.blocks import Block, CellBlock, InvertedResidual, canonical_block
from autospace.arch.cell import Cell, canonical
from autospace.arch.ops import AGGREGATIONS, CELL_EXPANSIONS, EDGE_OPERATORS, EDGES, IRB_EXPANSIONS, IRB_KERNELS
from autospace.errors import AutospaceError


def inverted_residual_pool(plain: bool = True, dilated: bool = True) -> list[Block]:
    """(with `plain`) irb kernel 3/5/7/9 x expansion 1/3/6, then (with `dilated`) kernel 3,
    dilation 2, expansion 1/3/6."""
    pool: list[Block] = []
    if plain:
        pool += [InvertedResidual(kernel=k, expansion=e) for e in IRB_EXPANSIONS for k in IRB_KERNELS]
    if dilated:
        pool += [InvertedResidual(kernel=3, expansion=e, dilation=2) for e in IRB_EXPANSIONS]
    return pool


def layer_pools(num_layers: int, irb: bool, dilated: bool, space=None) -> list[list[Block]]:
    """Per searchable layer its pool: the irb operators (if `irb`) and, from `space` (a SearchSpace
    with one candidate list per layer), that layer's non-empty cells. Duplicates (after
    canonicalisation) appear once."""
    if space is not None and len(space.layers) != num_layers:
        raise AutospaceError(
            f"the --pool space has {len(space.layers)} searchable layers but this skeleton has {num_layers}; "
            f"give a space.json learned on the same preset")
    pools = []
    for layer in range(num_layers):
        blocks = inverted_residual_pool(plain=irb, dilated=dilated)
        if space is not None:
            blocks += [c.block for c in space.layers[layer] if isinstance(c.block, CellBlock) and not c.block.is_empty()]
        unique, seen = [], set()
        for block in blocks:
            key = canonical_block(block)
            if key not in seen:
                seen.add(key)
                unique.append(key)
        if not unique:
            raise AutospaceError(
                f"layer {layer} has an empty operator pool; turn pool_irb or pool_dilated on, or give --pool a "
                f"space.json with cells")
        pools.append(unique)
    return pools


def calibration_pool(count: int, seed: int = 0) -> list[Cell]:
    """`count` distinct non-empty canonical cells drawn uniformly from the labelled open space
    (a fixed seed: the band depends on the budget and the skeleton, not on the run)."""
    rng = random.Random(seed)
    pool: dict[Cell, None] = {}
    while len(pool) < count:
        cell = canonical(Cell(tuple(rng.choice(EDGE_OPERATORS) for _ in EDGES), rng.choice(CELL_EXPANSIONS),
                              rng.choice(AGGREGATIONS)))
        if not cell.is_empty():
            pool[cell] = None
    return list(pool)
