"""`autospace.report.show`: a cell, a space and a network drawn to valid PNG and SVG files."""

import json
import random
import shutil
import xml.etree.ElementTree as ElementTree

import pytest
from PIL import Image

from autospace.arch import (
    Candidate, Cell, CellBlock, InvertedResidual, SearchSpace, Skeleton, Stage, ZeroBlock, reference_cell,
    save_arch, save_space,
)
from autospace.arch.cell import canonical, mutate
from autospace.arch.codec import block_to_dict, cell_to_dict
from autospace.errors import AutospaceError
from autospace.report.show import draw, load_drawable, render
from autospace.report.show_cell import cell_to_dot, live_edges

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
RICH_CELL = Cell(("dwconv3x3", "conv1x1", "conv3x3", "identity", "dwconv3x3", "conv1x1"), 3, "concat")


def small_skeleton() -> Skeleton:
    return Skeleton(stages=(Stage(16, 2, 1), Stage(24, 1, 2)), stem_channels=16, head_channels=64)


def small_space() -> SearchSpace:
    """Three searchable layers: learned cells with fitness, plus an irb and a zero candidate."""
    rng = random.Random(0)
    layers = []
    for index, slot in enumerate(small_skeleton().searchable_slots()):
        cells, seen = [], set()
        cell = reference_cell()
        while len(cells) < 3:
            cell = mutate(cell, rng)
            if not cell.is_empty() and canonical(cell) not in seen:
                seen.add(canonical(cell))
                cells.append(Candidate(CellBlock(cell), fitness=0.5 - 0.1 * len(cells), trained_iterations=30))
        cells.append(Candidate(InvertedResidual(kernel=5, expansion=3)))
        if slot.has_residual and index == 0:
            cells.append(Candidate(ZeroBlock()))
        layers.append(tuple(cells))
    return SearchSpace(small_skeleton(), tuple(layers), name="learned", metadata={"budget_madds": 5_000_000})


def small_network():
    blocks = [CellBlock(RICH_CELL), ZeroBlock(), InvertedResidual(kernel=3, expansion=6)]
    return small_skeleton().network(blocks)


def assert_png(path, min_size=(100, 100)):
    data = path.read_bytes()
    assert data.startswith(PNG_SIGNATURE)
    with Image.open(path) as image:
        image.verify()
    with Image.open(path) as image:
        assert image.format == "PNG"
        assert image.size[0] >= min_size[0] and image.size[1] >= min_size[1]
        # not a blank page: some pixels are dark
        assert image.convert("L").getextrema()[0] < 100


def assert_svg(path):
    root = ElementTree.parse(path).getroot()
    assert root.tag.endswith("svg")
    assert len(list(root.iter())) > 10


@pytest.mark.parametrize("suffix", ["png", "svg"])
def test_cell_drawn_with_matplotlib(tmp_path, suffix):
    out = draw(RICH_CELL, tmp_path / f"cell.{suffix}", engine="matplotlib")
    assert out == tmp_path / f"cell.{suffix}"
    (assert_png if suffix == "png" else assert_svg)(out)


def test_cell_from_json_block_and_bare_cell(tmp_path):
    block_file = tmp_path / "block.json"
    block_file.write_text(json.dumps(block_to_dict(CellBlock(RICH_CELL))))
    assert load_drawable(block_file) == RICH_CELL
    bare = tmp_path / "bare.json"  # the form history.jsonl stores
    bare.write_text(json.dumps(cell_to_dict(reference_cell())))
    assert load_drawable(bare) == reference_cell()
    assert_png(draw(block_file, tmp_path / "block.png", engine="matplotlib"))
    assert load_drawable(CellBlock(RICH_CELL)) == RICH_CELL


def test_empty_cell_and_dead_edges_are_drawn(tmp_path):
    dead = Cell(("dwconv3x3", "zero", "zero", "conv3x3", "zero", "identity"), 1, "sum")
    assert live_edges(dead) == {(0, 3)}
    assert_png(draw(dead, tmp_path / "dead.png", engine="matplotlib"))
    empty = Cell(("zero",) * 6, 1, "sum")
    assert live_edges(empty) == set()
    assert_png(draw(empty, tmp_path / "empty.png", engine="matplotlib"))


@pytest.mark.parametrize("suffix", ["png", "svg"])
def test_space_file_drawn(tmp_path, suffix):
    space_file = tmp_path / "space.json"
    save_space(space_file, small_space())
    out = draw(space_file, tmp_path / f"space.{suffix}")
    (assert_png if suffix == "png" else assert_svg)(out)
    if suffix == "png":  # same data, same picture
        assert render(small_space(), "png") == out.read_bytes()


@pytest.mark.parametrize("suffix", ["png", "svg"])
def test_network_file_drawn(tmp_path, suffix):
    arch_file = tmp_path / "arch.json"
    save_arch(arch_file, small_network(), {"madds": 1})
    out = draw(arch_file, tmp_path / f"network.{suffix}")
    (assert_png if suffix == "png" else assert_svg)(out)


def test_cell_dot_source_omits_zero_edges():
    source = cell_to_dot(reference_cell())
    assert source.count("->") == 4  # in->0, 0->1, 1->3, 3->out
    assert "zero" not in source and "dwconv3x3" in source and "e=6" in source


@pytest.mark.skipif(shutil.which("dot") is None, reason="Graphviz `dot` is not installed")
@pytest.mark.parametrize("suffix", ["png", "svg"])
def test_cell_drawn_with_graphviz(tmp_path, suffix):
    out = draw(RICH_CELL, tmp_path / f"cell.{suffix}", engine="dot")
    (assert_png if suffix == "png" else assert_svg)(out)
    assert render(RICH_CELL, suffix, engine="auto") == out.read_bytes()  # auto picks dot when present


def test_draw_rejects_bad_input(tmp_path):
    with pytest.raises(AutospaceError, match="allowed: .png, .svg"):
        draw(RICH_CELL, tmp_path / "cell.jpg")
    with pytest.raises(AutospaceError, match="engine"):
        draw(RICH_CELL, tmp_path / "cell.png", engine="tikz")
    with pytest.raises(AutospaceError, match="does not exist"):
        draw(tmp_path / "missing.json", tmp_path / "x.png")
    irb = tmp_path / "irb.json"
    irb.write_text(json.dumps(block_to_dict(InvertedResidual())))
    with pytest.raises(AutospaceError, match="only a block of type 'cell'"):
        draw(irb, tmp_path / "x.png")
    with pytest.raises(AutospaceError, match="only cells"):
        draw(ZeroBlock(), tmp_path / "x.png")
    broken = tmp_path / "broken.json"
    broken.write_text("{not json")
    with pytest.raises(AutospaceError, match="cannot read"):
        draw(broken, tmp_path / "x.png")
    other = tmp_path / "other.json"
    other.write_text(json.dumps({"format": "autospace.other/9"}))
    with pytest.raises(AutospaceError, match="format"):
        draw(other, tmp_path / "x.png")
    assert not (tmp_path / "x.png").exists()
