"""Training and evaluation throughput of one network on the current device.

Prints one JSON line: train_images_per_s, eval_images_per_s, and the settings.
Data are random uint8 images kept on the device and augmented there, as in
`autospace train`; on CUDA, bf16 autocast and channels_last are on by default.

    python bench/train_speed.py configs/archs/mobilenetv2_cifar.json --batch-size 512
"""

from __future__ import annotations

import argparse
import json
import time

import torch
import torch.nn.functional as functional

from autospace.arch import load_arch
from autospace.cost import network_cost
from autospace.data import augment_batch, normalize_batch
from autospace.device import hardware_info, resolve_channels_last, resolve_device, resolve_precision
from autospace.nn import build_network
from autospace.train.optim import make_optimizer


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("arch", nargs="?", default="configs/archs/mobilenetv2_cifar.json")
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--steps", type=int, default=20, help="timed training steps")
    parser.add_argument("--warmup", type=int, default=5, help="untimed steps first")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--precision", default="auto")
    parser.add_argument("--channels-last", default="auto", choices=("auto", "true", "false"))
    parser.add_argument("--compile", action="store_true", help="torch.compile the model")
    args = parser.parse_args()

    device = resolve_device(args.device)
    autocast_dtype = resolve_precision(args.precision, device)
    channels_last = resolve_channels_last(
        {"auto": "auto", "true": True, "false": False}[args.channels_last], device)
    network = load_arch(args.arch)
    torch.manual_seed(0)
    model = build_network(network).to(device)
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    optimizer = make_optimizer(model, lr=0.01, momentum=0.9, nesterov=True, weight_decay=5e-5)
    step_model = torch.compile(model) if args.compile else model
    generator = torch.Generator(device=device).manual_seed(0)
    shape = (args.batch_size * 4, network.in_channels, network.resolution, network.resolution)
    images = torch.randint(0, 256, shape, dtype=torch.uint8, device=device, generator=generator)
    labels = torch.randint(0, network.num_classes, (shape[0],), device=device, generator=generator)
    mean, std = (0.5,) * network.in_channels, (0.25,) * network.in_channels

    def train_step(index: int) -> None:
        chosen = slice((index % 4) * args.batch_size, (index % 4 + 1) * args.batch_size)
        inputs = normalize_batch(augment_batch(images[chosen], generator), mean, std, channels_last=channels_last)
        with torch.autocast(device.type, dtype=autocast_dtype, enabled=autocast_dtype is not None):
            logits = step_model(inputs)
        loss = functional.cross_entropy(logits.float(), labels[chosen], label_smoothing=0.1)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    model.train()
    for index in range(args.warmup):
        train_step(index)
    synchronize(device)
    start = time.perf_counter()
    for index in range(args.steps):
        train_step(index)
    synchronize(device)
    train_seconds = time.perf_counter() - start

    model.train(False)
    with torch.no_grad():
        inputs = normalize_batch(images[: args.batch_size], mean, std, channels_last=channels_last)
        for _ in range(args.warmup):
            with torch.autocast(device.type, dtype=autocast_dtype, enabled=autocast_dtype is not None):
                step_model(inputs)
        synchronize(device)
        start = time.perf_counter()
        for _ in range(args.steps):
            with torch.autocast(device.type, dtype=autocast_dtype, enabled=autocast_dtype is not None):
                step_model(inputs)
        synchronize(device)
        eval_seconds = time.perf_counter() - start

    cost = network_cost(network)
    print(json.dumps({
        "bench": "train_speed", "arch": args.arch, "params": cost.params, "madds": cost.madds,
        "batch_size": args.batch_size, "steps": args.steps,
        "train_images_per_s": round(args.batch_size * args.steps / train_seconds, 1),
        "eval_images_per_s": round(args.batch_size * args.steps / eval_seconds, 1),
        "precision": str(autocast_dtype or "fp32"), "channels_last": channels_last, "compile": args.compile,
        "device": hardware_info(device).get("device_name", str(device)),
    }))


if __name__ == "__main__":
    main()
