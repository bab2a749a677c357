"""Reader for ImageFolder trees: ROOT/train/<class>/*.png|jpg|..., ROOT/test/<class>/*.

Classes are the train sub-folder names, sorted; their position is the label.
The test split may lack a class but not add one. Files whose suffix is not an
image suffix, and hidden files and folders, are skipped. All images must have
the size of the first train image. If every image is greyscale the set has one
channel; otherwise every image is converted to RGB.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
from PIL import Image

from autospace.data.dataset import DecodedArrays
from autospace.data.reading import IMAGE_SUFFIXES, file_errors
from autospace.errors import AutospaceError

GREYSCALE_MODES = {"1", "L", "LA", "I", "I;16", "F"}
LAYOUT = "ROOT/train/<class>/*.png|jpg|..., ROOT/test/<class>/*"
IMAGE_ACCEPTED = f"image files readable by Pillow with a suffix in {' '.join(IMAGE_SUFFIXES)}"


def _visible_children(folder: Path) -> list[Path]:
    return sorted(child for child in folder.iterdir() if not child.name.startswith("."))


def _class_folders(split_dir: Path) -> list[Path]:
    return [child for child in _visible_children(split_dir) if child.is_dir()]


def _image_files(class_dir: Path) -> list[Path]:
    return [
        child
        for child in _visible_children(class_dir)
        if child.is_file() and child.suffix.lower() in IMAGE_SUFFIXES
    ]


def is_image_folder(path: str | os.PathLike) -> bool:
    path = Path(path)
    return (path / "train").is_dir() and (path / "test").is_dir()


def _list_split(root: Path, split: str, classes: list[str] | None) -> tuple[list[tuple[Path, int]], list[str]]:
    """(file, label) pairs of one split; `classes` None means: take them from this split's folders."""
    split_dir = root / split
    if not split_dir.is_dir():
        raise AutospaceError(f"ImageFolder {root} has no {split}/ folder; expected the layout {LAYOUT}")
    folders = _class_folders(split_dir)
    if classes is None:
        classes = [folder.name for folder in folders]
        if not classes:
            raise AutospaceError(f"{split_dir} has no class folders; expected the layout {LAYOUT}")
    unknown = [folder.name for folder in folders if folder.name not in classes]
    if unknown:
        raise AutospaceError(
            f"{split_dir} has the classes {unknown} that {root / 'train'} lacks; "
            f"every test class needs a train folder of the same name (train classes: {classes})"
        )
    samples = []
    for folder in folders:
        files = _image_files(folder)
        if not files and split == "train":
            raise AutospaceError(
                f"{folder} holds no images; each class folder needs files with a suffix in {' '.join(IMAGE_SUFFIXES)}"
            )
        label = classes.index(folder.name)
        samples.extend((file, label) for file in files)
    return samples, classes


def _check_headers(samples: list[tuple[Path, int]]) -> tuple[tuple[int, int], str]:
    """The common (width, height) and the Pillow mode to convert to ("L" or "RGB")."""
    expected_size = None
    first_file = None
    greyscale = True
    for file, _ in samples:
        with file_errors(file, "an image", IMAGE_ACCEPTED):
            with Image.open(file) as image:
                size, mode = image.size, image.mode
        if expected_size is None:
            expected_size, first_file = size, file
        elif size != expected_size:
            raise AutospaceError(
                f"{file} is {size[0]}x{size[1]} (width x height) but images must all be "
                f"{expected_size[0]}x{expected_size[1]} like {first_file}; resize the data set to one size"
            )
        greyscale = greyscale and mode in GREYSCALE_MODES
    return expected_size, "L" if greyscale else "RGB"


def _decode(samples: list[tuple[Path, int]], size: tuple[int, int], mode: str) -> tuple[np.ndarray, np.ndarray]:
    channels = 1 if mode == "L" else 3
    width, height = size
    images = np.empty((len(samples), height, width, channels), dtype=np.uint8)
    for index, (file, _) in enumerate(samples):
        with file_errors(file, "an image", IMAGE_ACCEPTED):
            with Image.open(file) as image:
                pixels = np.asarray(image.convert(mode))
        images[index] = pixels.reshape(height, width, channels)
    labels = np.array([label for _, label in samples], dtype=np.int64)
    return np.ascontiguousarray(images.transpose(0, 3, 1, 2)), labels


def read_image_folder(root: str | os.PathLike) -> DecodedArrays:
    """Decode an ImageFolder tree into uint8 (N, C, H, W) arrays."""
    root = Path(root)
    if not root.is_dir():
        raise AutospaceError(f"ImageFolder {root} is not a folder; expected the layout {LAYOUT}")
    train, classes = _list_split(root, "train", None)
    test, _ = _list_split(root, "test", classes)
    size, mode = _check_headers(train + test)
    train_images, train_labels = _decode(train, size, mode)
    test_images, test_labels = _decode(test, size, mode)
    return DecodedArrays(
        classes=tuple(classes),
        train_images=train_images,
        train_labels=train_labels,
        test_images=test_images,
        test_labels=test_labels,
    )
