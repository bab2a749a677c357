"""The ground under everything that runs: one run's lifecycle (`run`), typed configs and presets
(`config`, `resume`), the run-folder lock, atomic files and rotating checkpoints, the device,
torchrun, torch.compile, the non-finite guard, TensorBoard mirroring, bounded parsing and memory
checks. Nothing here imports a sibling package but `errors`."""
