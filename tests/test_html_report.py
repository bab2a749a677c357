"""`autospace.report.html`: one self-contained report.html for one or several run folders.

The run folders are fabricated with the schema `autospace run` writes (keys
copied from a real run's files); a browser test renders the report with
headless Chromium when it is installed and is skipped otherwise.
"""

import base64
import binascii
import io
import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest
from PIL import Image

from autospace.arch import CellBlock, SearchSpace, save_arch, save_space
from autospace.arch.codec import cell_to_dict
from autospace.cost import network_cost
from autospace.errors import AutospaceError
from autospace.report.html import summarize_run, write_html_report

from test_show import small_network, small_space

# A real `autospace run`, as small as it goes (about 10 s on 2 cores): 8x8 synthetic images, a 1M budget.
REAL_RUN_OVERRIDES = [
    "data=synthetic:96,32", "image_size=8", "budget_madds=1000000", "device=cpu", "progress=false",
    "evolve.preset=cifar-small", "evolve.epochs=1", "evolve.batch_size=16", "evolve.population_size=4",
    "evolve.candidates_per_layer=2", "evolve.top_k=2", "evolve.regenerate_every=2", "evolve.warmup_epochs=0.5",
    "search.epochs=2", "search.warmup_epochs=1", "search.batch_size=16", "search.arch_every=1",
    "train.epochs=1", "train.batch_size=16", "train.warmup_epochs=0"]
IMAGE = re.compile(r"<img\b[^>]*>")
SOURCE = re.compile(r'src="([^"]*)"')
CHROMIUM = shutil.which("chromium") or (Path("/usr/bin/chromium").is_file() and "/usr/bin/chromium") or None


def _lines(path: Path, records) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(record) + "\n" for record in records))


def _json(path: Path, value) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(value, indent=2))


def cells_only(space: SearchSpace) -> SearchSpace:
    """A space as the DEA writes it: cells only."""
    layers = [tuple(c for c in layer if isinstance(c.block, CellBlock)) for layer in space.layers]
    return SearchSpace(space.skeleton, tuple(layers), space.name, space.metadata)


def make_run(root: Path, space="learned", method="proxyless-g", test_top1=61.5, finished=True) -> Path:
    """A run folder as `autospace run` leaves it (no checkpoints)."""
    root.mkdir(parents=True)
    (root / "config.yaml").write_text(f"# RunConfig, resolved\ndata: synthetic\nsearch_method: {method}\n"
                                      f"space_method: {'autospace' if space == 'learned' else 'manual'}\n")
    learned = cells_only(small_space())
    target = 5_000_000
    if space == "learned":
        evolve = root / "evolve"
        save_space(evolve / "space.json", learned)
        space_data = json.loads((evolve / "space.json").read_text())
        space_data["metadata"]["wall_time_s"] = 12.5
        _json(evolve / "space.json", space_data)
        _lines(evolve / "history.jsonl", [
            {"regeneration": r, "step": 30 * r, "epoch": r // 3, "weight_loss": 2.4 - 0.05 * r,
             "fitness_loss": 0.0 if r == 1 else 2.3 - 0.04 * r, "fitness_steps": 0 if r == 1 else 30,
             "constrained": r < 3,
             "populations": [[{"cell": cell_to_dict(c.block.cell), "fitness": c.fitness * r / 5, "age": r,
                               "count": 6} for c in layer] for layer in learned.layers],
             "elapsed_seconds": 2.5 * r}
            for r in range(1, 6)])
    search = root / "search"
    network = small_network()
    cost = network_cost(network)
    if method == "spos":
        records = [{"phase": "supernet", "epoch": e, "train_loss": 2.3 - 0.1 * e, "lr": 0.05,
                    "epoch_seconds": 3.0, "elapsed_seconds": 3.0 * e} for e in range(1, 4)]
        records += [{"phase": "evolution", "generation": g, "best_accuracy": 0.2 + 0.01 * g,
                     "mean_top_accuracy": 0.15 + 0.01 * g, "best_madds": 4_000_000 + 1000 * g,
                     "elapsed_seconds": 10.0 + g} for g in range(0, 4)]
    else:
        records = [{"epoch": e, "train_loss": 2.4 - 0.1 * e, "arch_loss": None if e < 2 else 0.5,
                    "validation_loss": 2.5 - 0.1 * e, "validation_accuracy": 0.1 + 0.02 * e,
                    "expected_madds": 4.5e6 - 1e4 * e, "argmax": [0, 1, 0], "argmax_madds": 4_600_000,
                    "target_madds": target, "lr": 0.05, "epoch_seconds": 3.0, "elapsed_seconds": 3.0 * e,
                    "argmax_blocks": network.describe()} for e in range(1, 4)]
    _lines(search / "search.jsonl", records)
    result = {"method": method, "space": str(root / "evolve" / "space.json") if space == "learned" else "manual",
              "target_madds": target, "madds": cost.madds, "params": cost.params,
              "madds_over_target": cost.madds / target, "within_budget": True, "validation_accuracy": 0.16,
              "wall_time_s": 9.0}
    _json(search / "result.json", result)
    save_arch(search / "arch.json", network, info=result)
    train = root / "train"
    _lines(train / "metrics.jsonl", [
        {"epoch": e, "step": 10 * e, "train_loss": 2.2 - 0.2 * e, "train_accuracy": 0.2 + 0.1 * e,
         "test_loss": 2.1 - 0.2 * e, "test_accuracy": None if e == 2 else 0.25 + 0.1 * e, "lr": 0.05,
         "images_per_second": 100.0, "epoch_seconds": 4.0, "elapsed_seconds": 4.0 * e} for e in range(1, 5)])
    if finished:
        save_arch(train / "arch.json", network, {"params": cost.params, "madds": cost.madds})
        _json(train / "metrics.json", {
            "test_top1": test_top1, "test_accuracy": test_top1 / 100, "test_loss": 1.2, "train_loss": 1.4,
            "train_accuracy": 0.57, "params": cost.params, "madds": cost.madds, "wall_time_s": 16.0, "epochs": 4,
            "steps": 40, "images_per_second": 100.0, "train_images": 1000, "test_images": 1000,
            "data": "synthetic", "device": "cpu", "precision": "fp32", "channels_last": False,
            "hardware": {"device": "cpu", "cpu_count": 2, "cuda_version": None}, "seed": 0,
            "torch_version": "2.13.0+cpu"})
    return root


