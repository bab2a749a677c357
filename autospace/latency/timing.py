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
from autospace.latency.prediction import candidate_latencies_ms, fixed_latency_ms, network_latency_ms
from autospace.latency.table import (
    OVERHEAD_KEY, LatencyEntry, LatencyTable, load_table, open_table, require_same_conditions, require_table_conditions,
    save_table,
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
    from autospace.nn import build_network

    with torch.random.fork_rng(devices=[]):  # the weights do not matter to a time; the global RNG does
        torch.manual_seed(0)
        model = build_network(network)
    model = model.to(device=device, memory_format=torch.channels_last)
    model.train(False)
    segments = [model.stem, *model.layers, lambda x: model.classifier(model.head(x).mean((2, 3)))]
    inputs = torch.randn(batch_size, network.in_channels, network.resolution, network.resolution,
                         device=device).contiguous(memory_format=torch.channels_last)
    synchronise = (lambda: torch.cuda.synchronize(device)) if device.type == "cuda" else (lambda: None)
    times, whole = [[] for _ in segments], []
    with torch.inference_mode(), torch.autocast(device.type, dtype=autocast_dtype or torch.bfloat16,
                                                enabled=autocast_dtype is not None):
        for index in range(warmup + repeats):
            x = inputs
            synchronise()
            clock = [time.perf_counter()]
            for segment in segments:
                x = segment(x)
                synchronise()
                clock.append(time.perf_counter())
            synchronise()
            start = time.perf_counter()
            model(inputs)
            synchronise()
            end = time.perf_counter()
            if index >= warmup:
                for samples, before, after in zip(times, clock, clock[1:]):
                    samples.append((after - before) * 1000.0)
                whole.append((end - start) * 1000.0)
    return times, whole


def summarise(samples: Sequence[float]) -> LatencyEntry:
    ordered = sorted(samples)
    quantile = lambda q: ordered[min(len(ordered) - 1, int(q * len(ordered)))]  # noqa: E731
    return LatencyEntry(round(quantile(0.5), 5), round(quantile(0.75) - quantile(0.25), 5), len(ordered),
                        round(ordered[0], 5))


@restores_torch_threads
def measure_latency_table(space: SearchSpace, device: str = "cpu", batch_size: int = 1, out: str | Path | None = None,
                          threads: int = 1, warmup: int = 10, repeats: int = 50, precision: str = "fp32",
                          statistic: str = "min", progress: bool = True, rounds: int = 3) -> LatencyTable:
    """Time what `space` needs that `out` does not hold yet; returns (and writes) the whole table.

    Entries are timed inside probe networks (`probe_networks`), each segment of a forward pass on its
    own clock reads: a block timed alone, its input and weights hot in the cache, runs faster than in a
    network (measured here: the sum of isolated times fell 20% short of whole networks, in context 6%).
    Samples of one key from several layers and probes are pooled. The `network overhead` entry is what a
    whole pass took beyond the sum of its segments' entries (median over the probes), so the sum of a
    network's entries predicts its whole time. `statistic` "min" (default) is the figure predictions use:
    other jobs on a shared CPU only ever add time, and the minimum of many repeats is least touched by
    them; "median" where the device is quiet. The probes are timed in `rounds` passes over all of them,
    so that a burst of other work spoils one round's samples of a key, not all of them."""
    device, autocast_dtype, table = open_table(out, device, batch_size, threads, warmup, repeats, precision,
                                               statistic, rounds)
    probes = [network for network in probe_networks(space)
              if any(key is not None and key not in table.entries for key in network_keys(network))]
    bar = None
    if progress and probes:
        from tqdm import tqdm
        bar = tqdm(total=len(probes) * rounds, desc=f"latency table ({device}, probe networks)", dynamic_ncols=True)
    pooled: dict[str, list[float]] = {}
    wholes: list[list[float]] = [[] for _ in probes]
    try:
        for _ in range(rounds):
            for position, network in enumerate(probes):
                segments, whole = time_segments(network, device, batch_size, warmup, repeats, autocast_dtype)
                for key, samples in zip(network_keys(network), segments):
                    if key is not None and key not in table.entries:
                        pooled.setdefault(key, []).extend(samples)
                wholes[position].extend(whole)
                if bar is not None:
                    bar.update(1)
            if out is not None:  # a killed run keeps every finished round
                save_table(out, table.with_entries({key: summarise(v) for key, v in pooled.items()}))
    finally:
        if bar is not None:
            bar.close()
        fresh = {key: summarise(samples) for key, samples in pooled.items()}
        if probes and all(wholes) and OVERHEAD_KEY not in table.entries:
            overheads = [(network, summarise(whole)) for network, whole in zip(probes, wholes)]
            without = table.with_entries(fresh)
            gaps = sorted(whole.value(statistic) - network_latency_ms(without, network) for network, whole in overheads)
            gap = max(0.0, gaps[len(gaps) // 2])
            fresh[OVERHEAD_KEY] = LatencyEntry(round(gap, 5), round(gaps[-1] - gaps[0], 5), len(gaps), round(gap, 5))
        table = table.with_entries(fresh)
        if out is not None and (fresh or not Path(out).exists()):
            save_table(out, table)  # also when interrupted: the next run resumes from here
    return table


@restores_torch_threads
def measure_network_ms(network, table: LatencyTable, warmup: int | None = None, repeats: int = 50) -> float:
    """The whole network's median time, under the table's conditions (device, batch, threads, precision)."""
    from autospace.nn import build_network

    device = torch.device(table.device)
    if device.type == "cpu":
        torch.set_num_threads(table.threads)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        model = build_network(network)
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
           "restores_torch_threads", "round_latency_us", "summarise", "time_module", "time_segments"]
