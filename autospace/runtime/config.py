"""Typed configuration: dataclasses, YAML presets and `--set key=value` overrides.

A config is a (frozen) dataclass whose fields carry a type annotation, a
default and a one-line help text (`field(metadata={"help": ...})`). Values
come, in order of precedence, from `--set` overrides, then a YAML preset, then
the field defaults. Every value is checked against its field's annotation where
it enters, and an unknown key is an error that lists the valid keys.

Supported annotations: int, float, bool, str, Path, `X | None` / Optional[X],
Literal[...] choices, unions such as `bool | Literal["auto"]`, tuple[X, ...],
tuple[X, Y], list[X], and nested config dataclasses (keys joined with dots:
`--set search.epochs=5`).

A preset is a YAML path, or a name looked up as `configs/SECTION/NAME.yaml`
(SECTION is the class's `config_section`, e.g. "train") in the repository's
`configs/` folder, then in `./configs`. Inside a preset, a nested section may name
its own section's preset instead of listing keys (`evolve: cpu` reads
`configs/evolve/cpu.yaml`).
"""

from __future__ import annotations

import dataclasses
import math
import re
import types
import typing
from pathlib import Path
from typing import Any, Iterable, Literal, TypeVar, Union

import yaml

from autospace.runtime.atomic import atomic_write_text
from autospace.errors import AutospaceError
from autospace.runtime.parsing import (
    MAX_NESTING, is_ascii_number, load_yaml_text, nesting_depth, parse_yaml, read_text_file,
)

ConfigType = TypeVar("ConfigType")

_NONE_WORDS = ("none", "null", "~")


# ---- where presets live -------------------------------------------------------

def config_directories() -> list[Path]:
    """The folders searched for preset names: the repository's `configs/`, then `./configs`."""
    import autospace

    found = []
    for folder in (Path(autospace.__file__).resolve().parents[1] / "configs", Path.cwd() / "configs"):
        if folder.is_dir() and folder.resolve() not in [f.resolve() for f in found]:
            found.append(folder)
    return found


def available_presets(section: str | None) -> list[str]:
    names = set()
    for folder in config_directories():
        target = folder / section if section else folder
        if target.is_dir():
            names.update(path.stem for path in target.glob("*.yaml"))
    return sorted(names)


def resolve_preset(preset: str | Path, section: str | None = None) -> Path:
    """A preset path as given, or the file a preset name refers to."""
    path = Path(preset)
    if path.is_file():
        return path
    if path.suffix not in (".yaml", ".yml"):
        # A name such as "quick" (or "train/quick"): look in the preset folders.
        for folder in config_directories():
            candidates = [folder / section / f"{preset}.yaml"] if section else []
            candidates.append(folder / f"{preset}.yaml")
            for candidate in candidates:
                if candidate.is_file():
                    return candidate
    names = available_presets(section)
    listing = f"available presets: {', '.join(names)}" if names else "no preset folder was found"
    raise AutospaceError(f"config preset {str(preset)!r} is neither a YAML file nor a known preset name; "
                         f"{listing} (or give a path to a .yaml file)")


# ---- type checking ----------------------------------------------------------------

def _type_name(annotation: Any) -> str:
    origin = typing.get_origin(annotation)
    if annotation is type(None):
        return "null"
    if origin is Literal:
        return "one of " + ", ".join(repr(choice) for choice in typing.get_args(annotation))
    if origin in (Union, types.UnionType):
        return " or ".join(_type_name(member) for member in typing.get_args(annotation))
    if origin in (tuple, list):
        arguments = typing.get_args(annotation)
        if origin is tuple and len(arguments) == 2 and arguments[1] is Ellipsis:
            return f"a list of {_type_name(arguments[0])}"
        if origin is tuple and arguments:
            return f"a list of {len(arguments)} values ({', '.join(_type_name(a) for a in arguments)})"
        return f"a list of {_type_name(arguments[0])}" if arguments else "a list"
    return {int: "an integer", float: "a number", bool: "true or false", str: "a string",
            Path: "a path"}.get(annotation, getattr(annotation, "__name__", str(annotation)))


def _yaml_word(text: str) -> Any:
    """One command-line value as YAML reads it; text YAML cannot read (or nested too deep) stays a string,
    which the field's type check then refuses or keeps."""
    try:
        value = load_yaml_text(text)
    except (yaml.YAMLError, RecursionError):
        return text
    return value if nesting_depth(value) <= MAX_NESTING else text


class _Mismatch(Exception):
    """A value does not fit an annotation (turned into an AutospaceError by the caller)."""


