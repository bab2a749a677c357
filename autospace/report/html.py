"""`autospace report`: one self-contained report.html for one or more run folders.

Plain HTML and CSS, no script, no external resource: every picture is a PNG
embedded as a base64 data URI, so the file can be mailed or archived alone.
Per run: summary, evolve (fitness curves, learned cells), search (loss,
held-out accuracy, MAdds against the target), found network, final training
(curves, metrics) and the resolved config. Given several runs, it opens with
an accuracy-vs-MAdds scatter of their networks and a comparison table. A stage
a run lacks (no evolve/ in a manual-space run, a run still training) is
skipped with a note. Plots use matplotlib's object API (no pyplot state).
"""

from __future__ import annotations

import base64
import html
import io
import os
from pathlib import Path

from autospace.runtime.atomic import atomic_write_text, read_jsonl, read_optional_json
from autospace.errors import AutospaceError
from autospace.report.manual_reference import manual_comparison
from autospace.report.markdown import data_label, read_optional_yaml, run_notices

STAGE_MARKERS = {"evolve": "history.jsonl", "search": "search.jsonl", "train": "metrics.jsonl"}
CSS = """
body { font-family: -apple-system, "Segoe UI", Helvetica, Arial, sans-serif; max-width: 1180px;
       margin: 24px auto; padding: 0 16px; color: #222; line-height: 1.45; }
h1 { border-bottom: 2px solid #4c72b0; padding-bottom: 4px; }
h2 { margin-top: 2.2em; border-bottom: 1px solid #ccc; }
h3 { margin-top: 1.6em; }
img { max-width: 100%; height: auto; border: 1px solid #eee; }
table { border-collapse: collapse; margin: 0.8em 0; font-size: 0.92em; }
th, td { border: 1px solid #ccc; padding: 3px 9px; text-align: left; max-width: 760px; overflow-wrap: anywhere; }
th { background: #f0f4fa; }
td.number { text-align: right; font-variant-numeric: tabular-nums; }
pre { background: #f7f7f7; padding: 10px; overflow-x: auto; font-size: 0.85em; }
.note { color: #777; font-style: italic; }
.headline { font-size: 1.15em; background: #f0f4fa; padding: 8px 12px; border-left: 4px solid #4c72b0; }
.warning { font-size: 1.05em; background: #fff4e0; padding: 8px 12px; border-left: 4px solid #d98200; }
.wide { overflow-x: auto; }
.wide img { max-width: none; }
"""


# ---- reading a run folder ---------------------------------------------------------------------

def stage_dir(run_dir: Path, stage: str) -> Path | None:
    """The folder of a stage: RUN/stage in a run folder, or RUN itself when it is that stage's output."""
    for candidate in (run_dir / stage, run_dir):
        if (candidate / STAGE_MARKERS[stage]).is_file():
            return candidate
    return None


def summarize_run(run_dir: Path, label: str | None = None) -> dict:
    """The figures a comparison needs, from whatever the run folder holds."""
    search, train, evolve = stage_dir(run_dir, "search"), stage_dir(run_dir, "train"), stage_dir(run_dir, "evolve")
    result = (read_optional_json(search / "result.json") if search else None) or {}
    metrics = (read_optional_json(train / "metrics.json") if train else None) or {}
    space = result.get("space")
    if space is None:
        kind = "learned" if evolve else "unknown"
    elif str(space) == "manual":
        kind = "manual"
    elif str(space).endswith(".json"):
        kind = "learned"
    else:
        kind = str(space)
    evolve_space = (read_optional_json(evolve / "space.json") if evolve else None) or {}
    train_config = (read_optional_yaml(train / "config.yaml") if train else None) or {}
    times = {"evolve": evolve_space.get("metadata", {}).get("wall_time_s"),
             "search": result.get("wall_time_s"), "train": metrics.get("wall_time_s")}
    return {
        "name": run_dir.resolve().name, "label": label or f"{run_dir.resolve().name} ({kind} space)",
        "space": kind, "method": result.get("method"), "target_madds": result.get("target_madds"),
        "madds": metrics.get("madds", result.get("madds")), "params": metrics.get("params", result.get("params")),
        "validation_accuracy": result.get("validation_accuracy"), "test_top1": metrics.get("test_top1"),
        "wall_time_s": sum(value for value in times.values() if value) or None, "times": times,
        "data": data_label(metrics.get("data"), train_config.get("data_dir")),
    }


