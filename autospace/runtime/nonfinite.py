"""`--skip-nonfinite N`: skip the few steps whose loss or gradient is not finite.

Without it (N = 0) a run checks its loss once per epoch or regeneration and
stops at the first non-finite one (`checkpoints.require_finite_loss`): no
per-step host sync. With N > 0 every step is checked before the optimiser
moves: a non-finite step is skipped (no update, and the batch-norm running
statistics its forward pass changed are put back), and the run stops with the
usual message (stage, step, last good checkpoint) at the (N+1)-th one. The
check waits for the device once per step, and under torchrun all ranks take the
same decision (one tiny all-reduce).
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterable

import torch
from torch import nn

from autospace.runtime.checkpoints import last_good_checkpoint_text
from autospace.runtime.distributed import SINGLE_PROCESS, Distributed, all_reduce_sum
from autospace.errors import AutospaceError
from autospace.runtime.learning_rates import learning_rate_hint


class NonfiniteSteps:
    """The per-step guard of one run. Usage, around every optimiser step:

        guard.remember(model)                      # before the forward pass (no-op when N = 0)
        loss = ...; loss.backward()
        if guard.accept(loss, gradients, f"step {step}"):
            optimizer.step()

    `skipped` goes into the run's checkpoints (`state_dict`), so the limit holds for the whole run.
    """

    def __init__(self, limit: int, stage: str, run_dir: str | Path, advice: str,
                 distributed: Distributed = SINGLE_PROCESS):
        if isinstance(limit, bool) or not isinstance(limit, int) or limit < 0:
            raise AutospaceError(f"skip_nonfinite is {limit!r}; it must be an integer >= 0")
        self.limit, self.stage, self.run_dir, self.advice = limit, stage, Path(run_dir), advice
        self.distributed = distributed
        self.skipped = 0
        self._saved: list[tuple[torch.Tensor, torch.Tensor]] = []

    @property
    def enabled(self) -> bool:
        return self.limit > 0

    def remember(self, model: nn.Module) -> None:
        """Copy the module's buffers (BN running statistics), to put back if this step is skipped."""
        if self.enabled:
            self._saved = [(buffer, buffer.detach().clone()) for buffer in model.buffers()]

    def accept(self, loss: torch.Tensor, gradients: Iterable[torch.Tensor | None], position: str) -> bool:
        """True when the step may update (always with N = 0); False for a skipped step."""
        if not self.enabled:
            return True
        with torch.no_grad():
            flags = [~torch.isfinite(loss.detach()).all()]
            flags += [~torch.isfinite(gradient).all() for gradient in gradients if gradient is not None]
            local = torch.stack([torch.stack(flags).any().float(), loss.detach().float().sum()])
            found = all_reduce_sum(self.distributed, local).cpu()  # the host sync of the check
        if found[0] == 0:
            self._saved = []
            return True
        with torch.no_grad():
            for buffer, saved in self._saved:
                buffer.copy_(saved)
        self._saved = []
        self.skipped += 1
        if self.skipped > self.limit:
            saved = last_good_checkpoint_text(self.run_dir)
            loss_value = float(found[1]) / self.distributed.world_size
            raise AutospaceError(
                f"{self.stage}: the loss became {loss_value} (or a gradient non-finite) at {position}; that makes "
                f"{self.skipped} non-finite steps, more than skip_nonfinite={self.limit} allows; {saved}; "
                f"{self.advice}; {learning_rate_hint(self.run_dir)}")
        return False

    def state_dict(self) -> dict:
        return {"skipped": self.skipped}

    def load_state_dict(self, state: dict | None) -> None:
        self.skipped = int((state or {}).get("skipped", 0))


__all__ = ["NonfiniteSteps"]
