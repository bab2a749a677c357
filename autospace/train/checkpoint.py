"""Run folders and their checkpoints.

A run folder keeps the last two checkpoints: `checkpoint.pt` (newest) and
`checkpoint.prev.pt` (the epoch before). Saving renames the newest to
`.prev` and then writes the new one atomically, so a kill at any moment leaves
at least one whole checkpoint; loading takes the newest that reads back whole
and falls back to `.prev` when the newest is missing or corrupt.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch

from autospace.atomic import atomic_torch_save
from autospace.errors import AutospaceError

CHECKPOINT_NAME = "checkpoint.pt"
PREVIOUS_CHECKPOINT_NAME = "checkpoint.prev.pt"
CHECKPOINT_FORMAT = "autospace.train-checkpoint/1"
_REQUIRED_KEYS = ("format", "epoch", "step", "model", "optimizer", "rng", "metrics", "elapsed_seconds")


def require_new_run_dir(run_dir: Path) -> None:
    """A new run must not mix its files with another run's."""
    run_dir = Path(run_dir)
    if run_dir.exists() and not run_dir.is_dir():
        raise AutospaceError(f"run folder {run_dir} is a file; choose a folder path")
    if run_dir.is_dir() and any(run_dir.iterdir()):
        raise AutospaceError(f"run folder {run_dir} is not empty; pass --resume to continue the run in it, "
                             f"or choose another (new or empty) folder")


def save_checkpoint(run_dir: Path, state: dict) -> None:
    run_dir = Path(run_dir)
    newest, previous = run_dir / CHECKPOINT_NAME, run_dir / PREVIOUS_CHECKPOINT_NAME
    if newest.exists():
        os.replace(newest, previous)
    atomic_torch_save(newest, state)


def _read_checkpoint(path: Path) -> dict:
    # CPU first: generator states must stay CPU byte tensors; weights are
    # copied onto the model's device by load_state_dict.
    state = torch.load(path, map_location="cpu", weights_only=True)
    if not isinstance(state, dict) or state.get("format") != CHECKPOINT_FORMAT:
        raise ValueError(f"not an autospace training checkpoint (format {CHECKPOINT_FORMAT})")
    missing = [key for key in _REQUIRED_KEYS if key not in state]
    if missing:
        raise ValueError(f"missing {', '.join(missing)}")
    return state


def load_latest_checkpoint(run_dir: Path) -> tuple[dict, Path] | None:
    """The newest checkpoint that reads back whole, and its path; None when the folder has none.

    Raises AutospaceError when checkpoint files exist but none can be read.
    """
    run_dir = Path(run_dir)
    problems = []
    for path in (run_dir / CHECKPOINT_NAME, run_dir / PREVIOUS_CHECKPOINT_NAME):
        if not path.exists():
            continue
        try:
            return _read_checkpoint(path), path
        except Exception as error:  # a torn or corrupt file: try the older one
            problems.append(f"{path.name}: {type(error).__name__}: {str(error)[:200]}")
    if problems:
        raise AutospaceError(f"no readable checkpoint in {run_dir} ({'; '.join(problems)}); "
                             f"delete the checkpoint files to start the run over, or use a new folder")
    return None
