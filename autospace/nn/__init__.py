"""Modules built from architecture data."""

from autospace.runtime.lazy import lazy_exports

_EXPORTS = {
    "InvertedResidualModule": "blocks", "SkipLayer": "blocks", "build_block": "blocks",
    "NetworkModule": "builder", "build_network": "builder",
    "CellModule": "cell",
    "ConvBNAct": "operators", "SqueezeExcite": "operators", "make_edge_operator": "operators",
}
__all__ = sorted(_EXPORTS)
__getattr__ = lazy_exports(__name__, _EXPORTS)
