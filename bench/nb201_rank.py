"""Fitness vs NAS-Bench-201 ground truth: `nb201 rank` over cells drawn uniformly at random.

Draws `--cells` cells (seeded by `--draw-seed`) uniformly from the non-empty rows
of the NB201 table, trains the tied DEA supernet over exactly those cells and
prints one JSON line: Spearman, Kendall and the mean `cifar10_valid` of the top
10 cells for the learned fitness (mean over windows; `fitness_last`: the final
value), the re-scored held-out accuracy under the shared weights, #params and
NASWOT (the baselines), and their rank averages, all on the same cells.
Rerunning with the same --out resumes the run.

    # the CPU proxy measured in docs/results (about 40 minutes on one core):
    OMP_NUM_THREADS=1 python bench/nb201_rank.py --cells 100 --config cpu --out runs/nb201_rank
"""

from __future__ import annotations

import argparse
import csv
import json
import random
from pathlib import Path

from autospace.runtime.atomic import atomic_write_text
from autospace.runtime.checkpoints import NEWEST, PREVIOUS
from autospace.runtime.config import load_config, load_saved_config
from autospace.data.registry import resolve_data_dir
from autospace.nb201 import Nb201Config, rank_cells
from autospace.nb201.table import TABLE_NAME


def draw_cells(table: Path, count: int, seed: int) -> list[str]:
    with table.open(newline="") as file:
        rows = [row["arch_str"] for row in csv.DictReader(file) if row["empty"] == "0"]
    return random.Random(seed).sample(rows, count)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cells", type=int, default=100, help="cells to draw (uniform, non-empty)")
    parser.add_argument("--draw-seed", type=int, default=201, help="seed of the draw")
    parser.add_argument("--config", default=None, help="nb201 preset (configs/nb201: cpu) or YAML path")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    parser.add_argument("--data-dir", default=None, help="folder with cifar10 and nb201/ (default: $AUTOSPACE_DATA)")
    parser.add_argument("--out", required=True, help="run folder (resumed when it holds a checkpoint)")
    args = parser.parse_args()

    out = Path(args.out)
    overrides = ([f"data_dir={args.data_dir}"] if args.data_dir else []) + args.overrides
    resume = (out / NEWEST).exists() or (out / PREVIOUS).exists()
    if resume:
        config = load_saved_config(Nb201Config, out, overrides)
    else:
        config = load_config(Nb201Config, args.config, overrides)
    table = Path(config.table) if config.table else resolve_data_dir(config.data_dir) / TABLE_NAME
    cells_file = out.parent / f"{out.name}.cells.txt"
    atomic_write_text(cells_file, "".join(text + "\n" for text in draw_cells(table, args.cells, args.draw_seed)))
    summary = rank_cells(config, out, None if resume else cells_file, resume=resume)
    print(json.dumps({"bench": "nb201_rank", "draw_seed": args.draw_seed, "config": args.config, **summary}))


if __name__ == "__main__":
    main()
