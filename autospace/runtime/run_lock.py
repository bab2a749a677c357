"""One process at a time in a run folder.

Two `--resume` of one folder at once would both append to its logs and rotate
its checkpoints (metrics.jsonl ending 1 2 3 4 4 5 5). Whoever opens a run
folder (`run_folder_lock`, taken by `train`, `search`, `evolve` and `run_pipeline`
and by a CLI resume) takes an OS file lock (flock) on `RUN_DIR/.autospace.lock`
for as long as it works there: the kernel drops it with the process, so a lock
left by a killed run never blocks a resume. The file holds the holder's process id, for the
message the second process prints.

Under torchrun the ranks of one job share the folder: rank 0 takes the lock
for all of them. Within one process the lock is re-entrant (a pipeline opens
its stage folders, a CLI resume locks before the stage does).
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

from autospace.errors import AutospaceError

LOCK_NAME = ".autospace.lock"

# This process's open lock files, by resolved folder: [descriptor, nesting count]. The lock lives as
# long as its descriptor; a process-wide table because a flock belongs to the process, not to a call.
_held: dict[Path, list[int]] = {}


def _is_rank_zero() -> bool:
    rank = os.environ.get("RANK", "0")
    return not rank.isdigit() or int(rank) == 0


@contextlib.contextmanager
def run_folder_lock(run_dir: str | os.PathLike, create: bool = True):
    """Hold the run folder's lock for the `with` block; fail in one line naming the process that holds it.
    Re-entrant: the outermost block of this process releases it. `create` makes a missing folder (a new
    run); without it (a resume) a missing folder, like a path that is a file, is left to the caller's
    own error and nothing is locked."""
    if not _is_rank_zero():
        yield
        return
    run_dir = Path(run_dir)
    key = run_dir.resolve()
    created = False
    if key in _held:
        _held[key][1] += 1
    else:
        created = create and not run_dir.exists()
        handle = _acquire(run_dir, create)
        if handle is None:
            yield
            return
        _held[key] = [handle, 1]
    failed = True
    try:
        yield
        failed = False
    finally:
        _held[key][1] -= 1
        if _held[key][1] == 0:
            os.close(_held.pop(key)[0])  # closing the descriptor drops the flock
            if failed and created:
                _remove_if_only_the_lock(run_dir)


def _remove_if_only_the_lock(run_dir: Path) -> None:
    """A new run that failed before writing anything (bad input found after the folder was made) leaves
    no folder behind: a rerun with corrected input finds none in its way."""
    try:
        if [entry.name for entry in run_dir.iterdir()] == [LOCK_NAME]:
            (run_dir / LOCK_NAME).unlink()
            run_dir.rmdir()
    except OSError:
        pass


def _acquire(run_dir: Path, create: bool) -> int | None:
    try:
        import fcntl
    except ImportError:  # not POSIX: no lock
        return None
    if run_dir.exists() and not run_dir.is_dir():
        return None
    if not run_dir.exists() and not create:
        return None
    from autospace.runtime.atomic import require_writable_folder

    require_writable_folder(run_dir)  # one clear line for a read-only or impossible folder
    run_dir.mkdir(parents=True, exist_ok=True)
    handle = os.open(run_dir / LOCK_NAME, os.O_RDWR | os.O_CREAT, 0o666)
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        holder = _read_holder(handle)
        os.close(handle)
        raise AutospaceError(f"run folder {run_dir} is in use by process {holder} (it holds {run_dir / LOCK_NAME}); "
                             f"wait for that run to end or stop it, then --resume {run_dir}") from None
    os.ftruncate(handle, 0)
    os.pwrite(handle, f"{os.getpid()}\n".encode(), 0)  # at offset 0 whatever the descriptor's position
    return handle


def _read_holder(handle: int) -> str:
    """The holder's process id: the first line of the lock file (named once, whatever else the file holds)."""
    try:
        text = os.pread(handle, 32, 0).decode("ascii", "replace")
    except OSError:
        text = ""
    first = next((line.strip() for line in text.splitlines() if line.strip()), "")
    return first if first.isdigit() else "(unknown id)"
