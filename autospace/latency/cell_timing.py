"""Measure the open space's cell components (`autospace latency-table open:PRESET`; issue 18).

For every searchable layer of a skeleton, `measure_cell_components` times each cell
component (`keys.py`) inside probe networks of cells, as `timing.py` times
whole blocks: network k puts probe cell (k + l) mod n in
layer l, and each component of each cell runs on its own clock reads within a whole
forward pass. The probes are every (operator on all six edges, expansion,
aggregation), which together hold every component, plus a few cells drawn from the
open space. Then whole networks of light open-space cells (`calibration_networks`) fit
each layer's scale factor and give the stem, fixed block and head entries. Rounds,
resume (entries already in the table are kept; the table is rewritten after every
round) and refusal of a table of another device or batch size work as for
`measure_latency_table`.
"""

from __future__ import annotations

import random
import time
from pathlib import Path

import torch

from autospace.arch.blocks import CellBlock
from autospace.arch.cell import Cell
from autospace.arch.network import Skeleton
from autospace.arch.ops import AGGREGATIONS, CELL_EXPANSIONS, EDGES, INNER_NODES
from autospace.arch.pools import calibration_pool
from autospace.latency.keys import component_key, fixed_keys, missing_components, network_keys, scale_key
from autospace.latency.prediction import fixed_latency_ms, raw_cell_latency_ms
from autospace.latency.table import LatencyEntry, LatencyTable, open_table, save_table
from autospace.latency.timing import restores_torch_threads, summarise, time_segments

CALIBRATION_NETWORKS = 12  # whole networks of light cells that fit the scale
RANDOM_PROBES = 12  # cells drawn from the open space besides the all-one-operator probes: the fit sees real cells


def probe_cells(random_cells: int = RANDOM_PROBES) -> list[Cell]:
    cells = [Cell((op,) * len(EDGES), e, aggregation) for e in CELL_EXPANSIONS
             for op in ("conv1x1", "conv3x3", "dwconv3x3", "identity") for aggregation in AGGREGATIONS]
    return cells + calibration_pool(random_cells, seed=1)


def probe_cell_networks(skeleton: Skeleton, random_cells: int = RANDOM_PROBES) -> list:
    cells = probe_cells(random_cells)
    layers = skeleton.num_searchable
    return [skeleton.network([CellBlock(cells[(k + layer) % len(cells)]) for layer in range(layers)])
            for k in range(len(cells))]


def timed_cell_forward(module, slot, x, record, synchronise):
    """CellModule.forward, each component on its own clock: `record(key, ms)`."""
    e = module.cell.expansion

    def timed(key, function, *args):
        synchronise()
        start = time.perf_counter()
        result = function(*args)
        synchronise()
        record(key, (time.perf_counter() - start) * 1000.0)
        return result

    nodes = {0: timed(component_key(slot, "input", e), module.input_conv, x)}
    for node, keys, sources in module._plan:
        inputs = [timed(component_key(slot, f"edge s{slot.stride if source == 0 else 1} "
                                            f"{module.cell.op(source, node)}", e), module.edges[key], nodes[source])
                  for key, source in zip(keys, sources)]
        if not inputs:
            continue
        if str(node) in module.projections:
            projection = module.projections[str(node)]
            nodes[node] = timed(component_key(slot, f"concat{len(inputs)}", e),
                                lambda: projection(torch.cat(inputs, dim=1)))
        else:
            total = inputs[0]
            for extra in inputs[1:]:
                total = timed(component_key(slot, "add", e), torch.add, total, extra)
            nodes[node] = total
    out = timed(component_key(slot, "output", e), module.output_conv, nodes[INNER_NODES - 1])
    return timed(component_key(slot, "residual"), torch.add, out, x) if module.has_residual else out


def time_components(network, device, batch_size: int, warmup: int, repeats: int, autocast_dtype=None) -> dict:
    """Per component key, its samples (ms) over `repeats` instrumented forward passes of `network`."""
    from autospace.nn import build_network

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        model = build_network(network)
    model = model.to(device=device, memory_format=torch.channels_last)
    model.train(False)
    synchronise = (lambda: torch.cuda.synchronize(device)) if device.type == "cuda" else (lambda: None)
    inputs = torch.randn(batch_size, network.in_channels, network.resolution, network.resolution,
                         device=device).contiguous(memory_format=torch.channels_last)
    samples: dict[str, list[float]] = {}
    with torch.inference_mode(), torch.autocast(device.type, dtype=autocast_dtype or torch.bfloat16,
                                                enabled=autocast_dtype is not None):
        for index in range(warmup + repeats):
            keep = index >= warmup
            record = (lambda key, ms: samples.setdefault(key, []).append(ms)) if keep else (lambda key, ms: None)
            x = model.stem(inputs)
            for layer, module, slot in zip(network.layers, model.layers, network.slots()):
                if slot.searchable and isinstance(layer.block, CellBlock):
                    x = timed_cell_forward(module, slot, x, record, synchronise)
                else:
                    x = module(x)
            model.classifier(model.head(x).mean((2, 3)))
    return samples


