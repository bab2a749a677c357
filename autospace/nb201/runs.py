"""The three NB201 commands as library functions: cost, rank (fitness vs ground truth), search.

Each returns the dict its CLI prints as one JSON line; `rank` and `search` write a
run folder (config.yaml, history.jsonl, checkpoints) and resume from it.
"""

from __future__ import annotations

import csv
import io
import math
import random
import time
from pathlib import Path

import torch

from autospace.arch.nb201 import (
    Nb201Cell, canonical_nb201, mutate_nb201, parse_nb201_string, random_nb201_cell, read_nb201_strings, require_nonempty,
    to_nb201_string,
)
from autospace.runtime.atomic import atomic_write_json, atomic_write_text
from autospace.cost.nb201 import nb201_network_cost
from autospace.data.registry import resolve_data_dir
from autospace.errors import AutospaceError
from autospace.nb201.loop import can_win, mean_fitness, proxy_description, run_tied_dea
from autospace.nb201.report import compare_scores, rank_average, top_mean, with_combinations
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
    scores = {"fitness": [mean_fitness(member) for member in population],
              "fitness_last": [member["fitness"] for member in population]}
    columns = {"arch_str": [m["arch_str"] for m in population], "fitness": [f"{m['fitness']:.6f}" for m in population],
               "mean_fitness": [f"{value:.6f}" for value in scores["fitness"]],
               "windows": [m["windows"] for m in population], "trained_steps": [m["count"] for m in population]}
    timings = {}
    if config.rescore:
        began = time.perf_counter()
        rescored = rescore_population(config, result, cells)
        timings["rescore_s"] = round(time.perf_counter() - began, 1)
        scores["rescored"] = [row["accuracy"] for row in rescored]
        columns["rescored_accuracy"] = scores["rescored"]
        columns["rescored_loss"] = [row["loss"] for row in rescored]
    if config.naswot:
        began = time.perf_counter()
        scores["naswot"] = naswot_scores(config, cells)
        timings["naswot_s"] = round(time.perf_counter() - began, 1)
        columns["naswot"] = [f"{value:.4f}" for value in scores["naswot"]]
    atomic_write_text(out / "fitness.csv", _csv_text(columns))
    summary = {"cells": len(population), "steps": result["steps"], "wall_time_s": result["wall_time_s"], **timings,
               "proxy": proxy_description(config)}
    if table is not None:
        valid = [table.row(cell).valid for cell in cells]
        scores["params"] = [float(table.row(cell).params) for cell in cells]
        summary.update(compare_scores(with_combinations(scores), valid))
    atomic_write_json(out / "rank.json", summary)
    return summary


def rescore_population(config: Nb201Config, result: dict, cells: list[Nb201Cell]) -> list[dict]:
    from autospace.nb201.rescore import rescore_cells

    return rescore_cells(result["supernet"], cells, result["train_stream"], result["validation_stream"],
                         config.recalibration_images, config.rescore_images, seed=config.seed + 11)


def naswot_scores(config: Nb201Config, cells: list[Nb201Cell]) -> list[float]:
    """NASWOT of each cell's network (C=naswot_channels, N=naswot_cells_per_stage, full-size images) at
    initialisation, on one batch of `naswot_batch` training images drawn with the run's seed."""
    from autospace.data import load_dataset
    from autospace.data.batches import normalize_batch
    from autospace.nb201.naswot import nb201_naswot_scores

    dataset = load_dataset(config.data, config.data_dir)
    chosen = torch.randperm(dataset.train_labels.numel(), generator=torch.Generator().manual_seed(config.seed + 7))
    images = normalize_batch(dataset.train_images[chosen[:config.naswot_batch]], dataset.mean, dataset.std)
    return nb201_naswot_scores(cells, images, dataset.num_classes, config.naswot_channels,
                               config.naswot_cells_per_stage, seed=config.seed)


