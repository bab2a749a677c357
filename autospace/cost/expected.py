"""Expected MAdds (or latency) of a network drawn from per-layer categorical distributions:
E = fixed + sum_l sum_i p_li * cost_li, linear in the probabilities and differentiable
(ProxylessNAS's expected latency, with MAdds). Used by the searches and by NSE."""

from __future__ import annotations

from typing import Sequence

import torch
from torch import Tensor

from autospace.errors import AutospaceError


def check_candidates(candidate_madds: Sequence[Sequence[int]], fixed_madds: int) -> None:
    if len(candidate_madds) == 0:
        raise AutospaceError("candidate_madds is empty; give one list of candidate MAdds per searchable layer")
    for layer, values in enumerate(candidate_madds):
        if len(values) == 0:
            raise AutospaceError(f"candidate_madds[{layer}] is empty; give at least one candidate's MAdds")
        if any(value < 0 for value in values):
            raise AutospaceError(f"candidate_madds[{layer}] = {list(values)} has a negative entry; MAdds are >= 0")
    # The fixed part alone may be negative: a latency table's calibration (intercept + slope x entries) puts its
    # intercept, often below zero, on the fixed part; only a network's whole cost must not be.
    cheapest = fixed_madds + sum(min(values) for values in candidate_madds)
    if cheapest < 0:
        raise AutospaceError(f"the cheapest network costs {cheapest} (fixed part {fixed_madds} plus each layer's "
                             f"cheapest candidate); a cost must be >= 0")




def expected_madds(probabilities: Sequence[Tensor], candidate_madds: Sequence[Sequence[int]],
                   fixed_madds: int) -> Tensor:
    """fixed + sum_l sum_i p_li * madds_li: a 0-d tensor in the probabilities' dtype and device,
    differentiable with respect to them. One host-to-device copy of all candidate MAdds."""
    check_candidates(candidate_madds, fixed_madds)
    if len(probabilities) != len(candidate_madds):
        raise AutospaceError(f"{len(probabilities)} probability vectors but {len(candidate_madds)} layers of "
                             f"candidate MAdds; give one of each per searchable layer")
    for layer, (p, values) in enumerate(zip(probabilities, candidate_madds)):
        if p.dim() != 1 or p.numel() != len(values):
            raise AutospaceError(f"layer {layer}: probabilities of shape {tuple(p.shape)} but {len(values)} "
                                 f"candidates; give a ({len(values)},) vector")
    flat = torch.cat(list(probabilities))
    if not flat.is_floating_point():
        raise AutospaceError(f"probabilities must be a floating-point tensor; got {flat.dtype}")
    madds = torch.tensor([float(v) for values in candidate_madds for v in values], dtype=flat.dtype,
                         device=flat.device)
    return float(fixed_madds) + torch.dot(flat, madds)
