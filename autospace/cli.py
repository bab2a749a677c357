"""Command-line interface: parse, load config, call one library function.

Every user error (`AutospaceError`) is printed as one line on stderr with exit
status 2; anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

import argparse
import errno
import json
import os
import sys
from pathlib import Path

from autospace.errors import AutospaceError, DiskFullError
from autospace.runtime.parsing import ascii_float, ascii_int


def _preset_names(*sections: str) -> str:
    """The preset names of configs/SECTION (and ./configs/SECTION), for --config's help: read, not listed by hand."""
    from autospace.runtime.config import available_presets

    return ", ".join(sorted({name for section in sections for name in available_presets(section)}))


def _add_common_run_options(parser: argparse.ArgumentParser, config_help: str) -> None:
    parser.add_argument("--config", help=config_help)
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="override one config field (repeatable); the key must exist")
    parser.add_argument("--data", help="data set: cifar10, fashion-mnist, mnist, synthetic[:TRAIN,TEST] "
                                       "or an ImageFolder path")
    parser.add_argument("--data-dir", help="folder holding the data files (default: $AUTOSPACE_DATA, "
                                           "else ~/.cache/autospace/data)")
    parser.add_argument("--device", help="auto (CUDA if present), cpu, cuda or cuda:N")
    parser.add_argument("--precision", help="auto (bf16 on CUDA, fp32 on CPU), fp32 or bf16")
    parser.add_argument("--seed", type=ascii_int, help="random seed")
    parser.add_argument("--tensorboard", action="store_const", const="true",
                        help="also write TensorBoard scalars (RUN_DIR/tensorboard; pip install tensorboard)")
    parser.add_argument("--skip-nonfinite", type=ascii_int, metavar="N",
                        help="skip up to N steps whose loss or gradient is not finite (no update), stop at the "
                             "next one; default 0: the first non-finite epoch loss stops the run. N > 0 checks "
                             "every step, one device sync per step")


def _shortcut_overrides(args: argparse.Namespace, names: tuple[str, ...]) -> list[str]:
    """Turn dedicated flags (--data, --device, ...) into `key=value` overrides."""
    overrides = []
    for name in names:
        value = getattr(args, name, None)
        if value is not None:
            if name == "data_dir":
                _require_existing_data_dir(value)
            overrides.append(f"{name}={value}")
    return overrides + list(args.overrides)


def _require_existing_data_dir(text: str) -> None:
    """A --data-dir that does not exist is a typo far more often than a wish to download there: said
    before anything (the data folder, a run folder) is created."""
    path = Path(text).expanduser()
    try:
        exists = path.exists()
    except (OSError, ValueError):  # a name the OS cannot look up
        exists = False
    if not exists:
        raise AutospaceError(f"--data-dir {text} does not exist; give the folder (or file) that holds the data, "
                             f"e.g. the folder of cifar10_jpeg.npz (to download CIFAR-10 into a new folder, "
                             f"create it first)")


def _resumed_config(cls, run_dir: Path, overrides: list[str]):
    """The saved config of a run folder to resume (a clear error for a missing, foreign or
    incompatible one) with `overrides`, which may change the keys `autospace.runtime.resume` allows; the
    folder must be writable and not in use by another process."""
    from autospace.runtime.atomic import require_writable_folder
    from autospace.runtime.config import load_saved_config
    from autospace.runtime.resume import resumed_config
    from autospace.runtime.run_lock import run_folder_lock

    load_saved_config(cls, run_dir)  # a folder without a run, or of another kind: said before anything else
    require_writable_folder(run_dir)
    with run_folder_lock(run_dir, create=False):  # a learning-rate change rewrites config.yaml
        return resumed_config(cls, run_dir, overrides)


def _require_writable_output(path: str | None, what: str) -> None:
    if path is not None:
        from autospace.runtime.atomic import require_writable_folder

        if not path.strip():
            raise AutospaceError(f"the {what} path is empty; give a file or folder name")
        require_writable_folder(path, what, is_file=not Path(path).is_dir())


def _command_space_count(args: argparse.Namespace) -> int:
    from autospace.arch import count_cells

    counts = count_cells()
    if args.json:
        print(json.dumps(counts))
    else:
        print(f"labelled cells: {counts['labelled']}\ncanonical (distinct) cells: {counts['canonical']}")
    return 0


