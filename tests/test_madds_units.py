"""MAdds figures on the command line (issue 32): a plain number too small for any network is a
figure written without its unit."""

from __future__ import annotations

import pytest

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
