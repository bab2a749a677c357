"""The per-layer subsets NSE searches from its operator pool (DESIGN 2.5).

The pool of a layer (`autospace.arch.pools.layer_pools`) is every block the layer may
ever try: inverted residuals with kernel 3/5/7/9 x expansion 1/3/6, dilated kernel-3
variants, and (our extension) the open-space cells of a space.json, e.g. the space a previous `autospace evolve` learned.
A subset of at most K of them is searched at once; after a round the survivors stay and
the subset is refilled from the operators the layer has never tried, so no operator is
tried twice and the search ends when every layer's pool is used up.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Sequence

from autospace.arch.blocks import Block, block_to_string
from autospace.errors import AutospaceError


@dataclass
class LayerSubset:
    """One layer's pool, the subset searched now and every operator it has ever tried."""

    pool: list[Block]
    subset: list[Block] = field(default_factory=list)
    tried: set = field(default_factory=set)

    def untried(self) -> list[Block]:
        return [block for block in self.pool if block not in self.tried]

    def refill(self, size: int, rng: random.Random) -> list[Block]:
        """Add untried operators (random order) until the subset holds `size`; returns the added ones."""
        candidates = self.untried()
        rng.shuffle(candidates)
        added = candidates[: max(size - len(self.subset), 0)]
        self.subset.extend(added)
        self.tried.update(added)
        return added

    def keep_only(self, kept: Sequence[Block]) -> list[Block]:
        """Keep the subset's operators in `kept` (subset order); returns the dropped ones."""
        kept = set(kept)
        dropped = [block for block in self.subset if block not in kept]
        self.subset = [block for block in self.subset if block in kept]
        return dropped

    def state(self) -> dict:
        names = [block_to_string(block) for block in self.pool]
        return {"subset": [names[self.pool.index(b)] for b in self.subset],
                "tried": sorted(names[self.pool.index(b)] for b in self.tried)}

    def load_state(self, state: dict) -> None:
        by_name = {block_to_string(block): block for block in self.pool}
        unknown = [name for name in state["subset"] + state["tried"] if name not in by_name]
        if unknown:
            raise AutospaceError(f"the checkpoint names operators {unknown[:3]} that are not in this run's pool; "
                                 f"resume with the same pool settings (pool, pool_irb, pool_dilated)")
        self.subset = [by_name[name] for name in state["subset"]]
        self.tried = {by_name[name] for name in state["tried"]}


def surviving_operators(subset: Sequence[Block], front_masks: Sequence[Sequence[int]],
                        probabilities: Sequence[float], threshold: float) -> list[Block]:
    """The operators of `subset` that an architecture of the Pareto front uses and whose
    sigmoid(alpha) is at least `threshold`; never none: if that leaves nothing, the front's
    most probable operator (or, without front use, the most probable one) stays."""
    used = sorted({index for mask in front_masks for index in mask})
    kept = [index for index in used if probabilities[index] >= threshold]
    if not kept and subset:
        pool = used or list(range(len(subset)))
        kept = [max(pool, key=lambda index: (probabilities[index], -index))]
    return [subset[index] for index in sorted(kept)]
