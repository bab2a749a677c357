"""Layer-wise cell populations of the DEA (DESIGN 2.3, steps 1 and 4).

Pure data and `random.Random`: initialisation around the (scaled) reference
DAG, tournament selection, the momentum write-back of fitness (Eq. 5), and
regeneration: offspring by one mutation drawn uniformly among the parent's
admissible neighbours, removal of the oldest or weakest.

What keeps the space learned rather than shaped by its rules (measured in
issue 14: without these a noise fitness gives the same spaces as a real one):
- cells are admitted in a MAdds band ([floor, cap], `layer_budget`), so
  neither mutation nor removal drifts toward cheap cells;
- the reference family is seeded into every population and never removed;
- fitness is earned: a cell needs `min_steps` weight steps and `min_windows`
  fitness windows before it can be a parent, be removed as the weakest or rank
  among the trained cells; cells that have not earned it take the supernet's
  slots first (so every cell, the prior included, is trained and judged), and
  no more children are made than the supernet can judge; a child's inherited
  fitness is pulled halfway to the population mean;
- fitness is averaged over a cell's windows (`average="windows"`, Eq. 5 with
  m = n / (n + 1) after n windows), not the last noisy window's value.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, replace

from autospace.arch.cell import Cell, canonical, hamming, mutate
from autospace.arch.ops import AGGREGATIONS, CELL_EXPANSIONS, EDGE_OPERATORS, EDGES
from autospace.arch.network import LayerSlot
from autospace.errors import AutospaceError
from autospace.evolve.layer_budget import LayerBudget, cell_madds, reference_family

CHILD_FITNESS_SHRINK = 0.5  # a child starts halfway between its parent's fitness and the population mean


@dataclass(frozen=True)
class Individual:
    cell: Cell               # canonical, never empty
    fitness: float = 0.0     # alpha in the population (Eq. 5 keeps it across rebuilds)
    age: int = 0             # regenerations survived
    count: int = 0           # T: weight steps this cell was trained (Eq. 4)
    reference: bool = False  # a reference-family member: never removed (the prior stays)
    windows: int = 0         # regeneration windows with fitness steps this cell took part in


FITNESS_AVERAGES = ("windows", "momentum")


def earned(individual: Individual, min_steps: int, min_windows: int) -> bool:
    """Whether a cell's fitness is its own: enough weight steps and enough fitness windows."""
    return individual.count >= min_steps and individual.windows >= min_windows


def neighbours(cell: Cell) -> list[Cell]:
    """Every distinct canonical cell one change away (one edge operator, the expansion or the
    aggregation), in a fixed order; the cell itself and duplicates after canonicalisation dropped."""
    found: list[Cell] = []
    variants = []
    for position in range(len(EDGES)):
        for op in EDGE_OPERATORS:
            if op != cell.ops[position]:
                ops = list(cell.ops)
                ops[position] = op
                variants.append(Cell(tuple(ops), cell.expansion, cell.aggregation))
    variants += [Cell(cell.ops, e, cell.aggregation) for e in CELL_EXPANSIONS if e != cell.expansion]
    variants += [Cell(cell.ops, cell.expansion, a) for a in AGGREGATIONS if a != cell.aggregation]
    seen = {canonical(cell)}
    for variant in variants:
        variant = canonical(variant)
        if variant not in seen:
            seen.add(variant)
            found.append(variant)
    return found


