"""`autospace run`: evolve -> search -> train in one run folder, then report.md.

RUN_DIR/evolve, RUN_DIR/search and RUN_DIR/train are ordinary run folders of
their commands. A stage is done when its output exists (space.json, arch.json,
metrics.json); a stage folder without it is resumed, so `--resume` after a kill
continues inside the stage that was running.

Under torchrun every rank runs every stage (see `autospace.runtime.distributed`);
rank 0 writes the files, and each stage ends with a barrier, so the next
stage finds its input (space.json, arch.json) on every rank.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import ClassVar, Literal

from autospace.runtime.atomic import atomic_write_json
from autospace.runtime.config import load_config, save_config
from autospace.runtime.device import hardware_info, resolve_device
from autospace.runtime.distributed import barrier, init_distributed
from autospace.errors import AutospaceError
from autospace.evolve.config import EvolveConfig
from autospace.evolve.nse_config import NseConfig
from autospace.runtime.run_lock import LOCK_NAME, run_folder_lock
from autospace.search.config import SearchConfig
from autospace.search.spaces import BUILT_IN_SPACES, space_file
from autospace.train.checkpoint import require_new_run_dir
from autospace.train.config import TrainConfig


def _help(text: str, default=None, factory=None):
    if factory is not None:
        return field(default_factory=factory, metadata={"help": text})
    return field(default=default, metadata={"help": text})


@dataclass(frozen=True)
class RunConfig:
    config_section: ClassVar[str] = "run"

    data: str = _help("data set: cifar10, fashion-mnist, mnist, synthetic[:TRAIN,TEST] or an ImageFolder path", "cifar10")
    data_dir: str | None = _help("folder holding the data files (default: $AUTOSPACE_DATA)", None)
    budget_madds: int = _help("MAdds budget: the evolved space's caps and the search's target", 60_000_000)
    space_method: Literal["autospace", "nse", "manual"] = _help(
        "where the search runs: a space evolved by autospace (the DEA) or by nse, or the manual "
        "inverted-residual space", "autospace")
    search_method: Literal["proxyless-g", "proxyless-rl", "spos"] = _help("search algorithm", "proxyless-g")
    seed: int = _help("seed of every stage", 0)
    device: str = _help("auto (CUDA if present), cpu, cuda or cuda:N", "auto")
    precision: str = _help("auto (bf16 on CUDA, fp32 on CPU), fp32 or bf16", "auto")
    progress: bool = _help("show progress bars", True)
    tensorboard: bool = _help("TensorBoard scalars beside every stage's JSONL log", False)
    image_size: int | None = _help("area-resize the images of every stage to this side in pixels (a CPU "
                                   "proxy, e.g. 16); None: as they are", None)
    evolve: EvolveConfig = _help("settings of the evolve stage with space_method autospace (evolve.KEY)",
                                 factory=EvolveConfig)
    nse: NseConfig = _help("settings of the evolve stage with space_method nse (nse.KEY)", factory=NseConfig)
    search: SearchConfig = _help("settings of the search stage (search.KEY)", factory=SearchConfig)
    train: TrainConfig = _help("settings of the final training (train.KEY)", factory=TrainConfig)


def stage_configs(config: RunConfig, out: Path) -> tuple[EvolveConfig | NseConfig, SearchConfig, TrainConfig]:
    """The run-level settings win over the stages' own."""
    shared = {"data": config.data, "data_dir": config.data_dir, "seed": config.seed, "device": config.device,
              "precision": config.precision, "progress": config.progress,
              "tensorboard": config.tensorboard, "image_size": config.image_size}
    learner = config.nse if config.space_method == "nse" else config.evolve
    evolve = replace(learner, budget_madds=config.budget_madds, **shared)
    if isinstance(evolve, EvolveConfig) and evolve.budget_madds_max is not None:  # the range holds the budget
        evolve = replace(evolve, budget_madds_max=max(evolve.budget_madds_max, config.budget_madds))
    space = "manual" if config.space_method == "manual" else str(out / "evolve" / "space.json")
    search = replace(config.search, target_madds=config.budget_madds, method=config.search_method,
                     space=space, preset=learner.preset, **shared)
    train = replace(config.train, **shared)
    return evolve, search, train


