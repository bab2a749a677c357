"""`TrainConfig`: every setting of a final (stand-alone) training run, with its default.

The defaults are a CPU-friendly CIFAR-10 recipe for small mobile networks
(10 epochs, SGD Nesterov, label smoothing, cosine); presets in
`configs/train/` (quick, cpu, cifar10, full) change a few of them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import ClassVar, Literal, Optional, Union

from autospace.errors import AutospaceError

# Keys that may differ between a run and its resumption without changing the
# result (where the data lives, how progress is shown, where it runs). Any
# other difference would make the resumed run a different run.
RESUME_FREE_KEYS = ("data_dir", "device", "progress", "log_every", "eval_batch_size", "compile", "tensorboard",
                    "skip_nonfinite")


def _help(text: str) -> dict:
    return {"help": text}


@dataclass(frozen=True)
class TrainConfig:
    """Settings of `autospace train` (see `describe_config(TrainConfig)` for the list)."""

    config_section: ClassVar[str] = "train"

    data: str = field(default="cifar10", metadata=_help(
        "data set: cifar10, fashion-mnist, mnist, synthetic, synthetic:TRAIN,TEST, or an ImageFolder path"))
    data_dir: Optional[str] = field(default=None, metadata=_help(
        "folder holding (or receiving) the data set files; None: $AUTOSPACE_DATA or ~/.cache/autospace/data"))
    epochs: int = field(default=10, metadata=_help("passes over the training images"))
    batch_size: int = field(default=128, metadata=_help(
        "training batch size (the last partial batch of an epoch is dropped)"))
    eval_batch_size: int = field(default=512, metadata=_help("batch size for evaluation (no effect on results)"))
    lr: float = field(default=0.05, metadata=_help(
        "peak learning rate, reached after warm-up (for batch_size 128; scale linearly with it)"))
    momentum: float = field(default=0.9, metadata=_help("SGD momentum"))
    nesterov: bool = field(default=True, metadata=_help("Nesterov momentum"))
    weight_decay: float = field(default=5e-4, metadata=_help(
        "L2 weight decay on conv and linear weights; never on batch-norm weights or biases"))
    label_smoothing: float = field(default=0.1, metadata=_help("label smoothing of the training loss"))
    warmup_epochs: float = field(default=1.0, metadata=_help(
        "linear warm-up from ~0 to lr over this many epochs, then cosine to 0 (stepped every iteration)"))
    augment: bool = field(default=True, metadata=_help("random crop (zero padding) and flip of training images"))
    crop_padding: int = field(default=4, metadata=_help("padding of the random crop, pixels"))
    flip: bool = field(default=True, metadata=_help("random horizontal flips (when augment is on)"))
    seed: int = field(default=0, metadata=_help(
        "seeds weight init, dropout, shuffling, augmentation and subsets: same seed, same run"))
    device: str = field(default="auto", metadata=_help("auto (CUDA if available), cpu, cuda, cuda:N"))
    precision: Literal["auto", "fp32", "bf16"] = field(default="auto", metadata=_help(
        "autocast precision: auto = bf16 on CUDA, fp32 on CPU"))
    channels_last: Union[Literal["auto"], bool] = field(default="auto", metadata=_help(
        "NHWC memory format: auto = on (CUDA and CPU both run NHWC convs faster)"))
    train_subset: Optional[int] = field(default=None, metadata=_help(
        "train on a stratified random subset of this many images (quick runs); None: all"))
    test_subset: Optional[int] = field(default=None, metadata=_help(
        "evaluate on a stratified random subset of this many test images; None: all"))
    image_size: Optional[int] = field(default=None, metadata=_help(
        "area-resize the images to this side in pixels (a CPU proxy, e.g. 16); None: as they are"))
    eval_every: int = field(default=1, metadata=_help(
        "evaluate on the test set every N epochs (and always after the last)"))
    compile: Union[Literal["auto", "off", "default", "reduce-overhead", "max-autotune"], bool] = field(
        default="auto", metadata=_help(
            "torch.compile the network for training and evaluation: auto = mode default on CUDA, off on CPU; "
            "off, or a torch.compile mode (default, reduce-overhead = CUDA graphs, max-autotune); true = default"))
    progress: bool = field(default=True, metadata=_help("show a tqdm progress bar"))
    tensorboard: bool = field(default=False, metadata=_help(
        "also write the per-epoch figures as TensorBoard scalars in RUN_DIR/tensorboard"))
    log_every: int = field(default=50, metadata=_help(
        "steps between progress-bar updates (each one waits for the device)"))
    skip_nonfinite: int = field(default=0, metadata=_help(
        "tolerate this many non-finite steps in the run: a step whose loss or gradient is not finite is "
        "skipped (no update, BN statistics restored) and one more stops the run; 0: the first non-finite "
        "epoch loss stops it. N > 0 checks every step (one device sync per step)"))

    def __post_init__(self) -> None:
        if isinstance(self.compile, bool):  # YAML reads `compile: off` as false
            object.__setattr__(self, "compile", "default" if self.compile else "off")
        for name in ("epochs", "batch_size", "eval_batch_size", "eval_every", "log_every"):
            _positive(name, getattr(self, name))
        if self.skip_nonfinite < 0:
            raise AutospaceError(f"skip_nonfinite is {self.skip_nonfinite!r}; it must be an integer >= 0")
        for name in ("train_subset", "test_subset"):
            if getattr(self, name) is not None:
                _positive(name, getattr(self, name))
        if self.crop_padding < 0:
            raise AutospaceError(f"crop_padding is {self.crop_padding}; it must be >= 0")
        for name, low, high in (("lr", 0.0, math.inf), ("momentum", 0.0, 1.0), ("weight_decay", 0.0, math.inf),
                                ("label_smoothing", 0.0, 1.0), ("warmup_epochs", 0.0, math.inf)):
            value = getattr(self, name)
            if not (low <= value < high) or (name == "lr" and value == 0):
                bound = f"in [{low}, {high})" if high != math.inf else f">= {low}"
                raise AutospaceError(f"{name} is {value!r}; it must be {'> 0' if name == 'lr' else bound}")
        if self.warmup_epochs > self.epochs:
            raise AutospaceError(f"warmup_epochs ({self.warmup_epochs}) is longer than epochs ({self.epochs}); "
                                 f"use at most {self.epochs}")


def _positive(name: str, value: int) -> None:
    if value < 1:
        raise AutospaceError(f"{name} is {value!r}; it must be an integer >= 1")
