"""Rotating checkpoints shared by every run kind (evolve, search).

A run folder keeps `checkpoint.pt` (newest) and `checkpoint.prev.pt`: saving
renames the newest to `.prev`, then writes the new one atomically, so a kill at
any moment leaves at least one whole checkpoint; loading takes the newest one
that reads back whole and carries the expected format tag.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch

from autospace.atomic import atomic_torch_save, remove_stale_temporaries
from autospace.errors import AutospaceError

NEWEST, PREVIOUS = "checkpoint.pt", "checkpoint.prev.pt"


def save_rotating_checkpoint(run_dir: str | Path, state: dict, format_tag: str) -> None:
    run_dir = Path(run_dir)
    if (run_dir / NEWEST).exists():
        os.replace(run_dir / NEWEST, run_dir / PREVIOUS)
    atomic_torch_save(run_dir / NEWEST, {"format": format_tag, **state})


def load_rotating_checkpoint(run_dir: str | Path, format_tag: str, required_keys: tuple[str, ...] = (),
                             weights_only: bool = False, with_path: bool = False):
    """The newest readable checkpoint of this format (and its path with `with_path`);
    None when the folder has none. `weights_only` refuses pickled python objects
    (for checkpoints that hold only tensors and plain values)."""
    remove_stale_temporaries(run_dir)  # a kill during a write leaves its temporary file behind
    problems, foreign_formats = [], []
    for name in (NEWEST, PREVIOUS):
        path = Path(run_dir) / name
        if not path.exists():
            continue
        try:
            # CPU first: generator states must stay CPU byte tensors; load_state_dict moves weights.
            state = torch.load(path, map_location="cpu", weights_only=weights_only)
            if not isinstance(state, dict) or state.get("format") != format_tag:
                found = state.get("format") if isinstance(state, dict) else type(state).__name__
                foreign_formats.append(found)
                raise ValueError(f"format is {found!r}, expected {format_tag!r}")
            missing = [key for key in required_keys if key not in state]
            if missing:
                raise ValueError(f"missing {', '.join(missing)}")
            return (state, path) if with_path else state
        except Exception as error:  # a torn or foreign file: fall back to the older checkpoint
            problems.append(f"{name}: {type(error).__name__}: {str(error)[:160]}")
    if problems and len(foreign_formats) == len(problems):
        found = ", ".join(sorted({repr(tag) for tag in foreign_formats}))
        kind = format_tag.rsplit("/", 1)[0]
        if all(isinstance(tag, str) and tag.rsplit("/", 1)[0] == kind for tag in foreign_formats):
            origin, fix = "another version of autospace", "resume it with the version that wrote it"
        else:
            origin, fix = "another kind of run or program", "resume it with the command that wrote it"
        raise AutospaceError(f"cannot resume {run_dir}: its checkpoints have the format {found}, written by "
                             f"{origin}; expected {format_tag!r}, the format of this version. {fix[0].upper() + fix[1:]}, "
                             f"or start a new run in another folder")
    if problems:
        raise AutospaceError(f"no readable checkpoint in {run_dir} ({'; '.join(problems)}); "
                             f"start a new run in another folder")
    return None


def require_finite_loss(loss: float, stage: str, position: str, run_dir: str | Path, advice: str) -> None:
    """Stop a run whose loss went non-finite instead of training on garbage; name the last good checkpoint."""
    import math

    if math.isfinite(loss):
        return
    newest = Path(run_dir) / NEWEST
    saved = f"the last good checkpoint is {newest}" if newest.exists() else "no checkpoint was written yet"
    raise AutospaceError(f"{stage}: the loss became {loss} at {position}; {saved}; {advice}")
