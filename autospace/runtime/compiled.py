"""`torch.compile` for the parts with a fixed graph: final training, evaluation, BN recalibration.

A supernet changes its path every step, so whole-step graphs do not pay there;
a stand-alone network runs the same graph at every step, and compiling it
fuses batch norm, activations and the many small depthwise kernels (and, in
mode reduce-overhead, replays the whole step as a CUDA graph).

The setting (`compile` in TrainConfig, `--compile` in the bench scripts):
- "auto": on (mode "default") on CUDA, off elsewhere: on a CPU the minutes of
  compilation rarely pay back, and tests stay fast.
- "off" (or false): the eager module.
- "default" (or true), "reduce-overhead", "max-autotune": that torch.compile mode.

Wrapping the same module again (an evaluation every epoch) costs nothing:
dynamo keeps the compiled graphs with the module's code and finds them again.
Shapes are compiled static (`dynamic=False`): training drops the last partial
batch and `evaluate` pads it, so there is one graph per batch size and mode.
"""

from __future__ import annotations

import torch
from torch import nn

from autospace.errors import AutospaceError

COMPILE_CHOICES = ("auto", "off", "default", "reduce-overhead", "max-autotune")

# Dynamo keeps at most this many graphs per code object, and every network of
# one class shares its forward's code: a process training many different
# networks (bench/space_vs_manual.py, 12 runs, 2 graphs each) would pass
# torch's default of 8 and silently fall back to eager.
RECOMPILE_LIMIT = 64


def resolve_compile(setting: str | bool, device: torch.device | str) -> str | None:
    """The torch.compile mode for `setting` on `device`, or None for eager."""
    if setting is True:
        return "default"
    if setting is False or setting is None:
        return None
    text = str(setting).strip().lower()
    if text == "auto":
        return "default" if torch.device(device).type == "cuda" else None
    if text in ("off", "false", "none", "no"):
        return None
    if text in ("true", "on", "yes"):
        return "default"
    if text in COMPILE_CHOICES:
        return text
    raise AutospaceError(f"compile is {setting!r}; valid settings: {', '.join(COMPILE_CHOICES)} (or true/false)")


def is_compiled(module) -> bool:
    """Whether `module` is a torch.compile wrapper (an OptimizedModule)."""
    return isinstance(module, torch._dynamo.eval_frame.OptimizedModule)


def original_module(module: nn.Module) -> nn.Module:
    """The eager module behind a compiled wrapper (the module itself when not compiled)."""
    return module._orig_mod if is_compiled(module) else module


def maybe_compile(module: nn.Module, setting: str | bool = "auto",
                  device: torch.device | str | None = None) -> nn.Module:
    """`module` compiled with the mode `setting` resolves to on `device`, or `module` itself.

    `device` defaults to the device of the module's first parameter (CPU when
    it has none). The result shares parameters, buffers and train/eval state
    with `module`; a state_dict should still be taken from `module`.
    """
    if is_compiled(module):
        return module
    if device is None:
        first = next(module.parameters(), None)
        device = first.device if first is not None else torch.device("cpu")
    mode = resolve_compile(setting, device)
    if mode is None:
        return module
    dynamo_config = torch._dynamo.config
    dynamo_config.recompile_limit = max(dynamo_config.recompile_limit, RECOMPILE_LIMIT)
    return torch.compile(module, mode=mode, dynamic=False)
