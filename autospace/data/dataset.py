"""An image classification data set held as uint8 tensors.

The whole set lives in memory (and later on the training device) as uint8
(N, C, H, W) tensors; batches are augmented and normalised on the device
(see `batches.py`). Readers of files produce `DecodedArrays` (numpy), which
`build_dataset` turns into an `ImageDataset` with its channel statistics.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from autospace.data.split import stratified_selection
from autospace.errors import AutospaceError


@dataclass
class DecodedArrays:
    """What a file reader hands back: numpy arrays, images uint8 (N, C, H, W)."""

    classes: tuple[str, ...]
    train_images: np.ndarray
    train_labels: np.ndarray
    test_images: np.ndarray
    test_labels: np.ndarray


@dataclass
class ImageDataset:
    """Train and test images (uint8, N x C x H x W) with int64 labels.

    `mean` and `std` are per channel in [0, 1] units, measured on the train
    images; normalisation is `(x / 255 - mean) / std`.
    """

    name: str
    classes: tuple[str, ...]
    train_images: torch.Tensor
    train_labels: torch.Tensor
    test_images: torch.Tensor
    test_labels: torch.Tensor
    mean: tuple[float, ...]
    std: tuple[float, ...]

    def __post_init__(self) -> None:
        self.classes = tuple(str(name) for name in self.classes)
        self.mean = tuple(float(value) for value in self.mean)
        self.std = tuple(float(value) for value in self.std)
        if not self.classes:
            raise AutospaceError(f"data set {self.name!r} has no classes; it needs at least one class name")
        for split in ("train", "test"):
            images = getattr(self, f"{split}_images")
            labels = getattr(self, f"{split}_labels")
            _check_split(self.name, split, images, labels, len(self.classes))
            setattr(self, f"{split}_images", images.contiguous())
            setattr(self, f"{split}_labels", labels.contiguous())
        if self.train_images.shape[1:] != self.test_images.shape[1:]:
            raise AutospaceError(
                f"data set {self.name!r}: train images are {tuple(self.train_images.shape[1:])} (C, H, W) but "
                f"test images are {tuple(self.test_images.shape[1:])}; both splits need the same image shape"
            )
        channels = self.train_images.shape[1]
        if len(self.mean) != channels or len(self.std) != channels:
            raise AutospaceError(
                f"data set {self.name!r}: mean {self.mean} and std {self.std} need one value per channel "
                f"({channels} channels)"
            )
        if any(not value > 0 for value in self.std):
            raise AutospaceError(f"data set {self.name!r}: std {self.std} must be positive in every channel")

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    @property
    def channels(self) -> int:
        return int(self.train_images.shape[1])

    @property
    def height(self) -> int:
        return int(self.train_images.shape[2])

    @property
    def width(self) -> int:
        return int(self.train_images.shape[3])

    @property
    def resolution(self) -> int:
        """The side of the (square) images: what a network's `resolution` must equal.

        Every network takes square inputs, so a set of non-square images (which
        loads and can be inspected) is refused here, where a network meets it."""
        if self.height != self.width:
            raise AutospaceError(
                f"data set {self.name!r} has images of {self.width}x{self.height} (width x height), but networks "
                f"take square images; crop or resize the images to one square size (e.g. "
                f"{min(self.width, self.height)}x{min(self.width, self.height)})"
            )
        return self.height

    @property
    def train_count(self) -> int:
        return int(self.train_images.shape[0])

    @property
    def test_count(self) -> int:
        return int(self.test_images.shape[0])

    @property
    def device(self) -> torch.device:
        return self.train_images.device

    def to(self, device: torch.device | str) -> "ImageDataset":
        """A copy with all tensors on `device` (images stay uint8)."""
        return ImageDataset(
            name=self.name,
            classes=self.classes,
            train_images=self.train_images.to(device),
            train_labels=self.train_labels.to(device),
            test_images=self.test_images.to(device),
            test_labels=self.test_labels.to(device),
            mean=self.mean,
            std=self.std,
        )

    def subset(
        self,
        train_count: int | None,
        test_count: int | None,
        generator: torch.Generator,
    ) -> "ImageDataset":
        """A stratified random subsample (for quick runs); `None` keeps a split whole.

        Class proportions are kept (largest-remainder rounding); the order of
        the kept samples is their original order. `mean` and `std` are kept from
        the full set so normalisation does not change.
        """
        train_index = self._subset_indices("train", train_count, generator)
        test_index = self._subset_indices("test", test_count, generator)
        return ImageDataset(
            name=self.name,
            classes=self.classes,
            train_images=self.train_images[train_index],
            train_labels=self.train_labels[train_index],
            test_images=self.test_images[test_index],
            test_labels=self.test_labels[test_index],
            mean=self.mean,
            std=self.std,
        )

    def resized(self, size: int) -> "ImageDataset":
        """The same images area-resized to `size` x `size` (averaging when shrinking), uint8 again;
        `mean` and `std` are kept so normalisation does not change."""
        if isinstance(size, bool) or not isinstance(size, int) or not 4 <= size <= 4096:
            raise AutospaceError(f"image_size is {size!r}; use an integer side from 4 to 4096 pixels, e.g. 16")
        if size == self.resolution:
            return self

        def resize(images: torch.Tensor) -> torch.Tensor:
            out = [torch.nn.functional.interpolate(images[i:i + 4096].float(), size=(size, size), mode="area")
                   for i in range(0, images.shape[0], 4096)]
            return torch.cat(out).round_().clamp_(0, 255).to(torch.uint8) if out else images[:, :, :size, :size]

        return ImageDataset(name=f"{self.name}@{size}px", classes=self.classes,
                            train_images=resize(self.train_images), train_labels=self.train_labels,
                            test_images=resize(self.test_images), test_labels=self.test_labels,
                            mean=self.mean, std=self.std)

    def _subset_indices(self, split: str, count: int | None, generator: torch.Generator) -> torch.Tensor:
        labels = getattr(self, f"{split}_labels")
        available = int(labels.shape[0])
        if count is None:
            return torch.arange(available, device=labels.device)
        if isinstance(count, bool) or not isinstance(count, int) or not 1 <= count <= available:
            raise AutospaceError(
                f"subset of {self.name!r}: {split}_count={count!r} is out of range; "
                f"use an integer from 1 to {available} (the {split} size) or None for all"
            )
        selected = stratified_selection(labels.cpu(), count, generator)
        return torch.sort(selected).values.to(labels.device)


def _check_split(name: str, split: str, images: torch.Tensor, labels: torch.Tensor, num_classes: int) -> None:
    where = f"data set {name!r}, {split} split"
    if not isinstance(images, torch.Tensor) or images.dtype != torch.uint8 or images.dim() != 4:
        description = f"{images.dtype} {tuple(images.shape)}" if isinstance(images, torch.Tensor) else type(images)
        raise AutospaceError(f"{where}: images are {description}; expected a uint8 tensor (N, C, H, W)")
    if not isinstance(labels, torch.Tensor) or labels.dtype != torch.int64 or labels.dim() != 1:
        description = f"{labels.dtype} {tuple(labels.shape)}" if isinstance(labels, torch.Tensor) else type(labels)
        raise AutospaceError(f"{where}: labels are {description}; expected an int64 tensor (N,)")
    if labels.shape[0] != images.shape[0]:
        raise AutospaceError(
            f"{where}: {images.shape[0]} images but {labels.shape[0]} labels; each image needs exactly one label"
        )
    if labels.numel() and (int(labels.min()) < 0 or int(labels.max()) >= num_classes):
        raise AutospaceError(
            f"{where}: labels range over {int(labels.min())}..{int(labels.max())}; "
            f"expected 0..{num_classes - 1} for {num_classes} classes"
        )


def channel_statistics(images: torch.Tensor, chunk: int = 4096) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Per-channel mean and standard deviation of uint8 (N, C, H, W) images, in [0, 1] units."""
    channels = images.shape[1]
    total = torch.zeros(channels, dtype=torch.float64)
    total_squares = torch.zeros(channels, dtype=torch.float64)
    for start in range(0, images.shape[0], chunk):
        block = images[start : start + chunk].to(torch.float64) / 255.0
        total += block.sum(dim=(0, 2, 3))
        total_squares += block.square().sum(dim=(0, 2, 3))
    count = max(images.shape[0] * images.shape[2] * images.shape[3], 1)
    mean = total / count
    variance = (total_squares / count - mean.square()).clamp_min(0.0)
    # A constant channel would give std 0 and a division by zero when normalising.
    std = variance.sqrt().clamp_min(1e-3)
    return tuple(mean.tolist()), tuple(std.tolist())


