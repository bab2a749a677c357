"""Configuration of `autospace evolve --method nse` (progressive search-space evolution, DESIGN 2.5).

Defaults are chosen for CIFAR-10 on the `cifar` skeleton; `configs/nse/quick.yaml`
shrinks the run for a CPU.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, Literal

from autospace.evolve.config import _help


@dataclass(frozen=True)
class NseConfig:
    config_section: ClassVar[str] = "nse"
    method: ClassVar[str] = "nse"  # what the shared search session calls this run in messages

    # -- problem ---------------------------------------------------------------------
    data: str = _help("data set: cifar10, fashion-mnist, mnist, synthetic[:TRAIN,TEST] or an ImageFolder path", "cifar10")
    data_dir: str | None = _help("folder holding the data files (default: $AUTOSPACE_DATA)", None)
    preset: str = _help("macro skeleton: cifar, cifar-small or imagenet", "cifar")
    budget_madds: int = _help("MAdds budget: the target of the MAdds term and of the sampled architectures", 60_000_000)
    train_subset: int | None = _help("use this many training images (stratified); None: all", None)
    image_size: int | None = _help("area-resize the images to this side in pixels (a CPU proxy, e.g. 16); "
                                   "None: as they are", None)
    validation_fraction: float = _help("held-out share of the training images (architecture steps, evaluation)", 0.2)

    # -- operator pool and subsets ----------------------------------------------------------
    pool: str | None = _help("a space.json whose cells join each layer's pool (e.g. RUN_DIR/space.json "
                             "of `autospace evolve`); None: inverted residuals only", None)
    pool_irb: bool = _help("pool holds inverted residuals kernel 3/5/7/9 x expansion 1/3/6", True)
    pool_dilated: bool = _help("pool holds dilated (2) kernel-3 inverted residuals, expansion 1/3/6", True)
    subset_size: int = _help("K: operators per layer searched at once", 5)
    rounds: int = _help("at most this many rounds (fewer when every layer's pool is used up)", 4)

    # -- supernet training, per round --------------------------------------------------------
    epochs_per_round: int = _help("passes over the training split in each round", 4)
    batch_size: int = _help("images per weight and architecture step", 128)
    weight_lr: float = _help("peak SGD learning rate of the weights (cosine to 0 within each round)", 0.05)
    weight_momentum: float = _help("SGD (Nesterov) momentum", 0.9)
    weight_decay: float = _help("weight decay on conv/linear weights (not BN, not biases)", 4e-5)
    label_smoothing: float = _help("label smoothing of the weight steps' cross-entropy", 0.1)
    warmup_epochs: float = _help("weight-only epochs at the start of each round (every branch on with p = 0.5)", 1.0)
    arch_lr: float = _help("Adam learning rate of the branch logits alpha (betas 0, 0.999)", 0.01)
    arch_every: int = _help("one architecture step (two-subset estimator) every this many weight steps", 1)
    alpha_init: float = _help("alpha of an operator entering a subset (sigmoid 0 = 0.5)", 0.0)
    madds_weight: float = _help("lambda of the MAdds term lambda * ((E[MAdds] - target) / target)^2", 1.0)
    target_latency_ms: float | None = _help(
        "latency target (issue 18): the squared term pulls E[latency] from latency_table to it instead, and the "
        "MAdds term becomes a cap (lambda * max(0, E[MAdds] / budget - 1)^2); None: MAdds only", None)
    latency_table: str | None = _help("latency table (autospace latency-table) for target_latency_ms", None)

    # -- evaluation and the Pareto front ------------------------------------------------------
    samples: int = _help("architectures evaluated per round (after BN recalibration)", 24)
    sample_draws: int = _help("architectures drawn per round to pick the `samples` nearest the budget", 400)
    budget_tolerance: float = _help("'near the budget': MAdds within this share of the budget", 0.15)
    recalibration_batches: int = _help("training batches for BN recalibration before each evaluation", 4)
    eval_batches: int | None = _help("held-out batches per evaluation; None: the whole held-out split", 8)
    drop_threshold: float = _help("an operator whose sigmoid(alpha) fell below this is dropped", 0.3)

    # -- execution ---------------------------------------------------------------------------
    skip_nonfinite: int = _help("skip up to this many steps with a non-finite loss or gradient, then stop "
                                "(0: stop at the first; > 0 checks every step, one host sync each)", 0)
    checkpoint_every: int = _help("weight steps between checkpoints inside a round (and one per round)", 200)
    seed: int = _help("seed of every random generator of the run", 0)
    device: str = _help("auto (CUDA if present), cpu, cuda or cuda:N", "auto")
    precision: str = _help("auto (bf16 on CUDA, fp32 on CPU), fp32 or bf16", "auto")
    channels_last: bool | Literal["auto"] = _help("NHWC memory format (auto: on)", "auto")
    progress: bool = _help("show a progress bar", True)
    tensorboard: bool = _help("also write the per-round figures as TensorBoard scalars", False)

    def __post_init__(self) -> None:
        from autospace.runtime.config import require_at_least, require_between

        require_at_least(self, 1, "budget_madds", "subset_size", "rounds", "epochs_per_round", "batch_size",
                         "arch_every", "samples", "sample_draws", "recalibration_batches", "eval_batches",
                         "checkpoint_every", "train_subset")
        require_at_least(self, 0, "warmup_epochs", "weight_decay", "madds_weight", "skip_nonfinite")
        require_between(self, 0.0, 1.0, "weight_momentum", "label_smoothing", "drop_threshold")
        require_between(self, 0.001, 10.0, "budget_tolerance")
        require_between(self, 0.01, 0.9, "validation_fraction")
        require_between(self, -20.0, 20.0, "alpha_init")
        from autospace.errors import AutospaceError

        for name in ("weight_lr", "arch_lr"):
            if not getattr(self, name) > 0:
                raise AutospaceError(f"{name} is {getattr(self, name)!r}; it must be > 0")
        if self.target_latency_ms is not None and not (0 < self.target_latency_ms < float("inf") and self.latency_table):
            raise AutospaceError(f"target_latency_ms is {self.target_latency_ms!r}; it must be a number of ms > 0, "
                                 f"with latency_table (made by `autospace latency-table`)")
        if self.sample_draws < self.samples:
            raise AutospaceError(f"sample_draws ({self.sample_draws}) is below samples ({self.samples}); "
                                 f"draw at least as many architectures as are evaluated")
        if not (self.pool_irb or self.pool_dilated or self.pool):
            raise AutospaceError("the operator pool is empty: keep pool_irb or pool_dilated on, or give --pool")
