"""`autospace show`: pictures of a cell, a search space or a network, as .svg or .png.

- a cell (a `Cell`, a `CellBlock`, or a JSON file holding one block of type
  `cell`): its DAG, edges labelled with operators (Graphviz `dot` when it is
  installed, else matplotlib; see `autospace.report.show_cell`);
- a search space (`SearchSpace` or `space.json`): per layer, its candidates side
  by side (small DAG pictures for cells, names for irb/zero) with fitness and MAdds;
- a network (`Network` or `arch.json`): the layer sequence as a vertical strip
  of boxes with block, channels, stride and MAdds, cells as DAG thumbnails.

Drawing uses matplotlib's object API only (no pyplot), so it touches no global state.
"""

from __future__ import annotations

import io
import os
from pathlib import Path
from typing import Union

from autospace.arch.blocks import CellBlock, InvertedResidual, MultiBranch, ZeroBlock, block_to_string
from autospace.arch.cell import Cell
from autospace.arch.codec import ARCH_FORMAT, SPACE_FORMAT, arch_from_dict, block_from_dict, space_from_dict
from autospace.arch.network import Network
from autospace.arch.space import SearchSpace
from autospace.runtime.atomic import atomic_write_bytes
from autospace.cost.analytic import block_cost, head_cost, layer_costs, network_cost, stem_cost
from autospace.errors import AutospaceError
from autospace.runtime.parsing import parse_json
from autospace.report.show_cell import (
    LAYOUT_HEIGHT, LAYOUT_WIDTH, add_operator_legend, cell_figure, dot_available, draw_cell_on_axes,
    render_cell_with_dot,
)

Drawable = Union[Cell, CellBlock, SearchSpace, Network]
FORMATS = ("png", "svg")
ENGINES = ("auto", "matplotlib", "dot")


def load_drawable(source: Drawable | str | os.PathLike) -> Drawable:
    """A drawable object from an object or a JSON file (arch.json, space.json or one cell block)."""
    if isinstance(source, (Cell, SearchSpace, Network)):
        return source
    if isinstance(source, CellBlock):
        return source.cell
    if isinstance(source, (InvertedResidual, ZeroBlock, MultiBranch)):
        raise AutospaceError(f"cannot draw block {block_to_string(source)}: only cells have a DAG to draw; "
                             f"give a cell, a space.json or an arch.json")
    if not isinstance(source, (str, os.PathLike)):
        raise AutospaceError(f"cannot draw {type(source).__name__}; give a Cell, SearchSpace, Network or "
                             f"the path of a cell/space/arch JSON file")
    from autospace.runtime.parsing import read_text_file

    path = Path(source)
    text = read_text_file(path, "JSON file")  # refuses a missing, huge or endless file (/dev/zero)
    data = parse_json(text, f"cannot read {path}: it")
    try:
        return _drawable_from_dict(data)
    except AutospaceError as error:
        raise AutospaceError(f"{path}: {error}") from None


def _drawable_from_dict(data) -> Drawable:
    if not isinstance(data, dict):
        raise AutospaceError("expected a JSON object: an arch.json, a space.json or one block of type cell")
    if data.get("format") == ARCH_FORMAT:
        return arch_from_dict(data)
    if data.get("format") == SPACE_FORMAT:
        return space_from_dict(data)
    if "format" in data:
        raise AutospaceError(f"format is {data['format']!r}; allowed: {ARCH_FORMAT!r}, {SPACE_FORMAT!r}")
    if "type" not in data and "ops" in data:  # a bare cell, as `history.jsonl` stores them
        data = {"type": "cell", **data}
    block = block_from_dict(data)
    if not isinstance(block, CellBlock):
        raise AutospaceError(f"the block is of type {data.get('type')!r}; only a block of type 'cell' can be "
                             f"drawn on its own (draw the space.json or arch.json that holds it instead)")
    return block.cell


def _check_output(out: Path, engine: str) -> str:
    file_format = out.suffix.lower().lstrip(".")
    if file_format not in FORMATS:
        raise AutospaceError(f"output {out} has suffix {out.suffix or '(none)'!r}; allowed: .png, .svg")
    if engine not in ENGINES:
        raise AutospaceError(f"engine is {engine!r}; allowed: {', '.join(ENGINES)}")
    return file_format


