"""Data-parallel runs under `torchrun`: the process group and the collectives the loops use.

`torchrun --nproc-per-node N -m autospace train|search|evolve|run ...` starts N
processes (ranks). Every rank runs the same loop with the same seeds, so every
rank samples the same paths, cells and batch order; each rank computes its
contiguous slice of every global batch (`shard_batch`), gradients are averaged
(`average_gradients`), batch norm uses the statistics of the global batch
(`SynchronizedBatchNorm2d`) and dropout masks are drawn for the global batch
(`ShardedDropout`). So an N-rank run computes what one process computes with the
same global batch, up to floating-point reduction order, and every rank holds
the same state after every step. Rank 0 alone writes files and logs.

Without torchrun (no WORLD_SIZE in the environment, or WORLD_SIZE=1) every
helper is a no-op on a single-process `Distributed` and torch.distributed is
never touched.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from typing import Any, Iterable, Sequence

import torch
from torch import nn

from autospace.errors import AutospaceError


@dataclass(frozen=True)
class Distributed:
    """Where this process stands in the run: rank `rank` of `world_size` (one process: 0 of 1)."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    backend: str | None = None

    @property
    def is_main(self) -> bool:
        """Rank 0: the one process that writes files, logs and progress bars."""
        return self.rank == 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    def local_device(self, device: torch.device) -> torch.device:
        """Under torchrun each rank uses its own GPU, cuda:LOCAL_RANK; a CPU stays a CPU."""
        device = torch.device(device)
        if self.enabled and device.type == "cuda":
            return torch.device("cuda", self.local_rank)
        return device


SINGLE_PROCESS = Distributed()


class RankDivergenceError(RuntimeError):
    """The ranks of a run hold different state: a bug (they must agree by construction)."""


def environment_rank() -> int:
    """This process's rank as torchrun announces it (0 outside torchrun), without touching torch.distributed."""
    try:
        return int(os.environ.get("RANK", "0"))
    except ValueError:
        return 0


def environment_world_size() -> int:
    """How many processes torchrun started (1 outside torchrun), without touching torch.distributed."""
    try:
        return max(int(os.environ.get("WORLD_SIZE", "1")), 1)
    except ValueError:
        return 1


def _environment_int(name: str) -> int:
    text = os.environ.get(name)
    try:
        return int(text)
    except (TypeError, ValueError):
        raise AutospaceError(f"WORLD_SIZE is set but {name}={text!r} is not an integer; start the processes "
                             f"with torchrun (torchrun --nproc-per-node N -m autospace ...)") from None


def init_distributed(device_kind: str = "cpu") -> Distributed:
    """The process group of this run, created once (later calls return the same one).

    Reads torchrun's WORLD_SIZE, RANK and LOCAL_RANK. Without them (or with
    WORLD_SIZE=1) returns the single-process `Distributed()` and leaves
    torch.distributed alone. Otherwise the backend is NCCL for `device_kind`
    "cuda" (and this process's GPU becomes cuda:LOCAL_RANK) and gloo for the CPU.
    """
    import torch.distributed as torch_distributed

    if torch_distributed.is_available() and torch_distributed.is_initialized():
        local_rank = int(os.environ.get("LOCAL_RANK", torch_distributed.get_rank()))
        return Distributed(torch_distributed.get_rank(), torch_distributed.get_world_size(), local_rank,
                           str(torch_distributed.get_backend()))
    if "WORLD_SIZE" not in os.environ:
        return SINGLE_PROCESS
    world_size = _environment_int("WORLD_SIZE")
    if world_size <= 1:
        return SINGLE_PROCESS
    rank, local_rank = _environment_int("RANK"), _environment_int("LOCAL_RANK")
    if not torch_distributed.is_available():
        raise AutospaceError(f"WORLD_SIZE={world_size} asks for {world_size} processes, but this torch build has "
                             f"no torch.distributed; run one process, or install a torch with distributed support")
    if device_kind == "cuda":
        count = torch.cuda.device_count()
        if local_rank >= count:
            raise AutospaceError(f"process LOCAL_RANK={local_rank} needs cuda:{local_rank}, but this machine has "
                                 f"{count} GPU(s); start at most {count} processes per node "
                                 f"(torchrun --nproc-per-node {count})")
        torch.cuda.set_device(local_rank)
        backend = "nccl"
    else:
        backend = "gloo"
    torch_distributed.init_process_group(backend=backend, rank=rank, world_size=world_size)
    return Distributed(rank, world_size, local_rank, backend)