def image_sources(text: str) -> list[str]:
    return [SOURCE.search(tag).group(1) for tag in IMAGE.findall(text)]


def assert_self_contained(path: Path, minimum_images: int) -> str:
    text = path.read_text(encoding="utf-8")
    assert text.startswith("<!DOCTYPE html>") and text.rstrip().endswith("</html>")
    assert "<script" not in text.lower()
    assert not re.search(r'(src|href)="(?!data:|#)', text), "every resource is inline"
    assert "url(" not in text  # no CSS resources either
    sources = image_sources(text)
    assert len(sources) >= minimum_images
    for source in sources:
        assert source.startswith("data:image/png;base64,")
        try:
            data = base64.b64decode(source.split(",", 1)[1], validate=True)
        except binascii.Error as error:
            pytest.fail(f"an image's data URI is not valid base64: {error}")
        with Image.open(io.BytesIO(data)) as image:
            image.verify()
        with Image.open(io.BytesIO(data)) as image:
            assert image.format == "PNG" and image.size[0] > 50 and image.size[1] > 50
    return text


def test_full_run_report_has_every_section(tmp_path):
    run = make_run(tmp_path / "run-a")
    path = write_html_report([run])
    assert path == run / "report.html"
    # evolve curves, re-plotted fitness, learned space, search curves, network, training curves
    text = assert_self_contained(path, minimum_images=6)
    for heading in ("Space evolution", "Learned space", "Search", "Found network", "Final training",
                    "Resolved config"):
        assert f"<h3>{heading}</h3>" in text, heading
    assert "Test top-1 <b>61.50%</b>" in text
    assert "search_method: proxyless-g" in text  # the resolved config
    assert "Comparison" not in text  # only with several runs


def test_a_space_no_network_of_which_fits_the_budget_is_flagged(tmp_path):
    run = make_run(tmp_path / "run")
    space_path = run / "evolve" / "space.json"
    data = json.loads(space_path.read_text())
    summary = {"budget_madds": 10_000_000, "cheapest_madds": 22_700_000, "uniform_mean_madds": 24_900_000,
               "costliest_madds": 27_400_000, "smallest_searchable_madds": 11_100_000,
               "cheapest_over_budget": 2.27, "uniform_mean_over_budget": 2.49, "costliest_over_budget": 2.74}
    data["metadata"]["space_madds"] = summary
    _json(space_path, data)
    assert "no network of this space fits the budget" in write_html_report([run]).read_text()
    data["metadata"]["space_madds"] = dict(summary, smallest_searchable_madds=9_000_000)
    _json(space_path, data)
    text = write_html_report([run]).read_text()
    assert "no network of this space fits" not in text and "2.27x (cheapest)" in text


def test_space_with_other_blocks_and_a_given_fitness_plot(tmp_path):
    run = make_run(tmp_path / "run")
    save_space(run / "evolve" / "space.json", small_space())  # irb and zero candidates: no fitness traces
    assert "final top cells" not in write_html_report([run]).read_text()
    buffer = io.BytesIO()
    Image.new("RGB", (80, 60), "red").save(buffer, format="PNG")
    (run / "evolve" / "fitness.png").write_bytes(buffer.getvalue())
    text = assert_self_contained(write_html_report([run]), minimum_images=6)
    assert base64.b64encode(buffer.getvalue()).decode() in text  # embedded as it is


def test_manual_spos_run_without_evolve_is_skipped_gracefully(tmp_path):
    run = make_run(tmp_path / "manual", space="manual", method="spos")
    (run / "evolve").mkdir()  # an empty folder is no stage
    text = assert_self_contained(write_html_report([run], out=tmp_path / "out.html"), minimum_images=3)
    assert "No evolve stage" in text and "<h3>Found network</h3>" in text
    assert summarize_run(run)["space"] == "manual"


