"""Timing of blocks (DESIGN 2.7): time every module a space's networks are made of into a table.

`measure_latency_table(space, device, batch_size, out)` times the stem, the fixed
first block, the head and every candidate block of every searchable layer, each
at the input shape it sees in the network, and writes `out` (a JSON table,
`table.py`). Entries already in `out` are kept, so an interrupted
run resumes and a table grows to cover a new space; a table of another device or
batch size is refused. The table is rewritten atomically every few entries.

Timing: inference mode, NHWC (as `autospace profile` and final training run),
`warmup` untimed passes then `repeats` timed ones; each entry records median,
interquartile range (spread) and minimum, and the table says which of them its
predictions use (`measure_latency_table` says why). On the CPU the thread count is fixed (default
1: a single-threaded time is far less disturbed by other jobs on a shared machine)
and recorded. The timing helpers here (`time_module`, `time_segments`, `summarise`) serve the cell
components' timing (`cell_timing.py`) and profiling too; `latency_table_for` opens a table that covers a
space, measuring what it lacks on this CPU.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Sequence

import torch
from torch import nn

from autospace.arch.blocks import MultiBranch, canonical_block
from autospace.arch.space import SearchSpace
from autospace.errors import AutospaceError
from autospace.latency.keys import network_keys
from autospace.latency.prediction import candidate_latencies_ms, entries_sum_ms, fixed_latency_ms
from autospace.latency.table import (
    ANCHOR_NETWORKS, CALIBRATION_NETWORKS, CALIBRATION_SEED, Anchor, LatencyEntry, LatencyTable, fit_calibration,
    load_table, open_table,
    require_same_conditions, require_table_conditions, save_table,
)
from autospace.runtime.device import hardware_info, resolve_device


def restores_torch_threads(function):
    """Timing runs with the table's thread count; the caller's own count comes back afterwards
    (a process that times a table and then trains must not train on one thread)."""
    import functools

    @functools.wraps(function)
    def wrapper(*args, **kwargs):
        threads = torch.get_num_threads()
        try:
            return function(*args, **kwargs)
        finally:
            torch.set_num_threads(threads)
    return wrapper


def time_module(module: nn.Module, input_shape: Sequence[int], device: torch.device, warmup: int, repeats: int,
                autocast_dtype=None) -> LatencyEntry:
    """Median, interquartile range and minimum of `repeats` timed forward passes, in milliseconds."""
    module = module.to(device=device, memory_format=torch.channels_last)
    module.train(False)
    inputs = torch.randn(tuple(input_shape), device=device).contiguous(memory_format=torch.channels_last)
    times = []
    with torch.inference_mode(), torch.autocast(device.type, dtype=autocast_dtype or torch.bfloat16,
                                                enabled=autocast_dtype is not None):
        for index in range(warmup + repeats):
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            start = time.perf_counter()
            module(inputs)
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            if index >= warmup:
                times.append((time.perf_counter() - start) * 1000.0)
    return summarise(times)


def probe_networks(space: SearchSpace) -> list:
    """Networks that together hold every candidate of every layer (a multi-branch candidate also branch by
    branch): network k puts candidate (k + l) mod n_l in layer l, so each is timed in a real network, its
    input coming from the layer before, as it runs when deployed."""
    from autospace.nn.block_supernet import layer_choices

    choices = []
    for blocks in layer_choices(space):
        expanded = []
        for block in blocks:
            block = canonical_block(block)
            expanded += [block] + (list(block.branches) if isinstance(block, MultiBranch) else [])
        choices.append(list(dict.fromkeys(expanded)))  # a branch that is also a candidate: once
    count = max(len(blocks) for blocks in choices)
    return [space.skeleton.network([blocks[(k + layer) % len(blocks)] for layer, blocks in enumerate(choices)])
            for k in range(count)]


def time_segments(network, device: torch.device, batch_size: int, warmup: int, repeats: int,
                  autocast_dtype=None) -> tuple[list[list[float]], list[float]]:
    """Per segment (stem, layers, head) of `network`, its `repeats` times in milliseconds inside whole
    forward passes; and the times of the same passes run whole (untouched by the clock reads)."""
    return time_networks([network], device, batch_size, warmup, repeats, autocast_dtype)[0]


def summarise(samples: Sequence[float]) -> LatencyEntry:
    ordered = sorted(samples)
    quantile = lambda q: ordered[min(len(ordered) - 1, int(q * len(ordered)))]  # noqa: E731
    return LatencyEntry(round(quantile(0.5), 5), round(quantile(0.75) - quantile(0.25), 5), len(ordered),
                        round(ordered[0], 5))




def random_networks(space: SearchSpace, count: int, seed: int) -> list:
    """Up to `count` distinct networks of `space`, each layer a uniformly drawn candidate."""
    import random

    from autospace.nn.block_supernet import layer_choices

    rng = random.Random(seed)
    choices = layer_choices(space)
    networks, seen = [], set()
    for _ in range(count * 20):
        blocks = tuple(rng.choice(blocks) for blocks in choices)
        if blocks not in seen:
            seen.add(blocks)
            networks.append(space.skeleton.network(list(blocks)))
        if len(networks) == count:
            break
    return networks


def timing_model(network) -> nn.Module:
    """`network` built for timing: weights drawn under a fixed seed in a forked RNG (the weights
    do not matter to a time; the caller's global RNG does), inference mode."""
    from autospace.nn import build_network

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        model = build_network(network)
    model.train(False)
    return model


def time_networks(networks: Sequence, device: torch.device, batch_size: int, warmup: int,
                  repeats: int, autocast_dtype=None) -> list[tuple[list[list[float]], list[float]]]:
    """Per network, the `repeats` times in milliseconds of each segment (stem, layers, head; each on its own
    clock reads inside a whole forward pass) and of its whole passes.

    The networks take turns, one pass each: on a shared or virtual CPU the speed drifts by 5-10% over
    seconds (measured on a 2-core Xeon VM: medians of 50 back-to-back passes moved between 3.0 and 4.0 ms),
    so timing network after network gives each its own slow or fast stretch; taking turns gives every
    network the same mix, and the test-retest rank correlation of 40 networks rose from 0.17 (min of
    back-to-back passes) to 0.99 (median of passes taken in turn)."""
    models = [timing_model(network).to(device=device, memory_format=torch.channels_last) for network in networks]
    inputs = [torch.randn(batch_size, network.in_channels, network.resolution, network.resolution,
                          device=device).contiguous(memory_format=torch.channels_last) for network in networks]
    synchronise = (lambda: torch.cuda.synchronize(device)) if device.type == "cuda" else (lambda: None)
    parts = [[model.stem, *model.layers, lambda x, model=model: model.classifier(model.head(x).mean((2, 3)))]
             for model in models]
    results = [([[] for _ in pieces], []) for pieces in parts]
    with torch.inference_mode(), torch.autocast(device.type, dtype=autocast_dtype or torch.bfloat16,
                                                enabled=autocast_dtype is not None):
        for index in range(warmup + repeats):
            for model, x, pieces, (segment_times, whole_times) in zip(models, inputs, parts, results):
                y = x
                synchronise()
                clock = [time.perf_counter()]
                for piece in pieces:
                    y = piece(y)
                    synchronise()
                    clock.append(time.perf_counter())
                start = time.perf_counter()
                model(x)
                synchronise()
                end = time.perf_counter()
                if index >= warmup:
                    for samples, before, after in zip(segment_times, clock, clock[1:]):
                        samples.append((after - before) * 1000.0)
                    whole_times.append((end - start) * 1000.0)
    return results


@restores_torch_threads
def measure_latency_table(space: SearchSpace, device: str = "cpu", batch_size: int = 1, out: str | Path | None = None,
                          threads: int = 1, warmup: int = 10, repeats: int = 50, precision: str = "fp32",
                          statistic: str = "median", progress: bool = True, rounds: int = 3,
                          calibration_networks: int | None = None) -> LatencyTable:
    """Time what `space` needs that `out` does not hold yet; returns (and writes) the whole table.

    Entries are timed inside probe networks (`probe_networks`), each segment of a forward pass on its
    own clock reads: a block timed alone, its input and weights hot in the cache, runs faster than in a
    network (measured on an AMD EPYC: the sum of isolated times fell 20% short of whole networks, in
    context 6%). Beside the probes, `calibration_networks` random networks of the space are timed the same
    way; every segment of every one of them adds samples to its entry, and their whole passes fit the
    table's calibration (`table.Calibration`): the clock reads between segments cost time a plain pass does
    not spend, and a pass has costs no segment holds. The first of them are kept as the table's anchors
    (`drift.py`). All of them take turns pass by pass (`time_networks`).
    `statistic` "median" (default) is the figure predictions use; "min" where a device's fastest pass is
    stable (on the Xeon VM it was not: its fastest passes came in rare bursts of a faster host). The
    networks are timed in `rounds` rounds of `repeats` passes; the table is saved after each, so a killed
    run keeps every finished round."""
    if calibration_networks is None:
        calibration_networks = CALIBRATION_NETWORKS
    if isinstance(calibration_networks, bool) or not isinstance(calibration_networks, int) \
            or not 0 <= calibration_networks <= 10_000:
        raise AutospaceError(f"calibration networks is {calibration_networks!r}; it must be an integer in "
                             f"[0, 10,000]")
    device, autocast_dtype, table = open_table(out, device, batch_size, threads, warmup, repeats, precision,
                                               statistic, rounds)
    statistic = table.statistic  # an extended table keeps its own
    missing = lambda network: any(key is not None and key not in table.entries  # noqa: E731
                                  for key in network_keys(network))
    probes = [network for network in probe_networks(space) if missing(network)]
    calibrate = bool(probes) or table.calibration is None
    networks = probes + (random_networks(space, calibration_networks, CALIBRATION_SEED) if calibrate else [])
    bar = None
    if progress and networks:
        from tqdm import tqdm
        bar = tqdm(total=rounds, desc=f"latency table ({device}, {len(networks)} networks in turn)",
                   dynamic_ncols=True)
    pooled: dict[str, list[float]] = {}
    wholes: list[list[float]] = [[] for _ in networks]
    round_medians: list[list[float]] = [[] for _ in networks]  # per network, each round's median: the noise
    finished = 0
    try:
        for _ in range(rounds if networks else 0):
            timed = time_networks(networks, device, batch_size, warmup, repeats, autocast_dtype)
            for network, (segments, whole), samples in zip(networks, timed, wholes):
                for key, times in zip(network_keys(network), segments):
                    if key is not None and key not in table.entries:
                        pooled.setdefault(key, []).extend(times)
                samples.extend(whole)
            for medians, (_, whole) in zip(round_medians, timed):
                medians.append(summarise(whole).value(statistic))
            finished += 1
            if bar is not None:
                bar.update(1)
            if out is not None:  # a killed run keeps every finished round
                save_table(out, table.with_entries({key: summarise(v) for key, v in pooled.items()}))
    finally:
        if bar is not None:
            bar.close()
        fresh = {key: summarise(samples) for key, samples in pooled.items()}
        table = table.with_entries(fresh)
        if calibrate and finished == rounds and networks:
            pairs = [(entries_sum_ms(table, network), summarise(whole).value(statistic))
                     for network, whole in zip(networks, wholes)]
            old = list(table.calibration.pairs) if table.calibration is not None else []
            noise = None
            if rounds > 1:
                noise = sum(abs(m[0] - m[-1]) / ((m[0] + m[-1]) / 2) for m in round_medians) / len(round_medians)
            table = table.with_calibration(fit_calibration(old + pairs, noise))
            if not table.anchors:  # the first calibration networks (probes if there are none), kept whole
                from autospace.arch.codec import network_to_dict

                kept = (list(zip(networks, pairs))[len(probes):] or list(zip(networks, pairs)))[:ANCHOR_NETWORKS]
                table = table.with_anchors(Anchor(network_to_dict(network), whole) for network, (_, whole) in kept)
        if out is not None and (fresh or calibrate or not Path(out).exists()):
            save_table(out, table)  # also when interrupted: the next run resumes from here
    return table


@restores_torch_threads
def measure_network_ms(network, table: LatencyTable, warmup: int | None = None, repeats: int = 50) -> float:
    """The whole network's median time, under the table's conditions (device, batch, threads, precision)."""
    device = torch.device(table.device)
    if device.type == "cpu":
        torch.set_num_threads(table.threads)
    model = timing_model(network)
    shape = (table.batch_size, network.in_channels, network.resolution, network.resolution)
    dtype = torch.bfloat16 if table.precision == "bf16" else None
    return time_module(model, shape, device, table.warmup if warmup is None else warmup, repeats,
                       dtype).value(table.statistic)


def check_table_device(table: LatencyTable, device: str, batch_size: int | None = None) -> None:
    """Refuse to compare `table` with measurements on another device or batch size."""
    resolved = resolve_device(device)
    require_same_conditions(table, str(resolved), hardware_info(resolved)["device_name"],
                            table.batch_size if batch_size is None else batch_size)


def latency_table_for(path: str | None, space):
    """The table at `path`, with every entry `space` needs: missing ones are measured when the table is this
    CPU's (a note on stderr), else refused in one line."""
    from autospace.nn.block_supernet import layer_choices

    if not path:
        raise AutospaceError("a latency target needs a latency table: give --latency-table TABLE.json (make one "
                             "with `autospace latency-table SPACE --device cpu -o TABLE.json`)")
    table = load_table(path)
    require_table_conditions(table, path)  # a table of other conditions is neither used nor extended here
    try:
        candidate_latencies_ms(table, space.skeleton, layer_choices(space))
        fixed_latency_ms(table, space.skeleton)
        return table
    except AutospaceError as missing:
        if table.device != "cpu":
            raise missing
        here = table.device_name
    print(f"autospace: note: {path} lacks entries of this space; measuring them on this CPU ({here}) "
          f"and adding them to the table", file=sys.stderr)
    return measure_latency_table(space, "cpu", table.batch_size, path, threads=table.threads,
                                 warmup=table.warmup, precision=table.precision, statistic=table.statistic,
                                 progress=False)


def round_latency_us(table_path: str, supernet) -> tuple[list[list[float]], float]:
    """Per layer the candidates' latency (a multi-branch layer costs the sum of its branches, so NSE's
    expectation stays linear) and the fixed part, in microseconds, for a supernet's space."""
    table = latency_table_for(table_path, supernet.space)
    rows = candidate_latencies_ms(table, supernet.skeleton, supernet.choices)
    return [[1000 * value for value in row] for row in rows], 1000 * fixed_latency_ms(table, supernet.skeleton)


__all__ = ["check_table_device", "latency_table_for", "measure_latency_table", "measure_network_ms", "probe_networks",
           "random_networks", "restores_torch_threads", "round_latency_us", "summarise", "time_module", "timing_model",
           "time_networks", "time_segments"]
