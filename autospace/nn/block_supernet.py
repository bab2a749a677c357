"""The supernet of a listed search space (DESIGN 2.4): ProxylessNAS-G/RL and SPOS run on it.

One module per candidate block per searchable layer, each with its own weights
(as in ProxylessNAS; the DEA's weight banks are for the open space). The layout
mirrors `autospace.nn.builder.NetworkModule` (stem, layers, head, dropout,
classifier) with `layers[k]` of a searchable layer a `ModuleList` of its
candidates, so the weights of one path map one to one onto the stand-alone
network of that path (`path_network`, `path_state_dict`).

Architecture parameters are not held here: a strategy owns its logits (one
tensor per searchable layer, over `choices[l]`) and passes them to `forward`:

    supernet = BlockSupernet(space, torch.Generator().manual_seed(seed)).to(device)
    loss(supernet(x, [((i,), i) for i in choice])).backward()        # weight step: one path
    loss(supernet(x_val, paths, logits)).backward()                   # arch step: binary gates
    old = [a.detach().clone() for a in logits]; optimizer.step()
    for a, o, (active, _) in zip(logits, old, paths): rescale_pair(a, o, active)
"""

from __future__ import annotations

from typing import Sequence

import torch
from torch import nn

from autospace.arch.blocks import Block, MultiBranch, ZeroBlock
from autospace.arch.network import Network
from autospace.arch.space import SearchSpace
from autospace.cost.analytic import block_cost, head_cost, stem_cost
from autospace.errors import AutospaceError
from autospace.nn.batchnorm import recalibrate_batch_norm
from autospace.nn.blocks import build_block
from autospace.nn.gates import Path, gated_output, rescale_pair
from autospace.nn.operators import ConvBNAct
from autospace.nn.weight_bank import materialise, zero_residual_branches

__all__ = ["BlockSupernet", "network_madds_of_choice", "recalibrate_batch_norm", "rescale_pair"]


def layer_choices(space: SearchSpace, add_zero: bool = True) -> list[tuple[Block, ...]]:
    """Per searchable layer: the space's blocks, plus `ZeroBlock()` where the slot has a residual
    and no candidate is empty yet (when `add_zero`)."""
    choices = []
    for index, slot in enumerate(space.slots()):
        blocks = list(space.blocks(index))
        if add_zero and slot.has_residual and not any(block.is_empty() for block in blocks):
            blocks.append(ZeroBlock())
        choices.append(tuple(blocks))
    return choices


