"""NAS-Bench-201 in autospace (DESIGN 2.6): exact cost, the tied DEA's fitness against the
benchmark's ground truth (`rank`), and a search of the benchmark space (`search`).

A package of its own, beside `evolve/`: it reuses the DEA's gates (`nn.gates`) but none of
the per-layer population code, so the two evolve independently.
"""

from autospace.nb201.config import Nb201Config
from autospace.nb201.runs import nb201_costs, rank_cells, search_nb201

__all__ = ["Nb201Config", "nb201_costs", "rank_cells", "search_nb201"]
