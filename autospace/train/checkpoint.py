"""Run folders and their checkpoints.

A run folder keeps the last two checkpoints: `checkpoint.pt` (newest) and
`checkpoint.prev.pt` (the epoch before). Saving renames the newest to
`.prev` and then writes the new one atomically, so a kill at any moment leaves
at least one whole checkpoint; loading takes the newest that reads back whole
and falls back to `.prev` when the newest is missing or corrupt.
"""

from __future__ import annotations

from pathlib import Path

from autospace.runtime.checkpoints import (  # noqa: F401 (the run-folder helpers, as before)
    NEWEST, PREVIOUS, load_rotating_checkpoint, require_new_run_dir, save_checkpoint,
)

CHECKPOINT_NAME = NEWEST
PREVIOUS_CHECKPOINT_NAME = PREVIOUS
CHECKPOINT_FORMAT = "autospace.train-checkpoint/1"
REQUIRED_KEYS = ("format", "epoch", "step", "model", "optimizer", "rng", "metrics", "elapsed_seconds")


def load_latest_checkpoint(run_dir: Path) -> tuple[dict, Path] | None:
    """The newest checkpoint that reads back whole, and its path; None when the folder has none.

    Raises AutospaceError when checkpoint files exist but none can be read.
    """
    return load_rotating_checkpoint(run_dir, CHECKPOINT_FORMAT, REQUIRED_KEYS, weights_only=True,
                                    with_path=True)
