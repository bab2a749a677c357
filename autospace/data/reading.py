"""Turning a failure to parse a user's file into one clear `AutospaceError`.

numpy, pickle, tarfile and Pillow raise many kinds of exceptions on a damaged
or foreign file; the user should see one line naming the file, what it was
read as, and the formats that are accepted, not a traceback.
"""

from __future__ import annotations

import contextlib
import os
from typing import Iterator

from autospace.errors import AutospaceError

CIFAR10_JPEG_NPZ = "cifar10_jpeg.npz"
CIFAR10_BATCHES_FOLDER = "cifar-10-batches-py"
CIFAR10_ARCHIVE = "cifar-10-python.tar.gz"
CIFAR10_IMAGE_FOLDER = "cifar10"

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff", ".ppm", ".pgm")

ACCEPTED_FORMATS = (
    f"{CIFAR10_JPEG_NPZ} (JPEG bytes + offsets + labels, numpy .npz), "
    f"{CIFAR10_BATCHES_FOLDER}/ (the official CIFAR-10 python batches: data_batch_1..5, test_batch, batches.meta), "
    f"{CIFAR10_ARCHIVE} (the official archive holding that folder), "
    f"or an ImageFolder tree ROOT/train/<class>/*.png|jpg|..., ROOT/test/<class>/*"
)


@contextlib.contextmanager
def file_errors(path: str | os.PathLike, read_as: str, accepted: str = ACCEPTED_FORMATS) -> Iterator[None]:
    """Re-raise any failure inside the block as an AutospaceError naming `path`.

    An AutospaceError raised inside passes through unchanged (it already says
    what was wrong); anything else means the file is damaged or not what it
    was taken for.
    """
    try:
        yield
    except AutospaceError:
        raise
    except MemoryError:
        raise
    except Exception as error:
        raise AutospaceError(
            f"{os.fspath(path)} could not be read as {read_as} ({type(error).__name__}: {error}); "
            f"it may be truncated or corrupt. Accepted: {accepted}"
        ) from error


def malformed(path: str | os.PathLike, problem: str) -> AutospaceError:
    """The error for a file that parses but holds the wrong content."""
    return AutospaceError(
        f"{os.fspath(path)}: {problem}; the file is damaged or not in an accepted format. Accepted: {ACCEPTED_FORMATS}"
    )