# ---- pictures ---------------------------------------------------------------------------------

def _png(figure, dpi: int = 100) -> bytes:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=dpi, metadata={"Software": None})
    return buffer.getvalue()


def _img(png: bytes, alt: str) -> str:
    return (f'<img alt="{html.escape(alt)}" src="data:image/png;base64,'
            f'{base64.b64encode(png).decode("ascii")}">')


def _panels(count: int, width: float = 4.2, height: float = 3.0):
    from matplotlib.figure import Figure
    from matplotlib.ticker import MaxNLocator

    figure = Figure(figsize=(width * count, height), layout="constrained")
    axes = figure.subplots(1, count, squeeze=False)[0]
    for axis in axes:
        axis.xaxis.set_major_locator(MaxNLocator(integer=True))  # epochs, steps, generations
        axis.grid(True, alpha=0.3)
        axis.tick_params(labelsize=8)
    return figure, axes


def _series(records: list[dict], x_key: str, y_key: str, scale: float = 1.0):
    points = [(r[x_key], r[y_key] * scale) for r in records
              if isinstance(r.get(x_key), (int, float)) and isinstance(r.get(y_key), (int, float))]
    return ([p[0] for p in points], [p[1] for p in points]) if points else ([], [])


def _plot(axis, records, x_key, y_key, label, scale=1.0, **style) -> bool:
    xs, ys = _series(records, x_key, y_key, scale)
    if xs:
        axis.plot(xs, ys, marker=".", label=label, **style)
    return bool(xs)


def _finish(axis, title: str, xlabel: str, ylabel: str) -> None:
    axis.set_title(title, fontsize=10)
    axis.set_xlabel(xlabel, fontsize=9)
    axis.set_ylabel(ylabel, fontsize=9)
    if axis.get_legend_handles_labels()[0]:
        axis.legend(fontsize=7)


def evolve_curves_png(history: list[dict]) -> bytes | None:
    """Supernet losses per regeneration and the best fitness per layer averaged over layers."""
    figure, (losses, fitness) = _panels(2, width=5.0)
    drawn = _plot(losses, history, "step", "weight_loss", "weight loss (train)")
    drawn |= _plot(losses, [r for r in history if r.get("fitness_steps", 1)], "step", "fitness_loss",
                   "fitness loss (held-out)")
    _finish(losses, "evolve: supernet losses", "step", "loss")
    best = [{"step": r["step"], "best": sum(max(e["fitness"] for e in p) for p in r["populations"])
             / len(r["populations"])} for r in history
            if "step" in r and r.get("populations") and all(r["populations"])]
    drawn |= _plot(fitness, best, "step", "best", "best fitness, mean over layers")
    _finish(fitness, "evolve: population fitness", "step", "fitness (alpha)")
    return _png(figure) if drawn else None


def learning_curves_png(evolve_history: list[dict], search_records: list[dict], train_records: list[dict],
                        chance: float | None = None) -> bytes | None:
    """Top-1 against images seen: the DEA supernet (paths drawn from it), the search supernet (the
    path it would return), both BN-recalibrated on held-out images, and the stand-alone network of
    the final training on the test set, the reference a supernet path would reach alone."""
    figure, (axis,) = _panels(1, width=6.0, height=3.4)
    drawn = _plot(axis, evolve_history, "images_seen", "heldout_top1", "DEA supernet, drawn paths (held-out)", 100)
    drawn |= _plot(axis, [r for r in search_records if not r.get("phase")], "images_seen", "validation_accuracy",
                   "search supernet, returned path (held-out)", 100)
    drawn |= _plot(axis, train_records, "images_seen", "test_accuracy", "stand-alone network, final training (test)",
                   100, linestyle="--")
    if drawn and chance:
        axis.axhline(100 * chance, color="grey", linestyle=":", label="chance")
    _finish(axis, "Do the supernets learn?", "images seen", "top-1 (%)")
    return _png(figure) if drawn else None


