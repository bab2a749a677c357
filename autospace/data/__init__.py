"""Data sets as uint8 tensors, on-device augmentation and batching, stratified splits.

Environment variables:
- AUTOSPACE_DATA: the folder where `cifar10` is looked for and downloaded to
  (default `~/.cache/autospace/data`; the `data_dir` argument wins over it).
- AUTOSPACE_CACHE: the folder of decoded .npy caches (default `~/.cache/autospace/decoded`).
- AUTOSPACE_NO_DOWNLOAD=1: never download; a missing CIFAR-10 is an error at once.
"""

from autospace.data.batches import (
    apply_augmentation,
    augment_batch,
    draw_augmentation,
    epoch_batches,
    iterate_batches,
    normalize_batch,
    reference_augment,
)
from autospace.data.cache import resolve_cache_dir
from autospace.data.dataset import ImageDataset, channel_statistics
from autospace.data.registry import DATASET_NAMES, load_dataset, resolve_data_dir
from autospace.data.split import stratified_split
from autospace.data.synthetic import synthetic_dataset

__all__ = [
    "DATASET_NAMES",
    "ImageDataset",
    "apply_augmentation",
    "augment_batch",
    "channel_statistics",
    "draw_augmentation",
    "epoch_batches",
    "iterate_batches",
    "load_dataset",
    "normalize_batch",
    "reference_augment",
    "resolve_cache_dir",
    "resolve_data_dir",
    "stratified_split",
    "synthetic_dataset",
]
