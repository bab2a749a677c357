"""Architectures as plain data (no torch): cells, blocks, networks, spaces, JSON."""

from autospace.runtime.lazy import lazy_exports

_EXPORTS = {
    "Block": "blocks", "CellBlock": "blocks", "InvertedResidual": "blocks", "MultiBranch": "blocks",
    "ZeroBlock": "blocks", "block_to_string": "blocks", "canonical_block": "blocks",
    "Cell": "cell", "all_cells": "cell", "canonical": "cell", "count_cells": "cell", "hamming": "cell",
    "mutate": "cell", "reference_cell": "cell",
    "arch_from_dict": "codec", "arch_to_dict": "codec", "block_from_dict": "codec", "block_to_dict": "codec",
    "load_arch": "codec", "load_space": "codec", "save_arch": "codec", "save_space": "codec",
    "space_from_dict": "codec", "space_to_dict": "codec",
    "Layer": "network", "LayerSlot": "network", "Network": "network", "Skeleton": "network",
    "Stage": "network",
    "PRESETS": "presets", "mobilenetv2": "presets", "preset_skeleton": "presets",
    "Candidate": "space", "SearchSpace": "space", "manual_space": "space",
}
__all__ = sorted(_EXPORTS)
__getattr__ = lazy_exports(__name__, _EXPORTS)
