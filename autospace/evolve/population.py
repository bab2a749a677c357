"""Layer-wise cell populations of the DEA (DESIGN 2.3, steps 1 and 4).

Pure data and `random.Random`: initialisation around the reference DAG,
tournament selection, offspring by mutation under the Hamming and MAdds
constraints, removal, and the momentum write-back of fitness (Eq. 5).
"""

from __future__ import annotations

import random
from dataclasses import dataclass, replace

from autospace.arch.blocks import CellBlock
from autospace.arch.cell import Cell, canonical, hamming, mutate
from autospace.arch.network import LayerSlot, Skeleton
from autospace.cost.analytic import block_cost, head_cost, stem_cost
from autospace.errors import AutospaceError


@dataclass(frozen=True)
class Individual:
    cell: Cell            # canonical, never empty
    fitness: float = 0.0  # alpha in the population (Eq. 5 keeps it across rebuilds)
    age: int = 0          # regenerations survived
    count: int = 0        # T: weight steps this cell was trained (Eq. 4)


def cell_madds(cell: Cell, slot: LayerSlot) -> int:
    return block_cost(CellBlock(cell), slot).madds


def layer_madds_caps(skeleton: Skeleton, budget_madds: int, reference: Cell, slack: float) -> list[int]:
    """Per-layer cap tau_l: the budget left after stem, fixed first block and head,
    shared among searchable layers in proportion to the reference cell's MAdds there,
    times `slack` (> 1 lets a layer spend what a smaller layer elsewhere saves)."""
    slots = skeleton.slots()
    fixed = stem_cost(skeleton) + head_cost(skeleton, slots[-1].out_channels, slots[-1].output_size)
    if skeleton.first_block is not None:
        fixed += block_cost(skeleton.first_block, slots[0])
    searchable = [slot for slot in slots if slot.searchable]
    available = budget_madds - fixed.madds
    if available <= 0:
        raise AutospaceError(
            f"budget {budget_madds:,} MAdds is below the fixed part of the skeleton (stem, first block, "
            f"head: {fixed.madds:,} MAdds); give a budget above {fixed.madds:,}"
        )
    weights = [cell_madds(reference, slot) for slot in searchable]
    total = sum(weights)
    return [int(slack * available * weight / total) for weight in weights]


