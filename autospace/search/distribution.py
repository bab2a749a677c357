"""Per-layer categorical distributions over candidate indices (proxyless-g / proxyless-rl, DESIGN 2.4).

A strategy owns one `LayerDistributions`: a logit vector per searchable layer,
p_l = softmax(logits_l). Sampling happens on the host from one copy of all
probabilities and a CPU `torch.Generator`, so it costs one device transfer per
draw, not one per layer.
"""

from __future__ import annotations

from typing import Sequence

import torch
from torch import Tensor, nn

from autospace.errors import AutospaceError
from autospace.nn.gates import pair_from_uniforms, single_from_uniform

Choice = tuple[int, ...]


def _check_cpu_generator(generator: torch.Generator) -> None:
    if not isinstance(generator, torch.Generator):
        raise AutospaceError(f"give a torch.Generator for sampling; got {type(generator).__name__}")
    if generator.device.type != "cpu":
        raise AutospaceError(f"sampling draws on the host; give a CPU torch.Generator, not one on {generator.device}")


def check_choices_per_layer(choices_per_layer: Sequence[int]) -> tuple[int, ...]:
    """The candidate count of every layer, checked: a non-empty sequence of integers >= 1."""
    choices = tuple(choices_per_layer)
    if not choices:
        raise AutospaceError("choices_per_layer is empty; give the number of candidates of each layer")
    for layer, count in enumerate(choices):
        if isinstance(count, bool) or not isinstance(count, int) or count < 1:
            raise AutospaceError(f"choices_per_layer[{layer}] must be an integer >= 1; got {count!r}")
    return choices


class LayerDistributions:
    """`logits`: one nn.Parameter of shape (n_l,) per layer, zeros at start (uniform)."""

    def __init__(self, choices_per_layer: Sequence[int], device=None):
        choices = check_choices_per_layer(choices_per_layer)
        self.choices_per_layer = choices
        self.logits = [nn.Parameter(torch.zeros(count, device=device)) for count in choices]
        self._host_key: tuple | None = None
        self._host_values: list[list[float]] = []

    @property
    def num_layers(self) -> int:
        return len(self.choices_per_layer)

    def parameters(self) -> list[nn.Parameter]:
        """The logits, for an optimiser."""
        return list(self.logits)

    def probabilities(self) -> list[Tensor]:
        """softmax per layer; differentiable (e.g. for `expected_madds`)."""
        return [torch.softmax(logits, 0) for logits in self.logits]

    def host_probabilities(self) -> list[list[float]]:
        """p_l per layer as Python floats. Cached until a logit changes in place (its version counter
        moves: optimiser steps, `rescale_pair`, `load_state_dict`), so the weight steps between two
        architecture steps (all of warm-up) draw their paths without waiting for the device."""
        key = tuple(logits._version for logits in self.logits)
        if key != self._host_key:
            with torch.no_grad():
                flat = torch.cat(self.probabilities()).to("cpu", torch.float64).tolist()  # the one transfer
            self._host_key, self._host_values = key, self._per_layer(flat)
        return self._host_values

    def refresh(self) -> None:
        """Forget the cached host probabilities (after a change that bypasses the version counters)."""
        self._host_key = None

    def host_log_probabilities(self) -> list[list[float]]:
        """log p_l per layer as Python floats (float64 log-softmax, finite for finite logits)."""
        with torch.no_grad():
            flat = torch.cat([torch.log_softmax(logits.double(), 0) for logits in self.logits]).cpu().tolist()
        return self._per_layer(flat)

    def _per_layer(self, flat: list[float]) -> list[list[float]]:
        """One flat list of all layers' values, split into one list per layer."""
        out, start = [], 0
        for count in self.choices_per_layer:
            out.append(flat[start:start + count])
            start += count
        return out

    def argmax(self) -> Choice:
        """The most probable candidate per layer (the lowest index on ties)."""
        return tuple(max(range(len(p)), key=lambda i, p=p: (p[i], -i)) for p in self.host_probabilities())

    def sample(self, generator: torch.Generator) -> Choice:
        """One candidate per layer drawn by p (`generator`: CPU)."""
        _check_cpu_generator(generator)
        probabilities = self.host_probabilities()
        uniforms = torch.rand(self.num_layers, generator=generator, dtype=torch.float64).tolist()
        return tuple(single_from_uniform(p, u)[1] for p, u in zip(probabilities, uniforms))

    def sample_pairs(self, generator: torch.Generator) -> list[tuple[tuple[int, ...], int]]:
        """ProxylessNAS two-path sampling per layer: ((a, b), chosen) with a < b drawn by p without
        replacement and `chosen` by the pair-renormalised p; a layer with one choice gives ((0,), 0)."""
        _check_cpu_generator(generator)
        probabilities = self.host_probabilities()
        uniforms = torch.rand(self.num_layers, 3, generator=generator, dtype=torch.float64).tolist()
        return [pair_from_uniforms(p, u) for p, u in zip(probabilities, uniforms)]

    def _check_choice(self, choice: Sequence[int]) -> None:
        if len(choice) != self.num_layers:
            raise AutospaceError(f"choice {tuple(choice)} has {len(choice)} entries; give one per layer "
                                 f"({self.num_layers})")
        for layer, (index, count) in enumerate(zip(choice, self.choices_per_layer)):
            if not 0 <= index < count:
                raise AutospaceError(f"choice[{layer}] = {index} is out of range; layer {layer} has "
                                     f"{count} candidates (0..{count - 1})")

    def log_probability(self, choice: Sequence[int]) -> Tensor:
        """log p(choice) = sum_l log p_l[choice_l]; differentiable (REINFORCE)."""
        return self.log_probabilities([choice])[0]

    def log_probabilities(self, choices: Sequence[Sequence[int]]) -> Tensor:
        """log p(choice_k) for each choice: a (K,) tensor, one log-softmax per layer for all of them."""
        if len(choices) == 0:
            raise AutospaceError("give at least one choice")
        for choice in choices:
            self._check_choice(choice)
        columns = torch.tensor([list(choice) for choice in choices], dtype=torch.long).t()
        total = None
        for logits, column in zip(self.logits, columns):
            term = torch.log_softmax(logits, 0)[column.to(logits.device)]
            total = term if total is None else total + term
        return total

    def entropy(self) -> Tensor:
        """Sum over layers of the entropy of p_l; differentiable."""
        terms = []
        for logits in self.logits:
            log_p = torch.log_softmax(logits, 0)
            terms.append(-(log_p.exp() * log_p).sum())
        return torch.stack(terms).sum()

    def state_dict(self) -> dict:
        return {"choices_per_layer": list(self.choices_per_layer),
                "logits": [logits.detach().cpu().clone() for logits in self.logits]}

    def load_state_dict(self, state: dict) -> None:
        """Copies in place, so an optimiser built on `parameters()` keeps working."""
        if list(state.get("choices_per_layer", [])) != list(self.choices_per_layer):
            raise AutospaceError(f"saved distributions have choices {state.get('choices_per_layer')}, this "
                                 f"space has {list(self.choices_per_layer)}; resume with the same space")
        with torch.no_grad():
            for logits, saved in zip(self.logits, state["logits"]):
                logits.copy_(torch.as_tensor(saved).to(logits))