def build_dataset(name: str, arrays: DecodedArrays, source: str = "") -> ImageDataset:
    """Check decoded arrays (counts, label range) and wrap them as an `ImageDataset`."""
    where = f"{source}: " if source else ""
    if np.asarray(arrays.train_labels).size == 0:
        raise AutospaceError(f"{where}the train split holds no images; a data set needs at least one train image")
    tensors = {}
    for split in ("train", "test"):
        images = np.ascontiguousarray(getattr(arrays, f"{split}_images"))
        labels = np.asarray(getattr(arrays, f"{split}_labels"))
        if images.dtype != np.uint8 or images.ndim != 4:
            raise AutospaceError(
                f"{where}{split} images are {images.dtype} {images.shape}; expected uint8 (N, C, H, W)"
            )
        if labels.ndim != 1 or labels.shape[0] != images.shape[0]:
            raise AutospaceError(
                f"{where}{images.shape[0]} {split} images but labels of shape {labels.shape}; "
                f"expected one label per image"
            )
        if labels.size and (labels.min() < 0 or labels.max() >= len(arrays.classes)):
            raise AutospaceError(
                f"{where}{split} labels range over {labels.min()}..{labels.max()}; "
                f"expected 0..{len(arrays.classes) - 1} for {len(arrays.classes)} classes"
            )
        tensors[f"{split}_images"] = torch.from_numpy(images)
        tensors[f"{split}_labels"] = torch.from_numpy(labels.astype(np.int64))
    mean, std = channel_statistics(tensors["train_images"])
    return ImageDataset(name=name, classes=tuple(arrays.classes), mean=mean, std=std, **tensors)
