"""NAS-Bench-201 as plain data (DESIGN 2.6): operators, the cell, the `nb201` skeleton.

An NB201 cell is one operator on each of the six edges of our inner DAG, in our
`EDGES` order (which is NB201's string order): no IO convs, no residual, sum
aggregation; node 0 is the layer's input, node 3 its output. The network uses
one cell in all 3 x N positions (`Nb201Skeleton`). No torch here.
"""

from __future__ import annotations

import itertools
import random
from dataclasses import dataclass

from autospace.arch.ops import EDGES, INNER_NODES
from autospace.errors import AutospaceError

NB201_OPERATORS: tuple[str, ...] = ("zero", "identity", "conv1x1", "conv3x3", "avgpool3x3")
NB201_CONVS: dict[str, int] = {"conv1x1": 1, "conv3x3": 3}  # ReLU -> Conv (no bias) -> BN, by kernel
# NB201's own names for our operators, as they appear in its arch strings.
NB201_NAMES: dict[str, str] = {"zero": "none", "identity": "skip_connect", "conv1x1": "nor_conv_1x1",
                               "conv3x3": "nor_conv_3x3", "avgpool3x3": "avg_pool_3x3"}
_FROM_NB201_NAME = {name: op for op, name in NB201_NAMES.items()}
LAST_NODE = INNER_NODES - 1
EXAMPLE_STRING = "|nor_conv_3x3~0|+|nor_conv_3x3~0|avg_pool_3x3~1|+|skip_connect~0|nor_conv_3x3~1|skip_connect~2|"


@dataclass(frozen=True)
class Nb201Cell:
    """Six operators from `NB201_OPERATORS` on edges (0,1),(0,2),(1,2),(0,3),(1,3),(2,3)."""

    ops: tuple[str, ...]

    def __post_init__(self) -> None:
        object.__setattr__(self, "ops", tuple(self.ops))
        if len(self.ops) != len(EDGES):
            raise AutospaceError(f"an NB201 cell needs {len(EDGES)} operators, one per edge {list(EDGES)}; "
                                 f"got {len(self.ops)}")
        for edge, op in zip(EDGES, self.ops):
            if op not in NB201_OPERATORS:
                raise AutospaceError(f"NB201 cell: unknown operator {op!r} on edge {edge[0]}->{edge[1]}; "
                                     f"allowed: {', '.join(NB201_OPERATORS)}")

    def live_edges(self) -> tuple[bool, ...]:
        """Per edge: whether it lies on a path 0 -> 3 (the others cannot change the output)."""
        reached, reaching = {0}, {LAST_NODE}
        for (source, target), op in zip(EDGES, self.ops):  # EDGES is ordered by target
            if op != "zero" and source in reached:
                reached.add(target)
        for (source, target), op in reversed(list(zip(EDGES, self.ops))):
            if op != "zero" and target in reaching:
                reaching.add(source)
        live = reached & reaching
        return tuple(op != "zero" and source in live and target in live
                     for (source, target), op in zip(EDGES, self.ops))

    def is_empty(self) -> bool:
        """True when no path joins node 0 to node 3 (NB201 scores these cells 10%)."""
        return not any(self.live_edges())


def canonical_nb201(cell: Nb201Cell) -> Nb201Cell:
    """Edges off every 0 -> 3 path set to `zero`: cells that compute the same function become equal."""
    return Nb201Cell(tuple(op if live else "zero" for op, live in zip(cell.ops, cell.live_edges())))


def require_nonempty(cell: Nb201Cell) -> Nb201Cell:
    if cell.is_empty():
        raise AutospaceError(f"NB201 cell {to_nb201_string(cell)} has no path from node 0 to node 3, so its "
                             f"network computes nothing from the image; give a cell with at least one path, "
                             f"e.g. {EXAMPLE_STRING}")
    return cell


