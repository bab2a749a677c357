"""Batch-norm recalibration for one path of a weight-sharing supernet (DESIGN 2.4, SPOS).

The running statistics a supernet accumulates mix every path it trained, so
before a sampled path is evaluated its BN statistics are recomputed from a few
held-out batches (Guo et al., SPOS; once-for-all's `set_running_statistics`).
"""

from __future__ import annotations

import itertools
from typing import Callable, Iterable

import torch
from torch import nn

from autospace.runtime.compiled import maybe_compile, resolve_compile
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
                           forward: Callable[[torch.Tensor], torch.Tensor] | None = None,
                           compile: str | bool = "off") -> None:
    """Recompute the running statistics of every BatchNorm in `model` from `batches`.

    Each BN (with `track_running_stats`) is reset, switched to a cumulative average
    (`momentum=None`: after n batches its running mean is the mean of the n batch means,
    its running variance the mean of the n unbiased batch variances), and
    `forward(inputs)` runs on every batch (a tensor, or a tuple whose first item is the
    inputs) with `model` in train mode, without gradients. Afterwards every BN's momentum
    and every module's train/eval flag are what they were. A BN the forward never reaches
    keeps reset statistics (mean 0, variance 1), which is what its path would have anyway.

    `forward` defaults to `model` itself. `compile` (see `autospace.runtime.compiled`)
    compiles `model` for a fixed graph, a stand-alone network rather than a
    supernet path; it needs `forward=None`. The compiled path gives the same
    averages another way: BN's `momentum=None` reads its batch counter on the
    host (`float(num_batches_tracked)`, a graph break and a device sync per BN),
    so there every BN runs with momentum 1 (running statistics = this batch's)
    and the averages are summed on the device between batches.
    """
    mode = resolve_compile(compile, next(model.parameters(), torch.empty(0)).device)
    if mode is not None and forward is not None:
        raise AutospaceError("recalibrate_batch_norm compiles the model's own forward; with compile on, "
                             "leave forward=None (or compile your forward yourself and keep compile='off')")
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
            norm.momentum = None if mode is None else 1.0
        model.train(True)
        if mode is None:
            forward = model if forward is None else forward
            forward(_inputs(first))
            for batch in iterator:
                forward(_inputs(batch))
        else:
            _summed_recalibration(norms, maybe_compile(model, mode), first, iterator)
    finally:
        for norm, momentum in zip(norms, momenta):
            norm.momentum = momentum
        model.train(modes[0][1])  # through the model's own train() (e.g. a weight bank's cached cells)
        for module, flag in modes:
            module.training = flag


def _summed_recalibration(norms: list, compiled: Callable, first, rest: Iterable) -> None:
    """Every BN at momentum 1; the mean over batches of each batch's statistics, kept on the device."""
    means = [torch.zeros_like(norm.running_mean) for norm in norms]
    variances = [torch.zeros_like(norm.running_var) for norm in norms]
    count = 0
    for batch in itertools.chain([first], rest):
        # A BN the forward does not reach keeps (and adds) its reset statistics, as in the eager path.
        compiled(_inputs(batch))
        if norms:
            torch._foreach_add_(means, [norm.running_mean for norm in norms])
            torch._foreach_add_(variances, [norm.running_var for norm in norms])
        count += 1
    for norm, mean, variance in zip(norms, means, variances):
        norm.running_mean.copy_(mean / count)
        norm.running_var.copy_(variance / count)
        norm.num_batches_tracked.fill_(count)
