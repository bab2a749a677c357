"""Atomic file writes: a run never leaves a half-written file behind.

Every file is written to a temporary sibling, flushed to disk and renamed over
the target; a kill at any point leaves either the old or the new file.
"""

from __future__ import annotations

import contextlib
import errno
import io
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

TEMPORARY_SUFFIX = ".tmp"  # of the sibling a write goes to before its rename


def _current_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def require_not_special(path: str | os.PathLike, what: str = "file") -> None:
    """Refuse to write over a device, pipe or socket: the rename of an atomic write would replace the
    node itself (run as root, `-o /dev/zero` replaced /dev/zero with an arch.json)."""
    import stat

    try:
        mode = os.lstat(path).st_mode
    except (OSError, ValueError):
        return  # absent (or not even a valid path: the write reports it)
    if not (stat.S_ISREG(mode) or stat.S_ISDIR(mode) or stat.S_ISLNK(mode)):
        from autospace.errors import AutospaceError

        raise AutospaceError(f"the {what} path {path} is a device, pipe or socket, not a file; give a file path "
                             f"(autospace never writes over one)")


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    path = Path(path)
    require_not_special(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with _disk_full_as_one_line(path, len(data)):
        handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=TEMPORARY_SUFFIX)
        try:
            with os.fdopen(handle, "wb") as file:
                file.write(data)
                file.flush()
                os.fsync(file.fileno())
            os.chmod(temporary, 0o666 & ~_current_umask())  # mkstemp makes 0600 files
            os.replace(temporary, path)
        except BaseException:
            if os.path.exists(temporary):
                os.unlink(temporary)
            raise


_NO_SPACE = (errno.ENOSPC, getattr(errno, "EDQUOT", errno.ENOSPC))


@contextlib.contextmanager
def _disk_full_as_one_line(path: Path, size: int):
    """Turn "no space left on device" into a DiskFullError that names the folder and the space needed
    (the CLI adds the --resume hint); the write it interrupted left the target whole or absent."""
    try:
        yield
    except OSError as error:
        if error.errno not in _NO_SPACE:
            raise
        from autospace.errors import DiskFullError

        try:
            free = f"{shutil.disk_usage(path.parent).free / 2**20:,.1f} MiB free"
        except OSError:
            free = "free space unknown"
        raise DiskFullError(f"no space left on the device of {path.parent} ({error.strerror or error}) while writing "
                            f"{path.name}, which needs {size / 2**20:,.1f} MiB ({free}); the files already there "
                            f"are whole") from None


def remove_stale_temporaries(folder: str | os.PathLike) -> None:
    """Delete temporary files a killed writer left in `folder` (`.NAME.XXXX.tmp`, see above).

    Called when a run resumes, before it writes anything: a kill during a
    write leaves such a file behind, never a torn target."""
    folder = Path(folder)
    if folder.is_dir():
        for leftover in folder.glob(f".*{TEMPORARY_SUFFIX}"):
            leftover.unlink(missing_ok=True)


def require_writable_folder(path: str | os.PathLike, what: str = "run folder", is_file: bool = False) -> None:
    """Fail before any work when the folder `path` (or, with `is_file`, the file `path`) cannot be
    created or written, with one clear message.

    Probes the nearest existing folder with a real file (permission bits lie for
    root, read-only mounts and /proc); leaves nothing behind."""
    from autospace.errors import AutospaceError

    path = Path(path).expanduser()
    if is_file:
        require_not_special(path, what)
    existing = path.parent if is_file else path
    while not existing.exists() and existing.parent != existing:
        existing = existing.parent
    if not existing.is_dir():
        raise AutospaceError(f"cannot write the {what} {path}: {existing} is a file, not a folder; "
                             f"choose a path inside a writable folder")
    try:
        handle, probe = tempfile.mkstemp(dir=existing, prefix=".autospace-write-test.")
        os.close(handle)
        os.unlink(probe)
    except OSError as error:
        raise AutospaceError(f"cannot write the {what} {path}: creating a file in {existing} fails "
                             f"({error.strerror or error}); choose a writable folder") from None


def require_file_path(path: str | os.PathLike, what: str) -> None:
    """A path a file is written to: not empty (that would be the current folder) and not a folder."""
    from autospace.errors import AutospaceError

    if str(path).strip() == "":
        raise AutospaceError(f"the {what} path is empty; give a file name, e.g. out/arch.json")
    require_not_special(Path(path).expanduser(), what)
    if Path(path).expanduser().is_dir():
        raise AutospaceError(f"the {what} path {path} is a folder; give a file name inside it")


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: str | os.PathLike, value: Any) -> None:
    atomic_write_text(path, json.dumps(value, indent=2, sort_keys=False) + "\n")


def atomic_torch_save(path: str | os.PathLike, value: Any) -> None:
    import torch

    buffer = io.BytesIO()
    torch.save(value, buffer)
    atomic_write_bytes(path, buffer.getvalue())


def append_jsonl(path: str | os.PathLike, record: dict) -> None:
    """Append one JSON line; a torn last line is dropped by `read_jsonl`."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    line = json.dumps(record) + "\n"
    with _disk_full_as_one_line(path, len(line.encode("utf-8"))):
        with open(path, "a", encoding="utf-8") as file:
            file.write(line)
            file.flush()
            os.fsync(file.fileno())


def read_jsonl(path: str | os.PathLike) -> list[dict]:
    records = []
    path = Path(path)
    if not path.exists():
        return records
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:
            break  # a line torn by a kill; everything after it is suspect
    return records


def truncate_jsonl(path: str | os.PathLike, keep: int) -> None:
    """Keep the first `keep` records (used on resume to drop lines logged after the checkpoint)."""
    records = read_jsonl(path)[:keep]
    atomic_write_text(path, "".join(json.dumps(r) + "\n" for r in records))


def read_optional_json(path: str | os.PathLike) -> Any:
    """A JSON file's content, None when the file is absent; an unreadable file is an AutospaceError."""
    from autospace.errors import AutospaceError

    path = Path(path)
    if not path.is_file():
        return None
    from autospace.runtime.parsing import parse_json

    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise AutospaceError(f"cannot read {path}: {error}") from None
    return parse_json(text, str(path))
