"""Multi-branch sampling for NSE (DESIGN 2.5): independent Bernoulli branches per layer.

Each candidate i of layer l is on with probability p_li = sigmoid(alpha_li), independently.
A layer's *mask* is the tuple of its active candidate indices (the supernet then outputs
the mean of those branches, plus the identity where the layer has a residual).

The architecture gradient of E_m[L(m)] needs no backward pass through the network: with
two masks m, m' drawn independently from the same distribution,

    g_li = 1/2 (m_li - m'_li) (L(m) - L(m'))

is an unbiased estimate of dE[L]/dalpha_li (the *two-subset estimator*). Proof: E[(m_i -
m'_i)(L - L')] = 2 Cov(m_i, L) = 2 p_i (1 - p_i) (E[L | m_i = 1] - E[L | m_i = 0]), and
dE[L]/dalpha_i = sigmoid'(alpha_i) (E[L | m_i = 1] - E[L | m_i = 0]) with sigmoid' = p (1 - p).
`tests/test_nse.py` checks it against the exact gradient of an enumerated toy layer.

Layers without a residual cannot be empty: a draw with no branch on turns on the
candidate of largest alpha (our choice; the estimator is exact on layers with a residual and
biased only by that rare fallback, probability prod_i (1 - p_i), on the others).

Sampling happens on the host from a CPU generator and host probabilities (the alphas are
a few dozen numbers and live on the CPU), so it never waits for the device.
"""

from __future__ import annotations

from typing import Sequence

import torch

from autospace.errors import AutospaceError

Mask = tuple[int, ...]


def sample_masks(probabilities: Sequence[torch.Tensor], generator: torch.Generator,
                 required: Sequence[bool]) -> list[Mask]:
    """One mask per layer: candidate i on when a uniform draw < p_i; a layer with `required[l]`
    and nothing on gets its most probable candidate."""
    if len(probabilities) != len(required):
        raise AutospaceError(f"{len(probabilities)} probability vectors for {len(required)} layers")
    masks = []
    for p, needs_one in zip(probabilities, required):
        p = p.detach().to("cpu", torch.float64)
        on = torch.rand(p.shape, generator=generator, dtype=torch.float64) < p
        mask = tuple(int(i) for i in torch.nonzero(on).flatten().tolist())
        if not mask and needs_one:
            mask = (int(torch.argmax(p)),)
        masks.append(mask)
    return masks


def mask_indicator(mask: Mask, size: int) -> torch.Tensor:
    """The 0/1 vector of a mask (float32, CPU)."""
    indicator = torch.zeros(size)
    if mask:
        indicator[list(mask)] = 1.0
    return indicator


def two_subset_gradient(first: Sequence[Mask], second: Sequence[Mask], loss_first: float, loss_second: float,
                        sizes: Sequence[int]) -> list[torch.Tensor]:
    """Per layer g = 1/2 (m - m') (L(m) - L(m')): an unbiased estimate of dE[L]/dalpha."""
    difference = float(loss_first) - float(loss_second)
    return [0.5 * difference * (mask_indicator(a, n) - mask_indicator(b, n)) for a, b, n in zip(first, second, sizes)]


def expected_branch_madds(probabilities: Sequence[torch.Tensor], candidate_madds: Sequence[Sequence[int]],
                          fixed_madds: int) -> torch.Tensor:
    """E[MAdds] = fixed + sum_l sum_i p_li madds_li: a multi-branch layer costs the sum of its
    branches, so the expectation is linear in the independent p_li (differentiable)."""
    from autospace.cost.expected import expected_madds

    return expected_madds(probabilities, candidate_madds, fixed_madds)


def squared_budget_penalty(expected: torch.Tensor, target: int, weight: float) -> torch.Tensor:
    """weight * ((E[MAdds] - target) / target)^2: NSE's (E[MAdds] - target)^2, measured in units of
    the target so that one weight means the same pull at 15M and at 600M MAdds."""
    if not target > 0:
        raise AutospaceError(f"target MAdds must be positive, e.g. 60M; got {target}")
    return weight * ((expected - float(target)) / float(target)) ** 2


def mask_madds(masks: Sequence[Mask], candidate_madds: Sequence[Sequence[int]], fixed_madds: int) -> int:
    """MAdds of the multi-branch network of `masks`: fixed plus every active candidate's MAdds."""
    return int(fixed_madds) + sum(int(row[i]) for mask, row in zip(masks, candidate_madds) for i in mask)


def latency_penalty(expected_madds, probabilities, latency: tuple, config):
    """NSE's squared term on expected latency, lambda * ((E[lat] - T) / T)^2, with MAdds as a cap:
    lambda * max(0, E[MAdds] / budget - 1)^2."""
    import torch

    from autospace.cost.expected import expected_madds as expected_cost

    rows, fixed = latency
    target = 1000 * config.target_latency_ms
    expected = expected_cost(probabilities, rows, fixed)
    over = torch.relu(expected_madds / float(config.budget_madds) - 1.0)
    return config.madds_weight * (((expected - target) / target) ** 2 + over ** 2)
