"""Per-layer weight banks: the modules a layer's candidate cells share (DESIGN 2.3, step 4).

Every searchable layer of the DEA supernet keeps one `CellWeightBank`. A cell
built from the bank reuses the bank's modules (ENAS-style sharing), so a cell
that comes back after the supernet is rebuilt, or a new cell that shares an
edge operator with an old one, inherits the trained weights.

Modules are created lazily and initialised from an explicit `torch.Generator`:
they are constructed on the meta device (so construction never touches the
global RNG), materialised on the CPU, initialised from the generator, then
moved to the bank's device, dtype and memory format.
"""

from __future__ import annotations

import re
from typing import Callable

import torch
from torch import nn

from autospace.arch.cell import Cell, canonical
from autospace.arch.network import LayerSlot
from autospace.arch.ops import CELL_EXPANSIONS, CONV_OPERATORS, EDGES, INNER_NODES
from autospace.errors import AutospaceError
from autospace.nn.blocks import SkipLayer
from autospace.nn.cell import CellModule, cell_mid_channels, edge_key
from autospace.nn.operators import ConvBNAct, make_edge_operator


def initialise_parameters(module: nn.Module, generator: torch.Generator) -> nn.Module:
    """Deterministic init from `generator` (a CPU generator; `module` on the CPU).

    Convs: Kaiming normal, fan-out (MobileNetV2 / ProxylessNAS); BN: weight 1,
    bias 0, fresh running statistics; linear: normal(0, 0.01), bias 0.
    """
    for child in module.modules():
        if isinstance(child, nn.Conv2d):
            nn.init.kaiming_normal_(child.weight, mode="fan_out", generator=generator)
            if child.bias is not None:
                nn.init.zeros_(child.bias)
        elif isinstance(child, nn.modules.batchnorm._BatchNorm):
            child.reset_parameters()  # weight 1, bias 0, running mean 0 / var 1, counter 0
        elif isinstance(child, nn.Linear):
            nn.init.normal_(child.weight, 0.0, 0.01, generator=generator)
            if child.bias is not None:
                nn.init.zeros_(child.bias)
    return module


def materialise(factory: Callable[[], nn.Module], generator: torch.Generator,
                like: torch.Tensor | None = None,
                memory_format: torch.memory_format = torch.contiguous_format) -> nn.Module:
    """Build `factory()` without touching the global RNG, initialise it from `generator`,
    and move it to `like`'s device and floating dtype."""
    with torch.device("meta"):
        module = factory()
    module = initialise_parameters(module.to_empty(device="cpu"), generator)
    if like is not None:
        module = module.to(device=like.device, dtype=like.dtype)
    if memory_format is not torch.contiguous_format:
        module = module.to(memory_format=memory_format)
    return module


def zero_residual_branches(module: nn.Module) -> nn.Module:
    """Zero the last BN scale of every residual block inside `module` (cells, inverted residuals):
    each block then starts as the identity (BigNAS's initialisation). In a supernet a switch of
    cells then disturbs the layers after it little at first; measured with
    bench/supernet_learning.py (--zero-init)."""
    for child in module.modules():
        if getattr(child, "has_residual", False):
            last = getattr(child, "output_conv", None) or getattr(child, "project", None)
            if last is not None:
                nn.init.zeros_(last[1].weight)
    return module


# ---- keys --------------------------------------------------------------------------------

def input_key(expansion: int) -> str:
    return f"input|e{expansion}"


def output_key(expansion: int) -> str:
    return f"output|e{expansion}"


def edge_operator_key(expansion: int, source: int, target: int, op: str) -> str:
    return f"e{expansion}|{source}->{target}|{op}"


def projection_key(expansion: int, node: int, fan_in: int) -> str:
    return f"e{expansion}|node{node}|concat{fan_in}"


_KEY_PATTERNS = (
    ("input", re.compile(r"input\|e(\d+)")),
    ("output", re.compile(r"output\|e(\d+)")),
    ("edge", re.compile(r"e(\d+)\|(\d)->(\d)\|(\w+)")),
    ("projection", re.compile(r"e(\d+)\|node(\d)\|concat(\d)")),
)
_KEY_FORMATS = "'input|e6', 'output|e6', 'e6|0->1|conv3x3', 'e6|node2|concat3'"


def cell_keys(cell: Cell) -> list[str]:
    """The bank keys the canonical form of `cell` uses, in creation order.

    Identity edges (plain or strided) have no parameters and no key; an empty
    cell uses none.
    """
    cell = canonical(cell)
    if cell.is_empty():
        return []
    e = cell.expansion
    keys = [input_key(e)]
    keys += [edge_operator_key(e, s, t, op) for (s, t), op in zip(EDGES, cell.ops) if op in CONV_OPERATORS]
    keys += [projection_key(e, node, len(cell.incoming(node)))
             for node in range(1, INNER_NODES) if cell.uses_concat_projection(node)]
    return keys + [output_key(e)]


