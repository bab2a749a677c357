"""SPOS evolutionary search under a MAdds budget (DESIGN 2.4), generic over the architecture encoding.

The search sees an architecture only through callables: `sample`, `mutate`,
`crossover` (the encoding), `evaluate` (e.g. held-out accuracy of the supernet
path after BN recalibration) and `madds`. Architectures must be hashable: every
evaluated one is cached by its value, so none is evaluated twice.

Generation 0 is the initial population (rejection-sampled within the budget);
generations 1..G each keep the top-k, add mutations and crossovers of top-k
members, and evaluate the new ones. Because parents stay in the population, the
top-k is always the best k of everything evaluated so far.
"""

from __future__ import annotations

import math
import random
from dataclasses import asdict, dataclass, field
from typing import Callable, Hashable, Sequence, TypeVar

from autospace.errors import AutospaceError

Arch = TypeVar("Arch", bound=Hashable)
STATE_FORMAT = "autospace.evolution-state/1"
_MUST_MATCH_ON_RESUME = ("population", "top", "mutations", "crossovers", "mutation_probability")


def _help(text: str, default):
    return field(default=default, metadata={"help": text})


@dataclass(frozen=True)
class EvolutionConfig:
    """SPOS's settings (Guo et al. 2020): population 50, top 10, 25 + 25 children, 20 generations."""

    population: int = _help("architectures in the initial population", 50)
    top: int = _help("best architectures kept each generation; parents of the children", 10)
    mutations: int = _help("children made by mutating a random top member, per generation", 25)
    crossovers: int = _help("children made by crossing two random top members, per generation", 25)
    generations: int = _help("rounds of mutation and crossover after the initial population", 20)
    mutation_probability: float = _help("chance that a mutation changes each layer", 0.1)
    max_tries: int = _help("draws allowed for one new architecture (within budget, not seen before) "
                           "before giving up on it", 1000)

    def __post_init__(self) -> None:
        for name in ("population", "top", "max_tries"):
            if getattr(self, name) < 1:
                raise AutospaceError(f"evolution {name} must be >= 1; got {getattr(self, name)}")
        for name in ("mutations", "crossovers", "generations"):
            if getattr(self, name) < 0:
                raise AutospaceError(f"evolution {name} must be >= 0; got {getattr(self, name)}")
        if self.top > self.population:
            raise AutospaceError(f"evolution top ({self.top}) must not exceed population ({self.population})")
        if not 0 <= self.mutation_probability <= 1:
            raise AutospaceError(f"mutation_probability must be in [0, 1]; got {self.mutation_probability}")


def _rng_state(rng: random.Random) -> list:
    version, internal, gauss = rng.getstate()
    return [version, list(internal), gauss]  # lists: survives a JSON round trip


def _set_rng_state(rng: random.Random, state: Sequence) -> None:
    version, internal, gauss = state
    rng.setstate((version, tuple(internal), gauss))


def evolutionary_search(sample: Callable[[random.Random], Arch],
                        mutate: Callable[[Arch, random.Random, float], Arch],
                        crossover: Callable[[Arch, Arch, random.Random], Arch],
                        evaluate: Callable[[Arch], float],
                        madds: Callable[[Arch], int],
                        budget: int,
                        config: EvolutionConfig,
                        rng: random.Random,
                        on_generation: Callable[[int, dict], None] | None = None,
                        state: dict | None = None) -> tuple[Arch, float, list[dict]]:
    """Best architecture within `budget` MAdds, its score and the per-generation history
    [{generation, best_score, mean_top_score, best_arch}] (generation 0: the initial population).

    After each generation `on_generation(generation, state)` receives a plain-python state
    (architectures as given, lists and numbers otherwise): save it (e.g. `torch.save`) and pass it
    back as `state=` with the same callables, budget and config to continue exactly where the run
    stopped; the result equals that of an uninterrupted run. A larger `config.generations` than the
    saved run's extends it. `rng` drives every random choice; its state is part of `state`.
    """
    if not budget > 0:
        raise AutospaceError(f"MAdds budget must be positive, e.g. 60M; got {budget}")
    scores: dict = {}  # arch -> score, in evaluation order

    def score_of(arch) -> float:
        if arch not in scores:
            value = float(evaluate(arch))
            if math.isnan(value):
                raise AutospaceError(f"evaluate returned NaN for architecture {arch!r}; scores must be numbers")
            scores[arch] = value
        return scores[arch]

    def draw_new(make: Callable[[], Arch], taken: set):
        """A new architecture within budget, or None after max_tries draws."""
        for _ in range(config.max_tries):
            arch = make()
            if arch in scores or arch in taken:
                continue
            if madds(arch) <= budget:
                return arch
        return None

    def ranked(population: list) -> list:
        return sorted(population, key=lambda arch: -scores[arch])  # stable: earlier members win ties

    if state is None:
        population, history, start = [], [], 0
        taken: set = set()
        while len(population) < config.population:
            arch = draw_new(lambda: sample(rng), taken)
            if arch is None:
                raise AutospaceError(
                    f"found only {len(population)} distinct architectures within the budget of "
                    f"{budget / 1e6:.1f}M MAdds for a population of {config.population} (gave up after "
                    f"{config.max_tries} draws in a row); the budget may be too tight for this space: raise "
                    f"the target MAdds, or lower the evolution population")
            population.append(arch)
            taken.add(arch)
        for arch in population:
            score_of(arch)
    else:
        population, history, start = _restore(state, scores, rng, budget, config)

    def record(generation: int, population: list) -> None:
        top = ranked(population)[: config.top]
        history.append({"generation": generation, "best_score": scores[top[0]],
                        "mean_top_score": sum(scores[a] for a in top) / len(top), "best_arch": top[0]})
        if on_generation is not None:
            on_generation(generation, {
                "format": STATE_FORMAT, "generation": generation, "population": list(population),
                "cache": [[arch, score] for arch, score in scores.items()], "rng": _rng_state(rng),
                "history": [dict(entry) for entry in history], "budget": int(budget), "config": asdict(config)})

    if state is None:
        record(0, population)
    for generation in range(start + 1, config.generations + 1):
        parents = ranked(population)[: config.top]
        children: list = []
        taken = set()
        for _ in range(config.mutations):
            child = draw_new(lambda: mutate(rng.choice(parents), rng, config.mutation_probability), taken)
            if child is not None:
                children.append(child)
                taken.add(child)
        for _ in range(config.crossovers):
            def cross():
                first, second = rng.sample(parents, 2) if len(parents) > 1 else (parents[0], parents[0])
                return crossover(first, second, rng)
            child = draw_new(cross, taken)
            if child is not None:
                children.append(child)
                taken.add(child)
        for child in children:
            score_of(child)
        population = parents + children
        record(generation, population)

    best = max(scores, key=lambda arch: scores[arch])  # first evaluated wins ties
    return best, scores[best], history


