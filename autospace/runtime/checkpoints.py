"""Rotating checkpoints shared by every run kind (evolve, search).

A run folder keeps `checkpoint.pt` (newest) and `checkpoint.prev.pt`: saving
renames the newest to `.prev`, then writes the new one atomically, so a kill at
any moment leaves at least one whole checkpoint; loading takes the newest one
that reads back whole and carries the expected format tag.

Checksums: a torch.save file is a zip archive that stores a CRC-32 of every
entry (the pickle and each tensor's bytes), but torch.load never checks them,
so bytes flipped in place load silently. Loading checks every CRC first; a
damaged newest checkpoint falls back to the previous one with a warning.

Only a finite state is saved: a checkpoint is "good" when every floating-point
tensor in it is finite, so the last good checkpoint a non-finite loss names is
one a resume can really continue from.
"""

from __future__ import annotations

import io
import os
import sys
import zipfile
from pathlib import Path

import torch
from torch import nn

from autospace.errors import AutospaceError
from autospace.runtime.atomic import atomic_torch_save, remove_stale_temporaries, require_writable_folder
from autospace.runtime.learning_rates import learning_rate_hint
from autospace.runtime.run_lock import LOCK_NAME

NEWEST, PREVIOUS = "checkpoint.pt", "checkpoint.prev.pt"


def save_rotating_checkpoint(run_dir: str | Path, state: dict, format_tag: str) -> None:
    run_dir = Path(run_dir)
    require_finite_state(state, run_dir)  # before the rotation: the good checkpoints stay as they are
    if (run_dir / NEWEST).exists():
        os.replace(run_dir / NEWEST, run_dir / PREVIOUS)
    atomic_torch_save(run_dir / NEWEST, {"format": format_tag, **state})


# What a run killed (or stopped by bad input) before its first checkpoint may leave in its folder: its
# recipe, the inputs it copied, logs that no checkpoint covers, temporaries. Nothing a rerun would lose,
# so a new run with --out RUN_DIR may start afresh there (`require_new_run_dir`). A checkpoint or a
# finished output (space.json, result.json, metrics.json, model.pt, reports, rank.json, ...) is no leftover.
LEFTOVER_FILES = ("config.yaml", "arch.json", "hardware.json", "cells.txt")
LEFTOVER_SUFFIXES = (".jsonl",)
LEFTOVER_FOLDERS = ("tensorboard",)
STAGE_FOLDERS = ("evolve", "search", "train")  # `autospace run`'s stages: each one leftovers only, or refused


def _is_probe(name: str) -> bool:
    """The lock file and the files of a write check or an atomic write, of this or a killed process."""
    return name == LOCK_NAME or name.startswith(".autospace-write-test.") or (name.startswith(".")
                                                                               and name.endswith(".tmp"))


def restart_leftovers(run_dir: Path) -> list[Path] | None:
    """The entries of `run_dir` a new run removes before starting afresh there, when everything in it is
    left over from a run killed (or stopped by bad input) before its first checkpoint; None when it holds
    anything else (a checkpoint, a finished output, a file autospace did not write)."""
    found = []
    for entry in run_dir.iterdir():
        name = entry.name
        if _is_probe(name) and not entry.is_dir():
            continue
        if entry.is_dir() and not entry.is_symlink():
            if name in LEFTOVER_FOLDERS:
                found.append(entry)
                continue
            inner = restart_leftovers(entry) if name in STAGE_FOLDERS else None
            if inner is None:
                return None
            found.append(entry)
        elif entry.is_file() and (name in LEFTOVER_FILES or name.endswith(LEFTOVER_SUFFIXES)):
            found.append(entry)
        else:
            return None
    return found


def _was_autospace_run(run_dir: Path) -> bool:
    """A folder an autospace run opened: it holds the run lock file or an autospace config.yaml."""
    if (run_dir / LOCK_NAME).exists():
        return True
    try:
        with open(run_dir / "config.yaml", encoding="utf-8", errors="replace") as file:
            return "(autospace " in file.readline()
    except OSError:
        return False


def require_new_run_dir(run_dir: Path) -> None:
    """A new run must not mix its files with another run's, and must be able to write its folder.

    A folder that holds only what a run killed (or stopped by bad input) before its first checkpoint leaves
    (`restart_leftovers`) is taken as new: those files are removed and the run starts afresh there, the same
    for every command (train, search, evolve autospace and nse, run, nb201 rank and search)."""
    run_dir = Path(run_dir)
    if run_dir.exists() and not run_dir.is_dir():
        raise AutospaceError(f"run folder {run_dir} is a file; choose a folder path")
    # Another process of the same torchrun job may be probing the folder (require_writable_folder) right now.
    # The lock file is this run's own (run_lock.py: taken before this check by a new run's entry point).
    if run_dir.is_dir() and any(not _is_probe(entry.name) for entry in run_dir.iterdir()):
        leftovers = restart_leftovers(run_dir) if _was_autospace_run(run_dir) else None
        if leftovers is None:
            raise AutospaceError(f"run folder {run_dir} is not empty; pass --resume to continue the run in it, "
                                 f"or choose another (new or empty) folder")
        require_writable_folder(run_dir)
        import shutil

        for entry in leftovers:  # a killed run's recipe and logs: the new run writes its own
            shutil.rmtree(entry) if entry.is_dir() else entry.unlink(missing_ok=True)
    require_writable_folder(run_dir)  # fail now, not after the data set is loaded


