"""Checkpoints of a space evolution: everything needed to continue bit for bit.

Written at every regeneration through the run (`autospace.runtime.run`: atomic, the last two kept).
"""

from __future__ import annotations


import torch

from autospace.arch.codec import block_from_dict, cell_to_dict

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