class LayerPopulation:
    """The population of one searchable layer."""

    def __init__(self, slot: LayerSlot, reference: Cell, madds_cap: int, max_distance: int):
        self.slot = slot
        self.reference = canonical(reference)
        self.madds_cap = madds_cap
        self.max_distance = max_distance
        self.individuals: list[Individual] = []

    # -- constraints ---------------------------------------------------------
    def admissible(self, cell: Cell, constrain_to_reference: bool) -> bool:
        if cell.is_empty() or cell_madds(cell, self.slot) > self.madds_cap:
            return False
        if constrain_to_reference and hamming(cell, self.reference) > self.max_distance:
            return False
        return all(individual.cell != cell for individual in self.individuals)

    def cells(self) -> list[Cell]:
        return [individual.cell for individual in self.individuals]

    # -- step 1: initialisation ----------------------------------------------
    def initialise(self, size: int, rng: random.Random, max_tries: int = 10_000) -> None:
        """Draw `size` distinct cells by mutating the reference DAG within distance delta.

        Each draw is a random walk of 1..delta mutations from the reference; a walk
        that leaves the constraints is redrawn. The reference itself joins when it fits."""
        self.individuals = []
        if self.admissible(self.reference, True):
            self.individuals.append(Individual(self.reference))
        tries = 0
        while len(self.individuals) < size:
            tries += 1
            if tries > max_tries:
                raise AutospaceError(
                    f"layer {self.slot.index}: found only {len(self.individuals)} of {size} distinct cells "
                    f"within Hamming distance {self.max_distance} of the reference and under the layer's "
                    f"MAdds cap {self.madds_cap:,}; raise the budget or delta, or lower the population size"
                )
            cell = self.reference
            for _ in range(rng.randint(1, self.max_distance)):
                cell = mutate(cell, rng)
            cell = canonical(cell)
            if self.admissible(cell, True):
                self.individuals.append(Individual(cell))

    # -- selection -------------------------------------------------------------
    def tournament(self, count: int, tournament_size: int, rng: random.Random) -> list[int]:
        """Indices of `count` distinct winners: each is the fittest of `tournament_size`
        individuals drawn from those not yet chosen."""
        remaining = list(range(len(self.individuals)))
        winners = []
        for _ in range(min(count, len(remaining))):
            entrants = rng.sample(remaining, min(tournament_size, len(remaining)))
            best = max(entrants, key=lambda index: (self.individuals[index].fitness, -index))
            winners.append(best)
            remaining.remove(best)
        return winners

    # -- step 4: regeneration ----------------------------------------------------
    def write_back(self, cells: list[Cell], new_fitness: list[float], counts: list[int], momentum: float) -> None:
        """Eq. 5: alpha_pop <- m * alpha_old + (1 - m) * alpha_new for the supernet's cells;
        their training counts T are updated to the supernet's."""
        position = {individual.cell: index for index, individual in enumerate(self.individuals)}
        for cell, fitness, count in zip(cells, new_fitness, counts):
            index = position[cell]
            old = self.individuals[index]
            self.individuals[index] = replace(
                old, fitness=momentum * old.fitness + (1.0 - momentum) * fitness, count=count)

    def reproduce(self, offspring: int, tournament_size: int, constrain_to_reference: bool,
                  rng: random.Random, max_tries: int = 200) -> list[Individual]:
        """Tournament winners mutated into `offspring` new, admissible cells.

        A child starts with its parent's fitness and a count of zero; the bank
        gives it the weights of every (edge, operator, expansion) it shares."""
        children: list[Individual] = []
        tries = 0
        while len(children) < offspring and tries < max_tries:
            tries += 1
            parent = self.individuals[self.tournament(1, tournament_size, rng)[0]]
            child = canonical(mutate(parent.cell, rng))
            if self.admissible(child, constrain_to_reference) and all(c.cell != child for c in children):
                children.append(Individual(child, fitness=parent.fitness))
        return children

    def replace_with(self, children: list[Individual], max_age: int, protected: set[Cell]) -> None:
        """Add children, then remove as many individuals: the oldest if past `max_age`,
        else the weakest (never a cell in `protected`, i.e. a child just added)."""
        self.individuals.extend(children)
        for _ in children:
            candidates = [i for i, ind in enumerate(self.individuals) if ind.cell not in protected]
            if not candidates:
                break
            oldest = max(candidates, key=lambda i: (self.individuals[i].age, -i))
            if self.individuals[oldest].age > max_age:
                victim = oldest
            else:
                victim = min(candidates, key=lambda i: (self.individuals[i].fitness, -self.individuals[i].age, i))
            del self.individuals[victim]

    def age_all(self) -> None:
        self.individuals = [replace(individual, age=individual.age + 1) for individual in self.individuals]

    def top(self, count: int) -> list[Individual]:
        """The `count` fittest cells, trained ones first (an untrained cell's fitness is only inherited)."""
        ranked = sorted(self.individuals, key=lambda ind: (ind.count > 0, ind.fitness), reverse=True)
        return ranked[:count]

    # -- checkpointing -------------------------------------------------------------
    def state(self) -> list[dict]:
        from autospace.arch.codec import cell_to_dict

        return [{"cell": cell_to_dict(i.cell), "fitness": i.fitness, "age": i.age, "count": i.count}
                for i in self.individuals]

    def load_state(self, state: list[dict]) -> None:
        from autospace.arch.codec import block_from_dict

        self.individuals = [
            Individual(block_from_dict({"type": "cell", **entry["cell"]}).cell, entry["fitness"],
                       entry["age"], entry["count"])
            for entry in state
        ]


def minimum_cell_madds(slot: LayerSlot) -> int:
    """MAdds of the cheapest non-empty cell at this slot (input conv + identity path + output conv, e=1)."""
    ops = ["zero"] * 6
    ops[3] = "identity"  # edge 0->3
    return cell_madds(Cell(tuple(ops), expansion=1), slot)
