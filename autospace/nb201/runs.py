"""The three NB201 commands as library functions: cost, rank (fitness vs ground truth), search.

Each returns the dict its CLI prints as one JSON line; `rank` and `search` write a
run folder (config.yaml, history.jsonl, checkpoints) and resume from it.
"""

from __future__ import annotations

import csv
import io
import random
from pathlib import Path

from autospace.arch.nb201 import (
    Nb201Cell, mutate_nb201, parse_nb201_string, random_nb201_cell, read_nb201_strings, require_nonempty,
    to_nb201_string,
)
from autospace.runtime.atomic import atomic_write_json, atomic_write_text
from autospace.cost.nb201 import nb201_network_cost
from autospace.data.registry import resolve_data_dir
from autospace.errors import AutospaceError
from autospace.nb201.loop import proxy_description, run_tied_dea
from autospace.nb201.config import Nb201Config
from autospace.nb201.table import TABLE_NAME, Nb201Table, kendall, random_search_floor, spearman

RANDOM_SEARCH_TRIALS = 100


def nb201_costs(cells_file: str | Path) -> list[dict]:
    """Params and MAdds of NB201's own network (C=16, N=5, 32x32, 10 classes) per cell of the file."""
    rows = []
    for cell in read_nb201_strings(cells_file):
        cost = nb201_network_cost(cell)
        rows.append({"arch_str": to_nb201_string(cell), "params": cost.params, "madds": cost.madds})
    return rows


def table_path(config: Nb201Config) -> Path:
    return Path(config.table) if config.table else resolve_data_dir(config.data_dir) / TABLE_NAME


def optional_table(config: Nb201Config) -> Nb201Table | None:
    path = table_path(config)
    if config.table is None and not path.is_file():
        return None  # no table: the run still works, only the figures against ground truth are missing
    return Nb201Table(path)


def rank_cells(config: Nb201Config, out: str | Path, cells_file: str | Path | None = None,
               resume: bool = False) -> dict:
    """Train the tied supernet over exactly the cells of `cells_file`; write `out/fitness.csv`
    and score fitness (and #params) against the table's cifar10_valid."""
    out = Path(out)
    if resume:
        cells = read_nb201_strings(out / "cells.txt")
    else:
        if cells_file is None:
            raise AutospaceError("nb201 rank needs --cells FILE (one NB201 string a line) or --resume RUN_DIR")
        cells = [require_nonempty(cell) for cell in read_nb201_strings(cells_file)]
        if len(cells) < 2:
            raise AutospaceError(f"{cells_file} holds {len(cells)} cell; ranking needs at least 2")
    table = optional_table(config)
    if table is not None:
        for cell in cells:
            table.row(cell)  # refuse an unknown cell before any training
    result = run_tied_dea(config, out, cells, search=False, resume=resume,
                          extra_files={"cells.txt": _cells_text(cells)})
    population = result["population"]
    text = io.StringIO()
    writer = csv.writer(text, lineterminator="\n")
    writer.writerow(["arch_str", "fitness", "trained_steps"])
    for member in population:
        writer.writerow([member["arch_str"], f"{member['fitness']:.6f}", member["count"]])
    atomic_write_text(out / "fitness.csv", text.getvalue())
    summary = {"cells": len(population), "steps": result["steps"], "wall_time_s": result["wall_time_s"],
               "proxy": proxy_description(config)}
    if table is not None:
        fitness = [member["fitness"] for member in population]
        valid = [table.row(cell).valid for cell in cells]
        params = [float(table.row(cell).params) for cell in cells]
        summary.update({"fitness_spearman": round(spearman(fitness, valid), 4),
                        "fitness_kendall": round(kendall(fitness, valid), 4),
                        "params_spearman": round(spearman(params, valid), 4),
                        "params_kendall": round(kendall(params, valid), 4)})
    atomic_write_json(out / "rank.json", summary)
    return summary


def _cells_text(cells: list[Nb201Cell]) -> str:
    return "".join(to_nb201_string(cell) + "\n" for cell in cells)


def initial_population(config: Nb201Config, rng: random.Random) -> list[Nb201Cell]:
    """Reference-free: uniform non-empty cells. From a reference: it and mutants of it (1-2 edges changed)."""
    if config.reference is None:
        return [random_nb201_cell(rng) for _ in range(config.population_size)]
    reference = require_nonempty(parse_nb201_string(config.reference))
    cells = [reference]
    while len(cells) < config.population_size:
        child = mutate_nb201(reference, rng)
        cells.append(mutate_nb201(child, rng) if rng.random() < 0.5 else child)
    return cells


def search_nb201(config: Nb201Config, out: str | Path, resume: bool = False) -> list[dict]:
    """The tied DEA over the whole NB201 space; returns [the DEA's line, random search's line]."""
    out = Path(out)
    table = optional_table(config)
    initial = initial_population(config, random.Random(config.seed + 5))  # also for a resume before any checkpoint
    result = run_tied_dea(config, out, initial, search=True, resume=resume)
    judged = [m for m in result["population"] if m["count"] >= config.min_trained_steps] or result["population"]
    best = max(judged, key=lambda member: member["fitness"])
    found = {"method": "tied-dea", "arch_str": best["arch_str"], "fitness": round(best["fitness"], 6),
             "trained_steps": best["count"], "evaluated": len(result["evaluated"]), "steps": result["steps"],
             "wall_time_s": result["wall_time_s"], "reference": config.reference, "proxy": proxy_description(config)}
    lines = [found]
    if table is not None:
        cell = parse_nb201_string(best["arch_str"])
        found.update({"valid": table.row(cell).valid, "rank": table.rank(cell), "of": len(table.rows)})
        lines.append(random_search_floor(table, len(result["evaluated"]), RANDOM_SEARCH_TRIALS, config.seed))
    atomic_write_json(out / "found.json", lines)
    return lines
