"""Is the DEA's fitness signal or noise? The figures every regeneration logs, and the verdict.

- held-out top-1 of paths drawn from the supernet (BN recalibrated): a supernet at
  chance cannot rank cells;
- fitness spread: per layer, the standard deviation of the trained cells' fitness;
- persistence: the correlation, over cells that were in the supernet in two
  consecutive windows, of a cell's fitness change in one window with its change in
  the next (changes centred per layer). Signal persists (> 0); noise does not.
"""

from __future__ import annotations

import math
from typing import Sequence

# The thresholds and their wording live with the reports (below evolve), which state them too.
from autospace.report.fitness_signal import (  # noqa: F401
    CHANCE_MARGIN, heldout_verdict, persistence_threshold, persistence_verdict)


def pearson(pairs_sums: Sequence[float]) -> float | None:
    """Pearson correlation from the running sums (n, sx, sy, sxx, syy, sxy); None when undefined."""
    n, sx, sy, sxx, syy, sxy = pairs_sums
    if n < 3:
        return None
    vx, vy = n * sxx - sx * sx, n * syy - sy * sy
    if vx <= 1e-18 or vy <= 1e-18:
        return None
    return (n * sxy - sx * sy) / math.sqrt(vx * vy)


def centred_changes(layers_cells: Sequence[Sequence], start: Sequence[Sequence[float]],
                    end: Sequence[Sequence[float]]) -> dict[tuple[int, object], float]:
    """{(layer, cell): change of its fitness over the window, minus the layer's mean change}.
    Softmax ignores a common shift, so only the change relative to the other cells counts."""
    changes = {}
    for layer, (cells, before, after) in enumerate(zip(layers_cells, start, end)):
        deltas = [b - a for a, b in zip(before, after)]
        mean = sum(deltas) / len(deltas)
        for cell, delta in zip(cells, deltas):
            changes[(layer, cell)] = delta - mean
    return changes


class FitnessPersistence:
    """Lag-1 correlation of fitness changes between consecutive regeneration windows."""

    def __init__(self):
        self.previous: dict[tuple[int, object], float] = {}
        self.total = [0.0] * 6  # running sums over the whole run, for the final verdict

    def observe(self, changes: dict[tuple[int, object], float]) -> float | None:
        """Add one window's changes; the correlation with the window before (None if undefined)."""
        sums = [0.0] * 6
        for key, now in changes.items():
            if key in self.previous:
                before = self.previous[key]
                for target in (sums, self.total):
                    for index, value in enumerate((1.0, before, now, before * before, now * now, before * now)):
                        target[index] += value
        self.previous = dict(changes)
        return pearson(sums)

    def overall(self) -> float | None:
        return pearson(self.total)

    @property
    def pairs(self) -> int:
        """Cells whose changes were paired over the run (the sample size of `overall`)."""
        return int(self.total[0])

    def state_dict(self, cell_to_dict) -> dict:
        return {"previous": [[layer, cell_to_dict(cell), value] for (layer, cell), value in self.previous.items()],
                "total": list(self.total)}

    def load_state_dict(self, state: dict | None, cell_from_dict) -> None:
        if state is None:
            return
        self.previous = {(layer, cell_from_dict(cell)): value for layer, cell, value in state["previous"]}
        self.total = list(state["total"])


def fitness_spread(layers_fitness: Sequence[Sequence[float]]) -> float | None:
    """Mean over layers of the standard deviation of the (trained) cells' fitness."""
    spreads = []
    for values in layers_fitness:
        if len(values) >= 2:
            mean = sum(values) / len(values)
            spreads.append(math.sqrt(sum((v - mean) ** 2 for v in values) / (len(values) - 1)))
    return sum(spreads) / len(spreads) if spreads else None


def _more(value) -> str:
    return f"{value * 2:g}"


def noise_warning(heldout_top1: float | None, num_classes: int, persistence: float | None, pairs: int,
                  config) -> str | None:
    """One line when the diagnostics say the fitness is noise, naming the numbers and what helps
    (each setting's value now, and one to try)."""
    chance = 1.0 / num_classes
    reasons = []
    above_chance, top1 = heldout_verdict(heldout_top1, chance)
    if not above_chance:
        reasons.append(f"the supernet's held-out top-1 is {top1}")
    persistent, figure = persistence_verdict(persistence, pairs)
    if not persistent:
        reasons.append(f"fitness changes do not persist between windows (correlation {figure})"
                       if persistence_threshold(pairs) is not None and persistence is not None
                       else f"the persistence of fitness changes is {figure}")
    if not reasons:
        return None
    helps = [f"more epochs (now {config.epochs}; try {_more(config.epochs)})"]
    if config.candidates_per_layer > 2:
        helps.append(f"fewer candidates per layer (candidates_per_layer now {config.candidates_per_layer}; "
                     f"try {max(2, config.candidates_per_layer // 2)})")
    helps.append(f"a longer uniform warm-up (warmup_epochs now {config.warmup_epochs:g}; "
                 f"try {_more(config.warmup_epochs) if config.warmup_epochs else '1'})")
    if config.train_subset is not None:
        helps.append(f"more training images (train_subset now {config.train_subset}; try "
                     f"{_more(config.train_subset)}, or all)")
    return ("the fitness looks like noise: " + "; ".join(reasons) + ". The space reflects the budget band and "
            "the prior more than learning. What helps: " + ", ".join(helps))
