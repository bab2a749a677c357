"""The optimiser's parameter groups and the learning-rate schedule.

The schedule is a pure function of the step, so a resumed run needs no
scheduler state: the loop sets each group's lr from `learning_rate_at`.
"""

from __future__ import annotations

import math

import torch
from torch import nn


def parameter_groups(model: nn.Module, weight_decay: float) -> list[dict]:
    """Two SGD groups: conv/linear weights decay; batch-norm weights and every bias do not.

    Decaying BN scales and biases only shrinks them toward a worse optimum
    (they carry no capacity to regularise), the common practice since
    "Bag of Tricks" (He et al. 2019). One-dimensional parameters are exactly
    the BN weights and the biases in our networks.
    """
    decay, no_decay = [], []
    for parameter in model.parameters():
        if not parameter.requires_grad:
            continue
        (decay if parameter.dim() > 1 else no_decay).append(parameter)
    return [
        {"params": decay, "weight_decay": weight_decay, "name": "decay"},
        {"params": no_decay, "weight_decay": 0.0, "name": "no_decay"},
    ]


def fast_update_options(parameters) -> dict:
    """Keyword arguments for torch.optim.SGD/Adam: `fused=True` when every parameter is on CUDA.

    The fused kernels update every parameter in one or two launches instead of
    several per tensor, which matters for small mobile networks whose steps are
    launch-bound. Elsewhere torch's default (foreach where supported) is kept,
    so CPU results stay bit for bit what they were.
    """
    devices = {parameter.device.type for parameter in parameters}
    return {"fused": True} if devices == {"cuda"} else {}


def make_optimizer(model: nn.Module, lr: float, momentum: float, nesterov: bool,
                   weight_decay: float) -> torch.optim.SGD:
    return torch.optim.SGD(parameter_groups(model, weight_decay), lr=lr, momentum=momentum,
                           nesterov=nesterov and momentum > 0, **fast_update_options(model.parameters()))


def learning_rate_at(step: int, total_steps: int, warmup_steps: int, peak: float) -> float:
    """lr for optimiser step `step` (0-based): linear warm-up to `peak`, then cosine to 0.

    Warm-up: peak * (step + 1) / warmup_steps for step < warmup_steps (the
    first step already moves, at peak / warmup_steps). Then
    peak * (1 + cos(pi * t)) / 2 with t = (step - warmup_steps) / (total_steps - warmup_steps),
    so the last step (t -> 1) runs at a small but non-zero lr.
    """
    if step < warmup_steps:
        return peak * (step + 1) / warmup_steps
    decay_steps = max(total_steps - warmup_steps, 1)
    progress = min((step - warmup_steps) / decay_steps, 1.0)
    return peak * 0.5 * (1.0 + math.cos(math.pi * progress))
