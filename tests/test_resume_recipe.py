"""One resume policy for every stage (issue 19): a resume may not change the recipe. The CLI answers
a changed key with one line naming it and exit status 2; the library refuses it too; either way the
run folder is left exactly as it was."""

from dataclasses import replace
from pathlib import Path

import pytest

from autospace.cli import main
from autospace.errors import AutospaceError
from autospace.runtime.config import load_saved_config
from autospace.runtime.run_lock import LOCK_NAME

COMMON = ["--data", "synthetic:96,32", "--device", "cpu", "--set", "progress=false", "--preset", "cifar-small"]
RUNS = {
    "evolve": ["evolve", "--budget-madds", "15M", "--set", "epochs=1", "--set", "batch_size=16",
               "--set", "population_size=4", "--set", "candidates_per_layer=2", "--set", "top_k=2",
               "--set", "regenerate_every=2", "--set", "diagnostic_paths=0"],
    "search": ["search", "--space", "manual", "--method", "proxyless-g", "--target-madds", "14M",
               "--set", "epochs=1", "--set", "warmup_epochs=0", "--set", "batch_size=16",
               "--set", "recalibration_batches=1"],
}


def snapshot(folder: Path) -> dict:
    """Every file's bytes (the lock file holds the last holder's process id, so it is left out)."""
    return {str(path.relative_to(folder)): path.read_bytes() for path in sorted(folder.rglob("*"))
            if path.is_file() and path.name != LOCK_NAME}


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    folders = {}
    for kind, argv in RUNS.items():
        out = tmp_path_factory.mktemp(kind) / "run"
        assert main(argv + COMMON + ["--out", str(out)]) == 0
        folders[kind] = out
    return folders


@pytest.mark.parametrize("kind", sorted(RUNS))
def test_cli_resume_with_a_changed_recipe_is_refused_naming_the_keys(kind, finished, capsys):
    out = finished[kind]
    before = snapshot(out)
    capsys.readouterr()
    code = main([kind, "--resume", str(out), "--set", "seed=7", "--set", "batch_size=8"])
    error = capsys.readouterr().err
    assert code == 2, error
    assert "Traceback" not in error and len(error.strip().splitlines()) == 1, error
    assert "cannot resume" in error and "seed: 0 -> 7" in error and "batch_size: 16 -> 8" in error, error
    assert snapshot(out) == before


@pytest.mark.parametrize("kind", sorted(RUNS))
def test_library_resume_with_a_changed_recipe_is_refused_naming_the_keys(kind, finished):
    from autospace.evolve import EvolveConfig, evolve
    from autospace.search import SearchConfig, search

    out = finished[kind]
    before = snapshot(out)
    if kind == "evolve":
        config = replace(load_saved_config(EvolveConfig, out), epochs=3)
        with pytest.raises(AutospaceError, match=r"cannot resume .*epochs: 1 -> 3"):
            evolve("autospace", config, out, resume=True)
    else:
        config = replace(load_saved_config(SearchConfig, out), target_madds=12_000_000)
        with pytest.raises(AutospaceError, match=r"cannot resume .*target_madds: 14000000 -> 12000000"):
            search(config, out, resume=True)
    assert snapshot(out) == before