def render(source: Drawable | str | os.PathLike, file_format: str = "png", engine: str = "auto",
           dpi: int = 110) -> bytes:
    """The picture of `source` as PNG or SVG bytes. `engine` matters for cells only."""
    _check_output(Path(f"picture.{file_format}"), engine)
    drawable = load_drawable(source)
    if isinstance(drawable, Cell):
        if engine == "dot" or (engine == "auto" and dot_available()):
            return render_cell_with_dot(drawable, file_format)
        figure = cell_figure(drawable)
    elif isinstance(drawable, SearchSpace):
        figure = space_figure(drawable)
    else:
        figure = network_figure(drawable)
    buffer = io.BytesIO()
    figure.savefig(buffer, format=file_format, dpi=dpi, metadata={"Software": None} if file_format == "png" else None)
    return buffer.getvalue()


def draw(source: Drawable | str | os.PathLike, out: str | os.PathLike, engine: str = "auto") -> Path:
    """Draw a cell, a space or a network to `out` (.png or .svg, by suffix); returns `out`."""
    out = Path(out)
    file_format = _check_output(out, engine)
    atomic_write_bytes(out, render(source, file_format, engine))
    return out


# ---- search spaces ---------------------------------------------------------------------------------

def _candidate_caption(rank: int, candidate, madds: int) -> str:
    shown = "" if candidate.fitness is None else f"  fitness {candidate.fitness:.3f}"
    shape = ""
    if isinstance(candidate.block, CellBlock):
        shape = f"  e{candidate.block.cell.expansion} {candidate.block.cell.aggregation}"
    return f"#{rank}{shown}  {madds / 1e6:.2f}M{shape}"


def _text_box(axes, x: float, y: float, width: float, height: float, text: str, font_size: float,
              face: str = "#f3f3f3") -> None:
    from matplotlib.patches import FancyBboxPatch

    axes.add_patch(FancyBboxPatch((x, y), width, height, boxstyle="round,pad=0.05", facecolor=face,
                                  edgecolor="#888888", linewidth=0.6, zorder=1))
    axes.text(x + width / 2, y + height / 2, text, fontsize=font_size, ha="center", va="center", zorder=2)


def _block_label(block, separator: str = "\n") -> str:
    """A block's name for a box; a multi-branch block lists its branches (one per line in boxes)."""
    if isinstance(block, MultiBranch):
        return "mean of" + separator + separator.join(block_to_string(branch) for branch in block.branches)
    return block_to_string(block)


def space_figure(space: SearchSpace):
    """Per layer (one row), its candidates side by side, best first as stored."""
    from matplotlib.figure import Figure

    slots = space.slots()
    columns = max(len(candidates) for candidates in space.layers)
    label_width, cell_width, gap = 2.2, LAYOUT_WIDTH, 0.35
    cell_height = LAYOUT_HEIGHT * cell_width / LAYOUT_WIDTH
    row_height = cell_height + 0.75
    width = label_width + columns * (cell_width + gap)
    height = len(space.layers) * row_height
    inch = 0.5  # figure inches per layout unit: keeps thumbnails' text legible
    figure = Figure(figsize=(width * inch, height * inch + 1.2))
    axes = figure.add_axes((0.01, 0.7 / (height * inch + 1.2), 0.98, height * inch / (height * inch + 1.2)))
    for index, (slot, candidates) in enumerate(zip(slots, space.layers)):
        top = height - index * row_height
        axes.text(0.1, top - row_height / 2, f"layer {index}\n{slot.in_channels}->{slot.out_channels}  s{slot.stride}"
                  f"\n{slot.input_size}px", fontsize=10, ha="left", va="center")
        for rank, candidate in enumerate(candidates, start=1):
            x = label_width + (rank - 1) * (cell_width + gap)
            bottom = top - row_height + 0.1
            caption = _candidate_caption(rank, candidate, block_cost(candidate.block, slot).madds)
            axes.text(x + cell_width / 2, top - 0.05, caption, fontsize=8.5, ha="center", va="top")
            if isinstance(candidate.block, CellBlock):
                draw_cell_on_axes(axes, candidate.block.cell, x, bottom, cell_width, font_size=9.5, short_names=True)
            else:
                _text_box(axes, x + 0.3, bottom + 0.3, cell_width - 0.6, cell_height - 0.6,
                          _block_label(candidate.block), font_size=9 if not isinstance(candidate.block, MultiBranch)
                          else 6.5,
                          face="#eeeeee" if isinstance(candidate.block, ZeroBlock) else "#fde9c8")
        if index:
            axes.axhline(top, color="#dddddd", linewidth=0.6)
    axes.set_xlim(0, width)
    axes.set_ylim(0, height)
    axes.set_aspect("equal")
    axes.axis("off")
    budget = space.metadata.get("budget_madds")
    suffix = f", budget {budget / 1e6:.1f}M MAdds" if budget else ""
    figure.suptitle(f"search space {space.name!r}: {len(space.layers)} layers{suffix}", fontsize=13)
    add_operator_legend(figure, font_size=9, rows=2)
    return figure


