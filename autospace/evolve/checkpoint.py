"""Checkpoints of a space evolution: everything needed to continue bit for bit.

Written at every regeneration through the run (`autospace.runtime.run`: atomic, the last two kept).
"""

from __future__ import annotations

from pathlib import Path

import torch

from autospace.arch.codec import block_from_dict, cell_to_dict
from autospace.runtime.checkpoints import load_rotating_checkpoint

EVOLVE_CHECKPOINT_FORMAT = "autospace.evolve-checkpoint/1"


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


def dea_warm_start(evolve_dir: Path):
    """A `search(..., initialise_supernet=)` callable that starts a supernet over the space evolved
    in `evolve_dir` from the DEA supernet of that run's last checkpoint (nn/warm_start.py).
    Refused in one line when the folder holds no evolve checkpoint."""
    from autospace.errors import AutospaceError
    from autospace.nn.supernet import CellSupernet
    from autospace.nn.warm_start import copy_dea_weights

    def initialise(supernet) -> int:
        checkpoint = load_rotating_checkpoint(evolve_dir, EVOLVE_CHECKPOINT_FORMAT)
        if checkpoint is None:
            raise AutospaceError(f"warm_start: {evolve_dir} holds no evolve checkpoint (checkpoint.pt) to start "
                                 f"the search supernet from; set warm_start=false, or search a space.json "
                                 f"that `autospace evolve --method autospace` wrote beside its checkpoint")
        generator = torch.Generator().manual_seed(0)  # every tensor is then loaded from the checkpoint
        source = CellSupernet(supernet.skeleton, generator)
        restore_supernet(source, checkpoint["supernet"], generator)
        return copy_dea_weights(supernet, source)

    return initialise
