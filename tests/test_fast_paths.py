"""The fast paths give the plain paths' results: compiled vs eager (train step, evaluation, BN
recalibration, the training loop), fused optimisers, bf16 autocast; GPU-only checks skip on a CPU.

torch.compile runs on the CPU through inductor, which needs a C compiler; without one the
compiled tests skip and say why. The GPU augmentation's reference check lives in test_data.py
(`test_apply_augmentation_equals_the_reference_loop`, `test_augmentation_on_cuda_equals_the_reference`).
"""

from __future__ import annotations

import copy
import json
import shutil
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest
import torch
import torch.nn.functional as functional

from autospace.arch import InvertedResidual, Layer, Network, save_arch
from autospace.runtime.compiled import is_compiled, maybe_compile, original_module, resolve_compile
from autospace.data import synthetic_dataset
from autospace.errors import AutospaceError
from autospace.nn import build_network
from autospace.nn.batchnorm import recalibrate_batch_norm
from autospace.train import TrainConfig, make_optimizer, train_network
from autospace.train.evaluate import evaluate
from autospace.train.optim import fast_update_options

ROOT = Path(__file__).resolve().parents[1]
HAS_C_COMPILER = any(shutil.which(name) for name in ("cc", "gcc", "clang"))
needs_compiler = pytest.mark.skipif(not HAS_C_COMPILER, reason="torch.compile on the CPU (inductor) needs a C "
                                    "compiler (cc, gcc or clang); none is on PATH")
def needs_cuda(test):
    """GPU-only: marked `gpu` (`pytest -m gpu` selects them on a GPU machine) and skipped without CUDA."""
    skip = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU (this checks a GPU-only path)")
    return pytest.mark.gpu(skip(test))


def tiny_network(num_classes: int = 4) -> Network:
    # No dropout: compiled dropout draws other random numbers than eager dropout.
    return Network(
        layers=(Layer(InvertedResidual(kernel=3, expansion=1), 8, 1, searchable=False),
                Layer(InvertedResidual(kernel=3, expansion=3), 12, 2),
                Layer(InvertedResidual(kernel=5, expansion=3, squeeze_excite=True), 12, 1)),
        stem_channels=8, head_channels=32, num_classes=num_classes, resolution=16, dropout=0.0,
    )


def twin_models(device="cpu"):
    torch.manual_seed(0)
    eager = build_network(tiny_network()).to(device=device, memory_format=torch.channels_last)
    return eager, copy.deepcopy(eager)


def close(first, second, tolerance=1e-4):
    return torch.allclose(first.float(), second.float(), rtol=tolerance, atol=tolerance)


def test_resolve_compile_settings():
    cpu, cuda = torch.device("cpu"), torch.device("cuda")
    assert resolve_compile("auto", cpu) is None and resolve_compile("auto", cuda) == "default"
    assert resolve_compile("off", cuda) is None and resolve_compile(False, cuda) is None
    assert resolve_compile(True, cpu) == "default" and resolve_compile("reduce-overhead", cpu) == "reduce-overhead"
    with pytest.raises(AutospaceError, match="valid settings"):
        resolve_compile("fastest", cpu)
    model = torch.nn.Linear(2, 2)
    assert maybe_compile(model, "auto", cpu) is model and maybe_compile(model, "off") is model
    # YAML reads `compile: off` as false; the config keeps a word either way.
    assert TrainConfig(compile=False).compile == "off" and TrainConfig(compile=True).compile == "default"


def test_fused_update_only_on_cuda():
    model = torch.nn.Linear(2, 2)
    assert fast_update_options(model.parameters()) == {}
    assert not make_optimizer(model, 0.1, 0.9, True, 0.0).defaults.get("fused")


def small_convnet() -> torch.nn.Module:
    torch.manual_seed(0)
    return torch.nn.Sequential(
        torch.nn.Conv2d(3, 8, 3, padding=1, bias=False), torch.nn.BatchNorm2d(8), torch.nn.ReLU6(),
        torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten(), torch.nn.Linear(8, 4))


@needs_compiler
def test_compiled_evaluation_and_recalibration_of_a_small_convnet_match_eager():
    """The quick one (about 15 s with a cold compile cache): the hooks in evaluate and recalibrate_batch_norm.

    The slow tests below check the same on a real (tiny) mobile network, and a compiled training loop.
    """
    model = small_convnet()
    generator = torch.Generator().manual_seed(2)
    images = torch.randint(0, 256, (21, 3, 8, 8), dtype=torch.uint8, generator=generator)
    labels = torch.randint(0, 4, (21,), generator=generator)
    mean, std = (0.5, 0.5, 0.5), (0.25, 0.25, 0.25)
    plain = evaluate(model, images, labels, mean, std, batch_size=8)
    fast = evaluate(model, images, labels, mean, std, batch_size=8, compile="default")  # 8 + 8 + 5 padded
    assert fast[0] == pytest.approx(plain[0], rel=1e-5) and fast[1] == plain[1]
    assert model.training

    twin = copy.deepcopy(model)
    batches = [torch.randn(8, 3, 8, 8, generator=generator) for _ in range(3)]
    recalibrate_batch_norm(model, batches)
    recalibrate_batch_norm(twin, batches, compile="default")
    assert close(model[1].running_mean, twin[1].running_mean) and close(model[1].running_var, twin[1].running_var)
    assert int(twin[1].num_batches_tracked) == 3 and twin[1].momentum == 0.1 and twin.training


