"""autospace run: evolve -> search -> train in one folder, report.md, resume at any stage."""

import importlib
import json

import pytest

from autospace.cli import main
from autospace.pipeline import load_run_config, run_pipeline

OVERRIDES = [
    "data=synthetic:256,64", "budget_madds=14000000", "device=cpu", "progress=false",
    "evolve.preset=cifar-small", "evolve.epochs=1", "evolve.batch_size=32", "evolve.population_size=4",
    "evolve.candidates_per_layer=2", "evolve.top_k=2", "evolve.regenerate_every=3",
    "search.epochs=2", "search.warmup_epochs=1", "search.batch_size=32", "search.arch_every=1",
    "train.epochs=2", "train.batch_size=32", "train.warmup_epochs=0.5",
]


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("pipeline") / "run"
    return out, run_pipeline(load_run_config(None, OVERRIDES), out)


def test_run_writes_every_stage_and_a_report(finished_run):
    out, metrics = finished_run
    tmp_path = out.parent
    for path in ("evolve/space.json", "search/arch.json", "search/result.json", "train/metrics.json",
                 "report.md", "config.yaml"):
        assert (tmp_path / "run" / path).exists(), path
    report = (tmp_path / "run" / "report.md").read_text()
    for heading in ("## Stages", "## Learned space", "## Found network", "## Final training", "## Resolved config"):
        assert heading in report
    assert 0.0 <= metrics["test_top1"] <= 100.0
    search_config = (tmp_path / "run" / "search" / "config.yaml").read_text()
    assert "evolve/space.json" in search_config and "target_madds: 14000000" in search_config


def test_run_resumes_in_the_stage_it_stopped(tmp_path, monkeypatch, finished_run):
    search_module = importlib.import_module("autospace.search")  # the subpackage; autospace.search is the function

    out = tmp_path / "run"
    config = load_run_config(None, OVERRIDES)
    real_search = search_module.search

    def killed_search(*args, **kwargs):
        real_search(*args, **kwargs, stop_after_epoch=1)
        raise KeyboardInterrupt  # the process dies mid-search

    monkeypatch.setattr(search_module, "search", killed_search)
    with pytest.raises(KeyboardInterrupt):
        run_pipeline(config, out)
    assert (out / "evolve" / "space.json").exists() and not (out / "search" / "arch.json").exists()
    monkeypatch.setattr(search_module, "search", real_search)
    run_pipeline(config, out, resume=True)
    reference = finished_run[0]
    assert (json.loads((out / "search" / "arch.json").read_text())["network"]
            == json.loads((reference / "search" / "arch.json").read_text())["network"])
    assert (json.loads((out / "train" / "metrics.json").read_text())["test_top1"]
            == json.loads((reference / "train" / "metrics.json").read_text())["test_top1"])


def test_manual_space_skips_evolution(tmp_path):
    run_pipeline(load_run_config(None, OVERRIDES + ["space_method=manual", "search_method=spos",
                                                     "search.population=4", "search.top=2",
                                                     "search.generations=1", "search.recalibration_batches=1",
                                                     "search.eval_batches=1", "search.mutations=2",
                                                     "search.crossovers=2"]), tmp_path / "manual")
    assert not (tmp_path / "manual" / "evolve").exists()
    assert (tmp_path / "manual" / "train" / "metrics.json").exists()


def test_cli_run_errors(tmp_path, capsys):
    assert main(["run", "--resume", str(tmp_path / "nothing")]) == 2
    assert "no run" in capsys.readouterr().err
    assert main(["run", "--out", str(tmp_path / "x"), "--set", "evolve.nope=1"]) == 2
    assert "evolve.nope" in capsys.readouterr().err


def test_cpu_preset_runs_end_to_end_with_tiny_overrides(tmp_path):
    """configs/run/cpu.yaml (issue 15's recipe) loads and runs; only sizes are shrunk here."""
    tiny = OVERRIDES + ["evolve.train_subset=256", "search.train_subset=256", "train.train_subset=256",
                        "train.eval_every=1", "evolve.warmup_epochs=0.5"]
    config = load_run_config("cpu", tiny)
    assert config.evolve.train_subset == 256 and config.search.warm_start  # the preset, then the overrides
    assert load_run_config("cpu", []).evolve.train_subset == 20000
    metrics = run_pipeline(config, tmp_path / "cpu")
    assert 0.0 <= metrics["test_top1"] <= 100.0
    space = json.loads((tmp_path / "cpu" / "evolve" / "space.json").read_text())
    assert "fitness_diagnostics" in space["metadata"] and "space_madds" in space["metadata"]


def test_report_says_why_a_fitted_network_differs_from_the_search_choice(finished_run, tmp_path):
    # The search's argmax under the budget band (a budget-blind search at a large target): the report
    # must not call it over the target, and must say that the fitting step set the size.
    import shutil

    from autospace.report.markdown import write_run_report

    out = tmp_path / "run"
    shutil.copytree(finished_run[0], out)
    result = json.loads((out / "search" / "result.json").read_text())
    result.update(argmax_madds=6_020_000, fitted_to_budget=True)
    (out / "search" / "result.json").write_text(json.dumps(result))
    write_run_report(out)
    report = (out / "report.md").read_text()
    assert "6.02M MAdds, 43% of the 14.0M target" in report and "over the target" not in report
    assert "the budget, not the search, set its size" in report


def test_run_record_is_what_the_stages_ran(finished_run):
    """The run-level config.yaml and report.md's "Resolved config" hold each stage's own config (issue 32):
    budget, space, method and preset as the stage folders used them, not the sections' defaults."""
    import re

    import yaml

    out, _ = finished_run
    record = yaml.safe_load((out / "config.yaml").read_text())
    for stage in ("evolve", "search", "train"):
        assert record[stage] == yaml.safe_load((out / stage / "config.yaml").read_text()), stage
    assert record["evolve"]["budget_madds"] == record["search"]["target_madds"] == 14_000_000
    assert record["search"]["space"] == str(out / "evolve" / "space.json")
    assert record["search"]["preset"] == "cifar-small" and record["nse"]["budget_madds"] == 14_000_000
    report = (out / "report.md").read_text()
    shown = re.search(r"## Resolved config\n\n```yaml\n(.*?)```", report, flags=re.DOTALL).group(1)
    assert yaml.safe_load(shown) == record


def test_run_record_of_a_manual_space_run_names_the_manual_space(tmp_path):
    from autospace.pipeline import recorded_run_config, stage_configs

    config = load_run_config(None, OVERRIDES + ["space_method=manual", "search_method=spos"])
    record = recorded_run_config(config, tmp_path)
    _, search, train = stage_configs(config, tmp_path)
    assert record.search == search and record.train == train
    assert (record.search.space, record.search.method, record.search.preset, record.search.target_madds) == (
        "manual", "spos", "cifar-small", 14_000_000)
    assert stage_configs(record, tmp_path) == stage_configs(config, tmp_path)  # resuming from the record
