"""`autospace latency-table`: the subcommand's parser and handler, and what its SPACE_OR_PRESET names
(kept out of the root cli.py, which only wires it); the latency options of `search`, `evolve` and `run`."""

from __future__ import annotations

import argparse
import json
from dataclasses import replace
from pathlib import Path

from autospace.errors import AutospaceError
from autospace.latency.table import CALIBRATION_NETWORKS
from autospace.runtime.parsing import ascii_float, ascii_int


def _command_latency_table(args: argparse.Namespace) -> int:
    from autospace.latency.timing import measure_latency_table
    from autospace.runtime.atomic import require_file_path, require_writable_folder

    require_file_path(args.output, "latency table")
    require_writable_folder(args.output, "latency table", is_file=True)
    options = dict(threads=args.threads, warmup=args.warmup, repeats=args.repeats, precision=args.precision,
                   progress=not args.no_progress, rounds=args.rounds)
    if args.statistic is not None:
        options["statistic"] = args.statistic
    if args.space.startswith("open:"):  # the open space's cell components (the DEA's latency caps)
        from autospace.latency.cell_timing import measure_cell_components

        table = measure_cell_components(open_skeleton(args.space[5:], args.resolution, args.num_classes),
                                        args.device, args.batch_size, args.output, **options)
    else:
        space = table_space(args.space, args.resolution, args.num_classes)
        table = measure_latency_table(space, args.device, args.batch_size, args.output,
                                      calibration_networks=args.calibration_networks, **options)
    print(json.dumps({"table": args.output, "entries": len(table.entries), "measured_on": table.describe()}))
    return 0


def table_space(spec: str, resolution: int | None = None, num_classes: int | None = None):
    """What `autospace latency-table SPEC` times: a preset name (its manual space), `nse:PRESET` (NSE's
    default operator pool on it), or a space.json (or a run folder holding one), optionally at another
    resolution or class count (the data's)."""
    from autospace.arch.codec import load_space
    from autospace.arch.presets import PRESETS, preset_skeleton
    from autospace.arch.space import Candidate, SearchSpace, manual_space

    if spec in PRESETS:
        space = manual_space(preset_skeleton(spec))
    elif spec.startswith("nse:") and spec[4:] in PRESETS:
        from autospace.arch.pools import layer_pools

        skeleton = preset_skeleton(spec[4:])
        pools = layer_pools(skeleton.num_searchable, True, True)
        space = SearchSpace(skeleton, tuple(tuple(Candidate(block) for block in pool) for pool in pools), "nse-pool")
    else:
        path = Path(spec)
        for inner in (path / "space.json", path / "evolve" / "space.json"):
            if path.is_dir() and inner.exists():
                path = inner
                break
        if not path.is_file():
            raise AutospaceError(f"{spec!r} is neither a preset ({', '.join(PRESETS)}), nse:PRESET, nor a "
                                 f"space.json or run folder holding one")
        space = load_space(path)
    changes = {key: value for key, value in (("resolution", resolution), ("num_classes", num_classes))
               if value is not None}
    return replace(space, skeleton=replace(space.skeleton, **changes)) if changes else space


def open_skeleton(preset: str, resolution: int | None = None, num_classes: int | None = None):
    from autospace.arch.presets import PRESETS, preset_skeleton

    if preset not in PRESETS:
        raise AutospaceError(f"open:{preset}: unknown preset {preset!r}; valid: "
                             f"{', '.join('open:' + name for name in PRESETS)}")
    changes = {key: value for key, value in (("resolution", resolution), ("num_classes", num_classes))
               if value is not None}
    skeleton = preset_skeleton(preset)
    return replace(skeleton, **changes) if changes else skeleton


