"""Modules for every block kind, and the one function that builds a block."""

from __future__ import annotations

from torch import nn

from autospace.arch.blocks import Block, CellBlock, InvertedResidual, block_to_string
from autospace.arch.network import LayerSlot
from autospace.errors import AutospaceError
from autospace.nn.cell import CellModule
from autospace.nn.operators import ConvBNAct, SqueezeExcite, squeeze_excite_channels


def irb_mid_channels(block: InvertedResidual, in_channels: int) -> int:
    return int(round(in_channels * block.expansion))


class InvertedResidualModule(nn.Module):
    """MobileNetV2 block: [1x1 expand] -> kxk depthwise -> [SE] -> 1x1 project (+ residual).

    Expansion 1 has no expansion conv, as in MobileNetV2's first block.
    """

    def __init__(self, block: InvertedResidual, in_channels: int, out_channels: int, stride: int):
        super().__init__()
        mid = irb_mid_channels(block, in_channels)
        self.has_residual = stride == 1 and in_channels == out_channels
        self.expand = ConvBNAct(in_channels, mid, 1, activation=block.activation) if block.expansion != 1 else None
        self.depthwise = ConvBNAct(mid, mid, block.kernel, stride, groups=mid,
                                   activation=block.activation, dilation=block.dilation)
        self.squeeze_excite = (SqueezeExcite(mid, squeeze_excite_channels(in_channels), block.activation)
                               if block.squeeze_excite else None)
        self.project = ConvBNAct(mid, out_channels, 1, activation=None)

    def forward(self, x):
        out = x if self.expand is None else self.expand(x)
        out = self.depthwise(out)
        if self.squeeze_excite is not None:
            out = self.squeeze_excite(out)
        out = self.project(out)
        return out + x if self.has_residual else out


class SkipLayer(nn.Module):
    """The zero block: the layer computes nothing, so only its residual (the input) remains."""

    def forward(self, x):
        return x


def build_block(block: Block, slot: LayerSlot) -> nn.Module:
    if block.is_empty():
        if not slot.has_residual:
            raise AutospaceError(
                f"layer {slot.index}: {block_to_string(block)} is only valid where the layer has a residual"
            )
        return SkipLayer()
    if isinstance(block, InvertedResidual):
        return InvertedResidualModule(block, slot.in_channels, slot.out_channels, slot.stride)
    if isinstance(block, CellBlock):
        return CellModule(block.cell, slot.in_channels, slot.out_channels, slot.stride)
    raise TypeError(f"not a block: {block!r}")
