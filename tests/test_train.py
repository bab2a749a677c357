"""Training loop: learning, run folder contents, bit-identical resume, checkpoint fallback, optimiser set-up."""

from __future__ import annotations

import json
import math
from dataclasses import replace

import pytest
import torch

from autospace.arch import InvertedResidual, Layer, Network, load_arch, save_arch
from autospace.runtime.atomic import read_jsonl
from autospace.data import synthetic_dataset
from autospace.runtime.config import load_config
from autospace.runtime.device import hardware_info, resolve_channels_last, resolve_device, resolve_precision
from autospace.errors import AutospaceError
from autospace.nn import build_network
from autospace.train import (
    CHECKPOINT_NAME, PREVIOUS_CHECKPOINT_NAME, TrainConfig, learning_rate_at, make_optimizer, train,
    train_network,
)
from autospace.train.evaluate import evaluate

TIMING_KEYS = ("images_per_second", "epoch_seconds", "elapsed_seconds")


def tiny_network(num_classes: int = 4) -> Network:
    # Dropout on, so resuming must also restore torch's global generator.
    return Network(
        layers=(Layer(InvertedResidual(kernel=3, expansion=1), 8, 1, searchable=False),
                Layer(InvertedResidual(kernel=3, expansion=3), 12, 2),
                Layer(InvertedResidual(kernel=5, expansion=3, squeeze_excite=True), 12, 1)),
        stem_channels=8, head_channels=32, num_classes=num_classes, resolution=16, dropout=0.1,
    )


@pytest.fixture(scope="module")
def dataset():
    return synthetic_dataset(train_count=192, test_count=64, num_classes=4, resolution=16, seed=1)


def quick_config(**changes) -> TrainConfig:
    base = TrainConfig(data="synthetic", epochs=3, batch_size=32, eval_batch_size=64, lr=0.1, warmup_epochs=0.5,
                       device="cpu", progress=False, seed=3)
    return replace(base, **changes)


@pytest.fixture(scope="module")
def reference_run(tmp_path_factory, dataset):
    run_dir = tmp_path_factory.mktemp("reference")
    metrics = train_network(tiny_network(), dataset, quick_config(), run_dir)
    return run_dir, metrics


def load_weights(run_dir):
    return torch.load(run_dir / "model.pt", weights_only=True)


def without_timing(records):
    return [{key: value for key, value in record.items() if key not in TIMING_KEYS} for record in records]


def test_training_learns_and_writes_the_run_folder(reference_run):
    run_dir, metrics = reference_run
    records = read_jsonl(run_dir / "metrics.jsonl")
    assert [record["epoch"] for record in records] == [1, 2, 3]
    assert records[-1]["train_loss"] < records[0]["train_loss"]
    assert records[-1]["test_accuracy"] > 0.25  # 4 balanced classes: chance is 0.25
    for key in ("train_loss", "train_accuracy", "test_loss", "test_accuracy", "lr", *TIMING_KEYS):
        assert key in records[0]
    saved = json.loads((run_dir / "metrics.json").read_text())
    assert saved == json.loads(json.dumps(metrics))
    for key in ("test_top1", "test_loss", "params", "madds", "wall_time_s", "epochs", "images_per_second",
                "device", "hardware", "seed", "torch_version"):
        assert key in saved, key
    assert saved["test_top1"] == pytest.approx(100 * records[-1]["test_accuracy"])
    assert saved["epochs"] == 3 and saved["params"] > 0 and saved["madds"] > 0 and saved["device"] == "cpu"
    assert {"device_name", "torch_version", "cuda_version", "cpu_count", "python_version"} <= set(saved["hardware"])
    assert load_arch(run_dir / "arch.json") == tiny_network()
    assert load_config(TrainConfig, run_dir / "config.yaml") == quick_config()
    assert (run_dir / CHECKPOINT_NAME).exists() and (run_dir / PREVIOUS_CHECKPOINT_NAME).exists()
    model = build_network(tiny_network())
    model.load_state_dict(load_weights(run_dir))


