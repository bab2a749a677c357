"""The tied DEA searching the whole NAS-Bench-201 space, against random search.

Runs `nb201 search` (reference-free unless --set reference=...) and prints one
JSON line: the picked cell (the measured pick: the best of the re-scored cells
under the shared weights; `fitness_pick` is the argmax of the mean fitness), its
NB201 validation accuracy and rank among the 15,625 cells, and the floors to
beat: random search over the same number of evaluated cells looked up in the
table (best of that many uniform non-empty cells, 100 trials: mean, std and
median rank) and the best-#params cell among the evaluated cells. Rerunning
with the same --out resumes.

    OMP_NUM_THREADS=1 python bench/nb201_search.py --config cpu --out runs/nb201_search
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from autospace.runtime.checkpoints import NEWEST, PREVIOUS
from autospace.runtime.config import load_config, load_saved_config
from autospace.nb201 import Nb201Config, search_nb201


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default=None, help="nb201 preset (configs/nb201: cpu) or YAML path")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    parser.add_argument("--data-dir", default=None, help="folder with cifar10 and nb201/ (default: $AUTOSPACE_DATA)")
    parser.add_argument("--out", required=True, help="run folder (resumed when it holds a checkpoint)")
    args = parser.parse_args()

    out = Path(args.out)
    overrides = ([f"data_dir={args.data_dir}"] if args.data_dir else []) + args.overrides
    resume = (out / NEWEST).exists() or (out / PREVIOUS).exists()
    config = (load_saved_config(Nb201Config, out, overrides) if resume
              else load_config(Nb201Config, args.config, overrides))
    lines = search_nb201(config, out, resume=resume)
    record = {"bench": "nb201_search", "config": args.config, "seed": config.seed, "dea": lines[0]}
    for line in lines[1:]:  # with the table: random search, best #params, the re-scored cells against the truth
        record[{"random": "random", "best-params": "params", "rescored-vs-truth": "rescored",
                "population-picks": "population"}[line["method"]]] = line
    print(json.dumps(record))


if __name__ == "__main__":
    main()
