"""Counted params and MAdds of a built module, to cross-check the analytic tables.

MAdds = forward FLOPs / 2 as `torch.utils.flop_counter.FlopCounterMode` counts
them (convolutions and matrix products only).
"""

from __future__ import annotations

import torch
from torch.utils.flop_counter import FlopCounterMode


def counted_madds(module: torch.nn.Module, input_shape: tuple[int, ...]) -> int:
    was_training = module.training
    module.train(False)
    try:
        with torch.no_grad(), FlopCounterMode(display=False) as counter:
            module(torch.zeros(input_shape))
    finally:
        module.train(was_training)
    return counter.get_total_flops() // 2


def counted_params(module: torch.nn.Module) -> int:
    return sum(parameter.numel() for parameter in module.parameters())
