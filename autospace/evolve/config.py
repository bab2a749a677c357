"""Configuration of `autospace evolve --method autospace` (the DEA, DESIGN 2.3).

Defaults are chosen for CIFAR-10 on the `cifar` skeleton; `configs/evolve/quick.yaml`
shrinks the run for a CPU.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar, Literal


def _help(text: str, default):
    return field(default=default, metadata={"help": text})


@dataclass(frozen=True)
class EvolveConfig:
    config_section: ClassVar[str] = "evolve"

    # -- problem ---------------------------------------------------------------------
    data: str = _help("data set: cifar10, fashion-mnist, mnist, synthetic[:TRAIN,TEST] or an ImageFolder path", "cifar10")
    data_dir: str | None = _help("folder holding the data files (default: $AUTOSPACE_DATA)", None)
    preset: str = _help("macro skeleton: cifar, cifar-small or imagenet", "cifar")
    budget_madds: int = _help("MAdds budget of the final network (the low end of the budget range the space "
                              "serves); with tiers=0 it sets each layer's band", 60_000_000)
    budget_madds_max: int | None = _help("high end of the budget range the space serves (space.json records "
                                         "the range and whether networks below and above it exist); None: "
                                         "budget_madds alone", None)
    reference: str = _help("reference DAG: 'irb' (the inverted residual cell) or a cell string "
                           "like e6-sum:dwconv3x3,zero,zero,zero,identity,zero", "irb")
    train_subset: int | None = _help("use this many training images (stratified); None: all", None)
    image_size: int | None = _help("area-resize the images to this side in pixels (a CPU proxy, e.g. 16); "
                                   "None: as they are", None)
    validation_fraction: float = _help("held-out share of the training images for fitness steps", 0.2)

    # -- population and supernet (step 1, 2) -------------------------------------------
    population_size: int = _help("cells kept per layer (P_l)", 16)
    candidates_per_layer: int = _help("cells per layer in the supernet (M)", 9)
    tournament_size: int = _help("entrants per tournament when picking supernet cells and parents", 3)
    max_distance: int = _help("delta: largest Hamming distance from the reference DAG while constrained", 3)
    tiers: int = _help(
        "cost tiers per layer: the population spans the layer's cost range (the cheapest reference-family member "
        "or manual k3e3 block to the manual k7e6 block or the costliest family member), cut into this many tiers "
        "of equal MAdds ratio; selection, mutation, removal and export act within a tier, so fitness chooses "
        "across costs and the search allocates the budget. 0: one MAdds band per layer (cap_slack, cap_floor, "
        "skipped_share; also used with target_latency_ms)", 3)
    family_stack_depth: int = _help(
        "with tiers: the deepest stack of dwconv3x3 in the reference family (the prior seeded and exported in "
        "every layer): 3, e1/e3/e6 x one, two and three stacked (receptive fields 3, 5, 7); 1, the reference "
        "cell alone at each expansion (issue 28: stacked chains of the seed-0 manual network trained 2.3 points "
        "below single 3x3 convs, docs/RESULTS.md)", 3)
    top_k_per_tier: int = _help("with tiers: learned cells exported per tier (beside every trained "
                                "reference-family member)", 1)
    cap_slack: float = _help("a layer admits cells in a MAdds band [floor x tau_l, tau_l] placed so that the "
                             "open-space cells in it cost slack x the layer's share of the budget on average "
                             "(1.08: the exported space's uniform-mean network costs about the budget)", 1.08)
    cap_floor: float = _help("the band's floor as a share of its cap tau_l (the reference family is "
                             "admitted whatever the band)", 0.6)
    skipped_share: float = _help(
        "share of the skippable layers (those with a residual) whose cost the bands assume the search skips: "
        "0, every layer is paid for; 1, only the layers that change stride or width, so each band admits "
        "wider cells and the search must skip layers to meet the budget (as the manual-space search does at "
        "small budgets)", 0.0)
    target_latency_ms: float | None = _help(
        "latency target (issue 18): each layer admits cells whose latency, predicted from latency_table's cell "
        "components, lies in a band placed like the MAdds band; the MAdds band then keeps only its cap; "
        "None: MAdds only", None)
    latency_table: str | None = _help("latency table with the open space's cell components (autospace "
                                      "latency-table open:PRESET) for target_latency_ms", None)

    # -- training (step 3) ---------------------------------------------------------------
    epochs: int = _help("passes over the training split", 10)
    batch_size: int = _help("images per weight and fitness step", 128)
    weight_lr: float = _help("peak SGD learning rate of the supernet weights", 0.05)
    weight_momentum: float = _help("SGD (Nesterov) momentum of the supernet weights", 0.9)
    weight_decay: float = _help("weight decay on conv/linear weights (not BN, not biases)", 4e-5)
    label_smoothing: float = _help("label smoothing of the cross-entropy", 0.1)
    warmup_epochs: float = _help("weight-only epochs (cells drawn uniformly) before fitness steps begin", 1.0)
    zero_residual: bool = _help("cells of residual layers start as the identity (output BN scale 0, as in "
                                "BigNAS): switching cells then disturbs the layers after them less, and the "
                                "supernet leaves chance sooner (bench/supernet_learning.py)", True)
    fitness_lr: float = _help("Adam learning rate of the fitness alpha", 0.01)
    fitness_every: int = _help("one fitness step every this many weight steps", 1)

    # -- regeneration (step 4) -------------------------------------------------------------
    regenerate_every: int = _help("N: weight steps between regenerations", 50)
    momentum: float = _help("m of Eq. 5: alpha_pop <- m alpha_old + (1 - m) alpha_new", 0.5)
    offspring: int = _help("new cells per layer per regeneration", 2)
    max_age: int = _help("an individual older than this (in regenerations) is removed first", 8)
    constrained_fraction: float = _help("share of the run during which d_H <= delta is enforced", 0.5)

    min_windows: int = _help("fitness windows (regenerations with fitness steps) a cell needs before it can be "
                             "a parent, be removed as the weakest or be exported; cells short of it, or of "
                             "min_trained_steps, take the supernet's slots first", 2)
    fitness_average: Literal["windows", "momentum"] = _help(
        "how a window's fitness joins the population's (Eq. 5): windows = the mean over the cell's windows "
        "(m = n / (n + 1)); momentum = alpha_pop <- m alpha_old + (1 - m) alpha_new with m = momentum", "windows")
    min_trained_steps: int | None = _help(
        "weight steps a cell needs before it can be a parent, be removed as the weakest or rank among the "
        "exported cells; None: one regeneration window's share, regenerate_every / candidates_per_layer", None)

    # -- output ------------------------------------------------------------------------------
    top_k: int = _help("K: cells per layer in the learned space", 4)
    export_reference: bool = _help("also export each layer's scaled reference cell beside the top-K, so a "
                                   "search in the learned space can always pick the prior", True)
    export_reference_family: bool = _help(
        "also export the reference cell at every expansion ratio in every layer, over the layer's MAdds cap "
        "too: the search, under the network's budget, can then move cost between layers (skip one, widen "
        "another) as it can in the manual space; members the DEA never trained start fresh", False)

    # -- diagnostics: is the fitness signal? ---------------------------------------------------
    diagnostic_paths: int = _help("paths (drawn by fitness) whose held-out top-1 is measured after BN "
                                  "recalibration at every regeneration; 0: off", 2)
    diagnostic_batches: int = _help("batches for that BN recalibration, and held-out batches for the "
                                    "accuracy", 4)

    # -- execution ---------------------------------------------------------------------------
    seed: int = _help("seed of every random generator of the run", 0)
    device: str = _help("auto (CUDA if present), cpu, cuda or cuda:N", "auto")
    precision: str = _help("auto (bf16 on CUDA, fp32 on CPU), fp32 or bf16", "auto")
    channels_last: bool | Literal["auto"] = _help("NHWC memory format (auto: on; faster on CUDA and CPU)", "auto")
    progress: bool = _help("show a progress bar", True)
    skip_nonfinite: int = _help(
        "tolerate this many non-finite steps in the run: a step whose loss or gradient is not finite is "
        "skipped (no update, BN statistics restored) and one more stops the run; 0: the first non-finite "
        "regeneration loss stops it. N > 0 checks every step (one device sync per step)", 0)
    tensorboard: bool = _help("also write the per-regeneration figures as TensorBoard scalars", False)

    def __post_init__(self) -> None:
        from autospace.runtime.config import require_at_least, require_between
        from autospace.errors import AutospaceError

        require_at_least(self, 1, "budget_madds", "population_size", "tournament_size", "max_distance",
                         "epochs", "batch_size", "fitness_every", "regenerate_every", "top_k", "train_subset")
        require_at_least(self, 2, "candidates_per_layer")
        require_at_least(self, 0, "offspring", "max_age", "warmup_epochs", "weight_decay", "skip_nonfinite",
                         "min_trained_steps", "diagnostic_paths", "tiers", "min_windows")
        require_at_least(self, 1, "top_k_per_tier", "budget_madds_max")
        if self.budget_madds_max is not None and self.budget_madds_max < self.budget_madds:
            raise AutospaceError(f"budget_madds_max ({self.budget_madds_max:,}) is below budget_madds "
                                 f"({self.budget_madds:,}); the range is [budget_madds, budget_madds_max]")
        from autospace.evolve.cost_tiers import STACK_DEPTHS

        if self.family_stack_depth not in STACK_DEPTHS:
            raise AutospaceError(f"family_stack_depth is {self.family_stack_depth!r}; "
                                 f"valid: {', '.join(map(str, STACK_DEPTHS))}")
        if self.fitness_average not in ("windows", "momentum"):
            raise AutospaceError(f"fitness_average is {self.fitness_average!r}; valid: windows, momentum")
        require_at_least(self, 1, "diagnostic_batches")
        require_between(self, 0.0, 1.0, "cap_floor", "skipped_share")
        require_between(self, 0.0, 1.0, "momentum", "constrained_fraction", "weight_momentum", "label_smoothing")
        require_between(self, 0.01, 0.9, "validation_fraction")
        require_at_least(self, 1.0, "cap_slack")
        for name in ("weight_lr", "fitness_lr"):
            if not getattr(self, name) > 0:
                raise AutospaceError(f"{name} is {getattr(self, name)!r}; it must be > 0")
        if self.target_latency_ms is not None and not (0 < self.target_latency_ms < float("inf") and self.latency_table):
            raise AutospaceError(f"target_latency_ms is {self.target_latency_ms!r}; it must be a number of ms > 0, "
                                 f"with latency_table (made by `autospace latency-table open:PRESET`)")
        if self.candidates_per_layer > self.population_size:
            raise AutospaceError(
                f"candidates_per_layer ({self.candidates_per_layer}) exceeds population_size "
                f"({self.population_size}); the supernet draws its cells from the population")
        if self.top_k > self.population_size:
            raise AutospaceError(f"top_k ({self.top_k}) exceeds population_size ({self.population_size})")

    @property
    def min_steps(self) -> int:
        """`min_trained_steps`, or one regeneration window's share of weight steps per supernet cell."""
        if self.min_trained_steps is not None:
            return self.min_trained_steps
        return max(1, self.regenerate_every // self.candidates_per_layer)
