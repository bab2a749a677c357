"""Training and evaluation throughput of one network on the current device.

Prints one JSON line: train_images_per_s, eval_images_per_s, the settings,
the compile and warm-up time, peak CUDA memory (on CUDA), and the hardware
and library versions. Data are random uint8 images kept on the device and
augmented there, as in `autospace train`; on CUDA, bf16 autocast,
channels_last, fused SGD and torch.compile (mode default) are on by default,
as in `autospace train`. Issue 6 target 1: >= 100k images/s on one H100 for
a network of <= 100M MAdds (mobilenetv2_cifar: 88M).

    python bench/train_speed.py configs/archs/mobilenetv2_cifar.json --batch-size 512
    python bench/train_speed.py configs/archs/mobilenetv2_cifar.json --batch-size 1024 --compile reduce-overhead
"""

from __future__ import annotations

import argparse
import json
import time

import torch
import torch.nn.functional as functional

from autospace.arch import load_arch
from autospace.runtime.compiled import COMPILE_CHOICES, maybe_compile, resolve_compile
from autospace.cost import network_cost
from autospace.data import augment_batch, normalize_batch
from autospace.runtime.device import hardware_info, resolve_channels_last, resolve_device, resolve_precision
from autospace.nn import build_network
from autospace.train.optim import make_optimizer


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("arch", nargs="?", default="configs/archs/mobilenetv2_cifar.json")
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--steps", type=int, default=50, help="timed training (and evaluation) steps")
    parser.add_argument("--warmup", type=int, default=5,
                        help="untimed steps first (they include compilation and cuDNN autotuning)")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--precision", default="auto")
    parser.add_argument("--channels-last", default="auto", choices=("auto", "true", "false"))
    parser.add_argument("--compile", default="auto", choices=COMPILE_CHOICES,
                        help="torch.compile mode (auto: default on CUDA, off on CPU)")
    parser.add_argument("--cudnn-benchmark", action="store_true", help="let cuDNN time its algorithms first")
    args = parser.parse_args()

    device = resolve_device(args.device)
    autocast_dtype = resolve_precision(args.precision, device)
    channels_last = resolve_channels_last(
        {"auto": "auto", "true": True, "false": False}[args.channels_last], device)
    compile_mode = resolve_compile(args.compile, device)
    if args.cudnn_benchmark:
        torch.backends.cudnn.benchmark = True  # not what `autospace train` does; for comparison
    network = load_arch(args.arch)
    torch.manual_seed(0)
    model = build_network(network).to(device)
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    optimizer = make_optimizer(model, lr=0.01, momentum=0.9, nesterov=True, weight_decay=5e-5)
    step_model = maybe_compile(model, args.compile, device)
    generator = torch.Generator(device=device).manual_seed(0)
    shape = (args.batch_size * 4, network.in_channels, network.resolution, network.resolution)
    images = torch.randint(0, 256, shape, dtype=torch.uint8, device=device, generator=generator)
    labels = torch.randint(0, network.num_classes, (shape[0],), device=device, generator=generator)
    mean, std = (0.5,) * network.in_channels, (0.25,) * network.in_channels

    def train_step(index: int) -> torch.Tensor:
        chosen = slice((index % 4) * args.batch_size, (index % 4 + 1) * args.batch_size)
        inputs = normalize_batch(augment_batch(images[chosen], generator), mean, std, channels_last=channels_last)
        with torch.autocast(device.type, dtype=autocast_dtype, enabled=autocast_dtype is not None):
            logits = step_model(inputs)
        loss = functional.cross_entropy(logits.float(), labels[chosen], label_smoothing=0.1)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        return loss.detach()

    # Warm-up: compilation (when on), cuDNN autotuning and the allocator's first growth.
    model.train()
    start = time.perf_counter()
    for index in range(args.warmup):
        train_step(index)
    synchronize(device)
    train_warmup_seconds = time.perf_counter() - start
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    start = time.perf_counter()
    losses = [train_step(index) for index in range(args.steps)]
    synchronize(device)
    train_seconds = time.perf_counter() - start
    train_peak = torch.cuda.max_memory_allocated(device) if device.type == "cuda" else None
    final_loss = float(losses[-1]) if losses else None

    model.train(False)
    with torch.no_grad():
        inputs = normalize_batch(images[: args.batch_size], mean, std, channels_last=channels_last)
        start = time.perf_counter()
        for _ in range(args.warmup):
            with torch.autocast(device.type, dtype=autocast_dtype, enabled=autocast_dtype is not None):
                step_model(inputs)
        synchronize(device)
        eval_warmup_seconds = time.perf_counter() - start
        start = time.perf_counter()
        for _ in range(args.steps):
            with torch.autocast(device.type, dtype=autocast_dtype, enabled=autocast_dtype is not None):
                step_model(inputs)
        synchronize(device)
        eval_seconds = time.perf_counter() - start

    cost = network_cost(network)
    hardware = hardware_info(device)
    print(json.dumps({
        "bench": "train_speed", "arch": args.arch, "params": cost.params, "madds": cost.madds,
        "batch_size": args.batch_size, "steps": args.steps, "warmup_steps": args.warmup,
        "train_images_per_s": round(args.batch_size * args.steps / train_seconds, 1),
        "eval_images_per_s": round(args.batch_size * args.steps / eval_seconds, 1),
        "train_step_ms": round(1000 * train_seconds / args.steps, 3),
        "train_warmup_s": round(train_warmup_seconds, 2), "eval_warmup_s": round(eval_warmup_seconds, 2),
        "final_loss": final_loss,
        "train_peak_memory_mib": None if train_peak is None else round(train_peak / 2**20, 1),
        "precision": "fp32" if autocast_dtype is None else str(autocast_dtype).removeprefix("torch."),
        "channels_last": channels_last, "compile": compile_mode or "off", "cudnn_benchmark": args.cudnn_benchmark,
        "fused_optimizer": bool(optimizer.defaults.get("fused")),
        "device": hardware["device_name"], "hardware": hardware,
    }))


if __name__ == "__main__":
    main()
