"""Final training of a network from scratch: `train` (files in, run folder out) and its parts.

Resuming (`resume=True`) continues the run in `out` under the run's own saved
config.yaml and arch.json: pass `config=None` / `arch=None` to use them. An
explicitly given config must agree with the saved one on every key except
`RESUME_FREE_KEYS` (data_dir, device, progress, log_every, eval_batch_size,
compile), which the given config may change, and the learning-rate keys (lr,
warmup_epochs: `autospace.runtime.resume`), whose change is recorded in config.yaml
with its step; any other difference is an error that lists the keys (we refuse
rather than silently mix two recipes).
"""

from __future__ import annotations

import os
from pathlib import Path

from autospace.arch import Network, arch_to_dict, load_arch
from autospace.runtime.config import load_config
from autospace.data import ImageDataset, load_dataset
from autospace.errors import AutospaceError
from autospace.runtime.resume import learning_rate_changes
from autospace.runtime.run_lock import run_folder_lock
from autospace.train.checkpoint import require_new_run_dir
from autospace.train.config import TrainConfig
from autospace.train.loop import train_network

def train(arch: Network | str | os.PathLike | None, config: TrainConfig | None, out: str | os.PathLike,
          resume: bool = False, dataset: ImageDataset | None = None) -> dict:
    """Train `arch` (a Network or an arch.json path) into the run folder `out`; returns metrics.json's content.

    A new run needs `out` new or empty. `config=None` means the defaults for a
    new run and the saved config.yaml when resuming; `arch=None` (resume only)
    means the run's arch.json. `dataset` skips loading `config.data`.
    """
    with run_folder_lock(out, create=not resume):
        return _train(arch, config, Path(out), resume, dataset)


def _train(arch, config: TrainConfig | None, out: Path, resume: bool, dataset: ImageDataset | None) -> dict:
    out = Path(out)
    saved_config_path, saved_arch_path = out / "config.yaml", out / "arch.json"
    if not resume:
        require_new_run_dir(out)
    if resume and saved_config_path.exists():
        saved = load_config(TrainConfig, saved_config_path)
        if config is None:
            config = saved
        else:  # refused before the data is loaded; a learning-rate change is recorded by open_run
            learning_rate_changes(saved, config, out)
    if config is None:
        config = TrainConfig()

    if arch is None:
        if not (resume and saved_arch_path.exists()):
            raise AutospaceError(f"no architecture given and no {saved_arch_path} to resume; pass an arch.json")
        network = load_arch(saved_arch_path)
    else:
        network = arch if isinstance(arch, Network) else load_arch(arch)
        if resume and saved_arch_path.exists() and arch_to_dict(load_arch(saved_arch_path)) != arch_to_dict(network):
            raise AutospaceError(f"{arch if not isinstance(arch, Network) else 'the given architecture'} differs "
                                 f"from the run's {saved_arch_path}; resume with the run's arch.json or start "
                                 f"a new run in another folder")

    if dataset is None:
        dataset = load_dataset(config.data, config.data_dir, config.image_size)
    return train_network(network, dataset, config, out, resume=resume)