def _command_profile(args: argparse.Namespace) -> int:
    from autospace.arch import load_arch
    from autospace.runtime.device import resolve_device
    from autospace.latency.profiling import profile

    network = load_arch(args.arch)
    if args.latency_table:  # predicted (sum of entries) beside measured, under the table's own conditions
        from autospace.latency.profiling import profile_against_table

        result = profile_against_table(network, args.latency_table, args.device, args.resolution, args.repeats)
    else:
        result = profile(network, resolve_device(args.device or "auto"), resolution=args.resolution,
                         repeats=args.repeats)
    if args.json:
        print(json.dumps(result))
    else:
        for key, value in result.items():
            print(f"{key:>20}: {value:,}" if isinstance(value, int) else f"{key:>20}: {value}")
    return 0


def _command_train(args: argparse.Namespace) -> int:
    from autospace.runtime.config import load_config
    from autospace.train import TrainConfig, train

    if args.resume:
        out = Path(args.resume)
        config = _resumed_config(TrainConfig, out,
                                 _shortcut_overrides(args, ("data", "data_dir", "device", "precision",
                                                            "skip_nonfinite")))
        result = train(args.arch or out / "arch.json", config, out, resume=True)
    else:
        if not args.arch or not args.out:
            raise AutospaceError("autospace train needs ARCH.json and --out RUN_DIR (or --resume RUN_DIR)")
        config = load_config(TrainConfig, args.config,
                             _shortcut_overrides(args, ("data", "data_dir", "device", "precision", "seed", "tensorboard",
                                                        "skip_nonfinite")))
        result = train(args.arch, config, Path(args.out))
    print(json.dumps({key: result[key] for key in ("test_top1", "params", "madds", "wall_time_s") if key in result}))
    return 0


def _command_evolve(args: argparse.Namespace) -> int:
    from autospace.runtime.config import load_config
    from autospace.evolve import evolve

    overrides = _shortcut_overrides(args, ("data", "data_dir", "device", "precision", "seed", "preset",
                                              "tensorboard", "skip_nonfinite"))
    if args.budget_madds is not None:
        from autospace.cost.units import parse_madds

        overrides.insert(0, f"budget_madds={parse_madds(args.budget_madds)}")
    args.method = args.method or (_evolve_method_of(Path(args.resume)) if args.resume else "autospace")
    overrides += _latency_overrides(args, "", params=False)  # nse: its squared term; autospace: latency bands
    if args.pool is not None:
        if args.method != "nse":
            raise AutospaceError("--pool belongs to --method nse (the DEA evolves cells, it has no operator pool)")
        overrides.insert(0, f"pool={Path(args.pool).resolve()}")
    if args.resume:
        out = Path(args.resume)
        space = evolve(args.method, _resumed_config(_evolve_config_class(args.method), out, overrides),
                       out, resume=True)
    else:
        if not args.out:
            raise AutospaceError("autospace evolve needs --out RUN_DIR (or --resume RUN_DIR)")
        space = evolve(args.method, load_config(_evolve_config_class(args.method), args.config, overrides),
                       Path(args.out))
    print("\n".join(space.describe()))
    return 0


def _madds_override(key: str, text: str | None) -> list[str]:
    if text is None:
        return []
    from autospace.cost.units import parse_madds

    return [f"{key}={parse_madds(text)}"]


def _latency_overrides(args: argparse.Namespace, prefix: str, params: bool = True) -> list[str]:
    from autospace.latency.cli import latency_overrides

    return latency_overrides(args, prefix, params)


def _command_search(args: argparse.Namespace) -> int:
    from autospace.pipeline import search_initialiser
    from autospace.runtime.config import load_config
    from autospace.search import SearchConfig, search

    overrides = (_madds_override("target_madds", args.target_madds) + _latency_overrides(args, "")
                 + _shortcut_overrides(args, ("method", "space", "preset", "data", "data_dir", "device",
                                              "precision", "seed", "tensorboard", "skip_nonfinite")))
    if args.resume:
        out = Path(args.resume)
        config = _resumed_config(SearchConfig, out, overrides)
        network = search(config, out, resume=True, initialise_supernet=search_initialiser(config))
    else:
        if not args.out:
            raise AutospaceError("autospace search needs --out RUN_DIR (or --resume RUN_DIR)")
        out = Path(args.out)
        config = load_config(SearchConfig, args.config, overrides)
        network = search(config, out, initialise_supernet=search_initialiser(config))
    print("\n".join(network.describe()))
    print((out / "result.json").read_text().strip())
    return 0


