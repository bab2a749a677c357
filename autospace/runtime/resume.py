"""What `--resume` may change, and the record of what it changed.

A resumed run must stay the run it was: a different seed, data set or schedule
length would silently mix two recipes, so such a change is refused. Two kinds
of key may change:

- keys that do not change the result (`RESUME_FREE_KEYS`: where the data lives,
  the device, progress output, ...);
- the learning-rate keys of each run kind (`learning_rates.LEARNING_RATE_KEYS`), which every
  step reads from the config: the fix a non-finite loss asks for ("lower lr,
  then --resume"). Such a change is written into the run's config.yaml with
  the step it took effect at, as a comment line under the header, e.g.
  `# changed on --resume at step 120 (epoch 3): lr 0.05 -> 0.01`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Iterable

from autospace.runtime.config import (
    CHANGE_NOTE_PREFIX, config_differences, load_saved_config, recorded_change_notes, save_config,
)
from autospace.errors import AutospaceError
from autospace.runtime.learning_rates import learning_rate_keys

RESUME_FREE_KEYS = ("data_dir", "device", "progress", "log_every", "eval_batch_size", "compile", "tensorboard",
                    "skip_nonfinite")


def allowed_changes(config_class) -> tuple[str, ...]:
    return RESUME_FREE_KEYS + learning_rate_keys(config_class)


def learning_rate_changes(saved: Any, new: Any, run_dir: str | Path) -> dict[str, tuple[Any, Any]]:
    """The learning-rate keys `new` changes from `saved`, `{key: (old, new)}`; any other change but a free
    key's is an AutospaceError naming the keys that may change."""
    config_class = type(saved)
    changed = config_differences(saved, new)
    refused = {key: values for key, values in changed.items()
               if key.rsplit(".", 1)[-1] not in RESUME_FREE_KEYS and key not in learning_rate_keys(config_class)}
    if refused:
        listing = ", ".join(f"{key}: {old!r} -> {value!r}" for key, (old, value) in refused.items())
        may = ", ".join(learning_rate_keys(config_class)) or "no learning-rate key for this kind of run"
        raise AutospaceError(f"cannot resume {run_dir} with a different config ({listing}); --resume may change "
                             f"{may} (recorded in config.yaml) and {', '.join(RESUME_FREE_KEYS)}; resume without "
                             f"the others, or start a new run in another folder")
    return {key: values for key, values in changed.items() if key in learning_rate_keys(config_class)}


def record_learning_rate_changes(run_dir: str | Path, config: Any, changes: dict, position: str) -> None:
    """Rewrite run_dir/config.yaml with `config`, keeping earlier change notes and adding one for `changes`."""
    if not changes:
        return
    listing = ", ".join(f"{key} {old!r} -> {new!r}" for key, (old, new) in changes.items())
    save_config(Path(run_dir) / "config.yaml", config, [f"{CHANGE_NOTE_PREFIX} at {position}: {listing}"])


def recorded_changes(run_dir: str | Path) -> list[str]:
    """The change notes of run_dir/config.yaml, oldest first."""
    return recorded_change_notes(Path(run_dir) / "config.yaml")


def resumed_config(config_class, run_dir: str | Path, overrides: Iterable[str]):
    """The config to resume run_dir with: its config.yaml plus `overrides`, checked by `learning_rate_changes`;
    a learning-rate change is recorded in config.yaml with the step of the checkpoint it continues from."""
    from autospace.runtime.checkpoints import checkpoint_position  # torch: imported only to resume

    overrides = list(overrides)
    saved = load_saved_config(config_class, run_dir)
    config = load_saved_config(config_class, run_dir, overrides) if overrides else saved
    changes = learning_rate_changes(saved, config, run_dir)
    if changes:
        record_learning_rate_changes(run_dir, config, changes, checkpoint_position(run_dir))
    return config