def destroy() -> None:
    """End the process group, if one was started (the CLI does this on the way out)."""
    import torch.distributed as torch_distributed

    if torch_distributed.is_available() and torch_distributed.is_initialized():
        torch_distributed.destroy_process_group()


def barrier(dist: Distributed) -> None:
    """Wait for every rank (e.g. before reading a file rank 0 wrote)."""
    if dist.enabled:
        torch.distributed.barrier()


def broadcast_object(dist: Distributed, value: Any, source: int = 0) -> Any:
    """`value` as rank `source` has it, on every rank (any picklable object)."""
    if not dist.enabled:
        return value
    holder = [value]
    torch.distributed.broadcast_object_list(holder, src=source)
    return holder[0]


# ---- batches ------------------------------------------------------------------------------

def require_divisible_batch(dist: Distributed, batch_size: int, key: str = "batch_size") -> None:
    """The global batch must split evenly over the ranks; say which sizes would."""
    if batch_size % dist.world_size:
        lower = batch_size - batch_size % dist.world_size
        higher = lower + dist.world_size
        options = f"{lower} or {higher}" if lower > 0 else f"{higher}"
        raise AutospaceError(f"{key} {batch_size} is the global batch and must split evenly over the "
                             f"{dist.world_size} processes; use {options} (a multiple of {dist.world_size}), "
                             f"or change --nproc-per-node")


def shard_batch(dist: Distributed, tensor: torch.Tensor) -> torch.Tensor:
    """This rank's contiguous slice of a global batch (rows rank*B/N .. (rank+1)*B/N - 1).

    Every rank draws the same global batch (same seed) and keeps its slice, so
    the union over ranks is exactly the batch one process would use.
    """
    if not dist.enabled:
        return tensor
    require_divisible_batch(dist, tensor.shape[0], "the batch")
    size = tensor.shape[0] // dist.world_size
    return tensor[dist.rank * size:(dist.rank + 1) * size]


def shard_range(dist: Distributed, count: int) -> tuple[int, int]:
    """[start, stop) of this rank's part of `count` items (parts differ by at most one; for evaluation)."""
    base, extra = divmod(count, dist.world_size)
    start = dist.rank * base + min(dist.rank, extra)
    return start, start + base + (1 if dist.rank < extra else 0)


# ---- reductions -----------------------------------------------------------------------------

def all_reduce_sum(dist: Distributed, tensor: torch.Tensor) -> torch.Tensor:
    """The sum over ranks of `tensor` (a new tensor; the same on every rank)."""
    if not dist.enabled:
        return tensor
    total = tensor.detach().clone()
    torch.distributed.all_reduce(total, op=torch.distributed.ReduceOp.SUM)
    return total


def all_reduce_mean(dist: Distributed, tensor: torch.Tensor) -> torch.Tensor:
    """The mean over ranks of `tensor` (a new tensor; the same on every rank)."""
    if not dist.enabled:
        return tensor
    return all_reduce_sum(dist, tensor) / dist.world_size


def average_tensors(dist: Distributed, tensors: Sequence[torch.Tensor | None]) -> None:
    """Replace every tensor (e.g. a gradient) by its mean over the ranks, in place; None entries are skipped.

    One all-reduce per dtype: the tensors are flattened into one buffer. Every rank
    must pass the same list (same shapes, same order), as ranks running the same
    paths do.
    """
    if not dist.enabled:
        return
    present = [tensor for tensor in tensors if tensor is not None]
    by_dtype: dict[torch.dtype, list[torch.Tensor]] = {}
    for tensor in present:
        by_dtype.setdefault(tensor.dtype, []).append(tensor)
    for dtype in sorted(by_dtype, key=str):  # the same order on every rank
        group = by_dtype[dtype]
        flat = torch.cat([tensor.reshape(-1) for tensor in group])
        torch.distributed.all_reduce(flat, op=torch.distributed.ReduceOp.SUM)
        flat /= dist.world_size
        start = 0
        for tensor in group:
            tensor.copy_(flat[start:start + tensor.numel()].view(tensor.shape))
            start += tensor.numel()


