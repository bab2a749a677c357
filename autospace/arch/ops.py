"""The vocabulary of the open space: edge operators, expansions, aggregations.

Plain constants, no torch. The inner DAG of a cell has nodes 0..3; `EDGES`
fixes the order in which a cell stores its six edge operators.
"""

from __future__ import annotations

EDGE_OPERATORS: tuple[str, ...] = ("conv1x1", "conv3x3", "dwconv3x3", "identity", "zero")
CONV_OPERATORS: tuple[str, ...] = ("conv1x1", "conv3x3", "dwconv3x3")
CELL_EXPANSIONS: tuple[int, ...] = (1, 3, 6)
AGGREGATIONS: tuple[str, ...] = ("sum", "concat")
INNER_NODES: int = 4
EDGES: tuple[tuple[int, int], ...] = tuple(
    (source, target) for target in range(1, INNER_NODES) for source in range(target)
)  # (0,1), (0,2), (1,2), (0,3), (1,3), (2,3)

IRB_KERNELS: tuple[int, ...] = (3, 5, 7, 9)
IRB_EXPANSIONS: tuple[int, ...] = (1, 3, 6)
IRB_DILATIONS: tuple[int, ...] = (1, 2)
ACTIVATIONS: tuple[str, ...] = ("relu6", "swish")
