"""Does what a file asks for fit in memory? Checked before allocating, so a network of 65,536
channels ends in one clear line instead of a failed 50 GB allocation (or the kernel's OOM killer).

The estimate counts float32 parameters only (activations depend on the batch and are far smaller
for the networks where this check matters); training holds each parameter about three times
(weights, gradients, SGD momentum).
"""

from __future__ import annotations

import os

import torch

from autospace.errors import AutospaceError

BYTES_PER_PARAMETER = 4  # float32 master weights, whatever the autocast precision
COPIES_FOR_TRAINING = 3  # weights, gradients, momentum


def free_memory_bytes(device: torch.device | str) -> int | None:
    """Bytes free for new tensors on `device` (CUDA: the driver's figure; CPU: MemAvailable); None if unknown."""
    device = torch.device(device)
    if device.type == "cuda":
        try:
            return int(torch.cuda.mem_get_info(device)[0])
        except (RuntimeError, AssertionError):
            return None
    try:
        with open("/proc/meminfo", encoding="ascii") as file:
            for line in file:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return None


def require_parameters_fit(parameter_count: int, device: torch.device | str, what: str, copies: int = 1) -> None:
    """Refuse `what` (e.g. "the network of arch.json") when `copies` float32 copies of its parameters
    would not fit in the free memory of `device`."""
    needed = parameter_count * BYTES_PER_PARAMETER * copies
    free = free_memory_bytes(device)
    if free is None or needed <= free:
        return
    purpose = "to train" if copies > 1 else "to hold"
    raise AutospaceError(f"{what} has {parameter_count:,} parameters: {needed / 2**30:.1f} GiB {purpose} as float32, "
                         f"but {torch.device(device)} has {free / 2**30:.1f} GiB free; use fewer channels or "
                         f"layers, or a device with more memory")
