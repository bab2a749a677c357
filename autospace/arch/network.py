"""Networks and macro skeletons (DESIGN 2.2).

A `Network` is a stem, a flat list of layers (block, out channels, stride) and
a head. A `Skeleton` is a network with the searchable layers' blocks left
open: presets are skeletons, search spaces and searches fill them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

from autospace.arch.blocks import Block, InvertedResidual, block_to_string
from autospace.arch.ops import ACTIVATIONS
from autospace.errors import AutospaceError


def conv_output_size(size: int, stride: int) -> int:
    """Spatial size after a 'same'-padded layer of this stride (ceil(size / stride))."""
    return -(-size // stride)


@dataclass(frozen=True)
class Layer:
    block: Block
    out_channels: int
    stride: int = 1
    searchable: bool = True


@dataclass(frozen=True)
class LayerSlot:
    """Where a layer sits: everything its cost and module depend on besides the block."""

    index: int
    in_channels: int
    out_channels: int
    stride: int
    input_size: int
    searchable: bool

    @property
    def has_residual(self) -> bool:
        return self.stride == 1 and self.in_channels == self.out_channels

    @property
    def output_size(self) -> int:
        return conv_output_size(self.input_size, self.stride)


@dataclass(frozen=True)
class Network:
    layers: tuple[Layer, ...]
    stem_channels: int = 32
    stem_stride: int = 1
    head_channels: int = 1280
    num_classes: int = 10
    in_channels: int = 3
    resolution: int = 32
    activation: str = "relu6"
    dropout: float = 0.0

    def __post_init__(self) -> None:
        object.__setattr__(self, "layers", tuple(self.layers))
        validate_network(self)

    def slots(self) -> list[LayerSlot]:
        return _slots(self.stem_channels, self.stem_stride, self.resolution,
                      [(layer.out_channels, layer.stride, layer.searchable) for layer in self.layers])

    @property
    def final_channels(self) -> int:
        last = self.layers[-1].out_channels if self.layers else self.stem_channels
        return self.head_channels if self.head_channels else last

    def searchable_blocks(self) -> list[Block]:
        return [layer.block for layer in self.layers if layer.searchable]

    def describe(self) -> list[str]:
        return [
            f"{slot.index:2d} {slot.in_channels:4d}->{slot.out_channels:4d} s{slot.stride} "
            f"{slot.input_size:3d}px {block_to_string(layer.block)}"
            for slot, layer in zip(self.slots(), self.layers)
        ]


def _slots(stem_channels, stem_stride, resolution, shapes) -> list[LayerSlot]:
    slots = []
    channels = stem_channels
    size = conv_output_size(resolution, stem_stride)
    for index, (out_channels, stride, searchable) in enumerate(shapes):
        slots.append(LayerSlot(index, channels, out_channels, stride, size, searchable))
        channels, size = out_channels, conv_output_size(size, stride)
    return slots


MAX_SIZE = 1 << 16  # no real network has more channels, layers or pixels a side; keeps fuzzed files cheap


def _check_positive_int(name: str, value, minimum: int = 1) -> None:
    if type(value) is not int or not minimum <= value <= MAX_SIZE:
        raise AutospaceError(f"{name} is {value!r}; it must be an integer in [{minimum}, {MAX_SIZE}]")


def _check_stride(name: str, value) -> None:
    if type(value) is not int or value not in (1, 2):
        raise AutospaceError(f"{name} is {value!r}; allowed: 1, 2")


def _check_common(owner, name: str) -> None:
    _check_positive_int(f"{name}.stem_channels", owner.stem_channels)
    _check_positive_int(f"{name}.head_channels", owner.head_channels, minimum=0)
    _check_positive_int(f"{name}.num_classes", owner.num_classes, minimum=2)
    _check_positive_int(f"{name}.in_channels", owner.in_channels)
    _check_positive_int(f"{name}.resolution", owner.resolution)
    _check_stride(f"{name}.stem_stride", owner.stem_stride)
    if owner.activation not in ACTIVATIONS:
        raise AutospaceError(f"{name}.activation is {owner.activation!r}; allowed: {', '.join(ACTIVATIONS)}")
    if not isinstance(owner.dropout, (int, float)) or not 0.0 <= owner.dropout < 1.0:
        raise AutospaceError(f"{name}.dropout is {owner.dropout!r}; it must be a number in [0, 1)")


def _check_resolution(name: str, resolution: int, strides: Sequence[int]) -> None:
    total = 1
    for stride in strides:
        total *= stride
    if resolution < total:
        raise AutospaceError(
            f"{name}.resolution {resolution} is too small for the network's total stride {total}; "
            f"use a resolution of at least {total} or fewer strided layers"
        )


def validate_network(network: Network) -> None:
    _check_common(network, "network")
    if not network.layers:
        raise AutospaceError("network.layers is empty; a network needs at least one layer")
    if len(network.layers) > 1000:
        raise AutospaceError(f"network.layers has {len(network.layers)} layers; at most 1000 are supported")
    for index, layer in enumerate(network.layers):
        _check_positive_int(f"network.layers[{index}].out_channels", layer.out_channels)
        _check_stride(f"network.layers[{index}].stride", layer.stride)
        if not isinstance(layer.searchable, bool):
            raise AutospaceError(f"network.layers[{index}].searchable is {layer.searchable!r}; allowed: true, false")
    for slot, layer in zip(network.slots(), network.layers):
        where = f"network.layers[{slot.index}]"
        if layer.block.is_empty() and not slot.has_residual:
            raise AutospaceError(
                f"{where}: block {block_to_string(layer.block)} computes nothing, which is only valid "
                f"where the layer has a residual (stride 1 and in == out channels); this layer has "
                f"stride {slot.stride}, {slot.in_channels} -> {slot.out_channels} channels"
            )
    _check_resolution("network", network.resolution, [network.stem_stride] + [l.stride for l in network.layers])


@dataclass(frozen=True)
class Stage:
    width: int
    depth: int
    stride: int


@dataclass(frozen=True)
class Skeleton:
    """A macro skeleton: stem, optional fixed first block, searchable stages, head."""

    stages: tuple[Stage, ...]
    stem_channels: int = 32
    stem_stride: int = 1
    first_block: Block | None = InvertedResidual(kernel=3, expansion=1)
    first_channels: int = 16
    head_channels: int = 1280
    num_classes: int = 10
    in_channels: int = 3
    resolution: int = 32
    activation: str = "relu6"
    dropout: float = 0.0

    def __post_init__(self) -> None:
        object.__setattr__(self, "stages", tuple(self.stages))
        _check_common(self, "skeleton")
        _check_positive_int("skeleton.first_channels", self.first_channels)
        if not self.stages:
            raise AutospaceError("skeleton.stages is empty; give at least one stage")
        for index, stage in enumerate(self.stages):
            _check_positive_int(f"skeleton.stages[{index}].width", stage.width)
            _check_positive_int(f"skeleton.stages[{index}].depth", stage.depth)
            _check_stride(f"skeleton.stages[{index}].stride", stage.stride)
        if sum(stage.depth for stage in self.stages) > 1000:
            raise AutospaceError("skeleton.stages hold more than 1000 layers in all; at most 1000 are supported")
        if self.first_block is not None:
            first = self.slots()[0]
            if self.first_block.is_empty() and not first.has_residual:
                raise AutospaceError(
                    f"skeleton.first_block computes nothing, which needs a residual; the first layer maps "
                    f"{first.in_channels} -> {first.out_channels} channels")
        _check_resolution("skeleton", self.resolution,
                          [self.stem_stride] + [stage.stride for stage in self.stages])

    def _shapes(self) -> list[tuple[int, int, bool]]:
        shapes = [(self.first_channels, 1, False)] if self.first_block is not None else []
        for stage in self.stages:
            for position in range(stage.depth):
                shapes.append((stage.width, stage.stride if position == 0 else 1, True))
        return shapes

    def slots(self) -> list[LayerSlot]:
        return _slots(self.stem_channels, self.stem_stride, self.resolution, self._shapes())

    def searchable_slots(self) -> list[LayerSlot]:
        return [slot for slot in self.slots() if slot.searchable]

    @property
    def num_searchable(self) -> int:
        return sum(stage.depth for stage in self.stages)

    def network(self, blocks: Sequence[Block]) -> Network:
        """Fill the searchable layers with `blocks`, in order."""
        blocks = list(blocks)
        if len(blocks) != self.num_searchable:
            raise AutospaceError(
                f"the skeleton has {self.num_searchable} searchable layers but {len(blocks)} blocks were given"
            )
        layers = []
        for out_channels, stride, searchable in self._shapes():
            block = blocks.pop(0) if searchable else self.first_block
            layers.append(Layer(block, out_channels, stride, searchable))
        return Network(
            layers=tuple(layers), stem_channels=self.stem_channels, stem_stride=self.stem_stride,
            head_channels=self.head_channels, num_classes=self.num_classes,
            in_channels=self.in_channels, resolution=self.resolution,
            activation=self.activation, dropout=self.dropout,
        )

    def uniform_network(self, block: Block) -> Network:
        return self.network([block] * self.num_searchable)
