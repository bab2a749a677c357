"""Which space a search runs in: the built-in manual space, the open space, or a space.json."""

from __future__ import annotations

import sys
from dataclasses import replace
from pathlib import Path

from autospace.arch.codec import load_space
from autospace.arch.presets import preset_skeleton
from autospace.arch.space import SearchSpace, manual_space
from autospace.errors import AutospaceError

BUILT_IN_SPACES = ("manual", "open")
UNION_PREFIX = "union:"  # union:PATH = the space.json at PATH with the manual space's blocks added to every layer


def space_file(name: str) -> str:
    """The space.json path a space name reads (`union:PATH` reads PATH)."""
    return name[len(UNION_PREFIX):] if name.startswith(UNION_PREFIX) else name


def resolve_space(name: str, preset: str, num_classes: int, in_channels: int, resolution: int) -> SearchSpace | str:
    """`manual` -> the ProxylessNAS space on the preset; `open` -> the string "open" (handled by
    spos); `union:PATH` -> the space.json at PATH with every manual block added to every layer (issue 28:
    if the union loses to the manual space, the search fails, not the space); anything else is read as a
    space.json and checked against the data set."""
    skeleton = preset_skeleton(preset, num_classes=num_classes, in_channels=in_channels, resolution=resolution)
    if name.startswith(UNION_PREFIX):
        learned = resolve_space(space_file(name), preset, num_classes, in_channels, resolution)
        manual = manual_space(learned.skeleton, with_zero=False)
        layers = tuple(layer + tuple(c for c in extra if all(c.block != mine.block for mine in layer))
                       for layer, extra in zip(learned.layers, manual.layers))
        return replace(learned, layers=layers, name=f"union of {learned.name} and manual")
    if name == "manual":
        return manual_space(skeleton, with_zero=False)  # the search adds zero where a residual exists
    if name == "open":
        return "open"
    path = Path(name)
    if not path.exists():
        raise AutospaceError(
            f"search space {name!r} is neither a built-in space ({', '.join(BUILT_IN_SPACES)}) nor an existing "
            f"space.json file")
    if path.is_dir() and (path / "space.json").exists():
        path = path / "space.json"
    space = load_space(path)
    data = {"num_classes": num_classes, "in_channels": in_channels, "resolution": resolution}
    found = {key: getattr(space.skeleton, key) for key in data}
    if found["in_channels"] != in_channels:
        raise AutospaceError(
            f"{path}: the space's skeleton takes {found['in_channels']}-channel images but the data set has "
            f"{in_channels}; evolve a space on this data set")
    if found != data:
        # The stated rule: a space learned at one resolution or class count keeps its blocks; the skeleton
        # adapts to the data searched on. Said on stderr, so the change is never silent.
        print(f"autospace: note: {path} was learned for {found['num_classes']} classes at {found['resolution']}px; "
              f"searching it for the data's {num_classes} classes at {resolution}px (same blocks, adapted "
              f"skeleton)", file=sys.stderr)
        space = replace(space, skeleton=replace(space.skeleton, num_classes=num_classes, resolution=resolution))
    return space
