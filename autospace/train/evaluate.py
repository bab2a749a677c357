"""Loss and accuracy of a model on a set of uint8 images (test set, or a held-out split during search)."""

from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as functional
from torch import nn

from autospace.data import normalize_batch


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
) -> tuple[float, float]:
    """(mean cross-entropy, accuracy as a fraction in [0, 1]) over `images[indices]` (default: all).

    Images are uint8 (N, C, H, W) on the model's device, normalised batch by
    batch. The model runs in eval mode (BN running statistics, no dropout) and
    is put back in the mode it was in. One device sync, at the end.
    """
    was_training = model.training
    model.eval()
    device = images.device
    count = images.shape[0] if indices is None else indices.shape[0]
    loss_sum = torch.zeros((), dtype=torch.float64, device=device)
    correct = torch.zeros((), dtype=torch.int64, device=device)
    try:
        with torch.no_grad():
            for start in range(0, count, batch_size):
                if indices is None:
                    batch_images, batch_labels = images[start:start + batch_size], labels[start:start + batch_size]
                else:
                    chosen = indices[start:start + batch_size]
                    batch_images, batch_labels = images[chosen], labels[chosen]
                inputs = normalize_batch(batch_images, mean, std, channels_last=channels_last)
                with torch.autocast(device.type, dtype=autocast_dtype, enabled=autocast_dtype is not None):
                    logits = model(inputs)
                # Loss in fp32 whatever the autocast dtype: bf16 log-softmax loses digits.
                loss_sum += functional.cross_entropy(logits.float(), batch_labels, reduction="sum").double()
                correct += (logits.argmax(dim=1) == batch_labels).sum()
    finally:
        model.train(was_training)
    if count == 0:
        return float("nan"), float("nan")
    return loss_sum.item() / count, correct.item() / count
