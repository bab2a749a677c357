"""What a newcomer reads (issue 32): the noise warning's wording and thresholds, report.md's layer
numbering, accuracy and data set, and report.html's prominent notes and legible pictures."""

from __future__ import annotations

import json
import random
import re
from pathlib import Path

import pytest

from autospace.arch.blocks import CellBlock
from autospace.arch.cell import canonical, mutate, reference_cell
from autospace.arch.codec import cell_to_dict, save_arch, save_space
from autospace.arch.presets import cifar_small_skeleton
from autospace.arch.space import Candidate, SearchSpace
from autospace.evolve.config import EvolveConfig
from autospace.evolve.diagnostics import noise_warning
from autospace.report.space import write_space_table

SHOWN_WIDTH_PX = 1150  # report.html's column: max-width 1180px less padding


def test_warning_when_nothing_was_measured_says_so():
    text = noise_warning(0.45, 10, None, 0, EvolveConfig())
    assert "not measured" in text
    assert "n/a" not in text and "over 0 cells" not in text and "1.00" not in text


def test_what_helps_gives_the_current_value_and_one_to_try():
    text = noise_warning(0.12, 10, 0.01, 367, EvolveConfig(epochs=6, train_subset=4000, candidates_per_layer=8))
    assert "more epochs (now 6; try 12)" in text
    assert "candidates_per_layer now 8; try 4" in text and "train_subset now 4000" in text
    assert "epochs=6" not in text  # a value that reads as a recommendation
    assert "+0.01 over 367 cells" in text and "signal needs > 0.10" in text
    all_images = noise_warning(0.12, 10, 0.01, 367, EvolveConfig(train_subset=None))
    assert "train_subset" not in all_images  # nothing more to give


def small_space(diagnostics: dict | None = None) -> SearchSpace:
    skeleton = cifar_small_skeleton()
    rng = random.Random(0)
    layers = []
    for slot in skeleton.searchable_slots():
        cells = [reference_cell()]
        while len(cells) < 3:
            cell = mutate(cells[0], rng)
            if canonical(cell) not in {canonical(known) for known in cells} and not cell.is_empty():
                cells.append(cell)
        layers.append([Candidate(CellBlock(cell), fitness=0.1 * rank, trained_iterations=10)
                       for rank, cell in enumerate(cells)])
    metadata = {"budget_madds": 15_000_000}
    if diagnostics:
        metadata["fitness_diagnostics"] = diagnostics
    return SearchSpace(skeleton, layers, name="autospace", metadata=metadata)


def test_space_table_holds_the_persistence_to_the_warnings_threshold(tmp_path):
    diagnostics = {"heldout_top1": 0.4, "chance": 0.1, "persistence": 0.05, "persistence_pairs": 400,
                   "warning": noise_warning(0.4, 10, 0.05, 400, EvolveConfig())}
    write_space_table(tmp_path / "space.md", small_space(diagnostics))
    table = (tmp_path / "space.md").read_text()
    assert "signal: > 0" not in table
    assert table.count("signal needs > 0.10") == 2  # the figure line and the warning agree
    write_space_table(tmp_path / "none.md", small_space({**diagnostics, "persistence": None, "persistence_pairs": 0}))
    assert "n/a" not in (tmp_path / "none.md").read_text()


def fake_run(tmp_path: Path, data_dir: Path) -> Path:
    """A run folder as `autospace run` leaves it, written by hand: evolve/, search/, train/."""
    run = tmp_path / "run"
    space = small_space({"heldout_top1": 0.11, "chance": 0.1, "persistence": None, "persistence_pairs": 0,
                         "warning": noise_warning(0.11, 10, None, 0, EvolveConfig())})
    (run / "evolve").mkdir(parents=True)
    save_space(run / "evolve" / "space.json", space)
    write_space_table(run / "evolve" / "space.md", space)
    history = [{"regeneration": r, "step": 10 * r, "populations": [
        [{"cell": cell_to_dict(c.block.cell), "fitness": 0.01 * r * rank} for rank, c in enumerate(layer)]
        for layer in space.layers]} for r in range(1, 4)]
    (run / "evolve" / "history.jsonl").write_text("".join(json.dumps(record) + "\n" for record in history))
    network = space.skeleton.network([layer[0].block for layer in space.layers])
    (run / "search").mkdir()
    save_arch(run / "search" / "arch.json", network)
    (run / "search" / "search.jsonl").write_text(json.dumps({"epoch": 1, "validation_accuracy": 0.2237}) + "\n")
    (run / "search" / "result.json").write_text(json.dumps({
        "method": "proxyless-g", "space": str(run / "evolve" / "space.json"), "target_madds": 15_000_000,
        "madds": 14_000_000, "validation_accuracy": 0.2237, "argmax_madds": 6_940_000, "fitted_to_budget": True}))
    (run / "train").mkdir()
    (run / "train" / "config.yaml").write_text(f"data: cifar10\ndata_dir: {data_dir}\n")
    (run / "train" / "metrics.jsonl").write_text(json.dumps({"epoch": 1, "test_accuracy": 0.5}) + "\n")
    (run / "train" / "metrics.json").write_text(json.dumps({
        "test_top1": 63.49, "params": 100_000, "madds": 14_000_000, "data": "cifar10", "epochs": 1,
        "wall_time_s": 60.0, "device": "cpu"}))
    return run