class LayerPopulation:
    """The population of one searchable layer."""

    def __init__(self, slot: LayerSlot, budget: LayerBudget, max_distance: int, latency=None):
        self.slot = slot
        self.budget = budget
        self.reference = budget.scaled_reference  # the d_H <= delta constraint centres on it
        self.max_distance = max_distance
        self.individuals: list[Individual] = []
        self._madds: dict[Cell, int] = {}
        self._latency_model = latency  # cell -> predicted ms at this layer (a latency target), or None
        self._latency: dict[Cell, float] = {}

    # -- constraints ---------------------------------------------------------
    def madds(self, cell: Cell) -> int:
        if cell not in self._madds:
            self._madds[cell] = cell_madds(cell, self.slot)
        return self._madds[cell]

    def latency_ms(self, cell: Cell) -> float | None:
        if self._latency_model is None:
            return None
        if cell not in self._latency:
            self._latency[cell] = self._latency_model(cell)
        return self._latency[cell]

    def admissible(self, cell: Cell, constrain_to_reference: bool) -> bool:
        if cell.is_empty() or not self.budget.admits(cell, self.madds(cell), self.latency_ms(cell)):
            return False
        if constrain_to_reference and hamming(cell, self.reference) > self.max_distance:
            return False
        return all(individual.cell != cell for individual in self.individuals)

    def cells(self) -> list[Cell]:
        return [individual.cell for individual in self.individuals]

    # -- step 1: initialisation ----------------------------------------------
    def initialise(self, size: int, rng: random.Random, max_tries: int = 4_000) -> None:
        """The reference family, then distinct cells drawn by random walks of 1..delta mutations
        from the scaled reference; a walk that ends outside the band or the distance is redrawn.

        Where the band holds too few cells within delta of the reference (a budget far above the
        reference's cost), delta grows one step at a time for this layer until the population fills;
        where even the whole band holds too few (a small layer), its floor is lowered; a MAdds budget
        that still leaves too few cells is refused (a latency cap is raised instead)."""
        self.individuals = [Individual(cell, reference=True) for cell in self.budget.family[:size]]
        tries = 0
        while len(self.individuals) < size:
            tries += 1
            if tries > max_tries:
                if self.max_distance < len(EDGES) + 2:
                    self.max_distance += 1
                elif self.budget.floor > 0 or self.budget.latency_floor > 0:  # a narrow band: widen it downwards
                    self.budget = replace(self.budget, floor=int(self.budget.floor * 0.8),
                                          latency_floor=self.budget.latency_floor * 0.8
                                          if self.budget.latency_floor > 1e-4 else 0.0)
                elif (self.budget.latency_cap is not None
                      and self.budget.latency_cap < 1000 * self.latency_ms(self.reference)):
                    # A latency target near the skeleton's fastest network: the layer gets a higher latency
                    # cap (space.json's space_latency then says the space is over the target).
                    self.budget = replace(self.budget, latency_cap=self.budget.latency_cap * 1.25)
                else:  # a MAdds budget no population of distinct cells can meet: refuse, never exceed it
                    raise AutospaceError(
                        f"layer {self.slot.index}: only {len(self.individuals)} of {size} distinct cells fit under "
                        f"the layer's MAdds cap {self.budget.cap:,}; raise the budget or lower population_size")
                tries = 0
            cell = self.reference
            # A cell differs from the reference in at most its 6 edges, e and aggregation: more mutations
            # add nothing (and max_distance=2**63-1 would loop for ever).
            for _ in range(rng.randint(1, min(self.max_distance, len(EDGES) + 2))):
                cell = mutate(cell, rng)
            cell = canonical(cell)
            if self.admissible(cell, True):
                self.individuals.append(Individual(cell))

    # -- selection -------------------------------------------------------------
    def tournament(self, count: int, tournament_size: int, rng: random.Random,
                   eligible: list[int] | None = None) -> list[int]:
        """Indices of up to `count` distinct winners among `eligible` (default: all): each is the
        fittest of `tournament_size` entrants drawn from those not yet chosen; ties go to the
        entrant drawn first (random, never the list position)."""
        remaining = list(range(len(self.individuals))) if eligible is None else list(eligible)
        winners = []
        for _ in range(min(count, len(remaining))):
            entrants = rng.sample(remaining, min(tournament_size, len(remaining)))
            best = entrants[0]
            for index in entrants[1:]:
                if self.individuals[index].fitness > self.individuals[best].fitness:
                    best = index
            winners.append(best)
            remaining.remove(best)
        return winners

    def uniform_pick(self, count: int, rng: random.Random) -> list[int]:
        """`count` distinct indices drawn uniformly (before any fitness exists there is nothing to rank)."""
        return sorted(rng.sample(range(len(self.individuals)), min(count, len(self.individuals))))

    def supernet_pick(self, count: int, tournament_size: int, rng: random.Random, min_steps: int,
                      min_windows: int, uniform: bool, rotation: int = 0) -> list[int]:
        """Indices of the cells for the next window: first those that have not earned their fitness
        (fewest windows, then fewest steps, ties at random), so that every cell, the reference family
        included, is trained and judged before it can win, lose or be exported; the remaining slots by
        tournament, or uniformly before any fitness exists."""
        learning = [i for i, ind in enumerate(self.individuals) if not earned(ind, min_steps, min_windows)]
        keys = {i: (self.individuals[i].windows, self.individuals[i].count, rng.random()) for i in learning}
        chosen = sorted(learning, key=keys.__getitem__)[:count]
        rest = [i for i in range(len(self.individuals)) if i not in chosen]
        if len(chosen) < count and rest:
            missing = min(count - len(chosen), len(rest))
            chosen += (rng.sample(rest, missing) if uniform else
                       self.tournament(missing, tournament_size, rng, rest))
        return chosen

    def mean_count(self) -> float:
        return sum(individual.count for individual in self.individuals) / max(len(self.individuals), 1)

    # -- step 4: regeneration ----------------------------------------------------
    def write_back(self, cells: list[Cell], new_fitness: list[float], counts: list[int], momentum: float,
                   window: bool = True, average: str = "momentum") -> None:
        """Eq. 5: alpha_pop <- m * alpha_old + (1 - m) * alpha_new for the supernet's cells, with m the
        `momentum` (`average="momentum"`) or n / (n + 1) after n windows (`"windows"`: the mean over the
        cell's windows; a child's inherited value gives way to its first own window); their training
        counts T are updated to the supernet's. `window`: fitness steps ran in this window (it counts)."""
        if average not in FITNESS_AVERAGES:
            raise AutospaceError(f"fitness average {average!r}; valid: {', '.join(FITNESS_AVERAGES)}")
        position = {individual.cell: index for index, individual in enumerate(self.individuals)}
        for cell, fitness, count in zip(cells, new_fitness, counts):
            index = position[cell]
            old = self.individuals[index]
            if not window:
                self.individuals[index] = replace(old, count=count)
                continue
            m = momentum if average == "momentum" else old.windows / (old.windows + 1)
            self.individuals[index] = replace(old, fitness=m * old.fitness + (1.0 - m) * fitness, count=count,
                                              windows=old.windows + 1)

    def regenerate(self, offspring: int, tournament_size: int, max_age: int, min_steps: int,
                   constrain_to_reference: bool, rng: random.Random, min_windows: int = 0) -> list[Individual]:
        """Replace up to `offspring` individuals by children; returns the children.

        Leaving: first those past `max_age` (oldest first), then the weakest trained ones
        (`earned`: count >= `min_steps`, windows >= `min_windows`); reference-family members never
        leave. No more children than `offspring` less the cells still waiting to earn their fitness
        (the supernet judges those first; more children would only queue). Parents: tournament
        winners among the trained survivors. A child is one of the parent's admissible
        neighbours drawn uniformly; it starts untrained, with the parent's fitness pulled
        halfway to the population mean. Everyone else ages by one regeneration."""
        trained = [i for i, individual in enumerate(self.individuals) if earned(individual, min_steps, min_windows)]
        offspring = max(0, offspring - (len(self.individuals) - len(trained))) if min_windows else offspring
        removable = [i for i, individual in enumerate(self.individuals) if not individual.reference]
        old = sorted((i for i in removable if self.individuals[i].age > max_age),
                     key=lambda i: -self.individuals[i].age)
        weak = sorted((i for i in removable if i in trained and i not in old),
                      key=lambda i: (self.individuals[i].fitness, -self.individuals[i].age))
        leaving = (old + weak)[:offspring]
        parents = [i for i in trained if i not in leaving]
        mean_fitness = sum(ind.fitness for ind in self.individuals) / max(len(self.individuals), 1)
        children: list[Individual] = []
        taken = {ind.cell for ind in self.individuals}  # a planned leaver may stay (fewer children)
        attempts = 0
        while parents and len(children) < len(leaving) and attempts < 4 * offspring + 8:
            attempts += 1
            parent = self.individuals[self.tournament(1, tournament_size, rng, parents)[0]]
            options = [cell for cell in neighbours(parent.cell)
                       if cell not in taken and self._admissible_child(cell, constrain_to_reference)]
            if not options:
                continue
            child = rng.choice(options)
            taken.add(child)
            fitness = parent.fitness + CHILD_FITNESS_SHRINK * (mean_fitness - parent.fitness)
            children.append(Individual(child, fitness=fitness))
        leaving = leaving[:len(children)]  # the population keeps its size
        self.individuals = [replace(ind, age=ind.age + 1) for i, ind in enumerate(self.individuals)
                            if i not in leaving] + children
        return children

    def _admissible_child(self, cell: Cell, constrain_to_reference: bool) -> bool:
        if cell.is_empty() or not self.budget.admits(cell, self.madds(cell), self.latency_ms(cell)):
            return False
        return not (constrain_to_reference and hamming(cell, self.reference) > self.max_distance)

    def top(self, count: int, min_steps: int = 1, min_windows: int = 0) -> list[Individual]:
        """The `count` fittest cells, trained ones (`earned`) first: an untrained cell's fitness is
        only inherited."""
        ranked = sorted(self.individuals, key=lambda ind: (earned(ind, max(min_steps, 1), min_windows),
                                                           ind.fitness), reverse=True)
        return ranked[:count]

    def exported(self, count: int, min_steps: int, with_reference: bool,
                 with_family: bool = False, min_windows: int = 0) -> list[Individual]:
        """Step 5: the top `count` cells, plus the scaled reference (`with_reference`) when it is not
        among them, so a search in the learned space can always pick the prior; with `with_family`,
        also the reference at every expansion ratio, over the layer's cap too, so a search under the
        network's budget can move cost between layers as it can in the manual space (a member the
        population never held comes untrained: fitness 0, count 0)."""
        chosen = self.top(count, min_steps, min_windows)
        if with_reference and all(ind.cell != self.budget.scaled_reference for ind in chosen):
            chosen += [ind for ind in self.individuals if ind.cell == self.budget.scaled_reference]
        if with_family:
            held = {ind.cell: ind for ind in self.individuals}
            listed = {ind.cell for ind in chosen}
            chosen += [held.get(cell, Individual(cell, reference=True))
                       for cell in reference_family(self.budget.scaled_reference) if cell not in listed]
        return chosen

    # -- checkpointing -------------------------------------------------------------
    def state(self) -> list[dict]:
        from autospace.arch.codec import cell_to_dict

        return [{"cell": cell_to_dict(i.cell), "fitness": i.fitness, "age": i.age, "count": i.count,
                 "reference": i.reference, "windows": i.windows} for i in self.individuals]

    def load_state(self, state: list[dict]) -> None:
        from autospace.arch.codec import block_from_dict

        self.individuals = [
            Individual(block_from_dict({"type": "cell", **entry["cell"]}).cell, entry["fitness"],
                       entry["age"], entry["count"], bool(entry.get("reference", False)),
                       int(entry.get("windows", 0)))
            for entry in state
        ]

    def band_state(self) -> list:
        """What initialisation may have widened (delta, the band): saved beside the individuals."""
        return [self.max_distance, self.budget.floor, self.budget.cap]

    def load_band_state(self, band: list) -> None:
        distance, floor, cap = band
        self.max_distance, self.budget = distance, replace(self.budget, floor=floor, cap=cap)
