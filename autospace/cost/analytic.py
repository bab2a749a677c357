"""Analytic params and MAdds, pure functions of architecture data (no torch).

MAdds count the multiply-accumulates of convolutions and linear layers, as
papers do; BN, activations, pooling, additions, the SE gate and a multi-branch
layer's mean count none.
Params count every learnable tensor (conv weights, BN affine, biases).
`tests/test_cost.py` checks both against the built modules exactly.
"""

from __future__ import annotations

from dataclasses import dataclass

from autospace.arch.blocks import Block, CellBlock, InvertedResidual, MultiBranch
from autospace.arch.cell import canonical
from autospace.arch.network import LayerSlot, Network, conv_output_size
from autospace.arch.ops import EDGES, INNER_NODES


@dataclass(frozen=True)
class Cost:
    params: int = 0
    madds: int = 0

    def __add__(self, other: "Cost") -> "Cost":
        return Cost(self.params + other.params, self.madds + other.madds)


def conv_bn_cost(in_channels: int, out_channels: int, kernel: int, output_size: int, groups: int = 1,
                 batch_norm: bool = True, bias: bool = False) -> Cost:
    weights = kernel * kernel * (in_channels // groups) * out_channels
    params = weights + (2 * out_channels if batch_norm else 0) + (out_channels if bias else 0)
    return Cost(params, weights * output_size * output_size)


def linear_cost(in_features: int, out_features: int) -> Cost:
    return Cost(in_features * out_features + out_features, in_features * out_features)


def squeeze_excite_cost(channels: int, block_in_channels: int) -> Cost:
    reduced = max(1, int(block_in_channels * 0.25))
    return (conv_bn_cost(channels, reduced, 1, 1, batch_norm=False, bias=True)
            + conv_bn_cost(reduced, channels, 1, 1, batch_norm=False, bias=True))


def irb_cost(block: InvertedResidual, slot: LayerSlot) -> Cost:
    mid = int(round(slot.in_channels * block.expansion))
    size_in, size_out = slot.input_size, slot.output_size
    cost = Cost()
    if block.expansion != 1:
        cost += conv_bn_cost(slot.in_channels, mid, 1, size_in)
    cost += conv_bn_cost(mid, mid, block.kernel, size_out, groups=mid)
    if block.squeeze_excite:
        cost += squeeze_excite_cost(mid, slot.in_channels)
    return cost + conv_bn_cost(mid, slot.out_channels, 1, size_out)


EDGE_OPERATOR_SHAPES = {"conv1x1": (1, False), "conv3x3": (3, False), "dwconv3x3": (3, True)}


def edge_cost(op: str, channels: int, output_size: int) -> Cost:
    if op not in EDGE_OPERATOR_SHAPES:
        return Cost()  # identity (or its 2x2 average pool) and zero are free
    kernel, depthwise = EDGE_OPERATOR_SHAPES[op]
    return conv_bn_cost(channels, channels, kernel, output_size, groups=channels if depthwise else 1)


def cell_cost(block: CellBlock, slot: LayerSlot) -> Cost:
    cell = canonical(block.cell)
    if cell.is_empty():
        return Cost()
    mid = int(round(cell.expansion * slot.in_channels))
    size_out = slot.output_size
    cost = conv_bn_cost(slot.in_channels, mid, 1, slot.input_size)
    for (source, _), op in zip(EDGES, cell.ops):
        if op != "zero":
            cost += edge_cost(op, mid, size_out)
    for node in range(1, INNER_NODES):
        if cell.uses_concat_projection(node):
            cost += conv_bn_cost(len(cell.incoming(node)) * mid, mid, 1, size_out)
    return cost + conv_bn_cost(mid, slot.out_channels, 1, size_out)


def block_cost(block: Block, slot: LayerSlot) -> Cost:
    if block.is_empty():
        return Cost()
    if isinstance(block, InvertedResidual):
        return irb_cost(block, slot)
    if isinstance(block, CellBlock):
        return cell_cost(block, slot)
    if isinstance(block, MultiBranch):
        # The mean of the branches and the identity add no MAdds or params.
        total = Cost()
        for branch in block.branches:
            total += block_cost(branch, slot)
        return total
    raise TypeError(f"not a block: {block!r}")


def stem_cost(network) -> Cost:
    size = conv_output_size(network.resolution, network.stem_stride)
    return conv_bn_cost(network.in_channels, network.stem_channels, 3, size)


def head_cost(network, last_channels: int, final_size: int) -> Cost:
    cost = Cost()
    if network.head_channels:
        cost += conv_bn_cost(last_channels, network.head_channels, 1, final_size)
    channels = network.head_channels or last_channels
    return cost + linear_cost(channels, network.num_classes)


def layer_costs(network: Network) -> list[Cost]:
    return [block_cost(layer.block, slot) for layer, slot in zip(network.layers, network.slots())]


def network_cost(network: Network) -> Cost:
    slots = network.slots()
    total = stem_cost(network)
    for cost in layer_costs(network):
        total += cost
    return total + head_cost(network, network.layers[-1].out_channels, slots[-1].output_size)


def network_madds(network: Network) -> int:
    return network_cost(network).madds


def network_params(network: Network) -> int:
    return network_cost(network).params
