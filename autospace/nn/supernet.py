"""The DEA supernet (DESIGN 2.3): one gated layer of M candidate cells per searchable layer.

Layout mirrors `autospace.nn.builder.NetworkModule` (stem, layers, head, pool,
dropout, classifier), so the weights of one path map one to one onto the
stand-alone network of that path (`path_network`, `path_state_dict`).

Typical use (the evolution loop):

    supernet = CellSupernet(skeleton, initialiser).to(device)
    new_parameters = supernet.set_candidates(cells, fitness, initialiser)   # rebuild: weights inherited
    paths = supernet.sample_weight_paths(sampler)       # weight step: one cell per layer, by p
    loss(supernet(x, paths)).backward()
    paths = supernet.sample_fitness_paths(sampler)      # fitness step: two cells per layer
    old = [a.detach().clone() for a in supernet.alphas()]
    loss(supernet(x_val, paths)).backward(); alpha_optimizer.step()
    supernet.rescale_after_step(old, paths)

Resume: for each bank `bank.ensure(saved_keys, generator)` first, then
`set_candidates`, then `load_state_dict` (the state dict holds the banks, the
fixed modules and the current alphas, each tensor once).
"""

from __future__ import annotations

from typing import Sequence

import torch
from torch import nn

from autospace.arch.blocks import CellBlock, canonical_block
from autospace.arch.cell import Cell
from autospace.arch.network import Network, Skeleton
from autospace.errors import AutospaceError
from autospace.nn.blocks import build_block
from autospace.nn.gates import GatedCellLayer, Path, pair_from_uniforms, single_from_uniform
from autospace.nn.operators import ConvBNAct
from autospace.nn.weight_bank import CellWeightBank, materialise

__all__ = ["CellSupernet"]


