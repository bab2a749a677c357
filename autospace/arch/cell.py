"""The open-space cell (DESIGN 2.1): plain data plus its combinatorics.

A cell is six edge operators on the inner DAG (order `ops.EDGES`), an
expansion ratio and an aggregation. Everything here is pure and takes an
explicit `random.Random` where it draws.
"""

from __future__ import annotations

import itertools
import random
from dataclasses import dataclass

from autospace.arch.ops import AGGREGATIONS, CELL_EXPANSIONS, EDGE_OPERATORS, EDGES, INNER_NODES
from autospace.errors import AutospaceError

LAST_NODE = INNER_NODES - 1


@dataclass(frozen=True)
class Cell:
    ops: tuple[str, ...]
    expansion: int = 6
    aggregation: str = "sum"

    def __post_init__(self) -> None:
        object.__setattr__(self, "ops", tuple(self.ops))
        validate_cell(self)

    def op(self, source: int, target: int) -> str:
        return self.ops[EDGES.index((source, target))]

    def incoming(self, target: int) -> list[tuple[int, str]]:
        """Non-zero edges into `target`, as (source, operator), sources ascending."""
        return [(s, o) for (s, t), o in zip(EDGES, self.ops) if t == target and o != "zero"]

    def is_empty(self) -> bool:
        """True when no path reaches node 3: the cell computes nothing (the zero block)."""
        return LAST_NODE not in _reachable_from_input(self.ops)

    def uses_concat_projection(self, node: int) -> bool:
        """A concat node only needs its 1x1 projection when it joins two or more inputs."""
        return self.aggregation == "concat" and len(self.incoming(node)) >= 2


def validate_cell(cell: Cell) -> None:
    if len(cell.ops) != len(EDGES):
        raise AutospaceError(
            f"cell.ops has {len(cell.ops)} operators; a cell needs exactly {len(EDGES)}, "
            f"one per edge in the order {list(EDGES)}"
        )
    for edge, op in zip(EDGES, cell.ops):
        if op not in EDGE_OPERATORS:
            raise AutospaceError(
                f"cell.ops: unknown operator {op!r} on edge {edge[0]}->{edge[1]}; "
                f"allowed: {', '.join(EDGE_OPERATORS)}"
            )
    if type(cell.expansion) is not int or cell.expansion not in CELL_EXPANSIONS:
        raise AutospaceError(
            f"cell.expansion is {cell.expansion!r}; allowed: {', '.join(map(str, CELL_EXPANSIONS))}"
        )
    if cell.aggregation not in AGGREGATIONS:
        raise AutospaceError(
            f"cell.aggregation is {cell.aggregation!r}; allowed: {', '.join(AGGREGATIONS)}"
        )


def _reachable_from_input(ops) -> set[int]:
    reached = {0}
    for (source, target), op in zip(EDGES, ops):  # EDGES is topologically ordered by target
        if op != "zero" and source in reached:
            reached.add(target)
    return reached


def _reaching_output(ops) -> set[int]:
    reaching = {LAST_NODE}
    for (source, target), op in reversed(list(zip(EDGES, ops))):
        if op != "zero" and target in reaching:
            reaching.add(source)
    return reaching


def canonical(cell: Cell) -> Cell:
    """The representative of the cells that compute the same function.

    Edges that cannot lie on a path 0 -> 3 are set to `zero`; an empty cell
    becomes the one empty cell (e=1, sum); a cell where no node joins two inputs
    uses `sum`, since `concat` of one input is that input (our choice: the
    concat projection exists only for two or more inputs).
    """
    live = _reachable_from_input(cell.ops) & _reaching_output(cell.ops)
    ops = tuple(
        op if (source in live and target in live) else "zero"
        for (source, target), op in zip(EDGES, cell.ops)
    )
    if LAST_NODE not in live:
        return Cell(ops=("zero",) * len(EDGES), expansion=CELL_EXPANSIONS[0], aggregation="sum")
    aggregation = cell.aggregation
    fan_in = [sum(1 for (s, t), o in zip(EDGES, ops) if t == node and o != "zero") for node in range(1, INNER_NODES)]
    if max(fan_in) < 2:
        aggregation = "sum"
    return Cell(ops=ops, expansion=cell.expansion, aggregation=aggregation)


def hamming(first: Cell, second: Cell) -> int:
    """Eq. 2: edges whose operator differs, plus a differing expansion and aggregation."""
    distance = sum(a != b for a, b in zip(first.ops, second.ops))
    return distance + (first.expansion != second.expansion) + (first.aggregation != second.aggregation)


def mutate(cell: Cell, rng: random.Random) -> Cell:
    """Change exactly one thing: one edge's operator, the expansion or the aggregation.

    The result is a valid cell that differs from `cell` (Hamming distance 1).
    The caller decides what else it must satisfy (non-empty, MAdds cap).
    """
    choice = rng.randrange(len(EDGES) + 2)
    if choice < len(EDGES):
        ops = list(cell.ops)
        ops[choice] = rng.choice([o for o in EDGE_OPERATORS if o != ops[choice]])
        return Cell(ops=tuple(ops), expansion=cell.expansion, aggregation=cell.aggregation)
    if choice == len(EDGES):
        expansion = rng.choice([e for e in CELL_EXPANSIONS if e != cell.expansion])
        return Cell(ops=cell.ops, expansion=expansion, aggregation=cell.aggregation)
    aggregation = rng.choice([a for a in AGGREGATIONS if a != cell.aggregation])
    return Cell(ops=cell.ops, expansion=cell.expansion, aggregation=aggregation)


def reference_cell() -> Cell:
    """The inverted residual block as a cell: e=6, 0->1 dwconv3x3, 1->3 identity."""
    ops = ["zero"] * len(EDGES)
    ops[EDGES.index((0, 1))] = "dwconv3x3"
    ops[EDGES.index((1, 3))] = "identity"
    return Cell(ops=tuple(ops), expansion=6, aggregation="sum")


def all_cells():
    """Every labelled cell of the open space (5^6 * 3 * 2 = 93,750), in a fixed order."""
    for ops in itertools.product(EDGE_OPERATORS, repeat=len(EDGES)):
        for expansion in CELL_EXPANSIONS:
            for aggregation in AGGREGATIONS:
                yield Cell(ops=ops, expansion=expansion, aggregation=aggregation)


def count_cells() -> dict[str, int]:
    labelled = 0
    distinct = set()
    for cell in all_cells():
        labelled += 1
        distinct.add(canonical(cell))
    return {"labelled": labelled, "canonical": len(distinct)}


def cell_to_string(cell: Cell) -> str:
    """Compact, human-readable form: `e6-sum:dwconv3x3,zero,zero,zero,identity,zero`."""
    return f"e{cell.expansion}-{cell.aggregation}:" + ",".join(cell.ops)
