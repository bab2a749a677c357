"""Data sets as uint8 tensors, on-device augmentation and batching, stratified splits.

Environment variables:
- AUTOSPACE_DATA: the folder where `cifar10` is looked for and downloaded to
  (default `~/.cache/autospace/data`; the `data_dir` argument wins over it).
- AUTOSPACE_CACHE: the folder of decoded .npy caches (default `~/.cache/autospace/decoded`).
- AUTOSPACE_NO_DOWNLOAD=1: never download; a missing CIFAR-10 is an error at once.
"""

from autospace.runtime.lazy import lazy_exports

_EXPORTS = {
    "apply_augmentation": "batches", "augment_batch": "batches", "draw_augmentation": "batches",
    "epoch_batches": "batches", "iterate_batches": "batches", "normalize_batch": "batches",
    "reference_augment": "batches",
    "resolve_cache_dir": "cache",
    "ImageDataset": "dataset", "channel_statistics": "dataset",
    "DATASET_NAMES": "registry", "load_dataset": "registry", "resolve_data_dir": "registry",
    "stratified_split": "split",
    "synthetic_dataset": "synthetic",
}
__all__ = sorted(_EXPORTS)
__getattr__ = lazy_exports(__name__, _EXPORTS)
