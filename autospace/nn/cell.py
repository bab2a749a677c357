"""The open-space cell as a module (DESIGN 2.1)."""

from __future__ import annotations

from torch import nn

from autospace.arch.cell import Cell, canonical
from autospace.arch.ops import EDGES, INNER_NODES
from autospace.nn.operators import ConvBNAct, make_edge_operator


def cell_mid_channels(cell: Cell, in_channels: int) -> int:
    return int(round(cell.expansion * in_channels))


def edge_key(source: int, target: int) -> str:
    return f"{source}->{target}"


class CellModule(nn.Module):
    """Input 1x1 conv -> inner DAG -> output 1x1 conv (+ residual).

    Built from the canonical form, so edges that cannot affect the output get
    no module and no cost. `edges` maps "j->i" to the operator module and
    `projections` maps a concat node to its 1x1 conv; a supernet may pass
    modules from a weight bank instead of fresh ones.
    """

    def __init__(self, cell: Cell, in_channels: int, out_channels: int, stride: int,
                 edges: dict[str, nn.Module] | None = None,
                 projections: dict[str, nn.Module] | None = None,
                 input_conv: nn.Module | None = None, output_conv: nn.Module | None = None):
        super().__init__()
        cell = canonical(cell)
        if cell.is_empty():
            raise ValueError("an empty cell computes nothing; build a ZeroBlock instead")
        self.cell = cell
        self.stride = stride
        self.has_residual = stride == 1 and in_channels == out_channels
        mid = cell_mid_channels(cell, in_channels)
        self.input_conv = input_conv if input_conv is not None else ConvBNAct(in_channels, mid, 1)
        self.edges = nn.ModuleDict()
        for (source, target), op in zip(EDGES, cell.ops):
            if op == "zero":
                continue
            key = edge_key(source, target)
            self.edges[key] = (edges[key] if edges is not None
                               else make_edge_operator(op, mid, stride if source == 0 else 1))
        self.projections = nn.ModuleDict()
        for node in range(1, INNER_NODES):
            if cell.uses_concat_projection(node):
                fan_in = len(cell.incoming(node))
                # our choice: the concat projection is conv1x1 + BN without activation
                self.projections[str(node)] = (projections[str(node)] if projections is not None
                                               else ConvBNAct(fan_in * mid, mid, 1, activation=None))
        self.output_conv = output_conv if output_conv is not None else ConvBNAct(mid, out_channels, 1, activation=None)
        self._plan = [(node, [edge_key(s, node) for s, _ in cell.incoming(node)], [s for s, _ in cell.incoming(node)])
                      for node in range(1, INNER_NODES)]

    def forward(self, x):
        return self.forward_sharing(x, None)

    def forward_sharing(self, x, memo: dict | None):
        """`forward`, reusing the results in `memo` of bank modules already applied to the same tensor.

        In a supernet's fitness step two cells of one layer read the same input, and cells of one
        expansion share the bank's input conv and their common edges out of node 0 (the same module
        objects): the second cell takes those results from `memo` instead of computing them again.
        `memo` maps (module, input) identities to (input, output); holding the input keeps its id
        from being reused while the memo lives. None: compute everything (`forward`).
        """
        import torch

        def apply(module, value):
            if memo is None:
                return module(value)
            key = (id(module), id(value))
            hit = memo.get(key)
            if hit is not None:
                return hit[1]
            result = module(value)
            memo[key] = (value, result)
            return result

        nodes = {0: apply(self.input_conv, x)}
        for node, keys, sources in self._plan:
            inputs = [apply(self.edges[key], nodes[source]) for key, source in zip(keys, sources) if source in nodes]
            if not inputs:
                continue
            if str(node) in self.projections:
                nodes[node] = self.projections[str(node)](torch.cat(inputs, dim=1))
            else:
                total = inputs[0]
                for extra in inputs[1:]:
                    total = total + extra
                nodes[node] = total
        out = self.output_conv(nodes[INNER_NODES - 1])
        return out + x if self.has_residual else out