def parse_nb201_string(text: str) -> Nb201Cell:
    """`|op~0|+|op~0|op~1|+|op~0|op~1|op~2|` (node j <- node i, NB201 names) -> `Nb201Cell`."""
    stripped = text.strip()
    nodes = stripped.split("+")
    problem = None
    ops = []
    if len(nodes) != LAST_NODE:
        problem = f"it has {len(nodes)} node groups separated by '+', not {LAST_NODE}"
    else:
        for target, group in enumerate(nodes, start=1):
            if not (group.startswith("|") and group.endswith("|")):
                problem = f"node group {group!r} is not enclosed in '|'"
                break
            entries = group[1:-1].split("|")
            if len(entries) != target:
                problem = f"node {target} has {len(entries)} inputs, not {target}"
                break
            for source, entry in enumerate(entries):
                name, _, index = entry.partition("~")
                if index != str(source):
                    problem = f"entry {entry!r} of node {target} should read NAME~{source}"
                elif name not in _FROM_NB201_NAME:
                    problem = f"unknown operator {name!r}; NB201 names: {', '.join(_FROM_NB201_NAME)}"
                if problem:
                    break
                ops.append(_FROM_NB201_NAME[name])
            if problem:
                break
    if problem:
        raise AutospaceError(f"bad NB201 cell string {text.strip()[:120]!r}: {problem}; "
                             f"write it like {EXAMPLE_STRING}")
    return Nb201Cell(tuple(ops))


def to_nb201_string(cell: Nb201Cell) -> str:
    groups = []
    for target in range(1, INNER_NODES):
        entries = [f"{NB201_NAMES[cell.ops[EDGES.index((source, target))]]}~{source}" for source in range(target)]
        groups.append("|" + "|".join(entries) + "|")
    return "+".join(groups)


def read_nb201_strings(path) -> list[Nb201Cell]:
    """One NB201 string per line (blank lines and `#` comments skipped); the error names the line."""
    from pathlib import Path

    path = Path(path)
    if not path.is_file():
        raise AutospaceError(f"cells file {path} does not exist; give a text file with one NB201 string a line")
    cells = []
    for number, line in enumerate(path.read_text(errors="replace").splitlines(), start=1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        try:
            cells.append(parse_nb201_string(line))
        except AutospaceError as error:
            raise AutospaceError(f"{path}, line {number}: {error}") from None
    if not cells:
        raise AutospaceError(f"cells file {path} holds no NB201 strings; write one a line, e.g. {EXAMPLE_STRING}")
    return cells


def all_nb201_cells():
    """The 5^6 = 15,625 labelled NB201 cells, in itertools.product order over `NB201_OPERATORS`."""
    for ops in itertools.product(NB201_OPERATORS, repeat=len(EDGES)):
        yield Nb201Cell(ops)


def mutate_nb201(cell: Nb201Cell, rng: random.Random) -> Nb201Cell:
    """One edge's operator changed; redrawn until the result has a path 0 -> 3."""
    while True:
        edge = rng.randrange(len(EDGES))
        ops = list(cell.ops)
        ops[edge] = rng.choice([op for op in NB201_OPERATORS if op != ops[edge]])
        child = Nb201Cell(tuple(ops))
        if not child.is_empty():
            return child


def random_nb201_cell(rng: random.Random) -> Nb201Cell:
    """Uniform over the non-empty labelled cells (rejection)."""
    while True:
        cell = Nb201Cell(tuple(rng.choice(NB201_OPERATORS) for _ in EDGES))
        if not cell.is_empty():
            return cell


@dataclass(frozen=True)
class Nb201Skeleton:
    """NB201's macro network: stem 3x3 conv + BN; stages of `cells_per_stage` cells at C, 2C, 4C
    with a ResNet basic block (stride 2) between stages; BN, ReLU, global pool, linear.

    `channels` (C, NB201: 16), `cells_per_stage` (N, NB201: 5) and `resolution` (NB201: 32)
    are settable: smaller values are a CPU proxy, and whoever uses one says so."""

    channels: int = 16
    cells_per_stage: int = 5
    num_classes: int = 10
    in_channels: int = 3
    resolution: int = 32

    def __post_init__(self) -> None:
        for name in ("channels", "cells_per_stage", "num_classes", "in_channels", "resolution"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise AutospaceError(f"nb201 skeleton: {name} must be a positive integer; got {value!r}")
        if self.resolution % 4:
            # the 2x2-pooled shortcut of a stride-2 block matches its conv only on even sizes
            raise AutospaceError(f"nb201 skeleton: resolution {self.resolution} must be a multiple of 4 "
                                 f"(two stride-2 blocks), e.g. 32 (NB201) or 16")

    def stage_channels(self) -> tuple[int, int, int]:
        return self.channels, 2 * self.channels, 4 * self.channels

    def stage_resolutions(self) -> tuple[int, int, int]:
        return self.resolution, self.resolution // 2, self.resolution // 4

    @property
    def positions(self) -> int:
        """Searchable positions: the one cell fills all of them."""
        return 3 * self.cells_per_stage
