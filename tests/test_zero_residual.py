"""Supernets whose residual blocks start as the identity (`zero_residual`, BigNAS's init).

A cell or inverted residual of a residual layer outputs out + x; with its last BN scale at
zero, out is zero at initialisation, so the block is the identity, whichever cell is chosen.
"""

from __future__ import annotations

import torch

from autospace.arch import Cell, CellBlock, Skeleton, Stage, manual_space, reference_cell
from autospace.evolve.config import EvolveConfig
from autospace.nn.block_supernet import BlockSupernet
from autospace.nn.supernet import CellSupernet
from autospace.search.config import SearchConfig

# Slots: fixed first block 8->8; searchable 8->8 s1, 8->8 s1, 8->12 s2, 12->12 s1.
SKELETON = Skeleton(stages=(Stage(8, 2, 1), Stage(12, 2, 2)), stem_channels=8, first_channels=8,
                    head_channels=16, num_classes=5, resolution=12)
SUM_E1 = Cell(("conv1x1", "conv3x3", "dwconv3x3", "identity", "conv1x1", "conv3x3"), 1, "sum")
CONCAT_E3 = Cell(("conv3x3", "identity", "conv1x1", "dwconv3x3", "zero", "identity"), 3, "concat")


def cell_supernet(zero_residual: bool) -> CellSupernet:
    generator = torch.Generator().manual_seed(0)
    supernet = CellSupernet(SKELETON, generator, zero_residual)
    cells = [[reference_cell(), SUM_E1]] * 4
    supernet.set_candidates(cells, [[0.0, 0.0]] * 4, generator)
    return supernet


def test_residual_cells_start_as_the_identity_and_the_others_do_not():
    supernet = cell_supernet(True).eval()
    x = torch.randn(2, 8, 6, 6)
    for layer, slot in zip(supernet.gated_layers, SKELETON.searchable_slots()):
        inputs = x if slot.in_channels == 8 else torch.randn(2, slot.in_channels, 6, 6)
        for module in layer.cell_modules:
            out = module(inputs)
            assert torch.equal(out, inputs) == slot.has_residual


def test_without_the_flag_no_cell_is_the_identity():
    supernet = cell_supernet(False).eval()
    x = torch.randn(2, 8, 6, 6)
    assert not any(torch.equal(module(x), x) for module in supernet.gated_layers[0].cell_modules)


def test_cells_added_later_start_as_the_identity_too():
    supernet = cell_supernet(True)
    generator = torch.Generator().manual_seed(1)
    supernet.set_candidates([[CONCAT_E3]] * 4, [[0.0]] * 4, generator)  # new expansion: new bank modules
    module = supernet.gated_layers[0].cell_modules[0].eval()
    x = torch.randn(2, 8, 6, 6)
    assert torch.equal(module(x), x)


def test_block_supernet_residual_candidates_start_as_the_identity():
    space = manual_space(SKELETON, with_zero=False)
    supernet = BlockSupernet(space, torch.Generator().manual_seed(0), add_zero=False, zero_residual=True).eval()
    x = torch.randn(2, 8, 6, 6)
    for candidates in supernet.layers[1:3]:  # the two residual 8->8 layers
        for module in candidates:
            assert torch.equal(module(x), x)
    plain = BlockSupernet(space, torch.Generator().manual_seed(0), add_zero=False).eval()
    assert not torch.equal(plain.layers[1][0](x), x)


def test_on_by_default_in_the_evolve_and_search_configs():
    assert EvolveConfig().zero_residual and SearchConfig().zero_residual
