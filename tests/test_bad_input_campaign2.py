"""Issue 30, the second bad-input campaign: each case below ended in a traceback, a hang, several stderr
lines or a dead-end run folder; each now ends in one line and exit status 2 (or, for the restart
cases, a run that starts again in the same folder)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import torch

from autospace.cli import main
from test_bad_input import ARCH, QUICK, SYNTHETIC, fails_cleanly

TABLE_ARGS = ["--target-latency-ms", "5"]
SPOS_QUICK = ["--set", "population=4", "--set", "top=2", "--set", "mutations=2", "--set", "crossovers=2",
              "--set", "generations=1", "--set", "recalibration_batches=1", "--set", "eval_batches=1",
              "--set", "pick_candidates=2"]
NSE_QUICK = ["--device", "cpu", "--set", "progress=false", "--set", "rounds=1", "--set", "epochs_per_round=1",
             "--set", "batch_size=8", "--set", "subset_size=2", "--set", "samples=2", "--set", "sample_draws=5",
             "--set", "recalibration_batches=1", "--set", "eval_batches=1"]


@pytest.fixture(autouse=True)
def isolated_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("AUTOSPACE_CACHE", str(tmp_path / "decoded-cache"))
    monkeypatch.setenv("AUTOSPACE_NO_DOWNLOAD", "1")
    monkeypatch.delenv("AUTOSPACE_DATA", raising=False)


def search_argv(out) -> list:
    return ["search", "--space", "manual", "--preset", "cifar-small", "--method", "spos", "--target-madds", "14M",
            "--set", "warmup_epochs=0", *SPOS_QUICK, "--out", out, *SYNTHETIC, *QUICK]


# ---- 1. a 200,000-character value ---------------------------------------------------------------------

@pytest.mark.parametrize("command", ["train", "search"])
def test_a_200000_character_config_value_is_one_line(tmp_path, capsys, command):
    config = tmp_path / "long.yaml"
    config.write_text("data: " + "a" * 200_000 + "\n")
    argv = (["train", ARCH, "--out", tmp_path / "run", *QUICK] if command == "train"
            else search_argv(tmp_path / "run")[:-len(SYNTHETIC + QUICK)] + QUICK)
    line = fails_cleanly(capsys, argv + ["--config", config], "'data'", "at most 4096 characters")
    assert len(line) < 600  # the value is shortened in the message


def test_a_data_name_longer_than_a_file_name_is_one_line(tmp_path, capsys):
    fails_cleanly(capsys, ["train", ARCH, "--out", tmp_path / "run", "--set", "data=" + "b" * 300, *QUICK],
                  "unknown data set")


@pytest.mark.parametrize("argv", [
    ["nb201", "cost", "--cells", "c" * 5000],
    ["train", ARCH, "--out", "d" * 300, *SYNTHETIC, *QUICK],
    ["profile", "e" * 300],
    ["latency-table", "cifar-small", "-o", "f" * 300 + ".json"],
])
def test_a_path_too_long_for_the_system_is_one_line(capsys, argv):
    fails_cleanly(capsys, argv, "too long for a path or name")


@pytest.mark.parametrize("command", ["import-config", "show", "latency-table"])
def test_an_output_path_that_is_a_pipe_or_device_is_refused(tmp_path, capsys, command):
    """The fuzz pass found it: run as root, `import-config -o /dev/zero` renamed an arch.json over /dev/zero.
    A FIFO stands in for the device here (tests make no device nodes)."""
    import stat

    from test_importing import mobilenetv2_config

    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    net_config = tmp_path / "net.config"
    net_config.write_text(json.dumps(mobilenetv2_config()))
    argv = {"import-config": ["import-config", net_config, "-o", fifo],
            "show": ["show", ARCH, "-o", fifo],
            "latency-table": ["latency-table", "cifar-small", "-o", fifo, "--repeats", "1", "--no-progress"]}[command]
    fails_cleanly(capsys, argv, "is a device, pipe or socket")
    assert stat.S_ISFIFO(os.lstat(fifo).st_mode)  # still the pipe


# ---- 2, 10. learning rates and weight decay out of any sane range ----------------------------------------

@pytest.mark.parametrize("argv_tail, expected", [
    (["--set", "lr=1e300"], "lr is 1e+300; it must be in (0, 10]"),
    (["--set", "lr=" + "9" * 40], "lr is"),
    (["--set", "weight_decay=9223372036854775807"], "weight_decay is"),
])
def test_train_refuses_absurd_optimiser_settings(tmp_path, capsys, argv_tail, expected):
    fails_cleanly(capsys, ["train", ARCH, "--out", tmp_path / "run", *SYNTHETIC, *QUICK, *argv_tail], expected)
    assert not (tmp_path / "run").exists()  # refused before the folder is made


def test_a_config_built_in_code_is_range_checked_too(tmp_path):
    from autospace.errors import AutospaceError
    from autospace.train import TrainConfig, train

    with pytest.raises(AutospaceError, match=r"lr is 1e\+300"):
        train(ARCH, TrainConfig(data="synthetic:64,32", lr=1e300, epochs=1, batch_size=8, device="cpu",
                                progress=False), tmp_path / "run")


def test_run_refuses_absurd_weight_decay_up_front(tmp_path, capsys):
    fails_cleanly(capsys, ["run", "--out", tmp_path / "run", *SYNTHETIC, "--set",
                           "train.weight_decay=9223372036854775807"], "weight_decay is", "[0, 1]")


@pytest.mark.parametrize("key", ["weight_lr=1e300", "arch_lr=50", "weight_decay=2"])
def test_search_refuses_absurd_optimiser_settings(tmp_path, capsys, key):
    fails_cleanly(capsys, search_argv(tmp_path / "run") + ["--set", key], key.split("=")[0] + " is")


# ---- 3, 11, 13. latency tables --------------------------------------------------------------------------

def here_table(tmp_path, **changes) -> Path:
    """A table of this machine's conditions with every entry the manual cifar-small space needs."""
    from test_latency import fake_table, small_space

    from autospace.latency.table import table_to_json

    data = table_to_json(fake_table(small_space()))
    data.update(changes)
    path = tmp_path / "table.json"
    path.write_text(json.dumps(data).replace('"__inf__"', "1e400"))
    return path