def _csv_text(columns: dict[str, list]) -> str:
    text = io.StringIO()
    writer = csv.writer(text, lineterminator="\n")
    writer.writerow(list(columns))
    writer.writerows(zip(*columns.values()))
    return text.getvalue()


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
    judged = [m for m in result["population"] if can_win(m, config)] or result["population"]
    best = max(judged, key=mean_fitness)
    found = {"method": "tied-dea", "arch_str": best["arch_str"], "fitness": round(mean_fitness(best), 6),
             "trained_steps": best["count"], "windows": best["windows"], "evaluated": len(result["evaluated"]),
             "steps": result["steps"], "wall_time_s": result["wall_time_s"], "reference": config.reference,
             "proxy": proxy_description(config)}
    fitness_pick = dict(found)
    candidates = search_candidates(config, result, judged)
    rescored, naswot = [], None
    if config.rescore:
        began = time.perf_counter()
        rescored = rescore_population(config, result, [parse_nb201_string(text) for text in candidates])
        found["rescore_s"] = round(time.perf_counter() - began, 1)
        if config.naswot:
            began = time.perf_counter()
            naswot = naswot_scores(config, [parse_nb201_string(row["arch_str"]) for row in rescored])
            found["naswot_s"] = round(time.perf_counter() - began, 1)
        pick = measured_pick_of(rescored, naswot if config.pick == "rescored+params+naswot" else None)
        rescored_pick = measured_pick_of(rescored)
        member = next((m for m in result["population"] if m["arch_str"] == pick["arch_str"]), None)
        found.update({"method": f"tied-dea, measured pick ({config.pick})", "arch_str": pick["arch_str"],
                      "rescored_accuracy": pick["accuracy"], "rescored": len(rescored),
                      "fitness": None if member is None else round(mean_fitness(member), 6),
                      "trained_steps": None if member is None else member["count"],
                      "windows": None if member is None else member["windows"]})
        columns = {"arch_str": [row["arch_str"] for row in rescored], "accuracy": [row["accuracy"] for row in rescored],
                   "loss": [row["loss"] for row in rescored],
                   "params": [nb201_network_cost(parse_nb201_string(row["arch_str"])).params for row in rescored]}
        if naswot is not None:
            columns["naswot"] = [f"{value:.4f}" for value in naswot]
        atomic_write_text(out / "rescored.csv", _csv_text(columns))
    lines = [found]
    if table is not None:
        judged_lines = [found, fitness_pick]
        if rescored:  # the re-scored argmax beside the pick: what the rank average changed
            found["rescored_pick"] = {"arch_str": rescored_pick["arch_str"], "accuracy": rescored_pick["accuracy"]}
            judged_lines.append(found["rescored_pick"])
        for line in judged_lines:
            cell = parse_nb201_string(line["arch_str"])
            line.update({"valid": table.row(cell).valid, "rank": table.rank(cell), "of": len(table.rows)})
        if config.rescore:
            found["fitness_pick"] = {key: fitness_pick[key] for key in ("arch_str", "fitness", "valid", "rank")}
        evaluated_cells = [parse_nb201_string(text) for text in result["evaluated"]]
        lines.append(random_search_floor(table, len(result["evaluated"]), RANDOM_SEARCH_TRIALS, config.seed))
        lines.append(best_by_params(table, evaluated_cells))
        if rescored:
            lines.append(rescored_versus_truth(table, rescored, naswot))
            lines.append(population_picks(table, judged, rescored, naswot))
    atomic_write_json(out / "found.json", lines)
    return lines


def search_candidates(config: Nb201Config, result: dict, judged: list[dict]) -> list[str]:
    """The cells the measured pick re-scores: the best `rescore_top` by mean fitness among the cells
    that may win, then (rescore_evaluated) every evaluated cell; one per canonical form."""
    chosen: dict[str, str] = {}
    for member in sorted(judged, key=mean_fitness, reverse=True)[:config.rescore_top]:
        chosen.setdefault(_canonical(member["arch_str"]), member["arch_str"])
    if config.rescore_evaluated:
        for text in result["evaluated"]:
            chosen.setdefault(_canonical(text), text)
    return list(chosen.values())


