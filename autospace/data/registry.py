"""`load_dataset(name)`: from a data set name (or a path) to an `ImageDataset`.

Names:
- `cifar10`: CIFAR-10 from the data folder (see `find_cifar10_source` for what
  is looked for); downloaded there if absent and `AUTOSPACE_NO_DOWNLOAD` is unset.
- `fashion-mnist`: Fashion-MNIST (10 classes, 1x28x28) from the four IDX files
  (see `idx.py`) in `DATA_DIR/fashion-mnist/`, else in
  `/usr/share/datasets/fashion-mnist/` (Debian's `dataset-fashion-mnist`).
- `mnist`: MNIST (classes "0".."9", 1x28x28) from the IDX files in `DATA_DIR/mnist/`.
- `synthetic` or `synthetic:TRAIN,TEST`: generated, no files.
- `imagefolder:PATH`, or any path: an ImageFolder tree, a CIFAR-10 file or
  folder in one of the accepted formats, or a folder of the four IDX files.

Decoded files are cached (see `cache.py`), so only the first load decodes.
"""

from __future__ import annotations

import http.client
import os
from pathlib import Path

from autospace.data import cifar, idx, imagefolder
from autospace.data.cache import load_cached, source_key, store_cached
from autospace.data.dataset import ImageDataset, build_dataset
from autospace.data.reading import (
    ACCEPTED_FORMATS,
    CIFAR10_ARCHIVE,
    CIFAR10_BATCHES_FOLDER,
    CIFAR10_IMAGE_FOLDER,
    CIFAR10_JPEG_NPZ,
)
from autospace.data.synthetic import parse_synthetic_name, synthetic_dataset
from autospace.errors import AutospaceError

DEFAULT_DATA_DIR = Path("~/.cache/autospace/data")
DATASET_NAMES = ("cifar10", "fashion-mnist", "mnist", "synthetic", "synthetic:TRAIN,TEST", "imagefolder:PATH")
VALID_NAMES_TEXT = (
    "cifar10, fashion-mnist, mnist, synthetic, synthetic:TRAIN,TEST (e.g. synthetic:512,128), imagefolder:PATH, "
    "or a path to an ImageFolder tree, a CIFAR-10 file/folder or a folder of MNIST-style IDX files"
)
SOURCE_KINDS = (
    "cifar10_jpeg_npz", "cifar10_batches", "cifar10_archive", "imagefolder", "fashion_mnist_idx", "mnist_idx", "idx"
)
# Named IDX data sets: name -> (source kind, folder name under the data folder).
IDX_DATASETS = {"fashion-mnist": ("fashion_mnist_idx", "fashion-mnist"), "mnist": ("mnist_idx", "mnist")}
IDX_NAME_ALIASES = {"fashion-mnist": "fashion-mnist", "fashion_mnist": "fashion-mnist", "fashionmnist": "fashion-mnist",
                    "mnist": "mnist"}


def resolve_data_dir(data_dir: str | os.PathLike | None = None) -> Path:
    """The data folder: the explicit argument, else env `AUTOSPACE_DATA`, else `~/.cache/autospace/data`."""
    if data_dir is None:
        data_dir = os.environ.get("AUTOSPACE_DATA") or DEFAULT_DATA_DIR
    return Path(data_dir).expanduser()


def download_disabled() -> bool:
    """True when env `AUTOSPACE_NO_DOWNLOAD` is set to anything but '', '0', 'false' or 'no'."""
    return os.environ.get("AUTOSPACE_NO_DOWNLOAD", "").strip().lower() not in ("", "0", "false", "no")


def detect_source(path: Path) -> tuple[str, Path] | None:
    """The source kind of a file or folder (one of SOURCE_KINDS), or None if it is none of them."""
    if path.is_file():
        lowered = path.name.lower()
        if lowered.endswith(".npz"):
            return "cifar10_jpeg_npz", path
        if lowered.endswith((".tar.gz", ".tgz", ".tar")):
            return "cifar10_archive", path
        return None
    if path.is_dir():
        if path.name == CIFAR10_BATCHES_FOLDER or (path / "data_batch_1").is_file():
            return "cifar10_batches", path
        if idx.is_idx_folder(path):
            return _idx_kind(path), path
        if imagefolder.is_image_folder(path):
            return "imagefolder", path
    return None


def _idx_kind(folder: Path) -> str:
    """The source kind of a folder of IDX files: its name tells Fashion-MNIST or MNIST class names."""
    lowered = folder.resolve().name.lower()
    if "fashion" in lowered:
        return "fashion_mnist_idx"
    if lowered == "mnist":
        return "mnist_idx"
    return "idx"