def coerce_value(value: Any, annotation: Any) -> Any:
    """`value` (as parsed by YAML) converted to `annotation`, or `_Mismatch`."""
    origin = typing.get_origin(annotation)
    if annotation is Any:
        return value
    if annotation is type(None):
        if value is None or (isinstance(value, str) and value.strip().lower() in _NONE_WORDS):
            return None
        raise _Mismatch
    if origin is Literal:
        for choice in typing.get_args(annotation):
            if value == choice and type(value) is type(choice):
                return choice
            if isinstance(value, str) and not isinstance(choice, str) and value == str(choice):
                return choice  # e.g. Literal[1, 2] given "1" on the command line
        raise _Mismatch
    if origin in (Union, types.UnionType):
        members = typing.get_args(annotation)
        # None first, so "null" is not read as the string "null" by a str member.
        out_of_range = None
        for member in sorted(members, key=lambda m: m is not type(None)):
            try:
                return coerce_value(value, member)
            except _OutOfRange as error:
                out_of_range = error
            except _Mismatch:
                continue
        raise out_of_range or _Mismatch()
    if origin in (tuple, list):
        if isinstance(value, str):
            text = value.strip().strip("[]()")
            value = [_yaml_word(part) for part in text.split(",")] if text.strip() else []
        if not isinstance(value, (list, tuple)):
            raise _Mismatch
        arguments = typing.get_args(annotation)
        if origin is tuple and arguments and arguments[-1] is not Ellipsis:
            if len(value) != len(arguments):
                raise _Mismatch
            items = [coerce_value(item, kind) for item, kind in zip(value, arguments)]
        else:
            kind = arguments[0] if arguments else Any
            items = [coerce_value(item, kind) for item in value]
        return tuple(items) if origin is tuple else items
    if annotation is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.strip().lower() in ("true", "false"):
            return value.strip().lower() == "true"
        raise _Mismatch
    if annotation is int:
        return _within_int64(_plain_int(value))
    if annotation is float:
        return _finite(_plain_float(value))
    if annotation is str:
        if isinstance(value, str):
            return _not_too_long(value)
        raise _Mismatch
    if annotation is Path:
        if isinstance(value, (str, Path)):
            return Path(_not_too_long(str(value)))
        raise _Mismatch
    if dataclasses.is_dataclass(annotation):
        raise _Mismatch  # nested configs are mappings; handled by the caller
    raise TypeError(f"config annotation {annotation!r} is not supported")


def _plain_int(value: Any) -> int:
    if isinstance(value, bool):
        raise _Mismatch
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str):
        if not is_ascii_number(value):  # float() takes Arabic-Indic and fullwidth digits too
            raise _Mismatch
        try:
            number = float(value)  # "1e3" stays a string in YAML 1.1
        except ValueError:
            raise _Mismatch from None
        if not math.isfinite(number):
            raise _OutOfRange("finite (not inf or nan)")
        if number.is_integer():
            return int(number)
    raise _Mismatch


def _plain_float(value: Any) -> float:
    if isinstance(value, bool):
        raise _Mismatch
    if isinstance(value, (int, float)):
        try:
            return float(value)
        except OverflowError:  # an integer beyond the float range
            raise _OutOfRange("finite (not inf or nan)") from None
    if isinstance(value, str):
        if not is_ascii_number(value):  # float() takes Arabic-Indic and fullwidth digits too
            raise _Mismatch
        try:
            return float(value)  # YAML 1.1 reads "5e-4" (no dot) as a string
        except ValueError:
            raise _Mismatch from None
    raise _Mismatch


# The longest text a setting may hold: a path longer than PATH_MAX (4096) cannot be opened, and the OS
# error it gives deep in a loader ("File name too long") would be a traceback.
MAX_TEXT_LENGTH = 4096


def _not_too_long(text: str) -> str:
    if len(text) > MAX_TEXT_LENGTH:
        raise _OutOfRange(f"at most {MAX_TEXT_LENGTH} characters (this one has {len(text):,})")
    return text


# Every integer setting ends in a torch or numpy int64 (seeds, counts, MAdds); every float setting
# is a finite quantity: an infinite or NaN one passes `x >= 0` style range checks and breaks later.
INT64_RANGE = (-2**63, 2**63 - 1)


