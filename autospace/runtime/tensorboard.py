"""Optional TensorBoard scalars beside the JSONL logs (`--tensorboard`, `tensorboard=true`).

Each run loop hands the same record it appends to its JSONL log; every numeric
field becomes a scalar `PREFIX/field` at `step`. The writer lives in
RUN_DIR/tensorboard. TensorBoard is an optional dependency (`pip install tensorboard`).
"""

from __future__ import annotations

import math
from pathlib import Path

from autospace.errors import AutospaceError


class ScalarMirror:
    """Writes numeric fields of log records as TensorBoard scalars; does nothing when disabled."""

    def __init__(self, run_dir: str | Path, enabled: bool):
        self.writer = None
        if not enabled:
            return
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError:
            raise AutospaceError("tensorboard=true needs the tensorboard package: pip install tensorboard "
                                 "(or run without --tensorboard; the JSONL logs hold the same figures)") from None
        self.writer = SummaryWriter(log_dir=str(Path(run_dir) / "tensorboard"))

    def log(self, prefix: str, record: dict, step: int) -> None:
        if self.writer is None:
            return
        for key, value in record.items():
            if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
                self.writer.add_scalar(f"{prefix}/{key}", value, step)
        self.writer.flush()

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
