"""ProxylessNAS binary gates over a layer's candidate cells (DESIGN 2.3, steps 2-3).

A `GatedCellLayer` holds M candidate cells (modules from a `CellWeightBank`)
and their fitness alpha. Its output is the fitness-weighted sum
y = sum_i p_i out_i with p = softmax(alpha) (Eq. 3), evaluated with binary
gates so that a batch runs one cell (weight step) or two (fitness step).
The gate itself, `gated_output` (and `rescale_pair` after an architecture
step), is shared with the listed-space `BlockSupernet`, whose strategies own
their logits.

Path sampling happens on the host, from host probabilities and a CPU
`torch.Generator`, so it never waits for the device.
"""

from __future__ import annotations

from typing import Callable, Sequence

import torch
from torch import nn

from autospace.arch.cell import Cell
from autospace.errors import AutospaceError
from autospace.nn.weight_bank import CellWeightBank

Path = tuple[tuple[int, ...], int]  # (active candidate indices, chosen candidate index)


def _as_list(probabilities) -> list[float]:
    if isinstance(probabilities, torch.Tensor):
        if probabilities.dim() != 1:
            raise AutospaceError(f"probabilities must be 1-D; got shape {tuple(probabilities.shape)}")
        probabilities = probabilities.detach().to("cpu", torch.float64).tolist()
    values = [float(p) for p in probabilities]
    if not values or min(values) < 0 or not sum(values) > 0:
        raise AutospaceError(f"probabilities must be non-negative with a positive sum; got {values}")
    return values


def pick(weights: Sequence[float], uniform: float) -> int:
    """Inverse-CDF draw: the index i with cumsum(w)[i-1] <= uniform * sum(w) < cumsum(w)[i]."""
    target = uniform * sum(weights)
    total = 0.0
    for index, weight in enumerate(weights):
        total += weight
        if target < total:
            return index
    return max(i for i, w in enumerate(weights) if w > 0)  # rounding at the top end


def single_from_uniform(probabilities: Sequence[float], uniform: float) -> Path:
    chosen = pick(probabilities, uniform)
    return (chosen,), chosen


def pair_from_uniforms(probabilities: Sequence[float], uniforms: Sequence[float]) -> Path:
    """Two distinct paths by p without replacement, then one of them by the pair-renormalised p."""
    if len(probabilities) == 1:
        return (0,), 0
    first = pick(probabilities, uniforms[0])
    rest = [0.0 if i == first else p for i, p in enumerate(probabilities)]
    if not sum(rest) > 0:
        raise AutospaceError(f"two-path sampling needs two paths of non-zero probability; got {list(probabilities)}")
    second = pick(rest, uniforms[1])
    p_first, p_second = probabilities[first], probabilities[second]
    chosen = first if uniforms[2] * (p_first + p_second) < p_first else second
    return (min(first, second), max(first, second)), chosen


def sample_single(probabilities, generator: torch.Generator) -> int:
    """One path index drawn by `probabilities` (weight step). `generator`: a CPU generator."""
    values = _as_list(probabilities)
    return single_from_uniform(values, torch.rand(1, generator=generator, dtype=torch.float64).item())[1]


def sample_pair(probabilities, generator: torch.Generator) -> Path:
    """ProxylessNAS "two" mode: ((a, b), chosen) with a < b drawn by p without replacement and
    `chosen` in {a, b} drawn by p_a / (p_a + p_b). With a single path: ((0,), 0)."""
    values = _as_list(probabilities)
    return pair_from_uniforms(values, torch.rand(3, generator=generator, dtype=torch.float64).tolist())


def _check_path(count: int, active: tuple[int, ...], chosen: int) -> None:
    if not active or len(set(active)) != len(active) or chosen not in active:
        raise AutospaceError(f"active paths {active} must be distinct and include the chosen path {chosen}")
    if not all(0 <= index < count for index in active):
        raise AutospaceError(f"active paths {active} must be indices in [0, {count}) (one per candidate)")