def average_gradients(dist: Distributed, parameters: Iterable[torch.Tensor]) -> None:
    """All-reduce (mean) the .grad of the parameters that have one: only the active paths' weights.

    Call after backward() and before the optimiser step. The set of parameters with
    a gradient is the same on every rank because every rank runs the same paths.
    """
    if dist.enabled:
        average_tensors(dist, [parameter.grad for parameter in parameters])


# ---- agreement between ranks -------------------------------------------------------------------

def fingerprint(value: Any) -> str:
    """A SHA-256 digest of `value`: tensors by dtype, shape and bytes; dicts, lists and plain values
    recursively (dict keys sorted). Equal state gives equal digests on every rank."""
    digest = hashlib.sha256()
    _feed(digest, value)
    return digest.hexdigest()


def _feed(digest, value: Any) -> None:
    if isinstance(value, torch.Tensor):
        tensor = value.detach().cpu().contiguous()
        digest.update(f"tensor:{tensor.dtype}:{tuple(tensor.shape)}:".encode())
        digest.update(tensor.reshape(-1).view(torch.uint8).numpy().tobytes() if tensor.numel() else b"")
    elif isinstance(value, dict):
        digest.update(f"dict:{len(value)}:".encode())
        for key in sorted(value, key=repr):
            digest.update(repr(key).encode())
            _feed(digest, value[key])
    elif isinstance(value, (list, tuple)):
        digest.update(f"{type(value).__name__}:{len(value)}:".encode())
        for item in value:
            _feed(digest, item)
    else:
        digest.update(json.dumps(value, sort_keys=True, default=repr).encode())


def all_equal(dist: Distributed, value: Any) -> bool:
    """True when every rank passed equal values (compared by `fingerprint`)."""
    if not dist.enabled:
        return True
    digests = [None] * dist.world_size
    torch.distributed.all_gather_object(digests, fingerprint(value))
    return len(set(digests)) == 1


def check_same_on_all_ranks(dist: Distributed, value: Any, what: str) -> None:
    """Raise `RankDivergenceError` unless every rank holds the same `value` (e.g. the final weights)."""
    if not dist.enabled:
        return
    digests = [None] * dist.world_size
    torch.distributed.all_gather_object(digests, fingerprint(value))
    differing = [rank for rank, digest in enumerate(digests) if digest != digests[0]]
    if differing:
        raise RankDivergenceError(
            f"the {dist.world_size} processes disagree on {what}: rank(s) {differing} differ from rank 0. Ranks "
            f"must hold identical state; this is a bug in autospace's distributed run, please report it "
            f"(the run's checkpoints are rank 0's)")


# ---- layers that see the global batch ------------------------------------------------------------

class _DifferentiableAllReduce(torch.autograd.Function):
    """Sum over ranks whose backward is the sum over ranks of the incoming gradients (each rank's
    loss depends on every rank's contribution). torch.distributed.nn.functional.all_reduce does
    the same but is deprecated."""

    @staticmethod
    def forward(ctx, tensor: torch.Tensor) -> torch.Tensor:
        total = tensor.clone(memory_format=torch.contiguous_format)
        torch.distributed.all_reduce(total, op=torch.distributed.ReduceOp.SUM)
        return total

    @staticmethod
    def backward(ctx, gradient: torch.Tensor) -> torch.Tensor:
        total = gradient.clone(memory_format=torch.contiguous_format)
        torch.distributed.all_reduce(total, op=torch.distributed.ReduceOp.SUM)
        return total