class CellWeightBank(nn.Module):
    """Per-layer bank of shared modules, keyed by part and expansion.

    Keys (see `cell_keys`): the input 1x1 conv per expansion (``"input|e6"``),
    the output 1x1 conv per expansion (``"output|e6"``), each edge operator per
    (expansion, edge, operator) (``"e6|0->1|conv3x3"``; edges out of node 0 carry
    the layer's stride) and each concat projection per (expansion, node, fan-in)
    (``"e6|node2|concat3"``). Identity and strided identity have no parameters
    and are not banked. Aggregation is not part of any key: a `sum` and a
    `concat` cell share their edge operators.

    Modules are created the first time a cell needs them, initialised from the
    generator passed at that time, on the device/dtype the bank currently has
    and in its `memory_format` (all three follow `.to()`, also when called on a
    parent such as `CellSupernet`). `keys()` lists them in creation
    order; to resume, call `ensure(saved_keys, generator)` *before* anything else
    creates modules, then `load_state_dict` (the parameter order, and so an
    optimiser's state, then matches the original run).

    `cell_module` caches one `CellModule` per canonical cell; those CellModules
    are not registered as submodules (the bank's `state_dict` holds every tensor
    once), and their submodules *are* the bank's modules.
    """

    def __init__(self, slot: LayerSlot, zero_residual: bool = False):
        super().__init__()
        self.slot = slot
        self.zero_residual = zero_residual and slot.has_residual  # output convs start at zero
        self.shared = nn.ModuleDict()
        self.memory_format = torch.contiguous_format
        # follows .to(device/dtype) of the bank, so lazily created modules land there too
        self.register_buffer("device_anchor", torch.zeros(0), persistent=False)
        self._cell_modules: dict[Cell, nn.Module] = {}

    max_cached_cells = 4096  # CellModules are thin wrappers over bank modules; evicting one loses nothing

    def keys(self) -> list[str]:
        return list(self.shared.keys())

    def to(self, *args, **kwargs):
        memory_format = torch._C._nn._parse_to(*args, **kwargs)[3]
        if memory_format is not None:
            self.memory_format = memory_format
        return super().to(*args, **kwargs)

    def __contains__(self, key: str) -> bool:
        return key in self.shared

    def module(self, key: str) -> nn.Module:
        return self.shared[key]

    def ensure(self, keys: list[str], generator: torch.Generator | None) -> list[nn.Parameter]:
        """Create the missing `keys`, in order; returns the parameters created."""
        created = []
        for key in keys:
            if key not in self.shared:
                if generator is None:
                    raise AutospaceError(f"bank of layer {self.slot.index} must create {key!r}: pass a generator")
                module = materialise(self._factory(key), generator, self.device_anchor, self.memory_format)
                if self.zero_residual and key.startswith("output|"):
                    nn.init.zeros_(module[1].weight)
                self.shared[key] = module
                created.extend(module.parameters())
        return created

    def cell_module(self, cell: Cell, generator: torch.Generator | None = None) -> nn.Module:
        """The module of `cell` in this layer, built from (and sharing) the bank's modules.

        Cached per canonical cell. An empty cell gives a parameter-free `SkipLayer`
        (only valid where the layer has a residual).
        """
        cell = canonical(cell)
        cached = self._cell_modules.get(cell)
        if cached is not None:
            return cached
        slot = self.slot
        if cell.is_empty():
            if not slot.has_residual:
                raise AutospaceError(
                    f"layer {slot.index}: an empty cell computes nothing, which is only valid where the layer "
                    f"has a residual (stride 1, in == out channels); this layer has stride {slot.stride}, "
                    f"{slot.in_channels} -> {slot.out_channels} channels")
            module = SkipLayer()
        else:
            self.ensure(cell_keys(cell), generator)
            e, mid = cell.expansion, cell_mid_channels(cell, slot.in_channels)
            edges = {}
            for (source, target), op in zip(EDGES, cell.ops):
                if op in CONV_OPERATORS:
                    edges[edge_key(source, target)] = self.shared[edge_operator_key(e, source, target, op)]
                elif op == "identity":
                    edges[edge_key(source, target)] = make_edge_operator(  # no parameters
                        op, mid, slot.stride if source == 0 else 1)
            projections = {str(node): self.shared[projection_key(e, node, len(cell.incoming(node)))]
                           for node in range(1, INNER_NODES) if cell.uses_concat_projection(node)}
            module = CellModule(cell, slot.in_channels, slot.out_channels, slot.stride, edges=edges,
                                projections=projections, input_conv=self.shared[input_key(e)],
                                output_conv=self.shared[output_key(e)])
        module.train(self.training)
        if len(self._cell_modules) >= self.max_cached_cells:
            del self._cell_modules[next(iter(self._cell_modules))]
        self._cell_modules[cell] = module
        return module

    def train(self, mode: bool = True):
        super().train(mode)
        for module in self._cell_modules.values():  # only the wrappers' own flags; children are ours
            module.training = mode
        return self

    def _factory(self, key: str) -> Callable[[], nn.Module]:
        slot = self.slot
        for kind, pattern in _KEY_PATTERNS:
            match = pattern.fullmatch(key)
            if match is None:
                continue
            expansion = int(match.group(1))
            if expansion not in CELL_EXPANSIONS:
                break
            mid = int(round(expansion * slot.in_channels))
            if kind == "input":
                return lambda: ConvBNAct(slot.in_channels, mid, 1)
            if kind == "output":
                return lambda: ConvBNAct(mid, slot.out_channels, 1, activation=None)
            if kind == "edge":
                source, target, op = int(match.group(2)), int(match.group(3)), match.group(4)
                if (source, target) not in EDGES or op not in CONV_OPERATORS:
                    break
                stride = slot.stride if source == 0 else 1
                return lambda: make_edge_operator(op, mid, stride)
            node, fan_in = int(match.group(2)), int(match.group(3))
            if not 1 <= node < INNER_NODES or not 2 <= fan_in <= node:
                break
            # our choice (as in CellModule): the concat projection is conv1x1 + BN, no activation
            return lambda: ConvBNAct(fan_in * mid, mid, 1, activation=None)
        raise AutospaceError(f"bad weight-bank key {key!r}; keys look like {_KEY_FORMATS}")
