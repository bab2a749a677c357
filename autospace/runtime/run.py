"""One run's lifecycle, the same for every loop (train, search, evolve): the plumbing, so that a
loop reads top to bottom as its algorithm.

    run = open_run(config, out, resume, "search spos", CHECKPOINT_FORMAT, stop_after={"epoch": 2})
    run.track("supernet", supernet); run.track("rng", rng)        # whatever has state
    checkpoint = run.restore()                                     # None for a new run
    ...
    run.log("search.jsonl", record, "search/spos", epoch)          # JSONL + TensorBoard (rank 0)
    run.checkpoint(epoch=epoch)                                    # every tracked state, one call
    if run.stop_requested(epoch=epoch): return None                # the one hook for kill-and-resume tests
    run.finish({"supernet": supernet.state_dict()}, "the supernet", [lambda: save_arch(...)])

What it owns:
- the folder: a new run needs `out` new or empty; a resume needs it to exist, and its recipe
  unchanged: the given config may differ from config.yaml only in `RESUME_FREE_KEYS` and the
  learning-rate keys (`autospace.runtime.resume`, recorded in config.yaml); any other change is
  refused with a message naming the keys, before anything is written;
- torchrun: the process group, the device of this rank, the batch check, and the barriers
  around rank 0's writes (rank 0 alone writes files, logs and progress bars);
- config.yaml (and any other file the run needs from its first second) written at the start;
- checkpoints: `track` registers modules, optimisers, generators, streams, populations or any
  (save, load) pair; `checkpoint(**counters)` writes them all (rotating, atomic), `restore()`
  reads the newest whole checkpoint back into them in one call: first the states registered as
  rebuilds (a supernet re-created from a weight generator), then the others, each in the order
  they were tracked;
- logs: JSONL lines, TensorBoard scalars, the progress bar;
- the final writes, last, after the ranks agree on their state.
"""

from __future__ import annotations

import random
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import torch

from autospace.errors import AutospaceError
from autospace.runtime.atomic import append_jsonl, truncate_jsonl
from autospace.runtime.checkpoints import (
    checkpoint_position, load_rotating_checkpoint, require_new_run_dir, save_checkpoint,
)
from autospace.runtime.config import load_config, require_sane_settings, save_config
from autospace.runtime.device import resolve_channels_last, resolve_device, resolve_precision
from autospace.runtime.distributed import (
    Distributed, barrier, check_same_on_all_ranks, init_distributed, require_divisible_batch,
)
from autospace.runtime.nonfinite import NonfiniteSteps
from autospace.runtime.resume import learning_rate_changes, record_learning_rate_changes
from autospace.runtime.tensorboard import ScalarMirror