@pytest.mark.parametrize("stop_after, corrupt_newest", [(1, False), (2, True)])
def test_resume_equals_uninterrupted_run(tmp_path, dataset, reference_run, stop_after, corrupt_newest):
    reference_dir, _ = reference_run
    partial = train_network(tiny_network(), dataset, quick_config(), tmp_path, stop_after_epoch=stop_after)
    assert partial["stopped_after_epoch"] == stop_after and not (tmp_path / "model.pt").exists()
    assert len(read_jsonl(tmp_path / "metrics.jsonl")) == stop_after
    if corrupt_newest:
        # A newest checkpoint torn by a kill: resume falls back to checkpoint.prev.pt (epoch 1),
        # and the metrics line of epoch 2 must be dropped and recomputed.
        (tmp_path / CHECKPOINT_NAME).write_bytes(b"not a checkpoint")
    train_network(tiny_network(), dataset, quick_config(), tmp_path, resume=True)
    expected, resumed = load_weights(reference_dir), load_weights(tmp_path)
    assert expected.keys() == resumed.keys()
    for key in expected:
        assert torch.equal(expected[key], resumed[key]), key
    assert without_timing(read_jsonl(tmp_path / "metrics.jsonl")) == \
        without_timing(read_jsonl(reference_dir / "metrics.jsonl"))


def test_unreadable_checkpoints_and_changed_config_are_errors(tmp_path, dataset):
    train_network(tiny_network(), dataset, quick_config(), tmp_path, stop_after_epoch=1)
    with pytest.raises(AutospaceError, match="different config.*momentum"):
        train_network(tiny_network(), dataset, quick_config(momentum=0.5), tmp_path, resume=True)
    # The learning rate may change on resume (autospace/runtime/resume.py; the CLI records it in config.yaml).
    (tmp_path / CHECKPOINT_NAME).write_bytes(b"garbage")
    with pytest.raises(AutospaceError, match="no readable checkpoint"):
        train_network(tiny_network(), dataset, quick_config(), tmp_path, resume=True)


def test_new_run_into_non_empty_folder_is_an_error(tmp_path, dataset):
    (tmp_path / "notes.txt").write_text("someone else's run")
    with pytest.raises(AutospaceError, match="not empty.*--resume"):
        train_network(tiny_network(), dataset, quick_config(), tmp_path)
    with pytest.raises(AutospaceError, match="not empty.*--resume"):
        train(tiny_network(), quick_config(), tmp_path, dataset=dataset)


def test_train_from_files_and_resume_with_saved_config(tmp_path):
    network = replace(tiny_network(num_classes=10), resolution=16)
    save_arch(tmp_path / "arch.json", network)
    config = quick_config(data="synthetic:64,32", epochs=2, batch_size=32, train_subset=48, test_subset=20)
    out = tmp_path / "run"
    with pytest.raises(AutospaceError, match="resolution"):
        train(tmp_path / "arch.json", config, out)  # synthetic images are 32 px, the arch 16 px
    save_arch(tmp_path / "arch.json", replace(network, resolution=32))
    metrics = train(tmp_path / "arch.json", config, out)
    assert metrics["train_images"] == 48 and metrics["test_images"] == 20
    # Resuming a finished run without arch or config reads both from the folder and changes nothing.
    again = train(None, None, out, resume=True)
    assert again["test_loss"] == metrics["test_loss"]
    with pytest.raises(AutospaceError, match="different config.*epochs"):
        train(None, replace(config, epochs=3), out, resume=True)
    train(None, replace(config, progress=True, log_every=1), out, resume=True)  # free keys may change


