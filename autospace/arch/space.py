"""Search spaces: a skeleton plus, per searchable layer, a list of candidate blocks.

Learned spaces (from `autospace evolve`) carry each candidate's fitness and
training count; the built-in `manual` space is the ProxylessNAS inverted
residual space; `open` marks layers whose candidates are the whole open space.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from autospace.arch.blocks import Block, InvertedResidual, ZeroBlock, block_to_string, canonical_block
from autospace.arch.network import LayerSlot, Skeleton
from autospace.errors import AutospaceError


@dataclass(frozen=True)
class Candidate:
    block: Block
    fitness: float | None = None
    trained_iterations: int | None = None


@dataclass(frozen=True)
class SearchSpace:
    skeleton: Skeleton
    layers: tuple[tuple[Candidate, ...], ...]
    name: str = "custom"
    metadata: dict = field(default_factory=dict, compare=False, hash=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "layers", tuple(tuple(c) for c in self.layers))
        validate_space(self)

    def blocks(self, layer: int) -> list[Block]:
        return [candidate.block for candidate in self.layers[layer]]

    def slots(self) -> list[LayerSlot]:
        return self.skeleton.searchable_slots()

    def describe(self) -> list[str]:
        lines = []
        for index, (slot, candidates) in enumerate(zip(self.slots(), self.layers)):
            names = ", ".join(block_to_string(c.block) for c in candidates)
            lines.append(f"layer {index:2d} ({slot.in_channels}->{slot.out_channels} s{slot.stride}): {names}")
        return lines


def validate_space(space: SearchSpace) -> None:
    slots = space.skeleton.searchable_slots()
    if len(space.layers) != len(slots):
        raise AutospaceError(
            f"space.layers has {len(space.layers)} entries but the skeleton has {len(slots)} "
            f"searchable layers; give one candidate list per searchable layer"
        )
    for index, (slot, candidates) in enumerate(zip(slots, space.layers)):
        if not candidates:
            raise AutospaceError(f"space.layers[{index}] is empty; give at least one candidate block")
        seen = set()
        for position, candidate in enumerate(candidates):
            if candidate.block.is_empty() and not slot.has_residual:
                raise AutospaceError(
                    f"space.layers[{index}][{position}]: block {block_to_string(candidate.block)} computes "
                    f"nothing, which is only valid on layers with a residual; layer {index} has stride "
                    f"{slot.stride}, {slot.in_channels} -> {slot.out_channels} channels"
                )
            key = canonical_block(candidate.block)
            if key in seen:
                raise AutospaceError(
                    f"space.layers[{index}][{position}]: block {block_to_string(candidate.block)} is a "
                    f"duplicate of an earlier candidate (after canonicalisation); list each block once"
                )
            seen.add(key)


MANUAL_KERNELS = (3, 5, 7)
MANUAL_EXPANSIONS = (3, 6)


def manual_space(skeleton: Skeleton, with_zero: bool = True) -> SearchSpace:
    """The ProxylessNAS space: irb kernel 3/5/7 x expansion 3/6, plus zero where a residual exists."""
    layers = []
    for slot in skeleton.searchable_slots():
        candidates = [Candidate(InvertedResidual(kernel=k, expansion=e))
                      for e in MANUAL_EXPANSIONS for k in MANUAL_KERNELS]
        if with_zero and slot.has_residual:
            candidates.append(Candidate(ZeroBlock()))
        layers.append(tuple(candidates))
    return SearchSpace(skeleton=skeleton, layers=tuple(layers), name="manual")