@pytest.mark.parametrize("field", ["batch_size", "threads"])
@pytest.mark.parametrize("command", ["search", "nse"])
def test_latency_table_with_an_infinite_field_is_one_line(tmp_path, capsys, field, command):
    table = here_table(tmp_path, **{field: "__inf__"})
    argv = (search_argv(tmp_path / "run") if command == "search" else
            ["evolve", "--method", "nse", "--preset", "cifar-small", "--out", tmp_path / "run", *SYNTHETIC, *NSE_QUICK])
    fails_cleanly(capsys, argv + TABLE_ARGS + ["--latency-table", table], "is damaged", field)


def test_nse_latency_target_beyond_reason_is_refused_up_front(tmp_path, capsys):
    table = here_table(tmp_path)
    fails_cleanly(capsys, ["evolve", "--method", "nse", "--preset", "cifar-small", "--out", tmp_path / "run",
                           *SYNTHETIC, *NSE_QUICK, "--target-latency-ms", "9" * 40, "--latency-table", table],
                  "target_latency_ms is", "(0, 1e6]")


@pytest.mark.parametrize("changes, named", [
    ({"device_name": "Some Other CPU"}, "device_name 'Some Other CPU' in the table"),
    ({"torch_version": "1.0.0"}, "torch_version '1.0.0' in the table"),
    ({"threads": 4096}, "threads 4096 in the table"),
])
def test_a_latency_table_of_other_conditions_is_refused_naming_the_fields(tmp_path, capsys, changes, named):
    table = here_table(tmp_path, **changes)
    line = fails_cleanly(capsys, search_argv(tmp_path / "run") + TABLE_ARGS + ["--latency-table", table],
                         named, "--latency-remeasure")
    assert "device, device_name, torch_version, threads" in line  # says which fields must match