class CellSupernet(nn.Module):
    """Stem, fixed first block, one `GatedCellLayer` per searchable layer, head, classifier.

    Registered modules: `stem`, `layers` (the fixed first block, if any, then the gated
    layers, whose only parameter is `alpha`), `banks` (one `CellWeightBank` per searchable
    layer: every cell weight), `head`, `dropout`, `classifier`. Banks persist across
    `set_candidates` (weight inheritance); the gated layers and their alphas are rebuilt.
    All modules are initialised from `generator` (a CPU generator); the global RNG is not used
    (except by `dropout` in training mode, as in `NetworkModule`). `zero_residual`: cells of
    residual layers start as the identity (their output BN scale is zero).
    """

    def __init__(self, skeleton: Skeleton, generator: torch.Generator, zero_residual: bool = False):
        super().__init__()
        self.skeleton = skeleton
        slots = skeleton.slots()
        self.stem = materialise(lambda: ConvBNAct(skeleton.in_channels, skeleton.stem_channels, 3,
                                                  skeleton.stem_stride, activation=skeleton.activation), generator)
        fixed = [materialise(lambda: build_block(skeleton.first_block, slot), generator)
                 for slot in slots if not slot.searchable]
        self.layers = nn.ModuleList(fixed)
        self.banks = nn.ModuleList(CellWeightBank(slot, zero_residual) for slot in skeleton.searchable_slots())
        last = slots[-1].out_channels
        self.head = (materialise(lambda: ConvBNAct(last, skeleton.head_channels, 1, activation=skeleton.activation),
                                 generator) if skeleton.head_channels else nn.Identity())
        self.dropout = nn.Dropout(skeleton.dropout) if skeleton.dropout > 0 else nn.Identity()
        final = skeleton.head_channels or last
        self.classifier = materialise(lambda: nn.Linear(final, skeleton.num_classes), generator)
        self._fixed: list[nn.Module] = fixed
        self._gated: list[GatedCellLayer] = []
        self._probability_key = None
        self._probability_values: list[list[float]] = []

    def to(self, *args, **kwargs):
        memory_format = torch._C._nn._parse_to(*args, **kwargs)[3]
        if memory_format is not None:  # banks create modules later: tell them the layout
            for bank in self.banks:
                bank.memory_format = memory_format
        return super().to(*args, **kwargs)

    # ---- candidates ----------------------------------------------------------------------

    def set_candidates(self, cells_per_layer: Sequence[Sequence[Cell]],
                       fitness_per_layer: Sequence[Sequence[float]],
                       generator: torch.Generator) -> list[nn.Parameter]:
        """Rebuild the gated layers: layer l gets `cells_per_layer[l]` with alpha = `fitness_per_layer[l]`.

        Cells reuse their bank's modules; missing ones are created from `generator` on the
        supernet's device and memory format. Returns the bank parameters created by this call
        (for an optimiser); the alphas are new Parameters (make a new alpha optimiser).
        """
        if len(cells_per_layer) != len(self.banks) or len(fitness_per_layer) != len(self.banks):
            raise AutospaceError(
                f"the supernet has {len(self.banks)} searchable layers; got {len(cells_per_layer)} cell lists "
                f"and {len(fitness_per_layer)} fitness lists")
        counts = [len(bank.keys()) for bank in self.banks]
        gated = []
        for bank, cells, fitness in zip(self.banks, cells_per_layer, fitness_per_layer):
            gated.append(GatedCellLayer(bank, cells, fitness, generator))
        self.layers = nn.ModuleList(self._fixed + gated)
        self._gated = gated
        self._probability_key = None
        return [parameter for bank, count in zip(self.banks, counts)
                for key in bank.keys()[count:] for parameter in bank.module(key).parameters()]

    @property
    def gated_layers(self) -> list[GatedCellLayer]:
        return list(self._gated)

    def candidates(self) -> list[tuple[Cell, ...]]:
        return [layer.cells for layer in self._gated]

    def alphas(self) -> list[nn.Parameter]:
        return [layer.alpha for layer in self._gated]

    def weight_parameters(self) -> list[nn.Parameter]:
        """Every parameter except the alphas: stem, fixed block, banks, head, classifier."""
        alpha_ids = {id(alpha) for alpha in self.alphas()}
        return [parameter for parameter in self.parameters() if id(parameter) not in alpha_ids]

    # ---- sampling (host side, CPU generator: no device sync on weight steps) ---------------

    def path_probabilities(self) -> list[list[float]]:
        """softmax(alpha) per layer as host lists; recomputed (one device sync) only when an alpha
        changed in place (its version counter moved) or after `refresh_probabilities`."""
        alphas = self.alphas()
        key = tuple((id(alpha), alpha._version) for alpha in alphas)
        if key != self._probability_key:
            flat = torch.cat([torch.softmax(alpha.detach().float(), 0) for alpha in alphas]).cpu().tolist()
            values, start = [], 0
            for alpha in alphas:
                values.append(flat[start:start + alpha.numel()])
                start += alpha.numel()
            self._probability_key, self._probability_values = key, values
        return self._probability_values

    def refresh_probabilities(self) -> None:
        """Forget the cached probabilities (needed only after alpha updates that bypass the version
        counter, e.g. a fused optimiser or writes through `.data`)."""
        self._probability_key = None

    def sample_weight_paths(self, generator: torch.Generator, uniform: bool = False) -> list[Path]:
        """Per layer ((i,), i) with i drawn by p = softmax(alpha), or uniformly (`uniform`, for
        warm-up: every cell gets a fair share of training before its fitness is judged)."""
        self._require_candidates()
        uniforms = torch.rand(len(self._gated), generator=generator, dtype=torch.float64).tolist()
        if uniform:
            return [single_from_uniform([1.0 / len(layer.cells)] * len(layer.cells), u)
                    for layer, u in zip(self._gated, uniforms)]
        return [single_from_uniform(p, u) for p, u in zip(self.path_probabilities(), uniforms)]

    def sample_fitness_paths(self, generator: torch.Generator) -> list[Path]:
        """Per layer ((a, b), chosen): ProxylessNAS two-path sampling (see `gates.sample_pair`);
        a layer with one candidate gives ((0,), 0)."""
        self._require_candidates()
        uniforms = torch.rand(len(self._gated), 3, generator=generator, dtype=torch.float64).tolist()
        return [pair_from_uniforms(p, u) for p, u in zip(self.path_probabilities(), uniforms)]

    # ---- computation -----------------------------------------------------------------------

    def forward(self, x, paths: Sequence[Path]):
        self._require_candidates()
        if len(paths) != len(self._gated):
            raise AutospaceError(f"got {len(paths)} paths for {len(self._gated)} searchable layers")
        x = self.stem(x)
        for layer in self._fixed:
            x = layer(x)
        for layer, (active, chosen) in zip(self._gated, paths):
            x = layer(x, active, chosen)
        x = self.head(x).mean((2, 3))
        return self.classifier(self.dropout(x))

    def forward_cells(self, x, cells: Sequence[Cell], generator: torch.Generator | None = None):
        """Run one arbitrary cell per searchable layer straight from the banks (the open space,
        where cells are not fixed candidates); missing bank modules are created from `generator`."""
        if len(cells) != len(self.banks):
            raise AutospaceError(f"got {len(cells)} cells for {len(self.banks)} searchable layers")
        x = self.stem(x)
        for layer in self._fixed:
            x = layer(x)
        for bank, cell in zip(self.banks, cells):
            x = bank.cell_module(cell, generator)(x)
        x = self.head(x).mean((2, 3))
        return self.classifier(self.dropout(x))

    @torch.no_grad()
    def rescale_after_step(self, old_alphas: Sequence[torch.Tensor], paths: Sequence[Path]) -> None:
        """`GatedCellLayer.rescale_after_step` for every layer's active cells."""
        for layer, old, (active, _) in zip(self._gated, old_alphas, paths):
            layer.rescale_after_step(old, active)
        self._probability_key = None

    # ---- the stand-alone network of a path --------------------------------------------------

    def path_network(self, paths: Sequence[Path]) -> Network:
        """The network (arch data) of the chosen cells: a CellBlock per searchable layer, or a
        ZeroBlock for an empty cell."""
        self._require_candidates()
        blocks = [canonical_block(CellBlock(layer.cells[chosen])) for layer, (_, chosen) in zip(self._gated, paths)]
        return self.skeleton.network(blocks)

    def path_state_dict(self, paths: Sequence[Path]) -> dict[str, torch.Tensor]:
        """A strict state dict for `build_network(self.path_network(paths))`: that module then
        computes what `self(x, paths)` computes. Tensors share storage with the supernet."""
        self._require_candidates()
        state = {}
        modules = [("stem.", self.stem)]
        modules += [(f"layers.{index}.", module) for index, module in enumerate(self._fixed)]
        modules += [(f"layers.{len(self._fixed) + index}.", layer.cell_modules[chosen])
                    for index, (layer, (_, chosen)) in enumerate(zip(self._gated, paths))]
        modules += [("head.", self.head), ("classifier.", self.classifier)]
        for prefix, module in modules:
            state.update(module.state_dict(prefix=prefix))
        return state

    def _require_candidates(self) -> None:
        if not self._gated:
            raise AutospaceError("the supernet has no candidate cells yet; call set_candidates first")