# ---- networks -----------------------------------------------------------------------------------

def network_figure(network: Network):
    """The network as a vertical strip of boxes: stem, one box per layer, head."""
    from matplotlib.figure import Figure
    from matplotlib.patches import Rectangle

    slots = network.slots()
    costs = layer_costs(network)
    total = network_cost(network)
    stem = stem_cost(network)
    head = head_cost(network, network.layers[-1].out_channels, slots[-1].output_size)
    text_width, thumb_width, row_height = 9.0, 3.6, 1.5
    width = text_width + thumb_width + 0.4
    rows = [("stem", f"conv3x3  {network.in_channels}->{network.stem_channels}  s{network.stem_stride}",
             stem.madds, None, False)]
    for slot, layer, cost in zip(slots, network.layers, costs):
        name = _block_label(layer.block, separator=" ")
        if isinstance(layer.block, CellBlock):
            name = f"cell e{layer.block.cell.expansion} {layer.block.cell.aggregation}"
        text = f"{name}  {slot.in_channels}->{slot.out_channels}  s{slot.stride}  {slot.input_size}px"
        cell = layer.block.cell if isinstance(layer.block, CellBlock) else None
        rows.append((f"{slot.index}", text, cost.madds, cell, not layer.searchable))
    rows.append(("head", f"conv1x1 {network.layers[-1].out_channels}->{network.head_channels}, pool, "
                         f"linear {network.num_classes}", head.madds, None, False))
    height = len(rows) * row_height
    inch = 0.5
    figure = Figure(figsize=(width * inch, height * inch + 1.0))
    axes = figure.add_axes((0.01, 0.02, 0.98, height * inch / (height * inch + 1.0)))
    largest = max(madds for _, _, madds, _, _ in rows) or 1
    for position, (label, text, madds, cell, fixed) in enumerate(rows):
        bottom = height - (position + 1) * row_height + 0.1
        box_height = row_height - 0.2
        face = "#fde9c8" if label in ("stem", "head") else ("#eeeeee" if fixed else "#e8f1fa")
        axes.add_patch(Rectangle((0.1, bottom), width - 0.2, box_height, facecolor=face, edgecolor="#666666",
                                 linewidth=0.7))
        axes.add_patch(Rectangle((0.1, bottom), (text_width - 0.3) * madds / largest, 0.16,
                                 facecolor="#4c72b0", edgecolor="none"))
        axes.text(0.3, bottom + box_height * 0.62, f"{label:>4}  {text}", fontsize=8.5, ha="left",
                  va="center", family="monospace")
        axes.text(0.3, bottom + box_height * 0.25, f"      {madds / 1e6:.2f}M MAdds "
                  f"({100 * madds / max(total.madds, 1):.1f}%)" + ("  fixed" if fixed else ""),
                  fontsize=7.5, ha="left", va="center", color="#333333", family="monospace")
        if cell is not None:
            thumb_height = LAYOUT_HEIGHT * thumb_width / LAYOUT_WIDTH
            draw_cell_on_axes(axes, cell, text_width, bottom + (box_height - thumb_height) / 2, thumb_width,
                              font_size=5, labels=False)
    axes.set_xlim(0, width)
    axes.set_ylim(0, height)
    axes.set_aspect("equal")
    axes.axis("off")
    figure.suptitle(f"network: {len(network.layers)} layers, {total.params:,} params, "
                    f"{total.madds / 1e6:.2f}M MAdds, {network.resolution}px input", fontsize=10)
    if any(cell is not None for *_, cell, _ in rows):
        add_operator_legend(figure, font_size=8.5)
        # the legend sits at the bottom; leave it room below the strip
        axes.set_position((0.01, 0.35 / (height * inch + 1.0), 0.98, height * inch / (height * inch + 1.0)))
    return figure
