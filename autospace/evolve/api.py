"""`evolve(method, config, out)`: learn a search space with one of the methods, and hand the learned
space to the report layer (space.md; the DEA's fitness plot too), written just before space.json."""

from __future__ import annotations

from pathlib import Path

from autospace.runtime.distributed import environment_world_size
from autospace.errors import AutospaceError
from autospace.evolve.config import EvolveConfig
from autospace.evolve.dea import evolve_autospace
from autospace.evolve.nse import evolve_nse
from autospace.evolve.nse_config import NseConfig
from autospace.report.space import write_fitness_plot, write_space_table
from autospace.runtime.run_lock import run_folder_lock

EVOLVE_METHODS = {"autospace": (EvolveConfig, evolve_autospace), "nse": (NseConfig, evolve_nse)}
DISTRIBUTED_METHODS = ("autospace", "nse")  # methods whose loop uses autospace.runtime.distributed (torchrun)


def dea_report(out: Path, space) -> list:
    return [lambda: write_space_table(out / "space.md", space),
            lambda: write_fitness_plot(out / "fitness.png", out / "history.jsonl", space)]


def nse_report(out: Path, space) -> list:
    return [lambda: write_space_table(out / "space.md", space)]


REPORTS = {"autospace": dea_report, "nse": nse_report}


def evolve(method: str, config, out: str | Path, resume: bool = False):
    """Learn a search space with `method` and write `out/space.json`; returns the SearchSpace."""
    if method not in EVOLVE_METHODS:
        raise AutospaceError(f"unknown evolve method {method!r}; valid methods: {', '.join(EVOLVE_METHODS)}")
    if method not in DISTRIBUTED_METHODS and environment_world_size() > 1:
        raise AutospaceError(f"evolve --method {method} does not run under torchrun yet (every process would "
                             f"write the same folder); run it as one process, or use --method "
                             f"{' or '.join(DISTRIBUTED_METHODS)}")
    with run_folder_lock(out, create=not resume):
        return EVOLVE_METHODS[method][1](config, out, resume=resume, report=REPORTS[method])