def test_extending_a_table_under_other_conditions_is_refused(tmp_path):
    from autospace.errors import AutospaceError
    from autospace.latency.table import open_table

    table = here_table(tmp_path, torch_version="1.0.0")
    with pytest.raises(AutospaceError, match="torch_version '1.0.0' in the table"):
        open_table(table, "cpu", 1, 1, 0, 1, "fp32", "min", 1)


def test_latency_remeasure_measures_a_new_table_here(tmp_path, capsys, monkeypatch):
    import autospace.latency.timing as timing
    from autospace.latency.table import load_table

    def quick_networks(networks, device, batch_size, warmup, repeats, autocast_dtype=None, segments=True):
        return [([[0.1] * 3 for _ in range(len(network.layers) + 2)], [0.1 * (len(network.layers) + 2)] * 3)
                for network in networks]  # no real timing

    monkeypatch.setattr(timing, "time_networks", quick_networks)

    table = here_table(tmp_path, device_name="Some Other CPU", torch_version="1.0.0")
    original = table.read_text()
    code = main([str(item) for item in search_argv(tmp_path / "run")
                 + ["--target-latency-ms", "1000", "--latency-table", table, "--latency-remeasure"]])
    assert code == 0, capsys.readouterr().err
    assert table.read_text() == original  # the old table is untouched
    new = load_table(tmp_path / "table.here.json")
    assert new.torch_version == torch.__version__ and new.device_name != "Some Other CPU"
    assert new.entries  # what the search needed, measured here


# ---- 4, 5, 8. profile ----------------------------------------------------------------------------------

@pytest.mark.skipif(not os.path.exists("/dev/zero"), reason="needs /dev/zero")
def test_profile_of_dev_zero_is_one_line(capsys):
    fails_cleanly(capsys, ["profile", "/dev/zero", "--repeats", "1"], "larger than 64 MiB")


def test_profile_at_a_resolution_too_big_for_memory_is_one_line(capsys):
    fails_cleanly(capsys, ["profile", ARCH, "--resolution", "65536", "--device", "cpu"], "activations",
                  "lower resolution")


@pytest.mark.parametrize("repeats", ["9" * 40, "100001"])
@pytest.mark.parametrize("with_table", [False, True], ids=["measured", "against-a-table"])
def test_profile_repeats_beyond_reason_is_one_line(tmp_path, capsys, repeats, with_table):
    table = ["--latency-table", here_table(tmp_path)] if with_table else []
    fails_cleanly(capsys, ["profile", ARCH, "--repeats", repeats, *table], "repeats is", "[1, 100,000]")


# ---- 6, 9. YAML aliases and empty configs ------------------------------------------------------------------

BILLION_LAUGHS = 'a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]\n' + "".join(
    f"{name}: &{name} [{', '.join(['*' + previous] * 9)}]\n" for previous, name in zip("abcdefgh", "bcdefghi"))


def test_billion_laughs_yaml_is_refused_at_once(tmp_path, capsys):
    config = tmp_path / "laughs.yaml"
    config.write_text(BILLION_LAUGHS)
    fails_cleanly(capsys, ["train", ARCH, "--config", config, "--out", tmp_path / "run", *SYNTHETIC, *QUICK],
                  "aliases are not accepted", "line 2")


@pytest.mark.parametrize("text", ["~\n", "null\n", "", "# only a comment\n"])
def test_an_empty_or_null_config_names_the_file(tmp_path, capsys, text):
    config = tmp_path / "empty.yaml"
    config.write_text(text)
    fails_cleanly(capsys, ["train", ARCH, "--config", config, "--out", tmp_path / "run", *QUICK],
                  str(config), "holds no settings")


# ---- 7. max_distance -------------------------------------------------------------------------------------

