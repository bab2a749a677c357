"""report.md of an `autospace run` folder: stage times, learned space, found network, accuracy, config."""

from __future__ import annotations

from pathlib import Path

from autospace.arch.blocks import block_to_string
from autospace.runtime.atomic import atomic_write_text, read_jsonl, read_optional_json
from autospace.cost import layer_costs, network_cost
from autospace.search.budget import fitted_network_note


def _fitting_sentence(result: dict) -> str:
    """Why the found network is not the search's argmax, when fit_to_budget replaced it."""
    if not result.get("fitted_to_budget"):
        return ""
    if "within_all_targets" in result:  # a latency or params target besides MAdds
        return (" The search's argmax network missed a target; this is the most probable network within them "
                "(fit_to_budget).")
    return f" Note: {fitted_network_note(result['argmax_madds'], result['target_madds'])}."


def stage_times(out: Path) -> dict[str, float | None]:
    space = read_optional_json(out / "evolve" / "space.json")
    result = read_optional_json(out / "search" / "result.json")
    metrics = read_optional_json(out / "train" / "metrics.json")
    return {
        "evolve": space["metadata"].get("wall_time_s") if space else None,
        "search": result.get("wall_time_s") if result else None,
        "train": metrics.get("wall_time_s") if metrics else None,
    }


def write_run_report(out: str | Path) -> Path:
    from autospace.arch.codec import load_arch

    out = Path(out)
    lines = [f"# autospace run: {out.name}", ""]
    times = stage_times(out)
    metrics = read_optional_json(out / "train" / "metrics.json") or {}
    result = read_optional_json(out / "search" / "result.json") or {}
    if metrics:
        lines += [f"**Test top-1: {metrics['test_top1']:.2f}%** ({metrics.get('data', 'data set')}; "
                  f"params {metrics['params']:,}, MAdds {metrics['madds'] / 1e6:.2f}M "
                  f"against a target of {result.get('target_madds', 0) / 1e6:.1f}M).", ""]
    space = read_optional_json(out / "evolve" / "space.json") or {}
    warning = space.get("metadata", {}).get("fitness_diagnostics", {}).get("warning")
    if warning:
        lines += [f"**Warning (evolve):** {warning}", ""]
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
                  f"space; held-out accuracy during search {result.get('validation_accuracy')}; "
                  f"{len(records)} log records.", "",
                  f"Params {cost.params:,}; MAdds {cost.madds:,} ({cost.madds / 1e6:.2f}M, "
                  f"{100 * cost.madds / result['target_madds']:.0f}% of the target)."
                  + _fitting_sentence(result), "",
                  "| layer | in->out | stride | block | MAdds |", "| --- | --- | --- | --- | --- |"]
        if result.get("predicted_latency_ms") is not None:  # a latency target (issue 18): stated beside MAdds
            lines[-2:-2] = [f"Predicted latency {result['predicted_latency_ms']:.3f} ms against a target of "
                            f"{result['target_latency_ms']:.3f} ms ({100 * result['latency_over_target']:.0f}%), "
                            f"from the latency table.", ""]
        for slot, layer, layer_cost in zip(network.slots(), network.layers, layer_costs(network)):
            lines.append(f"| {slot.index} | {slot.in_channels}->{slot.out_channels} | {slot.stride} | "
                         f"`{block_to_string(layer.block)}` | {layer_cost.madds / 1e6:.2f}M |")
        lines.append("")
    if metrics:
        lines += ["## Final training", "",
                  f"{metrics.get('epochs')} epochs; test top-1 {metrics['test_top1']:.2f}%; "
                  f"wall time {metrics['wall_time_s']:.0f} s on {metrics.get('device')}.", ""]
    if (out / "config.yaml").exists():
        lines += ["## Resolved config", "", "```yaml", (out / "config.yaml").read_text().rstrip(), "```", ""]
    path = out / "report.md"
    atomic_write_text(path, "\n".join(lines))
    return path
