"""Loss and accuracy of a model on a set of uint8 images (test set, or a held-out split during search)."""

from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as functional
from torch import nn

from autospace.runtime.compiled import is_compiled, maybe_compile
from autospace.data import normalize_batch
from autospace.runtime.distributed import SINGLE_PROCESS, Distributed, all_reduce_sum, shard_range


def evaluate(
    model: nn.Module,
    images: torch.Tensor,
    labels: torch.Tensor,
    mean: Sequence[float],
    std: Sequence[float],
    batch_size: int = 512,
    autocast_dtype: torch.dtype | None = None,
    channels_last: bool = False,
    indices: torch.Tensor | None = None,
    distributed: Distributed = SINGLE_PROCESS,
    compile: str | bool = "off",
) -> tuple[float, float]:
    """(mean cross-entropy, accuracy as a fraction in [0, 1]) over `images[indices]` (default: all).

    Images are uint8 (N, C, H, W) on the model's device, normalised batch by
    batch. The model runs in eval mode (BN running statistics, no dropout) and
    is put back in the mode it was in. One device sync, at the end.

    Under torchrun (`distributed`) each rank evaluates its contiguous part of the
    images and the sums are all-reduced: every rank returns the same figures.

    `compile` (see `autospace.runtime.compiled`) compiles `model` first; a model that
    is already compiled (as the training loop passes it) stays as it is. A
    compiled model sees every batch at full size: the last, partial batch is
    padded with zero images whose outputs are dropped (in eval mode each
    image's output is independent of the others), so one graph serves all.
    """
    model = maybe_compile(model, compile, images.device)
    pad_last = is_compiled(model)
    was_training = model.training
    model.eval()
    device = images.device
    count = images.shape[0] if indices is None else indices.shape[0]
    first, last = shard_range(distributed, count)
    loss_sum = torch.zeros((), dtype=torch.float64, device=device)
    correct = torch.zeros((), dtype=torch.int64, device=device)
    try:
        with torch.no_grad():
            for start in range(first, last, batch_size):
                stop = min(start + batch_size, last)
                if indices is None:
                    batch_images, batch_labels = images[start:stop], labels[start:stop]
                else:
                    chosen = indices[start:stop]
                    batch_images, batch_labels = images[chosen], labels[chosen]
                missing = batch_size - batch_images.shape[0] if pad_last else 0
                if missing:
                    batch_images = torch.cat([batch_images, batch_images.new_zeros((missing, *batch_images.shape[1:]))])
                inputs = normalize_batch(batch_images, mean, std, channels_last=channels_last)
                with torch.autocast(device.type, dtype=autocast_dtype, enabled=autocast_dtype is not None):
                    logits = model(inputs)
                if missing:
                    logits = logits[: batch_labels.shape[0]]
                # Loss in fp32 whatever the autocast dtype: bf16 log-softmax loses digits.
                loss_sum += functional.cross_entropy(logits.float(), batch_labels, reduction="sum").double()
                correct += (logits.argmax(dim=1) == batch_labels).sum()
    finally:
        model.train(was_training)
    if count == 0:
        return float("nan"), float("nan")
    loss_sum = all_reduce_sum(distributed, loss_sum)
    correct = all_reduce_sum(distributed, correct)
    return loss_sum.item() / count, correct.item() / count
