"""Parsing text a user hands us (JSON files, YAML configs, `--set` values) into plain values.

Every failure becomes an `AutospaceError` of one line: the JSON and YAML
parsers recurse, so a file nested 100,000 deep would otherwise end in a
RecursionError, and PyYAML's own messages span several lines. Values nested
deeper than `MAX_NESTING` are refused too: no autospace file comes near it, and
the loaders that walk the value recurse as well. YAML anchors and aliases (`&a`, `*a`)
are refused: nine levels of them ("billion laughs", 450 bytes) expand to 9**9 nodes.
Files are read through `read_text_file`, which refuses anything over `MAX_FILE_BYTES`
before parsing (`/dev/zero` as an arch.json would read until memory runs out).
"""

from __future__ import annotations

import functools
import json
import re
from typing import Any

from autospace.errors import AutospaceError

# The deepest a file we read may nest lists and mappings. An arch.json nests about 8 deep.
MAX_NESTING = 64

# The largest JSON/YAML file we read: an imagenet space.json or a latency table is under 2 MiB.
MAX_FILE_BYTES = 64 * 2**20


def read_text_file(path, what: str, limit: int = MAX_FILE_BYTES) -> str:
    """The UTF-8 text of the file at `path` (`what` it should be names it in errors): a missing,
    unreadable, non-UTF-8 or larger-than-`limit` file is one AutospaceError, and at most `limit`
    bytes are ever read (a device such as /dev/zero has no size to check beforehand)."""
    from pathlib import Path

    path = Path(path)
    try:
        with open(path, "rb") as file:
            data = file.read(limit + 1)
    except FileNotFoundError:
        raise AutospaceError(f"{what} {path} does not exist") from None
    except IsADirectoryError:
        raise AutospaceError(f"{what} {path} is a folder; give a file") from None
    except OSError as error:
        raise AutospaceError(f"cannot read {what} {path}: {error.strerror or error}") from None
    if len(data) > limit:
        raise AutospaceError(f"{what} {path} is larger than {limit // 2**20} MiB; autospace files are far "
                             f"smaller: give the right file")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as error:
        raise AutospaceError(f"cannot read {what} {path}: it is not UTF-8 text ({error.reason} at byte "
                             f"{error.start})") from None


def nesting_depth(value: Any) -> int:
    """How deep lists/tuples and mappings nest in `value` (a scalar is 0); iterative, so any depth is safe."""
    deepest, pending = 0, [(value, 0)]
    while pending:
        item, depth = pending.pop()
        if isinstance(item, dict):
            children = list(item.values())
        elif isinstance(item, (list, tuple)):
            children = list(item)
        else:
            deepest = max(deepest, depth)
            continue
        deepest = max(deepest, depth + 1)
        pending.extend((child, depth + 1) for child in children)
    return deepest


def require_shallow(value: Any, source: str) -> Any:
    depth = nesting_depth(value)
    if depth > MAX_NESTING:
        raise AutospaceError(f"{source} nests lists or mappings {depth} deep; at most {MAX_NESTING} levels are "
                             f"accepted (autospace files nest fewer than 10)")
    return value


def parse_json(text: str, source: str) -> Any:
    """The value of JSON `text`; `source` names where it came from (a file) in the error."""
    try:
        value = json.loads(text)
    except json.JSONDecodeError as error:
        raise AutospaceError(f"{source} is not valid JSON ({error})") from None
    except RecursionError:
        raise AutospaceError(f"{source} nests lists or objects too deep to read; at most {MAX_NESTING} levels "
                             f"are accepted (autospace files nest fewer than 10)") from None
    return require_shallow(value, source)


def yaml_problem(error: Exception) -> str:
    """A PyYAML error on one line: what is wrong and where (line, column)."""
    import yaml

    if isinstance(error, yaml.MarkedYAMLError):
        mark = error.problem_mark or error.context_mark
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        what = error.problem or error.context or type(error).__name__
        return f"{what}{where}"
    return " ".join(str(error).split()) or type(error).__name__


@functools.lru_cache(maxsize=1)
def _loader_without_aliases():
    """PyYAML's safe loader, refusing aliases (`*name`): autospace configs never need them, and nested
    aliases expand exponentially in everything that walks the value."""
    import yaml

    class NoAliasSafeLoader(yaml.SafeLoader):
        def compose_node(self, parent, index):
            if self.check_event(yaml.AliasEvent):
                event = self.peek_event()
                raise yaml.composer.ComposerError(None, None, "found an alias (*name); anchors and aliases are "
                                                  "not accepted", event.start_mark)
            return super().compose_node(parent, index)

    return NoAliasSafeLoader


def load_yaml_text(text: str) -> Any:
    """`yaml.load` with the safe loader that refuses aliases; raises yaml.YAMLError or RecursionError."""
    import yaml

    return yaml.load(text, Loader=_loader_without_aliases())


def parse_yaml(text: str, source: str) -> Any:
    """The value of YAML `text` (safe tags only, no aliases); every failure is one line naming `source`."""
    import yaml

    try:
        value = load_yaml_text(text)
    except yaml.YAMLError as error:
        raise AutospaceError(f"{source} is not valid YAML ({yaml_problem(error)}); write plain `key: value` "
                             f"lines (spaces, not tabs; no !! tags, no &anchors or *aliases)") from None
    except RecursionError:
        raise AutospaceError(f"{source} nests lists or mappings too deep to read; at most {MAX_NESTING} levels "
                             f"are accepted") from None
    return require_shallow(value, source)


# Numbers as users type them: ASCII digits only. Python's int() and float() also take Arabic-Indic
# and fullwidth digits ("١٢" is 12), which no one means on a command line.
_ASCII_INTEGER = re.compile(r"[+-]?[0-9]+(_[0-9]+)*")
_ASCII_NUMBER = re.compile(r"[+-]?(([0-9]+(_[0-9]+)*)?\.?[0-9]*([eE][+-]?[0-9]+)?|inf|infinity|nan)", re.IGNORECASE)


def is_ascii_number(text: str) -> bool:
    """Whether `text` (stripped) is written in ASCII digits, signs, a dot and an exponent only."""
    text = text.strip()
    return bool(text) and text.isascii() and bool(_ASCII_NUMBER.fullmatch(text))


def ascii_int(text: str) -> int:
    """argparse type: an integer written in ASCII digits (ranges are the setting's own check)."""
    import argparse

    stripped = text.strip()
    if not stripped.isascii() or not _ASCII_INTEGER.fullmatch(stripped):
        raise argparse.ArgumentTypeError(f"invalid integer value: {text!r} (write ASCII digits, e.g. 20)")
    return int(stripped)


def ascii_float(text: str) -> float:
    """argparse type: a number written in ASCII digits (finiteness and ranges are the setting's own check)."""
    import argparse

    if not is_ascii_number(text):
        raise argparse.ArgumentTypeError(f"invalid number: {text!r} (write ASCII digits, e.g. 12.5)")
    return float(text)