class _OutOfRange(_Mismatch):
    """The value has the right type but no setting can hold it; `reason` says why."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


def _within_int64(value: int) -> int:
    if not INT64_RANGE[0] <= value <= INT64_RANGE[1]:
        raise _OutOfRange("between -2**63 and 2**63 - 1 (a signed 64-bit integer)")
    return value


def _finite(value: float) -> float:
    if not math.isfinite(value):
        raise _OutOfRange("finite (not inf or nan)")
    return value


def _accepts_plain_string(annotation: Any) -> bool:
    if annotation is str:
        return True
    if typing.get_origin(annotation) in (Union, types.UnionType):
        return str in typing.get_args(annotation)
    return False


def _field_types(cls) -> dict[str, Any]:
    hints = typing.get_type_hints(cls)
    return {f.name: hints[f.name] for f in dataclasses.fields(cls) if f.init}


def _nested_class(annotation: Any):
    return annotation if isinstance(annotation, type) and dataclasses.is_dataclass(annotation) else None


def _unknown_key(cls, key: str, prefix: str, source: str) -> AutospaceError:
    valid = ", ".join(config_keys(cls))
    return AutospaceError(f"{source}: unknown config key {prefix + key!r} for {cls.__name__}; valid keys: {valid}")


def _coerce_field(cls, key: str, value: Any, prefix: str, source: str, raw: str | None = None) -> Any:
    annotation = _field_types(cls)[key]
    try:
        # A raw command-line word for a plain string field is taken as written ("007" stays "007").
        if raw is not None and _accepts_plain_string(annotation):
            optional = type(None) in typing.get_args(annotation)
            if optional and (value is None or raw.lower() in _NONE_WORDS):
                return None
            return _not_too_long(raw)
        return coerce_value(value, annotation)
    except _Mismatch as error:
        shown = raw if raw is not None else value
        reason = f", {error.reason}" if isinstance(error, _OutOfRange) else ""
        shown = repr(shown) if len(repr(shown)) <= 120 else repr(shown)[:100] + f"... ({len(repr(shown)):,} characters)"
        raise AutospaceError(f"{source}: config key {prefix + key!r} = {shown} is invalid; "
                             f"expected {_type_name(annotation)}{reason}") from None


def _read_preset(preset: str | Path, section: str | None) -> tuple[Path, Any]:
    path = resolve_preset(preset, section)
    data = parse_yaml(read_text_file(path, "config"), f"config {path}")
    if data is None:  # an empty file, or only `~` / `null`: not "no settings" (a typo'd file would run defaults)
        raise AutospaceError(f"config {path} holds no settings (it is empty or null); write `key: value` lines, "
                             f"or leave out --config to use the defaults")
    return path, data


def _merge_mapping(cls, values: dict, data: Any, prefix: str, source: str) -> None:
    if not isinstance(data, dict):
        raise AutospaceError(f"{source}: {prefix.rstrip('.') or 'the file'} must be a mapping of key: value, "
                             f"got {type(data).__name__}")
    types_by_name = _field_types(cls)
    for key, value in data.items():
        key = str(key)
        if key not in types_by_name:
            raise _unknown_key(cls, key, prefix, source)
        nested = _nested_class(types_by_name[key])
        if nested is not None and isinstance(value, str):  # `evolve: cpu`: that section's preset file
            path, value = _read_preset(value, getattr(nested, "config_section", None))
            _merge_mapping(nested, values.setdefault(key, {}), value, f"{prefix}{key}.", str(path))
        elif nested is not None:
            _merge_mapping(nested, values.setdefault(key, {}), value, f"{prefix}{key}.", source)
        else:
            values[key] = _coerce_field(cls, key, value, prefix, source)


def _apply_override(cls, values: dict, item: str) -> None:
    key, separator, text = item.partition("=")
    key = key.strip()
    if not separator or not key:
        raise AutospaceError(f"override {item!r} is malformed; write key=value, e.g. epochs=5")
    parts = key.split(".")
    owner, target = cls, values
    for depth, part in enumerate(parts):
        types_by_name = _field_types(owner)
        prefix = "".join(p + "." for p in parts[:depth])
        if part not in types_by_name:
            raise _unknown_key(owner, part, prefix, "--set")
        nested = _nested_class(types_by_name[part])
        if depth < len(parts) - 1:
            if nested is None:
                raise AutospaceError(f"--set: config key {prefix + part!r} has no sub-keys; "
                                     f"write {prefix + part}=VALUE")
            owner, target = nested, target.setdefault(part, {})
            continue
        if nested is not None:
            raise AutospaceError(f"--set: config key {key!r} is a section; set one of its keys, "
                                 f"e.g. {key}.{config_keys(nested)[0]}=VALUE")
        parsed = _yaml_word(text) if text.strip() else ""
        target[part] = _coerce_field(owner, part, parsed, prefix, "--set", raw=text.strip())


# Sane ranges of the settings every loop hands to torch, for any config class with a field of that name
# (checked where a config is loaded, before anything runs). The optimisers convert them to float32:
# lr=1e300 is a RuntimeError inside SGD, weight_decay=9e18 a non-finite loss a few steps in, and a
# latency target of 1e40 ms a non-finite squared term.
LEARNING_RATE_KEYS = ("lr", "weight_lr", "arch_lr", "fitness_lr")
SETTING_RANGES = {
    **{key: (0.0, 10.0, "(0, 10]: learning rates in use are 1e-4 to 1") for key in LEARNING_RATE_KEYS},
    "weight_decay": (0.0, 1.0, "[0, 1]: weight decays in use are 0 to 0.1"),
    "target_latency_ms": (0.0, 1e6, "(0, 1e6]: a latency target in milliseconds, under 1,000 seconds"),
}


def require_sane_settings(config: Any) -> None:
    """Refuse a learning rate, weight decay or latency target outside `SETTING_RANGES` in one line."""
    names = {item.name for item in dataclasses.fields(config)}
    for name, (low, high, wording) in SETTING_RANGES.items():
        value = getattr(config, name, None) if name in names else None
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            open_low = name != "weight_decay"
            if not ((low < value if open_low else low <= value) and value <= high):
                raise AutospaceError(f"{name} is {value!r}; it must be in {wording}")


def _build(cls, values: dict):
    arguments = {}
    types_by_name = _field_types(cls)
    for key, value in values.items():
        nested = _nested_class(types_by_name[key])
        arguments[key] = _build(nested, value) if nested is not None else value
    try:
        config = cls(**arguments)
    except (TypeError, ValueError) as error:
        if isinstance(error, AutospaceError):
            raise
        raise AutospaceError(f"{cls.__name__}: {error}") from None
    require_sane_settings(config)
    return config


# ---- public API -----------------------------------------------------------------

def config_keys(cls) -> list[str]:
    """Every settable key of a config class, nested keys joined with dots."""
    keys = []
    for name, annotation in _field_types(cls).items():
        nested = _nested_class(annotation)
        keys.extend(f"{name}.{sub}" for sub in config_keys(nested)) if nested else keys.append(name)
    return keys


def load_config(cls: type[ConfigType], preset: str | Path | None = None, overrides: Iterable[str] = (),
                section: str | None = None) -> ConfigType:
    """Defaults, then the YAML `preset` (a path or a name), then `overrides` ("key=value")."""
    if isinstance(overrides, str):
        overrides = [overrides]
    values: dict = {}
    if preset is not None:
        path, data = _read_preset(preset, section if section is not None else getattr(cls, "config_section", None))
        _merge_mapping(cls, values, data, "", str(path))
    for item in overrides:
        _apply_override(cls, values, item)
    return _build(cls, values)


def config_from_dict(cls: type[ConfigType], data: dict, source: str = "config") -> ConfigType:
    """A config from plain values (as `config_to_dict` gives them), checked like a YAML preset."""
    values: dict = {}
    _merge_mapping(cls, values, data, "", source)
    return _build(cls, values)


def config_to_dict(config: Any) -> dict:
    """Plain YAML/JSON-ready values: tuples become lists, paths strings, nested configs dicts."""
    result = {}
    for item in dataclasses.fields(config):
        result[item.name] = _plain(getattr(config, item.name))
    return result


def _plain(value: Any) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return config_to_dict(value)
    if isinstance(value, (tuple, list)):
        return [_plain(item) for item in value]
    if isinstance(value, Path):
        return str(value)
    return value


# The layout of a run folder's config.yaml; a change that an older autospace cannot read raises it.
CONFIG_FORMAT = "autospace.config/1"
_HEADER_ORIGIN = re.compile(r"\(autospace (?P<version>[^\s,)]+), config format (?P<format>[^\s)]+)\)")


def save_config(path: str | Path, config: Any, notes: Iterable[str] = ()) -> None:
    """Write the resolved config as YAML (atomically); `load_config(type(config), path)` reads it back equal.

    The header line names the autospace version and CONFIG_FORMAT (read back by `load_saved_config`);
    the change notes of the file it replaces (`autospace.runtime.resume`), then `notes`, follow as comment lines."""
    from autospace import __version__

    notes = recorded_change_notes(path) + [note for note in notes if note not in recorded_change_notes(path)]

    header = (f"# {type(config).__name__}, resolved: every key, as the run used it "
              f"(autospace {__version__}, config format {CONFIG_FORMAT})\n")
    comments = "".join(f"# {note}\n" for note in notes)
    text = yaml.safe_dump(config_to_dict(config), sort_keys=False, default_flow_style=False)
    atomic_write_text(path, header + comments + text)


# The comment lines of config.yaml that record a change made on --resume (written by autospace.runtime.resume).
CHANGE_NOTE_PREFIX = "changed on --resume"


def recorded_change_notes(path: str | Path) -> list[str]:
    """The change notes of a config.yaml, oldest first; none when it is absent or unreadable."""
    try:
        lines = Path(path).read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError):
        return []
    return [line[2:] for line in lines if line.startswith(f"# {CHANGE_NOTE_PREFIX}")]


def load_saved_config(cls: type[ConfigType], run_dir: str | Path, overrides: Iterable[str] = ()) -> ConfigType:
    """The config.yaml of a run folder to resume, with `overrides`; a clear error when the folder
    holds no run, or one written by a version of autospace whose config this version cannot read."""
    from autospace import __version__

    path = Path(run_dir) / "config.yaml"
    if not path.is_file():
        raise AutospaceError(f"cannot resume: {run_dir} holds no run (no config.yaml); start one with --out")
    try:
        first_line = path.read_text(encoding="utf-8").split("\n", 1)[0]
    except (OSError, UnicodeDecodeError) as error:
        raise AutospaceError(f"cannot read config {path}: {error}") from None
    origin = _HEADER_ORIGIN.search(first_line) if first_line.startswith("#") else None
    written = (f"autospace {origin['version']} (config format {origin['format']})" if origin
               else "an unknown version (no format line)")
    this = f"autospace {__version__} (config format {CONFIG_FORMAT})"
    if origin and origin["format"] != CONFIG_FORMAT:
        raise AutospaceError(f"cannot resume {run_dir}: its config.yaml was written by {written}; this is {this}. "
                             f"Resume it with the version that wrote it, or start a new run in another folder")
    kind = first_line[1:].split(",", 1)[0].strip() if origin else None
    if kind and kind != cls.__name__:
        raise AutospaceError(f"cannot resume {run_dir} as a {cls.__name__} run: its config.yaml holds a {kind}; "
                             f"resume it with the command that started it")
    try:
        load_config(cls, path)
    except AutospaceError as error:
        if origin and origin["version"] == __version__:
            raise AutospaceError(f"cannot resume {run_dir}: its config.yaml was changed after this version wrote it "
                                 f"({error}); restore it, or start a new run in another folder") from None
        raise AutospaceError(f"cannot resume {run_dir}: its config.yaml does not fit this version ({error}); it "
                             f"was written by {written}, this is {this}. Resume it with the version that wrote "
                             f"it, or start a new run in another folder") from None
    return load_config(cls, path, overrides)


def config_differences(first: Any, second: Any) -> dict[str, tuple[Any, Any]]:
    """`{key: (first value, second value)}` for every (dotted) key whose values differ."""
    flat_first, flat_second = _flatten(config_to_dict(first)), _flatten(config_to_dict(second))
    return {key: (flat_first.get(key), flat_second.get(key))
            for key in flat_first if flat_first.get(key) != flat_second.get(key)}


def _flatten(data: dict, prefix: str = "") -> dict:
    flat = {}
    for key, value in data.items():
        if isinstance(value, dict):
            flat.update(_flatten(value, f"{prefix}{key}."))
        else:
            flat[prefix + key] = value
    return flat


def describe_config(cls) -> list[str]:
    """One line per key: name, type, default and help text (for `--help` listings)."""
    lines = []
    defaults = cls()
    for item in dataclasses.fields(cls):
        annotation = _field_types(cls)[item.name]
        nested = _nested_class(annotation)
        if nested is not None:
            lines.extend(f"{item.name}.{line}" for line in describe_config(nested))
            continue
        default = _plain(getattr(defaults, item.name))
        help_text = item.metadata.get("help", "")
        lines.append(f"{item.name} ({_type_name(annotation)}, default {default!r}): {help_text}")
    return lines


# ---- range checks shared by the config classes ---------------------------------------

def require_at_least(config: Any, minimum: float, *names: str) -> None:
    """Each named field (None allowed) must be >= minimum."""
    for name in names:
        value = getattr(config, name)
        if value is not None and value < minimum:
            raise AutospaceError(f"{name} is {value!r}; it must be >= {minimum}")


def require_between(config: Any, low: float, high: float, *names: str) -> None:
    """Each named field must lie in the closed interval [low, high]."""
    for name in names:
        value = getattr(config, name)
        if not low <= value <= high:
            raise AutospaceError(f"{name} is {value!r}; it must be in [{low}, {high}]")