def test_population_with_a_huge_max_distance_fills_at_once():
    """max_distance=2**63-1 drew that many mutations per new cell; a cell differs from the reference in at
    most its 6 edges, e and aggregation, so more mutations are never drawn (this returned only in hours)."""
    import random

    from autospace.arch.presets import preset_skeleton
    from autospace.evolve.layer_budget import layer_budgets
    from autospace.evolve.population import LayerPopulation
    from autospace.arch import reference_cell

    skeleton = preset_skeleton("cifar-small")
    band = layer_budgets(skeleton, 25_000_000, reference_cell(), 1.08, 0.6)[3]
    population = LayerPopulation(skeleton.searchable_slots()[3], band, 2**63 - 1)
    population.initialise(12, random.Random(1))
    assert len(set(population.cells())) == 12


# ---- smaller: digits and the lock holder ----------------------------------------------------------------------

@pytest.mark.parametrize("value", ["١٢", "１２", "۱۲"])
def test_non_ascii_digits_are_not_numbers(tmp_path, capsys, value):
    fails_cleanly(capsys, ["train", ARCH, "--out", tmp_path / "run", *SYNTHETIC, *QUICK, "--set", f"epochs={value}"],
                  "'epochs'", "expected an integer")
    with pytest.raises(SystemExit) as raised:
        main(["profile", str(ARCH), "--repeats", value])
    assert raised.value.code == 2


def test_a_busy_folder_names_its_holder_once(tmp_path):
    from autospace.errors import AutospaceError
    from autospace.runtime.run_lock import LOCK_NAME, _read_holder

    lock = tmp_path / LOCK_NAME
    lock.write_text("13114\n13011\n")
    handle = os.open(lock, os.O_RDONLY)
    try:
        assert _read_holder(handle) == "13114"
    finally:
        os.close(handle)
    assert AutospaceError  # the refusal itself: test_run_folder_faults.py


# ---- 12. a run killed before its first checkpoint starts again in the same folder, for every command -------

PROXYLESS = ["--space", "manual", "--preset", "cifar-small", "--target-madds", "14M", "--set", "epochs=2",
             "--set", "warmup_epochs=1", "--set", "batch_size=16", "--set", "recalibration_batches=1",
             "--set", "pick_candidates=2"]
NB201 = [item for pair in (("--set", setting) for setting in (
    "data=synthetic:128,32", "channels=4", "cells_per_stage=1", "image_size=8", "steps=10", "batch_size=16",
    "regenerate_every=5", "device=cpu", "population_size=4", "offspring=2", "min_trained_steps=1",
    "recalibration_images=32", "naswot_batch=8", "naswot_channels=4", "naswot_cells_per_stage=1")) for item in pair]
MORE_DATA = ["--data", "synthetic:128,32"]
RESTART_COMMANDS = {
    "train": ["train", ARCH, *SYNTHETIC, *QUICK],
    "search-spos": ["search", "--space", "manual", "--preset", "cifar-small", "--method", "spos", "--target-madds",
                    "14M", "--set", "warmup_epochs=0", *SPOS_QUICK, *SYNTHETIC, *QUICK],
    "search-proxyless-g": ["search", "--method", "proxyless-g", *PROXYLESS, *MORE_DATA, "--device", "cpu",
                           "--set", "progress=false"],
    "search-proxyless-rl": ["search", "--method", "proxyless-rl", *PROXYLESS, "--set", "rl_samples=1", *MORE_DATA,
                            "--device", "cpu", "--set", "progress=false"],
    "evolve-autospace": ["evolve", "--preset", "cifar-small", "--budget-madds", "15M", "--set", "epochs=1",
                         "--set", "warmup_epochs=0.5", "--set", "batch_size=16", "--set", "population_size=4",
                         "--set", "candidates_per_layer=2", "--set", "top_k=2", "--set", "regenerate_every=2",
                         "--data", "synthetic:128,32", "--device", "cpu", "--set", "progress=false"],
    "evolve-nse": ["evolve", "--method", "nse", "--preset", "cifar-small", "--budget-madds", "15M", *SYNTHETIC,
                   *NSE_QUICK],
    "run": ["run", "--space-method", "manual", "--search-method", "spos", "--budget-madds", "14M", *MORE_DATA,
            "--device", "cpu", "--set", "evolve.preset=cifar-small", "--set", "search.warmup_epochs=0",
            "--set", "search.epochs=1", "--set", "search.batch_size=16", "--set", "search.population=4",
            "--set", "search.top=2", "--set", "search.mutations=2", "--set", "search.crossovers=2",
            "--set", "search.generations=1", "--set", "search.recalibration_batches=1",
            "--set", "search.eval_batches=1", "--set", "progress=false", "--set", "train.epochs=1",
            "--set", "train.batch_size=16"],
    "nb201-rank": ["nb201", "rank", "--cells", "CELLS", *NB201],
    "nb201-search": ["nb201", "search", *NB201],
}