def save_checkpoint(run_dir: Path, state: dict) -> None:
    """Write `state` as the newest rotating checkpoint; it carries its own "format" key."""
    state = dict(state)
    save_rotating_checkpoint(run_dir, state, state.pop("format"))


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
            data = path.read_bytes()
            check_zip_checksums(data)
            # CPU first: generator states must stay CPU byte tensors; load_state_dict moves weights.
            state = torch.load(io.BytesIO(data), map_location="cpu", weights_only=weights_only)
            if not isinstance(state, dict) or state.get("format") != format_tag:
                found = state.get("format") if isinstance(state, dict) else type(state).__name__
                foreign_formats.append(found)
                raise ValueError(f"format is {found!r}, expected {format_tag!r}")
            missing = [key for key in required_keys if key not in state]
            if missing:
                raise ValueError(f"missing {', '.join(missing)}")
            if problems:  # the newest was there but damaged
                print(f"autospace: warning: {Path(run_dir) / NEWEST} is damaged ({problems[0].split(': ', 1)[1]}); "
                      f"continuing from the previous checkpoint {path}", file=sys.stderr)
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
    raise AutospaceError(f"{stage}: the loss became {loss} at {position}; {last_good_checkpoint_text(run_dir)}; "
                         f"{advice}; {learning_rate_hint(run_dir)}")


class ChecksumError(ValueError):
    """A checkpoint's bytes differ from what was written (its stored CRC-32s do not match)."""


def check_zip_checksums(data: bytes) -> None:
    """Raise ChecksumError unless every entry of the torch.save archive `data` matches its stored CRC-32."""
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            damaged = archive.testzip()  # reads every entry and compares its CRC-32
    except (zipfile.BadZipFile, OSError, ValueError, EOFError, NotImplementedError) as error:
        raise ChecksumError(f"not a whole checkpoint archive: {error}") from None
    if damaged is not None:
        raise ChecksumError(f"checksum mismatch in {damaged}: its bytes changed after it was written")


def non_finite_tensors(state) -> list[str]:
    """Names (dotted paths) of the floating-point tensors in `state` holding inf or NaN."""
    found, pending = [], [("", state)]
    while pending:
        name, value = pending.pop()
        if torch.is_tensor(value):
            if value.is_floating_point() and not bool(torch.isfinite(value).all()):
                found.append(name)
        elif isinstance(value, dict):
            pending.extend((f"{name}.{key}" if name else str(key), item) for key, item in value.items())
        elif isinstance(value, (list, tuple)):
            pending.extend((f"{name}[{index}]", item) for index, item in enumerate(value))
    return sorted(found)


class NonFiniteStateError(AutospaceError):
    """The state a run was about to checkpoint holds non-finite tensors."""


def require_finite_state(state: dict, run_dir: str | Path) -> None:
    """Refuse to write `state` as a checkpoint when a tensor in it is not finite (BN running_var = inf, say):
    it would rotate out a good checkpoint and be named as the last good one."""
    bad = non_finite_tensors(state)
    if bad:
        shown = ", ".join(bad[:3]) + (f" and {len(bad) - 3} more" if len(bad) > 3 else "")
        raise NonFiniteStateError(
            f"the run's state became non-finite: {len(bad)} tensors hold inf or NaN ({shown}), so it was not "
            f"saved; {last_good_checkpoint_text(run_dir)}; lower the learning rate: {learning_rate_hint(run_dir)}")


def last_good_checkpoint_text(run_dir: str | Path) -> str:
    """'the last good checkpoint is PATH' for the newest checkpoint that exists, or 'no checkpoint was written yet'.
    Every checkpoint written by this version is finite (`require_finite_state`)."""
    for name in (NEWEST, PREVIOUS):
        if (Path(run_dir) / name).exists():
            return f"the last good checkpoint is {Path(run_dir) / name}"
    return "no checkpoint was written yet"


def checkpoint_position(run_dir: str | Path) -> str:
    """Where a resume of run_dir continues: 'step S (epoch E)' of the newest whole checkpoint of any kind,
    or 'step 0 (before the first checkpoint)'."""
    for name in (NEWEST, PREVIOUS):
        path = Path(run_dir) / name
        try:
            data = path.read_bytes()
            check_zip_checksums(data)
            state = torch.load(io.BytesIO(data), map_location="cpu", weights_only=False)
        except Exception:  # absent, torn or damaged: the resume itself reports it
            continue
        if isinstance(state, dict):
            counters = [f"{key} {state[key]}" for key in ("epoch", "regeneration", "round", "generation")
                        if isinstance(state.get(key), int)]
            step = state.get("step")
            where = f"step {step}" if isinstance(step, int) else "the checkpoint"
            return f"{where} ({', '.join(counters)})" if counters else where
    return "step 0 (before the first checkpoint)"


def optimizer_state_by_name(model: nn.Module, optimizer: torch.optim.Optimizer) -> dict:
    """Per-parameter optimiser state keyed by parameter name (stable across rebuilds)."""
    names = {parameter: name for name, parameter in model.named_parameters()}
    return {names[p]: {k: (v.detach().cpu() if torch.is_tensor(v) else v) for k, v in state.items()}
            for p, state in optimizer.state.items() if p in names}


def load_optimizer_state_by_name(model: nn.Module, optimizer: torch.optim.Optimizer, state: dict) -> None:
    for name, parameter in model.named_parameters():
        if name in state:
            optimizer.state[parameter] = {k: (v.to(parameter.device) if torch.is_tensor(v) else v)
                                          for k, v in state[name].items()}
