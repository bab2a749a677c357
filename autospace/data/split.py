"""Seeded, stratified choices of samples: train/validation splits and subsets.

Both keep the class proportions of the whole: the number taken from each
class is proportional to its size, rounded by largest remainder (ties go to
the lower class index), so the total is exact and no class is over-drawn.
"""

from __future__ import annotations

import torch

from autospace.errors import AutospaceError


def class_quotas(class_sizes: torch.Tensor, total: int) -> torch.Tensor:
    """How many of `total` to take from each class, proportional to `class_sizes`."""
    sizes = class_sizes.to(torch.int64)
    population = int(sizes.sum())
    exact = sizes.to(torch.float64) * total / max(population, 1)
    quotas = torch.floor(exact).to(torch.int64)
    missing = total - int(quotas.sum())
    if missing > 0:
        remainders = exact - quotas.to(torch.float64)
        # Stable descending sort: equal remainders go to the lower class index.
        order = torch.sort(-remainders, stable=True).indices
        quotas[order[:missing]] += 1
    return quotas


def stratified_selection(labels: torch.Tensor, count: int, generator: torch.Generator) -> torch.Tensor:
    """Indices of `count` samples chosen at random within each class (class proportions kept).

    `labels` is a 1-D integer tensor on the generator's device; the indices come
    back in no particular order.
    """
    labels = labels.to(torch.int64)
    sample_count = int(labels.shape[0])
    if not 0 <= count <= sample_count:
        raise AutospaceError(f"cannot choose {count} samples out of {sample_count}; choose 0 to {sample_count}")
    if sample_count == 0:
        return torch.zeros(0, dtype=torch.int64, device=labels.device)
    if int(labels.min()) < 0:
        raise AutospaceError(f"labels must be non-negative class indices; found {int(labels.min())}")
    permutation = torch.randperm(sample_count, generator=generator, device=generator.device).to(labels.device)
    # Shuffled, then grouped by class: each class's samples in random order.
    order = permutation[torch.sort(labels[permutation], stable=True).indices]
    grouped_labels = labels[order]
    class_sizes = torch.bincount(labels)
    class_starts = torch.cumsum(class_sizes, 0) - class_sizes
    rank_in_class = torch.arange(sample_count, device=labels.device) - class_starts[grouped_labels]
    quotas = class_quotas(class_sizes, count)
    return order[rank_in_class < quotas[grouped_labels]]


def stratified_split(
    labels: torch.Tensor,
    validation_fraction: float | None = None,
    validation_count: int | None = None,
    seed: int = 0,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Split sample indices into (train, validation), stratified per class.

    Give exactly one of `validation_fraction` (in (0, 1); the validation size is
    `round(fraction * N)`) or `validation_count` (1 to N - 1). The split is a
    function of `labels` and `seed` only; the two index tensors are sorted,
    disjoint and together cover `0..N-1`. They are on the device of `labels`.
    """
    if not isinstance(labels, torch.Tensor) or labels.dim() != 1:
        raise AutospaceError(f"stratified_split needs a 1-D tensor of labels; got {type(labels).__name__}")
    sample_count = int(labels.shape[0])
    if (validation_fraction is None) == (validation_count is None):
        raise AutospaceError(
            "stratified_split: give exactly one of validation_fraction (e.g. 0.1) or validation_count (e.g. 5000); "
            f"got validation_fraction={validation_fraction!r}, validation_count={validation_count!r}"
        )
    if validation_fraction is not None:
        if not 0.0 < float(validation_fraction) < 1.0:
            raise AutospaceError(
                f"validation_fraction={validation_fraction!r} is out of range; use a number strictly between 0 and 1"
            )
        validation_count = int(round(float(validation_fraction) * sample_count))
    if isinstance(validation_count, bool) or not isinstance(validation_count, int) or not (
        1 <= validation_count <= sample_count - 1
    ):
        raise AutospaceError(
            f"validation_count={validation_count!r} for {sample_count} samples is out of range; "
            f"the validation and train parts each need at least one sample (1 to {sample_count - 1})"
        )
    generator = torch.Generator().manual_seed(int(seed))
    cpu_labels = labels.detach().to("cpu", torch.int64)
    validation = torch.sort(stratified_selection(cpu_labels, validation_count, generator)).values
    is_validation = torch.zeros(sample_count, dtype=torch.bool)
    is_validation[validation] = True
    train = torch.nonzero(~is_validation).flatten()
    return train.to(labels.device), validation.to(labels.device)


def class_balanced_order(indices: torch.Tensor, labels: torch.Tensor, seed: int = 0) -> torch.Tensor:
    """`indices` reordered so that every prefix is as class-balanced as the whole allows.

    Classes take turns (each class's samples in a seeded random order, classes interleaved
    by their share of the whole), so "the first k held-out batches" is a fair sample even
    when the data come sorted by class, as CIFAR-10's copy and every ImageFolder do. A
    prefix of the sorted indices would hold one or two classes only.
    `labels` are the labels of all samples (indexed by `indices`).
    """
    cpu_indices = indices.detach().to("cpu", torch.int64)
    count = int(cpu_indices.numel())
    if count == 0:
        return indices
    generator = torch.Generator().manual_seed(int(seed))
    shuffled = cpu_indices[torch.randperm(count, generator=generator)]
    classes = labels.detach().to("cpu", torch.int64)[shuffled]
    grouped = torch.sort(classes, stable=True).indices
    class_sizes = torch.bincount(classes)
    class_starts = torch.cumsum(class_sizes, 0) - class_sizes
    rank_in_class = torch.arange(count) - class_starts[classes[grouped]]
    # The r-th sample of a class of size n sits at (r + 1/2) / n of the way through the order.
    position = (rank_in_class.to(torch.float64) + 0.5) / class_sizes[classes[grouped]].to(torch.float64)
    order = grouped[torch.sort(position, stable=True).indices]
    return shuffled[order].to(indices.device)
