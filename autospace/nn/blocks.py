"""Modules for every block kind, and the one function that builds a block."""

from __future__ import annotations

from torch import nn

from autospace.arch.blocks import Block, CellBlock, InvertedResidual, MultiBranch, block_to_string
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


class MultiBranchModule(nn.Module):
    """NSE's multi-branch layer: the mean of its branches' outputs, plus the identity where the
    layer has a residual.

    Each branch is the ordinary block module, residual included; the mean of (branch_i(x) + x)
    is mean(branch_i(x)) + x, so a branch's weights are the same tensors as in the stand-alone
    block and in a supernet candidate of that block (weights transfer one to one)."""

    def __init__(self, block: MultiBranch, slot: LayerSlot):
        super().__init__()
        self.branches = nn.ModuleList(build_block(branch, slot) for branch in block.branches if not branch.is_empty())

    def forward(self, x):
        total = self.branches[0](x)
        for branch in self.branches[1:]:
            total = total + branch(x)
        return total / len(self.branches) if len(self.branches) > 1 else total


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
    if isinstance(block, MultiBranch):
        return MultiBranchModule(block, slot)
    raise TypeError(f"not a block: {block!r}")
