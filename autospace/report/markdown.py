"""report.md of an `autospace run` folder: stage times, learned space, found network, accuracy, config."""

from __future__ import annotations

from pathlib import Path

from autospace.arch.blocks import block_to_string
from autospace.runtime.atomic import atomic_write_text, read_jsonl, read_optional_json
from autospace.cost import layer_costs, network_cost
from autospace.report.manual_reference import manual_comparison
from autospace.report.notes import fitted_network_note


def _fitting_sentence(result: dict) -> str:
    """Why the found network is not the search's argmax, when fit_to_budget replaced it."""
    if not result.get("fitted_to_budget"):
        return ""
    if "within_all_targets" in result:  # a latency or params target besides MAdds
        return (" The search's argmax network missed a target; this is the most probable network within them "
                "(fit_to_budget).")
    return f" Note: {fitted_network_note(result['argmax_madds'], result['target_madds'])}."


def pick_note(pick: dict, target_madds: int) -> str:
    """One line for stderr and the report: what the pick measured and what it chose."""
    candidates, picked = pick["candidates"], pick["picked"]
    chosen, probable = candidates[picked], candidates[0]
    line = (f"measured pick: {len(candidates)} networks in the target band scored on {pick['heldout_images']:,} "
            f"held-out images after BN recalibration; returned #{picked + 1} ({chosen['heldout_top1']:.2f}% held-out "
            f"top-1, {chosen['madds'] / 1e6:.2f}M MAdds of {target_madds / 1e6:.1f}M)")
    if picked:
        line += f"; the most probable one scored {probable['heldout_top1']:.2f}%"
    return line


def pick_table(pick: dict, target_madds: int) -> list[str]:
    """The measured pick (issue 27): every candidate the search scored, and which it returned."""
    if pick.get("method") != "measured":
        return []
    lines = ["## The pick", "", pick_note(pick, target_madds)[0].upper() + pick_note(pick, target_madds)[1:] + ".", "",
             "| # | MAdds | params | log-probability | held-out top-1 |", "| --- | --- | --- | --- | --- |"]
    for number, candidate in enumerate(pick["candidates"], start=1):
        mark = " (returned)" if number - 1 == pick["picked"] else ""
        logp = "n/a" if candidate["log_probability"] is None else f"{candidate['log_probability']:.2f}"
        lines.append(f"| {number}{mark} | {candidate['madds'] / 1e6:.2f}M | {candidate['params']:,} | {logp} | "
                     f"{candidate['heldout_top1']:.2f}% |")
    return lines + [""]


def data_label(name: str | None, data_dir: str | None) -> str:
    """The data set as a reader should know it: our CIFAR-10 copy (cifar10_jpeg.npz, JPEG quality 75,
    a few points below the original) is named as such; a resized set says its size."""
    from autospace.data.registry import find_cifar10_source, resolve_data_dir

    if not name:
        return "data set"
    base, _, size = str(name).partition("@")
    label = base
    if base.lower() in ("cifar10", "cifar-10"):
        label = "CIFAR-10"
        try:
            found = find_cifar10_source(resolve_data_dir(data_dir))
        except OSError:
            found = None
        if found is not None and found[0] == "cifar10_jpeg_npz":
            label = "CIFAR-10 (JPEG q75 copy)"
    return f"{label}, {size.removesuffix('px')}x{size.removesuffix('px')} px" if size.endswith("px") else label


def network_layer_table(network) -> list[str]:
    """A network's layers as Markdown rows: the searchable ones numbered from 0, the others `fixed`."""
    lines = ["| layer | in->out | stride | block | MAdds |", "| --- | --- | --- | --- | --- |"]
    searchable = iter(range(len(network.layers)))
    for slot, layer, layer_cost in zip(network.slots(), network.layers, layer_costs(network)):
        number = next(searchable) if slot.searchable else "fixed"
        lines.append(f"| {number} | {slot.in_channels}->{slot.out_channels} | {slot.stride} | "
                     f"`{block_to_string(layer.block)}` | {layer_cost.madds / 1e6:.2f}M |")
    return lines


def run_notices(evolve_dir: Path | None, search_dir: Path | None) -> list[tuple[str, str]]:
    """What a reader must see first, as (kind, text): the DEA's noise warning and the search's fitting note."""
    notices = []
    space = read_optional_json(evolve_dir / "space.json") if evolve_dir else None
    warning = ((space or {}).get("metadata", {}).get("fitness_diagnostics") or {}).get("warning")
    if warning:
        notices.append(("Warning (evolve)", warning[0].upper() + warning[1:]))
    result = (read_optional_json(search_dir / "result.json") if search_dir else None) or {}
    fitting = _fitting_sentence(result).strip().removeprefix("Note: ")
    if fitting:
        notices.append(("Note (search)", fitting[0].upper() + fitting[1:]))
    return notices


