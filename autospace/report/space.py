"""Readable outputs of a space evolution: `space.md` and `fitness.png`."""

from __future__ import annotations

from pathlib import Path

from autospace.arch.blocks import CellBlock, block_to_string
from autospace.arch.codec import cell_to_dict
from autospace.arch.space import SearchSpace
from autospace.runtime.atomic import atomic_write_bytes, atomic_write_text, read_jsonl
from autospace.cost.analytic import block_cost


def write_space_table(path: Path, space: SearchSpace) -> None:
    lines = [f"# Learned search space ({space.name})", ""]
    budget = space.metadata.get("budget_madds")
    if budget:
        lines += [f"Budget: {budget / 1e6:.1f}M MAdds. Candidates per layer ranked by fitness.", ""]
    summary = space.metadata.get("space_madds")
    if summary:
        lines += [f"Networks of this space (one listed block per layer): cheapest "
                  f"{summary['cheapest_madds'] / 1e6:.2f}M ({summary['cheapest_over_budget']:.2f}x the budget), "
                  f"uniform-mean {summary['uniform_mean_madds'] / 1e6:.2f}M ({summary['uniform_mean_over_budget']:.2f}x), "
                  f"costliest {summary['costliest_madds'] / 1e6:.2f}M ({summary['costliest_over_budget']:.2f}x).", ""]
        if "smallest_searchable_madds" in summary:  # spaces evolved before this field lack it
            lines += [f"Smallest network a search can reach (every skippable layer skipped): "
                      f"{summary['smallest_searchable_madds'] / 1e6:.2f}M MAdds.", ""]
    latency = space.metadata.get("space_latency")
    if latency:  # issue 18: the DEA's latency target, predicted from the table's cell components
        lines += [f"Latency target {latency['target_latency_ms']} ms; predicted (cell components): cheapest "
                  f"{latency['cheapest_latency_ms']:.3f} ms ({latency['cheapest_over_target']:.2f}x the target), "
                  f"uniform-mean {latency['uniform_mean_latency_ms']:.3f} ms "
                  f"({latency['uniform_mean_over_target']:.2f}x), costliest {latency['costliest_latency_ms']:.3f} ms "
                  f"({latency['costliest_over_target']:.2f}x).", ""]
    diagnostics = space.metadata.get("fitness_diagnostics")
    if diagnostics:
        from autospace.report.fitness_signal import heldout_verdict, persistence_verdict

        _, top1 = heldout_verdict(diagnostics.get("heldout_top1"), diagnostics["chance"])
        _, persistence = persistence_verdict(diagnostics.get("persistence"), diagnostics.get("persistence_pairs", 0))
        lines += [f"Is the fitness signal? Supernet held-out top-1 {top1}; persistence of fitness changes "
                  f"{persistence}.", ""]
        if diagnostics.get("warning"):
            lines += [f"**Warning:** {diagnostics['warning']}", ""]
    tiers = space.metadata.get("layer_cost_tiers")
    if tiers:  # issue 27: each layer's cost range against the manual space's, and the steps behind each block
        lines += [cost_range_table(space, tiers), ""]
    lines += ["| layer | in->out, stride | rank | block | fitness | trained steps | MAdds | params |",
              "| --- | --- | --- | --- | --- | --- | --- | --- |"]
    for index, (slot, candidates) in enumerate(zip(space.slots(), space.layers)):
        for rank, candidate in enumerate(candidates, start=1):
            cost = block_cost(candidate.block, slot)
            fitness = "" if candidate.fitness is None else f"{candidate.fitness:.4f}"
            trained = "" if candidate.trained_iterations is None else str(candidate.trained_iterations)
            shape = f"{slot.in_channels}->{slot.out_channels}, s{slot.stride}" if rank == 1 else ""
            lines.append(f"| {index if rank == 1 else ''} | {shape} | {rank} | `{block_to_string(candidate.block)}` "
                         f"| {fitness} | {trained} | {cost.madds / 1e6:.2f}M | {cost.params:,} |")
    atomic_write_text(path, "\n".join(lines) + "\n")