def killed_at_the_first_checkpoint(*args, **kwargs):
    raise KeyboardInterrupt  # as if the process were killed the moment its first checkpoint was due


@pytest.mark.parametrize("command", [pytest.param(name, marks=() if name in ("train", "evolve-nse")
                                                  else pytest.mark.slow) for name in RESTART_COMMANDS])
def test_a_run_killed_before_its_first_checkpoint_starts_again_in_the_same_folder(tmp_path, capsys, monkeypatch,
                                                                                  command):
    import shutil

    from autospace.arch.nb201 import EXAMPLE_STRING
    import autospace.runtime.checkpoints as checkpoints

    cells = tmp_path / "cells.txt"
    cells.write_text(EXAMPLE_STRING + "\n" + EXAMPLE_STRING.replace("skip_connect", "nor_conv_1x1") + "\n")
    argv = [str(cells) if item == "CELLS" else str(item) for item in RESTART_COMMANDS[command]]
    out = tmp_path / "run"
    with monkeypatch.context() as patch:
        patch.setattr(checkpoints, "atomic_torch_save", killed_at_the_first_checkpoint)
        assert main(argv + ["--out", str(out)]) == 130, capsys.readouterr().err
    assert any(out.iterdir()) and not list(out.rglob("checkpoint*.pt"))
    shutil.copytree(out, tmp_path / "again")
    capsys.readouterr()
    # The same command with --out: the folder holds no checkpoint and no output, so the run starts afresh.
    assert main(argv + ["--out", str(out)]) == 0, capsys.readouterr().err
    assert list(out.rglob("checkpoint*.pt")) or (out / "train" / "metrics.json").exists()
    # --resume of the killed copy starts afresh too.
    resume = [item for item in argv if item != str(cells) and item != "--cells"]
    assert main(resume + ["--resume", str(tmp_path / "again")]) == 0, capsys.readouterr().err


def test_a_folder_with_a_checkpoint_or_foreign_files_is_still_refused(tmp_path, capsys):
    out = tmp_path / "run"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    fails_cleanly(capsys, ["train", ARCH, "--out", out, *SYNTHETIC, *QUICK], "is not empty")
    assert (out / "notes.txt").read_text() == "mine"
    assert main(["train", str(ARCH), "--out", str(tmp_path / "done"), *SYNTHETIC, *QUICK]) == 0
    capsys.readouterr()
    fails_cleanly(capsys, ["train", ARCH, "--out", tmp_path / "done", *SYNTHETIC, *QUICK], "is not empty")


def test_bad_input_leaves_no_folder_in_the_way_of_a_rerun(tmp_path, capsys):
    out = tmp_path / "run"
    fails_cleanly(capsys, ["train", ARCH, "--out", out, "--data-dir", tmp_path / "mistyped", *QUICK],
                  "does not exist")
    assert not out.exists()
    assert main(["train", str(ARCH), "--out", str(out), *SYNTHETIC, *QUICK]) == 0