def measured_pick_of(rows: list[dict], naswot: list[float] | None = None) -> dict:
    """The best re-scored cell; with `naswot` (one score per row), the best by the mean of its ranks under
    re-scored accuracy, #params (of NB201's network, counted by us) and NASWOT, ties broken as the
    re-scored pick breaks them. The rank average was measured to pick better cells (`Nb201Config.pick`)."""
    from autospace.nb201.rescore import measured_pick

    if naswot is None:
        return measured_pick(rows)
    params = [float(nb201_network_cost(parse_nb201_string(row["arch_str"])).params) for row in rows]
    combined = rank_average([row["accuracy"] for row in rows], params, naswot)
    best = max(range(len(rows)), key=lambda i: (combined[i], rows[i]["accuracy"], -rows[i]["loss"]))
    return rows[best]


def _canonical(text: str) -> str:
    return to_nb201_string(canonical_nb201(parse_nb201_string(text)))


def best_by_params(table: Nb201Table, cells: list[Nb201Cell]) -> dict:
    """The zero-cost floor: the cell(s) with the most NB201 parameters among `cells` (ties: mean and
    std of their validation accuracies, as a pick among them would be a coin flip)."""
    most = max(table.row(cell).params for cell in cells)
    tied = [table.row(cell).valid for cell in cells if table.row(cell).params == most]
    mean = sum(tied) / len(tied)
    spread = math.sqrt(sum((value - mean) ** 2 for value in tied) / max(len(tied) - 1, 1))
    return {"method": "best-params", "evaluated": len(cells), "params": most, "tied": len(tied),
            "valid_mean": round(mean, 3), "valid_std": round(spread, 3)}


def rescored_versus_truth(table: Nb201Table, rows: list[dict], naswot: list[float] | None = None) -> dict:
    """How well the re-scored accuracy (and #params, NASWOT, their rank averages) ranks the cells it
    re-scored, and the validation accuracy of the cell each of them would pick (`pick_valid`)."""
    cells = [parse_nb201_string(row["arch_str"]) for row in rows]
    valid = [table.row(cell).valid for cell in cells]
    scores = {"rescored": [row["accuracy"] for row in rows], "params": [float(table.row(c).params) for c in cells]}
    if naswot is not None:
        scores["naswot"] = naswot
    scores = with_combinations(scores)
    picks = {name: round(top_mean(score, valid, 1), 3) for name, score in scores.items()}
    return {"method": "rescored-vs-truth", "cells": len(rows), "pick_valid": picks,
            **compare_scores(scores, valid)}


def population_picks(table: Nb201Table, judged: list[dict], rescored: list[dict],
                     naswot: list[float] | None) -> dict:
    """Among the final members that may win (their fitness is measured at the same time, so it
    compares): the validation accuracy each rule picks, the fitness and its rank averages with the
    free scores included, and the members' Spearman against the truth."""
    by_key = {_canonical(row["arch_str"]): index for index, row in enumerate(rescored)}
    members = [m for m in judged if _canonical(m["arch_str"]) in by_key]
    cells = [parse_nb201_string(m["arch_str"]) for m in members]
    valid = [table.row(cell).valid for cell in cells]
    scores = {"fitness": [mean_fitness(m) for m in members],
              "rescored": [rescored[by_key[_canonical(m["arch_str"])]]["accuracy"] for m in members],
              "params": [float(table.row(cell).params) for cell in cells]}
    if naswot is not None:
        scores["naswot"] = [naswot[by_key[_canonical(m["arch_str"])]] for m in members]
    scores = with_combinations(scores)
    return {"method": "population-picks", "cells": len(members),
            "pick_valid": {name: round(top_mean(score, valid, 1), 3) for name, score in scores.items()},
            "spearman": {name: round(compare_scores({name: score}, valid)[f"{name}_spearman"], 4)
                         for name, score in scores.items()} if len(members) > 2 else {}}