def _command_run(args: argparse.Namespace) -> int:
    from autospace.pipeline import RunConfig, load_run_config, run_pipeline

    overrides = (_madds_override("budget_madds", args.budget_madds) + _latency_overrides(args, "search.")
                 + _latency_overrides(args, "nse.", params=False) + _latency_overrides(args, "evolve.", params=False)
                 + _shortcut_overrides(args, ("search_method", "space_method", "data", "data_dir", "device",
                                              "precision", "seed", "tensorboard")))
    if args.skip_nonfinite is not None:  # a setting of every stage
        overrides[:0] = [f"{stage}.skip_nonfinite={args.skip_nonfinite}"
                         for stage in ("evolve", "nse", "search", "train")]
    if args.resume:
        out = Path(args.resume)
        metrics = run_pipeline(_resumed_config(RunConfig, out, overrides), out, resume=True)
    else:
        if not args.out:
            raise AutospaceError("autospace run needs --out RUN_DIR (or --resume RUN_DIR)")
        out = Path(args.out)
        metrics = run_pipeline(load_run_config(args.config, overrides), out)
    print(f"report: {out / 'report.md'}")
    print(json.dumps({key: metrics[key] for key in ("test_top1", "params", "madds", "wall_time_s") if key in metrics}))
    return 0


def _evolve_method_of(run_dir: Path) -> str:
    """The evolve method of a run folder, from its config.yaml header (the config class it holds)."""
    from autospace.evolve import EVOLVE_METHODS

    try:
        first_line = (run_dir / "config.yaml").read_text(encoding="utf-8").split("\n", 1)[0]
    except (OSError, UnicodeDecodeError):
        return "autospace"  # the resume itself reports the missing or unreadable config
    for method, (config_class, _) in EVOLVE_METHODS.items():
        if first_line.startswith(f"# {config_class.__name__},"):
            return method
    return "autospace"


def _evolve_config_class(method: str):
    from autospace.evolve import EVOLVE_METHODS

    return EVOLVE_METHODS[method][0]


def _command_show(args: argparse.Namespace) -> int:
    from autospace.report.show import draw

    out = Path(args.output) if args.output else Path(args.file).with_suffix(".svg")
    _require_writable_output(str(out), "picture")
    print(draw(args.file, out, engine=args.engine))
    return 0


def _command_report(args: argparse.Namespace) -> int:
    from autospace.report.html import write_html_report

    _require_writable_output(args.output or args.runs[0], "report")
    print(write_html_report([Path(run) for run in args.runs], Path(args.output) if args.output else None,
                            args.labels or None))
    return 0


def _command_export(args: argparse.Namespace) -> int:
    from autospace.export import export_model

    _require_writable_output(args.output, "export")
    print(export_model(args.run, args.format, Path(args.output) if args.output else None, args.batch_size))
    return 0