def stage_times(out: Path) -> dict[str, float | None]:
    space = read_optional_json(out / "evolve" / "space.json")
    result = read_optional_json(out / "search" / "result.json")
    metrics = read_optional_json(out / "train" / "metrics.json")
    return {
        "evolve": space["metadata"].get("wall_time_s") if space else None,
        "search": result.get("wall_time_s") if result else None,
        "train": metrics.get("wall_time_s") if metrics else None,
    }


def _percent(fraction) -> str:
    return "-" if not isinstance(fraction, (int, float)) else f"{100 * fraction:.2f}%"


def read_optional_yaml(path: Path) -> dict | None:
    import yaml

    try:
        loaded = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError):
        return None
    return loaded if isinstance(loaded, dict) else None


def write_run_report(out: str | Path) -> Path:
    from autospace.arch.codec import load_arch

    out = Path(out)
    lines = [f"# autospace run: {out.resolve().name}", ""]
    times = stage_times(out)
    metrics = read_optional_json(out / "train" / "metrics.json") or {}
    result = read_optional_json(out / "search" / "result.json") or {}
    if metrics:
        train_config = read_optional_yaml(out / "train" / "config.yaml") or {}
        lines += [f"**Test top-1: {metrics['test_top1']:.2f}%** "
                  f"({data_label(metrics.get('data'), train_config.get('data_dir'))}; "
                  f"params {metrics['params']:,}, MAdds {metrics['madds'] / 1e6:.2f}M "
                  f"against a target of {result.get('target_madds', 0) / 1e6:.1f}M).", ""]
        comparison = manual_comparison(read_optional_yaml(out / "config.yaml"), metrics.get("test_top1"))
        if comparison:
            lines += [comparison, ""]
    for kind, text in run_notices(out / "evolve", out / "search"):
        lines += [f"**{kind}:** {text}", ""]
    lines += ["## Stages", "", "| stage | wall time |", "| --- | --- |"]
    for stage, seconds in times.items():
        lines.append(f"| {stage} | {'skipped' if seconds is None else f'{seconds / 60:.1f} min ({seconds:.0f} s)'} |")
    total = sum(value for value in times.values() if value)
    lines += [f"| total | {total / 60:.1f} min |", ""]

    if (out / "evolve" / "space.md").exists():
        table = (out / "evolve" / "space.md").read_text().splitlines()
        lines += ["## Learned space", ""] + table[2:] + [""]
        if (out / "evolve" / "fitness.png").exists():
            lines += ["![fitness of the final top cells](evolve/fitness.png)", ""]
        if (out / "evolve" / "pareto.png").exists():
            lines += ["![NSE: MAdds vs held-out accuracy of the last round's architectures](evolve/pareto.png)", ""]
    if (out / "search" / "arch.json").exists():
        network = load_arch(out / "search" / "arch.json")
        cost = network_cost(network)
        records = [r for r in read_jsonl(out / "search" / "search.jsonl")]
        lines += ["## Found network", "",
                  f"Search: {result.get('method')} in the {Path(str(result.get('space'))).name if result.get('space') else ''} "
                  f"space; held-out accuracy of the found network during search "
                  f"{_percent(result.get('validation_accuracy'))}; {len(records)} log records.", "",
                  f"Params {cost.params:,}; MAdds {cost.madds:,} ({cost.madds / 1e6:.2f}M, "
                  f"{100 * cost.madds / result['target_madds']:.0f}% of the target)."
                  + _fitting_sentence(result), "",
                  "Layers are numbered as in the learned space (the searchable layers, from 0); the first "
                  "block of the skeleton is fixed (not searched) and shown as `fixed`.", ""]
        if result.get("predicted_latency_ms") is not None:  # a latency target (issue 18): stated beside MAdds
            lines += [f"Predicted latency {result['predicted_latency_ms']:.3f} ms against a target of "
                      f"{result['target_latency_ms']:.3f} ms ({100 * result['latency_over_target']:.0f}%), "
                      f"from the latency table"
                      + (f" ({result['latency_trust']})." if result.get("latency_trust") else "."), ""]
        lines += network_layer_table(network) + [""]
        lines += pick_table(result.get("pick") or {}, result["target_madds"])
    if metrics:
        lines += ["## Final training", "",
                  f"{metrics.get('epochs')} epochs; test top-1 {metrics['test_top1']:.2f}%; "
                  f"wall time {metrics['wall_time_s']:.0f} s on {metrics.get('device')}.", ""]
    if (out / "config.yaml").exists():
        lines += ["## Resolved config", "", "```yaml", (out / "config.yaml").read_text().rstrip(), "```", ""]
    path = out / "report.md"
    atomic_write_text(path, "\n".join(lines))
    return path
