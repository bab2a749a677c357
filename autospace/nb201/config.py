"""Configuration of `autospace nb201 rank` and `autospace nb201 search` (the tied DEA, DESIGN 2.6).

Defaults are NB201's own network (C=16, N=5, 32x32); a CPU run lowers `channels`,
`cells_per_stage`, `image_size` and `train_subset` (a proxy, reported as such).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar, Literal


def _help(text: str, default):
    return field(default=default, metadata={"help": text})


@dataclass(frozen=True)
class Nb201Config:
    config_section: ClassVar[str] = "nb201"

    # -- problem ---------------------------------------------------------------------
    data: str = _help("data set (the NB201 table is for cifar10)", "cifar10")
    data_dir: str | None = _help("folder holding the data files (default: $AUTOSPACE_DATA)", None)
    table: str | None = _help("NB201 table (CSV); default: DATA_DIR/nb201/nb201_cifar10_valid.csv", None)
    channels: int = _help("C: cell channels of the first stage (NB201: 16)", 16)
    cells_per_stage: int = _help("N: cells per stage (NB201: 5)", 5)
    image_size: int = _help("images are area-downsampled to this side (NB201: 32); a multiple of 4", 32)
    train_subset: int | None = _help("use this many training images (stratified); None: all", None)
    validation_fraction: float = _help("held-out share of the training images, for fitness steps", 0.2)
    augment: bool = _help("random crop (padding 4) and flip on training batches; a short run on small "
                          "images learns faster without", True)

    # -- training --------------------------------------------------------------------
    steps: int = _help("weight steps in all (one sampled cell in every position per step)", 2000)
    batch_size: int = _help("images per weight and fitness step", 64)
    warmup_fraction: float = _help("share of the steps with cells drawn uniformly and no fitness steps", 0.5)
    weight_sampling: Literal["fitness", "uniform", "fair"] = _help(
        "after warm-up, weight steps draw cells by p = softmax(fitness) (fitness: the DEA) or uniformly; fair: "
        "throughout, every member once per shuffled round, so trained steps differ by at most one", "fitness")
    weight_lr: float = _help("peak SGD (Nesterov) learning rate of the weights, cosine to 0", 0.05)
    weight_momentum: float = _help("SGD momentum of the weights", 0.9)
    weight_decay: float = _help("weight decay on conv/linear weights", 5e-4)
    fitness_lr: float = _help("SGD learning rate of the fitness alpha (Eq. 4 scales its gradient)", 0.5)
    fitness_every: int = _help("one fitness step every this many weight steps, after warm-up", 1)
    regenerate_every: int = _help("N of Eq. 5: weight steps between fitness write-backs (and checkpoints)", 100)
    momentum: float = _help("m of Eq. 5: fitness <- m fitness + (1 - m) alpha", 0.5)

    # -- search only -------------------------------------------------------------------
    population_size: int = _help("search: cells in the population", 32)
    offspring: int = _help("search: mutated children per regeneration", 4)
    tournament_size: int = _help("search: entrants per parent tournament", 4)
    max_age: int = _help("search: an individual older than this (regenerations) leaves first", 10)
    min_trained_steps: int = _help("search: weight steps a cell needs before it can win, lose or be reported", 10)
    child_fitness_shrink: float = _help("search: a child starts at this share of its parent's fitness", 0.5)
    min_windows: int = _help("search: fitness windows (write-backs after warm-up) a cell needs before it can win "
                             "a tournament or the fitness pick; the fitness compared is the mean over its windows", 3)
    reference: str | None = _help("search: NB201 string to seed the population around; None: reference-free", None)

    # -- measured pick and baselines (after training) --------------------------------------
    rescore: bool = _help("re-score cells with the shared weights on the held-out images after BN "
                          "recalibration; rank: every cell; search: the pick is the best re-scored cell", True)
    pick: Literal["rescored", "rescored+params+naswot"] = _help(
        "search: how the re-scored cells are ranked for the final pick: by re-scored accuracy, or by the mean "
        "of their ranks under re-scored accuracy, #params and NASWOT (NB201 search seeds 0-2: it ranks the evaluated "
        "cells at Spearman 0.69-0.81 against 0.35-0.64; its pick 90.15 / 91.06 / 89.25% against 87.66 / 90.38 / "
        "90.02%; docs/RESULTS.md)", "rescored+params+naswot")
    rescore_top: int = _help("search: re-score this many cells of the final population, best mean fitness first", 20)
    rescore_evaluated: bool = _help("search: also re-score every cell the search evaluated", True)
    recalibration_images: int = _help("training images (fixed, the same for every cell) for BN recalibration", 2048)
    rescore_images: int | None = _help("held-out images per re-score; None: all of the held-out split", None)
    naswot: bool = _help("compute NASWOT (Mellor et al. 2021) on one batch per cell, a training-free baseline", True)
    naswot_batch: int = _help("images in NASWOT's batch", 128)
    naswot_channels: int = _help("C of the NASWOT network (NB201: 16), full-size images", 16)
    naswot_cells_per_stage: int = _help("N of the NASWOT network (NB201: 5)", 5)

    # -- execution ---------------------------------------------------------------------
    seed: int = _help("seed of every random generator of the run", 0)
    device: str = _help("auto (CUDA if present), cpu, cuda or cuda:N", "auto")
    progress: bool = _help("show a progress bar", False)

    def __post_init__(self) -> None:
        from autospace.runtime.config import require_at_least, require_between
        from autospace.errors import AutospaceError

        require_at_least(self, 1, "channels", "cells_per_stage", "steps", "batch_size", "fitness_every",
                         "regenerate_every", "train_subset", "tournament_size",
                         "recalibration_images", "rescore_images", "naswot_batch", "naswot_channels",
                         "naswot_cells_per_stage")
        require_at_least(self, 2, "population_size")
        require_at_least(self, 0, "offspring", "max_age", "min_trained_steps", "weight_decay", "min_windows", "rescore_top")
        require_between(self, 0.0, 1.0, "momentum", "weight_momentum", "warmup_fraction", "child_fitness_shrink")
        require_between(self, 0.01, 0.9, "validation_fraction")
        if self.image_size < 4 or self.image_size % 4:
            raise AutospaceError(f"image_size is {self.image_size!r}; use a multiple of 4 (NB201: 32; proxy: 16)")
        for name in ("weight_lr", "fitness_lr"):
            if not getattr(self, name) > 0:
                raise AutospaceError(f"{name} is {getattr(self, name)!r}; it must be > 0")
        if self.pick not in ("rescored", "rescored+params+naswot"):
            raise AutospaceError(f"pick is {self.pick!r}; use rescored or rescored+params+naswot")
        if self.pick == "rescored+params+naswot" and not self.naswot:
            raise AutospaceError("pick rescored+params+naswot needs NASWOT scores: set naswot=true, or pick=rescored")
        if self.weight_sampling not in ("fitness", "uniform", "fair"):
            raise AutospaceError(f"weight_sampling is {self.weight_sampling!r}; use fitness, uniform or fair")
