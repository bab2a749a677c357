"""Readers for CIFAR-10 in its three file forms, and the download of the official archive.

- `cifar10_jpeg.npz`: JPEG bytes of every image concatenated, with offsets and
  labels (see shared/data/README.md); samples are sorted by class.
- `cifar-10-batches-py/`: the official python version, pickled dicts with
  b"data" (N, 3072) uint8, channel-major (1024 red, 1024 green, 1024 blue, each
  row-major 32x32) and b"labels"; `batches.meta` holds b"label_names".
- `cifar-10-python.tar.gz`: the official archive of that folder, read in memory.

Every reader returns `DecodedArrays` with images uint8 (N, 3, 32, 32).
"""

from __future__ import annotations

import hashlib
import io
import os
import pickle
import sys
import tarfile
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from urllib.request import urlopen

import numpy as np
from PIL import Image

from autospace.data.dataset import DecodedArrays
from autospace.data.reading import CIFAR10_ARCHIVE, CIFAR10_BATCHES_FOLDER, file_errors, malformed
from autospace.errors import AutospaceError

CIFAR10_ARCHIVE_URL = "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz"
CIFAR10_ARCHIVE_MD5 = "c58f30108f718f92721af3b95e74349a"
TRAIN_BATCHES = tuple(f"data_batch_{number}" for number in range(1, 6))
BATCH_FILES = TRAIN_BATCHES + ("test_batch", "batches.meta")
NPZ_KEYS = ("classes", "train_jpeg", "train_offsets", "y_train", "test_jpeg", "test_offsets", "y_test")


def read_cifar_jpeg_npz(path: str | os.PathLike) -> DecodedArrays:
    """Decode `cifar10_jpeg.npz` (JPEG bytes + offsets) with Pillow."""
    path = Path(path)
    with file_errors(path, "a CIFAR-10 JPEG archive (.npz)"):
        with np.load(path, allow_pickle=False) as archive:
            missing = [key for key in NPZ_KEYS if key not in archive.files]
            if missing:
                raise malformed(
                    path, f"lacks the keys {missing}; a CIFAR-10 JPEG .npz holds {list(NPZ_KEYS)} "
                    f"(found {sorted(archive.files)})"
                )
            classes = tuple(str(name) for name in np.asarray(archive["classes"]).reshape(-1))
            splits = {}
            for split in ("train", "test"):
                jpeg = np.asarray(archive[f"{split}_jpeg"])
                offsets = np.asarray(archive[f"{split}_offsets"])
                labels = np.asarray(archive[f"y_{split}"])
                images = _decode_jpegs(path, split, jpeg, offsets, labels, len(classes))
                splits[split] = (images, labels.astype(np.int64))
    return DecodedArrays(
        classes=classes,
        train_images=splits["train"][0],
        train_labels=splits["train"][1],
        test_images=splits["test"][0],
        test_labels=splits["test"][1],
    )