def search_curves_png(records: list[dict], target: int | None) -> bytes | None:
    """proxyless: loss, held-out accuracy, MAdds per epoch; spos: supernet loss, evolution accuracy, MAdds."""
    if any(r.get("phase") for r in records):
        supernet = [r for r in records if r.get("phase") == "supernet"]
        evolution = [r for r in records if r.get("phase") == "evolution"]
        figure, (loss, accuracy, madds) = _panels(3)
        drawn = _plot(loss, supernet, "epoch", "train_loss", "supernet train loss")
        _finish(loss, "spos: supernet training", "epoch", "loss")
        drawn |= _plot(accuracy, evolution, "generation", "best_accuracy", "best", 100)
        drawn |= _plot(accuracy, evolution, "generation", "mean_top_accuracy", "mean of top", 100)
        _finish(accuracy, "spos: evolution, held-out accuracy", "generation", "accuracy (%)")
        drawn |= _plot(madds, evolution, "generation", "best_madds", "best network", 1e-6)
        x_label = "generation"
    else:
        figure, (loss, accuracy, madds) = _panels(3)
        drawn = _plot(loss, records, "epoch", "train_loss", "train loss")
        drawn |= _plot(loss, records, "epoch", "validation_loss", "held-out loss")
        drawn |= _plot(loss, records, "epoch", "arch_loss", "architecture loss")
        _finish(loss, "search: losses", "epoch", "loss")
        drawn |= _plot(accuracy, records, "epoch", "validation_accuracy", "held-out (returned network)", 100)
        _finish(accuracy, "search: held-out accuracy", "epoch", "accuracy (%)")
        drawn |= _plot(madds, records, "epoch", "expected_madds", "expected", 1e-6)
        drawn |= _plot(madds, records, "epoch", "argmax_madds", "argmax network", 1e-6)
        drawn |= _plot(madds, records, "epoch", "choice_madds", "returned network (fitted to the budget)", 1e-6)
        target = target or next((r["target_madds"] for r in records if r.get("target_madds")), None)
        x_label = "epoch"
    if target:
        madds.axhline(target / 1e6, color="#d62728", linestyle="--", label=f"target {target / 1e6:.1f}M")
    _finish(madds, "search: MAdds vs target", x_label, "MAdds (M)")
    return _png(figure) if drawn else None


def train_curves_png(records: list[dict]) -> bytes | None:
    figure, (loss, accuracy) = _panels(2, width=5.0)
    drawn = _plot(loss, records, "epoch", "train_loss", "train")
    drawn |= _plot(loss, records, "epoch", "test_loss", "test")
    _finish(loss, "training: loss", "epoch", "loss")
    drawn |= _plot(accuracy, records, "epoch", "train_accuracy", "train", 100)
    drawn |= _plot(accuracy, records, "epoch", "test_accuracy", "test", 100)
    _finish(accuracy, "training: accuracy", "epoch", "accuracy (%)")
    return _png(figure) if drawn else None


def comparison_png(summaries: list[dict]) -> bytes | None:
    """Accuracy vs MAdds of the runs' networks: test top-1 (filled) or held-out accuracy (hollow)."""
    from matplotlib.ticker import AutoLocator

    figure, (axis,) = _panels(1, width=7.5, height=4.8)
    axis.xaxis.set_major_locator(AutoLocator())  # MAdds are not integers
    colors = {"learned": "#2ca02c", "manual": "#1f77b4"}
    drawn = False
    for summary in summaries:
        tested = summary["test_top1"] is not None
        accuracy = summary["test_top1"] if tested else (
            None if summary["validation_accuracy"] is None else 100 * summary["validation_accuracy"])
        if summary["madds"] is None or accuracy is None:
            continue
        color = colors.get(summary["space"], "#9467bd")
        axis.scatter([summary["madds"] / 1e6], [accuracy], s=60, color=color if tested else "none",
                     edgecolors=color, linewidths=1.5, zorder=3)
        axis.annotate(summary["label"] + ("" if tested else " (held-out)"), (summary["madds"] / 1e6, accuracy),
                      textcoords="offset points", xytext=(6, 5), fontsize=8)
        drawn = True
    for target in sorted({s["target_madds"] for s in summaries if s["target_madds"]}):
        axis.axvline(target / 1e6, color="#d62728", linestyle=":", alpha=0.6)
    axis.margins(0.25)
    _finish(axis, "found networks: accuracy vs MAdds (dotted: targets)", "MAdds (M)", "top-1 accuracy (%)")
    return _png(figure) if drawn else None


