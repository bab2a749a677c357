"""The training loop: one function, read top to bottom (nanoGPT / airbench style).

Run folder (`run_dir`) contents:
- config.yaml          the resolved TrainConfig (written at the start)
- arch.json            the network trained (written at the start, with params and MAdds)
- metrics.jsonl        one record per finished epoch
- checkpoint.pt        state after the newest finished epoch; checkpoint.prev.pt the one before
- model.pt             final weights (state_dict, CPU tensors)       } written at the end
- metrics.json         final figures (test_top1 in %, cost, timing)  }

Resuming loads the newest readable checkpoint and continues from its epoch
boundary; every random stream (weight init / dropout, shuffling and
augmentation) is restored, so on CPU the final weights equal an
uninterrupted run's bit for bit.

Under torchrun (`autospace.runtime.distributed`) every rank draws the same global
batches and trains on its slice; gradients are averaged and BN sees the
global batch, so the run equals a one-process run with the same batch_size up
to floating-point reduction order. Rank 0 alone writes the run folder; every
rank reads the checkpoint on --resume.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import torch
import torch.nn.functional as functional

from autospace.arch import Network, arch_to_dict, save_arch
from autospace.cost import network_cost
from autospace.data import ImageDataset, apply_augmentation, draw_augmentation, epoch_batches, normalize_batch
from autospace.data.preprocessing import preprocessing_record
from autospace.errors import AutospaceError
from autospace.nn import build_network
from autospace.runtime.atomic import atomic_torch_save, atomic_write_json, atomic_write_text
from autospace.runtime.checkpoints import require_finite_loss
from autospace.runtime.compiled import maybe_compile, resolve_compile
from autospace.runtime.config import config_differences, config_from_dict, config_to_dict
from autospace.runtime.device import hardware_info
from autospace.runtime.distributed import all_reduce_sum, average_gradients, shard_batch, sync_batch_layers
from autospace.runtime.learning_rates import learning_rate_keys
from autospace.runtime.memory import COPIES_FOR_TRAINING, require_network_fits, require_parameters_fit
from autospace.runtime.run import open_run
from autospace.train.checkpoint import CHECKPOINT_FORMAT, REQUIRED_KEYS
from autospace.train.config import RESUME_FREE_KEYS, TrainConfig
from autospace.train.evaluate import evaluate
from autospace.train.optim import learning_rate_at, make_optimizer


def train_network(network: Network, dataset: ImageDataset, config: TrainConfig, run_dir: Path,
                  resume: bool = False, stop_after_epoch: int | None = None) -> dict:
    """Train `network` from scratch on `dataset`; returns the final metrics (also in metrics.json).

    `resume=True` continues from the newest readable checkpoint in `run_dir`
    (a fresh start when there is none). `stop_after_epoch=N` returns right
    after epoch N's checkpoint, as if the process were killed (for tests).
    """
    _check_data_fits(network, dataset)
    cost = network_cost(network)
    # Everything needed to resume is in the folder from the first second on.
    run = open_run(config, run_dir, resume, "train", CHECKPOINT_FORMAT,
                   f"lower lr (now {config.lr}) or raise warmup_epochs, then --resume",
                   stop_after={"epoch": stop_after_epoch}, required_keys=REQUIRED_KEYS, weights_only=True,
                   files={"arch.json": lambda path: save_arch(path, network, {"params": cost.params,
                                                                              "madds": cost.madds})},
                   check_device=lambda device: (
                       require_parameters_fit(cost.params, device, "the network", COPIES_FOR_TRAINING),
                       require_network_fits(network, config.batch_size, device, "the network", training=True,
                                            parameter_count=cost.params)))
    device, dist, guard = run.device, run.distributed, run.guard
    autocast_dtype, channels_last = run.autocast_dtype, run.channels_last
    memory_format = torch.channels_last if channels_last else torch.contiguous_format

    # Subsample on the CPU before the move, so the chosen images do not depend on the device.
    if config.train_subset is not None or config.test_subset is not None:
        dataset = dataset.subset(config.train_subset, config.test_subset, torch.Generator().manual_seed(config.seed))
    # The whole set goes to the device once, as uint8 (4x smaller than float); batches are
    # gathered, augmented and normalised there, so no DataLoader or host copy per step.
    data = dataset.to(device)
    steps_per_epoch = data.train_count // config.batch_size
    if steps_per_epoch == 0:
        raise AutospaceError(f"batch_size {config.batch_size} is larger than the {data.train_count} training images; "
                             f"lower batch_size or use more images")
    total_steps = config.epochs * steps_per_epoch
    warmup_steps = round(config.warmup_epochs * steps_per_epoch)

    # Weight init and dropout draw from torch's global generator; fork it so the caller's
    # random state is untouched, and seed it so the same seed gives the same network.
    cuda_devices = [device.index if device.index is not None else torch.cuda.current_device()] \
        if device.type == "cuda" else []
    with torch.random.fork_rng(devices=cuda_devices):
        torch.manual_seed(config.seed)
        model = sync_batch_layers(dist, build_network(network).to(device=device, memory_format=memory_format))
        # One generator, on the data's device, for shuffling and augmentation: draws never leave the device.
        generator = torch.Generator(device=device).manual_seed(config.seed)
        optimizer = make_optimizer(model, config.lr, config.momentum, config.nesterov, config.weight_decay)
        # Compiled only where the graph is fixed: this network's training and evaluation steps.
        forward = maybe_compile(model, config.compile, device)

        run.track("model", model)
        run.track("optimizer", optimizer)
        run.track("rng", save=lambda: {"data": generator.get_state(), "torch": torch.get_rng_state(),
                                       "cuda": torch.cuda.get_rng_state(device) if device.type == "cuda" else None},
                  load=lambda rng: _set_rng_state(rng, generator, device))
        checkpoint = run.restore(check=lambda found, path: _check_resumable(found, path, network, config,
                                                                             steps_per_epoch))
        start_epoch, history = (0, []) if checkpoint is None else (checkpoint["epoch"], list(checkpoint["metrics"]))
        # metrics.jsonl holds exactly the checkpointed epochs: lines logged after the checkpoint
        # (a kill between the two writes) are dropped, and a missing line is restored.
        if run.is_main:
            atomic_write_text(run.out / "metrics.jsonl", "".join(_json_line(record) for record in history))

        step = start_epoch * steps_per_epoch
        progress = run.progress(total_steps, step, unit="step")
        for epoch in range(start_epoch, config.epochs):
            model.train()
            epoch_start = time.perf_counter()
            # Running sums stay on the device: a .item() per step would stall the GPU queue.
            loss_sum = torch.zeros((), dtype=torch.float32, device=device)
            correct = torch.zeros((), dtype=torch.int64, device=device)
            seen = 0
            for batch_index, indices in enumerate(epoch_batches(data.train_count, config.batch_size, generator,
                                                                drop_last=True)):
                # Every rank draws the same global batch and its augmentation, and keeps its slice.
                local = shard_batch(dist, indices)
                images, labels = data.train_images[local], data.train_labels[local]
                if config.augment:
                    offsets, flips = draw_augmentation(indices.shape[0], config.crop_padding, generator, device,
                                                       config.flip)
                    images = apply_augmentation(images, shard_batch(dist, offsets), shard_batch(dist, flips),
                                                config.crop_padding)
                inputs = normalize_batch(images, data.mean, data.std, channels_last=channels_last)
                lr = learning_rate_at(step, total_steps, warmup_steps, config.lr)
                for group in optimizer.param_groups:
                    group["lr"] = lr
                guard.remember(model)
                with torch.autocast(device.type, dtype=autocast_dtype, enabled=autocast_dtype is not None):
                    logits = forward(inputs)
                # fp32 loss: bf16 log-softmax is too coarse for label smoothing's small targets.
                loss = functional.cross_entropy(logits.float(), labels, label_smoothing=config.label_smoothing)
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                average_gradients(dist, model.parameters())
                step += 1
                progress.update(1)
                if not guard.accept(loss, (p.grad for p in model.parameters()), f"step {step} (epoch {epoch + 1})"):
                    continue
                optimizer.step()
                loss_sum += loss.detach() * labels.shape[0]
                correct += (logits.detach().argmax(dim=1) == labels).sum()
                seen += labels.shape[0]
                if run.show and (batch_index + 1) % config.log_every == 0 and seen:
                    # The only mid-epoch sync, and only when someone is watching.
                    rate = seen / (time.perf_counter() - epoch_start)
                    progress.set_postfix_str(f"epoch {epoch + 1}/{config.epochs} loss {loss_sum.item() / seen:.3f} "
                                             f"acc {correct.item() / seen:.3f} {rate:.0f} img/s lr {lr:.4f}")
            # The figures of the global batch, the same on every rank (one all-reduce per epoch).
            totals = all_reduce_sum(dist, torch.stack([loss_sum.double(), correct.double(),
                                                       torch.tensor(float(seen), dtype=torch.float64, device=device)]))
            loss_total, correct_total, seen = totals.tolist()  # syncs the device
            train_loss = loss_total / seen if seen else float("nan")
            train_accuracy = correct_total / seen if seen else float("nan")
            train_seconds = time.perf_counter() - epoch_start
            require_finite_loss(train_loss, "train", f"epoch {epoch + 1}", run.out,
                                f"lower lr (now {config.lr}) or raise warmup_epochs, then --resume")

            test_loss = test_accuracy = None
            if (epoch + 1) % config.eval_every == 0 or epoch + 1 == config.epochs:
                test_loss, test_accuracy = evaluate(forward, data.test_images, data.test_labels, data.mean, data.std,
                                                    config.eval_batch_size, autocast_dtype, channels_last,
                                                    distributed=dist)
            record = {
                "epoch": epoch + 1, "step": step, "images_seen": step * config.batch_size,
                "train_loss": train_loss, "train_accuracy": train_accuracy,
                "test_loss": test_loss, "test_accuracy": test_accuracy,
                "lr": lr, "images_per_second": seen / train_seconds,
                "epoch_seconds": time.perf_counter() - epoch_start,
                "elapsed_seconds": run.elapsed(),
            }
            if guard.enabled:
                record["skipped_nonfinite"] = guard.skipped
            history.append(record)
            # Log line first, checkpoint second: resume trims any line the checkpoint lacks.
            run.log("metrics.jsonl", record, "train", epoch + 1)
            run.checkpoint(epoch=epoch + 1, step=step, metrics=history, config=config_to_dict(config),
                           arch=arch_to_dict(network))
            if run.show:
                shown = "-" if test_accuracy is None else f"{test_accuracy:.4f}"
                progress.write(f"epoch {epoch + 1}/{config.epochs} train loss {train_loss:.4f} "
                               f"acc {train_accuracy:.4f} test acc {shown} {record['images_per_second']:.0f} img/s")
            if run.stop_requested(epoch=epoch + 1):
                run.close()
                run.barrier()
                return {"stopped_after_epoch": epoch + 1, "history": history}

    final = history[-1]
    metrics = {
        "test_top1": 100.0 * final["test_accuracy"],
        "test_accuracy": final["test_accuracy"],
        "test_loss": final["test_loss"],
        "train_loss": final["train_loss"],
        "train_accuracy": final["train_accuracy"],
        "params": cost.params,
        "madds": cost.madds,
        "wall_time_s": final["elapsed_seconds"],
        "epochs": config.epochs,
        "steps": final["step"],
        "images_per_second": sum(r["images_per_second"] for r in history) / len(history),
        "train_images": data.train_count,
        "test_images": data.test_count,
        "data": dataset.name,
        "preprocessing": preprocessing_record(dataset),  # what an export tells its users (autospace.export)
        "device": str(device),
        "precision": "fp32" if autocast_dtype is None else str(autocast_dtype).removeprefix("torch."),
        "channels_last": channels_last,
        "compile": resolve_compile(config.compile, device) or "off",
        "hardware": hardware_info(device),
        "seed": config.seed,
        "torch_version": torch.__version__,
        "world_size": dist.world_size,
    }
    run.finish({"model": model.state_dict(), "optimizer": optimizer.state_dict()["state"]},
               "the trained weights and optimiser state", [
                   lambda: atomic_torch_save(run.out / "model.pt", {key: value.detach().cpu().contiguous()
                                                                    for key, value in model.state_dict().items()}),
                   lambda: save_arch(run.out / "arch.json", network, {"params": cost.params, "madds": cost.madds}),
                   lambda: atomic_write_json(run.out / "metrics.json", metrics)])
    return metrics


def _set_rng_state(rng: dict, generator: torch.Generator, device: torch.device) -> None:
    generator.set_state(rng["data"])
    torch.set_rng_state(rng["torch"])
    if device.type == "cuda" and rng.get("cuda") is not None:
        torch.cuda.set_rng_state(rng["cuda"], device)


def _json_line(record: dict) -> str:
    return json.dumps(record) + "\n"


def _check_data_fits(network: Network, dataset: ImageDataset) -> None:
    for what, wanted, found in (("classes", network.num_classes, dataset.num_classes),
                                ("input channels", network.in_channels, dataset.channels),
                                ("resolution", network.resolution, dataset.resolution)):
        if wanted != found:
            raise AutospaceError(f"the architecture expects {wanted} {what} but data set {dataset.name!r} has "
                                 f"{found}; build the architecture for this data set")


def _check_resumable(checkpoint: dict, path: Path, network: Network, config: TrainConfig,
                     steps_per_epoch: int) -> None:
    if checkpoint.get("arch") != arch_to_dict(network):
        raise AutospaceError(f"{path} was written for a different architecture; resume with the run's "
                             f"arch.json or start a new run in another folder")
    saved = config_from_dict(TrainConfig, checkpoint.get("config", {}), str(path))
    changed = {key: values for key, values in config_differences(saved, config).items()
               if key not in RESUME_FREE_KEYS + learning_rate_keys(TrainConfig)}
    if changed:
        listing = ", ".join(f"{key}: {old!r} -> {new!r}" for key, (old, new) in changed.items())
        raise AutospaceError(f"cannot resume {path.parent} with a different config ({listing}); resume with the "
                             f"run's saved config.yaml, or start a new run in another folder")
    if checkpoint["step"] != checkpoint["epoch"] * steps_per_epoch:
        raise AutospaceError(f"{path} is at step {checkpoint['step']} after {checkpoint['epoch']} epochs, which does "
                             f"not fit {steps_per_epoch} steps per epoch: the data set changed; use the same data")