@pytest.mark.slow  # 45-60 s with a cold compile cache on 2 cores
@needs_compiler
def test_compiled_network_matches_eager_in_eval_and_a_train_step():
    eager, twin = twin_models()
    compiled = maybe_compile(twin, "default", "cpu")
    assert is_compiled(compiled) and original_module(compiled) is twin
    assert maybe_compile(compiled, "default") is compiled
    inputs = torch.randn(8, 3, 16, 16).contiguous(memory_format=torch.channels_last)
    labels = torch.randint(0, 4, (8,), generator=torch.Generator().manual_seed(1))

    eager.eval(), compiled.eval()
    with torch.no_grad():
        assert close(eager(inputs), compiled(inputs))

    eager.train(), compiled.train()
    optimizers = [make_optimizer(model, 0.1, 0.9, True, 5e-4) for model in (eager, twin)]
    for _ in range(2):
        losses = []
        for model, optimizer in zip((eager, compiled), optimizers):
            loss = functional.cross_entropy(model(inputs), labels, label_smoothing=0.1)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            losses.append(loss.detach())
        assert close(*losses)
    for (name, first), (_, second) in zip(eager.state_dict().items(), twin.state_dict().items()):
        assert close(first, second, 1e-3), name


@pytest.mark.slow  # 25-30 s with a cold compile cache on 2 cores
@needs_compiler
def test_compiled_evaluation_pads_the_last_batch_and_matches_eager():
    eager, _ = twin_models()
    generator = torch.Generator().manual_seed(2)
    images = torch.randint(0, 256, (70, 3, 16, 16), dtype=torch.uint8, generator=generator)
    labels = torch.randint(0, 4, (70,), generator=generator)
    mean, std = (0.5, 0.5, 0.5), (0.25, 0.25, 0.25)
    plain = evaluate(eager, images, labels, mean, std, batch_size=32, channels_last=True)
    fast = evaluate(eager, images, labels, mean, std, batch_size=32, channels_last=True, compile="default")
    assert fast[0] == pytest.approx(plain[0], rel=1e-5) and fast[1] == plain[1]
    assert eager.training  # put back in the mode it was in


@pytest.mark.slow  # 25-30 s with a cold compile cache on 2 cores
@needs_compiler
def test_compiled_batch_norm_recalibration_matches_eager():
    eager, twin = twin_models()
    generator = torch.Generator().manual_seed(3)
    batches = [torch.randn(16, 3, 16, 16, generator=generator).contiguous(memory_format=torch.channels_last)
               for _ in range(3)]
    eager.eval(), twin.eval()
    recalibrate_batch_norm(eager, batches)
    recalibrate_batch_norm(twin, iter(batches), compile="default")
    norms = [(a, b) for a, b in zip(eager.modules(), twin.modules()) if isinstance(a, torch.nn.BatchNorm2d)]
    assert norms
    for first, second in norms:
        assert close(first.running_mean, second.running_mean) and close(first.running_var, second.running_var)
        assert int(first.num_batches_tracked) == int(second.num_batches_tracked) == 3
        assert second.momentum == first.momentum == 0.1
    assert not twin.training and not any(module.training for module in twin.modules())
    with pytest.raises(AutospaceError, match="forward=None"):
        recalibrate_batch_norm(twin, batches, lambda inputs: twin(inputs), compile="default")


@pytest.mark.slow  # 45-60 s with a cold compile cache on 2 cores
@needs_compiler
def test_training_loop_compiled_matches_eager(tmp_path):
    dataset = synthetic_dataset(train_count=96, test_count=40, num_classes=4, resolution=16, seed=1)
    config = TrainConfig(data="synthetic", epochs=1, batch_size=32, eval_batch_size=32, lr=0.05, warmup_epochs=0.5,
                         device="cpu", progress=False, seed=3, compile="off")
    plain = train_network(tiny_network(), dataset, config, tmp_path / "eager")
    fast = train_network(tiny_network(), dataset, replace(config, compile="default"), tmp_path / "compiled")
    assert plain["compile"] == "off" and fast["compile"] == "default"
    assert fast["train_loss"] == pytest.approx(plain["train_loss"], rel=1e-4)
    assert fast["test_loss"] == pytest.approx(plain["test_loss"], rel=1e-3)
    eager_weights = torch.load(tmp_path / "eager" / "model.pt", weights_only=True)
    compiled_weights = torch.load(tmp_path / "compiled" / "model.pt", weights_only=True)
    assert eager_weights.keys() == compiled_weights.keys()  # the state_dict has no _orig_mod. prefix
    for name in eager_weights:
        assert close(eager_weights[name], compiled_weights[name], 1e-3), name