def _command_import_config(args: argparse.Namespace) -> int:
    from autospace.runtime.atomic import require_file_path
    from autospace.arch.netconfig import import_config_to_file

    require_file_path(args.output, "arch file")
    _require_writable_output(args.output, "arch file")
    network, notes = import_config_to_file(args.config_file, args.output, resolution=args.resolution)
    print("\n".join(network.describe()))
    for note in notes:
        print(f"note: {note}")
    print(f"wrote {args.output}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="autospace", description=(
        "Neural architecture search that designs its own search space."))
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    space = commands.add_parser("space", help="facts about the open space")
    space_commands = space.add_subparsers(dest="space_command", required=True, metavar="WHAT")
    count = space_commands.add_parser("count", help="count labelled and canonical cells of the open space")
    count.add_argument("--json", action="store_true", help="print one JSON line")
    count.set_defaults(handler=_command_space_count)

    profile = commands.add_parser("profile", help="params, MAdds and latency of an arch.json")
    profile.add_argument("arch", help="path to arch.json")
    profile.add_argument("--resolution", type=ascii_int, help="input resolution (default: the network's)")
    profile.add_argument("--device", help="auto (CUDA if present), cpu, cuda or cuda:N")
    profile.add_argument("--repeats", type=ascii_int, default=20, help="timed forward passes per batch size")
    profile.add_argument("--json", action="store_true", help="print one JSON line")
    profile.add_argument("--latency-table", help="a latency table of this device: print its predicted latency "
                                                 "beside the measured one (at the table's batch size and threads)")
    profile.set_defaults(handler=_command_profile)

    from autospace.latency.cli import add_budget_options, add_latency_table_parser, add_remeasure_option

    add_latency_table_parser(commands)

    evolve = commands.add_parser("evolve", help="learn a layer-wise search space (writes space.json)")
    evolve.add_argument("--method", choices=("autospace", "nse"),
                        help="space learner: autospace (the DEA, default) or nse (progressive space evolution "
                             "with multi-branch layers); --resume finds it in the run folder")
    evolve.add_argument("--budget-madds", help="MAdds budget of the final network, e.g. 60M")
    evolve.add_argument("--preset", help="macro skeleton: cifar, cifar-small or imagenet")
    evolve.add_argument("--out", help="run folder to create")
    evolve.add_argument("--resume", metavar="RUN_DIR", help="continue the run in RUN_DIR")
    evolve.add_argument("--pool", help="nse: a space.json whose cells join the operator pool")
    evolve.add_argument("--target-latency-ms", type=ascii_float, help="latency target (with --latency-table): nse's "
                                                                "squared term; autospace's per-layer latency bands")
    evolve.add_argument("--latency-table", help="latency table for --target-latency-ms (autospace: with the open "
                                                "space's cell components, `autospace latency-table open:PRESET`)")
    add_remeasure_option(evolve)
    _add_common_run_options(evolve, "evolution preset: a name in configs/evolve (autospace) or configs/nse (nse): "
                                    f"{_preset_names('evolve', 'nse')}; or a YAML path")
    evolve.set_defaults(handler=_command_evolve)

    search = commands.add_parser("search", help="search a network in a space (writes arch.json)")
    search.add_argument("--space", help="manual, open, or a space.json (e.g. RUN_DIR/space.json)")
    search.add_argument("--method", choices=("proxyless-g", "proxyless-rl", "spos"), help="search algorithm")
    search.add_argument("--target-madds", help="MAdds budget of the found network, e.g. 60M")
    add_budget_options(search)
    search.add_argument("--preset", help="macro skeleton of the manual/open space: cifar, cifar-small, imagenet")
    search.add_argument("--out", help="run folder to create")
    search.add_argument("--resume", metavar="RUN_DIR", help="continue the run in RUN_DIR")
    _add_common_run_options(search, f"search preset: a name in configs/search ({_preset_names('search')}) or a YAML path")
    search.set_defaults(handler=_command_search)

    run = commands.add_parser("run", help="evolve -> search -> train in one run folder, with report.md")
    run.add_argument("--budget-madds", help="MAdds budget, e.g. 60M")
    add_budget_options(run)
    run.add_argument("--search-method", choices=("proxyless-g", "proxyless-rl", "spos"))
    run.add_argument("--space-method", choices=("autospace", "nse", "manual"),
                     help="search in a space evolved by autospace (the DEA, default) or by nse, or in the "
                          "manual space")
    run.add_argument("--out", help="run folder to create")
    run.add_argument("--resume", metavar="RUN_DIR", help="continue the run in RUN_DIR, at the stage it stopped in")
    _add_common_run_options(run, f"run preset: a name in configs/run ({_preset_names('run')}) or a YAML path; "
                                 "stage keys are evolve.KEY, search.KEY, train.KEY")
    run.set_defaults(handler=_command_run)

    show = commands.add_parser("show", help="draw a cell, a space.json or an arch.json (.svg or .png)")
    show.add_argument("file", help="arch.json, space.json or a JSON cell")
    show.add_argument("-o", "--output", help="picture to write, .svg or .png (default: FILE with .svg)")
    show.add_argument("--engine", default="auto", choices=("auto", "matplotlib", "dot"),
                      help="cells: Graphviz dot when installed (auto), else matplotlib")
    show.set_defaults(handler=_command_show)

    report = commands.add_parser("report", help="one self-contained report.html for one or more run folders")
    report.add_argument("runs", nargs="+", metavar="RUN_DIR", help="run folders; several are compared")
    report.add_argument("-o", "--output", help="report file or folder (default: the first RUN_DIR)")
    report.add_argument("--label", dest="labels", action="append", help="a name per run folder (repeatable)")
    report.set_defaults(handler=_command_report)

    export = commands.add_parser("export", help="a trained network as ONNX, TorchScript or plain PyTorch")
    export.add_argument("run", metavar="RUN_DIR", help="a train run folder or an `autospace run` folder")
    export.add_argument("--format", required=True, choices=("onnx", "torchscript", "state_dict"))
    export.add_argument("-o", "--output", help="file (folder for state_dict); default RUN_DIR/.../export/")
    export.add_argument("--batch-size", type=ascii_int, default=1, help="batch of the example input")
    export.set_defaults(handler=_command_export)

    importer = commands.add_parser("import-config", help="a ProxylessNAS / Once-for-All net.config as arch.json")
    importer.add_argument("config_file", metavar="NET_CONFIG")
    importer.add_argument("-o", "--output", required=True, help="arch.json to write")
    importer.add_argument("--resolution", type=ascii_int, default=224, help="input resolution")
    importer.set_defaults(handler=_command_import_config)

    train = commands.add_parser("train", help="train a network from an arch.json")
    train.add_argument("arch", nargs="?", help="path to arch.json (optional with --resume)")
    train.add_argument("--out", help="run folder to create")
    train.add_argument("--resume", metavar="RUN_DIR", help="continue the run in RUN_DIR")
    _add_common_run_options(train, f"training preset: a name in configs/train ({_preset_names('train')}) or a YAML path")
    train.set_defaults(handler=_command_train)

    from autospace.nb201.cli import add_nb201_parser

    add_nb201_parser(commands)
    return parser