def _decode_jpegs(
    path: Path, split: str, jpeg: np.ndarray, offsets: np.ndarray, labels: np.ndarray, num_classes: int
) -> np.ndarray:
    if jpeg.dtype != np.uint8 or jpeg.ndim != 1:
        raise malformed(path, f"{split}_jpeg is {jpeg.dtype} {jpeg.shape}; expected 1-D uint8 bytes")
    if labels.ndim != 1 or offsets.ndim != 1 or offsets.shape[0] == 0:
        raise malformed(
            path, f"{split}_offsets has shape {offsets.shape} and y_{split} {labels.shape}; "
            f"expected 1-D arrays: N + 1 offsets for N labels"
        )
    if offsets.shape[0] != labels.shape[0] + 1:
        raise AutospaceError(
            f"{path}: {split}_offsets delimit {offsets.shape[0] - 1} {split} images but y_{split} holds "
            f"{labels.shape[0]} labels; expected one label per image (N + 1 offsets for N labels)"
        )
    offsets = offsets.astype(np.int64)
    if offsets.size and (offsets[0] != 0 or np.any(np.diff(offsets) <= 0) or offsets[-1] > jpeg.shape[0]):
        raise malformed(
            path, f"{split}_offsets are not increasing from 0 to at most {jpeg.shape[0]} (the length of {split}_jpeg)"
        )
    if labels.shape[0] == 0:
        raise AutospaceError(f"{path}: the {split} split holds no images; a data set needs at least one image "
                             f"in each of train and test")
    if not np.issubdtype(labels.dtype, np.integer) and not (
            np.issubdtype(labels.dtype, np.floating) and np.all(np.isfinite(labels)) and np.all(labels % 1 == 0)):
        shown = labels[~np.isfinite(labels) | (labels % 1 != 0)][:3] if np.issubdtype(labels.dtype, np.floating) \
            else labels[:3]
        raise malformed(path, f"y_{split} holds {labels.dtype} labels such as {shown.tolist()}; expected whole "
                              f"class numbers 0..{num_classes - 1}")
    if labels.size and (labels.min() < 0 or labels.max() >= num_classes):
        raise malformed(path, f"y_{split} ranges over {labels.min()}..{labels.max()}; expected 0..{num_classes - 1}")
    data = jpeg.tobytes()
    count = labels.shape[0]
    if count == 0:
        return np.zeros((0, 3, 32, 32), dtype=np.uint8)

    def decode(index: int) -> np.ndarray:
        with Image.open(io.BytesIO(data[offsets[index] : offsets[index + 1]])) as image:
            return np.asarray(image.convert("RGB"))

    first = decode(0)
    images = np.empty((count,) + first.shape, dtype=np.uint8)

    def decode_range(start: int, stop: int) -> None:
        for index in range(start, stop):
            pixels = decode(index)
            if pixels.shape != first.shape:
                raise malformed(
                    path, f"{split} image {index} is {pixels.shape[1]}x{pixels.shape[0]} but image 0 is "
                    f"{first.shape[1]}x{first.shape[0]}; all images must have the same size"
                )
            images[index] = pixels

    # Pillow releases the GIL while decoding, so a few threads help.
    chunk = 2048
    with ThreadPoolExecutor(max_workers=min(8, os.cpu_count() or 1)) as executor:
        futures = [executor.submit(decode_range, start, min(start + chunk, count)) for start in range(0, count, chunk)]
        for future in futures:
            future.result()
    return np.ascontiguousarray(images.transpose(0, 3, 1, 2))


class _ArrayUnpickler(pickle.Unpickler):
    """Unpickles the CIFAR batches (dicts of bytes, lists and numpy arrays) and nothing else."""

    ALLOWED = {
        ("numpy.core.multiarray", "_reconstruct"),
        ("numpy._core.multiarray", "_reconstruct"),
        ("numpy.core.multiarray", "scalar"),
        ("numpy._core.multiarray", "scalar"),
        ("numpy", "ndarray"),
        ("numpy", "dtype"),
        ("_codecs", "encode"),
    }

    def find_class(self, module: str, name: str):
        if (module, name) in self.ALLOWED:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"{module}.{name} is not allowed in a CIFAR-10 batch file")


def _unpickle(data: bytes) -> dict:
    value = _ArrayUnpickler(io.BytesIO(data), encoding="bytes").load()
    if not isinstance(value, dict):
        raise pickle.UnpicklingError(f"expected a pickled dict, found {type(value).__name__}")
    return value


def _entry(batch: dict, key: str, where: str):
    for candidate in (key.encode(), key):
        if candidate in batch:
            return batch[candidate]
    raise malformed(where, f"has no {key!r} entry; a CIFAR-10 batch holds b'data' and b'labels'")


def _parse_batch(data: bytes, where: str, num_classes: int) -> tuple[np.ndarray, np.ndarray]:
    with file_errors(where, "a pickled CIFAR-10 batch"):
        batch = _unpickle(data)
        images = np.asarray(_entry(batch, "data", where))
        labels = np.asarray(_entry(batch, "labels", where)).astype(np.int64)
    if images.dtype != np.uint8 or images.ndim != 2 or images.shape[1] != 3 * 32 * 32:
        raise malformed(where, f"data is {images.dtype} {images.shape}; expected uint8 (N, 3072)")
    if labels.ndim != 1 or labels.shape[0] != images.shape[0]:
        raise malformed(
            where, f"{images.shape[0]} images but {labels.reshape(-1).shape[0]} labels; expected one label per image"
        )
    if labels.size and (labels.min() < 0 or labels.max() >= num_classes):
        raise malformed(where, f"labels range over {labels.min()}..{labels.max()}; expected 0..{num_classes - 1}")
    # Channel-major rows: 1024 red, 1024 green, 1024 blue values, each a row-major 32x32 plane.
    return images.reshape(-1, 3, 32, 32), labels


