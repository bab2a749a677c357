"""Does the search supernet rank networks? (issue 27, item 5)

Reads a finished proxyless search folder whose result.json holds a measured pick (`pick.candidates`:
networks inside the target, each with its shared-weight held-out top-1 after BN recalibration),
takes `--networks` of them spanning the range of those scores, trains each stand-alone with a
training recipe (`--train-config`, `--set KEY=VALUE` overrides), and prints one JSON line: Kendall tau
and Spearman of the supernet's held-out score against the stand-alone test top-1. This is the number
that says whether a measured pick can work.

The chosen networks go to OUT/plan.json as plain architectures with their scores, and every finished
training appends one row to OUT/networks.jsonl; both are small, so a ranking that outlives a session
(16 trainings are hours of CPU) can be committed and resumed from them without the search folder or
its supernet: `--plan FILE --networks-file FILE`. A rerun skips finished networks and resumes an
interrupted training from its folder. `--max-trainings N` stops after N new trainings (the summary
line then says `complete: false`).

    python bench/supernet_ranking.py --search-dir runs/r1/search --space learned --networks 8 \\
        --train-config cpu --out runs/ranking-learned >> docs/results/supernet_ranking.jsonl
    python bench/supernet_ranking.py --plan saved/plan.json --networks-file saved/networks.jsonl \\
        --space learned --train-config cpu --out runs/ranking-learned   # resume in a later session
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


def plan_from_search(search_dir: Path, count: int) -> dict:
    """`count` pick candidates spanning the supernet's scores, as plain architectures."""
    from autospace.arch.codec import arch_to_dict

    result = json.loads((search_dir / "result.json").read_text())
    pick = result.get("pick", {})
    if pick.get("method") != "measured":
        sys.exit(f"supernet_ranking: {search_dir}/result.json holds no measured pick; search with pick=measured")
    candidates = sorted(pick["candidates"], key=lambda c: c["heldout_top1"])
    return {"search_dir": str(search_dir), "budget_madds": result["target_madds"],
            "pick_heldout_images": pick.get("heldout_images"),
            "networks": [{"choice": c["choice"], "madds": c["madds"], "heldout_top1": c["heldout_top1"],
                          "arch": arch_to_dict(candidate_network(search_dir, c["choice"]))}
                         for c in spanning(count, candidates)]}


def network_key(entry: dict) -> str:
    return "net-" + "-".join(map(str, entry["choice"]))


def main() -> None:
    from autospace.arch.codec import arch_from_dict
    from autospace.nb201.table import kendall, spearman
    from autospace.runtime.atomic import append_jsonl, atomic_write_json, read_jsonl
    from autospace.runtime.config import load_config
    from autospace.train import train
    from autospace.train.config import TrainConfig

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--search-dir", type=Path, help="a finished search with a measured pick")
    source.add_argument("--plan", type=Path, help="a plan.json written by an earlier run")
    parser.add_argument("--space", required=True, help="label of the row: learned, manual, ...")
    parser.add_argument("--networks", type=int, default=8)
    parser.add_argument("--train-config", default="cpu")
    parser.add_argument("--set", action="append", default=[], dest="overrides")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--networks-file", type=Path, help="finished networks' rows (default OUT/networks.jsonl)")
    parser.add_argument("--max-trainings", type=int, help="stop after this many new trainings")
    args = parser.parse_args()

    plan_path = args.out / "plan.json"
    if args.plan is not None:
        plan = json.loads(args.plan.read_text())
    elif plan_path.exists():
        plan = json.loads(plan_path.read_text())
    else:
        plan = plan_from_search(args.search_dir, args.networks)
    if not plan_path.exists():  # the plan of the first run here stays (a resumed --plan may list it reordered)
        atomic_write_json(plan_path, plan)
    networks_file = args.networks_file or args.out / "networks.jsonl"
    config = load_config(TrainConfig, args.train_config, args.overrides)
    started = time.perf_counter()
    trained = 0
    for entry in plan["networks"]:
        # read afresh each time: another process may rank the same plan from its other end into this file
        if any(row["key"] == network_key(entry) for row in read_jsonl(networks_file)):
            continue
        if args.max_trainings is not None and trained >= args.max_trainings:
            break
        folder = args.out / network_key(entry)
        if not (folder / "metrics.json").exists():
            train(arch_from_dict(entry["arch"]), config, folder,
                  resume=folder.exists() and (folder / "config.yaml").exists())
            trained += 1
        metrics = json.loads((folder / "metrics.json").read_text())
        append_jsonl(networks_file, {
            "bench": "supernet_ranking_network", "space": args.space, "key": network_key(entry),
            "choice": entry["choice"], "madds": entry["madds"], "params": metrics["params"],
            "heldout_top1": entry["heldout_top1"], "test_top1": metrics["test_top1"],
            "train_config": args.train_config, "train_overrides": args.overrides,
            "train_seconds": metrics.get("wall_time_s"), "device": metrics.get("device")})
    finished = {row["key"]: row for row in read_jsonl(networks_file)}
    rows = [{"choice": entry["choice"], "madds": entry["madds"], "heldout_top1": entry["heldout_top1"],
             "test_top1": finished[network_key(entry)]["test_top1"]}
            for entry in plan["networks"] if network_key(entry) in finished]
    supernet_scores = [row["heldout_top1"] for row in rows]
    standalone = [row["test_top1"] for row in rows]
    print(json.dumps({
        "bench": "supernet_ranking", "space": args.space, "budget_madds": plan["budget_madds"],
        "search_dir": plan["search_dir"], "networks": len(rows), "planned": len(plan["networks"]),
        "complete": len(rows) == len(plan["networks"]),
        "kendall_tau": finite(kendall(supernet_scores, standalone)) if len(rows) > 1 else None,
        "spearman": finite(spearman(supernet_scores, standalone)) if len(rows) > 1 else None,
        "pick_heldout_images": plan.get("pick_heldout_images"), "train_config": args.train_config,
        "train_overrides": args.overrides, "train_epochs": config.epochs, "train_subset": config.train_subset,
        "rows": rows, "seconds": round(time.perf_counter() - started, 1),
        "torch_version": torch.__version__}), flush=True)


if __name__ == "__main__":
    main()