class SynchronizedBatchNorm2d(nn.BatchNorm2d):
    """BatchNorm2d whose batch statistics are those of the global batch (every rank's slice).

    Per-channel sums and sums of squares are all-reduced by a differentiable
    all-reduce, so the backward pass is also
    that of batch norm over the global batch. Works with gloo (CPU) and NCCL;
    torch.nn.SyncBatchNorm supports only accelerators. Made by `sync_batch_layers`,
    which swaps the class of existing BatchNorm2d modules in place (same
    parameters, buffers and state-dict keys).
    """

    distributed: Distributed = SINGLE_PROCESS

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        batch_statistics = self.training or self.running_mean is None
        if not (batch_statistics and self.distributed.enabled):
            return super().forward(x)
        self._check_input_dim(x)
        channels = x.shape[1]
        dtype = torch.promote_types(x.dtype, torch.float32)  # bf16 / fp16 statistics in fp32
        values = x.to(dtype)
        # Sums around a shift every rank shares (the running mean) keep E[x^2] - E[x]^2 accurate.
        shift = (self.running_mean.detach().to(dtype) if self.running_mean is not None
                 else torch.zeros(channels, dtype=dtype, device=x.device)).view(1, -1, 1, 1)
        centred = values - shift
        # Every rank holds an equal slice (`shard_batch`), so the global count needs no communication.
        n = (x.numel() // channels) * self.distributed.world_size
        if n <= 1:
            raise ValueError(f"expected more than 1 value per channel when training, got {n} in the global batch")
        local = torch.cat([centred.sum((0, 2, 3)), (centred * centred).sum((0, 2, 3))])
        total = _DifferentiableAllReduce.apply(local)
        mean_centred = total[:channels] / n
        variance = (total[channels:2 * channels] / n - mean_centred * mean_centred).clamp_min(0.0)
        mean = mean_centred + shift.view(-1)
        if self.training and self.track_running_stats:
            with torch.no_grad():
                self.num_batches_tracked.add_(1)
                factor = 1.0 / float(self.num_batches_tracked) if self.momentum is None else self.momentum
                self.running_mean.mul_(1 - factor).add_(mean.detach().to(self.running_mean.dtype), alpha=factor)
                unbiased = variance.detach() * (n / (n - 1))
                self.running_var.mul_(1 - factor).add_(unbiased.to(self.running_var.dtype), alpha=factor)
        scale = torch.rsqrt(variance + self.eps)
        if self.weight is not None:
            scale = scale * self.weight.to(dtype)
        output = (values - mean.view(1, -1, 1, 1)) * scale.view(1, -1, 1, 1)
        if self.bias is not None:
            output = output + self.bias.to(dtype).view(1, -1, 1, 1)
        return output.to(x.dtype)


class ShardedDropout(nn.Dropout):
    """Dropout whose mask is drawn for the global batch and sliced, as `shard_batch` slices the batch.

    Every rank draws the same global mask (same generator state), so ranks keep
    independent masks for different samples, their random streams stay in step,
    and the masks are those one process would draw (on the CPU).
    """

    distributed: Distributed = SINGLE_PROCESS

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not (self.training and self.p > 0 and self.distributed.enabled):
            return super().forward(x)
        if self.p >= 1:
            return x * 0.0
        world = self.distributed.world_size
        noise = torch.empty((x.shape[0] * world, *x.shape[1:]), dtype=x.dtype, device=x.device)
        noise.bernoulli_(1 - self.p).div_(1 - self.p)
        start = self.distributed.rank * x.shape[0]
        return x * noise[start:start + x.shape[0]]


def sync_batch_layers(dist: Distributed, model: nn.Module) -> nn.Module:
    """Make `model`'s batch-dependent layers see the global batch; returns `model`.

    Every BatchNorm2d becomes a `SynchronizedBatchNorm2d` and every Dropout a
    `ShardedDropout`, in place (the same module objects, so optimisers, weight
    banks and state dicts are untouched). Idempotent and cheap: call it again
    after anything creates modules (a weight bank growing, a rebuilt supernet).
    A no-op in one process.
    """
    if not dist.enabled:
        return model
    for module in model.modules():
        if type(module) is nn.BatchNorm2d:
            module.__class__ = SynchronizedBatchNorm2d
        elif type(module) is nn.Dropout:
            module.__class__ = ShardedDropout
        if isinstance(module, (SynchronizedBatchNorm2d, ShardedDropout)):
            module.distributed = dist
    return model


__all__ = [
    "Distributed", "RankDivergenceError", "SINGLE_PROCESS", "ShardedDropout", "SynchronizedBatchNorm2d",
    "all_equal", "all_reduce_mean", "all_reduce_sum", "average_gradients", "average_tensors", "barrier",
    "broadcast_object", "check_same_on_all_ranks", "destroy", "environment_rank", "environment_world_size",
    "fingerprint",
    "init_distributed", "require_divisible_batch", "shard_batch", "shard_range", "sync_batch_layers",
]
