"""Is a fitness signal? The thresholds the DEA's diagnostics are held to, in the one wording that the
evolve warning (`autospace.evolve.diagnostics`), space.md, report.md and report.html share."""

from __future__ import annotations

import math

CHANCE_MARGIN = 0.05  # held-out top-1 within this of chance counts as "at chance"


def persistence_threshold(pairs: int) -> float | None:
    """The correlation a run must beat to call its fitness changes persistent: two standard errors
    of a correlation of zero over `pairs` pairs (about 1 / sqrt(n) each), one-sided p < 0.025;
    None when no pair was measured (then nothing can be called persistent)."""
    return 2.0 / math.sqrt(pairs) if pairs > 0 else None


def persistence_verdict(persistence: float | None, pairs: int) -> tuple[bool, str]:
    """(is the fitness signal by its persistence?, the figure with the threshold it was held to), in the one
    wording the warning, space.md and the reports share."""
    threshold = persistence_threshold(pairs)
    if threshold is None:
        return False, "not measured (no cell was in the supernet in two consecutive windows)"
    if persistence is None:
        return False, f"not defined over {pairs} cells (too few, or no change varied)"
    return (persistence > threshold,
            f"{persistence:+.2f} over {pairs} cells, where signal needs > {min(threshold, 1.0):.2f}")


def heldout_verdict(heldout_top1: float | None, chance: float) -> tuple[bool, str]:
    """(is the supernet above chance?, its held-out top-1 with the threshold it was held to)."""
    needs = f"chance {100 * chance:.0f}%; signal needs > {100 * (chance + CHANCE_MARGIN):.0f}%"
    if heldout_top1 is None:
        return True, f"not measured ({needs})"
    return heldout_top1 >= chance + CHANCE_MARGIN, f"{100 * heldout_top1:.1f}% ({needs})"
