"""The NB201 rows of docs/results, one run after another: `nb201_rank.py` over draw seeds and
`nb201_search.py` over search seeds, each in its own folder under --runs-dir.

Every run resumes from its checkpoint, so killing this driver and starting it again with the
same arguments loses at most one regeneration of one run. A finished run's JSON line goes to
RUN/row.json and is appended, unedited, to docs/results/nb201_rank.jsonl or nb201_search.jsonl
(once: a run whose row.json exists is skipped). One run at a time, never in parallel.

    OMP_NUM_THREADS=1 nohup python bench/nb201_rows.py --config cpu --runs-dir runs/nb201_rows \\
        --rank-seeds 201 202 203 --search-seeds 0 1 2 > runs/nb201_rows.log 2>&1 &
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

BENCH = Path(__file__).resolve().parent
RESULTS = BENCH.parent / "docs" / "results"


def planned(args) -> list[tuple[str, list[str], Path]]:
    runs = []
    for seed in args.rank_seeds:
        out = Path(args.runs_dir) / f"rank_{args.cells}_draw{seed}"
        runs.append(("nb201_rank", ["--cells", str(args.cells), "--draw-seed", str(seed)], out))
    for seed in args.search_seeds:
        out = Path(args.runs_dir) / f"search_seed{seed}"
        runs.append(("nb201_search", ["--set", f"seed={seed}"], out))
    return runs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default="cpu", help="nb201 preset (configs/nb201) or YAML path")
    parser.add_argument("--runs-dir", required=True, help="folder of the run folders")
    parser.add_argument("--cells", type=int, default=100, help="cells per rank draw")
    parser.add_argument("--rank-seeds", type=int, nargs="*", default=[201, 202, 203])
    parser.add_argument("--search-seeds", type=int, nargs="*", default=[0, 1, 2])
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    args = parser.parse_args()
    for script, extra, out in planned(args):
        if (out / "row.json").exists():
            print(f"{out}: done, skipped", flush=True)
            continue
        out.parent.mkdir(parents=True, exist_ok=True)
        command = [sys.executable, str(BENCH / f"{script}.py"), "--config", args.config, "--out", str(out), *extra]
        command += [item for setting in args.overrides for item in ("--set", setting)]
        print(f"{time.strftime('%H:%M:%S')} {' '.join(command)}", flush=True)
        done = subprocess.run(command, capture_output=True, text=True)
        if done.returncode != 0:
            print(done.stderr, flush=True)
            sys.exit(done.returncode)
        line = done.stdout.strip().splitlines()[-1]
        json.loads(line)  # one JSON line, or stop here
        (out / "row.json").write_text(line + "\n")
        with (RESULTS / f"{script}.jsonl").open("a") as file:
            file.write(line + "\n")
        print(f"{time.strftime('%H:%M:%S')} {out}: row appended to docs/results/{script}.jsonl", flush=True)


if __name__ == "__main__":
    main()
