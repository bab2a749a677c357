"""Does the search supernet rank networks? (issue 27, item 5)

Reads a finished proxyless search folder whose result.json holds a measured pick (`pick.candidates`:
networks inside the target, each with its shared-weight held-out top-1 after BN recalibration),
takes `--networks` of them spanning the range of those scores, trains each stand-alone with a
training recipe (`--train-config`, `--set KEY=VALUE` overrides), and prints one JSON line: Kendall tau
and Spearman of the supernet's held-out score against the stand-alone test top-1. This is the number
that says whether a measured pick can work. Trainings are run folders under --out: a rerun skips
finished ones and resumes an interrupted one.

    python bench/supernet_ranking.py --search-dir runs/r1/search --space learned --networks 8 \\
        --train-config cpu --out runs/ranking-learned >> docs/results/supernet_ranking.jsonl
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path

import torch


def spanning(count: int, ordered: list) -> list:
    """`count` items of `ordered` at evenly spaced positions, both ends included."""
    if count >= len(ordered):
        return list(ordered)
    return [ordered[round(i * (len(ordered) - 1) / (count - 1))] for i in range(count)] if count > 1 else ordered[:1]


def finite(value: float) -> float | None:
    """Rounded, or None where a correlation is undefined (every network scored alike)."""
    return round(value, 4) if math.isfinite(value) else None


def candidate_network(search_dir: Path, choice: list[int]):
    """The network of a pick candidate, rebuilt from the search's space and its choice indices."""
    from autospace.data import load_dataset
    from autospace.nn.block_supernet import BlockSupernet
    from autospace.runtime.config import load_config
    from autospace.search.config import SearchConfig
    from autospace.search.spaces import resolve_space

    config = load_config(SearchConfig, search_dir / "config.yaml")
    data = load_dataset(config.data, config.data_dir, config.image_size)
    space = resolve_space(config.space, config.preset, data.num_classes, data.channels, data.resolution)
    supernet = BlockSupernet(space, torch.Generator().manual_seed(0), zero_residual=config.zero_residual)
    return supernet.path_network(choice)


def main() -> None:
    from autospace.nb201.table import kendall, spearman
    from autospace.runtime.config import load_config
    from autospace.train import train
    from autospace.train.config import TrainConfig

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--search-dir", type=Path, required=True)
    parser.add_argument("--space", required=True, help="label of the row: learned, manual, ...")
    parser.add_argument("--networks", type=int, default=8)
    parser.add_argument("--train-config", default="cpu")
    parser.add_argument("--set", action="append", default=[], dest="overrides")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()

    result = json.loads((args.search_dir / "result.json").read_text())
    pick = result.get("pick", {})
    if pick.get("method") != "measured":
        sys.exit(f"supernet_ranking: {args.search_dir}/result.json holds no measured pick (pick=measured)")
    candidates = sorted(pick["candidates"], key=lambda c: c["heldout_top1"])
    chosen = spanning(args.networks, candidates)
    config = load_config(TrainConfig, args.train_config, args.overrides)
    started = time.perf_counter()
    rows = []
    for candidate in chosen:
        folder = args.out / ("net-" + "-".join(map(str, candidate["choice"])))
        metrics_path = folder / "metrics.json"
        if not metrics_path.exists():
            network = candidate_network(args.search_dir, candidate["choice"])
            train(network, config, folder, resume=folder.exists() and (folder / "config.yaml").exists())
        metrics = json.loads(metrics_path.read_text())
        rows.append({"choice": candidate["choice"], "madds": candidate["madds"],
                     "heldout_top1": candidate["heldout_top1"], "test_top1": metrics["test_top1"]})
    supernet_scores = [row["heldout_top1"] for row in rows]
    standalone = [row["test_top1"] for row in rows]
    print(json.dumps({
        "bench": "supernet_ranking", "space": args.space, "budget_madds": result["target_madds"],
        "search_dir": str(args.search_dir), "networks": len(rows),
        "kendall_tau": finite(kendall(supernet_scores, standalone)),
        "spearman": finite(spearman(supernet_scores, standalone)),
        "pick_heldout_images": pick.get("heldout_images"), "train_config": args.train_config,
        "train_overrides": args.overrides, "train_epochs": config.epochs, "train_subset": config.train_subset,
        "rows": rows, "seconds": round(time.perf_counter() - started, 1),
        "torch_version": torch.__version__}), flush=True)


if __name__ == "__main__":
    main()
