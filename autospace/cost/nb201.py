"""Exact params and MAdds of an NB201 network (pure data, no torch).

As NB201 defines its network, every conv edge of the cell is a module, also one
that lies on no path 0 -> 3 (our modules keep it, unused, so the counts agree);
MAdds count convs and the classifier's multiplies (NB201's FLOPs also count the
classifier bias: flops = madds + num_classes). BN, pooling and additions count none.
`tests/test_nb201.py` checks both against all 15,625 rows of the NB201 table.
"""

from __future__ import annotations

from autospace.arch.nb201 import NB201_CONVS, Nb201Cell, Nb201Skeleton
from autospace.cost.analytic import Cost, conv_bn_cost, linear_cost


def nb201_cell_cost(cell: Nb201Cell, channels: int, resolution: int) -> Cost:
    total = Cost()
    for op in cell.ops:
        if op in NB201_CONVS:
            total = total + conv_bn_cost(channels, channels, NB201_CONVS[op], resolution)
    return total


def nb201_reduction_cost(in_channels: int, out_channels: int, resolution: int) -> Cost:
    """The ResNet basic block at stride 2; `resolution` is its output size."""
    conv_a = conv_bn_cost(in_channels, out_channels, 3, resolution)
    conv_b = conv_bn_cost(out_channels, out_channels, 3, resolution)
    shortcut = conv_bn_cost(in_channels, out_channels, 1, resolution, batch_norm=False)
    return conv_a + conv_b + shortcut


def nb201_network_cost(cell: Nb201Cell, skeleton: Nb201Skeleton | None = None) -> Cost:
    """Params and MAdds of the network with `cell` in every position (NB201: C=16, N=5, 32x32, 10 classes)."""
    skeleton = skeleton or Nb201Skeleton()
    channels, resolutions = skeleton.stage_channels(), skeleton.stage_resolutions()
    total = conv_bn_cost(skeleton.in_channels, channels[0], 3, resolutions[0])
    for stage, (width, size) in enumerate(zip(channels, resolutions)):
        if stage > 0:
            total = total + nb201_reduction_cost(channels[stage - 1], width, size)
        for _ in range(skeleton.cells_per_stage):
            total = total + nb201_cell_cost(cell, width, size)
    last_bn = Cost(2 * channels[-1], 0)
    return total + last_bn + linear_cost(channels[-1], skeleton.num_classes)