def reinforce_loss(distributions: LayerDistributions, choices: Sequence[Sequence[int]],
                   rewards: Sequence[float], baseline: float) -> Tensor:
    """-mean_k (r_k - b) * log p(choice_k): its gradient is the REINFORCE estimate."""
    if len(choices) == 0:
        raise AutospaceError("reinforce_loss needs at least one sampled choice")
    if len(choices) != len(rewards):
        raise AutospaceError(f"{len(choices)} choices but {len(rewards)} rewards; give one reward per choice")
    log_p = distributions.log_probabilities(choices)
    advantages = torch.tensor([float(r) - float(baseline) for r in rewards], dtype=log_p.dtype).to(log_p.device)
    return -(advantages * log_p).mean()


class MovingAverageBaseline:
    """Exponential moving average b <- decay * b + (1 - decay) * value (variance reduction for REINFORCE)."""

    def __init__(self, decay: float = 0.9):
        if not 0 <= decay < 1:
            raise AutospaceError(f"baseline decay must be in [0, 1); got {decay}")
        self.decay = float(decay)
        self.value: float | None = None

    def update(self, value: float) -> float:
        """Returns the baseline before this update (the first call returns `value` itself)."""
        value = float(value)
        if self.value is None:
            self.value = value
            return value
        before = self.value
        self.value = self.decay * before + (1 - self.decay) * value
        return before

    def state_dict(self) -> dict:
        return {"decay": self.decay, "value": self.value}

    def load_state_dict(self, state: dict) -> None:
        self.decay = float(state["decay"])
        self.value = None if state["value"] is None else float(state["value"])
