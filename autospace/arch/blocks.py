"""Blocks: what one layer of a network computes (DESIGN 2.2).

`CellBlock` wraps an open-space cell, `InvertedResidual` is the MobileNetV2 /
ProxylessNAS block, `ZeroBlock` skips the layer (valid only where the layer
has a residual). Plain frozen data; JSON codecs live in `arch.codec`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Union

from autospace.arch.cell import Cell, canonical
from autospace.arch.ops import ACTIVATIONS, IRB_DILATIONS, IRB_EXPANSIONS, IRB_KERNELS
from autospace.errors import AutospaceError


@dataclass(frozen=True)
class CellBlock:
    cell: Cell

    def is_empty(self) -> bool:
        return self.cell.is_empty()


@dataclass(frozen=True)
class InvertedResidual:
    kernel: int = 3
    expansion: int = 6
    squeeze_excite: bool = False
    activation: str = "relu6"
    dilation: int = 1

    def __post_init__(self) -> None:
        checks = (
            ("kernel", self.kernel, IRB_KERNELS),
            ("expansion", self.expansion, IRB_EXPANSIONS),
            ("dilation", self.dilation, IRB_DILATIONS),
            ("activation", self.activation, ACTIVATIONS),
        )
        for name, value, allowed in checks:
            if type(value) is not type(allowed[0]) or value not in allowed:
                raise AutospaceError(
                    f"irb.{name} is {value!r}; allowed: {', '.join(map(str, allowed))}"
                )
        if not isinstance(self.squeeze_excite, bool):
            raise AutospaceError(f"irb.squeeze_excite is {self.squeeze_excite!r}; allowed: true, false")

    def is_empty(self) -> bool:
        return False


@dataclass(frozen=True)
class ZeroBlock:
    def is_empty(self) -> bool:
        return True


Block = Union[CellBlock, InvertedResidual, ZeroBlock]


def block_kind(block: Block) -> str:
    if isinstance(block, CellBlock):
        return "cell"
    if isinstance(block, InvertedResidual):
        return "irb"
    if isinstance(block, ZeroBlock):
        return "zero"
    raise TypeError(f"not a block: {block!r}")


def canonical_block(block: Block) -> Block:
    """Empty cells become `ZeroBlock`; cells are canonicalised; others unchanged."""
    if isinstance(block, CellBlock):
        if block.is_empty():
            return ZeroBlock()
        return CellBlock(canonical(block.cell))
    return block


def block_to_string(block: Block) -> str:
    """Short name for tables and logs, e.g. `irb_k5_e6_se`, `cell[e6-sum:...]`, `zero`."""
    if isinstance(block, ZeroBlock):
        return "zero"
    if isinstance(block, InvertedResidual):
        name = f"irb_k{block.kernel}_e{block.expansion}"
        if block.dilation != 1:
            name += f"_d{block.dilation}"
        if block.squeeze_excite:
            name += "_se"
        if block.activation != "relu6":
            name += f"_{block.activation}"
        return name
    from autospace.arch.cell import cell_to_string

    return f"cell[{cell_to_string(block.cell)}]"
