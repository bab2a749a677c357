"""`autospace nb201 cost|rank|search`: parse, load the config, call one library function.

Kept apart from `cli.py` so the NB201 commands add one line there. Every command
prints JSON lines on stdout; bad input is an `AutospaceError` (exit 2).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from autospace.errors import AutospaceError
from autospace.runtime.parsing import ascii_int


def _config(args: argparse.Namespace):
    from autospace.runtime.config import load_config, load_saved_config
    from autospace.nb201.config import Nb201Config

    overrides = [f"{name}={getattr(args, name)}" for name in ("data_dir", "table", "seed", "device")
                 if getattr(args, name, None) is not None] + list(args.overrides)
    if args.resume:
        from autospace.runtime.atomic import require_writable_folder

        config = load_saved_config(Nb201Config, Path(args.resume), overrides)
        require_writable_folder(args.resume)
        return config, Path(args.resume)
    if not args.out:
        raise AutospaceError(f"autospace nb201 {args.nb201_command} needs --out RUN_DIR (or --resume RUN_DIR)")
    return load_config(Nb201Config, args.config, overrides), Path(args.out)


def _command_cost(args: argparse.Namespace) -> int:
    from autospace.nb201.runs import nb201_costs

    for row in nb201_costs(args.cells):
        print(json.dumps(row))
    return 0


def _command_rank(args: argparse.Namespace) -> int:
    from autospace.nb201.runs import rank_cells

    config, out = _config(args)
    if args.resume and args.cells:
        raise AutospaceError("--resume continues with the run's own cells (RUN_DIR/cells.txt); drop --cells")
    print(json.dumps(rank_cells(config, out, args.cells, resume=bool(args.resume))))
    return 0


def _command_search(args: argparse.Namespace) -> int:
    from autospace.nb201.runs import search_nb201

    config, out = _config(args)
    for line in search_nb201(config, out, resume=bool(args.resume)):
        print(json.dumps(line))
    return 0


def _run_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", help="run folder to create")
    parser.add_argument("--resume", metavar="RUN_DIR", help="continue the run in RUN_DIR")
    parser.add_argument("--config", help="a YAML file of nb201 settings (keys as in --set)")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="override one setting (repeatable), e.g. channels=8 cells_per_stage=1 image_size=16")
    parser.add_argument("--data-dir", help="folder holding cifar10 and nb201/ (default: $AUTOSPACE_DATA)")
    parser.add_argument("--table", help="NB201 table CSV (default: DATA_DIR/nb201/nb201_cifar10_valid.csv)")
    parser.add_argument("--seed", type=ascii_int, help="random seed")
    parser.add_argument("--device", help="auto (CUDA if present), cpu, cuda or cuda:N")


def add_nb201_parser(commands) -> None:
    nb201 = commands.add_parser("nb201", help="NAS-Bench-201: exact cost, fitness vs ground truth, search")
    what = nb201.add_subparsers(dest="nb201_command", required=True, metavar="WHAT")
    cost = what.add_parser("cost", help="params and MAdds of NB201's network (C=16, N=5) per cell, JSON lines")
    cost.add_argument("--cells", required=True, help="text file, one NB201 string a line")
    cost.set_defaults(handler=_command_cost)
    rank = what.add_parser("rank", help="tied DEA over the given cells; Spearman/Kendall of fitness vs NB201")
    rank.add_argument("--cells", help="text file, one NB201 string a line (cells with a path 0 -> 3)")
    _run_options(rank)
    rank.set_defaults(handler=_command_rank)
    search = what.add_parser("search", help="tied DEA over the whole NB201 space, against random search")
    _run_options(search)
    search.set_defaults(handler=_command_search)
