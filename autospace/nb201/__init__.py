"""NAS-Bench-201 in autospace (DESIGN 2.6): exact cost, the tied DEA's fitness against the
benchmark's ground truth (`rank`), and a search of the benchmark space (`search`).

A package of its own, beside `evolve/`: it reuses the DEA's gates (`nn.gates`) but none of
the per-layer population code, so the two evolve independently.
"""

from autospace.runtime.lazy import lazy_exports

_EXPORTS = {
    "Nb201Config": "config",
    "nb201_costs": "runs", "rank_cells": "runs", "search_nb201": "runs",
}
__all__ = sorted(_EXPORTS)
__getattr__ = lazy_exports(__name__, _EXPORTS)