def _interrupt_on_sigterm() -> None:
    """SIGTERM (a scheduler's stop) ends the run like Ctrl-C: through the same clean exit path.
    Every run checkpoints atomically at each epoch / regeneration / generation, so `--resume`
    continues from the last one."""
    import signal
    import threading

    if threading.current_thread() is threading.main_thread():
        def handler(signum, frame):
            raise KeyboardInterrupt

        signal.signal(signal.SIGTERM, handler)


# The longest path (PATH_MAX) and folder or file name (NAME_MAX) the OS looks up: a longer one in a flag is
# refused before anything runs, where Path.exists() would raise "File name too long" deep in a loader.
MAX_PATH_CHARACTERS, MAX_NAME_BYTES = 4096, 255


def require_sane_arguments(args: argparse.Namespace) -> None:
    """Every text flag and argument (not --set values: the config checks those) is a possible path: one
    with a NUL byte, longer than 4096 characters or with a name over 255 bytes is refused in one line."""
    for name, value in vars(args).items():
        if name == "overrides":
            continue
        for text in value if isinstance(value, list) else [value]:
            if not isinstance(text, str):
                continue
            shown = text if len(text) <= 60 else text[:40] + f"... ({len(text):,} characters)"
            flag = name.replace("_", "-")
            if "\x00" in text:
                raise AutospaceError(f"{flag} {shown!r} holds a NUL byte; give a plain path or name")
            parts = text.split("/")
            longest = max(len(os.fsencode(part)) for part in parts)
            if len(text) > MAX_PATH_CHARACTERS or longest > MAX_NAME_BYTES:
                raise AutospaceError(f"{flag} {shown!r} is too long for a path or name: at most "
                                     f"{MAX_PATH_CHARACTERS} characters, {MAX_NAME_BYTES} bytes a folder or file name")


def main(argv: list[str] | None = None) -> int:
    import contextlib
    import os

    parser = build_parser()
    args = parser.parse_args(argv)
    _interrupt_on_sigterm()
    # Under torchrun every rank runs the command; rank 0 alone prints results, any rank prints its errors.
    rank = int(os.environ.get("RANK", "0")) if os.environ.get("RANK", "0").isdigit() else 0
    who = f" (rank {rank})" if rank != 0 else ""
    quiet = open(os.devnull, "w") if rank != 0 else None
    try:
        require_sane_arguments(args)
        with contextlib.redirect_stdout(quiet) if quiet is not None else contextlib.nullcontext():
            return args.handler(args)
    except OSError as error:
        if error.errno != errno.ENAMETOOLONG:
            raise
        # A path the OS cannot even look up (a setting's text, not a flag's: those are checked up front).
        print(f"autospace: error{who}: a path is too long for this system ({str(error)[:200]}); give a shorter "
              f"one (at most 255 bytes a folder or file name)", file=sys.stderr)
        return 2
    except AutospaceError as error:
        # One line whatever the message holds (a library's multi-line text quoted in it, say).
        message = "; ".join(line.strip() for line in str(error).splitlines() if line.strip())
        run_dir = getattr(args, "out", None) or getattr(args, "resume", None)
        if isinstance(error, DiskFullError) and run_dir:
            message += f"; free some space, then continue with --resume {run_dir}"
        print(f"autospace: error{who}: {message}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        run_dir = getattr(args, "out", None) or getattr(args, "resume", None)
        hint = f"; continue with --resume {run_dir}" if run_dir else ""
        print(f"autospace: interrupted{who}; the last checkpoint is kept{hint}", file=sys.stderr)
        return 130
    finally:
        if "torch.distributed" in sys.modules:  # a run command may have started a process group
            from autospace.runtime.distributed import destroy

            destroy()
        if quiet is not None:
            quiet.close()


if __name__ == "__main__":
    raise SystemExit(main())
