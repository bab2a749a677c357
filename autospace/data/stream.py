"""An endless, resumable stream of augmented batches from an index set.

Search and evolution loops step by iteration, not by epoch, and checkpoint
mid-epoch; the stream's whole state (permutation, position, generator) goes
into the checkpoint so a resumed run draws the very same batches.

Under torchrun every rank's stream draws the same global batch (and the same
augmentation for all of it) and returns only the rank's slice (`shard_batch`),
so the ranks together see exactly the images one process would.
"""

from __future__ import annotations

from typing import Sequence

import torch

from autospace.data.batches import apply_augmentation, draw_augmentation, normalize_batch
from autospace.runtime.distributed import SINGLE_PROCESS, Distributed, require_divisible_batch, shard_batch
from autospace.errors import AutospaceError


class BatchStream:
    def __init__(self, images: torch.Tensor, labels: torch.Tensor, indices: torch.Tensor, batch_size: int,
                 mean: Sequence[float], std: Sequence[float], seed: int, augment: bool = True,
                 channels_last: bool = False, dtype: torch.dtype = torch.float32,
                 distributed: Distributed = SINGLE_PROCESS):
        if indices.numel() < batch_size:
            raise AutospaceError(
                f"the split has {indices.numel()} images, fewer than one batch of {batch_size}; "
                f"lower batch_size or use more data")
        require_divisible_batch(distributed, batch_size)
        self.distributed = distributed
        self.images, self.labels = images, labels.to(images.device)
        self.indices = indices.to(images.device)
        self.batch_size = batch_size
        self.mean, self.std = tuple(mean), tuple(std)
        self.augment, self.channels_last, self.dtype = augment, channels_last, dtype
        self.generator = torch.Generator(device=images.device)
        self.generator.manual_seed(seed)
        self.epoch = 0
        self.position = 0
        self.order = self._new_order()

    @property
    def batches_per_epoch(self) -> int:
        return self.indices.numel() // self.batch_size  # the last partial batch is dropped

    def _new_order(self) -> torch.Tensor:
        return self.indices[torch.randperm(self.indices.numel(), generator=self.generator, device=self.images.device)]

    def next(self) -> tuple[torch.Tensor, torch.Tensor]:
        """This rank's slice of the next global batch: (normalised images, labels)."""
        if self.position + self.batch_size > self.order.numel():
            self.epoch += 1
            self.position = 0
            self.order = self._new_order()
        chosen = self.order[self.position:self.position + self.batch_size]
        self.position += self.batch_size
        local = shard_batch(self.distributed, chosen)
        images = self.images[local]
        if self.augment:  # drawn for the whole global batch, so every rank's generator stays in step
            offsets, flips = draw_augmentation(self.batch_size, 4, self.generator, self.images.device)
            images = apply_augmentation(images, shard_batch(self.distributed, offsets),
                                        shard_batch(self.distributed, flips), 4)
        return (normalize_batch(images, self.mean, self.std, self.dtype, self.channels_last),
                self.labels[local])

    def state_dict(self) -> dict:
        return {"epoch": self.epoch, "position": self.position, "order": self.order.cpu(),
                "generator": self.generator.get_state()}

    def load_state_dict(self, state: dict) -> None:
        self.epoch, self.position = state["epoch"], state["position"]
        self.order = state["order"].to(self.images.device)
        self.generator.set_state(state["generator"])
