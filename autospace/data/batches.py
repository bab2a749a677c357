"""Batches made on the training device: shuffling, crop-and-flip augmentation, normalisation.

The whole data set sits on the device as uint8, and every step here is a few
tensor operations on a whole batch (no per-image Python loop, no DataLoader
workers), as in the fastest CIFAR-10 trainers. Random draws take an explicit
generator, which must live on the device of the tensors it draws for.

Augmentation is split into `draw_augmentation` (the random offsets and flips)
and `apply_augmentation` (deterministic), so tests can check the vectorised
application against `reference_augment`, a plain per-sample loop.
"""

from __future__ import annotations

import functools
from typing import Iterator, Sequence

import torch
import torch.nn.functional as functional

from autospace.errors import AutospaceError


def _check_generator(generator: torch.Generator, device: torch.device, what: str) -> None:
    if not isinstance(generator, torch.Generator):
        raise AutospaceError(f"{what} needs a torch.Generator, got {type(generator).__name__}")
    if generator.device.type != torch.device(device).type:
        raise AutospaceError(
            f"{what}: the generator is on {generator.device} but the tensors are on {device}; "
            f"make it with torch.Generator(device={str(device)!r})"
        )


def draw_augmentation(
    batch_size: int, padding: int, generator: torch.Generator, device: torch.device | str, flip: bool = True
) -> tuple[torch.Tensor, torch.Tensor]:
    """Random crop offsets (batch, 2) int64 in [0, 2 * padding] as (row, column), and flips (batch,) bool."""
    device = torch.device(device)
    _check_generator(generator, device, "draw_augmentation")
    offsets = torch.randint(0, 2 * padding + 1, (batch_size, 2), generator=generator, device=device)
    if flip:
        flips = torch.rand(batch_size, generator=generator, device=device) < 0.5
    else:
        flips = torch.zeros(batch_size, dtype=torch.bool, device=device)
    return offsets, flips


def apply_augmentation(images: torch.Tensor, offsets: torch.Tensor, flips: torch.Tensor, padding: int) -> torch.Tensor:
    """Zero-pad by `padding`, crop each sample back to H x W at its offset, then mirror where `flips`.

    One gather for the whole batch: output[n, c, i, j] = padded[n, c, row_n + i, column_n + j'],
    with j' = W - 1 - j for a flipped sample.
    """
    batch, channels, height, width = images.shape
    padded = images.new_zeros((batch, channels, height + 2 * padding, width + 2 * padding))
    padded[:, :, padding : padding + height, padding : padding + width] = images
    device = images.device
    row_steps = torch.arange(height, device=device)
    column_steps = torch.arange(width, device=device)
    rows = offsets[:, 0, None] + row_steps
    columns = offsets[:, 1, None] + torch.where(flips[:, None], width - 1 - column_steps, column_steps)
    samples = torch.arange(batch, device=device)[:, None, None, None]
    channel_index = torch.arange(channels, device=device)[None, :, None, None]
    return padded[samples, channel_index, rows[:, None, :, None], columns[:, None, None, :]]


def augment_batch(
    images_uint8: torch.Tensor, generator: torch.Generator, padding: int = 4, flip: bool = True
) -> torch.Tensor:
    """Random crop with zero padding and random horizontal flip, per sample; uint8 in, uint8 out, same device."""
    if images_uint8.dim() != 4:
        raise AutospaceError(f"augment_batch needs images (N, C, H, W); got shape {tuple(images_uint8.shape)}")
    if isinstance(padding, bool) or not isinstance(padding, int) or padding < 0:
        raise AutospaceError(f"augment_batch: padding={padding!r} is invalid; use an integer >= 0")
    offsets, flips = draw_augmentation(images_uint8.shape[0], padding, generator, images_uint8.device, flip)
    return apply_augmentation(images_uint8, offsets, flips, padding)