# ---- HTML ---------------------------------------------------------------------------------------

def _number(value, digits: int = 2) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return html.escape(str(value))
    return f"{value:,}" if isinstance(value, int) else f"{value:,.{digits}f}"


def _table(header: list[str], rows: list[list], numeric: set[int] = frozenset()) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    body = "".join(
        "<tr>" + "".join(f'<td class="number">{_number(cell)}</td>' if column in numeric
                         else f"<td>{_number(cell)}</td>" for column, cell in enumerate(row)) + "</tr>"
        for row in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def _note(text: str) -> str:
    return f'<p class="note">{html.escape(text)}</p>'


def _warning(kind: str, text: str) -> str:
    return f'<p class="warning"><b>{html.escape(kind)}:</b> {html.escape(text[0].upper() + text[1:])}</p>'


def _wide_img(png: bytes, alt: str) -> str:
    """A picture shown at its own size (scrolling sideways when wider than the page), so its text is
    as large as it was drawn."""
    return f'<div class="wide">{_img(png, alt)}</div>'


def _madds(value) -> str:
    return "-" if value is None else f"{value / 1e6:.2f}M"


def _evolve_section(run_dir: Path) -> list[str]:
    from autospace.report.notes import unreachable_budget_warning
    from autospace.report.show import render

    parts = ["<h3>Space evolution</h3>"]
    evolve = stage_dir(run_dir, "evolve")
    if evolve is None:
        return parts + [_note("No evolve stage in this run (a built-in or given space was searched).")]
    space_path = evolve / "space.json"
    history = read_jsonl(evolve / "history.jsonl")
    curves = evolve_curves_png(history)
    if curves:
        parts.append(_img(curves, "evolve losses and fitness"))
    if (evolve / "fitness.png").is_file():
        parts += ["<p>Fitness of each layer's final top cells while they were in the population:</p>",
                  _img((evolve / "fitness.png").read_bytes(), "fitness of the final top cells")]
    elif space_path.is_file() and history and "populations" in history[-1]:
        import tempfile

        from autospace.arch.blocks import CellBlock
        from autospace.arch.codec import load_space
        from autospace.report.space import write_fitness_plot

        space = load_space(space_path)
        # the DEA's traces follow cells through the populations; other blocks have none
        if all(isinstance(c.block, CellBlock) for layer in space.layers for c in layer):
            with tempfile.TemporaryDirectory() as folder:
                write_fitness_plot(Path(folder) / "fitness.png", evolve / "history.jsonl", space)
                parts += ["<p>Fitness of each layer's final top cells while they were in the population:</p>",
                          _img((Path(folder) / "fitness.png").read_bytes(), "fitness of the final top cells")]
    metadata = (read_optional_json(space_path) or {}).get("metadata", {}) if space_path.is_file() else {}
    diagnostics, summary = metadata.get("fitness_diagnostics") or {}, metadata.get("space_madds")
    if diagnostics.get("warning"):
        parts.append(_warning("Warning (evolve)", diagnostics["warning"]))
    if summary:
        parts.append(f"<p>Networks of the learned space cost {summary['cheapest_over_budget']:.2f}x (cheapest), "
                     f"{summary['uniform_mean_over_budget']:.2f}x (uniform mean) and "
                     f"{summary['costliest_over_budget']:.2f}x (costliest) the budget.</p>")
        unreachable = unreachable_budget_warning(summary)
        if unreachable:
            parts.append(_note(f"Warning: {unreachable}"))
    if space_path.is_file():
        parts += ["<h3>Learned space</h3>", "<p>Per layer, the candidate cells kept, best first "
                  "(fitness, MAdds at that layer, expansion and aggregation).</p>",
                  _wide_img(render(space_path, "png", dpi=110), "learned search space")]
    else:
        parts.append(_note("The evolution has not finished: no space.json yet."))
    return parts


def _learning_section(run_dir: Path) -> list[str]:
    evolve, search, train = (stage_dir(run_dir, stage) for stage in ("evolve", "search", "train"))
    space_path = evolve / "space.json" if evolve else None
    chance = ((read_optional_json(space_path) or {}).get("metadata", {}).get("fitness_diagnostics") or {}).get(
        "chance") if space_path and space_path.is_file() else None
    curves = learning_curves_png(read_jsonl(evolve / "history.jsonl") if evolve else [],
                                 read_jsonl(search / "search.jsonl") if search else [],
                                 read_jsonl(train / "metrics.jsonl") if train else [], chance)
    if curves is None:
        return []
    return ["<h3>Do the supernets learn?</h3>",
            "<p>Top-1 against training images seen: paths of the one-shot supernets (BN recalibrated, "
            "held-out images) beside the found network trained alone (test set). A supernet near chance "
            "cannot rank what it holds.</p>", _img(curves, "supernet learning curves")]


def _search_section(run_dir: Path) -> list[str]:
    from autospace.report.show import render

    parts = ["<h3>Search</h3>"]
    search = stage_dir(run_dir, "search")
    if search is None:
        return parts + [_note("No search stage in this run.")]
    result = read_optional_json(search / "result.json") or {}
    curves = search_curves_png(read_jsonl(search / "search.jsonl"), result.get("target_madds"))
    if curves:
        parts.append(_img(curves, "search curves"))
    if not result:
        return parts + [_note("The search has not finished: no result.json yet.")]
    parts.append(_table(["method", "space", "target MAdds", "MAdds", "of target", "within budget", "params",
                         "held-out accuracy (%)", "wall time (s)"],
                        [[result.get("method"), result.get("space"), _madds(result.get("target_madds")),
                          _madds(result.get("madds")),
                          f"{100 * result['madds_over_target']:.0f}%" if result.get("madds_over_target") else "-",
                          result.get("within_budget"), result.get("params"),
                          None if result.get("validation_accuracy") is None else 100 * result["validation_accuracy"],
                          result.get("wall_time_s")]], numeric={6, 7, 8}))
    if result.get("predicted_latency_ms") is not None:  # a latency target (issue 18)
        parts.append(_table(["predicted latency (ms)", "target latency (ms)", "of target", "within every target"],
                            [[result["predicted_latency_ms"], result["target_latency_ms"],
                              f"{100 * result['latency_over_target']:.0f}%", result.get("within_all_targets")]],
                            numeric={0, 1}))
    if (search / "arch.json").is_file():
        parts += ["<h3>Found network</h3>", _img(render(search / "arch.json", "png", dpi=100), "found network")]
    return parts


def _train_section(run_dir: Path) -> list[str]:
    parts = ["<h3>Final training</h3>"]
    train = stage_dir(run_dir, "train")
    if train is None:
        return parts + [_note("No training stage in this run.")]
    curves = train_curves_png(read_jsonl(train / "metrics.jsonl"))
    if curves:
        parts.append(_img(curves, "training curves"))
    metrics = read_optional_json(train / "metrics.json")
    if metrics is None:
        return parts + [_note("The training has not finished: no metrics.json yet.")]
    rows = [[key, value if not isinstance(value, dict) else
             ", ".join(f"{inner}={item}" for inner, item in value.items())] for key, value in metrics.items()]
    return parts + [_table(["metric", "value"], rows)]


def _run_section(run_dir: Path, summary: dict, anchor: str) -> list[str]:
    notices = run_notices(stage_dir(run_dir, "evolve"), stage_dir(run_dir, "search"))
    parts = [f'<h2 id="{anchor}">Run {html.escape(summary["name"])}</h2>',
             f"<p>Folder: <code>{html.escape(str(run_dir.resolve()))}</code></p>"]
    if summary["test_top1"] is not None:
        parts.append(f'<p class="headline">Test top-1 <b>{summary["test_top1"]:.2f}%</b> with '
                     f'{_madds(summary["madds"])} MAdds (target {_madds(summary["target_madds"])}), '
                     f'{_number(summary["params"])} params; {html.escape(summary["space"])} space, '
                     f'{html.escape(str(summary["method"]))} search; {html.escape(summary["data"])}.'
                     f'{" Read the notes below: they qualify this result." if notices else ""}</p>')
        comparison = manual_comparison(read_optional_yaml(run_dir / "config.yaml"), summary["test_top1"])
        if comparison:
            parts.append(f"<p>{html.escape(comparison)}</p>")
    for kind, text in notices:
        parts.append(_warning(kind, text))
    times = summary["times"]
    parts.append(_table(["stage", "wall time"], [[stage, "skipped or unfinished" if seconds is None
                                                  else f"{seconds / 60:.1f} min ({seconds:.0f} s)"]
                                                 for stage, seconds in times.items()]))
    parts += (_learning_section(run_dir) + _evolve_section(run_dir) + _search_section(run_dir)
              + _train_section(run_dir))
    configs = [path for path in (run_dir / "config.yaml",) if path.is_file()] or sorted(
        path for stage in STAGE_MARKERS if (path := (stage_dir(run_dir, stage) or run_dir) / "config.yaml").is_file())
    parts.append("<h3>Resolved config</h3>")  # folded: the record, not the reading
    if not configs:
        parts.append(_note("No config.yaml in this run folder."))
    for path in dict.fromkeys(configs):
        parts.append(f"<details><summary><code>{html.escape(str(path.relative_to(run_dir)))}</code></summary>"
                     f"<pre>{html.escape(path.read_text(encoding='utf-8'))}</pre></details>")
    return parts


def _comparison_section(summaries: list[dict]) -> list[str]:
    parts = ["<h2>Comparison</h2>"]
    scatter = comparison_png(summaries)
    parts.append(_img(scatter, "accuracy vs MAdds") if scatter else
                 _note("No run has both MAdds and an accuracy yet."))
    rows = [[s["label"], s["space"], s["method"], _madds(s["target_madds"]), _madds(s["madds"]), s["params"],
             None if s["validation_accuracy"] is None else 100 * s["validation_accuracy"], s["test_top1"],
             None if s["wall_time_s"] is None else s["wall_time_s"] / 60] for s in summaries]
    parts.append(_table(["run", "space", "search", "target", "MAdds", "params", "held-out acc (%)",
                         "test top-1 (%)", "wall time (min)"], rows, numeric={5, 6, 7, 8}))
    return parts


def write_html_report(run_dirs: list[str | os.PathLike], out: str | os.PathLike | None = None,
                      labels: list[str] | None = None) -> Path:
    """Write report.html for `run_dirs` into the first run folder, or to `out` (a file or a folder)."""
    run_dirs = [Path(run_dir) for run_dir in run_dirs]
    if not run_dirs:
        raise AutospaceError("no run folder given; give at least one folder made by `autospace run`")
    if labels is not None and len(labels) != len(run_dirs):
        raise AutospaceError(f"{len(labels)} labels for {len(run_dirs)} run folders; give one label per folder")
    for run_dir in run_dirs:
        if not run_dir.is_dir():
            raise AutospaceError(f"run folder {run_dir} does not exist")
        if not any(stage_dir(run_dir, stage) for stage in STAGE_MARKERS):
            raise AutospaceError(f"{run_dir} holds no autospace run: none of evolve/history.jsonl, "
                                 f"search/search.jsonl, train/metrics.jsonl is there")
    summaries = [summarize_run(run_dir, None if labels is None else labels[index])
                 for index, run_dir in enumerate(run_dirs)]
    title = "autospace report: " + ", ".join(s["name"] for s in summaries)
    parts = [f"<h1>{html.escape(title)}</h1>"]
    if len(run_dirs) > 1:
        parts += _comparison_section(summaries)
        parts.append("<p>Runs: " + ", ".join(f'<a href="#run-{index}">{html.escape(s["label"])}</a>'
                                              for index, s in enumerate(summaries, start=1)) + "</p>")
    for index, (run_dir, summary) in enumerate(zip(run_dirs, summaries), start=1):
        parts += _run_section(run_dir, summary, f"run-{index}")
    document = (f'<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
                f"<title>{html.escape(title)}</title>\n<style>{CSS}</style>\n</head>\n<body>\n"
                + "\n".join(parts) + "\n</body>\n</html>\n")
    path = Path(out) if out is not None else run_dirs[0] / "report.html"
    if path.is_dir():
        path = path / "report.html"
    atomic_write_text(path, document)
    return path
