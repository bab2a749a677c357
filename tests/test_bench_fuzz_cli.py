"""bench/fuzz_cli.py (issue 30): ten seeded hostile command lines, one JSON line back, none broken."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_fuzz_cli_quick(tmp_path):
    environment = {**os.environ, "OMP_NUM_THREADS": "1"}
    done = subprocess.run([sys.executable, str(ROOT / "bench" / "fuzz_cli.py"), "--inputs", "10", "--seed", "3",
                           "--log", str(tmp_path / "cases.jsonl")], capture_output=True, text=True, env=environment,
                          cwd=tmp_path, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    lines = done.stdout.strip().splitlines()
    assert len(lines) == 1
    result = json.loads(lines[0])
    assert result["inputs"] == 10 and set(result) >= {"inputs", "broken", "by_kind"}
    assert result["broken"] == 0, result["examples"]
    cases = [json.loads(line) for line in (tmp_path / "cases.jsonl").read_text().splitlines()]
    assert len(cases) == 10 and all(case["code"] in (0, 2) for case in cases)