def reference_augment(images: torch.Tensor, offsets: torch.Tensor, flips: torch.Tensor, padding: int) -> torch.Tensor:
    """The slow, obvious per-sample loop that `apply_augmentation` must equal (used by tests)."""
    height, width = images.shape[2], images.shape[3]
    outputs = []
    for index in range(images.shape[0]):
        padded = functional.pad(images[index].float(), (padding, padding, padding, padding))
        row, column = int(offsets[index, 0]), int(offsets[index, 1])
        crop = padded[:, row : row + height, column : column + width]
        if bool(flips[index]):
            crop = torch.flip(crop, dims=(2,))
        outputs.append(crop.to(images.dtype))
    return torch.stack(outputs)


@functools.lru_cache(maxsize=32)
def _scale_and_shift(mean: tuple[float, ...], std: tuple[float, ...], device: torch.device):
    mean_tensor = torch.tensor(mean, dtype=torch.float32).view(1, -1, 1, 1)
    std_tensor = torch.tensor(std, dtype=torch.float32).view(1, -1, 1, 1)
    # (x / 255 - mean) / std == x * scale + shift
    return (1.0 / (255.0 * std_tensor)).to(device), (-mean_tensor / std_tensor).to(device)


def normalize_batch(
    images_uint8: torch.Tensor,
    mean: Sequence[float],
    std: Sequence[float],
    dtype: torch.dtype = torch.float32,
    channels_last: bool = False,
) -> torch.Tensor:
    """(x / 255 - mean) / std per channel, computed in float32 and returned as `dtype`."""
    mean, std = tuple(float(value) for value in mean), tuple(float(value) for value in std)
    if images_uint8.dim() != 4 or len(mean) != images_uint8.shape[1] or len(std) != images_uint8.shape[1]:
        raise AutospaceError(
            f"normalize_batch: images of shape {tuple(images_uint8.shape)} need (N, C, H, W) with one mean and "
            f"std per channel; got mean {mean}, std {std}"
        )
    if any(not value > 0 for value in std):
        raise AutospaceError(f"normalize_batch: std {std} must be positive in every channel")
    scale, shift = _scale_and_shift(mean, std, images_uint8.device)
    output = torch.addcmul(shift, images_uint8.to(torch.float32), scale).to(dtype)
    if channels_last:
        output = output.contiguous(memory_format=torch.channels_last)
    return output


def epoch_batches(
    labels_count: int, batch_size: int, generator: torch.Generator, drop_last: bool
) -> list[torch.Tensor]:
    """A fresh seeded permutation of range(labels_count), cut into batches (on the generator's device)."""
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise AutospaceError(f"batch_size={batch_size!r} is invalid; use an integer >= 1")
    permutation = torch.randperm(labels_count, generator=generator, device=generator.device)
    batches = list(torch.split(permutation, batch_size))
    if drop_last and batches and batches[-1].shape[0] < batch_size:
        batches.pop()
    return batches


def iterate_batches(
    images: torch.Tensor,
    labels: torch.Tensor,
    indices: torch.Tensor | None,
    batch_size: int,
    generator: torch.Generator | None,
    augment: bool,
    mean: Sequence[float],
    std: Sequence[float],
    drop_last: bool,
    channels_last: bool = False,
    dtype: torch.dtype = torch.float32,
) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """One epoch of (normalised float images, int64 labels) on the images' device.

    `indices` picks the samples (None: all); with a generator they are visited
    in a fresh random order, without one in the given order (for evaluation).
    `augment` needs a generator, on the images' device.
    """
    device = images.device
    if indices is None:
        indices = torch.arange(images.shape[0], device=device)
    indices = indices.to(device)
    if generator is None:
        if augment:
            raise AutospaceError("iterate_batches: augment=True needs a generator on the images' device")
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise AutospaceError(f"batch_size={batch_size!r} is invalid; use an integer >= 1")
        batches = list(torch.split(indices, batch_size))
        if drop_last and batches and batches[-1].shape[0] < batch_size:
            batches.pop()
    else:
        _check_generator(generator, device, "iterate_batches")
        positions = epoch_batches(indices.shape[0], batch_size, generator, drop_last)
        batches = [indices[batch_positions] for batch_positions in positions]
    labels = labels.to(device)
    for batch_indices in batches:
        batch_images = images[batch_indices]
        if augment:
            batch_images = augment_batch(batch_images, generator)
        yield normalize_batch(batch_images, mean, std, dtype=dtype, channels_last=channels_last), labels[batch_indices]
