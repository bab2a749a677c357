"""Pictures of one open-space cell (DESIGN 2.1): matplotlib drawing and Graphviz DOT.

The cell's DAG is laid out left to right: input IO node, inner nodes 0..3,
output IO node. Edges carry their operator; `zero` edges are omitted and edges
that cannot lie on a path 0 -> 3 (they change nothing, see `canonical`) are
drawn faded. `draw_cell_on_axes` draws into any region of a matplotlib axes,
so the space and network pictures of `autospace.report.show` reuse it for thumbnails.
"""

from __future__ import annotations

import shutil
import subprocess

from autospace.arch.cell import Cell, canonical
from autospace.arch.ops import EDGES, INNER_NODES
from autospace.errors import AutospaceError

OPERATOR_COLORS = {"conv1x1": "#1f77b4", "conv3x3": "#d62728", "dwconv3x3": "#2ca02c", "identity": "#7f7f7f"}
OPERATOR_SHORT = {"conv1x1": "1x1", "conv3x3": "3x3", "dwconv3x3": "dw3x3", "identity": "id"}

# Unit layout: IO nodes and inner nodes on a line; skip edges bend (apex height, negative: below).
NODE_X = {"in": 0.0, 0: 1.0, 1: 2.0, 2: 3.0, 3: 4.0, "out": 5.0}
EDGE_BENDS = {(0, 1): 0.0, (1, 2): 0.0, (2, 3): 0.0, (0, 2): 0.55, (1, 3): -0.55, (0, 3): -0.8}
NODE_RADIUS = 0.2
LAYOUT_WIDTH, LAYOUT_HEIGHT = 5.6, 2.0  # unit layout spans x in [-0.3, 5.3], y in [-1, 1]


def cell_title(cell: Cell) -> str:
    return f"cell  e={cell.expansion}  aggregation={cell.aggregation}"


def live_edges(cell: Cell) -> set[tuple[int, int]]:
    """Edges on some path 0 -> 3: those that survive canonicalisation."""
    kept = canonical(cell).ops if not cell.is_empty() else ("zero",) * len(EDGES)
    return {edge for edge, op in zip(EDGES, kept) if op != "zero"}


def _bezier(start, end, bend: float, samples: int = 24) -> list[tuple[float, float]]:
    """Quadratic curve from start to end whose middle lies `bend` above the chord (negative: below)."""
    (x0, y0), (x2, y2) = start, end
    cx, cy = (x0 + x2) / 2, (y0 + y2) / 2 + 2 * bend  # the control point sits twice as far as the apex
    points = []
    for index in range(samples + 1):
        t = index / samples
        points.append(((1 - t) ** 2 * x0 + 2 * (1 - t) * t * cx + t * t * x2,
                       (1 - t) ** 2 * y0 + 2 * (1 - t) * t * cy + t * t * y2))
    return points


def _trim(points, start_radius: float, end_radius: float):
    (sx, sy), (ex, ey) = points[0], points[-1]
    return [(x, y) for x, y in points
            if (x - sx) ** 2 + (y - sy) ** 2 >= start_radius ** 2 and (x - ex) ** 2 + (y - ey) ** 2 >= end_radius ** 2]