@pytest.fixture
def run_folder(tmp_path):
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    (data_dir / "cifar10_jpeg.npz").write_bytes(b"")  # found by name; never read by the report
    return fake_run(tmp_path, data_dir)


def test_report_md_numbers_layers_once_and_names_the_data(run_folder):
    from autospace.report.markdown import write_run_report

    report = write_run_report(run_folder).read_text()
    assert "CIFAR-10 (JPEG q75 copy)" in report.split("\n\n")[1]  # the headline
    assert "22.37%" in report and "0.2237" not in report
    space_layers = {int(row.split("|")[1]) for row in report.split("## Found network")[0].splitlines()
                    if re.match(r"\| \d+ \|", row)}
    network_rows = [row.split("|")[1].strip() for row in report.split("## Found network")[1].splitlines()
                    if re.match(r"\| (\d+|fixed) \|", row)]
    assert network_rows[0] == "fixed" and "fixed" in report.split("## Found network")[1].split("|")[0]
    assert {int(number) for number in network_rows[1:]} == space_layers == set(range(11))
    head = report.split("## Stages")[0]
    assert "**Warning (evolve):**" in head and "**Note (search):**" in head
    assert "6.94M" in head


def test_report_html_puts_the_notes_up_front_and_folds_the_config(run_folder):
    from autospace.report.html import write_html_report

    (run_folder / "config.yaml").write_text("data: cifar10\n")
    page = write_html_report([run_folder]).read_text()
    first_picture = page.index("<img")
    warning, note = page.find('class="warning"><b>Warning (evolve)'), page.find('class="warning"><b>Note (search)')
    assert 0 < warning < first_picture and 0 < note < first_picture
    assert "notes below" in page[page.index('class="headline"'):warning]
    assert "<details open" not in page and "<details>" in page
    assert "CIFAR-10 (JPEG q75 copy)" in page


def smallest_text_px(figure, dpi: float, shown_width_px: float | None) -> float:
    """The smallest text of `figure` in screen pixels when drawn at `dpi` and shown `shown_width_px`
    wide (None: at its own size)."""
    from matplotlib.text import Text

    width_px = figure.get_figwidth() * dpi
    scale = 1.0 if shown_width_px is None else min(1.0, shown_width_px / width_px)
    sizes = [text.get_fontsize() for text in figure.findobj(Text) if text.get_text().strip()]
    return min(sizes) * dpi / 72 * scale


def test_pictures_in_the_report_have_legible_text(run_folder):
    from autospace.arch.codec import load_space
    from autospace.report.show import space_figure
    from autospace.report.space import FITNESS_PLOT_DPI, fitness_figure

    space = load_space(run_folder / "evolve" / "space.json")
    figure = fitness_figure(run_folder / "evolve" / "history.jsonl", space)
    assert smallest_text_px(figure, FITNESS_PLOT_DPI, SHOWN_WIDTH_PX) >= 8
    legends = [text.get_text() for axis in figure.axes if axis.get_legend() for text in axis.get_legend().get_texts()]
    assert any(text.endswith(",identity,zero,zero") or text.count(",") == 5 for text in legends)  # full names
    # the space picture is shown at its own size (report.html: class "wide"), drawn at 110 dpi
    assert smallest_text_px(space_figure(space), 110, None) >= 8