def cost_range_table(space: SearchSpace, tiers: list) -> str:
    """Per layer: the cost tiers the population spanned, the listed blocks' MAdds range against the manual
    space's (k3e3 to k7e6 inverted residuals) and the fewest weight steps behind a listed block."""
    from autospace.arch.blocks import InvertedResidual

    rows = ["| layer | cost tiers (MAdds) | listed blocks | manual k3e3 .. k7e6 | fewest trained steps |",
            "| --- | --- | --- | --- | --- |"]
    for index, (slot, candidates, layer_tiers) in enumerate(zip(space.slots(), space.layers, tiers)):
        costs = [block_cost(candidate.block, slot).madds for candidate in candidates]
        steps = [c.trained_iterations for c in candidates if c.trained_iterations is not None]
        manual = [block_cost(InvertedResidual(kernel=k, expansion=e), slot).madds for k, e in ((3, 3), (7, 6))]
        rows.append(f"| {index} | " + ", ".join(f"{low / 1e6:.2f}-{high / 1e6:.2f}M" for low, high in layer_tiers)
                    + f" | {len(costs)}: {min(costs) / 1e6:.2f}-{max(costs) / 1e6:.2f}M | "
                      f"{manual[0] / 1e6:.2f} .. {manual[1] / 1e6:.2f}M | {min(steps) if steps else 'n/a'} |")
    return "\n".join(rows)


def fitness_traces(history_path: Path, space: SearchSpace) -> list[dict[str, list[tuple[int, float]]]]:
    """Per layer: for each final top cell, its (regeneration, fitness) while it was in the population."""
    history = read_jsonl(history_path)
    traces = []
    for index, candidates in enumerate(space.layers):
        # only cells have population histories; other blocks (irb, zero) have no trace to draw
        wanted = {str(cell_to_dict(c.block.cell)): block_to_string(c.block)
                  for c in candidates if isinstance(c.block, CellBlock)}
        layer = {name: [] for name in wanted.values()}
        for record in history:
            for entry in record["populations"][index]:
                key = str(entry["cell"])
                if key in wanted:
                    layer[wanted[key]].append((record["regeneration"], entry["fitness"]))
        traces.append(layer)
    return traces


def write_fitness_plot(path: Path, history_path: Path, space: SearchSpace) -> None:
    import io

    buffer = io.BytesIO()
    fitness_figure(history_path, space).savefig(buffer, format="png", dpi=FITNESS_PLOT_DPI)
    atomic_write_bytes(path, buffer.getvalue())


FITNESS_PLOT_DPI = 110


def fitness_figure(history_path: Path, space: SearchSpace):
    """One panel per layer: the fitness of its final top cells over the regenerations."""
    from matplotlib.figure import Figure
    from matplotlib.ticker import MaxNLocator

    traces = fitness_traces(history_path, space)
    # Two columns, legends under each panel with the cells' full names: legible when report.html shows
    # the picture about 1,150 px wide.
    columns = min(2, len(traces))
    rows = -(-len(traces) // columns)
    figure = Figure(figsize=(5.6 * columns, 4.0 * rows), layout="constrained")
    axes = figure.subplots(rows, columns, squeeze=False)
    for index, layer in enumerate(traces):
        axis = axes[index // columns][index % columns]
        for rank, (name, points) in enumerate(layer.items(), start=1):
            if points:
                xs, ys = zip(*points)
                shown = name[5:-1] if name.startswith("cell[") and name.endswith("]") else name
                axis.plot(xs, ys, marker=".", label=f"#{rank} {shown}")
        axis.set_title(f"layer {index}", fontsize=11)
        axis.set_xlabel("regeneration", fontsize=9)
        axis.set_ylabel("fitness (alpha)", fontsize=9)
        axis.tick_params(labelsize=9)
        axis.xaxis.set_major_locator(MaxNLocator(integer=True))  # regenerations
        if axis.get_legend_handles_labels()[0]:
            axis.legend(fontsize=8.5, loc="upper center", bbox_to_anchor=(0.5, -0.22), frameon=False)
    for index in range(len(traces), rows * columns):
        axes[index // columns][index % columns].axis("off")
    return figure
