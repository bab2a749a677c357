"""Property tests: random and mutated JSON thrown at every loader gives a valid object or an
AutospaceError, never another exception."""

import json

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from autospace.arch import (
    arch_from_dict, arch_to_dict, block_from_dict, load_arch, load_space, manual_space, mobilenetv2,
    preset_skeleton, space_from_dict, space_to_dict,
)
from autospace.runtime.config import load_config
from autospace.errors import AutospaceError
from autospace.evolve import EvolveConfig
from autospace.search import SearchConfig
from autospace.train import TrainConfig

# Huge integers (past int64) and non-finite floats are in every draw's reach (issue 17: 2**63 seeds,
# 1e400 budgets, nan slacks); so is nesting far deeper than any file autospace writes (DEEP_JSON_TEXT).
HUGE_INTEGERS = st.one_of(st.integers(-10, 10**6), st.integers(-2**80, 2**80),
                          st.sampled_from([2**63 - 1, 2**63, -2**63 - 1, 2**64, 10**400]))
SCALARS = st.one_of(st.none(), st.booleans(), HUGE_INTEGERS, st.floats(allow_nan=True, allow_infinity=True),
                    st.sampled_from([float("inf"), float("-inf"), float("nan"), 1e308]), st.text(max_size=12))
JSON = st.recursive(SCALARS, lambda children: st.one_of(
    st.lists(children, max_size=4), st.dictionaries(st.text(max_size=10), children, max_size=4)), max_leaves=12)

VALID_ARCH = json.loads(json.dumps(arch_to_dict(mobilenetv2(num_classes=10, resolution=32, width_stride=1))))
VALID_SPACE = json.loads(json.dumps(space_to_dict(manual_space(preset_skeleton("cifar-small")))))


def _clean(call, *args):
    try:
        call(*args)
    except AutospaceError:
        pass


def _paths(value, prefix=()):
    yield prefix
    if isinstance(value, dict):
        for key, child in value.items():
            yield from _paths(child, prefix + (key,))
    elif isinstance(value, list):
        for index, child in enumerate(value):
            yield from _paths(child, prefix + (index,))


def _replace(value, path, new):
    if not path:
        return new
    copy = json.loads(json.dumps(value))
    target = copy
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = new
    return copy


ARCH_PATHS = list(_paths(VALID_ARCH))
SPACE_PATHS = list(_paths(VALID_SPACE))
FAST = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@FAST
@given(JSON)
def test_random_json_into_every_loader(data):
    for loader in (arch_from_dict, space_from_dict, block_from_dict):
        _clean(loader, data)


@FAST
@given(st.sampled_from(ARCH_PATHS), JSON)
def test_mutated_arch_json(path, new):
    _clean(arch_from_dict, _replace(VALID_ARCH, path, new))


@FAST
@given(st.sampled_from(SPACE_PATHS), JSON)
def test_mutated_space_json(path, new):
    _clean(space_from_dict, _replace(VALID_SPACE, path, new))


def _deep_json_text(depth: int, opener: str, leaf: str) -> str:
    """JSON nested `depth` deep, built as text (json.dumps itself would recurse)."""
    closer = {"[": "]", '{"k": ': "}"}[opener]
    return opener * depth + leaf + closer * depth


DEEP_JSON_TEXT = st.builds(_deep_json_text, st.one_of(st.integers(0, 80), st.integers(80, 5000),
                                                      st.just(100_000)),
                           st.sampled_from(["[", '{"k": ']), st.sampled_from(["1", "1e400", "null", '"x"']))


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(DEEP_JSON_TEXT)
def test_deeply_nested_json_files_into_every_file_reader(tmp_path_factory, text):
    from autospace.arch.netconfig import import_network_config
    from autospace.report.show import load_drawable

    path = tmp_path_factory.mktemp("deep") / "file.json"
    path.write_text(text)
    for reader in (load_arch, load_space, import_network_config, load_drawable):
        _clean(reader, path)


# PyYAML is pure Python and slow at depth: up to 3,000 here (past the recursion limit);
# test_bad_input_extremes.py::test_bad_yaml_config_is_one_line[deep] runs 100,000 once.
DEEP_YAML_TEXT = st.builds(_deep_json_text, st.one_of(st.integers(0, 80), st.integers(80, 3000)),
                           st.sampled_from(["[", '{"k": ']), st.sampled_from(["1", "1e400", "null", ".nan"]))


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(DEEP_YAML_TEXT, st.sampled_from(["epochs: {}\n", "{}\n", "lr: 0.1\nseed: {}\n"]),
       st.sampled_from([TrainConfig, EvolveConfig, SearchConfig]))
def test_deeply_nested_yaml_configs(tmp_path_factory, deep, layout, cls):
    path = tmp_path_factory.mktemp("deep") / "config.yaml"
    path.write_text(layout.format(deep.replace('"k": ', "k: ")))
    _clean(load_config, cls, path)


@settings(max_examples=60, deadline=None)
@given(st.binary(max_size=200))
def test_random_bytes_as_files(tmp_path_factory, data):
    path = tmp_path_factory.mktemp("fuzz") / "file.json"
    path.write_bytes(data)
    _clean(load_arch, path)
    _clean(load_space, path)


NUMBER_WORDS = st.one_of(HUGE_INTEGERS.map(str), st.floats().map(repr),
                        st.sampled_from(["inf", "-inf", "nan", ".inf", ".nan", "1e400", "-1e400", "9" * 400]))


