"""Parsing text a user hands us (JSON files, YAML configs, `--set` values) into plain values.

Every failure becomes an `AutospaceError` of one line: the JSON and YAML
parsers recurse, so a file nested 100,000 deep would otherwise end in a
RecursionError, and PyYAML's own messages span several lines. Values nested
deeper than `MAX_NESTING` are refused too: no autospace file comes near it, and
the loaders that walk the value recurse as well.
"""

from __future__ import annotations

import json
from typing import Any

from autospace.errors import AutospaceError

# The deepest a file we read may nest lists and mappings. An arch.json nests about 8 deep.
MAX_NESTING = 64


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


def parse_yaml(text: str, source: str) -> Any:
    """The value of YAML `text` (safe tags only); every failure is one line naming `source`."""
    import yaml

    try:
        value = yaml.safe_load(text)
    except yaml.YAMLError as error:
        raise AutospaceError(f"{source} is not valid YAML ({yaml_problem(error)}); write plain `key: value` "
                             f"lines (spaces, not tabs; no !! tags)") from None
    except RecursionError:
        raise AutospaceError(f"{source} nests lists or mappings too deep to read; at most {MAX_NESTING} levels "
                             f"are accepted") from None
    return require_shallow(value, source)
