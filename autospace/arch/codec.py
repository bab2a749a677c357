"""JSON codecs for architectures (`arch.json`) and search spaces (`space.json`).

Every file carries a `format` version. Loading checks every field and raises
`AutospaceError` naming the field path, the value found and what is allowed;
no other exception escapes a loader.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from autospace.arch.blocks import MAX_BRANCHES, Block, CellBlock, InvertedResidual, MultiBranch, ZeroBlock
from autospace.arch.cell import Cell
from autospace.arch.network import Layer, Network, Skeleton, Stage
from autospace.arch.ops import EDGES
from autospace.arch.space import Candidate, SearchSpace
from autospace.errors import AutospaceError

ARCH_FORMAT = "autospace.arch/1"
SPACE_FORMAT = "autospace.space/1"
EDGE_KEYS = tuple(f"{source}->{target}" for source, target in EDGES)


def _expect(value: Any, kind, path: str, what: str):
    if kind is int and (isinstance(value, bool) or not isinstance(value, int)):
        raise AutospaceError(f"{path} is {value!r}; expected {what}")
    if kind is float and (isinstance(value, bool) or not isinstance(value, (int, float))):
        raise AutospaceError(f"{path} is {value!r}; expected {what}")
    if kind not in (int, float) and not isinstance(value, kind):
        raise AutospaceError(f"{path} is {value!r}; expected {what}")
    return value


def _fields(data: Any, path: str, required: tuple[str, ...], optional: tuple[str, ...] = ()) -> dict:
    _expect(data, dict, path, "a JSON object")
    unknown = sorted(set(data) - set(required) - set(optional))
    if unknown:
        raise AutospaceError(
            f"{path} has unknown field(s) {', '.join(map(repr, unknown))}; "
            f"allowed fields: {', '.join(required + optional)}"
        )
    missing = [key for key in required if key not in data]
    if missing:
        raise AutospaceError(f"{path} is missing field(s) {', '.join(map(repr, missing))}")
    return data


def _with_path(path: str, build):
    """Run a constructor; prefix its validation message with the JSON path."""
    try:
        return build()
    except AutospaceError as error:
        raise AutospaceError(f"{path}: {error}") from None
    except (TypeError, ValueError) as error:
        raise AutospaceError(f"{path}: {error}") from None


# ---- blocks -----------------------------------------------------------------

def cell_to_dict(cell: Cell) -> dict:
    return {"ops": dict(zip(EDGE_KEYS, cell.ops)), "expansion": cell.expansion, "aggregation": cell.aggregation}


def block_to_dict(block: Block) -> dict:
    if isinstance(block, CellBlock):
        return {"type": "cell", **cell_to_dict(block.cell)}
    if isinstance(block, InvertedResidual):
        return {"type": "irb", "kernel": block.kernel, "expansion": block.expansion,
                "squeeze_excite": block.squeeze_excite, "activation": block.activation,
                "dilation": block.dilation}
    if isinstance(block, ZeroBlock):
        return {"type": "zero"}
    if isinstance(block, MultiBranch):
        return {"type": "multi", "branches": [block_to_dict(branch) for branch in block.branches]}
    raise TypeError(f"not a block: {block!r}")


def block_from_dict(data: Any, path: str = "block") -> Block:
    _expect(data, dict, path, "a JSON object with a 'type' field")
    kind = data.get("type")
    if kind == "zero":
        _fields(data, path, ("type",))
        return ZeroBlock()
    if kind == "irb":
        _fields(data, path, ("type",), ("kernel", "expansion", "squeeze_excite", "activation", "dilation"))
        arguments = {k: v for k, v in data.items() if k != "type"}
        return _with_path(path, lambda: InvertedResidual(**arguments))
    if kind == "cell":
        _fields(data, path, ("type", "ops"), ("expansion", "aggregation"))
        ops = _fields(data["ops"], f"{path}.ops", EDGE_KEYS)
        for key in EDGE_KEYS:
            _expect(ops[key], str, f"{path}.ops[{key!r}]", "an operator name (a string)")
        return _with_path(path, lambda: CellBlock(Cell(
            ops=tuple(ops[key] for key in EDGE_KEYS),
            expansion=data.get("expansion", 6), aggregation=data.get("aggregation", "sum"))))
    if kind == "multi":
        _fields(data, path, ("type", "branches"))
        _expect(data["branches"], list, f"{path}.branches", "a list of irb or cell blocks")
        if not 1 <= len(data["branches"]) <= MAX_BRANCHES:
            raise AutospaceError(f"{path}.branches has {len(data['branches'])} blocks; a multi block holds 1 to "
                                 f"{MAX_BRANCHES}")
        branches = []
        for index, entry in enumerate(data["branches"]):
            where = f"{path}.branches[{index}]"
            if isinstance(entry, dict) and entry.get("type") in ("multi", "zero"):
                raise AutospaceError(f"{where}.type is {entry['type']!r}; a branch must be an irb or a cell")
            branches.append(block_from_dict(entry, where))
        return _with_path(path, lambda: MultiBranch(tuple(branches)))
    raise AutospaceError(f"{path}.type is {kind!r}; allowed: cell, irb, zero, multi")


# ---- networks -----------------------------------------------------------------

_NETWORK_SCALARS = ("stem_channels", "stem_stride", "head_channels", "num_classes",
                    "in_channels", "resolution", "activation", "dropout")


def network_to_dict(network: Network) -> dict:
    data = {key: getattr(network, key) for key in _NETWORK_SCALARS}
    data["layers"] = [
        {"block": block_to_dict(layer.block), "out_channels": layer.out_channels,
         "stride": layer.stride, "searchable": layer.searchable}
        for layer in network.layers
    ]
    return data


def network_from_dict(data: Any, path: str = "network") -> Network:
    _fields(data, path, ("layers",), _NETWORK_SCALARS)
    _expect(data["layers"], list, f"{path}.layers", "a list of layers")
    layers = []
    for index, entry in enumerate(data["layers"]):
        where = f"{path}.layers[{index}]"
        _fields(entry, where, ("block", "out_channels"), ("stride", "searchable"))
        _expect(entry.get("searchable", True), bool, f"{where}.searchable", "true or false")
        layers.append(Layer(block_from_dict(entry["block"], f"{where}.block"),
                            entry["out_channels"], entry.get("stride", 1), entry.get("searchable", True)))
    scalars = {key: data[key] for key in _NETWORK_SCALARS if key in data}
    return _with_path(path, lambda: Network(layers=tuple(layers), **scalars))


_SKELETON_SCALARS = ("stem_channels", "stem_stride", "first_channels", "head_channels", "num_classes",
                     "in_channels", "resolution", "activation", "dropout")


def skeleton_to_dict(skeleton: Skeleton) -> dict:
    data = {key: getattr(skeleton, key) for key in _SKELETON_SCALARS}
    data["first_block"] = None if skeleton.first_block is None else block_to_dict(skeleton.first_block)
    data["stages"] = [{"width": s.width, "depth": s.depth, "stride": s.stride} for s in skeleton.stages]
    return data


def skeleton_from_dict(data: Any, path: str = "skeleton") -> Skeleton:
    _fields(data, path, ("stages",), _SKELETON_SCALARS + ("first_block",))
    _expect(data["stages"], list, f"{path}.stages", "a list of {width, depth, stride}")
    stages = []
    for index, entry in enumerate(data["stages"]):
        where = f"{path}.stages[{index}]"
        _fields(entry, where, ("width", "depth", "stride"))
        stages.append(Stage(entry["width"], entry["depth"], entry["stride"]))
    arguments = {key: data[key] for key in _SKELETON_SCALARS if key in data}
    if "first_block" in data:
        first = data["first_block"]
        arguments["first_block"] = None if first is None else block_from_dict(first, f"{path}.first_block")
    return _with_path(path, lambda: Skeleton(stages=tuple(stages), **arguments))


# ---- spaces -------------------------------------------------------------------

def space_to_dict(space: SearchSpace, annotate=None) -> dict:
    """`annotate(layer_index, block) -> dict` may add read-only facts (MAdds, params)."""
    layers = []
    for index, candidates in enumerate(space.layers):
        entries = []
        for candidate in candidates:
            entry = {"block": block_to_dict(candidate.block)}
            if candidate.fitness is not None:
                entry["fitness"] = candidate.fitness
            if candidate.trained_iterations is not None:
                entry["trained_iterations"] = candidate.trained_iterations
            if annotate is not None:
                entry.update(annotate(index, candidate.block))
            entries.append(entry)
        layers.append(entries)
    return {"format": SPACE_FORMAT, "name": space.name, "skeleton": skeleton_to_dict(space.skeleton),
            "layers": layers, "metadata": space.metadata}


def space_from_dict(data: Any, path: str = "space") -> SearchSpace:
    _fields(data, path, ("format", "skeleton", "layers"), ("name", "metadata"))
    _check_format(data["format"], SPACE_FORMAT, path)
    skeleton = skeleton_from_dict(data["skeleton"], f"{path}.skeleton")
    _expect(data["layers"], list, f"{path}.layers", "a list (one candidate list per searchable layer)")
    layers = []
    for index, entries in enumerate(data["layers"]):
        _expect(entries, list, f"{path}.layers[{index}]", "a list of candidates")
        candidates = []
        for position, entry in enumerate(entries):
            where = f"{path}.layers[{index}][{position}]"
            _fields(entry, where, ("block",), ("fitness", "trained_iterations", "madds", "params"))
            fitness = entry.get("fitness")
            if fitness is not None:
                _expect(fitness, float, f"{where}.fitness", "a number")
            count = entry.get("trained_iterations")
            if count is not None:
                _expect(count, int, f"{where}.trained_iterations", "an integer")
            candidates.append(Candidate(block_from_dict(entry["block"], f"{where}.block"),
                                        None if fitness is None else float(fitness), count))
        layers.append(tuple(candidates))
    name = _expect(data.get("name", "custom"), str, f"{path}.name", "a string")
    metadata = _expect(data.get("metadata", {}), dict, f"{path}.metadata", "a JSON object")
    return _with_path(path, lambda: SearchSpace(skeleton, tuple(layers), name, metadata))


def _check_format(found: Any, expected: str, path: str) -> None:
    if found != expected:
        raise AutospaceError(
            f"{path}.format is {found!r}; this version of autospace reads {expected!r} "
            f"(a file from another version needs converting)"
        )


# ---- files --------------------------------------------------------------------

def arch_to_dict(network: Network, info: dict | None = None) -> dict:
    data = {"format": ARCH_FORMAT, "network": network_to_dict(network)}
    if info:
        data["info"] = info
    return data


def arch_from_dict(data: Any, path: str = "arch") -> Network:
    _fields(data, path, ("format", "network"), ("info",))
    _check_format(data["format"], ARCH_FORMAT, path)
    return network_from_dict(data["network"], f"{path}.network")


def read_json_file(path: str | os.PathLike, what: str) -> Any:
    """A JSON file's content, or an AutospaceError naming the file and `what` it should be."""
    from autospace.runtime.parsing import parse_json, read_text_file

    path = Path(path)
    text = read_text_file(path, f"{what} file")  # refuses a missing, huge or endless file (/dev/zero)

    return parse_json(text, f"{what} file {path}")


def _load_file(path: str | os.PathLike, what: str, decode):
    """Read a JSON file and decode it; every error names the file."""
    data = read_json_file(path, what)
    try:
        return decode(data)
    except AutospaceError as error:
        raise AutospaceError(f"{path}: {error}") from None


def load_arch(path: str | os.PathLike) -> Network:
    return _load_file(path, "arch", arch_from_dict)


def load_space(path: str | os.PathLike) -> SearchSpace:
    return _load_file(path, "space", space_from_dict)


def save_arch(path: str | os.PathLike, network: Network, info: dict | None = None) -> None:
    from autospace.runtime.atomic import atomic_write_json

    atomic_write_json(path, arch_to_dict(network, info))


def save_space(path: str | os.PathLike, space: SearchSpace, annotate=None) -> None:
    from autospace.runtime.atomic import atomic_write_json

    atomic_write_json(path, space_to_dict(space, annotate))
