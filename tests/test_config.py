"""Typed configs: presets, --set overrides, type checks, unknown keys, YAML round-trip."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, Optional, Union

import pytest
import yaml

from autospace.runtime.config import (
    config_differences, config_from_dict, config_keys, config_to_dict, describe_config, load_config, save_config,
)
from autospace.errors import AutospaceError
from autospace.train import TrainConfig


@dataclass(frozen=True)
class InnerConfig:
    steps: int = field(default=3, metadata={"help": "steps"})
    kernels: tuple[int, ...] = field(default=(3, 5), metadata={"help": "kernel sizes"})


@dataclass(frozen=True)
class OuterConfig:
    name: str = field(default="x", metadata={"help": "a name"})
    rate: float = field(default=0.1, metadata={"help": "a rate"})
    flag: bool = field(default=False, metadata={"help": "a flag"})
    limit: Optional[int] = field(default=None, metadata={"help": "a limit"})
    mode: Literal["fast", "slow"] = field(default="fast", metadata={"help": "a mode"})
    switch: Union[Literal["auto"], bool] = field(default="auto", metadata={"help": "auto or a bool"})
    pair: tuple[int, int] = field(default=(1, 2), metadata={"help": "two ints"})
    path: Optional[Path] = field(default=None, metadata={"help": "a path"})
    inner: InnerConfig = field(default_factory=InnerConfig, metadata={"help": "nested"})


def test_overrides_parse_and_coerce():
    config = load_config(OuterConfig, None, [
        "name=007", "rate=5e-4", "flag=true", "limit=12", "mode=slow", "switch=false",
        "pair=[4, 5]", "path=/tmp/x", "inner.steps=9", "inner.kernels=3,5,7",
    ])
    assert config.name == "007"  # a string field keeps the text as written
    assert config.rate == 5e-4 and isinstance(config.rate, float)  # YAML 1.1 reads 5e-4 as a string
    assert config.flag is True and config.limit == 12 and config.mode == "slow" and config.switch is False
    assert config.pair == (4, 5) and config.path == Path("/tmp/x")
    assert config.inner == InnerConfig(steps=9, kernels=(3, 5, 7))
    assert load_config(OuterConfig, None, ["limit=null", "switch=auto", "rate=2"]).rate == 2.0
    assert load_config(OuterConfig, None, ["limit=none"]).limit is None


@pytest.mark.parametrize("item, words", [
    ("rate=fast", ["'rate'", "'fast'", "a number"]),
    ("flag=maybe", ["'flag'", "'maybe'", "true or false"]),
    ("limit=1.5", ["'limit'", "1.5", "an integer or null"]),
    ("mode=medium", ["'mode'", "'medium'", "'fast', 'slow'"]),
    ("pair=[1, 2, 3]", ["'pair'", "a list of 2 values"]),
    ("inner.kernels=[3, x]", ["'inner.kernels'", "a list of an integer"]),
    ("flag=1", ["'flag'", "true or false"]),
])
def test_wrong_type_names_key_value_and_type(item, words):
    with pytest.raises(AutospaceError) as error:
        load_config(OuterConfig, None, [item])
    for word in words:
        assert word in str(error.value)


def test_unknown_key_lists_valid_keys(tmp_path):
    with pytest.raises(AutospaceError) as error:
        load_config(OuterConfig, None, ["speed=3"])
    assert "'speed'" in str(error.value) and "inner.steps" in str(error.value) and "rate" in str(error.value)
    with pytest.raises(AutospaceError, match="unknown config key 'inner.stepz'.*valid keys"):
        load_config(OuterConfig, None, ["inner.stepz=3"])
    preset = tmp_path / "bad.yaml"
    preset.write_text("epochs: 3\nepocs: 4\n")
    with pytest.raises(AutospaceError) as error:
        load_config(TrainConfig, preset)
    assert "'epocs'" in str(error.value) and "batch_size" in str(error.value) and "bad.yaml" in str(error.value)
    with pytest.raises(AutospaceError, match="key=value"):
        load_config(OuterConfig, None, ["rate"])


def test_yaml_preset_then_overrides(tmp_path):
    preset = tmp_path / "run.yaml"
    preset.write_text("rate: 0.5\ninner:\n  steps: 7\nlimit: 3\n")
    config = load_config(OuterConfig, preset, ["limit=4"])
    assert (config.rate, config.inner.steps, config.limit) == (0.5, 7, 4)
    with pytest.raises(AutospaceError, match="unknown config key 'inner.nope'"):
        preset.write_text("inner:\n  nope: 1\n")
        load_config(OuterConfig, preset)


def test_a_section_may_name_its_own_preset(tmp_path):
    (tmp_path / "inner.yaml").write_text("steps: 9\nkernels: [7]\n")
    preset = tmp_path / "run.yaml"
    preset.write_text(f"rate: 0.5\ninner: {tmp_path / 'inner.yaml'}\n")
    config = load_config(OuterConfig, preset, ["inner.steps=4"])
    assert (config.rate, config.inner.steps, config.inner.kernels) == (0.5, 4, (7,))
    (tmp_path / "inner.yaml").write_text("nope: 1\n")
    with pytest.raises(AutospaceError, match=r"inner.yaml: unknown config key 'inner.nope'"):
        load_config(OuterConfig, preset)
    preset.write_text("inner: no-such-preset\n")
    with pytest.raises(AutospaceError, match="neither a YAML file nor a known preset name"):
        load_config(OuterConfig, preset)


def test_cpu_run_preset_uses_the_cpu_stage_presets():
    from autospace.evolve.config import EvolveConfig
    from autospace.pipeline import load_run_config
    from autospace.search.config import SearchConfig

    run = load_run_config("cpu", [])
    assert run.evolve == load_config(EvolveConfig, "cpu")
    assert run.search == load_config(SearchConfig, "cpu")
    assert run.train == load_config(TrainConfig, "cpu")


ISSUE_15_CPU_EVOLVE = dict(  # configs/evolve/cpu.yaml before cost tiers (issue 27): the band recipe
    data="cifar10", preset="cifar-small", budget_madds=10_000_000, train_subset=20000, population_size=10,
    candidates_per_layer=2, epochs=16, batch_size=64, warmup_epochs=4, weight_lr=0.05, fitness_lr=0.02,
    regenerate_every=100, top_k=4, tiers=0, min_windows=0, fitness_average="momentum")


def test_cpu_wide_preset_is_the_issue_15_band_recipe_with_wide_bands_and_the_reference_family():
    import dataclasses

    from autospace.evolve.config import EvolveConfig
    from autospace.pipeline import load_run_config

    cpu, wide = load_run_config("cpu", []), load_run_config("cpu-wide", [])
    assert wide.evolve == load_config(EvolveConfig, "cpu-wide")
    assert wide.evolve == EvolveConfig(**ISSUE_15_CPU_EVOLVE, skipped_share=1.0, export_reference_family=True)
    assert dataclasses.replace(wide, evolve=cpu.evolve) == cpu


def test_cpu_preset_evolves_in_cost_tiers_for_a_budget_range():
    from autospace.evolve.config import EvolveConfig

    cpu = load_config(EvolveConfig, "cpu")
    assert cpu.tiers == 3 and cpu.candidates_per_layer == 3 and cpu.min_windows == 2
    assert (cpu.budget_madds, cpu.budget_madds_max) == (10_000_000, 20_000_000)


def test_round_trip_through_yaml(tmp_path):
    config = load_config(OuterConfig, None, ["rate=1e-3", "limit=5", "switch=true", "path=a/b", "inner.kernels=[7]"])
    save_config(tmp_path / "config.yaml", config)
    assert load_config(OuterConfig, tmp_path / "config.yaml") == config
    assert yaml.safe_load((tmp_path / "config.yaml").read_text())["inner"]["kernels"] == [7]
    train_config = load_config(TrainConfig, "quick", ["weight_decay=4e-5", "channels_last=false"])
    save_config(tmp_path / "train.yaml", train_config)
    assert load_config(TrainConfig, tmp_path / "train.yaml") == train_config
    assert config_from_dict(TrainConfig, config_to_dict(train_config)) == train_config
    assert config_differences(train_config, TrainConfig()).keys() >= {"epochs", "weight_decay"}


def test_presets_are_train_configs():
    for name in ("quick", "cifar10", "full"):
        config = load_config(TrainConfig, name)
        assert isinstance(config, TrainConfig)
    assert load_config(TrainConfig, "full").epochs >= 100
    with pytest.raises(AutospaceError, match="available presets: .*quick"):
        load_config(TrainConfig, "nonexistent")


def test_help_for_every_key_and_value_checks():
    lines = describe_config(TrainConfig)
    assert len(lines) == len(config_keys(TrainConfig))
    assert all(line.split(": ", 1)[1].strip() for line in lines)
    with pytest.raises(AutospaceError, match="epochs"):
        load_config(TrainConfig, None, ["epochs=0"])
    with pytest.raises(AutospaceError, match="warmup_epochs"):
        load_config(TrainConfig, None, ["epochs=2", "warmup_epochs=3"])