@dataclass
class Run:
    config: Any
    out: Path
    resume: bool
    stage: str                        # "train", "search spos", "evolve", ... (messages)
    checkpoint_format: str
    device: torch.device
    distributed: Distributed
    guard: NonfiniteSteps              # --skip-nonfinite
    stop_after: dict = field(default_factory=dict)  # tests: {"epoch": 2} stops as if killed there
    required_keys: tuple = ()
    weights_only: bool = False
    started: float = field(default_factory=time.perf_counter)
    checkpoints_written: int = 0
    checkpoint_path: Path | None = None  # where `restore` read from
    _tracked: list = field(default_factory=list)
    _bars: list = field(default_factory=list)
    scalars: ScalarMirror | None = None

    # -- the device -----------------------------------------------------------------------------
    @property
    def is_main(self) -> bool:
        return self.distributed.is_main

    @property
    def autocast_dtype(self):
        return resolve_precision(self.config.precision, self.device)

    @property
    def channels_last(self) -> bool:
        return resolve_channels_last(self.config.channels_last, self.device)

    def barrier(self) -> None:
        barrier(self.distributed)

    def elapsed(self) -> float:
        return time.perf_counter() - self.started

    # -- state ------------------------------------------------------------------------------------
    def track(self, name: str, thing: Any = None, save: Callable[[], Any] | None = None,
              load: Callable[[Any], None] | None = None, rebuild: bool = False, optional: bool = False) -> None:
        """Register state to checkpoint under `name`: a module, optimiser or anything with
        state_dict/load_state_dict, a torch.Generator, a random.Random, or a (save, load) pair.
        `rebuild`: `load` rebuilds modules (a supernet's lazily created banks draw their first weights
        from a generator): restore runs it before every other load, so the generators it draws from are
        restored after it. `optional`: a checkpoint of an older version may lack it (nothing is loaded)."""
        if save is None:
            if isinstance(thing, torch.Generator):
                save, load = thing.get_state, thing.set_state
            elif isinstance(thing, random.Random):
                save, load = thing.getstate, thing.setstate
            elif hasattr(thing, "state_dict"):
                save, load = thing.state_dict, thing.load_state_dict
            else:
                raise TypeError(f"cannot checkpoint {name!r} ({type(thing).__name__}); pass save= and load=")
        self._tracked.append((name, save, load, rebuild, optional))

    def checkpoint(self, **counters) -> None:
        """Write every tracked state with `counters` (epoch, step, ...) as the newest checkpoint (rank 0)."""
        state = {"format": self.checkpoint_format, **counters}
        state.update((name, save()) for name, save, *_ in self._tracked)
        state["elapsed_seconds"] = self.elapsed()
        state["nonfinite"] = self.guard.state_dict()
        if self.is_main:
            save_checkpoint(self.out, state)
        self.checkpoints_written += 1

    def restore(self, check: Callable[[dict, Path], None] | None = None) -> dict | None:
        """On resume, the newest whole checkpoint loaded into the tracked state (the rebuilds first, then
        the rest, each in tracking order), the clock and the non-finite guard; returns it (None for a new
        run or one killed before its first checkpoint). `check(checkpoint, path)` may refuse it before
        anything is loaded."""
        found = None
        if self.resume:
            found = load_rotating_checkpoint(self.out, self.checkpoint_format, self.required_keys,
                                             weights_only=self.weights_only, with_path=True)
        if found is not None:
            checkpoint, self.checkpoint_path = found
            if check is not None:
                check(checkpoint, self.checkpoint_path)
            for rebuilding in (True, False):
                for name, _, load, rebuild, optional in self._tracked:
                    if rebuild == rebuilding and not (optional and name not in checkpoint):
                        load(checkpoint[name])
            self.started -= checkpoint["elapsed_seconds"]
            self.guard.load_state_dict(checkpoint.get("nonfinite"))
        self.barrier()  # every rank has read the checkpoint before rank 0 writes again
        return None if found is None else found[0]

    def stop_requested(self, **position) -> bool:
        """True when a test asked the run to stop at this position (as if it were killed here)."""
        return any(key in self.stop_after and self.stop_after[key] is not None and value >= self.stop_after[key]
                   for key, value in position.items())

    # -- logs ---------------------------------------------------------------------------------------
    def log(self, name: str, record: dict, tensorboard_prefix: str | None = None, step: int = 0,
            figures: dict | None = None) -> None:
        """One JSONL line in out/name and, with tensorboard on, its `figures` (default: the record's
        numbers) as scalars under `tensorboard_prefix` (rank 0)."""
        if not self.is_main:
            return
        append_jsonl(self.out / name, record)
        if tensorboard_prefix is not None:
            self.scalars.log(tensorboard_prefix, record if figures is None else figures, step)

    def keep_log(self, name: str, count: int) -> None:
        """Keep the first `count` lines of out/name: those the checkpoint resumed from knows."""
        if self.is_main:
            truncate_jsonl(self.out / name, count)

    @property
    def show(self) -> bool:
        """Whether this process shows progress (rank 0, config.progress on)."""
        return bool(self.config.progress) and self.is_main

    def progress(self, total: int, initial: int = 0, desc: str | None = None, **options):
        """A progress bar (a silent one unless `show`; plain lines when stderr is not a terminal), closed
        by `close`."""
        from autospace.runtime.progress import open_progress

        bar = open_progress(total, initial, desc, show=self.show, file=sys.stderr, **options)
        self._bars.append(bar)
        return bar

    def close(self) -> None:
        for bar in self._bars:
            bar.close()
        self._bars.clear()
        self.scalars.close()

    # -- the end ------------------------------------------------------------------------------------
    def finish(self, agreement: dict | None, what: str, writes: list[Callable[[], None]]) -> None:
        """Close logs and bars, check every rank holds the same `agreement` (None: the loop checked),
        then let rank 0 make the final `writes` in order (the last one is what a reader takes as
        "stage done")."""
        self.close()
        if agreement is not None:
            check_same_on_all_ranks(self.distributed, agreement, what)
        if self.is_main:
            for write in writes:
                write()
        self.barrier()  # whoever reads the run folder next (autospace run) finds it complete


def open_run(config, out: str | Path, resume: bool, stage: str, checkpoint_format: str, advice: str,
             stop_after: dict | None = None, files: dict[str, Callable[[Path], None]] | None = None,
             check_device: Callable[[torch.device], None] | None = None, required_keys: tuple = (),
             weights_only: bool = False) -> Run:
    """Open the run folder `out` for `config`: new (new or empty folder) or resumed (same recipe),
    the process group and device, config.yaml and `files` ({name: write(path)}) written by rank 0.
    `advice` completes the non-finite-loss message; `check_device` may refuse the device before
    any file is written."""
    out = Path(out)
    require_sane_settings(config)  # a config built in code skips load_config's range checks
    if not resume:
        require_new_run_dir(out)
    elif not out.is_dir():
        raise AutospaceError(f"cannot resume: run folder {out} does not exist")
    changes = {}
    if resume and (out / "config.yaml").exists():  # refuses a changed recipe, naming the keys
        changes = learning_rate_changes(load_config(type(config), out / "config.yaml"), config, out)
    device = resolve_device(config.device)
    distributed = init_distributed(device.type)
    device = distributed.local_device(device)
    require_divisible_batch(distributed, config.batch_size)
    if check_device is not None:
        check_device(device)
    barrier(distributed)  # every rank has looked at the folder before rank 0 writes into it
    if distributed.is_main:
        out.mkdir(parents=True, exist_ok=True)
        if changes:
            record_learning_rate_changes(out, config, changes, checkpoint_position(out))
        elif not (out / "config.yaml").exists():  # a new run (or one killed before it wrote it)
            save_config(out / "config.yaml", config)
        for name, write in (files or {}).items():
            write(out / name)
    barrier(distributed)  # rank 0's files are whole before another rank reads (or tidies) the folder
    guard = NonfiniteSteps(config.skip_nonfinite, stage, out, advice, distributed)
    return Run(config=config, out=out, resume=resume, stage=stage, checkpoint_format=checkpoint_format,
               device=device, distributed=distributed, guard=guard, stop_after=dict(stop_after or {}),
               required_keys=required_keys, weights_only=weights_only,
               scalars=ScalarMirror(out, config.tensorboard and distributed.is_main))