def test_train_speed_bench_prints_one_json_line(tmp_path):
    arch = tmp_path / "tiny.json"
    save_arch(arch, tiny_network(10))
    result = subprocess.run([sys.executable, str(ROOT / "bench" / "train_speed.py"), str(arch), "--batch-size", "8",
                             "--steps", "2", "--warmup", "1", "--device", "cpu"],
                            capture_output=True, text=True, check=True, timeout=120)
    figures = json.loads(result.stdout.strip().splitlines()[-1])
    assert figures["bench"] == "train_speed" and figures["compile"] == "off" and figures["train_images_per_s"] > 0
    assert figures["hardware"]["torch_version"] == torch.__version__


def test_evolve_speed_bench_prints_ratios_and_the_sharing_speedup():
    result = subprocess.run([sys.executable, str(ROOT / "bench" / "evolve_speed.py"), "--preset", "cifar-small",
                             "--budget-madds", "15M", "--candidates", "3", "--batch-size", "4", "--paths", "2",
                             "--repeats", "1", "--sequence", "2", "--device", "cpu"],
                            capture_output=True, text=True, check=True, timeout=300)
    figures = json.loads(result.stdout.strip().splitlines()[-1])
    assert figures["bench"] == "evolve_speed" and figures["candidates_per_layer"] == 3
    for key in ("weight_step_ratio", "fitness_step_ratio", "fitness_sharing_speedup"):
        assert figures[key] > 0, key
    assert set(figures["median_step_ms"]) == {"alone", "weight", "fitness", "fitness_unshared"}
    assert figures["weight_step_memory_ratio"] is None  # peak memory is measured on CUDA only


@needs_cuda
def test_bf16_autocast_train_step_on_cuda():
    model, _ = twin_models("cuda")
    optimizer = make_optimizer(model, 0.1, 0.9, True, 5e-4)
    inputs = torch.randn(16, 3, 16, 16, device="cuda").contiguous(memory_format=torch.channels_last)
    labels = torch.randint(0, 4, (16,), device="cuda")
    before = [parameter.detach().clone() for parameter in model.parameters()]
    with torch.autocast("cuda", dtype=torch.bfloat16):
        logits = model(inputs)
    assert logits.dtype == torch.bfloat16
    loss = functional.cross_entropy(logits.float(), labels)
    loss.backward()
    optimizer.step()
    assert torch.isfinite(loss)
    assert all(parameter.dtype == torch.float32 for parameter in model.parameters())
    assert any(not torch.equal(old, new) for old, new in zip(before, model.parameters()))


@needs_cuda
def test_fused_sgd_on_cuda_matches_the_plain_update():
    fused_model, plain_model = twin_models("cuda")
    fused = make_optimizer(fused_model, 0.1, 0.9, True, 5e-4)
    assert fused.defaults.get("fused") is True
    plain = torch.optim.SGD(make_optimizer(plain_model, 0.1, 0.9, True, 5e-4).param_groups, lr=0.1, momentum=0.9,
                            nesterov=True, foreach=False)
    inputs = torch.randn(8, 3, 16, 16, device="cuda").contiguous(memory_format=torch.channels_last)
    labels = torch.randint(0, 4, (8,), device="cuda")
    for _ in range(3):
        for model, optimizer in ((fused_model, fused), (plain_model, plain)):
            optimizer.zero_grad(set_to_none=True)
            functional.cross_entropy(model(inputs), labels).backward()
            optimizer.step()
    for first, second in zip(fused_model.parameters(), plain_model.parameters()):
        assert close(first, second, 1e-4)


@needs_cuda
def test_compiled_train_step_on_cuda_matches_eager():
    eager, twin = twin_models("cuda")
    compiled = maybe_compile(twin, "auto", "cuda")
    assert is_compiled(compiled)
    inputs = torch.randn(8, 3, 16, 16, device="cuda").contiguous(memory_format=torch.channels_last)
    with torch.no_grad():
        assert close(eager.eval()(inputs), compiled.eval()(inputs), 1e-3)


@needs_cuda
def test_train_speed_bench_reports_cuda_memory(tmp_path):
    arch = tmp_path / "tiny.json"
    save_arch(arch, tiny_network(10))
    result = subprocess.run([sys.executable, str(ROOT / "bench" / "train_speed.py"), str(arch), "--batch-size", "64",
                             "--steps", "3", "--warmup", "2", "--device", "cuda", "--compile", "off"],
                            capture_output=True, text=True, check=True, timeout=300)
    figures = json.loads(result.stdout.strip().splitlines()[-1])
    assert figures["train_peak_memory_mib"] > 0 and figures["fused_optimizer"] is True
    assert figures["precision"] == "bfloat16" and figures["hardware"]["cuda_version"]
