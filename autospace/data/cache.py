"""A cache of decoded data sets as uncompressed .npy files.

Decoding 60,000 JPEGs or PNGs takes seconds; loading the decoded arrays takes
a fraction of one. The cache folder is `$AUTOSPACE_CACHE` if set, else
`~/.cache/autospace/decoded`. Each entry is a folder named after the data set
and a hash of the source (its resolved path, size and modification time, or
those of every file in a source folder), holding one .npy file per tensor and
`meta.json`. Every file is written atomically and `meta.json` last, so an
entry without it is incomplete and is ignored. A cache that cannot be read or
written only costs time: it never fails a load.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
import warnings
from pathlib import Path

import numpy as np
import torch

from autospace.runtime.atomic import atomic_write_bytes, atomic_write_json
from autospace.data.dataset import ImageDataset

CACHE_FORMAT_VERSION = 1
DEFAULT_CACHE_DIR = Path("~/.cache/autospace/decoded")
TENSOR_NAMES = ("train_images", "train_labels", "test_images", "test_labels")


def resolve_cache_dir(cache_dir: str | os.PathLike | None = None) -> Path:
    """Explicit argument > env `AUTOSPACE_CACHE` > `~/.cache/autospace/decoded`."""
    if cache_dir is None:
        cache_dir = os.environ.get("AUTOSPACE_CACHE") or DEFAULT_CACHE_DIR
    return Path(cache_dir).expanduser()


def source_key(source: str | os.PathLike, kind: str) -> str:
    """A hash of a source file or folder: path, size and mtime of each file in it, plus the reader kind."""
    source = Path(source).resolve()
    # File names are hashed as the bytes on disk (os.fsencode): a name that is not valid UTF-8
    # arrives as a str with surrogate escapes, which a plain .encode() refuses.
    digest = hashlib.sha256(f"{CACHE_FORMAT_VERSION}\0{kind}\0".encode() + os.fsencode(source))
    files = [source] if source.is_file() else sorted(p for p in source.rglob("*") if p.is_file())
    for path in files:
        status = path.stat()
        relative = b"" if path == source else os.fsencode(path.relative_to(source))
        digest.update(b"\0" + relative + f"\0{status.st_size}\0{status.st_mtime_ns}".encode())
    return digest.hexdigest()[:24]


def _entry_dir(name: str, key: str, cache_dir: str | os.PathLike | None) -> Path:
    safe_name = "".join(char if char.isalnum() or char in "-_." else "_" for char in name)[:40]
    return resolve_cache_dir(cache_dir) / f"{safe_name}-{key}"


def load_cached(name: str, key: str, cache_dir: str | os.PathLike | None = None) -> ImageDataset | None:
    """The cached data set for `key`, or None on a miss (or an unreadable entry)."""
    entry = _entry_dir(name, key, cache_dir)
    meta_path = entry / "meta.json"
    if not meta_path.is_file():
        return None
    try:
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
        if meta.get("format") != CACHE_FORMAT_VERSION or meta.get("key") != key:
            return None
        tensors = {tensor_name: torch.from_numpy(np.load(entry / f"{tensor_name}.npy")) for tensor_name in TENSOR_NAMES}
        return ImageDataset(
            name=meta["name"],
            classes=tuple(meta["classes"]),
            mean=tuple(meta["mean"]),
            std=tuple(meta["std"]),
            **tensors,
        )
    except Exception as error:  # a damaged entry is a miss; it is rewritten after decoding
        warnings.warn(f"ignoring the damaged cache entry {entry} ({error}); decoding the source again", stacklevel=2)
        return None


def store_cached(
    dataset: ImageDataset, key: str, source: str = "", cache_dir: str | os.PathLike | None = None
) -> Path | None:
    """Write `dataset` to the cache; returns the entry folder, or None if it could not be written.

    Older entries made from the same `source` (a file that has since changed)
    are removed, so the cache holds one entry per source.
    """
    entry = _entry_dir(dataset.name, key, cache_dir)
    try:
        if (entry / "meta.json").exists():
            (entry / "meta.json").unlink()
        for tensor_name in TENSOR_NAMES:
            buffer = io.BytesIO()
            np.save(buffer, getattr(dataset, tensor_name).cpu().numpy(), allow_pickle=False)
            atomic_write_bytes(entry / f"{tensor_name}.npy", buffer.getvalue())
        atomic_write_json(
            entry / "meta.json",
            {
                "format": CACHE_FORMAT_VERSION,
                "key": key,
                "name": dataset.name,
                "classes": list(dataset.classes),
                "mean": list(dataset.mean),
                "std": list(dataset.std),
                "source": source,
            },
        )
        if source:
            _remove_stale_entries(entry, source)
    except OSError as error:
        warnings.warn(
            f"could not write the data cache at {entry} ({error}); the next load will decode again", stacklevel=2
        )
        shutil.rmtree(entry, ignore_errors=True)
        return None
    return entry


def _remove_stale_entries(entry: Path, source: str) -> None:
    for sibling in entry.parent.iterdir():
        if sibling == entry or not sibling.is_dir():
            continue
        try:
            meta = json.loads((sibling / "meta.json").read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        if isinstance(meta, dict) and meta.get("source") == source:
            shutil.rmtree(sibling, ignore_errors=True)
