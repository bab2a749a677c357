"""Command-line input checked before anything is made (issue 32): a MAdds figure without its unit,
a mistyped --data-dir."""

from __future__ import annotations

import pytest

from pathlib import Path

from autospace.cli import main
from autospace.cost.units import parse_madds
from autospace.errors import AutospaceError


@pytest.mark.parametrize("text, meant", [("15", "15M"), ("0.3", "0.3M"), (" 60 ", "60M"), ("9999", "9999M")])
def test_a_figure_without_its_unit_asks_whether_millions_were_meant(text, meant):
    with pytest.raises(AutospaceError, match=f"did you mean {meant}\\?"):
        parse_madds(text)


def test_figures_with_units_or_plausible_sizes_pass():
    assert parse_madds("15M") == 15_000_000 and parse_madds("0.3G") == 300_000_000
    assert parse_madds("15000000") == 15_000_000 and parse_madds("20K") == 20_000
    assert parse_madds(15_000_000) == 15_000_000


def test_the_cli_refuses_it_before_making_a_run_folder(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["run", "--budget-madds", "15", "--out", str(out), "--data", "synthetic"]) == 2
    assert "did you mean 15M?" in capsys.readouterr().err and not out.exists()
    assert main(["search", "--space", "manual", "--target-madds", "15", "--out", str(out)]) == 2
    assert "did you mean 15M?" in capsys.readouterr().err and not out.exists()


def test_a_mistyped_data_dir_creates_neither_it_nor_a_run_folder(tmp_path, capsys, monkeypatch):
    """Issue 32: checked before anything is made (the data folder a download would create, the run folder)."""
    monkeypatch.setenv("AUTOSPACE_NO_DOWNLOAD", "1")  # were the check missing: fail, never download
    typo, out = tmp_path / "shraed" / "data", tmp_path / "run"
    arch = str(Path(__file__).resolve().parents[1] / "configs" / "archs" / "cifar_small.json")
    for command in (["train", arch], ["run"], ["evolve"],
                    ["search", "--space", "manual"]):
        assert main([*command, "--data-dir", str(typo), "--out", str(out)]) == 2
        err = capsys.readouterr().err
        assert f"--data-dir {typo} does not exist" in err and len(err.strip().splitlines()) == 1
        assert not typo.exists() and not typo.parent.exists() and not out.exists()
