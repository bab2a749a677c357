"""The measured pick: re-score cells with the trained shared weights on the held-out images.

After training, each cell's path of the tied supernet gets its own BN statistics (recalibrated
on a fixed set of training images, the same for every cell, `nn.batchnorm`), then its top-1
accuracy and cross-entropy are measured on every held-out image (the split the fitness steps
read; the test set is never read). `measured_pick` is the best re-scored cell.
"""

from __future__ import annotations

import torch
import torch.nn.functional as functional

from autospace.arch.nb201 import Nb201Cell, to_nb201_string
from autospace.data.batches import normalize_batch
from autospace.data.stream import BatchStream
from autospace.nn.batchnorm import recalibrate_batch_norm

EVALUATION_CHUNK = 500  # held-out images per forward pass (memory only; the result does not depend on it)


def _normalised(stream: BatchStream, indices: torch.Tensor) -> torch.Tensor:
    return normalize_batch(stream.images[indices], stream.mean, stream.std)


def random_subset(indices: torch.Tensor, count: int, seed: int) -> torch.Tensor:
    """`count` of `indices` (all, if fewer) drawn at random with `seed`: a split's indices may be sorted
    by class (the CIFAR-10 copy's are), so its first images would all be one class."""
    order = torch.randperm(indices.numel(), generator=torch.Generator().manual_seed(seed))
    return indices[order[:max(1, min(count, indices.numel()))].to(indices.device)]


@torch.no_grad()
def rescore_cells(supernet, cells: list[Nb201Cell], train: BatchStream, held_out: BatchStream,
                  recalibration_images: int, held_out_images: int | None = None,
                  recalibration_batch: int = 128, seed: int = 0) -> list[dict]:
    """Per cell: {"arch_str", "accuracy" (held-out top-1, %), "loss"} under `supernet`'s weights, BN
    recalibrated on `recalibration_images` training images drawn at random with `seed` (the same for
    every cell); the supernet's BN running statistics are left as the last cell's."""
    recalibration_indices = random_subset(train.indices, recalibration_images, seed)
    recalibration = [_normalised(train, chunk) for chunk in recalibration_indices.split(recalibration_batch)]
    evaluated = held_out.indices if held_out_images is None else random_subset(held_out.indices, held_out_images,
                                                                                 seed + 1)
    chunks = [(_normalised(held_out, chunk), held_out.labels[chunk]) for chunk in evaluated.split(EVALUATION_CHUNK)]
    was_training = supernet.training
    rows = []
    try:
        for cell in cells:
            recalibrate_batch_norm(supernet, recalibration, forward=lambda x, cell=cell: supernet(x, cell))
            supernet.eval()
            correct, loss = 0, 0.0
            for inputs, labels in chunks:
                logits = supernet(inputs, cell)
                correct += int((logits.argmax(1) == labels).sum())
                loss += float(functional.cross_entropy(logits, labels, reduction="sum"))
            total = int(evaluated.numel())
            rows.append({"arch_str": to_nb201_string(cell), "accuracy": round(100.0 * correct / total, 3),
                         "loss": round(loss / total, 5)})
    finally:
        supernet.train(was_training)
    return rows


def measured_pick(rows: list[dict]) -> dict:
    """The best re-scored cell: highest held-out accuracy, ties broken by the lower held-out loss."""
    return max(rows, key=lambda row: (row["accuracy"], -row["loss"]))