def test_weight_decay_skips_batch_norm_and_biases():
    model = build_network(tiny_network())
    optimizer = make_optimizer(model, lr=0.1, momentum=0.9, nesterov=True, weight_decay=5e-4)
    decay, no_decay = optimizer.param_groups
    assert decay["weight_decay"] == 5e-4 and no_decay["weight_decay"] == 0.0
    decayed = {id(parameter) for parameter in decay["params"]}
    batch_norm_and_bias = set()
    for module in model.modules():
        if isinstance(module, torch.nn.modules.batchnorm._BatchNorm):
            batch_norm_and_bias |= {id(module.weight), id(module.bias)}
        elif getattr(module, "bias", None) is not None and isinstance(module.bias, torch.nn.Parameter):
            batch_norm_and_bias.add(id(module.bias))
    assert batch_norm_and_bias and not (batch_norm_and_bias & decayed)
    assert {id(p) for p in no_decay["params"]} == batch_norm_and_bias
    assert len(decay["params"]) + len(no_decay["params"]) == len(list(model.parameters()))
    assert optimizer.defaults["nesterov"] is True and optimizer.defaults["momentum"] == 0.9


def test_learning_rate_schedule_warmup_then_cosine():
    total, warmup, peak = 100, 10, 0.2
    assert learning_rate_at(0, total, warmup, peak) == pytest.approx(0.02)
    assert learning_rate_at(4, total, warmup, peak) == pytest.approx(0.1)
    assert learning_rate_at(9, total, warmup, peak) == pytest.approx(0.2)
    assert learning_rate_at(10, total, warmup, peak) == pytest.approx(0.2)
    assert learning_rate_at(55, total, warmup, peak) == pytest.approx(0.1)  # halfway through the cosine
    assert learning_rate_at(32, total, warmup, peak) == pytest.approx(0.1 * (1 + math.cos(math.pi * 22 / 90)))
    assert learning_rate_at(99, total, warmup, peak) == pytest.approx(0.1 * (1 + math.cos(math.pi * 89 / 90)))
    assert learning_rate_at(5, total, 0, peak) == pytest.approx(0.1 * (1 + math.cos(math.pi * 5 / 100)))


def test_recorded_learning_rates_follow_the_schedule(reference_run):
    run_dir, _ = reference_run
    steps_per_epoch, total = 192 // 32, 3 * 192 // 32
    for record in read_jsonl(run_dir / "metrics.jsonl"):
        step = record["epoch"] * steps_per_epoch - 1  # the last step of the epoch
        assert record["lr"] == pytest.approx(learning_rate_at(step, total, 3, 0.1))


def test_evaluate_restores_mode_and_reports_fractions(dataset):
    model = build_network(tiny_network())
    model.train()
    loss, accuracy = evaluate(model, dataset.test_images, dataset.test_labels, dataset.mean, dataset.std,
                              batch_size=24)
    assert model.training and 0.0 <= accuracy <= 1.0 and loss > 0
    model.eval()
    again = evaluate(model, dataset.test_images, dataset.test_labels, dataset.mean, dataset.std, batch_size=64)
    assert not model.training and again[0] == pytest.approx(loss, rel=1e-5)


def test_device_and_precision_resolution():
    assert resolve_device("cpu") == torch.device("cpu")
    assert resolve_precision("auto", torch.device("cpu")) is None
    assert resolve_precision("bf16", torch.device("cpu")) is torch.bfloat16
    assert resolve_channels_last("auto", torch.device("cpu")) is True  # oneDNN runs NHWC faster
    with pytest.raises(AutospaceError, match="valid devices"):
        resolve_device("tpu")
    with pytest.raises(AutospaceError, match="valid precisions"):
        resolve_precision("fp8", torch.device("cpu"))
    if not torch.cuda.is_available():
        assert resolve_device("auto") == torch.device("cpu")
        with pytest.raises(AutospaceError, match="CUDA is not available"):
            resolve_device("cuda:0")
    info = hardware_info(torch.device("cpu"))
    assert {"device_name", "torch_version", "cuda_version", "cpu_count", "python_version"} <= set(info)