def test_unfinished_run(tmp_path):
    run = make_run(tmp_path / "running", finished=False)
    (run / "search" / "result.json").unlink()
    text = assert_self_contained(write_html_report([run]), minimum_images=3)
    assert "no result.json yet" in text and "no metrics.json yet" in text


def test_comparison_of_learned_and_manual_runs(tmp_path):
    learned = make_run(tmp_path / "learned", test_top1=63.0)
    manual = make_run(tmp_path / "manual", space="manual", test_top1=58.0)
    out_dir = tmp_path / "reports"
    out_dir.mkdir()
    path = write_html_report([learned, manual], out=out_dir)
    assert path == out_dir / "report.html"
    text = assert_self_contained(path, minimum_images=10)
    assert "<h2>Comparison</h2>" in text
    assert "learned (learned space)" in text and "manual (manual space)" in text
    assert text.count("<h2 id=\"run-") == 2
    labelled = write_html_report([learned, manual], out=tmp_path / "labelled.html", labels=["ours", "baseline"])
    assert "ours" in labelled.read_text() and "baseline" in labelled.read_text()


def test_bad_input(tmp_path):
    with pytest.raises(AutospaceError, match="no run folder"):
        write_html_report([])
    with pytest.raises(AutospaceError, match="does not exist"):
        write_html_report([tmp_path / "nothing"])
    (tmp_path / "empty").mkdir()
    with pytest.raises(AutospaceError, match="holds no autospace run"):
        write_html_report([tmp_path / "empty"])
    run = make_run(tmp_path / "run")
    with pytest.raises(AutospaceError, match="one label per folder"):
        write_html_report([run], labels=["a", "b"])


def test_real_run_folder(tmp_path):
    """A folder a real (tiny) `autospace run` wrote, not a fabricated one; without its weights."""
    from autospace.pipeline import load_run_config, run_pipeline

    run_pipeline(load_run_config(None, REAL_RUN_OVERRIDES), tmp_path / "run")
    copy = tmp_path / "run-quick"
    shutil.copytree(tmp_path / "run", copy, ignore=shutil.ignore_patterns("*.pt", "report.html"))
    text = assert_self_contained(write_html_report([copy]), minimum_images=6)
    assert "Learned space" in text


def _chromium(*arguments, profile: Path) -> subprocess.CompletedProcess:
    return subprocess.run([CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                           "--disable-component-update", "--no-first-run", f"--user-data-dir={profile}",
                           *arguments], capture_output=True, text=True, timeout=120, check=False)


IMAGE_CHECK = ('<script>window.addEventListener("load", () => { const p = document.createElement("pre");'
               ' p.id = "image-check"; p.textContent = [...document.images].map(i => i.complete &&'
               ' i.naturalWidth > 0 ? "ok" : "bad").join(","); document.body.appendChild(p); });</script>')


@pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed (Debian package `chromium`)")
def test_report_renders_in_headless_chromium(tmp_path):
    path = write_html_report([make_run(tmp_path / "learned"), make_run(tmp_path / "manual", space="manual")],
                             out=tmp_path / "report.html")
    screenshot = tmp_path / "screenshot.png"
    done = _chromium(f"--screenshot={screenshot}", "--window-size=1200,3000", path.as_uri(),
                     profile=tmp_path / "profile-1")
    assert screenshot.is_file(), done.stderr[-2000:]
    with Image.open(screenshot) as image:
        assert image.size == (1200, 3000)
        assert image.convert("L").getextrema()[0] < 100  # something was drawn

    # The report has no script; a copy gets one that records, after load, whether each image decoded.
    # One deliberately broken image shows the check can fail.
    count = len(image_sources(path.read_text()))
    checked = tmp_path / "checked.html"
    broken = '<img alt="broken" src="data:image/png;base64,AAAA">'
    checked.write_text(path.read_text().replace("</body>", broken + IMAGE_CHECK + "</body>"))
    done = _chromium("--dump-dom", checked.as_uri(), profile=tmp_path / "profile-2")
    found = re.search(r'<pre id="image-check">([^<]*)</pre>', done.stdout)
    assert found, done.stderr[-2000:]
    assert found.group(1).split(",") == ["ok"] * count + ["bad"]


def test_supernet_learning_curves_beside_the_stand_alone_network(tmp_path):
    run = make_run(tmp_path / "run")
    without = write_html_report([run], out=tmp_path / "without.html").read_text()
    assert "Do the supernets learn?" not in without  # no images_seen in these records: no figure
    for path, key, scale in (("evolve/history.jsonl", "step", 64), ("search/search.jsonl", "epoch", 800),
                             ("train/metrics.jsonl", "step", 32)):
        records = [json.loads(line) for line in (run / path).read_text().splitlines()]
        for index, record in enumerate(records):
            record["images_seen"] = record[key] * scale
            if path.startswith("evolve"):
                record["heldout_top1"] = 0.1 + 0.05 * index
        _lines(run / path, records)
    text = assert_self_contained(write_html_report([run], out=tmp_path / "with.html"), minimum_images=7)
    assert "Do the supernets learn?" in text and "trained alone" in text
    assert len(image_sources(text)) == len(image_sources(without)) + 1
