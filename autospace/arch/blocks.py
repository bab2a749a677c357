"""Blocks: what one layer of a network computes (DESIGN 2.2).

`CellBlock` wraps an open-space cell, `InvertedResidual` is the MobileNetV2 /
ProxylessNAS block, `ZeroBlock` skips the layer (valid only where the layer
has a residual), `MultiBranch` runs several blocks side by side (NSE's
multi-branch layer). Plain frozen data; JSON codecs live in `arch.codec`.
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


MAX_BRANCHES = 64  # a real multi-branch layer has a handful; keeps fuzzed files cheap


@dataclass(frozen=True)
class MultiBranch:
    """Several blocks on the same input; the layer's output is the mean of the branches'
    outputs, plus the identity where the layer has a residual (stride 1, in == out channels).

    Each branch is an inverted residual or a cell (no nesting, no zero: an empty branch
    list is how a multi-branch layer computes nothing). With one branch the layer equals
    that block; `canonical_block` reduces it so. Branch order does not change the output.
    """

    branches: tuple = ()

    def __post_init__(self) -> None:
        if not isinstance(self.branches, (tuple, list)):
            raise AutospaceError(f"multi.branches is {self.branches!r}; expected a list of blocks")
        object.__setattr__(self, "branches", tuple(self.branches))
        if len(self.branches) > MAX_BRANCHES:
            raise AutospaceError(f"multi.branches has {len(self.branches)} blocks; at most {MAX_BRANCHES} "
                                 f"are supported")
        seen = set()
        for index, branch in enumerate(self.branches):
            if not isinstance(branch, (CellBlock, InvertedResidual)):
                kind = type(branch).__name__
                raise AutospaceError(f"multi.branches[{index}] is a {kind}; a branch must be an irb or a cell "
                                     f"block (leave a branch out rather than making it zero)")
            if branch.is_empty():
                raise AutospaceError(f"multi.branches[{index}] ({block_to_string(branch)}) computes nothing; "
                                     f"leave it out (an empty branch list is how a layer is skipped)")
            key = canonical_block(branch)
            if key in seen:
                raise AutospaceError(f"multi.branches[{index}] ({block_to_string(branch)}) repeats an earlier "
                                     f"branch; list each branch once")
            seen.add(key)

    def is_empty(self) -> bool:
        return all(branch.is_empty() for branch in self.branches)


Block = Union[CellBlock, InvertedResidual, ZeroBlock, MultiBranch]


def block_kind(block: Block) -> str:
    if isinstance(block, CellBlock):
        return "cell"
    if isinstance(block, InvertedResidual):
        return "irb"
    if isinstance(block, ZeroBlock):
        return "zero"
    if isinstance(block, MultiBranch):
        return "multi"
    raise TypeError(f"not a block: {block!r}")


def canonical_block(block: Block) -> Block:
    """Empty cells become `ZeroBlock`; cells are canonicalised; a multi-branch block keeps its
    non-empty branches, canonical and sorted, and becomes its one branch or `ZeroBlock` when
    one or none is left. Two blocks compute the same function family iff these are equal."""
    if isinstance(block, CellBlock):
        if block.is_empty():
            return ZeroBlock()
        return CellBlock(canonical(block.cell))
    if isinstance(block, MultiBranch):
        branches = {canonical_block(branch) for branch in block.branches}
        branches = sorted((b for b in branches if not b.is_empty()), key=block_to_string)
        if not branches:
            return ZeroBlock()
        if len(branches) == 1:
            return branches[0]
        return MultiBranch(tuple(branches))
    return block


def block_to_string(block: Block) -> str:
    """Short name for tables and logs, e.g. `irb_k5_e6_se`, `cell[e6-sum:...]`, `zero`,
    `multi[irb_k3_e3+irb_k5_e6]`."""
    if isinstance(block, ZeroBlock):
        return "zero"
    if isinstance(block, MultiBranch):
        return "multi[" + "+".join(block_to_string(branch) for branch in block.branches) + "]"
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
