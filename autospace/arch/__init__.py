"""Architectures as plain data (no torch): cells, blocks, networks, spaces, JSON."""

from autospace.arch.blocks import (
    Block, CellBlock, InvertedResidual, MultiBranch, ZeroBlock, block_to_string, canonical_block,
)
from autospace.arch.cell import Cell, all_cells, canonical, count_cells, hamming, mutate, reference_cell
from autospace.arch.codec import (
    arch_from_dict, arch_to_dict, block_from_dict, block_to_dict, load_arch, load_space, save_arch,
    save_space, space_from_dict, space_to_dict,
)
from autospace.arch.network import Layer, LayerSlot, Network, Skeleton, Stage
from autospace.arch.presets import PRESETS, mobilenetv2, preset_skeleton
from autospace.arch.space import Candidate, SearchSpace, manual_space

__all__ = [
    "Block", "CellBlock", "InvertedResidual", "MultiBranch", "ZeroBlock", "block_to_string", "canonical_block",
    "Cell", "all_cells", "canonical", "count_cells", "hamming", "mutate", "reference_cell",
    "arch_from_dict", "arch_to_dict", "block_from_dict", "block_to_dict", "load_arch", "load_space",
    "save_arch", "save_space", "space_from_dict", "space_to_dict",
    "Layer", "LayerSlot", "Network", "Skeleton", "Stage", "PRESETS", "mobilenetv2", "preset_skeleton",
    "Candidate", "SearchSpace", "manual_space",
]
