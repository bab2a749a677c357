"""A deterministic, learnable synthetic image set that needs no files.

Each class has a smooth random colour pattern (a low-resolution random grid
upsampled to the image size); a sample is its class pattern shifted by a few
pixels, scaled in brightness, plus Gaussian noise. A small network learns it
in a few epochs; it is for tests, smoke runs and benchmarks, not for results.
"""

from __future__ import annotations

import torch
import torch.nn.functional as functional

from autospace.data.dataset import ImageDataset, channel_statistics
from autospace.errors import AutospaceError

PATTERN_GRID = 4
MAXIMUM_SHIFT = 3
NOISE_STD = 24.0


def _positive_int(name: str, value: object, minimum: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise AutospaceError(f"synthetic_dataset: {name}={value!r} is invalid; use an integer >= {minimum}")
    return value


def _class_patterns(num_classes: int, channels: int, resolution: int, generator: torch.Generator) -> torch.Tensor:
    """(num_classes, C, H, W) float patterns in [0, 255], distinct per class."""
    grid = torch.rand(num_classes, channels, PATTERN_GRID, PATTERN_GRID, generator=generator)
    padded = resolution + 2 * MAXIMUM_SHIFT
    patterns = functional.interpolate(grid, size=(padded, padded), mode="bilinear", align_corners=False)
    low, high = patterns.amin(dim=(1, 2, 3), keepdim=True), patterns.amax(dim=(1, 2, 3), keepdim=True)
    return (patterns - low) / (high - low).clamp_min(1e-6) * 255.0


def _samples(patterns: torch.Tensor, count: int, resolution: int, generator: torch.Generator):
    num_classes = patterns.shape[0]
    # Balanced labels (counts differ by at most one), in random order.
    labels = torch.arange(count) % num_classes
    labels = labels[torch.randperm(count, generator=generator)]
    shifts = torch.randint(0, 2 * MAXIMUM_SHIFT + 1, (count, 2), generator=generator)
    rows = shifts[:, 0, None] + torch.arange(resolution)
    columns = shifts[:, 1, None] + torch.arange(resolution)
    channels = torch.arange(patterns.shape[1])
    images = patterns[
        labels[:, None, None, None], channels[None, :, None, None], rows[:, None, :, None], columns[:, None, None, :]
    ]
    brightness = 0.75 + 0.5 * torch.rand(count, 1, 1, 1, generator=generator)
    noise = NOISE_STD * torch.randn(images.shape, generator=generator)
    images = (images * brightness + noise).round().clamp(0, 255).to(torch.uint8)
    return images.contiguous(), labels.to(torch.int64)


def synthetic_dataset(
    train_count: int = 512,
    test_count: int = 128,
    num_classes: int = 10,
    resolution: int = 32,
    channels: int = 3,
    seed: int = 0,
) -> ImageDataset:
    """A synthetic `ImageDataset`; the same arguments give the same tensors on every machine."""
    train_count = _positive_int("train_count", train_count)
    test_count = _positive_int("test_count", test_count)
    num_classes = _positive_int("num_classes", num_classes, minimum=2)
    resolution = _positive_int("resolution", resolution)
    channels = _positive_int("channels", channels)
    if not isinstance(seed, int) or isinstance(seed, bool):
        raise AutospaceError(f"synthetic_dataset: seed={seed!r} is invalid; use an integer")
    # Separate streams, so the test set does not change with train_count.
    pattern_generator = torch.Generator().manual_seed(3 * seed)
    train_generator = torch.Generator().manual_seed(3 * seed + 1)
    test_generator = torch.Generator().manual_seed(3 * seed + 2)
    patterns = _class_patterns(num_classes, channels, resolution, pattern_generator)
    train_images, train_labels = _samples(patterns, train_count, resolution, train_generator)
    test_images, test_labels = _samples(patterns, test_count, resolution, test_generator)
    mean, std = channel_statistics(train_images)
    return ImageDataset(
        name=f"synthetic:{train_count},{test_count}",
        classes=tuple(f"class_{index}" for index in range(num_classes)),
        train_images=train_images,
        train_labels=train_labels,
        test_images=test_images,
        test_labels=test_labels,
        mean=mean,
        std=std,
    )


def parse_synthetic_name(name: str) -> tuple[int, int]:
    """`synthetic` -> defaults; `synthetic:TRAIN,TEST` -> the two counts."""
    _, _, arguments = name.partition(":")
    if not arguments:
        return 512, 128
    parts = arguments.split(",")
    try:
        if len(parts) != 2:
            raise ValueError
        train_count, test_count = (int(part.strip()) for part in parts)
        if train_count < 1 or test_count < 1:
            raise ValueError
    except ValueError:
        raise AutospaceError(
            f"data set name {name!r} is malformed; use 'synthetic' or 'synthetic:TRAIN,TEST' "
            f"with two positive integers, e.g. 'synthetic:512,128'"
        ) from None
    return train_count, test_count
