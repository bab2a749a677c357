"""The open space as a SPOS search space (the paper's "Full + EA" baseline).

Every searchable layer may take any cell of the open space (the empty cell,
i.e. zero, where the layer has a residual). An architecture is a tuple of
canonical cells; their weights come from per-layer banks shared by all cells
(`CellSupernet.forward_cells`), created the first time a cell needs them.
"""

from __future__ import annotations

import random

import torch
from torch import nn

from autospace.arch.blocks import CellBlock, ZeroBlock
from autospace.arch.cell import Cell, canonical, mutate
from autospace.arch.ops import AGGREGATIONS, CELL_EXPANSIONS, EDGE_OPERATORS, EDGES
from autospace.arch.presets import preset_skeleton
from autospace.cost.analytic import block_cost, head_cost, stem_cost
from autospace.errors import AutospaceError
from autospace.nn.supernet import CellSupernet
from autospace.search.spos import SposEncoding


class OpenSpaceSupernet(nn.Module):
    """`forward(x, cells)`: one cell per searchable layer, weights from the banks."""

    def __init__(self, skeleton, generator: torch.Generator, zero_residual: bool = False):
        super().__init__()
        self.inner = CellSupernet(skeleton, generator, zero_residual)
        self.generator = generator

    def forward(self, x, cells):
        return self.inner.forward_cells(x, cells, self.generator)

    def bank_keys(self) -> list[list[str]]:
        return [bank.keys() for bank in self.inner.banks]

    def ensure(self, cells) -> bool:
        """Create the bank modules `cells` need; True when new parameters appeared."""
        before = sum(len(keys) for keys in self.bank_keys())
        for bank, cell in zip(self.inner.banks, cells):
            bank.cell_module(cell, self.generator)
        return sum(len(keys) for keys in self.bank_keys()) != before

    def restore_keys(self, keys: list[list[str]]) -> None:
        for bank, layer_keys in zip(self.inner.banks, keys):
            bank.ensure(layer_keys, self.generator)


def random_cell(rng: random.Random) -> Cell:
    """A uniformly drawn labelled cell, canonicalised."""
    return canonical(Cell(tuple(rng.choice(EDGE_OPERATORS) for _ in EDGES),
                          rng.choice(CELL_EXPANSIONS), rng.choice(AGGREGATIONS)))


def open_space_encoding(config, dataset, generator: torch.Generator, session) -> SposEncoding:
    skeleton = preset_skeleton(config.preset, num_classes=dataset.num_classes, in_channels=dataset.channels,
                               resolution=dataset.resolution)
    slots = skeleton.searchable_slots()
    all_slots = skeleton.slots()
    fixed = stem_cost(skeleton) + head_cost(skeleton, all_slots[-1].out_channels, all_slots[-1].output_size)
    if skeleton.first_block is not None:
        fixed += block_cost(skeleton.first_block, all_slots[0])
    supernet = OpenSpaceSupernet(skeleton, generator, config.zero_residual)
    supernet = supernet.to(device=session.device, memory_format=session.memory_format)

    def cell_madds(cell: Cell, layer: int) -> int:
        return 0 if cell.is_empty() else block_cost(CellBlock(cell), slots[layer]).madds

    def layer_cell(rng: random.Random, layer: int, room: float) -> Cell:
        for _ in range(2000):
            cell = random_cell(rng)
            if cell.is_empty() and not slots[layer].has_residual:
                continue
            if cell_madds(cell, layer) <= room:
                return cell
        raise AutospaceError(f"layer {layer}: no open-space cell fits {room / 1e6:.2f}M MAdds; raise the target")

    # the cheapest cell of a layer: zero on residual layers, else e1 with one identity path 0->3
    cheapest_cell = canonical(Cell(("zero", "zero", "zero", "identity", "zero", "zero"), expansion=1))
    cheapest = [0 if slot.has_residual else cell_madds(cheapest_cell, index) for index, slot in enumerate(slots)]
    if fixed.madds + sum(cheapest) > config.target_madds:
        raise AutospaceError(
            f"target {config.target_madds / 1e6:.1f}M MAdds is below the smallest network of the open space on "
            f"the {config.preset} skeleton ({(fixed.madds + sum(cheapest)) / 1e6:.1f}M MAdds); raise --target-madds")

    def madds(arch) -> int:
        return fixed.madds + sum(cell_madds(cell, layer) for layer, cell in enumerate(arch))

    def sample(rng: random.Random):
        for _ in range(50):  # SPOS: uniform draws, rejected when over the budget
            arch = tuple(layer_cell(rng, layer, float("inf")) for layer in range(len(slots)))
            if madds(arch) <= config.target_madds:
                return arch
        # tight budget: draw the layers in random order, leaving room for the cheapest choice of the rest
        order = list(range(len(slots)))
        rng.shuffle(order)
        remaining = config.target_madds - fixed.madds - sum(cheapest)
        arch = [None] * len(slots)
        for layer in order:
            arch[layer] = layer_cell(rng, layer, remaining + cheapest[layer])
            remaining -= cell_madds(arch[layer], layer) - cheapest[layer]
        return tuple(arch)

    def mutate_arch(arch, rng: random.Random, probability: float):
        cells = list(arch)
        for layer, cell in enumerate(cells):
            if rng.random() < probability:
                for _ in range(100):
                    child = canonical(mutate(cell, rng))
                    if child != cell and (slots[layer].has_residual or not child.is_empty()):
                        cells[layer] = child
                        break
        return tuple(cells)

    def crossover(first, second, rng: random.Random):
        return tuple(a if rng.random() < 0.5 else b for a, b in zip(first, second))

    def network(arch):
        return skeleton.network([ZeroBlock() if cell.is_empty() else CellBlock(cell) for cell in arch])

    encoding = SposEncoding(supernet=supernet, sample=sample, mutate=mutate_arch, crossover=crossover,
                            madds=madds, paths=lambda arch: arch)
    encoding.network = network
    encoding.prepare = supernet.ensure
    encoding.state = lambda: {"bank_keys": supernet.bank_keys()}
    encoding.load_state = lambda state: supernet.restore_keys(state["bank_keys"])
    return encoding
