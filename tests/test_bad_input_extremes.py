"""The inputs an independent fuzz campaign (issue 17) found to end in a traceback: nested 100,000 deep,
YAML that prints several lines, zero channels, zero repeats, numbers past int64 or infinite, file
names that are not UTF-8, a network too big for memory. Each ends in one line and exit status 2."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from autospace.cli import main
from autospace.data import load_dataset
from test_bad_input import ARCH, QUICK, SYNTHETIC, fails_cleanly, valid_arch, write_json, write_npz

DEEP = 100_000


@pytest.fixture(autouse=True)
def isolated_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("AUTOSPACE_CACHE", str(tmp_path / "decoded-cache"))
    monkeypatch.setenv("AUTOSPACE_NO_DOWNLOAD", "1")
    monkeypatch.delenv("AUTOSPACE_DATA", raising=False)


# ---- 1. nested 100,000 deep --------------------------------------------------------------------------

def deep_json_file(tmp_path, name="deep.json") -> Path:
    return write_json(tmp_path / name, "[" * DEEP + "]" * DEEP)


@pytest.mark.parametrize("command", ["profile", "show", "train", "import-config", "search"])
def test_json_nested_100000_deep_is_one_line(tmp_path, capsys, command):
    deep = deep_json_file(tmp_path)
    argv = {
        "profile": ["profile", deep],
        "show": ["show", deep, "-o", tmp_path / "picture.svg"],
        "train": ["train", deep, "--out", tmp_path / "run", *SYNTHETIC, *QUICK],
        "import-config": ["import-config", deep, "-o", tmp_path / "arch.json"],
        "search": ["search", "--space", deep, "--method", "spos", "--target-madds", "14M", "--set",
                   "warmup_epochs=0", "--out", tmp_path / "run", *SYNTHETIC, *QUICK],
    }[command]
    fails_cleanly(capsys, argv, "too deep", "at most 64 levels")


def test_json_nested_just_past_the_limit_is_refused_before_the_loaders_recurse(tmp_path, capsys):
    # 900 deep parses in json (under the recursion limit) but would recurse in a decoder.
    arch = valid_arch()
    arch["info"] = json.loads("[" * 900 + "]" * 900)
    fails_cleanly(capsys, ["profile", write_json(tmp_path / "arch.json", arch)], "901 deep", "at most 64")


@pytest.mark.parametrize("text, expected", [
    ("epochs: " + "[" * DEEP + "]" * DEEP + "\n", ["too deep"]),
    ("epochs:\t5\n", ["not valid YAML", "'\\t'", "line 1, column 8"]),
    ("epochs: !!python/object/apply:os.system ['echo hi']\n", ["could not determine a constructor", "line 1"]),
    ("epochs: [1, 2\nlr: {\n", ["not valid YAML", "line 2"]),
], ids=["deep", "tab", "python-tag", "unclosed"])
def test_bad_yaml_config_is_one_line(tmp_path, capsys, text, expected):
    config = tmp_path / "config.yaml"
    config.write_text(text)
    fails_cleanly(capsys, ["train", ARCH, "--config", config, "--out", tmp_path / "run", *SYNTHETIC, *QUICK],
                  *expected)


def test_truncated_config_yaml_on_resume_is_one_line(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["train", str(ARCH), "--out", str(out), *SYNTHETIC, *QUICK]) == 0
    text = (out / "config.yaml").read_text()
    (out / "config.yaml").write_text(text[: text.index("lr:")] + "lr: [0.0")
    fails_cleanly(capsys, ["train", "--resume", out], "not valid YAML", "config.yaml")


# ---- 3. import-config: zero stem channels, an empty output path ---------------------------------------

def test_import_config_with_zero_stem_channels_and_mid_channels(tmp_path, capsys):
    from test_importing import mobilenetv2_config

    config = mobilenetv2_config()
    config["first_conv"]["out_channels"] = 0
    config["blocks"][0]["mobile_inverted_conv"].update(in_channels=0, mid_channels=32)
    source = write_json(tmp_path / "net.config", config)
    fails_cleanly(capsys, ["import-config", source, "-o", tmp_path / "arch.json"], "0 output channels",
                  "at least 1 channel")


@pytest.mark.parametrize("output, expected", [("", "path is empty"), (".", "is a folder")])
def test_import_config_to_an_empty_path_or_a_folder(tmp_path, capsys, output, expected):
    from test_importing import mobilenetv2_config

    source = write_json(tmp_path / "net.config", mobilenetv2_config())
    fails_cleanly(capsys, ["import-config", source, "-o", output], expected)


# ---- 4. profile --repeats 0 ------------------------------------------------------------------------

@pytest.mark.parametrize("repeats", ["0", "-1"])
def test_profile_with_no_repeats(capsys, repeats):
    fails_cleanly(capsys, ["profile", ARCH, "--repeats", repeats, "--device", "cpu"], f"repeats is {repeats}",
                  "integer in [1, ")


# ---- 5-7. numbers past int64, infinite and NaN -------------------------------------------------------

@pytest.mark.parametrize("argv", [
    ["train", ARCH, "--seed", str(2**63)],
    ["train", ARCH, "--set", f"seed={2**63}"],
    ["search", "--space", "manual", "--preset", "cifar-small", "--set", f"seed={2**64}"],
    ["evolve", "--preset", "cifar-small", "--set", f"seed={2**63}"],
])
def test_seed_beyond_int64(tmp_path, capsys, argv):
    fails_cleanly(capsys, [*argv, "--out", tmp_path / "run", *SYNTHETIC], "'seed'", "between -2**63 and 2**63 - 1")
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("figure", ["1e400", "inf", "1e30"])
def test_search_target_madds_beyond_any_network(tmp_path, capsys, figure):
    fails_cleanly(capsys, ["search", "--target-madds", figure, "--out", tmp_path / "run", *SYNTHETIC],
                  f"MAdds figure {figure!r}", "finite figure like 60M")


@pytest.mark.parametrize("command, key, value", [
    ("evolve", "cap_slack", "nan"), ("evolve", "warmup_epochs", "inf"), ("evolve", "weight_lr", "-inf"),
    ("search", "weight_lr", "nan"), ("search", "penalty_alpha", "inf"), ("train", "lr", "nan"),
    ("train", "warmup_epochs", "inf"), ("train", "lr", "1e400"),
])
def test_non_finite_numbers_in_configs(tmp_path, capsys, command, key, value):
    argv = [command, ARCH] if command == "train" else [command]
    fails_cleanly(capsys, [*argv, "--set", f"{key}={value}", "--out", tmp_path / "run", *SYNTHETIC],
                  f"'{key}'", "finite (not inf or nan)")


# ---- 8. a file name that is not UTF-8 ---------------------------------------------------------------

@pytest.mark.skipif(os.name != "posix", reason="POSIX file names are bytes")
def test_image_folder_with_a_file_name_that_is_not_utf8(tmp_path):
    root = tmp_path / "images"
    for split in ("train", "test"):
        for label in ("cat", "dog"):
            folder = root / split / label
            folder.mkdir(parents=True)
            for index in range(2):
                Image.new("RGB", (8, 8), (40 * index, 90, 30)).save(folder / f"{index}.png")
    odd = os.fsencode(root / "train" / "cat") + b"/\xff\xfe-photo.png"
    Image.new("RGB", (8, 8), (1, 2, 3)).save(os.fsdecode(odd))
    dataset = load_dataset(str(root))
    assert dataset.train_count == 5 and dataset.classes == ("cat", "dog")
    again = load_dataset(str(root))  # from the cache this time
    assert bool((again.train_images == dataset.train_images).all())


# ---- 9. a network too big for the device -------------------------------------------------------------

@pytest.mark.parametrize("command", ["profile", "train"])
def test_network_too_big_for_memory_is_refused_before_allocating(tmp_path, capsys, monkeypatch, command):
    import autospace.runtime.memory

    monkeypatch.setattr(autospace.runtime.memory, "free_memory_bytes", lambda device: 8 * 2**30)
    arch = valid_arch()
    for index in (1, 2):
        arch["network"]["layers"][index]["out_channels"] = 65536
    path = write_json(tmp_path / "big.json", arch)
    argv = ["profile", path, "--device", "cpu"] if command == "profile" else \
        ["train", path, "--out", tmp_path / "run", *SYNTHETIC, *QUICK]
    fails_cleanly(capsys, argv, "38,668,265,530 parameters", "GiB free", "fewer channels")


# ---- also accepted silently before: a multi block of no branches, an empty split, labels like 1.5, ------
# ---- a space.json's class count and resolution replaced by the data's without a word -----------------

def test_multi_block_with_no_branches(tmp_path, capsys):
    arch = valid_arch()
    arch["network"]["layers"][1]["block"] = {"type": "multi", "branches": []}
    fails_cleanly(capsys, ["profile", write_json(tmp_path / "arch.json", arch)], "has 0 blocks",
                  "a multi block holds 1 to")


def rewrite_npz(path: Path, **changes) -> Path:
    with np.load(path) as archive:
        arrays = {key: archive[key] for key in archive.files}
    arrays.update(changes)
    np.savez(path, **arrays)
    return path


def test_npz_with_an_empty_test_split(tmp_path, capsys):
    path = rewrite_npz(write_npz(tmp_path / "data.npz", [(32, 32)] * 16), test_jpeg=np.zeros(0, np.uint8),
                       test_offsets=np.zeros(1, np.int64), y_test=np.zeros(0, np.uint8))
    fails_cleanly(capsys, ["train", ARCH, "--out", tmp_path / "run", "--data", path, *QUICK],
                  "the test split holds no images", "at least one image")


@pytest.mark.parametrize("labels", [[1.5] + [0.0] * 15, [float("nan")] + [0.0] * 15])
def test_npz_with_labels_that_are_not_whole_numbers(tmp_path, capsys, labels):
    path = rewrite_npz(write_npz(tmp_path / "data.npz", [(32, 32)] * 16), y_train=np.array(labels))
    fails_cleanly(capsys, ["train", ARCH, "--out", tmp_path / "run", "--data", path, *QUICK],
                  "y_train holds float64 labels such as", "expected whole class numbers 0..9")


def test_search_says_when_it_adapts_a_space_to_the_data(tmp_path, capsys):
    from autospace.arch import manual_space, preset_skeleton, save_space
    from autospace.search.spaces import resolve_space

    path = tmp_path / "space.json"
    save_space(path, manual_space(preset_skeleton("cifar-small", num_classes=10, resolution=32)))
    space = resolve_space(str(path), "cifar-small", num_classes=4, in_channels=3, resolution=16)
    assert space.skeleton.num_classes == 4 and space.skeleton.resolution == 16
    note = capsys.readouterr().err.strip()
    assert note.startswith("autospace: note:") and "10 classes at 32px" in note and "4 classes at 16px" in note
