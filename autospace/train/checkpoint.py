"""Run folders and their checkpoints.

A run folder keeps the last two checkpoints: `checkpoint.pt` (newest) and
`checkpoint.prev.pt` (the epoch before). Saving renames the newest to
`.prev` and then writes the new one atomically, so a kill at any moment leaves
at least one whole checkpoint; loading takes the newest that reads back whole
and falls back to `.prev` when the newest is missing or corrupt.
"""

from __future__ import annotations

from pathlib import Path

from autospace.runtime.atomic import require_writable_folder
from autospace.runtime.checkpoints import NEWEST, PREVIOUS, load_rotating_checkpoint, save_rotating_checkpoint
from autospace.errors import AutospaceError
from autospace.runtime.run_lock import LOCK_NAME

CHECKPOINT_NAME = NEWEST
PREVIOUS_CHECKPOINT_NAME = PREVIOUS
CHECKPOINT_FORMAT = "autospace.train-checkpoint/1"
_REQUIRED_KEYS = ("format", "epoch", "step", "model", "optimizer", "rng", "metrics", "elapsed_seconds")


def require_new_run_dir(run_dir: Path) -> None:
    """A new run must not mix its files with another run's, and must be able to write its folder."""
    run_dir = Path(run_dir)
    if run_dir.exists() and not run_dir.is_dir():
        raise AutospaceError(f"run folder {run_dir} is a file; choose a folder path")
    # Another process of the same torchrun job may be probing the folder (require_writable_folder) right now.
    # The lock file is this run's own (run_lock.py: taken before this check by a new run's entry point).
    if run_dir.is_dir() and any(not entry.name.startswith(".autospace-write-test.") and entry.name != LOCK_NAME
                                for entry in run_dir.iterdir()):
        raise AutospaceError(f"run folder {run_dir} is not empty; pass --resume to continue the run in it, "
                             f"or choose another (new or empty) folder")
    require_writable_folder(run_dir)  # fail now, not after the data set is loaded


def save_checkpoint(run_dir: Path, state: dict) -> None:
    """`state` carries its own "format" key (CHECKPOINT_FORMAT)."""
    state = dict(state)
    save_rotating_checkpoint(run_dir, state, state.pop("format", CHECKPOINT_FORMAT))


def load_latest_checkpoint(run_dir: Path) -> tuple[dict, Path] | None:
    """The newest checkpoint that reads back whole, and its path; None when the folder has none.

    Raises AutospaceError when checkpoint files exist but none can be read.
    """
    return load_rotating_checkpoint(run_dir, CHECKPOINT_FORMAT, _REQUIRED_KEYS, weights_only=True,
                                    with_path=True)
