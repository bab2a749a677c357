"""The learning-rate keys of each kind of run: what `--resume` may change besides the free keys
(`resume.py`), and the hint a non-finite loss or state prints (`checkpoints.py`, `nonfinite.py`). Its own
module so that those share it without importing each other."""

from __future__ import annotations

from pathlib import Path

# The keys each step (or each regeneration's new optimiser) reads from the config, so a new value takes
# effect from the resume on. Not arch_lr of NSE: its Adam state, restored from the checkpoint, keeps the old one.
LEARNING_RATE_KEYS = {
    "TrainConfig": ("lr", "warmup_epochs"),
    "SearchConfig": ("weight_lr", "arch_lr"),
    "EvolveConfig": ("weight_lr", "fitness_lr"),
    "NseConfig": ("weight_lr",),
}


def learning_rate_keys(config_class) -> tuple[str, ...]:
    return LEARNING_RATE_KEYS.get(config_class.__name__, ())


def learning_rate_hint(run_dir: str | Path) -> str:
    """How to continue run_dir with a lower learning rate, for the message of a non-finite loss."""
    try:
        first_line = (Path(run_dir) / "config.yaml").read_text(encoding="utf-8").split("\n", 1)[0]
    except (OSError, UnicodeDecodeError):
        first_line = ""
    kind = first_line[2:].split(",", 1)[0] if first_line.startswith("# ") else ""
    keys = LEARNING_RATE_KEYS.get(kind, ())
    if not keys:
        return f"continue with --resume {run_dir}"
    return (f"continue with --resume {run_dir} --set {keys[0]}=SMALLER (--resume may change "
            f"{', '.join(keys)}; the change is recorded in config.yaml)")
