"""Property tests: random and mutated JSON thrown at every loader gives a valid object or an
AutospaceError, never another exception."""

import json

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from autospace.arch import (
    arch_from_dict, arch_to_dict, block_from_dict, load_arch, load_space, manual_space, mobilenetv2,
    preset_skeleton, space_from_dict, space_to_dict,
)
from autospace.config import load_config
from autospace.errors import AutospaceError
from autospace.evolve import EvolveConfig
from autospace.search import SearchConfig
from autospace.train import TrainConfig

SCALARS = st.one_of(st.none(), st.booleans(), st.integers(-10, 10**6), st.floats(allow_nan=True),
                    st.text(max_size=12))
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


@settings(max_examples=60, deadline=None)
@given(st.binary(max_size=200))
def test_random_bytes_as_files(tmp_path_factory, data):
    path = tmp_path_factory.mktemp("fuzz") / "file.json"
    path.write_bytes(data)
    _clean(load_arch, path)
    _clean(load_space, path)


@settings(max_examples=100, deadline=None)
@given(st.sampled_from(["epochs", "batch_size", "lr", "seed", "device", "nope", "budget_madds", "momentum",
                        "candidates_per_layer", "method", "target_madds", "penalty", "train_subset"]),
       st.text(max_size=12))
def test_random_overrides_into_every_config(key, value):
    for cls in (TrainConfig, EvolveConfig, SearchConfig):
        _clean(load_config, cls, None, [f"{key}={value}"])
