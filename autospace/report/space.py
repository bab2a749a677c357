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
        top1, persistence = diagnostics.get("heldout_top1"), diagnostics.get("persistence")
        lines += [f"Is the fitness signal? Supernet held-out top-1 "
                  f"{'n/a' if top1 is None else f'{100 * top1:.1f}%'} (chance {100 * diagnostics['chance']:.0f}%), "
                  f"persistence of fitness changes "
                  f"{'n/a' if persistence is None else f'{persistence:+.2f}'} (signal: > 0).", ""]
        if diagnostics.get("warning"):
            lines += [f"**Warning:** {diagnostics['warning']}", ""]
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

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    traces = fitness_traces(history_path, space)
    columns = min(4, len(traces))
    rows = -(-len(traces) // columns)
    figure, axes = plt.subplots(rows, columns, figsize=(4 * columns, 2.6 * rows), squeeze=False)
    for index, layer in enumerate(traces):
        axis = axes[index // columns][index % columns]
        for rank, (name, points) in enumerate(layer.items(), start=1):
            if points:
                xs, ys = zip(*points)
                axis.plot(xs, ys, marker=".", label=f"#{rank} {name[5:30] if name.startswith('cell[') else name}")
        axis.set_title(f"layer {index}", fontsize=9)
        axis.tick_params(labelsize=7)
        axis.legend(fontsize=5, loc="best")
    for index in range(len(traces), rows * columns):
        axes[index // columns][index % columns].axis("off")
    figure.supxlabel("regeneration")
    figure.supylabel("fitness (alpha)")
    figure.tight_layout()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=110)
    plt.close(figure)
    atomic_write_bytes(path, buffer.getvalue())