def _restore(state: dict, scores: dict, rng: random.Random, budget: int, config: EvolutionConfig):
    if state.get("format") != STATE_FORMAT:
        raise AutospaceError(f"evolution state has format {state.get('format')!r}, expected {STATE_FORMAT!r}")
    if int(state["budget"]) != int(budget):
        raise AutospaceError(f"evolution state was saved with budget {state['budget']} MAdds, not {budget}; "
                             f"resume with the same budget")
    for name in _MUST_MATCH_ON_RESUME:
        if state["config"][name] != getattr(config, name):
            raise AutospaceError(f"evolution state was saved with {name}={state['config'][name]}, not "
                                 f"{getattr(config, name)}; resume with the same settings")
    for arch, score in state["cache"]:
        scores[arch] = float(score)
    _set_rng_state(rng, state["rng"])
    return list(state["population"]), [dict(entry) for entry in state["history"]], int(state["generation"])


def index_choice_operators(choices_per_layer: Sequence[int]):
    """(sample, mutate, crossover) for architectures that are tuples of candidate indices, one per layer:
    uniform sampling; mutation moves each layer, with probability p, to a different index; crossover
    takes each layer from either parent with probability 1/2."""
    from autospace.search.distribution import check_choices_per_layer

    choices = check_choices_per_layer(choices_per_layer)

    def check(arch) -> None:
        if len(arch) != len(choices) or any(not 0 <= i < n for i, n in zip(arch, choices)):
            raise AutospaceError(f"architecture {tuple(arch)} does not fit choices per layer {choices}")

    def sample(rng: random.Random) -> tuple[int, ...]:
        return tuple(rng.randrange(count) for count in choices)

    def mutate(arch, rng: random.Random, probability: float) -> tuple[int, ...]:
        check(arch)
        out = []
        for index, count in zip(arch, choices):
            if count > 1 and rng.random() < probability:
                other = rng.randrange(count - 1)
                index = other + 1 if other >= index else other
            out.append(index)
        return tuple(out)

    def crossover(first, second, rng: random.Random) -> tuple[int, ...]:
        check(first)
        check(second)
        return tuple(a if rng.random() < 0.5 else b for a, b in zip(first, second))

    return sample, mutate, crossover


def index_sampler_within_budget(candidate_madds, fixed_madds: int, budget: int, rejection_tries: int = 50):
    """A sampler of index tuples under `budget`: uniform draws first (SPOS's rejection sampling);
    when the budget is tight and they keep failing, a sequential draw that visits the layers in
    random order and picks uniformly among the candidates that still leave room for the cheapest
    choice of every layer not yet drawn (always succeeds when budget >= the space's minimum)."""
    tables = [list(map(int, table)) for table in candidate_madds]
    cheapest = [min(table) for table in tables]

    def sample(rng: random.Random) -> tuple[int, ...]:
        for _ in range(rejection_tries):
            choice = tuple(rng.randrange(len(table)) for table in tables)
            if fixed_madds + sum(table[i] for table, i in zip(tables, choice)) <= budget:
                return choice
        order = list(range(len(tables)))
        rng.shuffle(order)
        remaining = budget - fixed_madds - sum(cheapest)
        choice = [0] * len(tables)
        for layer in order:
            allowed = [i for i, madds in enumerate(tables[layer]) if madds - cheapest[layer] <= remaining]
            choice[layer] = rng.choice(allowed)
            remaining -= tables[layer][choice[layer]] - cheapest[layer]
        return tuple(choice)

    return sample
