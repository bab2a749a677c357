"""bench/ scripts: the pipeline benchmark and the learned-vs-manual table (quick checks; end-to-end runs are slow)."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from autospace.pipeline import load_run_config

ROOT = Path(__file__).resolve().parents[1]


def load_script(name: str):
    """A bench/ script as a module, without putting bench/ on sys.path."""
    spec = importlib.util.spec_from_file_location(f"bench_{name}", ROOT / "bench" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


pipeline_bench = load_script("pipeline")
results_table = load_script("results_table")


def test_gpu_preset_and_smoke_settings_are_valid_run_configs():
    gpu = load_run_config("gpu", [])
    assert gpu.budget_madds == 60_000_000 and gpu.train.compile == "auto" and gpu.evolve.preset == "cifar"
    smoke = load_run_config("gpu", pipeline_bench.SMOKE)
    assert smoke.data.startswith("synthetic") and smoke.train.epochs == 1


def test_stage_wall_seconds_from_file_times(tmp_path):
    started = time.time() - 100
    for offset, output in ((30, "evolve/space.json"), (50, "search/arch.json"), (95, "train/metrics.json")):
        path = tmp_path / output
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("{}")
        os.utime(path, (started + offset, started + offset))
    assert pipeline_bench.wall_seconds_from_files(tmp_path, started) == {"evolve": 30.0, "search": 20.0,
                                                                         "train": 45.0}
    (tmp_path / "evolve" / "space.json").unlink()  # manual space: no evolve stage
    assert pipeline_bench.wall_seconds_from_files(tmp_path, started)["evolve"] is None


def row(space, seed, top1, budget=30_000_000):
    return {"config": "gpu", "search_method": "proxyless-g", "budget_madds": budget, "space_method": space,
            "seed": seed, "test_top1": top1, "params": 1_000_000, "madds": budget * 0.9, "device": "NVIDIA H100",
            "stage_seconds": {"evolve": None if space == "manual" else 240.0, "search": 180.0, "train": 300.0}}


def test_results_table_means_deviations_and_difference(tmp_path):
    rows = [row("autospace", 0, 91.0), row("autospace", 1, 92.0), row("autospace", 2, 93.0),
            row("manual", 0, 90.0), row("manual", 1, 90.5), row("manual", 2, 91.0),
            row("manual", 0, 93.0, budget=90_000_000)]
    rows[4].update(argmax_madds=40_000_000, fitted_to_budget=True)  # over budget, fitted by the search
    rows[5].update(argmax_madds=30_000_000, fitted_to_budget=False)
    path = tmp_path / "rows.jsonl"
    path.write_text("".join(json.dumps(item) + "\n" for item in rows))
    table = results_table.markdown_table(results_table.read_rows(path))
    lines = table.strip().splitlines()
    assert len(lines) == 2 + 3  # header, rule, learned 30M, manual 30M, manual 90M
    assert "| 30M | learned (AutoSpace DEA) | 3 | 92.00 ± 1.00 | 91.00, 92.00, 93.00 | +1.50 |" in lines[2]
    assert "| 30M | manual" in lines[3] and "90.50 ± 0.50" in lines[3] and "| - / 3.0 / 5.0 |" in lines[3]
    assert "| 27.0M (argmax 35.0M, fitted 1/3) |" in lines[3] and "argmax" not in lines[2] + lines[4]
    assert "| 90M | manual" in lines[4]
    assert "| 27.00M, 27.00M, 27.00M |" in lines[3]  # every found network's MAdds
    result = subprocess.run([sys.executable, str(ROOT / "bench" / "results_table.py"), str(path)],
                            capture_output=True, text=True, check=True, timeout=60)
    assert result.stdout == table


def test_results_table_compares_a_learned_variant_with_the_named_manual_recipe(tmp_path):
    variant = [dict(row("autospace", seed, top1), config="gpu-variant") for seed, top1 in enumerate((92.0, 93.0))]
    rows = variant + [row("manual", 0, 90.0), row("manual", 1, 91.0)]
    own = results_table.markdown_table(rows)
    assert "| gpu-variant | proxyless-g | 30M | learned (AutoSpace DEA) | 2 | 92.50 ± 0.71 | 92.00, 93.00 | - |" in own
    shared = results_table.markdown_table(rows, manual_recipe="gpu")
    assert "| 92.00, 93.00 | +2.00 |" in shared
    assert "| -1.00 |" not in shared and shared.count("| manual") == 1
    # a variant with manual rows of its own (it changes the search too) is compared with those
    searched = [dict(row(space, 0, top1), config="gpu-search") for space, top1 in (("autospace", 95.0),
                                                                                   ("manual", 96.5))]
    mixed = results_table.markdown_table(rows + searched, manual_recipe="gpu")
    assert "| 95.00 | -1.50 |" in mixed and "| 92.00, 93.00 | +2.00 |" in mixed


@pytest.mark.slow  # 15-60 s on 2 cores (idle-busy): evolve, search and train on synthetic data
def test_pipeline_bench_smoke_prints_one_json_line(tmp_path):
    result = subprocess.run([sys.executable, str(ROOT / "bench" / "pipeline.py"), "--smoke", "--device", "cpu",
                             "--out", str(tmp_path / "run")], capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-2000:]
    line = json.loads(result.stdout.strip().splitlines()[-1])
    assert line["bench"] == "pipeline" and line["smoke"] and line["found_madds"] <= 14_000_000 * 1.1
    assert set(line["stage_seconds"]) == {"evolve", "search", "train"}
    assert all(value is not None and value > 0 for value in line["stage_wall_seconds"].values())
    assert line["torch_version"] and line["hardware"]["torch_version"] == line["torch_version"]
    assert json.loads((tmp_path / "run" / "bench.json").read_text()) == line
    assert (tmp_path / "run" / "hardware.json").exists()


@pytest.mark.slow  # 30-60 s: two manual-space runs (no evolve stage), then a rerun that skips them
def test_space_vs_manual_writes_rows_and_the_table_and_skips_finished_runs(tmp_path):
    command = [sys.executable, str(ROOT / "bench" / "space_vs_manual.py"), "--config", "gpu", "--label", "smoke",
               "--budget-madds", "14M", "20M", "--seeds", "1", "--spaces", "manual", "--device", "cpu",
               "--out", str(tmp_path / "runs"), "--markdown", str(tmp_path / "table.md")]
    command += [item for setting in pipeline_bench.SMOKE for item in ("--set", setting)]
    first = subprocess.run(command, capture_output=True, text=True, timeout=600)
    assert first.returncode == 0, first.stderr[-2000:]
    line = json.loads(first.stdout.strip().splitlines()[-1])
    assert [entry["budget_madds"] for entry in line["budgets"]] == [14_000_000, 20_000_000]
    rows = results_table.read_rows(tmp_path / "runs" / "rows.jsonl")
    assert len(rows) == 2 and {item["config"] for item in rows} == {"smoke"}
    assert "| smoke | proxyless-g | 14M | manual" in (tmp_path / "table.md").read_text()
    again = subprocess.run(command, capture_output=True, text=True, timeout=120)
    assert again.returncode == 0 and len(results_table.read_rows(tmp_path / "runs" / "rows.jsonl")) == 2


def _gpu_session(tmp_path, seconds: int) -> Path:
    out = tmp_path / "out"
    environment = dict(os.environ, GPU_SESSION_SMOKE="1", GPU_SESSION_SECONDS=str(seconds),
                       GPU_SESSION_RUN_DIR=str(tmp_path / "pipeline"), PYTHON=sys.executable)
    result = subprocess.run(["bash", str(ROOT / "bench" / "gpu_session.sh"), str(out)], env=environment,
                            capture_output=True, text=True, timeout=seconds + 120)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    files = sorted(path.name for path in out.iterdir())
    # What the device tool brings back: at most 8 plain files, no subfolders, plain names.
    assert len(files) <= 8 and all((out / name).is_file() and not name.startswith(".") for name in files), files
    assert json.loads((out / "hardware.json").read_text())["torch_version"]
    for name in files:
        if name.endswith(".jsonl"):
            assert all(json.loads(line) for line in (out / name).read_text().splitlines())
    assert "gpu-session: done in" in (out / "session.log").read_text()
    return out


def test_gpu_session_script_keeps_its_deadline_and_writes_what_the_device_tool_brings_back(tmp_path):
    # A deadline too short for any step: each is skipped with a line in the log, the pipeline reported unfinished.
    out = _gpu_session(tmp_path, 15)
    assert not (out / "pipeline.json").exists()
    progress = json.loads((out / "pipeline_progress.json").read_text())
    assert progress["finished"] is False
    assert "train_speed: skipped" in (out / "session.log").read_text()


@pytest.mark.slow  # about a minute: every step of the session with tiny CPU settings
def test_gpu_session_script_smoke_runs_every_step(tmp_path):
    out = _gpu_session(tmp_path, 300)
    assert {"train_speed.jsonl", "evolve_speed.jsonl", "pipeline.json", "pipeline_logs.tar.gz"} <= set(
        path.name for path in out.iterdir())
    assert json.loads((out / "pipeline.json").read_text())["bench"] == "pipeline"


def test_supernet_learning_prints_one_json_line_with_a_curve_per_variant():
    command = [sys.executable, str(ROOT / "bench" / "supernet_learning.py"), "--data", "synthetic:300,60",
               "--train-subset", "200", "--steps", "4", "--checkpoints", "2", "--eval-images", "40",
               "--recal-batches", "1", "--eval-paths", "1", "--candidates", "3",
               "--variants", "standalone", "dea", "dea-fair", "dea-fixed", "dea-independent", "search"]
    result = subprocess.run(command, capture_output=True, text=True, timeout=300, check=True,
                            env={**os.environ, "OMP_NUM_THREADS": "1"})
    (line,) = result.stdout.strip().splitlines()
    row = json.loads(line)
    assert row["bench"] == "supernet_learning" and set(row["variants"]) == {
        "standalone", "dea", "dea-fair", "dea-fixed", "dea-independent", "search"}
    for name, variant in row["variants"].items():
        assert [point["step"] for point in variant["curve"]] == [2, 4]
        assert all(0.0 <= point["heldout_top1"] <= 1.0 for point in variant["curve"])
    assert row["variants"]["dea-fair"]["curve"][-1]["passes"] == 4 * 3  # every cell of a layer once per step
    assert row["variants"]["dea"]["curve"][-1]["passes"] == 4


@pytest.mark.slow  # 20-40 s: two one-epoch manual-space searches on synthetic data, then a rerun that reads them
def test_search_budget_response_reports_each_budget_and_reads_finished_searches(tmp_path):
    from autospace.arch.codec import load_arch
    from autospace.cost import network_cost

    command = [sys.executable, str(ROOT / "bench" / "search_budget_response.py"), "--config", "gpu",
               "--space", "manual", "--budget-madds", "14M", "20M", "--device", "cpu", "--out", str(tmp_path)]
    command += [item for setting in pipeline_bench.SMOKE for item in ("--set", setting)]
    first = subprocess.run(command, capture_output=True, text=True, timeout=600)
    assert first.returncode == 0, first.stderr[-2000:]
    line = json.loads(first.stdout.strip().splitlines()[-1])
    assert [entry["target_madds"] for entry in line["budgets"]] == [14_000_000, 20_000_000]
    for entry in line["budgets"]:
        found = network_cost(load_arch(tmp_path / f"search-{entry['target_madds'] // 1_000_000}M" / "arch.json"))
        assert entry["found_madds"] == found.madds <= entry["target_madds"]
        assert entry["argmax_over_target"] == round(entry["argmax_madds"] / entry["target_madds"], 3)
    same = line["budgets"][0]["argmax"] == line["budgets"][1]["argmax"]
    assert line["argmax_identical_across_budgets"] is same and line["budget_ratio"] == round(20 / 14, 3)
    again = subprocess.run(command, capture_output=True, text=True, timeout=120)
    assert again.returncode == 0 and json.loads(again.stdout.strip().splitlines()[-1]) == line


def test_search_budget_response_needs_two_budgets(tmp_path):
    result = subprocess.run([sys.executable, str(ROOT / "bench" / "search_budget_response.py"),
                             "--budget-madds", "10M", "--out", str(tmp_path)],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 2 and "two or more budgets" in result.stderr
    assert not any(tmp_path.iterdir())


def test_search_budget_response_says_in_one_line_what_was_wrong(tmp_path):
    result = subprocess.run([sys.executable, str(ROOT / "bench" / "search_budget_response.py"), "--config", "quick",
                             "--set", "data=synthetic:160,32", "--device", "cpu", "--out", str(tmp_path)],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert result.stderr.strip().count("\n") == 0 and "train_count=6000 is out of range" in result.stderr


def test_search_budget_response_summary_says_when_the_argmax_ignored_the_budget():
    bench = load_script("search_budget_response")
    blind = [{"target_madds": 10, "expected_madds": 11, "argmax": [1, 2]},
             {"target_madds": 20, "expected_madds": 11, "argmax": [1, 2]}]
    assert bench.summary(blind) == {"argmax_identical_across_budgets": True, "budget_ratio": 2.0,
                                    "expected_madds_ratio": 1.0}
    moved = [blind[0], {"target_madds": 20, "expected_madds": 22, "argmax": [1, 3]}]
    assert bench.summary(moved)["argmax_identical_across_budgets"] is False


def test_supernet_ranking_takes_networks_spanning_the_score_range():
    ranking = load_script("supernet_ranking")
    assert ranking.spanning(3, list(range(10))) == [0, 4, 9] and ranking.spanning(5, [1, 2]) == [1, 2]
    assert ranking.spanning(1, [3, 4]) == [3] and ranking.finite(float("nan")) is None


@pytest.mark.slow
def test_supernet_ranking_trains_networks_spanning_the_pick_and_correlates_them(tmp_path):
    """A tiny search with a measured pick, then bench/supernet_ranking.py over 3 of its candidates: one JSON
    line whose rows are the candidates it trained, sorted by the supernet's score; a rerun reuses them, and
    the saved plan and network rows alone (no search folder, no trainings) give the same line."""
    import shutil

    from autospace.search import SearchConfig, search

    search(SearchConfig(data="synthetic:256,64", preset="cifar-small", target_madds=14_000_000, epochs=2,
                        warmup_epochs=1, batch_size=32, arch_every=1, device="cpu", progress=False,
                        recalibration_batches=1, pick_candidates=4, pick_images=64), tmp_path / "search")
    settings = ["--space", "manual", "--networks", "3", "--train-config", "quick", "--set", "data=synthetic:256,64",
                "--set", "epochs=1", "--set", "train_subset=None", "--set", "test_subset=None", "--set", "device=cpu",
                "--set", "progress=false"]
    environment = {**os.environ, "OMP_NUM_THREADS": "1"}

    def ranking(*extra):
        command = [sys.executable, str(ROOT / "bench" / "supernet_ranking.py"), *settings, *extra]
        line = subprocess.run(command, capture_output=True, text=True, check=True, env=environment).stdout.strip()
        return json.loads(line.splitlines()[-1])

    partial = ranking("--search-dir", str(tmp_path / "search"), "--out", str(tmp_path / "ranking"), "--max-trainings", "1")
    assert partial["networks"] == 1 and partial["planned"] == 3 and partial["complete"] is False
    row = ranking("--search-dir", str(tmp_path / "search"), "--out", str(tmp_path / "ranking"))
    assert row["bench"] == "supernet_ranking" and row["networks"] == 3 and row["space"] == "manual" and row["complete"]
    assert [r["heldout_top1"] for r in row["rows"]] == sorted(r["heldout_top1"] for r in row["rows"])
    assert (row["kendall_tau"] is None or -1.0 <= row["kendall_tau"] <= 1.0) and all(0 <= r["test_top1"] <= 100 for r in row["rows"])
    assert len(list((tmp_path / "search" / "pick").glob("candidate_*.json"))) == 4
    assert len(results_table.read_rows(tmp_path / "ranking" / "networks.jsonl")) == 3  # one row per training
    again = ranking("--search-dir", str(tmp_path / "search"), "--out", str(tmp_path / "ranking"))
    assert again["rows"] == row["rows"]  # finished trainings are read back, not redone
    saved = tmp_path / "saved"
    saved.mkdir()
    for name in ("plan.json", "networks.jsonl"):
        shutil.copy(tmp_path / "ranking" / name, saved / name)
    shutil.rmtree(tmp_path / "search")
    resumed = ranking("--plan", str(saved / "plan.json"), "--networks-file", str(saved / "networks.jsonl"),
                      "--out", str(tmp_path / "later"))
    assert resumed["rows"] == row["rows"] and not list((tmp_path / "later").glob("net-*"))


def test_paired_differences_have_a_t_interval_and_count_wins():
    rows = [{"budget_madds": 10_000_000, "space_method": "autospace", "arm": "learned", "seed": s, "test_top1": v}
            for s, v in enumerate([80.0, 81.0, 79.5])]
    rows += [{"budget_madds": 10_000_000, "space_method": "manual", "seed": s, "test_top1": v}
             for s, v in enumerate([79.0, 80.0, 80.0, 77.0])]  # seed 3 has no learned pair
    result = results_table.paired_difference(rows, "learned", "manual", 10_000_000)
    assert result["seeds"] == [0, 1, 2] and result["differences"] == [1.0, 1.0, -0.5] and result["wins"] == 2
    # by hand: mean 0.5, sd 0.866, t(0.975, 2) = 4.303 -> half width 4.303 * 0.866 / sqrt(3) = 2.152
    assert result["mean"] == pytest.approx(0.5) and result["ci95"] == pytest.approx((0.5 - 2.1515, 0.5 + 2.1515), abs=1e-3)
    table = results_table.paired_table(rows)
    assert "| 10M | learned - manual | 3 | +0.50 | [-1.65, +2.65] | 2/3 | +1.00, +1.00, -0.50 |" in table
    assert results_table.paired_difference(rows, "union", "manual", 10_000_000) is None


def test_the_manual_arm_gets_as_many_supernet_steps_as_the_evolve_config_makes():
    """Epochs x (training part // batch), the training part being what the held-out share leaves: by hand,
    the cpu recipe's 16 x (16,000 // 64) = 4,000 and 2 x ((512 - 102) // 64) = 12 on 512 synthetic images."""
    from autospace.evolve.config import EvolveConfig

    fair = load_script("space_vs_manual_fair")
    assert fair.evolve_weight_steps(EvolveConfig(data="synthetic:512,128", epochs=2, batch_size=64)) == 12
    assert fair.evolve_weight_steps(EvolveConfig(data="synthetic:25000,128", train_subset=20_000, epochs=16,
                                                 batch_size=64)) == 4000


def test_results_table_lists_every_found_network_layer_by_layer():
    """Rows that carry their architecture get a per-layer listing whose MAdds are the analytic layer costs."""
    from autospace.arch.codec import arch_to_dict
    from autospace.arch.presets import mobilenetv2
    from autospace.cost import layer_costs

    network = mobilenetv2(num_classes=10, resolution=32)
    rows = [{"arm": "manual", "budget_madds": 10_000_000, "seed": 1, "test_top1": 80.27, "madds": 9_891_072,
             "params": 285_754, "arch": arch_to_dict(network)}, {"arm": "learned", "budget_madds": 10_000_000, "seed": 1,
                                                                 "test_top1": 70.0, "madds": 1, "params": 1}]
    listing = results_table.network_listings(rows)
    assert listing.startswith("manual, 10M, seed 1: 80.27% at 9.89M MAdds, 285,754 params")
    table = [line for line in listing.splitlines() if line.startswith("| ") and not line.startswith(("| layer", "| ---"))]
    assert len(table) == len(network.layers) and "learned" not in listing  # rows without arch are left out
    assert [line.split("|")[5].strip() for line in table] == [f"{cost.madds / 1e6:.2f}M" for cost in layer_costs(network)]


@pytest.mark.slow
def test_space_vs_manual_fair_runs_three_arms_per_budget_from_one_evolve(tmp_path):
    command = [sys.executable, str(ROOT / "bench" / "space_vs_manual_fair.py"), "--config", "quick",
               "--budget-madds", "10M", "14M", "--seed-ids", "0", "--out", str(tmp_path),
               *[item for setting in ("data=synthetic:512,128", "evolve.train_subset=None", "evolve.epochs=2",
                                      "evolve.regenerate_every=4", "search.train_subset=None", "search.epochs=2",
                                      "search.warmup_epochs=1", "train.train_subset=None", "train.test_subset=None",
                                      "train.epochs=1") for item in ("--set", setting)]]
    environment = {**os.environ, "OMP_NUM_THREADS": "1"}
    subprocess.run([*command, "--arms", "manual"], check=True, capture_output=True, env=environment)
    assert not (tmp_path / "evolve-seed0").exists()  # the manual arm runs beside the evolve, not after it
    assert {row["arm"] for row in results_table.read_rows(tmp_path / "rows.jsonl")} == {"manual"}
    subprocess.run(command, check=True, capture_output=True, env=environment)
    rows = results_table.read_rows(tmp_path / "rows.jsonl")
    assert sorted((row["arm"], row["budget_madds"]) for row in rows) == sorted(
        (arm, budget) for arm in ("learned", "manual", "union") for budget in (10_000_000, 14_000_000))
    assert len(list(tmp_path.glob("evolve-seed*"))) == 1  # one evolve serves both budgets
    steps = json.loads((tmp_path / "evolve-seed0" / "space.json").read_text())["metadata"]["steps"]
    assert all(row["pretrain_steps"] == (steps if row["arm"] == "manual" else 0) for row in rows)
    assert all(row["pick_method"] == "measured" for row in rows)
    assert all("evolve.epochs=2" in row["overrides"] for row in rows)  # a row says what it changed in the recipe
    from autospace.arch.codec import arch_from_dict, load_arch

    assert all(arch_from_dict(row["arch"]) == load_arch(Path(row["run_dir"]) / "search" / "arch.json") for row in rows)


def test_longer_training_retrains_each_arms_best_network_on_all_images_and_skips_finished(tmp_path):
    from autospace.arch import InvertedResidual, Layer, Network
    from autospace.arch.codec import arch_to_dict

    def network(kernel: int) -> Network:
        return Network(layers=(Layer(InvertedResidual(kernel=3, expansion=1), 8, 1, searchable=False),
                               Layer(InvertedResidual(kernel=kernel, expansion=3), 12, 2)),
                       stem_channels=8, head_channels=16, num_classes=10, resolution=32)

    small, large = arch_to_dict(network(3)), arch_to_dict(network(5))
    source = tmp_path / "fair.jsonl"
    source.write_text("".join(json.dumps(row) + "\n" for row in (
        {"arm": "learned", "seed": 0, "budget_madds": 10_000_000, "test_top1": 60.0, "arch": small},
        {"arm": "learned", "seed": 1, "budget_madds": 10_000_000, "test_top1": 62.0, "arch": large},
        {"arm": "manual", "seed": 0, "budget_madds": 10_000_000, "test_top1": 70.0},  # its arch: --networks
        {"arm": "manual", "seed": 1, "budget_madds": 10_000_000, "test_top1": 64.0})))
    networks = tmp_path / "networks.jsonl"
    networks.write_text(json.dumps({"arm": "manual", "seed": 0, "budget_madds": 10_000_000, "arch": small}) + "\n")
    command = [sys.executable, str(ROOT / "bench" / "longer_training.py"), str(source), "--budget-madds", "10M",
               "--networks", str(networks), "--epochs", "1", "--out", str(tmp_path / "out"),
               "--set", "data=synthetic:96,32",
               "--set", "train.test_subset=None", "--set", "train.batch_size=32"]
    environment = {**os.environ, "OMP_NUM_THREADS": "1"}
    printed = json.loads(subprocess.run(command, check=True, capture_output=True, text=True, env=environment).stdout)
    rows = results_table.read_rows(tmp_path / "out" / "rows.jsonl")
    assert [(row["arm"], row["seed"], row["source_test_top1"]) for row in rows] == [("learned", 1, 62.0),
                                                                                    ("manual", 0, 70.0)]
    assert rows[0]["arch"] == large and rows[1]["arch"] == small
    assert all(row["epochs"] == 1 and row["train_images"] == 96 for row in rows)  # all images, not the 15-epoch subset
    gap = printed["by_budget"]["10000000"]
    assert gap["learned_minus_manual_short"] == -8.0
    assert gap["learned_minus_manual"] == round(rows[0]["test_top1"] - rows[1]["test_top1"], 2)
    subprocess.run(command, check=True, capture_output=True, env=environment)
    assert len(results_table.read_rows(tmp_path / "out" / "rows.jsonl")) == 2  # finished trainings are skipped


def test_longer_training_says_when_the_best_row_has_no_network(tmp_path):
    source = tmp_path / "fair.jsonl"
    source.write_text(json.dumps({"arm": "manual", "seed": 0, "budget_madds": 10_000_000, "test_top1": 70.0}) + "\n")
    result = subprocess.run([sys.executable, str(ROOT / "bench" / "longer_training.py"), str(source),
                             "--budget-madds", "10M", "--arms", "manual", "--out", str(tmp_path / "out")],
                            capture_output=True, text=True)
    assert result.returncode != 0 and "holds no `arch`" in result.stderr


def test_the_committed_seed0_networks_rebuild_to_the_rows_costs():
    # The script itself checks each rebuilt network against its row's MAdds and params.
    printed = subprocess.run([sys.executable, str(ROOT / "bench" / "fair_seed0_networks.py")], check=True,
                             capture_output=True, text=True, env={**os.environ, "OMP_NUM_THREADS": "1"}).stdout
    committed = (ROOT / "docs" / "results" / "space_vs_manual_fair_seed0_networks.jsonl").read_text()
    assert [json.loads(line) for line in printed.splitlines()] == [json.loads(line) for line in committed.splitlines()]
    assert {json.loads(line)["arm"] for line in committed.splitlines()} == {"manual", "learned"}


def test_a_manual_block_translates_to_the_cell_of_the_same_receptive_field():
    from autospace.arch import InvertedResidual
    from autospace.arch.blocks import CellBlock, ZeroBlock
    from autospace.arch.cell import reference_cell
    from autospace.arch.network import LayerSlot
    from autospace.cost import block_cost

    translated = load_script("manual_in_learned")
    assert translated.as_cell(InvertedResidual(kernel=3, expansion=6)) == CellBlock(reference_cell())
    assert translated.as_cell(ZeroBlock()) == ZeroBlock()
    chain = translated.as_cell(InvertedResidual(kernel=7, expansion=3)).cell
    assert chain.expansion == 3 and [chain.op(0, 1), chain.op(1, 2), chain.op(2, 3)] == ["dwconv3x3"] * 3
    assert translated.as_cell(InvertedResidual(kernel=7, expansion=6), "k3") == CellBlock(reference_cell())
    slot = LayerSlot(index=1, in_channels=24, out_channels=24, stride=1, input_size=16, searchable=True)
    for expansion in (3, 6):  # k3: expand, depthwise, project, the same convs as the block
        block = InvertedResidual(kernel=3, expansion=expansion)
        assert block_cost(translated.as_cell(block), slot) == block_cost(block, slot)


def test_manual_in_learned_finds_the_seed0_manual_network_inside_the_learned_space_and_trains_it(tmp_path):
    results = ROOT / "docs" / "results"
    printed = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "manual_in_learned.py"),
         str(results / "space_vs_manual_fair_seed0_networks.jsonl"),
         "--space", str(results / "space_vs_manual_fair_seed0_space.json"), "--out", str(tmp_path),
         "--set", "data=synthetic:64,32", "--set", "train.test_subset=None", "--set", "train.train_subset=None",
         "--set", "train.epochs=1", "--set", "train.batch_size=32"],
        check=True, capture_output=True, text=True, env={**os.environ, "OMP_NUM_THREADS": "1"}).stdout
    row = json.loads(printed)
    assert row["held_by_space"] == [None, None, True, None, True, None, True, None, True, None, True]
    assert row["all_held"] and row["manual_test_top1"] == 80.27 and row["train_images"] == 64
    assert row["madds"] < 9_891_072  # stacked 3x3 depthwise convs cost less than 5x5 and 7x7 ones
    assert results_table.read_rows(tmp_path / "rows.jsonl")[0]["test_top1"] == row["test_top1"]
