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

CHANCE_MARGIN = 0.05  # held-out top-1 within this of chance counts as "at chance"


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


def persistence_threshold(pairs: int) -> float:
    """The correlation a run must beat to call its fitness changes persistent: two standard errors
    of a correlation of zero over `pairs` pairs (about 1 / sqrt(n) each), one-sided p < 0.025."""
    return 2.0 / math.sqrt(pairs) if pairs > 0 else math.inf


def noise_warning(heldout_top1: float | None, num_classes: int, persistence: float | None, pairs: int,
                  config) -> str | None:
    """One line when the diagnostics say the fitness is noise, naming the numbers and what helps."""
    chance = 1.0 / num_classes
    reasons = []
    if heldout_top1 is not None and heldout_top1 < chance + CHANCE_MARGIN:
        reasons.append(f"the supernet's held-out top-1 is {100 * heldout_top1:.1f}% (chance {100 * chance:.0f}%)")
    threshold = persistence_threshold(pairs)
    if persistence is None or not persistence > threshold:
        shown = "n/a" if persistence is None else f"{persistence:+.2f}"
        reasons.append(f"fitness changes do not persist between windows (correlation {shown} over {pairs} "
                       f"cells; signal needs > {min(threshold, 1.0):.2f})")
    if not reasons:
        return None
    return ("the fitness looks like noise: " + "; ".join(reasons) + ". The space reflects the budget band and "
            f"the prior more than learning. What helps: more epochs (epochs={config.epochs}), fewer candidates "
            f"per layer (candidates_per_layer={config.candidates_per_layer}), a longer uniform warm-up "
            f"(warmup_epochs={config.warmup_epochs}), more training images (train_subset={config.train_subset})")
