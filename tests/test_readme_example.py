"""The README's Python API example runs as written, and the API's functions are what `autospace.NAME` gives."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

REPOSITORY = Path(__file__).resolve().parents[1]


def run_python(code: str, cwd: Path, **environment) -> subprocess.CompletedProcess:
    """`code` in a fresh interpreter (nothing imported yet), on one thread."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", **environment}
    return subprocess.run([sys.executable, "-c", code], cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=600)


def readme_python_block() -> str:
    blocks = re.findall(r"^```python\n(.*?)^```", (REPOSITORY / "README.md").read_text(encoding="utf-8"),
                        flags=re.DOTALL | re.MULTILINE)
    assert len(blocks) == 1, f"README.md should hold one ```python block, not {len(blocks)}"
    return blocks[0]


def test_api_functions_win_over_the_subpackages_of_the_same_name(tmp_path):
    """Importing autospace.evolve / .search / .train (as touching their configs does) must not rebind
    `autospace.evolve` etc. to the subpackages: the README calls them."""
    code = """
import importlib, types
import autospace
autospace.EvolveConfig, autospace.SearchConfig, autospace.TrainConfig, autospace.NseConfig, autospace.RunConfig
import autospace.train.loop, autospace.search.spos, autospace.evolve.dea
from autospace.train import loop
assert isinstance(loop, types.ModuleType), loop
for name in ("evolve", "search", "train"):
    function = getattr(autospace, name)
    assert isinstance(function, types.FunctionType), (name, function)
    assert function is getattr(importlib.import_module("autospace." + name), name), name
print("ok")
"""
    result = run_python(code, tmp_path)
    assert result.returncode == 0 and result.stdout.strip() == "ok", result.stderr


def test_readme_python_example_runs_as_written(tmp_path):
    """The block, unchanged, in an empty folder (no run folder the CLI tour makes), on generated data."""
    result = run_python(readme_python_block(), tmp_path, AUTOSPACE_EXAMPLE_DATA="synthetic")
    assert result.returncode == 0, result.stderr[-3000:]
    assert "test top-1" in result.stdout
    for path in ("runs/api/evolve/space.json", "runs/api/search/arch.json", "runs/api/train/metrics.json",
                 "found.json", "space.png", "runs/api/train/export/model.onnx"):
        assert (tmp_path / path).is_file(), path
