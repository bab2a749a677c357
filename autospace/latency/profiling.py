"""Params, MAdds and measured latency of a network on a device."""

from __future__ import annotations

import time
from dataclasses import replace

import torch

from autospace.arch.network import Network
from autospace.cost import network_cost
from autospace.nn import build_network
from autospace.errors import AutospaceError
from autospace.runtime.memory import require_network_fits, require_parameters_fit

# The most timed passes a profile takes per batch size: beyond it the median no longer moves.
MAX_REPEATS = 100_000


def measure_latency_ms(model: torch.nn.Module, input_shape: tuple[int, ...], device: torch.device,
                       repeats: int = 20, warmup: int = 5, autocast_dtype=None) -> float:
    """Median forward time in milliseconds (inference mode, synchronised on CUDA)."""
    inputs = torch.randn(input_shape, device=device)
    inputs = inputs.contiguous(memory_format=torch.channels_last)
    times = []
    with torch.inference_mode(), torch.autocast(device.type, dtype=autocast_dtype or torch.bfloat16,
                                                enabled=autocast_dtype is not None):
        for index in range(warmup + repeats):
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            start = time.perf_counter()
            model(inputs)
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            if index >= warmup:
                times.append((time.perf_counter() - start) * 1000.0)
    times.sort()
    return times[len(times) // 2]


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
    require_network_fits(network, max(batch_sizes), device, "the network", training=False)
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