def calibration_networks(skeleton: Skeleton, table: LatencyTable, count: int = CALIBRATION_NETWORKS) -> list:
    """Networks of open-space cells like those a latency target admits: each layer a cell drawn from the
    lighter half (by the parts' sum) of a fixed sample of the open space."""
    pool = calibration_pool(200, seed=2)
    rng = random.Random(2)
    lighter = []
    for slot in skeleton.searchable_slots():
        ranked = sorted(pool, key=lambda cell: raw_cell_latency_ms(table, cell, slot))
        lighter.append(ranked[:len(ranked) // 2])
    return [skeleton.network([CellBlock(rng.choice(cells)) for cells in lighter]) for _ in range(count)]


@restores_torch_threads
def measure_cell_components(skeleton: Skeleton, device: str = "cpu", batch_size: int = 1,
                            out: str | Path | None = None, threads: int = 1, warmup: int = 10, repeats: int = 50,
                            precision: str = "fp32", statistic: str = "min", progress: bool = True,
                            rounds: int = 3) -> LatencyTable:
    """Time what `out` lacks of `skeleton`'s cell components, fixed parts and scale; returns and writes the
    whole table.

    Two phases, each in `rounds` passes (a burst of other work spoils one round, not every sample) and
    each skipped when the table has its entries (an interrupted run resumes):
    1. the components, each on its own clock inside the probe networks (`probe_cell_networks`);
    2. `calibration_networks`, timed whole and segment by segment: the segments give the stem, fixed
       block and head entries, and each layer's scale is the median over these networks of (whole -
       fixed parts) / sum of the cells' parts. Measured here (1 thread, loaded 2-core CPU): the parts
       alone overshot whole networks of light cells by ~10-15% (the clock reads around every part cost
       time a real pass does not spend), and the probe networks' own whole passes, several times longer,
       gathered other jobs' time that their short segments escaped, so they are no ground for a fit."""
    device, autocast_dtype, table = open_table(out, device, batch_size, threads, warmup, repeats, precision,
                                               statistic, rounds)
    slots = skeleton.searchable_slots()
    scales = {scale_key(slot) for slot in slots}
    components = [key for key in missing_components(table, slots) if key not in scales]
    fixed = [key for key in fixed_keys(skeleton) if key not in table.entries]
    calibrate = fixed or any(key not in table.entries for key in scales)
    probes = probe_cell_networks(skeleton) if components else []
    bar = None
    if progress:
        from tqdm import tqdm
        bar = tqdm(total=(len(probes) + (CALIBRATION_NETWORKS if calibrate else 0)) * rounds,
                   desc=f"cell components ({device})", dynamic_ncols=True)
    pooled: dict[str, list[float]] = {}
    try:
        for _ in range(rounds):
            for network in probes:
                for key, samples in time_components(network, device, batch_size, warmup, repeats,
                                                    autocast_dtype).items():
                    if key not in table.entries:
                        pooled.setdefault(key, []).extend(samples)
                if bar is not None:
                    bar.update(1)
            if out is not None and probes:  # a killed run keeps every finished round
                save_table(out, table.with_entries({key: summarise(v) for key, v in pooled.items()}))
        table = table.with_entries({key: summarise(v) for key, v in pooled.items()})
        pooled = {}
        if calibrate:
            networks = calibration_networks(skeleton, table)
            wholes: list[list[float]] = [[] for _ in networks]
            for _ in range(rounds):
                for position, network in enumerate(networks):
                    segments, whole = time_segments(network, device, batch_size, warmup, repeats, autocast_dtype)
                    for key, samples in zip(network_keys(network), segments):
                        if key in fixed:
                            pooled.setdefault(key, []).extend(samples)
                    wholes[position].extend(whole)
                    if bar is not None:
                        bar.update(1)
            table = table.with_entries({key: summarise(v) for key, v in pooled.items()})
            pooled = {}
            table = table.with_entries(_scales(table, networks, slots, wholes))
    finally:
        if bar is not None:
            bar.close()
        table = table.with_entries({key: summarise(v) for key, v in pooled.items()})
        if out is not None:
            save_table(out, table)
    return table


def _scales(table: LatencyTable, networks: list, slots, wholes: list[list[float]]) -> dict:
    """Every layer's scale: the median over `networks` of (whole - fixed parts) / sum of the cells' parts
    (one factor for the skeleton: light networks leave too little time per layer to fit one each)."""
    ratios = []
    for network, whole in zip(networks, wholes):
        parts = sum(raw_cell_latency_ms(table, layer.block.cell, slot)
                    for layer, slot in zip(network.layers, network.slots()) if slot.searchable)
        ratios.append((summarise(whole).value(table.statistic) - fixed_latency_ms(table, network)) / parts)
    ratios.sort()
    factor = max(ratios[len(ratios) // 2], 0.01)
    entry = LatencyEntry(round(factor, 5), round(ratios[-1] - ratios[0], 5), len(ratios), round(factor, 5))
    return {scale_key(slot): entry for slot in slots if scale_key(slot) not in table.entries}


__all__ = ["calibration_networks", "measure_cell_components", "probe_cell_networks", "probe_cells", "time_components"]