def gated_output(modules: Sequence[Callable], x, active: tuple[int, ...], chosen: int,
                 logits: torch.Tensor | None, share_subcomputations: bool = True) -> torch.Tensor:
    """The ProxylessNAS binary-gate output of one layer with candidates `modules`.

    - `active == (chosen,)`: `modules[chosen](x)`; `logits` is not used (may be None).
    - `len(active) >= 2`: every active candidate runs, all but `chosen` under `no_grad`;
      p = softmax(logits[active]) and y = out_chosen + sum_j (p_j - p_j.detach()) out_j.
      The value is the chosen output exactly; dL/dlogits_i = sum_j <dL/dy, out_j> p_j (delta_ij - p_i)
      over the active i (zero elsewhere): exact for a loss linear in y, and unbiased when
      chosen ~ p and dL/dy is affine in y.
    - `share_subcomputations`: candidates with a `forward_sharing(x, memo)` method (cells from one
      weight bank) compute a bank module applied to the same tensor once per step: the chosen
      candidate runs first and the others reuse its input conv and common node-0 edges. Values
      and gradients are unchanged; a shared BN layer updates its running statistics once per
      step instead of once per candidate that reads it.
    """
    active = tuple(active)
    _check_path(len(modules), active, chosen)
    if len(active) == 1:
        return modules[chosen](x)
    if logits is None:
        raise AutospaceError(f"active paths {active}: a multi-path step needs the layer's logits; got None")
    if logits.dim() != 1 or logits.shape[0] != len(modules):
        raise AutospaceError(
            f"logits must have shape ({len(modules)},), one per candidate; got {tuple(logits.shape)}")
    memo = {} if share_subcomputations else None

    def run(module):
        sharing = memo is not None and hasattr(module, "forward_sharing")
        return module.forward_sharing(x, memo) if sharing else module(x)

    by_index = {chosen: run(modules[chosen])}  # first, so the others reuse its intermediate results
    with torch.no_grad():
        for index in active:
            if index != chosen:
                by_index[index] = run(modules[index]).detach()
    outputs = [by_index[index] for index in active]
    p = torch.softmax(logits[list(active)], 0)
    gates = p - p.detach()  # value 0: y equals the chosen output exactly; gradient dp/dlogits
    y = outputs[active.index(chosen)]
    for gate, out in zip(gates, outputs):
        y = y + gate * out
    return y


@torch.no_grad()
def rescale_pair(logits: torch.Tensor, old_logits: torch.Tensor, active: tuple[int, ...]) -> None:
    """ProxylessNAS, after an architecture step: shift `logits[active]` (in place) by one offset
    so that their logsumexp equals that of `old_logits[active]`; the probabilities of the
    other candidates then stay what they were before the step. No-op for a single path."""
    if len(active) < 2:
        return
    index = list(active)
    new = logits[index]
    old = old_logits.detach()[index].to(new)
    offset = torch.logsumexp(new, 0) - torch.logsumexp(old, 0)
    logits[index] -= offset


class GatedCellLayer(nn.Module):
    """One searchable supernet layer: M cells from `bank` and their fitness alpha (Parameter, (M,)).

    `forward(x, active, chosen)`:
    - `active == (chosen,)` (weight step): runs that one cell; alpha is not involved.
    - `len(active) >= 2` (fitness step: two; `tuple(range(M))` for analysis): p = softmax(alpha[active]);
      every active cell runs, all but `chosen` under `no_grad` (detached), and
      y = sum_j g_j out_j with straight-through gates g = onehot(chosen) + p - p.detach().
      The value is the chosen cell's output; dL/dalpha_i = sum_j dL/dg_j p_j (delta_ij - p_i)
      with dL/dg_j = <dL/dy, out_j>: the ProxylessNAS binary-gate estimator, exact for a loss
      linear in y (and unbiased when chosen ~ p and dL/dy is affine in y).

    Only `alpha` is registered here: the cell modules belong to the bank (register the bank
    elsewhere, e.g. in `CellSupernet.banks`, so `train()`/`to()`/`state_dict()` reach them).
    """

    def __init__(self, bank: CellWeightBank, cells: Sequence[Cell], fitness: Sequence[float],
                 generator: torch.Generator | None = None):
        super().__init__()
        cells = tuple(cells)
        if not cells:
            raise AutospaceError(f"layer {bank.slot.index}: give at least one candidate cell")
        if len(fitness) != len(cells):
            raise AutospaceError(
                f"layer {bank.slot.index}: {len(cells)} cells but {len(fitness)} fitness values; give one per cell")
        self.cells = cells
        object.__setattr__(self, "bank", bank)  # a reference, not a submodule (no duplicate state)
        self.cell_modules = [bank.cell_module(cell, generator) for cell in cells]
        values = torch.tensor([float(value) for value in fitness], dtype=torch.float32)
        if not torch.isfinite(values).all():
            raise AutospaceError(f"layer {bank.slot.index}: fitness values must be finite; got {list(fitness)}")
        self.alpha = nn.Parameter(values.to(bank.device_anchor.device))

    @property
    def num_cells(self) -> int:
        return len(self.cells)

    def probabilities(self) -> torch.Tensor:
        return torch.softmax(self.alpha.detach().float(), 0)

    # Whether a fitness step's cells reuse each other's shared bank results (`gated_output`);
    # bench/evolve_speed.py turns it off to measure what it saves.
    share_subcomputations = True

    def forward(self, x, active: tuple[int, ...], chosen: int):
        return gated_output(self.cell_modules, x, active, chosen, self.alpha, self.share_subcomputations)

    def mixed_output(self, x):
        """The exact Eq. 3 output sum_i softmax(alpha)_i out_i over all M cells (analysis, tests)."""
        p = torch.softmax(self.alpha, 0)
        y = None
        for index, module in enumerate(self.cell_modules):
            term = p[index] * module(x)
            y = term if y is None else y + term
        return y

    @torch.no_grad()
    def rescale_after_step(self, old_alpha: torch.Tensor, active: tuple[int, ...]) -> None:
        """ProxylessNAS: shift the updated alphas of `active` by one offset so that their logsumexp
        equals the one before the step; the other cells' probabilities stay what they were."""
        rescale_pair(self.alpha, old_alpha, active)