def recorded_run_config(config: RunConfig, out: Path) -> RunConfig:
    """The run config as the stages use it, for config.yaml and report.md: each stage's section is the
    config that stage runs with (the run-level budget, method, space, preset and shared keys applied), so
    the record says what ran. The learner section the run does not use gets the shared keys too."""
    evolve, search, train = stage_configs(config, out)
    run_level = {key: getattr(evolve, key) for key in ("budget_madds", "data", "data_dir", "seed", "device",
                                                         "precision", "progress", "tensorboard", "image_size")}
    if config.space_method == "nse":
        learners = {"nse": evolve, "evolve": replace(config.evolve, **run_level)}
    else:
        learners = {"evolve": evolve, "nse": replace(config.nse, **run_level)}
    return replace(config, search=search, train=train, **learners)


def unused_sections_note(config: RunConfig) -> list[str]:
    """A comment line for config.yaml naming the sections this run does not run."""
    if config.space_method == "manual":
        return ["space_method manual: no evolve stage; the evolve and nse sections are not used "
                "(the search takes its preset from evolve.preset)"]
    unused = "evolve" if config.space_method == "nse" else "nse"
    return [f"space_method {config.space_method}: the {unused} section is not used"]


def stage_state(folder: Path, output: str) -> str:
    if (folder / output).exists():
        return "done"
    if folder.is_dir() and any(entry.name != LOCK_NAME for entry in folder.iterdir()):  # not just a lock
        return "resume"
    return "new"


def run_pipeline(config: RunConfig, out: str | Path, resume: bool = False) -> dict:
    """Run every stage not yet done; returns the final metrics (and writes RUN_DIR/report.md)."""
    with run_folder_lock(out, create=not resume):
        return _run_pipeline(config, out, resume)


def _run_pipeline(config: RunConfig, out: str | Path, resume: bool) -> dict:
    from autospace.arch.codec import load_arch
    from autospace.evolve import evolve
    from autospace.report.html import write_html_report
    from autospace.report.markdown import write_run_report
    from autospace.search import search
    from autospace.train import train

    out = Path(out)
    device = resolve_device(config.device)
    dist = init_distributed(device.type)
    if resume:
        if not (out / "config.yaml").exists():
            raise AutospaceError(f"cannot resume: {out} holds no run (no config.yaml); start one with --out")
    else:
        require_new_run_dir(out)
    # Every stage's state is read before rank 0 writes anything (under torchrun the ranks look at once).
    states = {stage: stage_state(out / stage, output)
              for stage, output in (("evolve", "space.json"), ("search", "arch.json"), ("train", "metrics.json"))}
    barrier(dist)
    if dist.is_main:
        if not resume:
            out.mkdir(parents=True, exist_ok=True)
            save_config(out / "config.yaml", recorded_run_config(config, out), unused_sections_note(config))
        # What this (latest) session runs on; the stages' own files record theirs too.
        atomic_write_json(out / "hardware.json", hardware_info(dist.local_device(device)))
    barrier(dist)
    evolve_config, search_config, train_config = stage_configs(config, out)

    if config.space_method != "manual":
        state = states["evolve"]
        if state != "done":
            evolve(config.space_method, evolve_config, out / "evolve", resume=state == "resume")
    state = states["search"]
    if state != "done":
        if search(search_config, out / "search", resume=state == "resume",
                  initialise_supernet=(search_initialiser(search_config)  # NSE saves no DEA supernet
                                       if config.space_method == "autospace" else None)) is None:
            raise AutospaceError("the search stopped before it found a network")
    state = states["train"]
    if state == "done":
        metrics = json.loads((out / "train" / "metrics.json").read_text())
    else:
        metrics = train(load_arch(out / "search" / "arch.json"), train_config, out / "train",
                        resume=state == "resume")
    if dist.is_main:
        write_run_report(out)
        write_html_report([out])
    return metrics


def search_initialiser(config: SearchConfig):
    """What `search` starts the supernet from: with `warm_start` and a space.json, the DEA supernet
    saved beside it; else None (a fresh initialisation: the built-in spaces have no DEA supernet)."""
    if not config.warm_start or config.space in BUILT_IN_SPACES:
        return None
    from autospace.evolve.checkpoint import dea_warm_start

    return dea_warm_start(Path(space_file(config.space)).parent)


def load_run_config(preset: str | Path | None, overrides) -> RunConfig:
    return load_config(RunConfig, preset, overrides)
