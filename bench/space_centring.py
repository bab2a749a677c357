"""Is the learned space centred on the budget? One JSON line per budget.

Two modes:
- `--simulate`: the DEA's population code alone, with pure-noise fitness (no
  training): what the admission rules do to a space by themselves. A space that
  is learned must not be shaped by them: the exported space should cost about
  the budget whatever the fitness says.
- default: real `autospace evolve` runs (the DEA settings of a run preset, e.g.
  the README's quick run) at each budget; rows also carry the supernet's held-out
  accuracy and the fitness persistence the run logged.

Each row: budget, the exported space's cheapest / uniform-mean / costliest network
over the budget, expansion counts (population at the start and end, exported),
and for real runs the fitness diagnostics.

    python bench/space_centring.py --simulate --preset cifar-small --budget-madds 5M 10M 15M 25M 40M 60M
    python bench/space_centring.py --data synthetic --budget-madds 10M 25M --out runs/centring
"""

from __future__ import annotations

import argparse
import json
import random
import time
from collections import Counter
from dataclasses import replace
from pathlib import Path

from autospace.arch.cell import reference_cell
from autospace.arch.presets import preset_skeleton
from autospace.cost.units import parse_madds
from autospace.evolve.layer_budget import fixed_madds, layer_budgets, space_madds_summary
from autospace.evolve.population import LayerPopulation


def expansion_counts(cells) -> dict[str, int]:
    counts = Counter(cell.expansion for cell in cells)
    return {f"e{e}": counts.get(e, 0) for e in (1, 3, 6)}


def simulate(preset: str, budget: int, seed: int, config) -> dict:
    """The DEA's regeneration loop with N(0, 0.1) fitness in place of training."""
    skeleton = preset_skeleton(preset)
    budgets = layer_budgets(skeleton, budget, reference_cell(), config.cap_slack, config.cap_floor)
    rng, noise = random.Random(seed), random.Random(seed + 100)
    populations = [LayerPopulation(slot, band, config.max_distance)
                   for slot, band in zip(skeleton.searchable_slots(), budgets)]
    for population in populations:
        population.initialise(config.population_size, rng)
    start = expansion_counts(c for p in populations for c in p.cells())
    steps_per_window = config.regenerate_every // config.candidates_per_layer
    for regeneration in range(config.regenerations):
        last = regeneration == config.regenerations - 1
        for population in populations:
            chosen = population.tournament(config.candidates_per_layer, config.tournament_size, rng)
            cells = [population.individuals[i].cell for i in chosen]
            population.write_back(cells, [noise.gauss(0.0, 0.1) for _ in cells],
                                  [population.individuals[i].count + steps_per_window for i in chosen],
                                  config.momentum)
            if not last:
                population.regenerate(config.offspring, config.tournament_size, config.max_age,
                                      steps_per_window, regeneration < config.regenerations // 2, rng)
    exported = [p.exported(config.top_k, steps_per_window, True) for p in populations]
    summary = space_madds_summary(fixed_madds(skeleton),
                                  [[p.madds(ind.cell) for ind in layer] for p, layer in zip(populations, exported)],
                                  budget, [slot.has_residual for slot in skeleton.searchable_slots()])
    return {"bench": "space_centring", "mode": "simulate", "preset": preset, "seed": seed, **summary,
            "population_start": start, "population_end": expansion_counts(c for p in populations for c in p.cells()),
            "exported": expansion_counts(ind.cell for layer in exported for ind in layer)}


def real_run(args, budget: int, out: Path) -> dict:
    """`autospace evolve` with the run preset's DEA settings (resumes or reuses a finished run)."""
    from autospace.arch.codec import load_space
    from autospace.runtime.atomic import read_jsonl
    from autospace.evolve import evolve
    from autospace.pipeline import load_run_config

    run = load_run_config(args.config, [f"data={args.data}", f"seed={args.seed}", "progress=false",
                                        f"device={args.device}"] + args.overrides)
    config = replace(run.evolve, budget_madds=budget, data=run.data, seed=run.seed, device=run.device,
                     progress=False, data_dir=args.data_dir)
    started = time.perf_counter()
    if not (out / "space.json").exists():
        evolve("autospace", config, out, resume=out.exists() and any(out.iterdir()))
    space = load_space(out / "space.json")
    history = read_jsonl(out / "history.jsonl")
    first, last = history[0]["populations"], history[-1]["populations"]

    def counts(populations):
        return Counter(f"e{entry['cell']['expansion']}" for layer in populations for entry in layer)

    diagnostics = space.metadata.get("fitness_diagnostics", {})
    return {"bench": "space_centring", "mode": "evolve", "config": args.config, "data": args.data,
            "preset": config.preset, "seed": args.seed, **space.metadata.get("space_madds", {}),
            "population_start": dict(counts(first)), "population_end": dict(counts(last)),
            "exported": dict(Counter(f"e{c.block.cell.expansion}" for layer in space.layers for c in layer
                                     if hasattr(c.block, "cell"))),
            "supernet_heldout_top1": diagnostics.get("heldout_top1"),
            "fitness_persistence": diagnostics.get("persistence"), "noise_warning": bool(diagnostics.get("warning")),
            "wall_s": round(time.perf_counter() - started, 1), "run_dir": str(out)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--budget-madds", nargs="+", default=["10M", "15M", "25M"])
    parser.add_argument("--simulate", action="store_true", help="population code with noise fitness, no training")
    parser.add_argument("--preset", default="cifar-small", help="skeleton (simulate mode)")
    parser.add_argument("--seeds", type=int, default=2, help="simulate mode: seeds 0..N-1 per budget")
    parser.add_argument("--regenerations", type=int, default=15, help="simulate mode")
    parser.add_argument("--config", default="quick", help="run preset whose evolve settings a real run uses")
    parser.add_argument("--data", default="synthetic")
    parser.add_argument("--data-dir", default=None)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default="runs/space_centring")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="override a run-preset key, e.g. evolve.epochs=2")
    args = parser.parse_args()
    budgets = [parse_madds(text) for text in args.budget_madds]
    if args.simulate:
        from autospace.pipeline import load_run_config

        evolve_config = load_run_config(args.config, args.overrides).evolve
        settings = argparse.Namespace(**{name: getattr(evolve_config, name) for name in (
            "cap_slack", "cap_floor", "max_distance", "population_size", "candidates_per_layer", "tournament_size",
            "momentum", "offspring", "max_age", "top_k", "regenerate_every")}, regenerations=args.regenerations)
        for budget in budgets:
            for seed in range(args.seeds):
                print(json.dumps(simulate(args.preset, budget, seed, settings)), flush=True)
        return
    for budget in budgets:
        print(json.dumps(real_run(args, budget, Path(args.out) / f"{budget // 1_000_000}M-seed{args.seed}")),
              flush=True)


if __name__ == "__main__":
    main()