def _parse_batches(contents: dict[str, bytes], where: str) -> DecodedArrays:
    with file_errors(f"{where}/batches.meta", "the pickled CIFAR-10 metadata"):
        meta = _unpickle(contents["batches.meta"])
        names = _entry(meta, "label_names", f"{where}/batches.meta")
        classes = tuple(name.decode() if isinstance(name, bytes) else str(name) for name in names)
    if not classes:
        raise malformed(f"{where}/batches.meta", "lists no label_names; expected the 10 CIFAR-10 class names")
    train = [_parse_batch(contents[name], f"{where}/{name}", len(classes)) for name in TRAIN_BATCHES]
    test_images, test_labels = _parse_batch(contents["test_batch"], f"{where}/test_batch", len(classes))
    return DecodedArrays(
        classes=classes,
        train_images=np.ascontiguousarray(np.concatenate([images for images, _ in train])),
        train_labels=np.concatenate([labels for _, labels in train]),
        test_images=np.ascontiguousarray(test_images),
        test_labels=test_labels,
    )


def read_cifar_batches_folder(path: str | os.PathLike) -> DecodedArrays:
    """Read the extracted official python version (`cifar-10-batches-py/`)."""
    path = Path(path)
    missing = [name for name in BATCH_FILES if not (path / name).is_file()]
    if missing:
        raise malformed(path, f"lacks {missing}; a {CIFAR10_BATCHES_FOLDER} folder holds {list(BATCH_FILES)}")
    contents = {}
    for name in BATCH_FILES:
        with file_errors(path / name, "a pickled CIFAR-10 batch"):
            contents[name] = (path / name).read_bytes()
    return _parse_batches(contents, str(path))


def read_cifar_archive(path: str | os.PathLike) -> DecodedArrays:
    """Read `cifar-10-python.tar.gz` in memory, without extracting it to disk."""
    path = Path(path)
    contents: dict[str, bytes] = {}
    with file_errors(path, f"the official CIFAR-10 archive ({CIFAR10_ARCHIVE})"):
        with tarfile.open(path, mode="r:*") as archive:
            for member in archive:
                name = member.name.rsplit("/", 1)[-1]
                if member.isfile() and name in BATCH_FILES:
                    contents[name] = archive.extractfile(member).read()
    missing = [name for name in BATCH_FILES if name not in contents]
    if missing:
        raise malformed(
            path, f"lacks {missing}; the official archive holds {CIFAR10_BATCHES_FOLDER}/ with {list(BATCH_FILES)}"
        )
    return _parse_batches(contents, str(path))


def download_cifar10_archive(data_dir: str | os.PathLike, timeout: float = 15.0) -> Path:
    """Download the official archive into `data_dir`, check its md5 and move it in place atomically.

    Raises OSError (no network, no space, not writable) or AutospaceError (md5
    mismatch); the caller turns both into a message about where to put the file.
    """
    data_dir = Path(data_dir)
    data_dir.mkdir(parents=True, exist_ok=True)
    target = data_dir / CIFAR10_ARCHIVE
    print(f"autospace: downloading {CIFAR10_ARCHIVE_URL} to {target} (163 MiB)", file=sys.stderr)
    handle, temporary = tempfile.mkstemp(dir=data_dir, prefix=f".{CIFAR10_ARCHIVE}.", suffix=".part")
    digest = hashlib.md5()
    try:
        with os.fdopen(handle, "wb") as file, urlopen(CIFAR10_ARCHIVE_URL, timeout=timeout) as response:
            while chunk := response.read(1 << 20):
                digest.update(chunk)
                file.write(chunk)
            file.flush()
            os.fsync(file.fileno())
        if digest.hexdigest() != CIFAR10_ARCHIVE_MD5:
            raise AutospaceError(
                f"the download from {CIFAR10_ARCHIVE_URL} has md5 {digest.hexdigest()}, "
                f"expected {CIFAR10_ARCHIVE_MD5}; it is incomplete or altered"
            )
        os.replace(temporary, target)
    except BaseException:
        if os.path.exists(temporary):
            os.unlink(temporary)
        raise
    return target
