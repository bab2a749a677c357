"""The NB201 ground-truth table and the figures scored against it (DESIGN 2.6).

`Nb201Table` reads `nb201_cifar10_valid.csv` (one row per labelled cell); rank
correlations are written out here (average ranks for ties, Kendall's tau-b) so
they need nothing beyond the standard library.
"""

from __future__ import annotations

import csv
import math
import random
from dataclasses import dataclass
from pathlib import Path

from autospace.arch.nb201 import Nb201Cell, parse_nb201_string, random_nb201_cell, to_nb201_string
from autospace.errors import AutospaceError

TABLE_NAME = "nb201/nb201_cifar10_valid.csv"


@dataclass(frozen=True)
class Nb201Row:
    valid: float  # cifar10-valid top-1 %, epoch 200
    params: int
    flops: int


class Nb201Table:
    def __init__(self, path: str | Path):
        path = Path(path)
        if not path.is_file():
            raise AutospaceError(f"NB201 table {path} does not exist; point `table` at nb201_cifar10_valid.csv "
                                 f"(e.g. DATA_DIR/{TABLE_NAME})")
        self.path = path
        self.rows: dict[str, Nb201Row] = {}
        with path.open(newline="") as file:
            reader = csv.DictReader(file)
            missing = {"arch_str", "cifar10_valid", "params_m", "flops_m"} - set(reader.fieldnames or ())
            if missing:
                raise AutospaceError(f"NB201 table {path} lacks the columns {sorted(missing)}; it needs "
                                     f"arch_str, cifar10_valid, params_m, flops_m")
            for row in reader:
                self.rows[row["arch_str"]] = Nb201Row(float(row["cifar10_valid"]),
                                                      round(float(row["params_m"]) * 1e6),
                                                      round(float(row["flops_m"]) * 1e6))
        self._sorted_valid = sorted((row.valid for row in self.rows.values()), reverse=True)

    def row(self, cell: Nb201Cell) -> Nb201Row:
        key = to_nb201_string(cell)
        if key not in self.rows:
            raise AutospaceError(f"cell {key} is not in the NB201 table {self.path}")
        return self.rows[key]

    def rank(self, cell: Nb201Cell) -> int:
        """1 + the number of cells with a strictly higher validation accuracy (1 = best of 15,625)."""
        valid = self.row(cell).valid
        return 1 + sum(1 for value in self._sorted_valid if value > valid)

    def cells(self) -> list[Nb201Cell]:
        return [parse_nb201_string(text) for text in self.rows]


def average_ranks(values: list[float]) -> list[float]:
    order = sorted(range(len(values)), key=lambda i: values[i])
    ranks = [0.0] * len(values)
    start = 0
    while start < len(order):
        end = start
        while end + 1 < len(order) and values[order[end + 1]] == values[order[start]]:
            end += 1
        for position in range(start, end + 1):
            ranks[order[position]] = (start + end) / 2 + 1
        start = end + 1
    return ranks


def pearson(first: list[float], second: list[float]) -> float:
    n = len(first)
    mean_a, mean_b = sum(first) / n, sum(second) / n
    cov = sum((a - mean_a) * (b - mean_b) for a, b in zip(first, second))
    var_a = sum((a - mean_a) ** 2 for a in first)
    var_b = sum((b - mean_b) ** 2 for b in second)
    return cov / math.sqrt(var_a * var_b) if var_a > 0 and var_b > 0 else float("nan")


def spearman(first: list[float], second: list[float]) -> float:
    return pearson(average_ranks(first), average_ranks(second))


def kendall(first: list[float], second: list[float]) -> float:
    """Kendall's tau-b (ties in either list corrected for)."""
    concordant = discordant = ties_a = ties_b = 0
    n = len(first)
    for i in range(n):
        for j in range(i + 1, n):
            da, db = first[i] - first[j], second[i] - second[j]
            if da == 0 and db == 0:
                continue
            if da == 0:
                ties_a += 1
            elif db == 0:
                ties_b += 1
            elif (da > 0) == (db > 0):
                concordant += 1
            else:
                discordant += 1
    denominator = math.sqrt((concordant + discordant + ties_a) * (concordant + discordant + ties_b))
    return (concordant - discordant) / denominator if denominator > 0 else float("nan")


def random_search_floor(table: Nb201Table, evaluated: int, trials: int, seed: int) -> dict:
    """Random search looked up in the table: the best of `evaluated` uniform non-empty cells, per trial."""
    rng = random.Random(seed)
    best = []
    for _ in range(trials):
        cells = [random_nb201_cell(rng) for _ in range(evaluated)]
        best.append(max(cells, key=lambda cell: table.row(cell).valid))
    accuracies = [table.row(cell).valid for cell in best]
    ranks = [table.rank(cell) for cell in best]
    mean = sum(accuracies) / trials
    spread = math.sqrt(sum((a - mean) ** 2 for a in accuracies) / max(trials - 1, 1))
    return {"method": "random", "evaluated": evaluated, "trials": trials, "valid_mean": round(mean, 3),
            "valid_std": round(spread, 3), "rank_median": sorted(ranks)[trials // 2],
            "first_trial": {"arch_str": to_nb201_string(best[0]), "valid": accuracies[0], "rank": ranks[0]}}