@settings(max_examples=150, deadline=None)
@given(st.sampled_from(["epochs", "batch_size", "lr", "seed", "device", "nope", "budget_madds", "momentum",
                        "candidates_per_layer", "method", "target_madds", "penalty", "train_subset", "cap_slack",
                        "warmup_epochs", "weight_lr", "skip_nonfinite", "penalty_alpha"]),
       st.one_of(st.text(max_size=12), NUMBER_WORDS))
def test_random_overrides_into_every_config(key, value):
    """A config that loads holds only finite floats and int64 integers (what torch and numpy can take)."""
    import dataclasses
    import math

    for cls in (TrainConfig, EvolveConfig, SearchConfig):
        try:
            config = load_config(cls, None, [f"{key}={value}"])
        except AutospaceError:
            continue
        for item in dataclasses.fields(config):
            field_value = getattr(config, item.name)
            if isinstance(field_value, float):
                assert math.isfinite(field_value), (item.name, field_value)
            if isinstance(field_value, int) and not isinstance(field_value, bool):
                assert -2**63 <= field_value < 2**63, (item.name, field_value)


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.binary(min_size=1, max_size=24).filter(lambda name: b"/" not in name and b"\0" not in name
                                                          and name not in (b".", b"..")),
                min_size=1, max_size=3, unique=True))
def test_image_folder_with_file_names_that_are_not_utf8(tmp_path_factory, names):
    """Any bytes a POSIX file name may hold: a data set (cached and read back) or an AutospaceError."""
    import os

    from PIL import Image

    from autospace.data import load_dataset

    root = tmp_path_factory.mktemp("names")
    for split in ("train", "test"):
        for label in ("a", "b"):
            (root / split / label).mkdir(parents=True)
            Image.new("L", (4, 4), 60 if label == "a" else 200).save(root / split / label / "0.png")
    for name in names:
        Image.new("L", (4, 4), 90).save(os.fsencode(root / "train" / "a") + b"/" + name + b".png")
    os.environ["AUTOSPACE_CACHE"] = str(root / ".cache")
    try:
        for _ in range(2):  # decode and cache, then read the cache
            _clean(load_dataset, str(root))
    finally:
        del os.environ["AUTOSPACE_CACHE"]


# ---- data files: random and damaged bytes into every file reader -------------------------------------

def _valid_npz_bytes() -> bytes:
    import io

    import numpy as np
    from PIL import Image

    arrays = {"classes": np.array(["a", "b"])}
    for split in ("train", "test"):
        blobs = []
        for index in range(3):
            buffer = io.BytesIO()
            Image.new("RGB", (8, 8), (80 * index, 20, 40)).save(buffer, format="JPEG")
            blobs.append(np.frombuffer(buffer.getvalue(), np.uint8))
        arrays[f"{split}_jpeg"] = np.concatenate(blobs)
        arrays[f"{split}_offsets"] = np.concatenate([[0], np.cumsum([len(b) for b in blobs])]).astype(np.int64)
        arrays[f"y_{split}"] = np.array([0, 1, 0], np.uint8)
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    return buffer.getvalue()


VALID_NPZ = _valid_npz_bytes()
DAMAGE = st.one_of(
    st.binary(max_size=300).map(lambda data: ("replace", data)),
    st.tuples(st.integers(0, len(VALID_NPZ) - 1), st.integers(0, 255)).map(lambda edit: ("byte", edit)),
    st.integers(0, len(VALID_NPZ)).map(lambda length: ("cut", length)),
)


def _damaged(valid: bytes, damage) -> bytes:
    kind, value = damage
    if kind == "replace":
        return value
    if kind == "cut":
        return valid[:value]
    position, byte = value
    return valid[:position] + bytes([byte]) + valid[position + 1:]


def _read_clean(reader, path):
    """A reader's output becomes a data set (which checks it again) or an AutospaceError, nothing else."""
    from autospace.data.dataset import build_dataset

    try:
        build_dataset("fuzz", reader(path), source=str(path))
    except AutospaceError:
        pass


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(DAMAGE)
def test_damaged_npz_into_the_cifar_reader(tmp_path_factory, damage):
    from autospace.data.cifar import read_cifar_jpeg_npz

    path = tmp_path_factory.mktemp("npz") / "cifar10_jpeg.npz"
    path.write_bytes(_damaged(VALID_NPZ, damage))
    _read_clean(read_cifar_jpeg_npz, path)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from(["train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte",
                        "t10k-labels-idx1-ubyte"]), st.binary(max_size=120), st.booleans())
def test_random_bytes_as_an_idx_file_or_image(tmp_path_factory, name, data, as_image):
    from PIL import Image

    from autospace.data.idx import read_idx_folder
    from autospace.data.imagefolder import read_image_folder

    root = tmp_path_factory.mktemp("files")
    if as_image:  # one image of a small ImageFolder tree replaced by the bytes
        for split in ("train", "test"):
            for label in ("a", "b"):
                (root / split / label).mkdir(parents=True)
                Image.new("L", (4, 4), 60 if label == "a" else 200).save(root / split / label / "0.png")
        (root / "train" / "b" / "0.png").write_bytes(data)
        _read_clean(read_image_folder, root)
        return
    header = {"images": b"\x00\x00\x08\x03" + (2).to_bytes(4, "big") + (3).to_bytes(4, "big") * 2,
              "labels": b"\x00\x00\x08\x01" + (2).to_bytes(4, "big")}
    for stem in ("train-images-idx3-ubyte", "t10k-images-idx3-ubyte"):
        (root / stem).write_bytes(header["images"] + bytes(range(18)))
    for stem in ("train-labels-idx1-ubyte", "t10k-labels-idx1-ubyte"):
        (root / stem).write_bytes(header["labels"] + bytes([0, 1]))
    (root / name).write_bytes(data)
    _read_clean(read_idx_folder, root)