def add_latency_table_parser(commands) -> None:
    parser = commands.add_parser(
        "latency-table", help="time every candidate block of a space on a device (a latency lookup table)")
    parser.add_argument("space", metavar="SPACE_OR_PRESET",
                        help="a preset (cifar, cifar-small, imagenet: its manual space), nse:PRESET (NSE's operator "
                             "pool), open:PRESET (the open space's cell components, for the DEA's latency caps) or "
                             "a space.json / run folder")
    parser.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N (default cpu)")
    parser.add_argument("--batch-size", type=ascii_int, default=1, help="images per timed pass (default 1)")
    parser.add_argument("-o", "--output", required=True,
                        help="table to write; an existing one is extended only when measured under the same "
                             "conditions (device, its name, torch version, threads, precision, batch size)")
    parser.add_argument("--threads", type=ascii_int, default=1,
                        help="CPU threads while timing (default 1: least disturbed by other jobs)")
    parser.add_argument("--repeats", type=ascii_int, default=50, help="timed passes per entry (the median is kept)")
    parser.add_argument("--warmup", type=ascii_int, default=10, help="untimed passes before them")
    parser.add_argument("--rounds", type=ascii_int, default=3,
                        help="rounds of --repeats passes over all timed networks, which take turns pass by pass "
                             "(each entry pools its samples from every round; the table is saved after each)")
    parser.add_argument("--precision", default="fp32", help="fp32 or bf16 (autocast; CUDA)")
    parser.add_argument("--statistic", choices=("min", "median"),
                        help="the figure of each entry predictions use: median (default for blocks: stable on a "
                             "drifting virtual CPU) or min (default for open:PRESET cell components)")
    parser.add_argument("--calibration-networks", type=ascii_int, default=CALIBRATION_NETWORKS,
                        help="random networks of the space timed beside the probes: they add samples to the "
                             f"entries and fit the table's calibration (sum of entries -> whole pass; default "
                             f"{CALIBRATION_NETWORKS})")
    parser.add_argument("--resolution", type=ascii_int, help="input resolution (default: the space's)")
    parser.add_argument("--num-classes", type=ascii_int, help="classes of the head (default: the space's)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.set_defaults(handler=_command_latency_table)


def add_budget_options(parser: argparse.ArgumentParser) -> None:
    """--target-latency-ms, --latency-table, --target-params of `search` and `run` (issue 18)."""
    parser.add_argument("--target-latency-ms", type=ascii_float,
                        help="latency budget in ms, predicted from --latency-table; the search aims at it and "
                             "treats the MAdds (and params) targets as caps")
    parser.add_argument("--latency-table", help="latency table of the target device (autospace latency-table); "
                                                "entries it lacks for this space are measured when it is this CPU's")
    parser.add_argument("--target-params", help="parameter cap of the found network, e.g. 500K or 2M")
    add_remeasure_option(parser)


def add_remeasure_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--latency-remeasure", action="store_true",
                        help="the --latency-table was measured under other conditions (CPU, torch version, threads): "
                             "measure the entries this run needs on this machine into TABLE.here.json and use that")


def latency_overrides(args: argparse.Namespace, prefix: str, params: bool = True) -> list[str]:
    """The options above as config overrides (`prefix` is "search." inside a run config; NSE has no
    params target: `params` false)."""
    from autospace.cost.units import parse_madds

    overrides = []
    if getattr(args, "target_latency_ms", None) is not None:
        overrides.append(f"{prefix}target_latency_ms={args.target_latency_ms}")
    table = getattr(args, "latency_table", None)
    if getattr(args, "latency_remeasure", False):
        if not table:
            raise AutospaceError("--latency-remeasure needs --latency-table TABLE.json (the table to measure anew)")
        from autospace.latency.table import start_remeasured_table

        table = str(start_remeasured_table(table))
    if table:
        overrides.append(f"{prefix}latency_table={Path(table).resolve()}")  # resumable from anywhere
    if params and getattr(args, "target_params", None) is not None:
        overrides.append(f"{prefix}target_params={parse_madds(args.target_params)}")
    return overrides


__all__ = ["add_budget_options", "add_latency_table_parser", "add_remeasure_option", "latency_overrides",
           "open_skeleton", "table_space"]
