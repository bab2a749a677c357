"""One layer's population in cost tiers (`cost_tiers`): a `LayerPopulation` per tier, seen as one.

Selection for the supernet, mutation, removal and export act within a tier, so each tier keeps its
cost and fitness only decides *which* cells of a cost survive; the supernet's slots are shared out
among the tiers (rotating the remainder), so every window sets cells of different costs against
each other. The flat `individuals` list (tier by tier) is what the DEA loop, its logs and its
diagnostics read, as for a single population.
"""

from __future__ import annotations

import random
from typing import Sequence

from autospace.arch.cell import Cell
from autospace.arch.network import LayerSlot
from autospace.evolve.layer_budget import LayerBudget
from autospace.evolve.population import Individual, LayerPopulation, earned


class TieredPopulation:
    def __init__(self, slot: LayerSlot, budgets: Sequence[LayerBudget], max_distance: int, sizes: Sequence[int]):
        self.slot = slot
        self.tiers = [LayerPopulation(slot, budget, max_distance) for budget in budgets]
        self.sizes = list(sizes)

    @property
    def individuals(self) -> list[Individual]:
        return [individual for tier in self.tiers for individual in tier.individuals]

    def cells(self) -> list[Cell]:
        return [individual.cell for individual in self.individuals]

    def tier_of(self, cell: Cell) -> int:
        for index, tier in enumerate(self.tiers):
            if cell in tier.cells():
                return index
        raise KeyError(cell)

    def initialise(self, size: int, rng: random.Random) -> None:
        """Each tier: its family members, then random walks from its anchor (`size` is per tier: `sizes`)."""
        for tier, tier_size in zip(self.tiers, self.sizes):
            tier.initialise(tier_size, rng)

    def supernet_pick(self, count: int, tournament_size: int, rng: random.Random, min_steps: int,
                      min_windows: int, uniform: bool, rotation: int = 0) -> list[int]:
        """`count` slots shared out among the tiers (the remainder goes to the tiers from `rotation` on),
        each tier's taken by `LayerPopulation.supernet_pick`; indices into `individuals`."""
        share, remainder = divmod(count, len(self.tiers))
        chosen, offset = [], 0
        for index, tier in enumerate(self.tiers):
            slots = share + (1 if (index - rotation) % len(self.tiers) < remainder else 0)
            if slots:
                chosen += [offset + i for i in tier.supernet_pick(slots, tournament_size, rng, min_steps,
                                                                  min_windows, uniform)]
            offset += len(tier.individuals)
        return chosen

    def write_back(self, cells: list[Cell], new_fitness: list[float], counts: list[int], momentum: float,
                   window: bool = True, average: str = "momentum") -> None:
        for index, tier in enumerate(self.tiers):
            mine = [i for i, cell in enumerate(cells) if self.tier_of(cell) == index]
            if mine:
                tier.write_back([cells[i] for i in mine], [new_fitness[i] for i in mine],
                                [counts[i] for i in mine], momentum, window, average)

    def regenerate(self, offspring: int, tournament_size: int, max_age: int, min_steps: int,
                   constrain_to_reference: bool, rng: random.Random, min_windows: int = 0) -> list[Individual]:
        """Every tier regenerates on its own: children stay in their parent's tier."""
        children = []
        for tier in self.tiers:
            children += tier.regenerate(offspring, tournament_size, max_age, min_steps, constrain_to_reference,
                                        rng, min_windows)
        return children

    def top(self, count: int, min_steps: int = 1, min_windows: int = 0) -> list[Individual]:
        ranked = sorted(self.individuals, key=lambda ind: (earned(ind, max(min_steps, 1), min_windows),
                                                           ind.fitness), reverse=True)
        return ranked[:count]

    def exported(self, per_tier: int, min_steps: int, min_windows: int) -> list[Individual]:
        """Per tier, the `per_tier` fittest learned cells that earned their fitness, then every reference-family
        member trained for at least `min_steps` (the prior stays, but no block is exported untrained)."""
        learned, family = [], []
        for tier in self.tiers:
            ranked = [ind for ind in tier.top(len(tier.individuals), min_steps, min_windows)
                      if not ind.reference and earned(ind, max(min_steps, 1), min_windows)]
            learned += ranked[:per_tier]
            family += [ind for ind in tier.individuals if ind.reference and ind.count >= max(min_steps, 1)]
        if not learned + family:  # a run too short for any cell to earn its place: the most trained of each tier
            return [max(tier.individuals, key=lambda ind: (ind.count, ind.windows)) for tier in self.tiers]
        return learned + family

    # -- checkpointing -----------------------------------------------------------------------------
    def state(self) -> list[dict]:
        return [{**entry, "tier": index} for index, tier in enumerate(self.tiers) for entry in tier.state()]

    def load_state(self, state: list[dict]) -> None:
        for index, tier in enumerate(self.tiers):
            tier.load_state([{k: v for k, v in entry.items() if k != "tier"} for entry in state
                             if entry["tier"] == index])

    def band_state(self) -> list:
        return [tier.band_state() for tier in self.tiers]

    def load_band_state(self, bands: list) -> None:
        for tier, band in zip(self.tiers, bands):
            tier.load_band_state(band)