class BlockSupernet(nn.Module):
    """Stem, fixed first block, per searchable layer one module per candidate block, head, classifier.

    Registered modules: `stem`, `layers` (the fixed first block, if any, as in `NetworkModule`;
    then per searchable layer a `ModuleList` with one module per candidate of `choices[l]`, an
    empty block being a parameter-free `SkipLayer`), `head`, `dropout`, `classifier`. Every
    module is initialised from `generator` (a CPU generator; the scheme of the DEA supernet:
    convs Kaiming normal fan-out, BN 1/0, linear normal(0, 0.01), biases 0); the global RNG is
    not used (except by `dropout` in training mode, as in `NetworkModule`). `zero_residual`:
    every residual candidate starts as the identity (its last BN scale is zero).
    """

    def __init__(self, space: SearchSpace, generator: torch.Generator, add_zero: bool = True,
                 zero_residual: bool = False):
        super().__init__()
        skeleton = space.skeleton
        self.space = space
        self.skeleton = skeleton
        self.choices: list[tuple[Block, ...]] = layer_choices(space, add_zero)
        slots = skeleton.slots()
        searchable = skeleton.searchable_slots()
        self.stem = materialise(lambda: ConvBNAct(skeleton.in_channels, skeleton.stem_channels, 3,
                                                  skeleton.stem_stride, activation=skeleton.activation), generator)
        fixed = [materialise(lambda: build_block(skeleton.first_block, slot), generator)
                 for slot in slots if not slot.searchable]
        candidates = [nn.ModuleList(materialise(lambda: build_block(block, slot), generator) for block in blocks)
                      for slot, blocks in zip(searchable, self.choices)]
        if zero_residual:
            for layer in candidates:
                zero_residual_branches(layer)
        self.layers = nn.ModuleList(fixed + candidates)
        last = slots[-1].out_channels
        self.head = (materialise(lambda: ConvBNAct(last, skeleton.head_channels, 1, activation=skeleton.activation),
                                 generator) if skeleton.head_channels else nn.Identity())
        self.dropout = nn.Dropout(skeleton.dropout) if skeleton.dropout > 0 else nn.Identity()
        self.classifier = materialise(lambda: nn.Linear(skeleton.head_channels or last, skeleton.num_classes),
                                      generator)
        self._fixed: list[nn.Module] = fixed
        self._candidates: list[nn.ModuleList] = candidates
        self._candidate_madds = [[block_cost(block, slot).madds for block in blocks]
                                 for slot, blocks in zip(searchable, self.choices)]
        fixed_madds = stem_cost(skeleton).madds + head_cost(skeleton, last, slots[-1].output_size).madds
        fixed_madds += sum(block_cost(skeleton.first_block, slot).madds for slot in slots if not slot.searchable)
        self._fixed_madds = fixed_madds
        self._has_residual = [slot.has_residual for slot in searchable]

    @property
    def num_layers(self) -> int:
        """The number of searchable layers."""
        return len(self.choices)

    def num_choices(self) -> list[int]:
        return [len(blocks) for blocks in self.choices]

    def weight_parameters(self) -> list[nn.Parameter]:
        """Every parameter (the supernet holds no architecture parameters)."""
        return list(self.parameters())

    # ---- computation -----------------------------------------------------------------------

    def forward(self, x, paths: Sequence[Path], logits: Sequence[torch.Tensor] | None = None):
        """`paths[l] = (active, chosen)` per searchable layer: `((i,), i)` runs candidate i alone;
        two or more active candidates run through `gates.gated_output` with `logits[l]` (shape
        `(len(choices[l]),)`), whose gradient is the binary-gate estimator.
        `(active, None)` is a multi-branch layer (NSE): the mean of the active candidates'
        outputs (each adds its own residual, so the identity is carried once), and `((), None)`
        skips the layer (only where it has a residual)."""
        if len(paths) != len(self._candidates):
            raise AutospaceError(f"got {len(paths)} paths for {len(self._candidates)} searchable layers")
        if logits is not None and len(logits) != len(self._candidates):
            raise AutospaceError(f"got {len(logits)} logit tensors for {len(self._candidates)} searchable layers")
        x = self.stem(x)
        for layer in self._fixed:
            x = layer(x)
        for index, (modules, (active, chosen)) in enumerate(zip(self._candidates, paths)):
            if chosen is None:
                x = branch_mean(modules, x, active, self._has_residual[index], index)
            else:
                x = gated_output(modules, x, active, chosen, None if logits is None else logits[index])
        x = self.head(x).mean((2, 3))
        return self.classifier(self.dropout(x))

    # ---- the stand-alone network of a choice ------------------------------------------------

    def _check_choice(self, choice: Sequence[int]) -> list[int]:
        choice = [int(index) for index in choice]
        if len(choice) != len(self.choices):
            raise AutospaceError(f"got {len(choice)} choices for {len(self.choices)} searchable layers")
        for layer, (index, blocks) in enumerate(zip(choice, self.choices)):
            if not 0 <= index < len(blocks):
                raise AutospaceError(f"layer {layer}: choice {index} is not in [0, {len(blocks)})")
        return choice

    def path_network(self, choice: Sequence[int]) -> Network:
        """The network (arch data) with block `choices[l][choice[l]]` in each searchable layer."""
        choice = self._check_choice(choice)
        return self.skeleton.network([blocks[index] for blocks, index in zip(self.choices, choice)])

    def branch_network(self, masks: Sequence[Sequence[int]]) -> Network:
        """The network with, in each searchable layer, the multi-branch block of the candidates
        `masks[l]` (one candidate: that block; none: `ZeroBlock`), as `forward` runs `(masks[l], None)`."""
        if len(masks) != len(self.choices):
            raise AutospaceError(f"got {len(masks)} masks for {len(self.choices)} searchable layers")
        blocks = []
        for layer, (mask, candidates) in enumerate(zip(masks, self.choices)):
            if not all(0 <= int(i) < len(candidates) for i in mask):
                raise AutospaceError(f"layer {layer}: mask {tuple(mask)} has an index outside [0, {len(candidates)})")
            chosen = [candidates[int(i)] for i in sorted(mask)]
            blocks.append(ZeroBlock() if not chosen else chosen[0] if len(chosen) == 1 else MultiBranch(tuple(chosen)))
        return self.skeleton.network(blocks)

    def path_state_dict(self, choice: Sequence[int]) -> dict[str, torch.Tensor]:
        """A strict state dict for `build_network(self.path_network(choice))`: that module then
        computes what `self(x, [((i,), i) for i in choice])` computes. Tensors share storage."""
        choice = self._check_choice(choice)
        modules = [("stem.", self.stem)]
        modules += [(f"layers.{index}.", module) for index, module in enumerate(self._fixed)]
        modules += [(f"layers.{len(self._fixed) + index}.", candidates[chosen])
                    for index, (candidates, chosen) in enumerate(zip(self._candidates, choice))]
        modules += [("head.", self.head), ("classifier.", self.classifier)]
        state = {}
        for prefix, module in modules:
            state.update(module.state_dict(prefix=prefix))
        return state

    # ---- cost -------------------------------------------------------------------------------

    def candidate_madds(self) -> list[list[int]]:
        """Analytic MAdds of every candidate at its slot (`autospace.cost.block_cost`)."""
        return [list(row) for row in self._candidate_madds]

    def fixed_madds(self) -> int:
        """MAdds of the stem, the fixed first block, the head and the classifier: a network's
        MAdds are this plus the chosen candidates' `candidate_madds`."""
        return self._fixed_madds


def branch_mean(modules: Sequence[nn.Module], x, active: Sequence[int], has_residual: bool, layer: int):
    """A multi-branch layer's output: the mean of the active candidates' outputs; x if none is active."""
    if not active:
        if not has_residual:
            raise AutospaceError(f"layer {layer}: a multi-branch mask with no branch is only valid where the "
                                 f"layer has a residual; turn at least one candidate on")
        return x
    total = modules[active[0]](x)
    for index in active[1:]:
        total = total + modules[index](x)
    return total / len(active) if len(active) > 1 else total


def network_madds_of_choice(supernet: BlockSupernet, choice: Sequence[int]) -> int:
    """`autospace.cost.network_madds(supernet.path_network(choice))`, from the cached per-candidate costs."""
    choice = supernet._check_choice(choice)
    return supernet.fixed_madds() + sum(row[index] for row, index in zip(supernet._candidate_madds, choice))
