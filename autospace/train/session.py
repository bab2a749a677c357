"""What every search method shares: the run folder, the data streams, evaluation of a path.

Every search decision uses the held-out split of the training set; the test
set is never touched here.

Under torchrun every rank runs the same search on its slice of each global
batch (`autospace.runtime.distributed`); evaluations are sharded and all-reduced, so
every rank takes the same decisions. Rank 0 alone writes the run folder.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as functional
from torch import nn

from autospace.data import load_dataset, stratified_split
from autospace.data.dataset import ImageDataset
from autospace.data.split import class_balanced_order
from autospace.data.stream import BatchStream
from autospace.runtime.distributed import SINGLE_PROCESS, Distributed, average_gradients, shard_batch
from autospace.runtime.nonfinite import NonfiniteSteps
from autospace.train.evaluate import evaluate


@dataclass
class SearchSession:
    config: Any                       # SearchConfig or NseConfig: the keys below are common to both
    out: Path
    device: torch.device
    autocast_dtype: torch.dtype | None
    channels_last: bool
    dataset: ImageDataset
    images: torch.Tensor              # training images on the device (uint8)
    train_indices: torch.Tensor
    validation_indices: torch.Tensor
    train_stream: BatchStream
    validation_stream: BatchStream
    distributed: Distributed = SINGLE_PROCESS
    guard: NonfiniteSteps | None = None  # --skip-nonfinite; None: no per-step check
    run: Any = None                       # the `runtime.run.Run` it belongs to

    @property
    def memory_format(self):
        return torch.channels_last if self.channels_last else torch.contiguous_format

    def autocast(self):
        return torch.autocast(self.device.type, dtype=self.autocast_dtype, enabled=self.autocast_dtype is not None)

    def weight_step(self, supernet: nn.Module, optimizer: torch.optim.Optimizer, paths, lr: float,
                    position: str = "a weight step") -> torch.Tensor | None:
        """One SGD step of the supernet's weights on a training batch along `paths`; the loss (no sync),
        or None when --skip-nonfinite skipped the step."""
        for group in optimizer.param_groups:
            group["lr"] = lr
        inputs, labels = self.train_stream.next()
        if self.guard is not None:
            self.guard.remember(supernet)
        with self.autocast():
            logits = supernet(inputs, paths)
        loss = functional.cross_entropy(logits.float(), labels, label_smoothing=self.config.label_smoothing)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        parameters = [parameter for group in optimizer.param_groups for parameter in group["params"]]
        average_gradients(self.distributed, parameters)
        if self.guard is not None and not self.guard.accept(loss, (p.grad for p in parameters), position):
            return None
        optimizer.step()
        return loss.detach()

    def recalibration_batches(self, count: int) -> list[torch.Tensor]:
        """A fixed set of un-augmented training batches: recalibrating BN on them makes an
        evaluation a pure function of the architecture (cacheable, resumable)."""
        generator = torch.Generator().manual_seed(self.config.seed + 11)
        order = self.train_indices[torch.randperm(self.train_indices.numel(), generator=generator)]
        batches = []
        for index in range(min(count, max(order.numel() // self.config.batch_size, 1))):
            chosen = order[index * self.config.batch_size:(index + 1) * self.config.batch_size].to(self.device)
            # This rank's slice: BN statistics are synchronised, so they are the whole batch's.
            batches.append(normalized(self, self.images[shard_batch(self.distributed, chosen)]))
        return batches

    def validation_accuracy(self, model: nn.Module, batches: int | None = None) -> tuple[float, float]:
        """(loss, accuracy in [0, 1]) on the held-out split (`batches` class-balanced batches, or all)."""
        indices = self.validation_indices.to(self.device)
        if batches is not None:  # a class-balanced prefix: the data may come sorted by class
            indices = class_balanced_order(indices, self.dataset.train_labels, self.config.seed)
            indices = indices[: batches * self.config.batch_size]
        return evaluate(model, self.images, self.dataset.train_labels.to(self.device), self.dataset.mean,
                        self.dataset.std, batch_size=max(self.config.batch_size, 256),
                        autocast_dtype=self.autocast_dtype, channels_last=self.channels_last, indices=indices,
                        distributed=self.distributed)


def normalized(session: SearchSession, images_uint8: torch.Tensor) -> torch.Tensor:
    from autospace.data import normalize_batch

    return normalize_batch(images_uint8, session.dataset.mean, session.dataset.std,
                           channels_last=session.channels_last)


class PathModule(nn.Module):
    """A supernet restricted to one path, as a plain model (for `evaluate`)."""

    def __init__(self, supernet: nn.Module, paths):
        super().__init__()
        self.supernet = supernet
        self.paths = paths

    def forward(self, x):
        return self.supernet(x, self.paths)


def open_session(run) -> SearchSession:
    """The data, held-out split and batch streams of a supernet-training run (`runtime.run.Run`)."""
    config, device, distributed = run.config, run.device, run.distributed
    dataset = load_dataset(config.data, config.data_dir, config.image_size)
    if config.train_subset is not None:
        dataset = dataset.subset(config.train_subset, None, torch.Generator().manual_seed(config.seed))
    train_indices, validation_indices = stratified_split(
        dataset.train_labels, validation_fraction=config.validation_fraction, seed=config.seed)
    channels_last = run.channels_last
    images = dataset.train_images.to(device)
    streams = [BatchStream(images, dataset.train_labels, indices, config.batch_size, dataset.mean, dataset.std,
                           seed=config.seed + offset, channels_last=channels_last, distributed=distributed)
               for offset, indices in enumerate((train_indices, validation_indices))]
    return SearchSession(config=config, out=run.out, device=device, autocast_dtype=run.autocast_dtype,
                         channels_last=channels_last, dataset=dataset, images=images, train_indices=train_indices,
                         validation_indices=validation_indices, train_stream=streams[0],
                         validation_stream=streams[1], distributed=distributed, guard=run.guard, run=run)
