"""Start a listed-space supernet from the DEA supernet's weights (`warm_start`).

A space learned by `autospace evolve` lists, per layer, cells that the DEA supernet has trained
in its weight banks. The search supernet over that space holds one module per candidate with
its own weights (ProxylessNAS); each such module has the layout of the bank's module for the
same cell, so the trained weights carry over one to one (as `CellSupernet.path_state_dict`
maps a path onto a stand-alone network). Candidates the banks cannot build without new
modules (and the zero block) keep their fresh initialisation.
"""

from __future__ import annotations

from autospace.arch.blocks import CellBlock
from autospace.nn.block_supernet import BlockSupernet
from autospace.nn.supernet import CellSupernet
from autospace.nn.weight_bank import cell_keys


def copy_dea_weights(target: BlockSupernet, source: CellSupernet) -> int:
    """Copy stem, fixed block, head, classifier and every candidate cell the banks hold from
    `source` into `target` (same skeleton); returns the number of candidate modules copied."""
    target.stem.load_state_dict(source.stem.state_dict())
    fixed = len(target.layers) - target.num_layers
    for index in range(fixed):
        target.layers[index].load_state_dict(source.layers[index].state_dict())
    if not isinstance(target.head, type(source.head)):
        raise ValueError("the DEA supernet and the search supernet have different heads")
    target.head.load_state_dict(source.head.state_dict())
    target.classifier.load_state_dict(source.classifier.state_dict())
    copied = 0
    for layer, (bank, blocks) in enumerate(zip(source.banks, target.choices)):
        for position, block in enumerate(blocks):
            if not isinstance(block, CellBlock) or block.is_empty():
                continue
            if not all(key in bank for key in cell_keys(block.cell)):
                continue
            module = bank.cell_module(block.cell)
            target.layers[fixed + layer][position].load_state_dict(module.state_dict())
            copied += 1
    return copied
