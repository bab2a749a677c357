"""NAS-Bench-201 modules (DESIGN 2.6): the network of one cell, and the tied supernet.

`Nb201Network` is the stand-alone network; `Nb201TiedSupernet` holds, per
position, a weight bank keyed by (edge, operator) and runs any one cell in all
positions. Both name their per-position convs `cells.{position}.{edge}|{op}`, so
a network's state dict is the supernet's restricted to that cell's keys
(`tests/test_nb201.py` checks that the two compute the same function).
Modules are initialised from an explicit generator (`weight_bank.materialise`).
"""

from __future__ import annotations

import torch
from torch import nn

from autospace.arch.nb201 import NB201_CONVS, NB201_OPERATORS, Nb201Cell, Nb201Skeleton, require_nonempty
from autospace.arch.ops import EDGES, INNER_NODES
from autospace.nn.weight_bank import materialise


class ReluConvBn(nn.Sequential):
    """NB201's ReLU -> Conv (no bias) -> BN."""

    def __init__(self, in_channels: int, out_channels: int, kernel: int, stride: int = 1):
        super().__init__(nn.ReLU(inplace=False), nn.Conv2d(in_channels, out_channels, kernel, stride,
                                                           (kernel - 1) // 2, bias=False),
                         nn.BatchNorm2d(out_channels))


class ResNetReduction(nn.Module):
    """NB201's basic block between stages: two ReLU-Conv-BN (the first stride 2) plus a
    2x2-average-pool + 1x1-conv shortcut; no activation after the sum."""

    def __init__(self, in_channels: int, out_channels: int):
        super().__init__()
        self.conv_a = ReluConvBn(in_channels, out_channels, 3, 2)
        self.conv_b = ReluConvBn(out_channels, out_channels, 3)
        self.shortcut = nn.Sequential(nn.AvgPool2d(2, 2), nn.Conv2d(in_channels, out_channels, 1, bias=False))

    def forward(self, x):
        return self.conv_b(self.conv_a(x)) + self.shortcut(x)


def edge_key(edge: int, op: str) -> str:
    source, target = EDGES[edge]
    return f"{source}->{target}|{op}"


def run_cell(cell: Nb201Cell, x: torch.Tensor, convs: nn.ModuleDict) -> torch.Tensor:
    """Node 3 of `cell` on input `x`: each node sums its live incoming edges.

    Edges off every 0 -> 3 path are skipped (our canonical form; NB201 runs them, which
    differs only where a conv reads an all-zero node and adds its BN bias downstream)."""
    nodes = [x]
    live = cell.live_edges()
    for target in range(1, INNER_NODES):
        total = None
        for edge, ((source, edge_target), op) in enumerate(zip(EDGES, cell.ops)):
            if edge_target != target or not live[edge]:
                continue
            value = nodes[source]
            if op in NB201_CONVS:
                value = convs[edge_key(edge, op)](value)
            elif op == "avgpool3x3":
                value = nn.functional.avg_pool2d(value, 3, 1, 1, count_include_pad=False)
            total = value if total is None else total + value
        nodes.append(total)  # None for a node no live edge enters (nothing reads it)
    return nodes[-1]


class _Nb201Frame(nn.Module):
    """Stem, the two reductions, the per-position convs (`cells`), last BN + ReLU, classifier."""

    def __init__(self, skeleton: Nb201Skeleton, generator: torch.Generator, keys_of):
        super().__init__()
        self.skeleton = skeleton
        widths = skeleton.stage_channels()
        self.stem = materialise(lambda: nn.Sequential(
            nn.Conv2d(skeleton.in_channels, widths[0], 3, 1, 1, bias=False), nn.BatchNorm2d(widths[0])), generator)
        self.reductions = nn.ModuleList(materialise(lambda: ResNetReduction(widths[i], widths[i + 1]), generator)
                                        for i in range(2))
        cells = []
        for position in range(skeleton.positions):
            width = widths[position // skeleton.cells_per_stage]
            cells.append(nn.ModuleDict({key: materialise(
                lambda: ReluConvBn(width, width, NB201_CONVS[key.split("|")[1]]), generator)
                for key in keys_of(position)}))
        self.cells = nn.ModuleList(cells)
        self.last = materialise(lambda: nn.Sequential(nn.BatchNorm2d(widths[-1]), nn.ReLU()), generator)
        self.classifier = materialise(lambda: nn.Linear(widths[-1], skeleton.num_classes), generator)

    def run(self, x: torch.Tensor, cell: Nb201Cell) -> torch.Tensor:
        x = self.stem(x)
        for position, convs in enumerate(self.cells):
            if position and position % self.skeleton.cells_per_stage == 0:
                x = self.reductions[position // self.skeleton.cells_per_stage - 1](x)
            x = run_cell(cell, x, convs)
        x = self.last(x).mean((2, 3))
        return self.classifier(x)


class Nb201Network(_Nb201Frame):
    """The NB201 network of `cell` (one cell in all 3N positions). Like NB201 it holds a conv for
    every conv edge, also one off every path, so its parameter count is NB201's."""

    def __init__(self, cell: Nb201Cell, skeleton: Nb201Skeleton | None = None,
                 generator: torch.Generator | None = None):
        self.cell = require_nonempty(cell)
        keys = [edge_key(edge, op) for edge, op in enumerate(cell.ops) if op in NB201_CONVS]
        super().__init__(skeleton or Nb201Skeleton(), generator or torch.Generator().manual_seed(0),
                         lambda position: keys)

    def forward(self, x):
        return self.run(x, self.cell)


class Nb201TiedSupernet(_Nb201Frame):
    """Every (edge, conv operator) at every position: any NB201 cell runs in all positions at once."""

    ALL_KEYS = [edge_key(edge, op) for edge in range(len(EDGES)) for op in NB201_OPERATORS if op in NB201_CONVS]

    def __init__(self, skeleton: Nb201Skeleton, generator: torch.Generator):
        super().__init__(skeleton, generator, lambda position: self.ALL_KEYS)

    def forward(self, x, cell: Nb201Cell):
        return self.run(x, cell)

    def path_state_dict(self, cell: Nb201Cell) -> dict:
        """The weights of `cell`'s stand-alone `Nb201Network` (its keys, this supernet's tensors)."""
        own = self.state_dict()
        wanted = Nb201Network(cell, self.skeleton).state_dict().keys()
        return {key: own[key] for key in wanted}