def find_cifar10_source(data_dir: Path) -> tuple[str, Path] | None:
    """Look in `data_dir` for, in order: cifar10_jpeg.npz, cifar-10-batches-py/,
    cifar-10-python.tar.gz, cifar10/{train,test}/<class>/*; else take `data_dir`
    itself if it is one of those."""
    candidates = (
        ("cifar10_jpeg_npz", data_dir / CIFAR10_JPEG_NPZ),
        ("cifar10_batches", data_dir / CIFAR10_BATCHES_FOLDER),
        ("cifar10_archive", data_dir / CIFAR10_ARCHIVE),
        ("imagefolder", data_dir / CIFAR10_IMAGE_FOLDER),
    )
    for kind, path in candidates:
        if kind == "imagefolder" and imagefolder.is_image_folder(path):
            return kind, path
        if kind == "cifar10_batches" and path.is_dir():
            return kind, path
        if kind in ("cifar10_jpeg_npz", "cifar10_archive") and path.is_file():
            return kind, path
    found = detect_source(data_dir)
    # A folder of IDX files is MNIST-like, never CIFAR-10.
    return None if found is not None and found[0] in ("fashion_mnist_idx", "mnist_idx", "idx") else found


def _read(kind: str, path: Path):
    # Looked up on the modules at call time, so tests can count decoder calls.
    if kind == "cifar10_jpeg_npz":
        return cifar.read_cifar_jpeg_npz(path)
    if kind == "cifar10_batches":
        return cifar.read_cifar_batches_folder(path)
    if kind == "cifar10_archive":
        return cifar.read_cifar_archive(path)
    if kind == "imagefolder":
        return imagefolder.read_image_folder(path)
    if kind == "fashion_mnist_idx":
        return idx.read_idx_folder(path, classes=idx.FASHION_MNIST_CLASSES, image_size=idx.MNIST_SIZE)
    if kind == "mnist_idx":
        return idx.read_idx_folder(path, classes=idx.MNIST_CLASSES, image_size=idx.MNIST_SIZE)
    if kind == "idx":
        return idx.read_idx_folder(path)
    raise AutospaceError(f"unknown source kind {kind!r}; expected one of {SOURCE_KINDS}")


def load_source(kind: str, path: str | os.PathLike, name: str) -> ImageDataset:
    """Load one source file or folder through the decoded-array cache."""
    path = Path(path)
    key = source_key(path, kind)
    dataset = load_cached(name, key)
    if dataset is None:
        dataset = build_dataset(name, _read(kind, path), source=str(path))
        store_cached(dataset, key, source=f"{kind}:{path.resolve()}")
    return dataset


def _load_cifar10(data_dir: str | os.PathLike | None) -> ImageDataset:
    directory = resolve_data_dir(data_dir)
    found = find_cifar10_source(directory)
    if found is not None:
        return load_source(found[0], found[1], "cifar10")
    if data_dir is not None and not directory.exists() and directory.name.lower().endswith((".npz", ".tar.gz", ".tgz")):
        raise AutospaceError(f"{directory} does not exist; give an existing file. Accepted formats: {ACCEPTED_FORMATS}")
    if directory.is_file():
        raise AutospaceError(f"{directory} is not a CIFAR-10 file; accepted formats: {ACCEPTED_FORMATS}")
    if download_disabled():
        reason = "downloading is turned off (AUTOSPACE_NO_DOWNLOAD is set)"
    else:
        try:
            archive = cifar.download_cifar10_archive(directory)
            return load_source("cifar10_archive", archive, "cifar10")
        except (OSError, ValueError, http.client.HTTPException) as error:
            reason = f"the download from {cifar.CIFAR10_ARCHIVE_URL} failed ({error})"
    raise AutospaceError(
        f"CIFAR-10 was not found in {directory} and {reason}. Looked for {CIFAR10_JPEG_NPZ}, "
        f"{CIFAR10_BATCHES_FOLDER}/, {CIFAR10_ARCHIVE} and {CIFAR10_IMAGE_FOLDER}/train|test/<class>/*. "
        f"Put one of them in that folder, or choose the folder with AUTOSPACE_DATA=/path or --data-dir /path"
    )


