"""Learned against manual, decided (issue 28): three arms treated alike, paired by seed, two budgets.

Per seed, one AutoSpace evolve whose space serves the whole budget range (`budget_madds` the lowest
budget, `budget_madds_max` the highest); then, per budget, three arms with the same search method,
settings, measured pick, final training, data subsets and seeds:
- `learned`: the evolved space, its search supernet started from the DEA's weights (warm start);
- `manual`: the ProxylessNAS space, whose search supernet first gets as many uniform single-path weight
  steps as the evolve gave the DEA supernet (`search.pretrain_steps`: equal supernet compute). The
  evolve's config fixes that count, so `--arms manual` runs without waiting for the evolve (the count
  is checked against space.json once the evolve exists);
- `union`: the evolved space with the manual blocks added to every layer (`union:PATH`), warm-started
  like `learned` (if it loses to manual, the search fails, not the space).
Every finished arm appends one row to OUT/rows.jsonl (the space_vs_manual row format plus `arm`, the
pick's held-out score and the evolve's diagnostics); a rerun skips finished arms and resumes an
interrupted stage. Prints one JSON line; `bench/results_table.py OUT/rows.jsonl` prints the table with
the paired differences and their 95% intervals.

    OMP_NUM_THREADS=1 python bench/space_vs_manual_fair.py --config cpu --budget-madds 10M 20M --seed-ids 0 \\
        --out runs/fair   # one process per seed (two 1-thread processes at a time on 2 cores)
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import replace
from pathlib import Path

import torch

from autospace.arch.codec import arch_to_dict, load_arch
from autospace.cost.units import parse_madds
from autospace.pipeline import load_run_config, search_initialiser
from autospace.runtime.atomic import append_jsonl, read_optional_json

ARMS = ("learned", "manual", "union")


def finished_rows(path: Path) -> list[dict]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def stage(function, out: Path, done_file: str, *args, **kwargs):
    """Run a stage into `out` unless its output exists; resume it when the folder holds a run."""
    if (out / done_file).exists():
        return None
    return function(*args, out, resume=(out / "config.yaml").exists(), **kwargs)


def elapsed(folder: Path, name: str) -> float | None:
    """A finished stage's wall seconds as it recorded them."""
    data = read_optional_json(folder / name) or {}
    value = data.get("wall_time_s") or (data.get("metadata") or {}).get("wall_time_s")
    return None if value is None else round(float(value), 1)


def evolve_weight_steps(config) -> int:
    """The DEA supernet's weight steps an evolve with `config` makes (epochs x batches per epoch of its
    training part), computed as the evolve computes it, without running it."""
    from autospace.data import load_dataset

    dataset = load_dataset(config.data, config.data_dir, config.image_size)
    images = dataset.train_labels.numel() if config.train_subset is None else config.train_subset
    training_part = images - int(round(config.validation_fraction * images))
    return config.epochs * (training_part // config.batch_size)


def main() -> None:
    from autospace.evolve import evolve
    from autospace.search import search
    from autospace.train import train

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default="cpu", help="run preset (configs/run) or YAML path")
    parser.add_argument("--budget-madds", nargs="+", default=["10M", "20M"])
    parser.add_argument("--seed-ids", type=int, nargs="+", default=[0])
    parser.add_argument("--arms", nargs="+", default=list(ARMS), choices=ARMS)
    parser.add_argument("--out", type=Path, default=Path("runs/fair"))
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    args = parser.parse_args()
    budgets = sorted(parse_madds(text) for text in args.budget_madds)
    rows_path = args.out / "rows.jsonl"

    for seed in args.seed_ids:
        run = load_run_config(args.config, [f"seed={seed}", "progress=false", *args.overrides])
        shared = {"data": run.data, "data_dir": run.data_dir, "seed": seed, "device": run.device,
                  "precision": run.precision, "progress": False, "image_size": run.image_size}
        evolve_config = replace(run.evolve, budget_madds=budgets[0], budget_madds_max=budgets[-1], **shared)
        evolve_dir = args.out / f"evolve-seed{seed}"
        if set(args.arms) != {"manual"}:
            stage(lambda config, out, resume: evolve("autospace", config, out, resume=resume), evolve_dir,
                  "space.json", evolve_config)
        space = (read_optional_json(evolve_dir / "space.json") or {}).get("metadata") or {}
        equal_steps = evolve_weight_steps(evolve_config)
        if space and space["steps"] != equal_steps:
            raise SystemExit(f"space_vs_manual_fair: the evolve made {space['steps']} weight steps, its config "
                             f"says {equal_steps}; rerun the evolve or fix evolve_weight_steps")
        for budget in budgets:
            for arm in args.arms:
                key = (arm, seed, budget)
                if any((row["arm"], row["seed"], row["budget_madds"]) == key for row in finished_rows(rows_path)):
                    continue
                started = time.perf_counter()
                name = {"learned": str(evolve_dir / "space.json"), "manual": "manual",
                        "union": f"union:{evolve_dir / 'space.json'}"}[arm]
                search_config = replace(run.search, space=name, target_madds=budget, method=run.search_method,
                                        preset=evolve_config.preset,
                                        pretrain_steps=equal_steps if arm == "manual" else 0, **shared)
                folder = args.out / f"{arm}-{budget // 1_000_000}M-seed{seed}"
                stage(lambda config, out, resume: search(config, out, resume=resume,
                                                         initialise_supernet=search_initialiser(config)),
                      folder / "search", "arch.json", search_config)
                stage(lambda network, out, resume: train(network, replace(run.train, **shared), out, resume=resume),
                      folder / "train", "metrics.json", load_arch(folder / "search" / "arch.json"))
                metrics = json.loads((folder / "train" / "metrics.json").read_text())
                result = json.loads((folder / "search" / "result.json").read_text())
                pick = result.get("pick") or {}
                diagnostics = space.get("fitness_diagnostics") or {}
                row = {
                    "bench": "space_vs_manual_fair", "config": args.config, "overrides": args.overrides, "arm": arm,
                    "space_method": "manual" if arm == "manual" else "autospace", "search_method": run.search_method,
                    "budget_madds": budget, "seed": seed, "data": run.data, "test_top1": metrics["test_top1"],
                    "madds": metrics["madds"], "params": metrics["params"],
                    "arch": arch_to_dict(load_arch(folder / "search" / "arch.json")),
                    "madds_over_target": result.get("madds_over_target"),
                    "pick_method": pick.get("method"),
                    "pick_heldout_top1": (pick["candidates"][pick["picked"]]["heldout_top1"] if pick.get("candidates")
                                          else None),
                    "pretrain_steps": search_config.pretrain_steps,
                    "evolve_heldout_top1": diagnostics.get("heldout_top1"),
                    "fitness_persistence": diagnostics.get("persistence"),
                    "fitness_noise_warning": bool(diagnostics.get("warning")),
                    "stage_seconds": {"evolve": space.get("wall_time_s"),
                                      "search": elapsed(folder / "search", "result.json"),
                                      "train": metrics.get("wall_time_s")},
                    "device": metrics.get("device"), "torch_version": torch.__version__, "run_dir": str(folder),
                    "wall_seconds_this_process": round(time.perf_counter() - started, 1)}
                append_jsonl(rows_path, row)
    rows = finished_rows(rows_path)
    print(json.dumps({"bench": "space_vs_manual_fair", "config": args.config, "budgets": budgets,
                      "seeds": args.seed_ids, "arms": args.arms, "rows": str(rows_path), "finished": len(rows)}))


if __name__ == "__main__":
    main()
