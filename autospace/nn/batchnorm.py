"""Batch-norm recalibration for one path of a weight-sharing supernet (DESIGN 2.4, SPOS).

The running statistics a supernet accumulates mix every path it trained, so
before a sampled path is evaluated its BN statistics are recomputed from a few
held-out batches (Guo et al., SPOS; once-for-all's `set_running_statistics`).
"""

from __future__ import annotations

from typing import Callable, Iterable

import torch
from torch import nn

from autospace.errors import AutospaceError

__all__ = ["recalibrate_batch_norm"]


def _inputs(batch):
    if isinstance(batch, torch.Tensor):
        return batch
    if isinstance(batch, (tuple, list)) and batch:
        return batch[0]
    raise AutospaceError(f"recalibration batches must be tensors or (inputs, ...) tuples; got {type(batch).__name__}")


@torch.no_grad()
def recalibrate_batch_norm(model: nn.Module, batches: Iterable,
                           forward: Callable[[torch.Tensor], torch.Tensor]) -> None:
    """Recompute the running statistics of every BatchNorm in `model` from `batches`.

    Each BN (with `track_running_stats`) is reset, switched to a cumulative average
    (`momentum=None`: after n batches its running mean is the mean of the n batch means,
    its running variance the mean of the n unbiased batch variances), and
    `forward(inputs)` runs on every batch (a tensor, or a tuple whose first item is the
    inputs) with `model` in train mode, without gradients. Afterwards every BN's momentum
    and every module's train/eval flag are what they were. A BN the forward never reaches
    keeps reset statistics (mean 0, variance 1), which is what its path would have anyway.
    """
    iterator = iter(batches)
    first = next(iterator, None)
    if first is None:
        raise AutospaceError("recalibrate_batch_norm got no batches; give at least one (held-out) batch")
    norms = [module for module in model.modules()
             if isinstance(module, nn.modules.batchnorm._BatchNorm) and module.track_running_stats]
    momenta = [norm.momentum for norm in norms]
    modes = [(module, module.training) for module in model.modules()]
    try:
        for norm in norms:
            norm.reset_running_stats()
            norm.momentum = None
        model.train(True)
        forward(_inputs(first))
        for batch in iterator:
            forward(_inputs(batch))
    finally:
        for norm, momentum in zip(norms, momenta):
            norm.momentum = momentum
        model.train(modes[0][1])  # through the model's own train() (e.g. a weight bank's cached cells)
        for module, mode in modes:
            module.training = mode