def draw_cell_on_axes(axes, cell: Cell, x: float = 0.0, y: float = 0.0, width: float = LAYOUT_WIDTH,
                      font_size: float = 9.0, labels: bool = True, title: str | None = None,
                      short_names: bool | None = None) -> None:
    """Draw `cell` into the box [x, x + width] x [y, y + width * LAYOUT_HEIGHT / LAYOUT_WIDTH] of `axes`.

    The axes must have an equal aspect ratio (node circles stay round); the
    caller sets the limits. `labels=False` leaves operator names out (tiny
    thumbnails rely on the edge colours and the legend instead).
    """
    from matplotlib.patches import Circle, FancyArrowPatch, FancyBboxPatch

    scale = width / LAYOUT_WIDTH
    middle_y = y + scale * LAYOUT_HEIGHT / 2

    def point(node) -> tuple[float, float]:
        return x + scale * (NODE_X[node] + 0.3), middle_y

    radius = NODE_RADIUS * scale
    line_width = max(0.6, 1.6 * font_size / 9)
    live = live_edges(cell)

    def edge(start, end, bend, color, text, alpha=1.0, style="-", start_radius=radius, end_radius=radius):
        points = _trim(_bezier(start, end, bend * scale), start_radius, end_radius * 1.05)
        if len(points) < 2:
            return
        xs, ys = zip(*points)
        axes.plot(xs, ys, color=color, linewidth=line_width, linestyle=style, alpha=alpha,
                  solid_capstyle="butt", zorder=1)
        axes.add_patch(FancyArrowPatch(points[-2], points[-1], arrowstyle="-|>", color=color, alpha=alpha,
                                       mutation_scale=6 + font_size, linewidth=0, shrinkA=0, shrinkB=0,
                                       zorder=2))
        if text:
            mx, my = points[len(points) // 2]
            if bend == 0:  # a straight edge is short: write above it rather than over it
                axes.text(mx, my + 0.06 * scale, text, fontsize=font_size * 0.85, ha="center", va="bottom",
                          color=color, alpha=max(alpha, 0.6), zorder=4)
            else:
                axes.text(mx, my, text, fontsize=font_size * 0.85, ha="center", va="center", color=color,
                          alpha=max(alpha, 0.6), zorder=4,
                          bbox=dict(boxstyle="round,pad=0.15", facecolor="white", edgecolor="none", alpha=0.9))

    io_half = (0.32 * scale, 0.2 * scale)
    short = font_size < 8 if short_names is None else short_names  # thumbnails: short operator names
    io_labels = labels and not short  # thumbnails give e in their caption instead
    edge(point("in"), point(0), 0.0, "black", f"1x1 e{cell.expansion}" if io_labels else "",
         start_radius=io_half[0])
    edge(point(3), point("out"), 0.0, "black", "1x1" if io_labels else "", end_radius=io_half[0])
    for (source, target), op in zip(EDGES, cell.ops):
        if op == "zero":
            continue
        faded = (source, target) not in live
        name = OPERATOR_SHORT[op] if short else op
        edge(point(source), point(target), EDGE_BENDS[(source, target)], OPERATOR_COLORS[op],
             name if labels else "", alpha=0.3 if faded else 1.0, style=":" if faded else "-")

    for node in ("in", "out"):
        cx, cy = point(node)
        axes.add_patch(FancyBboxPatch((cx - io_half[0], cy - io_half[1]), 2 * io_half[0], 2 * io_half[1],
                                      boxstyle=f"round,pad={0.04 * scale}", facecolor="#fde9c8",
                                      edgecolor="black", linewidth=line_width * 0.6, zorder=3))
        axes.text(cx, cy, node, fontsize=font_size, ha="center", va="center", zorder=5)
    for node in range(INNER_NODES):
        cx, cy = point(node)
        face = "#e8dcf4" if cell.uses_concat_projection(node) else "#dbe9f6"  # concat nodes in violet
        axes.add_patch(Circle((cx, cy), radius, facecolor=face, edgecolor="black",
                              linewidth=line_width * 0.6, zorder=3))
        axes.text(cx, cy, str(node), fontsize=font_size, ha="center", va="center", zorder=5)
    if cell.is_empty():
        axes.text(x + width / 2, y + scale * 0.15, "empty: computes nothing (zero block)",
                  fontsize=font_size * 0.85, ha="center", va="bottom", color="#b00000", zorder=5)
    if title:
        axes.text(x + width / 2, y + scale * LAYOUT_HEIGHT, title, fontsize=font_size, ha="center",
                  va="bottom", zorder=5)


def add_operator_legend(figure, font_size: float = 8.0, rows: int = 1) -> None:
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch

    handles = [Line2D([], [], color=color, linewidth=2, label=op) for op, color in OPERATOR_COLORS.items()]
    handles.append(Line2D([], [], color="#7f7f7f", linewidth=1.5, linestyle=":", alpha=0.5,
                          label="dead edge (off every 0->3 path)"))
    handles.append(Patch(facecolor="#e8dcf4", edgecolor="black", linewidth=0.5, label="concat node"))
    figure.legend(handles=handles, loc="lower center", ncol=-(-len(handles) // rows), fontsize=font_size,
                  frameon=False)


def cell_figure(cell: Cell):
    """A standalone figure of one cell (no pyplot: no global state)."""
    from matplotlib.figure import Figure

    figure = Figure(figsize=(8.0, 3.6))
    axes = figure.add_axes((0.02, 0.1, 0.96, 0.78))
    draw_cell_on_axes(axes, cell, font_size=10)
    axes.set_xlim(-0.05, LAYOUT_WIDTH + 0.05)
    axes.set_ylim(-0.05, LAYOUT_HEIGHT + 0.05)
    axes.set_aspect("equal")
    axes.axis("off")
    figure.suptitle(cell_title(cell), fontsize=12)
    add_operator_legend(figure)
    return figure


# ---- Graphviz -----------------------------------------------------------------------------------

def dot_available() -> bool:
    return shutil.which("dot") is not None


def cell_to_dot(cell: Cell) -> str:
    """The cell as a Graphviz digraph (left to right), edges labelled with operators, zero edges omitted."""
    live = live_edges(cell)
    lines = ["digraph cell {", "  rankdir=LR;",
             f'  label="{cell_title(cell)}"; labelloc=t; fontsize=16; fontname="Helvetica";',
             '  node [fontname="Helvetica", shape=circle, style=filled, fillcolor="#dbe9f6"];',
             '  edge [fontname="Helvetica", fontsize=11];',
             '  in [shape=box, style="rounded,filled", fillcolor="#fde9c8"];',
             '  out [shape=box, style="rounded,filled", fillcolor="#fde9c8"];']
    for node in range(INNER_NODES):
        lines.append(f'  n{node} [label="{node}"];')
    lines.append(f'  in -> n0 [label="1x1 conv, e={cell.expansion}"];')
    for (source, target), op in zip(EDGES, cell.ops):
        if op == "zero":
            continue
        style = "" if (source, target) in live else ", style=dotted"
        lines.append(f'  n{source} -> n{target} [label="{op}", color="{OPERATOR_COLORS[op]}", '
                     f'fontcolor="{OPERATOR_COLORS[op]}"{style}];')
    lines.append('  n3 -> out [label="1x1 conv"];')
    lines.append("}")
    return "\n".join(lines) + "\n"


def render_cell_with_dot(cell: Cell, file_format: str, timeout: float = 30.0) -> bytes:
    executable = shutil.which("dot")
    if executable is None:
        raise AutospaceError("Graphviz `dot` is not installed; install graphviz or use engine='matplotlib'")
    try:
        completed = subprocess.run([executable, f"-T{file_format}"], input=cell_to_dot(cell).encode("utf-8"),
                                   capture_output=True, timeout=timeout, check=False)
    except (OSError, subprocess.TimeoutExpired) as error:
        raise AutospaceError(f"Graphviz `dot` failed to run: {error}") from None
    if completed.returncode != 0 or not completed.stdout:
        message = completed.stderr.decode("utf-8", "replace").strip()
        raise AutospaceError(f"Graphviz `dot -T{file_format}` failed (exit {completed.returncode}): {message}")
    return completed.stdout
