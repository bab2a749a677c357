"""Configuration of `autospace search` (DESIGN 2.4): ProxylessNAS-G, ProxylessNAS-RL and SPOS."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar, Literal

SEARCH_METHODS = ("proxyless-g", "proxyless-rl", "spos")


def _help(text: str, default):
    return field(default=default, metadata={"help": text})


@dataclass(frozen=True)
class SearchConfig:
    config_section: ClassVar[str] = "search"

    # -- problem -----------------------------------------------------------------------------
    method: Literal["proxyless-g", "proxyless-rl", "spos"] = _help("search algorithm", "proxyless-g")
    space: str = _help("search space: manual (inverted residuals k3/5/7 x e3/6 + zero), open "
                       "(any open-space cell; spos only), a path to a space.json, or union:PATH (that "
                       "space.json with the manual blocks added to every layer)", "manual")
    preset: str = _help("macro skeleton for the manual and open spaces: cifar, cifar-small or imagenet", "cifar")
    target_madds: int = _help("MAdds budget of the found network", 60_000_000)
    target_latency_ms: float | None = _help(
        "latency budget of the found network in ms, predicted from latency_table (issue 18); when set it is the "
        "target the search aims at and target_madds / target_params are caps", None)
    latency_table: str | None = _help("latency table (autospace latency-table) for target_latency_ms", None)
    target_params: int | None = _help("parameter budget of the found network (a cap); None: none", None)
    data: str = _help("data set: cifar10, fashion-mnist, mnist, synthetic[:TRAIN,TEST] or an ImageFolder path", "cifar10")
    data_dir: str | None = _help("folder holding the data files (default: $AUTOSPACE_DATA)", None)
    train_subset: int | None = _help("use this many training images (stratified); None: all", None)
    image_size: int | None = _help("area-resize the images to this side in pixels (a CPU proxy, e.g. 16); "
                                   "None: as they are", None)
    validation_fraction: float = _help("held-out share of the training images for every search decision", 0.2)

    # -- supernet weights ----------------------------------------------------------------------
    epochs: int = _help("passes over the training split", 10)
    batch_size: int = _help("images per step", 128)
    zero_residual: bool = _help("residual candidates of the supernet start as the identity (last BN scale 0, "
                                "as in BigNAS), so switching paths disturbs the layers after them less", True)
    warm_start: bool = _help("searching a space.json that `autospace evolve --method autospace` wrote beside its "
                             "checkpoint: start the supernet's stem, head and cells from the DEA supernet's "
                             "weights instead of a fresh initialisation (the built-in spaces have no DEA "
                             "supernet: ignored there)", False)
    weight_lr: float = _help("peak SGD learning rate of the supernet weights (cosine to 0)", 0.05)
    pretrain_steps: int = _help("proxyless-g/rl: uniform single-path weight steps (their own cosine schedule) before "
                                "the search's epochs, e.g. as many as a learned space's evolve gave its supernet, "
                                "so that a built-in space's search gets equal supernet compute (issue 28)", 0)
    weight_momentum: float = _help("SGD (Nesterov) momentum", 0.9)
    weight_decay: float = _help("weight decay on conv/linear weights (not BN, not biases)", 4e-5)
    label_smoothing: float = _help("label smoothing of the weight steps' cross-entropy", 0.1)
    warmup_epochs: float = _help("weight-only epochs before architecture steps (proxyless-g/rl)", 2.0)

    # -- architecture steps (proxyless-g, proxyless-rl) ----------------------------------------
    arch_lr: float = _help("Adam learning rate of the architecture logits (betas 0, 0.999)", 1e-3)
    arch_every: int = _help("one architecture step every this many weight steps", 5)
    penalty: Literal["mul-log", "add-linear", "absolute"] = _help(
        "MAdds term: mul-log = CE * a * (log E[MAdds] / log target)^b; add-linear = CE + w * E[MAdds]/target; "
        "absolute (TuNAS, two-sided) = CE + w * |E[MAdds]/target - 1|, and for proxyless-rl the reward "
        "acc - w * |MAdds/target - 1| instead of acc * (target/MAdds)^rl_exponent", "mul-log")
    penalty_alpha: float = _help("a of mul-log", 0.2)
    penalty_beta: float = _help("b of mul-log", 0.3)
    penalty_weight: float = _help("w of add-linear and absolute", 0.5)
    fit_to_budget: bool = _help(
        "proxyless-g/rl: when the argmax network is over target_madds, return (and validate every epoch) the "
        "most probable network within it, found exactly from the per-layer probabilities; false: the plain "
        "argmax, which a short search can leave over budget", True)
    budget_floor: float = _help(
        "with fit_to_budget, a network under budget_floor x target_madds is lifted to the most probable one "
        "in [budget_floor x target, target] when the space has one (0: no lower bound)", 0.9)
    pick: Literal["measured", "fitted"] = _help(
        "proxyless-g/rl: how the returned network is chosen. measured: the best of pick_candidates networks in "
        "[budget_floor x target, target] (and within any latency/params target) drawn from the final "
        "distributions, the most probable first, each scored on pick_images held-out images after BN "
        "recalibration; fitted: the most probable network in that band by log-probability alone (fit_to_budget)",
        "measured")
    pick_candidates: int = _help("networks the measured pick scores", 12)
    pick_images: int = _help("held-out images (class-balanced) each measured-pick candidate is scored on", 2000)
    rl_exponent: float = _help("w of the RL reward acc * (target / MAdds)^w", 0.5)
    rl_samples: int = _help("architectures sampled per RL step", 4)
    rl_baseline_decay: float = _help("decay of the RL moving-average baseline", 0.9)

    # -- spos -----------------------------------------------------------------------------------
    population: int = _help("spos evolution: population size", 50)
    top: int = _help("spos evolution: parents kept per generation", 10)
    mutations: int = _help("spos evolution: children by mutation per generation", 25)
    crossovers: int = _help("spos evolution: children by crossover per generation", 25)
    generations: int = _help("spos evolution: generations", 20)
    mutation_probability: float = _help("spos evolution: chance each layer changes in a mutation", 0.1)
    recalibration_batches: int = _help("training batches for BN recalibration before each evaluation "
                                       "(spos candidates, the per-epoch argmax of proxyless)", 8)

    # -- evaluation ------------------------------------------------------------------------------
    eval_batches: int = _help("held-out batches per evaluation (spos fitness, RL reward uses one); "
                              "per-epoch validation uses the whole held-out split", 4)

    # -- execution -------------------------------------------------------------------------------
    seed: int = _help("seed of every random generator of the run", 0)
    device: str = _help("auto (CUDA if present), cpu, cuda or cuda:N", "auto")
    precision: str = _help("auto (bf16 on CUDA, fp32 on CPU), fp32 or bf16", "auto")
    channels_last: bool | Literal["auto"] = _help("NHWC memory format (auto: on)", "auto")
    progress: bool = _help("show a progress bar", True)
    skip_nonfinite: int = _help(
        "tolerate this many non-finite steps in the run: a step whose loss or gradient is not finite is "
        "skipped (no update, BN statistics restored) and one more stops the run; 0: the first non-finite "
        "epoch loss stops it. N > 0 checks every step (one device sync per step)", 0)
    tensorboard: bool = _help("also write the per-epoch figures as TensorBoard scalars", False)

    def __post_init__(self) -> None:
        from autospace.runtime.config import require_at_least, require_between
        from autospace.errors import AutospaceError

        require_at_least(self, 1, "target_madds", "epochs", "batch_size", "arch_every", "rl_samples",
                         "pick_candidates", "pick_images",
                         "population", "top", "generations", "recalibration_batches", "eval_batches",
                         "train_subset")
        require_at_least(self, 0, "mutations", "crossovers", "warmup_epochs", "weight_decay", "pretrain_steps",
                         "penalty_alpha", "penalty_beta", "penalty_weight", "rl_exponent", "skip_nonfinite")
        require_between(self, 0.0, 1.0, "budget_floor", "weight_momentum", "label_smoothing", "rl_baseline_decay",
                        "mutation_probability")
        require_between(self, 0.01, 0.9, "validation_fraction")
        for name in ("weight_lr", "arch_lr"):
            if not getattr(self, name) > 0:
                raise AutospaceError(f"{name} is {getattr(self, name)!r}; it must be > 0")
        if self.target_latency_ms is not None and not (0 < self.target_latency_ms < float("inf")):
            raise AutospaceError(f"target_latency_ms is {self.target_latency_ms!r}; it must be a number of ms > 0")
        if self.target_latency_ms is not None and not self.latency_table:
            raise AutospaceError("target_latency_ms needs latency_table (--latency-table TABLE.json, made by "
                                 "`autospace latency-table`)")
        if self.target_params is not None and self.target_params < 1:
            raise AutospaceError(f"target_params is {self.target_params!r}; it must be >= 1")
        if self.top > self.population:
            raise AutospaceError(f"top ({self.top}) exceeds population ({self.population})")
        if self.warmup_epochs >= self.epochs and self.method != "spos":
            raise AutospaceError(f"warmup_epochs ({self.warmup_epochs}) leaves no epoch for architecture steps "
                                 f"out of epochs={self.epochs}; lower warmup_epochs below epochs")
