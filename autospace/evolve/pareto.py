"""The Pareto front of MAdds (lower is better) against accuracy (higher is better), and its plot."""

from __future__ import annotations

from pathlib import Path
from typing import Sequence


def pareto_front(points: Sequence[tuple[float, float]]) -> list[int]:
    """Indices of the points no other point dominates, by ascending MAdds.

    (m, a) dominates (m', a') when m <= m' and a >= a' and the two differ. Equal points are
    all kept (none dominates the other). O(n log n): sort by MAdds ascending then accuracy
    descending; a point is on the front iff its accuracy beats every cheaper point's, or ties
    the best so far at the same MAdds and accuracy."""
    order = sorted(range(len(points)), key=lambda i: (points[i][0], -points[i][1]))
    front: list[int] = []
    best = None
    for index in order:
        madds, accuracy = points[index]
        if best is None or accuracy > best[1] or (madds, accuracy) == best:
            front.append(index)
            if best is None or accuracy > best[1]:
                best = (madds, accuracy)
    return front


def write_pareto_plot(path: str | Path, points: Sequence[tuple[float, float]], front: Sequence[int],
                      budget: int, title: str) -> None:
    """Every evaluated architecture (grey), the front (blue, joined), the budget (dashed)."""
    from matplotlib.figure import Figure

    from autospace.runtime.atomic import atomic_write_bytes
    import io

    figure = Figure(figsize=(6, 4))
    axes = figure.add_subplot(1, 1, 1)
    axes.scatter([p[0] / 1e6 for p in points], [100 * p[1] for p in points], s=14, color="#aaaaaa",
                 label="evaluated")
    ordered = sorted(front, key=lambda i: points[i][0])
    axes.plot([points[i][0] / 1e6 for i in ordered], [100 * points[i][1] for i in ordered], "o-",
              color="#4c72b0", markersize=5, drawstyle="steps-post", label="Pareto front")
    axes.axvline(budget / 1e6, color="#c44e52", linestyle="--", linewidth=1, label="budget")
    axes.set_xlabel("MAdds (M)")
    axes.set_ylabel("held-out accuracy (%)")
    axes.set_title(title, fontsize=10)
    axes.grid(alpha=0.3)
    axes.legend(fontsize=8)
    figure.tight_layout()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=110)
    atomic_write_bytes(path, buffer.getvalue())
