"""Params, MAdds and measured latency of a network on a device (`autospace profile`), and the
prediction of a latency table beside the measured time (`--latency-table`), scaled by the machine's drift
since the table was made (measured on the table's anchors, `drift.py`)."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import torch

from autospace.arch.network import Network
from autospace.cost import network_cost
from autospace.errors import AutospaceError
from autospace.latency.drift import time_beside_anchors
from autospace.latency.prediction import network_latency_ms, predicted_vs_measured, trust_note
from autospace.latency.table import load_table, require_table_conditions
from autospace.latency.timing import check_table_device, time_module
from autospace.nn import build_network
from autospace.runtime.memory import require_network_fits, require_parameters_fit

# The most timed passes a profile takes per batch size: beyond it the median no longer moves.
MAX_REPEATS = 100_000


def measure_latency_ms(model: torch.nn.Module, input_shape: tuple[int, ...], device: torch.device,
                       repeats: int = 20, warmup: int = 5, autocast_dtype=None) -> float:
    """Median forward time in milliseconds (inference mode, NHWC, synchronised on CUDA)."""
    return time_module(model, input_shape, device, warmup, repeats, autocast_dtype).median_ms


def profile(network: Network, device: str | torch.device = "cpu", resolution: int | None = None,
            batch_sizes: tuple[int, ...] = (1, 64), repeats: int = 20, autocast_dtype=None) -> dict:
    """Analytic params/MAdds and measured latency at each batch size."""
    if isinstance(repeats, bool) or not isinstance(repeats, int) or not 1 <= repeats <= MAX_REPEATS:
        raise AutospaceError(f"repeats is {repeats!r}; it must be an integer in [1, {MAX_REPEATS:,}] (timed passes "
                             f"per batch size)")
    for batch in batch_sizes:
        if isinstance(batch, bool) or not isinstance(batch, int) or batch < 1:
            raise AutospaceError(f"batch size {batch!r} must be an integer >= 1")
    if resolution is not None:
        network = replace(network, resolution=resolution)  # validation re-checks the strides
    device = torch.device(device)
    cost = network_cost(network)
    require_parameters_fit(cost.params, device, "the network")
    require_network_fits(network, max(batch_sizes), device, "the network", training=False,
                         parameter_count=cost.params)
    model = build_network(network).to(device)
    model.train(False)
    model = model.to(memory_format=torch.channels_last)  # NHWC is faster on CUDA and CPU alike
    result = {"params": cost.params, "madds": cost.madds, "resolution": network.resolution,
              "device": str(device)}
    for batch in batch_sizes:
        shape = (batch, network.in_channels, network.resolution, network.resolution)
        result[f"latency_ms_b{batch}"] = round(measure_latency_ms(model, shape, device, repeats,
                                                                  autocast_dtype=autocast_dtype), 3)
    return result


def profile_against_table(network, table_path: str | Path, device: str | None = None,
                          resolution: int | None = None, repeats: int = 50) -> dict:
    """Params, MAdds, the table's predicted latency and the measured one, side by side. The network is timed
    in turn with the table's anchors: `drift` is how much slower (> 1) this machine runs now than when the
    table was made, and `predicted_latency_ms` is the table's prediction times it (`table_latency_ms`
    without it; the two are equal for a table without anchors, whose drift is null)."""
    if isinstance(repeats, bool) or not isinstance(repeats, int) or not 1 <= repeats <= MAX_REPEATS:
        raise AutospaceError(f"repeats is {repeats!r}; it must be an integer in [1, {MAX_REPEATS:,}] (timed passes)")
    table = load_table(table_path)
    check_table_device(table, device or table.device)
    require_table_conditions(table, table_path, "a table measured here")
    if resolution is not None:
        network = replace(network, resolution=resolution)
    predicted = network_latency_ms(table, network)
    (measured,), _, drift = time_beside_anchors([network], table, repeats=max(repeats, 20))
    cost = network_cost(network)
    return {"params": cost.params, "madds": cost.madds, "resolution": network.resolution,
            "device": table.device, "batch_size": table.batch_size, "threads": table.threads,
            "table_latency_ms": round(predicted, 4), "drift": None if drift is None else round(drift, 4),
            **predicted_vs_measured(predicted * (drift or 1.0), measured), "prediction_trust": trust_note(table)}
