"""Checkpoints of a space evolution: everything needed to continue bit for bit.

Written at every regeneration through `autospace.checkpoints` (atomic, the last two kept).
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from autospace.arch.codec import block_from_dict, cell_to_dict
from autospace.checkpoints import load_rotating_checkpoint, save_rotating_checkpoint

EVOLVE_CHECKPOINT_FORMAT = "autospace.evolve-checkpoint/1"


def save_evolution_checkpoint(run_dir: Path, state: dict) -> None:
    save_rotating_checkpoint(run_dir, state, EVOLVE_CHECKPOINT_FORMAT)


def load_evolution_checkpoint(run_dir: Path) -> dict | None:
    return load_rotating_checkpoint(run_dir, EVOLVE_CHECKPOINT_FORMAT)


def supernet_snapshot(supernet, cells: list[list]) -> dict:
    """Bank keys in creation order, the supernet's cells and alphas, and every tensor."""
    return {
        "bank_keys": [bank.keys() for bank in supernet.banks],
        "cells": [[cell_to_dict(cell) for cell in layer] for layer in cells],
        "alphas": [alpha.detach().cpu().tolist() for alpha in supernet.alphas()],
        "state_dict": {name: tensor.detach().cpu() for name, tensor in supernet.state_dict().items()},
    }


def restore_supernet(supernet, snapshot: dict, generator: torch.Generator) -> list[list]:
    """Re-create the bank entries and candidates of `snapshot`, then load its tensors."""
    for bank, keys in zip(supernet.banks, snapshot["bank_keys"]):
        bank.ensure(keys, generator)
    cells = [[block_from_dict({"type": "cell", **cell}).cell for cell in layer] for layer in snapshot["cells"]]
    supernet.set_candidates(cells, snapshot["alphas"], generator)
    supernet.load_state_dict(snapshot["state_dict"])
    return cells


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


def dea_warm_start(evolve_dir: Path):
    """A `search(..., initialise_supernet=)` callable that starts a supernet over the space evolved
    in `evolve_dir` from the DEA supernet of that run's last checkpoint (nn/warm_start.py).
    Refused in one line when the folder holds no evolve checkpoint."""
    from autospace.errors import AutospaceError
    from autospace.nn.supernet import CellSupernet
    from autospace.nn.warm_start import copy_dea_weights

    def initialise(supernet) -> int:
        checkpoint = load_evolution_checkpoint(evolve_dir)
        if checkpoint is None:
            raise AutospaceError(f"warm_start: {evolve_dir} holds no evolve checkpoint (checkpoint.pt) to start "
                                 f"the search supernet from; set warm_start=false, or search a space.json "
                                 f"that `autospace evolve --method autospace` wrote beside its checkpoint")
        generator = torch.Generator().manual_seed(0)  # every tensor is then loaded from the checkpoint
        source = CellSupernet(supernet.skeleton, generator)
        restore_supernet(source, checkpoint["supernet"], generator)
        return copy_dea_weights(supernet, source)

    return initialise
