"""Reader of MNIST-style IDX files (MNIST, Fashion-MNIST and others of that layout).

A folder holds four files, each plain or gzip-compressed (`NAME` or `NAME.gz`):

- `train-images-idx3-ubyte`, `t10k-images-idx3-ubyte`: magic 0x00000803
  (unsigned bytes, 3 dimensions), then N, rows, cols as big-endian uint32,
  then N * rows * cols pixels, row-major.
- `train-labels-idx1-ubyte`, `t10k-labels-idx1-ubyte`: magic 0x00000801
  (unsigned bytes, 1 dimension), then N, then N labels.

The reader returns `DecodedArrays` with images uint8 (N, 1, rows, cols), 28x28
for MNIST and Fashion-MNIST. Debian's package `dataset-fashion-mnist` puts the
four .gz files of Fashion-MNIST in `/usr/share/datasets/fashion-mnist/`.
"""

from __future__ import annotations

import gzip
import os
from pathlib import Path

import numpy as np

from autospace.data.dataset import DecodedArrays
from autospace.data.reading import file_errors
from autospace.errors import AutospaceError

IMAGES_MAGIC = 0x00000803
LABELS_MAGIC = 0x00000801
IDX_FILES = {
    "train_images": "train-images-idx3-ubyte",
    "train_labels": "train-labels-idx1-ubyte",
    "test_images": "t10k-images-idx3-ubyte",
    "test_labels": "t10k-labels-idx1-ubyte",
}
MNIST_SIZE = (28, 28)
MNIST_CLASSES = tuple(str(digit) for digit in range(10))
FASHION_MNIST_CLASSES = (
    "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
)
# Where Debian's package `dataset-fashion-mnist` installs the original files
# (looked up at call time, so tests can point it elsewhere).
FASHION_MNIST_SYSTEM_DIR = Path("/usr/share/datasets/fashion-mnist")
GZIP_MAGIC = b"\x1f\x8b"

IDX_ACCEPTED = (
    "a folder holding the four MNIST-style IDX files "
    + ", ".join(f"{name}[.gz]" for name in IDX_FILES.values())
    + " (images: magic 0x00000803, N, rows, cols, then N*rows*cols bytes; "
    "labels: magic 0x00000801, N, then N bytes; plain or gzip-compressed)"
)


def _malformed(path: str | os.PathLike, problem: str) -> AutospaceError:
    return AutospaceError(
        f"{os.fspath(path)}: {problem}; the file is damaged or not an MNIST-style IDX file. Expected: {IDX_ACCEPTED}"
    )


def find_idx_file(folder: str | os.PathLike, stem: str) -> Path | None:
    """`folder/stem`, else `folder/stem.gz`, else None."""
    folder = Path(folder)
    for candidate in (folder / stem, folder / f"{stem}.gz"):
        if candidate.is_file():
            return candidate
    return None


def missing_idx_files(folder: str | os.PathLike) -> list[str]:
    """The IDX file names (without .gz) that `folder` lacks; all four if it is not a folder."""
    return [stem for stem in IDX_FILES.values() if find_idx_file(folder, stem) is None]


def is_idx_folder(folder: str | os.PathLike) -> bool:
    """True if `folder` holds all four IDX files (each plain or .gz)."""
    return Path(folder).is_dir() and not missing_idx_files(folder)


