"""Fuzz every `autospace` command and flag with seeded, mutated command lines and files (issue 30).

Each input is a cheap valid command (a tiny run on `--data synthetic`, or a command that answers at
once) with one to three mutations: a flag's value swapped for a hostile one (inf, NaN, 40 digits,
Arabic-Indic digits, 5,000 characters, /dev/zero, ...), a `--set KEY=VALUE` of a real config key with
such a value, a damaged file in place of a good one (empty, null or alias-bomb YAML, random bytes,
deeply nested JSON, a latency table or arch.json with one field changed), a token dropped or repeated.

Each input runs in a forked child of this process (the imports are paid once), in its own folder,
with a time limit and a memory watch. A run is broken when it exits with a status other than 0 or 2,
prints a traceback, prints more than one `autospace: error` line, runs past the time limit (a hang)
or grows past the memory limit. Prints one JSON line: inputs, broken, by_kind (and the first broken
inputs as examples); `--log FILE` writes one JSON line per input.

    OMP_NUM_THREADS=1 python bench/fuzz_cli.py --inputs 500 --seed 0
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import shutil
import signal
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
ARCH = ROOT / "configs" / "archs" / "cifar_small.json"
NB201_CELL = "|nor_conv_3x3~0|+|nor_conv_3x3~0|avg_pool_3x3~1|+|skip_connect~0|nor_conv_3x3~1|skip_connect~2|"

HOSTILE_VALUES = ["", "0", "-1", "1.5", "1e400", "-1e400", "inf", "nan", "9" * 40, "-" + "9" * 40, "١٢", "１２",
                  "a" * 5000, "abc", "null", "~", "[]", "[1, [2, [3]]]", "{a: 1}", "true", "/dev/zero", "/",
                  "no/such/folder/file.json", "/proc/no-such/file.json", "*alias", "&anchor x", "'", "%s%n", "-", "--", "1e-320", "0x10",
                  "1_000", " 5 ", "\t", "é"]
# Small values a setting accepts, at its edges: they keep a tiny run tiny but reach the code behind the checks.
EDGE_VALUES = ["1", "2", "3", "0.5", "0.0", "1e-9", "0.999999", "false", "true", "none"]

TINY = ["--data", "synthetic:128,32", "--device", "cpu", "--set", "progress=false"]
SPOS = ["--set", "epochs=1", "--set", "warmup_epochs=0", "--set", "batch_size=16", "--set", "population=4",
        "--set", "top=2", "--set", "mutations=2", "--set", "crossovers=2", "--set", "generations=1",
        "--set", "recalibration_batches=1", "--set", "eval_batches=1", "--set", "pick_candidates=2"]
NB201 = ["--set", "data=synthetic:128,32", "--set", "channels=4", "--set", "cells_per_stage=1", "--set", "image_size=8",
         "--set", "steps=6", "--set", "batch_size=16", "--set", "regenerate_every=3", "--set", "device=cpu",
         "--set", "population_size=4", "--set", "offspring=2", "--set", "min_trained_steps=1",
         "--set", "recalibration_images=32", "--set", "naswot_batch=8", "--set", "naswot_channels=4",
         "--set", "naswot_cells_per_stage=1"]


def base_commands() -> dict[str, tuple[list[str], str | None]]:
    """Name -> (a cheap valid command line, the config class its --set keys come from). `{X}` marks a file
    the case folder holds: ARCH, CELLS, TABLE, NETCONFIG, RUN (a finished train run), YAML (a config)."""
    spos = ["search", "--space", "manual", "--preset", "cifar-small", "--method", "spos", "--target-madds", "14M"]
    return {
        "space count": (["space", "count", "--json"], None),
        "profile": (["profile", "{ARCH}", "--repeats", "1", "--device", "cpu", "--resolution", "32"], None),
        "profile table": (["profile", "{ARCH}", "--repeats", "1", "--latency-table", "{TABLE}"], None),
        "latency-table": (["latency-table", "cifar-small", "-o", "table.json", "--repeats", "1", "--warmup", "0",
                           "--rounds", "1", "--no-progress", "--resolution", "16"], None),
        "show": (["show", "{ARCH}", "-o", "picture.svg"], None),
        "import-config": (["import-config", "{NETCONFIG}", "-o", "imported.json", "--resolution", "32"], None),
        "export": (["export", "{RUN}", "--format", "state_dict", "-o", "exported"], None),
        "report": (["report", "{RUN}", "-o", "report.html"], None),
        "train": (["train", "{ARCH}", "--out", "run", *TINY, "--set", "epochs=1", "--set", "batch_size=16",
                   "--config", "{YAML}"], "TrainConfig"),
        "train resume": (["train", "--resume", "{RUN}", "--device", "cpu"], "TrainConfig"),
        "search spos": ([*spos, "--out", "run", *TINY, *SPOS], "SearchConfig"),
        "search latency": ([*spos, "--out", "run", *TINY, *SPOS, "--target-latency-ms", "1000",
                            "--latency-table", "{TABLE}"], "SearchConfig"),
        "search proxyless-g": (["search", "--space", "manual", "--preset", "cifar-small", "--method", "proxyless-g",
                                "--target-madds", "14M", "--out", "run", "--data", "synthetic:128,32", "--device",
                                "cpu", "--set", "progress=false", "--set", "epochs=1", "--set", "warmup_epochs=0",
                                "--set", "batch_size=16", "--set", "pick_candidates=2",
                                "--set", "recalibration_batches=1"], "SearchConfig"),
        "evolve": (["evolve", "--preset", "cifar-small", "--budget-madds", "15M", "--out", "run",
                    "--data", "synthetic:128,32", "--device", "cpu", "--set", "progress=false", "--set", "epochs=1",
                    "--set", "warmup_epochs=0.5", "--set", "batch_size=16", "--set", "population_size=4",
                    "--set", "candidates_per_layer=2", "--set", "top_k=2", "--set", "regenerate_every=2"],
                   "EvolveConfig"),
        "evolve nse": (["evolve", "--method", "nse", "--preset", "cifar-small", "--budget-madds", "15M", "--out", "run",
                        *TINY, "--set", "rounds=1", "--set", "epochs_per_round=1", "--set", "batch_size=8",
                        "--set", "subset_size=2", "--set", "samples=2", "--set", "sample_draws=5",
                        "--set", "recalibration_batches=1", "--set", "eval_batches=1"], "NseConfig"),
        "run": (["run", "--space-method", "manual", "--search-method", "spos", "--budget-madds", "14M", "--out", "run",
                 "--data", "synthetic:128,32", "--device", "cpu", "--set", "progress=false",
                 "--set", "evolve.preset=cifar-small",
                 "--set", "search.epochs=1", "--set", "search.warmup_epochs=0", "--set", "search.batch_size=16",
                 "--set", "search.population=4", "--set", "search.top=2", "--set", "search.generations=1",
                 "--set", "search.mutations=2", "--set", "search.crossovers=2",
                 "--set", "search.recalibration_batches=1", "--set", "search.eval_batches=1",
                 "--set", "train.epochs=1", "--set", "train.batch_size=16"], "RunConfig"),
        "nb201 cost": (["nb201", "cost", "--cells", "{CELLS}"], None),
        "nb201 rank": (["nb201", "rank", "--cells", "{CELLS}", "--out", "run", *NB201], "Nb201Config"),
        "nb201 search": (["nb201", "search", "--out", "run", *NB201], "Nb201Config"),
    }


def config_classes() -> dict:
    from autospace.evolve import EvolveConfig, NseConfig
    from autospace.nb201.config import Nb201Config
    from autospace.pipeline import RunConfig
    from autospace.search import SearchConfig
    from autospace.train import TrainConfig

    return {cls.__name__: cls for cls in (TrainConfig, SearchConfig, EvolveConfig, NseConfig, Nb201Config, RunConfig)}


# ---- files ---------------------------------------------------------------------------------------------

def good_files(folder: Path, shared: Path) -> dict[str, Path]:
    """The valid files every case starts from (copies of the ones made once in `shared`)."""
    paths = {}
    for name, source in (("ARCH", ARCH), ("TABLE", shared / "table.json"), ("NETCONFIG", shared / "net.config"),
                         ("CELLS", shared / "cells.txt"), ("YAML", shared / "config.yaml")):
        paths[name] = folder / Path(source).name
        shutil.copyfile(source, paths[name])
    paths["RUN"] = folder / "finished"
    shutil.copytree(shared / "finished", paths["RUN"])
    return paths


def hostile_file(rng: random.Random, folder: Path, kind: str, good: Path) -> Path:
    """A damaged stand-in for the file `good`."""
    path = folder / f"hostile-{kind}-{rng.randrange(10**9)}{good.suffix if good.suffix else ''}"  # one per mutation
    choice = rng.choice(["empty", "null", "laughs", "bytes", "nested", "field", "truncate", "dev-zero", "folder",
                         "long-value"])
    if choice == "dev-zero":
        return Path("/dev/zero")
    if choice == "folder":
        path.mkdir()
        return path
    if choice == "empty":
        path.write_text("")
    elif choice == "null":
        path.write_text(rng.choice(["~\n", "null\n", "[]\n", "5\n", "'x'\n"]))
    elif choice == "laughs":
        lines = ['a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
        lines += [f"{b}: &{b} [{', '.join(['*' + a] * 9)}]" for a, b in zip("abcdefgh", "bcdefghi")]
        path.write_text("\n".join(lines) + "\n")
    elif choice == "bytes":
        path.write_bytes(bytes(rng.randrange(256) for _ in range(rng.choice([1, 100, 5000]))))
    elif choice == "nested":
        depth = rng.choice([70, 1000, 100_000])
        path.write_text("[" * depth + "]" * depth)
    elif choice == "truncate":
        text = good.read_bytes() if good.is_file() else b"{}"
        path.write_bytes(text[: rng.randrange(max(1, len(text)))])
    elif choice == "long-value":
        path.write_text("data: " + "a" * 200_000 + "\n" if good.suffix == ".yaml" else
                        json.dumps({"format": "a" * 200_000}))
    else:  # one field of a JSON file, or one line of a text file, changed to a hostile value
        text = good.read_text() if good.is_file() else "{}"
        try:
            data = json.loads(text)
        except ValueError:
            lines = text.splitlines() or [""]
            lines[rng.randrange(len(lines))] = rng.choice(HOSTILE_VALUES)
            path.write_text("\n".join(lines) + "\n")
            return path
        mutate_json(rng, data)
        path.write_text(json.dumps(data).replace('"__inf__"', "1e400").replace('"__nan__"', "NaN"))
    return path


def mutate_json(rng: random.Random, data) -> None:
    """Change one value somewhere inside `data` (dicts and lists) to a hostile JSON value."""
    values = [None, -1, 0, 1e400, 2**70, "", "x" * 3000, [], {}, True, "__inf__", "__nan__", 1.5, "١٢", [[[[]]]]]
    node = data
    for _ in range(rng.randint(1, 6)):
        children = list(node.items()) if isinstance(node, dict) else list(enumerate(node)) if isinstance(
            node, list) else []
        if not children:
            break
        key, child = rng.choice(children)
        if not isinstance(child, (dict, list)) or rng.random() < 0.3:
            node[key] = rng.choice(values)
            return
        node = child


# ---- mutations -------------------------------------------------------------------------------------------

def mutate(rng: random.Random, argv: list[str], config_class, folder: Path, files: dict[str, Path]) -> list[str]:
    argv = list(argv)
    kind = rng.choice(["value", "value", "set", "set", "set", "file", "drop", "repeat", "unknown"])
    value_positions = [i for i in range(1, len(argv)) if argv[i - 1].startswith("-") and not argv[i].startswith("-")]
    if kind == "value" and value_positions:
        position = rng.choice(value_positions)
        argv[position] = rng.choice(HOSTILE_VALUES)
    elif kind == "set" and config_class is not None:
        from autospace.runtime.config import config_keys

        key = rng.choice(config_keys(config_class) + ["no_such_key", "epochs.inner", ""])
        argv += ["--set", f"{key}={rng.choice(HOSTILE_VALUES + EDGE_VALUES * 2)}"]
    elif kind == "file":
        names = [name for name in files if any(item == f"{{{name}}}" for item in argv)]
        if names:
            name = rng.choice(names)
            hostile = hostile_file(rng, folder, name.lower(), files[name])
            argv = [str(hostile) if item == f"{{{name}}}" else item for item in argv]
        elif config_class is not None:
            argv += ["--config", str(hostile_file(rng, folder, "yaml", files["YAML"]))]
    elif kind == "drop" and len(argv) > 1:
        del argv[rng.randrange(1, len(argv))]
    elif kind == "repeat" and len(argv) > 1:
        position = rng.randrange(1, len(argv))
        argv[position:position] = argv[position:position + 2]
    else:
        argv.insert(rng.randrange(1, len(argv) + 1), rng.choice(["--bogus", "-x", "--set", "--out", "--resume"]))
    return argv


def make_inputs(count: int, seed: int) -> list[tuple[str, int]]:
    """(base command, per-input seed) for every input: the bases in turn, so each is fuzzed alike."""
    bases = list(base_commands())
    rng = random.Random(seed)
    return [(bases[index % len(bases)], rng.randrange(2**32)) for index in range(count)]


# ---- running -----------------------------------------------------------------------------------------------

ERROR_LINE = re.compile(r"^autospace( [\w-]+)*( \(rank \d+\))?: error")


def prepare_shared(folder: Path) -> None:
    """Files every case copies: a latency table of this machine for the manual cifar-small space (fake
    times), a net.config, an NB201 cells file, a train config and a finished tiny train run."""
    sys.path.insert(0, str(ROOT / "tests"))
    from test_importing import mobilenetv2_config

    from autospace.arch import manual_space, preset_skeleton
    from autospace.cli import main
    from autospace.latency.keys import block_key, fixed_keys
    from autospace.latency.table import LatencyEntry, LatencyTable, save_table
    from autospace.nn.block_supernet import layer_choices
    from autospace.runtime.device import hardware_info
    import torch

    space = manual_space(preset_skeleton("cifar-small"))
    keys = fixed_keys(space.skeleton) + [block_key(block, slot) for slot, blocks in
                                         zip(space.skeleton.searchable_slots(), layer_choices(space))
                                         for block in blocks if not block.is_empty()]
    entries = {key: LatencyEntry(0.1, 0.01, 5, 0.05) for key in keys}
    save_table(folder / "table.json", LatencyTable("cpu", hardware_info("cpu")["device_name"], 1, 1, torch.__version__,
                                                   "fp32", entries=entries))
    (folder / "net.config").write_text(json.dumps(mobilenetv2_config()))
    (folder / "cells.txt").write_text(NB201_CELL + "\n" + NB201_CELL.replace("skip_connect", "nor_conv_1x1") + "\n")
    (folder / "config.yaml").write_text("lr: 0.05\nepochs: 1\n")
    with open(os.devnull, "w") as quiet:
        saved = sys.stdout, sys.stderr
        sys.stdout = sys.stderr = quiet
        try:
            code = main(["train", str(ARCH), "--out", str(folder / "finished"), *TINY, "--set", "epochs=1",
                         "--set", "batch_size=16"])
        finally:
            sys.stdout, sys.stderr = saved
    if code != 0:
        raise SystemExit("fuzz_cli: the tiny train run the cases share failed")


def run_case(argv: list[str], folder: Path, time_limit: float, memory_limit: int) -> dict:
    """Run `autospace argv` in a forked child inside `folder`; its exit status, stderr and how it ended."""
    out_path, err_path = folder / ".stdout", folder / ".stderr"
    pid = os.fork()
    if pid == 0:  # the child: never returns
        code = 1
        try:
            os.chdir(folder)
            os.setpgid(0, 0)
            for descriptor, path in ((1, out_path), (2, err_path)):
                handle = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
                os.dup2(handle, descriptor)
                os.close(handle)
            sys.stdout = open(1, "w", closefd=False)
            sys.stderr = open(2, "w", closefd=False)
            from autospace.cli import main

            try:
                code = main(argv)
            except SystemExit as exit_:
                code = exit_.code if isinstance(exit_.code, int) else (0 if exit_.code is None else 1)
        except BaseException:
            import traceback

            traceback.print_exc()
            code = 1
        finally:
            try:
                sys.stdout.flush()
                sys.stderr.flush()
            finally:
                os._exit(code if isinstance(code, int) and 0 <= code < 256 else 1)
    started, peak, ended = time.monotonic(), 0, None
    while True:
        finished, status = os.waitpid(pid, os.WNOHANG)
        if finished:
            break
        peak = max(peak, resident_bytes(pid))
        if peak > memory_limit:
            ended = "memory"
        elif time.monotonic() - started > time_limit:
            ended = "hang"
        if ended:
            try:
                os.killpg(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            os.waitpid(pid, 0)
            status = None
            break
        time.sleep(0.05)
    error = err_path.read_text(errors="replace") if err_path.exists() else ""
    code = None if status is None else (os.waitstatus_to_exitcode(status))
    return {"code": code, "stderr": error, "ended": ended, "seconds": round(time.monotonic() - started, 2),
            "peak_rss_mib": peak // 2**20}


# Device nodes a hostile output path may name: a case that replaces one (an atomic rename over /dev/zero, as
# root) is broken, and the pass stops there (the machine's /dev must be put right before going on).
GUARDED_DEVICES = ("/dev/zero", "/dev/null")


def devices_intact() -> bool:
    import stat

    try:
        return all(stat.S_ISCHR(os.lstat(path).st_mode) for path in GUARDED_DEVICES if os.path.lexists(path))
    except OSError:
        return False


def resident_bytes(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/status", encoding="ascii") as file:
            for line in file:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError):
        pass
    return 0


def classify(result: dict) -> str | None:
    """The kind of breakage of a case, or None when it ended as promised (0, or 2 with one error line)."""
    if result["ended"]:
        return result["ended"]
    if "Traceback (most recent call last)" in result["stderr"]:
        return "traceback"
    if result["code"] not in (0, 2):
        return f"exit {result['code']}"
    if sum(1 for line in result["stderr"].splitlines() if ERROR_LINE.match(line)) > 1:
        return "several error lines"
    return None


def fuzz(count: int, seed: int, time_limit: float, memory_limit: int, log: Path | None = None,
         show_progress: bool = False) -> dict:
    os.environ.update(OMP_NUM_THREADS="1", AUTOSPACE_NO_DOWNLOAD="1")
    os.environ.pop("AUTOSPACE_DATA", None)
    import torch

    torch.set_num_threads(1)
    import autospace.cli  # noqa: F401  (imported once, before the forks)

    bases, classes = base_commands(), config_classes()
    root = Path(tempfile.mkdtemp(prefix="autospace-fuzz-"))
    os.environ["AUTOSPACE_CACHE"] = str(root / "decoded-cache")
    shared = root / "shared"
    shared.mkdir()
    prepare_shared(shared)
    by_kind: dict[str, int] = {}
    examples, broken = [], 0
    logging = open(log, "w") if log else None
    try:
        for index, (base, case_seed) in enumerate(make_inputs(count, seed)):
            rng = random.Random(case_seed)
            folder = root / f"case{index}"
            folder.mkdir()
            files = good_files(folder, shared)
            template, class_name = bases[base]
            argv = template
            for _ in range(rng.choice([1, 1, 2, 3])):
                argv = mutate(rng, argv, classes.get(class_name), folder, files)
            argv = [str(files[item[1:-1]]) if item.startswith("{") and item[1:-1] in files else item
                    for item in argv]
            result = run_case(argv, folder, time_limit, memory_limit)
            kind = classify(result)
            if not devices_intact():
                kind = "replaced a device node"
            if kind:
                broken += 1
                by_kind[kind] = by_kind.get(kind, 0) + 1
                if len(examples) < 10:
                    examples.append({"base": base, "argv": [item[:80] for item in argv], "kind": kind,
                                     "stderr_tail": result["stderr"][-600:]})
            if logging:
                logging.write(json.dumps({"index": index, "base": base, "argv": [item[:200] for item in argv],
                                          "kind": kind, **{k: v for k, v in result.items() if k != "stderr"},
                                          "stderr_tail": result["stderr"][-400:]}) + "\n")
                logging.flush()
            if show_progress:
                print(f"{index + 1}/{count} {base}: {kind or 'ok'} ({result['seconds']} s)", file=sys.stderr)
            shutil.rmtree(folder, ignore_errors=True)
            if kind == "replaced a device node":
                count = index + 1  # stop: every later case would run against a broken /dev
                break
    finally:
        if logging:
            logging.close()
        shutil.rmtree(root, ignore_errors=True)
    return {"inputs": count, "broken": broken, "by_kind": by_kind, "seed": seed, "examples": examples}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--inputs", type=int, default=500, help="how many fuzzed command lines (default 500)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--time-limit", type=float, default=30.0, help="seconds before a case is a hang")
    parser.add_argument("--memory-limit-gib", type=float, default=4.0, help="resident memory before a blowup")
    parser.add_argument("--log", type=Path, help="one JSON line per input")
    parser.add_argument("--progress", action="store_true", help="one line per input on stderr")
    args = parser.parse_args(argv)
    result = fuzz(args.inputs, args.seed, args.time_limit, int(args.memory_limit_gib * 2**30), args.log, args.progress)
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
