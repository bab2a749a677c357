"""Final training of a network from scratch (`train`: files in, run folder out), and the floor
under search and evolve: the optimiser and schedule (`optim`), evaluation, the shared supernet
session (`session`)."""

from autospace.runtime.lazy import lazy_exports

_EXPORTS = {
    "train": "api", "CHECKPOINT_NAME": "checkpoint", "PREVIOUS_CHECKPOINT_NAME": "checkpoint",
    "load_latest_checkpoint": "checkpoint", "require_new_run_dir": "checkpoint", "save_checkpoint": "checkpoint",
    "RESUME_FREE_KEYS": "config", "TrainConfig": "config", "train_network": "loop",
    "learning_rate_at": "optim", "make_optimizer": "optim", "parameter_groups": "optim",
}
__all__ = sorted(_EXPORTS)
__getattr__ = lazy_exports(__name__, _EXPORTS)
