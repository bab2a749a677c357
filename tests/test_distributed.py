"""Data-parallel runs under torchrun (2 gloo processes on the CPU) against one process; --skip-nonfinite.

What is exact and what is within tolerance:
- `test_primitives_equal_one_process` runs the real modules in float64 on both ranks and compares
  every distributed mechanism (synchronised BN, sharded dropout, averaged weight, architecture and
  fitness gradients, BN recalibration, sharded evaluation, batch streams, RL reward counts, the
  non-finite guard) with the one-process computation on the whole batch: equal to rounding (1e-12).
- The end-to-end runs (train, search, evolve through `python -m torch.distributed.run -m autospace`)
  end with a check that both ranks hold bit-identical state (weights, optimiser state, architecture
  parameters, populations); a run whose ranks disagree fails. They are compared with one process on
  the same global batch within float32 tolerance. A one-shot supernet at random init is chaotic
  (one process with 1 vs 2 threads already drifts apart within a few steps), so these runs use small
  learning rates, and a search or evolution whose decisions would hinge on rounding (near-tied
  architecture gradients, fitness) is compared on what it trained, not on the decision.
- Rank 0 alone writes: the run folders of both runs hold the same files.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import replace
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from autospace.arch import InvertedResidual, Layer, Network, load_arch, save_arch
from autospace.runtime.atomic import read_jsonl
from autospace.runtime.config import save_config
from autospace.data import load_dataset
from autospace.errors import AutospaceError
from autospace.evolve import EvolveConfig, evolve
from autospace.search import SearchConfig, search
from autospace.train import TrainConfig, train, train_network

ROOT = Path(__file__).resolve().parents[1]


def torchrun(*arguments: str, timeout: int = 240) -> subprocess.CompletedProcess:
    """`torchrun --standalone --nproc-per-node 2 ...` (a free port of its own, so parallel runs never clash)."""
    environment = dict(os.environ, OMP_NUM_THREADS="1", PYTHONWARNINGS="ignore")
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2", *arguments]
    return subprocess.run(command, cwd=ROOT, env=environment, capture_output=True, text=True, timeout=timeout)


def run_cli(*arguments: str) -> subprocess.CompletedProcess:
    result = torchrun("-m", "autospace", *arguments)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-5000:]
    return result


def files(folder: Path) -> set[str]:
    return {str(path.relative_to(folder)) for path in folder.rglob("*")}


def numbers(records: list[dict], *keys: str) -> list[float]:
    return [record[key] for record in records for key in keys if record.get(key) is not None]


def test_primitives_equal_one_process(tmp_path):
    result = torchrun(str(ROOT / "tests" / "distributed_worker.py"), str(tmp_path))
    assert result.returncode == 0, result.stderr[-5000:]
    ranks = [json.loads((tmp_path / f"rank{rank}.json").read_text()) for rank in (0, 1)]
    for rank, results in enumerate(ranks):
        assert results["rank"] == rank and results["world_size"] == 2 and results["backend"] == "gloo"
        assert results["broadcast_object"] == {"from": 0}
        assert results["all_equal: different"] is False
        for key, value in results.items():
            if isinstance(value, bool) and key != "all_equal: different":
                assert value, (rank, key)
            elif isinstance(value, float):
                # float64 everywhere except `evaluate`, whose model is float32
                assert value <= (1e-6 if key.startswith("evaluate") else 1e-12), (rank, key, value)


# ---- train ----------------------------------------------------------------------------------------

def tiny_network() -> Network:
    return Network(layers=(Layer(InvertedResidual(3, 1), 8, 1, searchable=False),
                           Layer(InvertedResidual(3, 3), 12, 2),
                           Layer(InvertedResidual(5, 3, squeeze_excite=True), 12, 1)),
                   stem_channels=8, head_channels=32, num_classes=10, resolution=32, dropout=0.1)


TRAIN = TrainConfig(data="synthetic:128,48", epochs=2, batch_size=32, eval_batch_size=20, lr=0.01,
                    warmup_epochs=0.5, device="cpu", progress=False, seed=3)


def test_torchrun_train_equals_one_process_and_resumes(tmp_path):
    save_arch(tmp_path / "arch.json", tiny_network())
    save_config(tmp_path / "train.yaml", TRAIN)
    reference = train(tiny_network(), TRAIN, tmp_path / "one")

    run_cli("train", str(tmp_path / "arch.json"), "--config", str(tmp_path / "train.yaml"), "--out",
            str(tmp_path / "two"))
    # A run killed after epoch 1 by one process, resumed by two: every rank reads the checkpoint.
    train_network(tiny_network(), load_dataset(TRAIN.data), TRAIN, tmp_path / "resumed", stop_after_epoch=1)
    run_cli("train", "--resume", str(tmp_path / "resumed"))

    for name in ("two", "resumed"):
        folder = tmp_path / name
        assert files(folder) == files(tmp_path / "one"), name  # rank 1 wrote nothing of its own
        metrics = json.loads((folder / "metrics.json").read_text())
        assert metrics["world_size"] == 2 and metrics["steps"] == reference["steps"]
        assert metrics["test_accuracy"] == pytest.approx(reference["test_accuracy"], abs=1 / 48 + 1e-9)
        assert numbers(read_jsonl(folder / "metrics.jsonl"), "train_loss", "test_loss") == pytest.approx(
            numbers(read_jsonl(tmp_path / "one" / "metrics.jsonl"), "train_loss", "test_loss"), rel=1e-3)
        weights = torch.load(folder / "model.pt", weights_only=True)
        for key, value in torch.load(tmp_path / "one" / "model.pt", weights_only=True).items():
            assert torch.allclose(weights[key].double(), value.double(), atol=2e-3), (name, key)


# ---- search ----------------------------------------------------------------------------------------

# weight_lr 1e-5: the supernet weights hardly move, so rounding is not amplified (see the module docstring)
SEARCH = SearchConfig(data="synthetic:192,32", space="manual", preset="cifar-small", target_madds=14_000_000,
                      epochs=2, warmup_epochs=1, batch_size=16, weight_lr=1e-5, arch_every=1, arch_lr=0.01,
                      recalibration_batches=1, device="cpu", progress=False)


def test_torchrun_search_finds_the_same_network_as_one_process(tmp_path):
    """proxyless-g. Adam (beta1 0) moves a logit by about arch_lr whatever the gradient's size, so a
    near-zero architecture gradient can flip under rounding: the logits agree within two such steps,
    and every layer whose decision is clearer than that picks the same block."""
    search(SEARCH, tmp_path / "one")
    save_config(tmp_path / "search.yaml", SEARCH)
    run_cli("search", "--config", str(tmp_path / "search.yaml"), "--out", str(tmp_path / "two"))

    assert files(tmp_path / "two") == files(tmp_path / "one")
    one, two = (read_jsonl(tmp_path / name / "search.jsonl") for name in ("one", "two"))
    assert numbers(two, "train_loss", "arch_loss") == pytest.approx(numbers(one, "train_loss", "arch_loss"),
                                                                      rel=1e-3)
    assert two[0]["validation_loss"] == pytest.approx(one[0]["validation_loss"], rel=1e-3)  # same path, data
    logits = [torch.load(tmp_path / name / "checkpoint.pt", weights_only=False)["distributions"]["logits"]
              for name in ("one", "two")]
    tolerance = SEARCH.arch_lr
    decided = 0
    for layer, (first, second) in enumerate(zip(*logits)):
        assert torch.allclose(first, second, atol=tolerance), layer
        top = first.sort(descending=True).values
        if top[0] - top[1] > 2 * tolerance:
            decided += 1
            assert int(first.argmax()) == int(second.argmax()) == two[-1]["argmax"][layer], layer
    assert decided >= 3
    if two[-1]["choice"] == one[-1]["choice"]:
        assert load_arch(tmp_path / "two" / "arch.json") == load_arch(tmp_path / "one" / "arch.json")


@pytest.mark.slow
@pytest.mark.parametrize("method", ["proxyless-rl", "spos"])
def test_torchrun_search_methods_agree_across_ranks(tmp_path, method):
    """Both ranks end with identical state (the run checks it) and rank 0 writes what one process writes."""
    config = replace(SEARCH, method=method, population=6, top=2, mutations=3, crossovers=3, generations=2,
                     eval_batches=1)
    search(config, tmp_path / "one")
    save_config(tmp_path / "search.yaml", config)
    run_cli("search", "--config", str(tmp_path / "search.yaml"), "--out", str(tmp_path / "two"))
    assert files(tmp_path / "two") == files(tmp_path / "one")
    first = [r for r in read_jsonl(tmp_path / "one" / "search.jsonl") if "train_loss" in r][0]
    second = [r for r in read_jsonl(tmp_path / "two" / "search.jsonl") if "train_loss" in r][0]
    assert second["train_loss"] == pytest.approx(first["train_loss"], rel=1e-3)


# ---- evolve ----------------------------------------------------------------------------------------

# One regeneration, at the end: weight steps, then fitness steps; weight_lr 1e-5 as for the search.
EVOLVE = EvolveConfig(data="synthetic:128,32", preset="cifar-small", budget_madds=14_000_000, epochs=1,
                      batch_size=16, weight_lr=1e-5, population_size=4, candidates_per_layer=2, top_k=1,
                      regenerate_every=100, warmup_epochs=0.5, device="cpu", progress=False)


def test_torchrun_evolve_learns_the_same_space_as_one_process(tmp_path):
    """The same populations with the same fitness (within one fitness step; the median much closer)."""
    evolve("autospace", EVOLVE, tmp_path / "one")
    save_config(tmp_path / "evolve.yaml", EVOLVE)
    run_cli("evolve", "--config", str(tmp_path / "evolve.yaml"), "--out", str(tmp_path / "two"))

    assert files(tmp_path / "two") == files(tmp_path / "one")
    one, two = (read_jsonl(tmp_path / name / "history.jsonl") for name in ("one", "two"))
    assert numbers(two, "weight_loss", "fitness_loss") == pytest.approx(numbers(one, "weight_loss", "fitness_loss"),
                                                                          rel=1e-3)
    assert two[-1]["fitness_steps"] > 0
    # Adam's first steps are about lr * sign(gradient) (beta1 = 0), so a gradient within float noise of
    # zero can flip one whole step (lr; Eq. 4's factor is at most 1) between one process and two.
    # Most fitness values agree closely; none differs by more than one such step.
    step = EVOLVE.fitness_lr
    differences = []
    for first, second in zip(one[-1]["populations"], two[-1]["populations"]):
        assert [individual["cell"] for individual in second] == [individual["cell"] for individual in first]
        fitness = [individual["fitness"] for individual in first]
        assert [individual["fitness"] for individual in second] == pytest.approx(fitness, abs=step)
        differences += [abs(a["fitness"] - b["fitness"]) for a, b in zip(first, second)]
    assert sorted(differences)[len(differences) // 2] <= EVOLVE.fitness_lr / 4  # the median agrees closely


@pytest.mark.slow
def test_torchrun_evolve_with_regenerations_agrees_across_ranks(tmp_path):
    """Regenerations with fitness steps and offspring, a learning rate that trains: the ranks
    agree (the run checks it) and rank 0 writes what one process writes."""
    config = replace(EVOLVE, epochs=2, weight_lr=0.01, regenerate_every=3, top_k=2)
    evolve("autospace", config, tmp_path / "one")
    save_config(tmp_path / "evolve.yaml", config)
    run_cli("evolve", "--config", str(tmp_path / "evolve.yaml"), "--out", str(tmp_path / "two"))
    assert files(tmp_path / "two") == files(tmp_path / "one")
    records = read_jsonl(tmp_path / "two" / "history.jsonl")
    assert len(records) == len(read_jsonl(tmp_path / "one" / "history.jsonl")) > 2
    assert sum(record["fitness_steps"] for record in records) > 0


def test_torchrun_refuses_a_batch_that_does_not_split(tmp_path):
    save_arch(tmp_path / "arch.json", tiny_network())
    result = torchrun("-m", "autospace", "train", str(tmp_path / "arch.json"), "--out", str(tmp_path / "run"),
                      "--data", "synthetic:64,16", "--device", "cpu", "--set", "batch_size=33",
                      "--set", "progress=false")
    assert result.returncode != 0
    assert "batch_size 33 is the global batch and must split evenly over the 2 processes; use 32 or 34" \
        in result.stderr
    assert not (tmp_path / "run" / "config.yaml").exists()


def test_torchrun_nse_agrees_across_ranks_and_with_one_process(tmp_path):
    """NSE under torchrun: the ranks agree (the run checks subsets, space and alphas), rank 0 writes
    what one process writes, and the losses match one process on the same global batch."""
    from autospace.evolve import NseConfig

    config = NseConfig(data="synthetic:128,32", preset="cifar-small", budget_madds=15_000_000, subset_size=2,
                       rounds=2, epochs_per_round=1, batch_size=16, weight_lr=1e-5, warmup_epochs=0.5,
                       samples=3, sample_draws=10, recalibration_batches=1, eval_batches=1, checkpoint_every=100,
                       device="cpu", progress=False)
    evolve("nse", config, tmp_path / "one")
    save_config(tmp_path / "nse.yaml", config)
    run_cli("evolve", "--method", "nse", "--config", str(tmp_path / "nse.yaml"), "--out", str(tmp_path / "two"))
    assert files(tmp_path / "two") == files(tmp_path / "one")
    one, two = (read_jsonl(tmp_path / name / "history.jsonl") for name in ("one", "two"))
    assert numbers(two, "weight_loss", "arch_loss") == pytest.approx(numbers(one, "weight_loss", "arch_loss"),
                                                                      rel=1e-3)
    assert [record["subsets"] for record in two] == [record["subsets"] for record in one]


def test_one_process_never_touches_torch_distributed():
    from autospace.runtime.distributed import SINGLE_PROCESS, init_distributed

    if "WORLD_SIZE" not in os.environ:
        assert init_distributed("cpu") is SINGLE_PROCESS
        assert not torch.distributed.is_initialized()


# ---- --skip-nonfinite --------------------------------------------------------------------------------

def poison(monkeypatch, module, calls: set[int]):
    """Make the normalised batches of the listed calls (1-based) all NaN."""
    real = module.normalize_batch
    count = [0]

    def normalize_batch(*args, **kwargs):
        count[0] += 1
        batch = real(*args, **kwargs)
        return torch.full_like(batch, float("nan")) if count[0] in calls else batch

    monkeypatch.setattr(module, "normalize_batch", normalize_batch)


def small_train(**changes) -> TrainConfig:
    return replace(TRAIN, data="synthetic:96,32", **changes)


def test_skip_nonfinite_train(tmp_path, monkeypatch):
    from autospace.train import loop

    data = load_dataset("synthetic:96,32")
    poison(monkeypatch, loop, {2})
    with pytest.raises(AutospaceError, match=r"train: the loss became nan at epoch 1; no checkpoint"):
        train_network(tiny_network(), data, small_train(), tmp_path / "stops")

    poison(monkeypatch, loop, {2})
    metrics = train_network(tiny_network(), data, small_train(skip_nonfinite=1), tmp_path / "skips")
    records = read_jsonl(tmp_path / "skips" / "metrics.jsonl")
    assert [record["skipped_nonfinite"] for record in records] == [1, 1]
    assert math.isfinite(metrics["train_loss"]) and math.isfinite(metrics["test_loss"])
    weights = torch.load(tmp_path / "skips" / "model.pt", weights_only=True)
    assert all(torch.isfinite(value.double()).all() for value in weights.values())  # BN statistics too

    poison(monkeypatch, loop, {2, 5})
    with pytest.raises(AutospaceError, match=r"at step 5 \(epoch 2\); that makes 2 non-finite steps, more than "
                                             r"skip_nonfinite=1 allows; the last good checkpoint is .*checkpoint.pt"):
        train_network(tiny_network(), data, small_train(skip_nonfinite=1), tmp_path / "too-many")


def test_skip_nonfinite_search_and_evolve(tmp_path, monkeypatch):
    import autospace.data.stream as stream

    config = replace(SEARCH, data="synthetic:128,32", skip_nonfinite=1)
    poison(monkeypatch, stream, {3})
    search(config, tmp_path / "search")
    records = read_jsonl(tmp_path / "search" / "search.jsonl")
    assert records[-1]["skipped_nonfinite"] == 1 and math.isfinite(records[-1]["train_loss"])

    poison(monkeypatch, stream, {2})
    evolve("autospace", replace(EVOLVE, skip_nonfinite=2), tmp_path / "evolve")
    history = read_jsonl(tmp_path / "evolve" / "history.jsonl")
    assert history[-1]["skipped_nonfinite"] == 1
    assert all(math.isfinite(record["weight_loss"]) for record in history)

    poison(monkeypatch, stream, {2})  # the weights go NaN, then the fitness: stopped before the next draw
    with pytest.raises(AutospaceError, match=r"evolve: the loss became nan at weight step 5 \(the fitness is NaN\); "
                                             r"no checkpoint was written yet"):
        evolve("autospace", EVOLVE, tmp_path / "evolve-stops")
