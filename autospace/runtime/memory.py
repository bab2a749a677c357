"""Does what a file asks for fit in memory? Checked before allocating, so a network of 65,536
channels ends in one clear line instead of a failed 50 GB allocation (or the kernel's OOM killer).

The estimate counts float32 parameters; training holds each parameter about three times
(weights, gradients, SGD momentum). `require_network_fits` adds the activations at the batch and
resolution a command will use (a small network at `--resolution 65536` has few parameters but
48 GiB of activations): inference holds a few feature maps at a time, training keeps them all.
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


# Feature maps live at once per block: inference about 3 (input, expanded, output); training keeps about
# 3 a block (conv, batch norm and activation outputs) for the backward pass, in every block.
MAPS_PER_BLOCK = 3


def _expansion(block) -> int:
    """How many times its input width a block's widest inner map is (6 where the block does not say)."""
    branches = getattr(block, "branches", None)
    if branches:
        return sum(_expansion(branch) for branch in branches)
    for owner in (block, getattr(block, "cell", None)):
        value = getattr(owner, "expansion", None)
        if isinstance(value, int) and value > 0:
            return value
    return 1 if block.is_empty() else 6


def activation_elements(network, batch_size: int, training: bool) -> int:
    """Estimated float elements of the feature maps a forward pass of `network` at `batch_size` holds at its
    peak (inference) or keeps for the backward pass (training)."""
    resolution = network.resolution
    per_image = [network.in_channels * resolution * resolution]
    for layer, slot in zip(network.layers, network.slots()):
        widest = max(slot.in_channels * _expansion(layer.block), slot.out_channels)
        per_image.append(widest * slot.input_size * slot.input_size)
    stem_size = -(-resolution // max(1, getattr(network, "stem_stride", 1)))
    per_image.append(getattr(network, "stem_channels", 0) * stem_size * stem_size)
    total = sum(per_image) if training else max(per_image)
    return MAPS_PER_BLOCK * total * batch_size


def require_network_fits(network, batch_size: int, device: torch.device | str, what: str, training: bool,
                         parameter_count: int) -> None:
    """Refuse `what` when the parameters (`parameter_count`, the network's analytic count: three copies to
    train) and the activations at `batch_size` would not fit in the free memory of `device`; one line with
    both figures."""
    parameters = parameter_count * (COPIES_FOR_TRAINING if training else 1)
    activations = activation_elements(network, batch_size, training)
    needed = (parameters + activations) * BYTES_PER_PARAMETER
    free = free_memory_bytes(device)
    if free is None or needed <= free:
        return
    purpose = "to train" if training else "to run"
    raise AutospaceError(f"{what} needs about {needed / 2**30:.1f} GiB {purpose} at batch {batch_size} and "
                         f"resolution {network.resolution} ({activations * BYTES_PER_PARAMETER / 2**30:.1f} GiB of "
                         f"activations), but {torch.device(device)} has {free / 2**30:.1f} GiB free; use a lower "
                         f"resolution, a smaller batch or a device with more memory")