def _load_idx_dataset(name: str, data_dir: str | os.PathLike | None) -> ImageDataset:
    """`fashion-mnist` or `mnist`: the first folder holding all four IDX files, through the cache."""
    kind, folder_name = IDX_DATASETS[name]
    directory = resolve_data_dir(data_dir)
    candidates = [directory / folder_name]
    if name == "fashion-mnist":
        candidates.append(Path(idx.FASHION_MNIST_SYSTEM_DIR))
    for folder in candidates:
        if idx.is_idx_folder(folder):
            return load_source(kind, folder, name)
    looked = []
    for folder in candidates:
        if not folder.is_dir():
            looked.append(f"{folder}/ (absent)")
        else:
            looked.append(f"{folder}/ (lacks {', '.join(idx.missing_idx_files(folder))})")
    files = ", ".join(f"{stem}[.gz]" for stem in idx.IDX_FILES.values())
    how = f"put the four IDX files {files} in {directory / folder_name}/"
    if name == "fashion-mnist":
        how = f"install it with `apt-get install dataset-fashion-mnist` (into {idx.FASHION_MNIST_SYSTEM_DIR}/), or {how}"
    raise AutospaceError(
        f"{name} was not found; looked in {' and '.join(looked)}. To get it, {how}; "
        f"choose the data folder with AUTOSPACE_DATA=/path or --data-dir /path, or give the folder itself as the data set"
    )


def _load_path(text: str) -> ImageDataset:
    path = Path(text).expanduser()
    if not _exists(text):
        raise AutospaceError(
            f"data set path {path} does not exist; give an existing ImageFolder tree or CIFAR-10 file. "
            f"Accepted formats: {ACCEPTED_FORMATS}"
        )
    found = detect_source(path)
    if found is None and path.is_file() and path.name.lower().removesuffix(".gz") in idx.IDX_FILES.values():
        raise AutospaceError(
            f"{path} is one IDX file; give the folder that holds all four: {idx.IDX_ACCEPTED}"
        )
    if found is None and path.is_dir() and any(idx.find_idx_file(path, stem) for stem in idx.IDX_FILES.values()):
        raise AutospaceError(
            f"{path} holds only some of the IDX files; it lacks "
            f"{', '.join(f'{stem}[.gz]' for stem in idx.missing_idx_files(path))}. "
            f"Expected {idx.IDX_ACCEPTED}"
        )
    if found is None:
        raise AutospaceError(
            f"{path} is not a data set in a known format; accepted formats: {ACCEPTED_FORMATS}"
        )
    kind, path = found
    if kind.startswith("cifar10"):
        name = "cifar10"
    elif kind == "fashion_mnist_idx":
        name = "fashion-mnist"
    elif kind == "mnist_idx":
        name = "mnist"
    else:
        name = path.resolve().name
    return load_source(kind, path, name)


def load_dataset(name: str | os.PathLike, data_dir: str | os.PathLike | None = None,
                 image_size: int | None = None) -> ImageDataset:
    """Load a data set by name (see the module docstring) as uint8 tensors on the CPU, area-resized to
    `image_size` x `image_size` when given (a CPU proxy: 16x16 CIFAR-10 trains about 4x faster).

    `data_dir` is where `cifar10` is looked for (and downloaded to), and holds
    the `fashion-mnist/` and `mnist/` folders of IDX files: the
    argument, else env `AUTOSPACE_DATA`, else `~/.cache/autospace/data`. It may
    also name a CIFAR-10 file or folder directly. Decoded arrays are cached
    under env `AUTOSPACE_CACHE`, else `~/.cache/autospace/decoded`.
    """
    dataset = _load_by_name(name, data_dir)
    return dataset if image_size is None else dataset.resized(image_size)


def _exists(text: str) -> bool:
    """Whether a path exists; False for a name the OS cannot even look up (too long, a NUL byte)."""
    try:
        return Path(text).expanduser().exists()
    except (OSError, ValueError):
        return False


def _load_by_name(name: str | os.PathLike, data_dir: str | os.PathLike | None) -> ImageDataset:
    if not isinstance(name, (str, os.PathLike)):
        raise AutospaceError(f"data set name {name!r} is not a string; valid names: {VALID_NAMES_TEXT}")
    text = os.fspath(name).strip()
    lowered = text.lower()
    if lowered in ("cifar10", "cifar-10"):
        return _load_cifar10(data_dir)
    if lowered in IDX_NAME_ALIASES:
        return _load_idx_dataset(IDX_NAME_ALIASES[lowered], data_dir)
    if lowered == "synthetic" or lowered.startswith("synthetic:"):
        train_count, test_count = parse_synthetic_name(text)
        return synthetic_dataset(train_count=train_count, test_count=test_count)
    if lowered.startswith("imagefolder:"):
        path = Path(text[len("imagefolder:") :].strip()).expanduser()
        if not path.is_dir():
            raise AutospaceError(
                f"{text!r}: {path} is not a folder; imagefolder:PATH needs PATH/train/<class>/* and PATH/test/<class>/*"
            )
        return load_source("imagefolder", path, path.resolve().name)
    if isinstance(name, os.PathLike) or os.sep in text or "/" in text or _exists(text):
        return _load_path(text)
    raise AutospaceError(f"unknown data set {text!r}; valid names: {VALID_NAMES_TEXT}")