def read_idx_file(path: str | os.PathLike, magic: int) -> np.ndarray:
    """One IDX file as a uint8 array of the shape its header gives, after checking its magic and length.

    `magic` is IMAGES_MAGIC (gives (N, rows, cols)) or LABELS_MAGIC (gives (N,)).
    Gzip compression is recognised by content, whatever the file name.
    """
    path = Path(path)
    dimensions = magic & 0xFF
    what = "images" if magic == IMAGES_MAGIC else "labels"
    with file_errors(path, f"an IDX {what} file", IDX_ACCEPTED):
        data = path.read_bytes()
        if data[:2] == GZIP_MAGIC:
            data = gzip.decompress(data)
    header_size = 4 + 4 * dimensions
    if len(data) < header_size:
        raise _malformed(
            path, f"holds {len(data)} bytes, fewer than the {header_size}-byte header of an IDX {what} file"
        )
    found = int.from_bytes(data[:4], "big")
    if found != magic:
        hint = ""
        if found in (IMAGES_MAGIC, LABELS_MAGIC):
            hint = f" (that of an IDX {'images' if found == IMAGES_MAGIC else 'labels'} file)"
        raise _malformed(path, f"has magic number 0x{found:08X}{hint}; expected 0x{magic:08X} for IDX {what}")
    shape = tuple(int.from_bytes(data[4 + 4 * index : 8 + 4 * index], "big") for index in range(dimensions))
    if magic == IMAGES_MAGIC and (shape[1] == 0 or shape[2] == 0):
        raise _malformed(path, f"gives images of {shape[1]}x{shape[2]} pixels; expected at least 1x1")
    expected = header_size + int(np.prod(shape, dtype=object))
    if len(data) != expected:
        layout = f"{shape[0]} images of {shape[1]}x{shape[2]}" if magic == IMAGES_MAGIC else f"{shape[0]} labels"
        state = "truncated" if len(data) < expected else "longer than its header says"
        raise _malformed(
            path, f"is {state}: it holds {len(data)} bytes, expected {expected} "
            f"({header_size}-byte header + {layout})"
        )
    # A copy: np.frombuffer over bytes is read-only, and torch wants writable arrays.
    return np.frombuffer(data, dtype=np.uint8, offset=header_size).reshape(shape).copy()


def read_idx_folder(
    folder: str | os.PathLike,
    classes: tuple[str, ...] | None = None,
    image_size: tuple[int, int] | None = None,
) -> DecodedArrays:
    """Read the four IDX files of `folder` (train-* as train, t10k-* as test).

    `classes`: the class names; labels must lie in 0..len(classes)-1. None
    names them by number: "0".."9", or "0".."K-1" for labels up to K-1 >= 10.
    `image_size`: (rows, cols) the images must have, or None for any size
    (the same in both splits).
    """
    folder = Path(folder)
    missing = missing_idx_files(folder)
    if missing:
        raise AutospaceError(
            f"{folder} lacks the IDX files {', '.join(f'{stem}[.gz]' for stem in missing)}; expected {IDX_ACCEPTED}"
        )
    paths = {key: find_idx_file(folder, stem) for key, stem in IDX_FILES.items()}
    arrays = {}
    for split in ("train", "test"):
        images_path, labels_path = paths[f"{split}_images"], paths[f"{split}_labels"]
        images = read_idx_file(images_path, IMAGES_MAGIC)
        labels = read_idx_file(labels_path, LABELS_MAGIC)
        if images.shape[0] != labels.shape[0]:
            raise AutospaceError(
                f"{images_path} holds {images.shape[0]} images but {labels_path} holds {labels.shape[0]} labels; "
                f"expected one label per image (the two files of the {split} split do not belong together)"
            )
        if image_size is not None and images.shape[1:] != tuple(image_size):
            raise _malformed(
                images_path, f"holds images of {images.shape[1]}x{images.shape[2]} pixels; "
                f"expected {image_size[0]}x{image_size[1]}"
            )
        arrays[split] = (images, labels, images_path, labels_path)
    train_shape, test_shape = arrays["train"][0].shape[1:], arrays["test"][0].shape[1:]
    if train_shape != test_shape:
        raise AutospaceError(
            f"{arrays['train'][2]} holds images of {train_shape[0]}x{train_shape[1]} pixels but "
            f"{arrays['test'][2]} of {test_shape[0]}x{test_shape[1]}; both splits need the same image size"
        )
    if classes is None:
        top = max((int(labels.max()) for _, labels, _, _ in arrays.values() if labels.size), default=0)
        classes = tuple(str(number) for number in range(max(10, top + 1)))
    for images, labels, _, labels_path in arrays.values():
        if labels.size and int(labels.max()) >= len(classes):
            raise _malformed(
                labels_path, f"has labels up to {int(labels.max())}; expected 0..{len(classes) - 1} "
                f"for the {len(classes)} classes {', '.join(classes)}"
            )
    return DecodedArrays(
        classes=tuple(classes),
        train_images=arrays["train"][0][:, None],
        train_labels=arrays["train"][1].astype(np.int64),
        test_images=arrays["test"][0][:, None],
        test_labels=arrays["test"][1].astype(np.int64),
    )
