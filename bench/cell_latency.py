"""Does the cell-component model predict the latency of DEA networks? One JSON line (issue 18).

Builds the DEA's per-layer latency bands for `--target-latency-ms` from a table of
the open space's cell components (`autospace latency-table open:PRESET`; measured
first into --table when missing), initialises a population per layer as the DEA
does, runs `--regenerations` regenerations with random fitness (so children of
mutation are drawn too), then draws `--networks` networks (one population cell per
layer), predicts each one's latency from the components and measures it whole under
the table's conditions. Prints the Spearman rank correlation and the mean relative
error, and the load average before and after.

    python bench/cell_latency.py cifar-small --table runs/lat/open.json --target-latency-ms 2.5 3.5 5
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from latency_table import spearman  # noqa: E402


def dea_networks(skeleton, table, target_ms: float, count: int, regenerations: int, seed: int):
    from autospace.arch.blocks import CellBlock
    from autospace.arch.cell import reference_cell
    from autospace.evolve.latency_budget import latency_bands, layer_latency_models
    from autospace.evolve.layer_budget import layer_budgets
    from autospace.evolve.population import LayerPopulation

    budgets = layer_budgets(skeleton, 10**12, reference_cell(), 1.08, 0.6)  # latency only: no MAdds cap in reach
    budgets = latency_bands(skeleton, budgets, table, target_ms, reference_cell(), 1.08, 0.6)
    rng = random.Random(seed)
    populations = [LayerPopulation(slot, band, 3, model) for slot, band, model in
                   zip(skeleton.searchable_slots(), budgets, layer_latency_models(table, skeleton))]
    for population in populations:
        population.initialise(16, rng)
    for regeneration in range(regenerations):
        for population in populations:
            population.write_back(population.cells(), [rng.gauss(0, 1) for _ in population.individuals],
                                  [ind.count + 10 for ind in population.individuals], 0.5)
            population.regenerate(2, 3, 8, 1, regeneration < regenerations // 2, rng)
    networks, seen = [], set()
    while len(networks) < count:
        cells = tuple(rng.choice(population.cells()) for population in populations)
        if cells not in seen:
            seen.add(cells)
            networks.append(skeleton.network([CellBlock(cell) for cell in cells]))
    return networks


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("preset", help="skeleton preset (cifar-small, cifar, imagenet)")
    parser.add_argument("--table", required=True, help="latency table with the open space's cell components")
    parser.add_argument("--target-latency-ms", type=float, nargs="+", required=True,
                        help="one or more targets: the networks are drawn from each target's populations in turn "
                             "(at one target they all cost about the same, and a rank correlation over a spread "
                             "of a few percent measures the timing noise)")
    parser.add_argument("--networks", type=int, default=30)
    parser.add_argument("--regenerations", type=int, default=20)
    parser.add_argument("--repeats", type=int, default=50, help="timed passes per network and round")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved passes over all networks")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    import torch

    from autospace.arch.presets import preset_skeleton
    from autospace.latency.prediction import cell_network_latency_ms, fixed_latency_ms, raw_cell_latency_ms
    from autospace.evolve.latency_budget import dea_latency_table
    from autospace.latency.timing import measure_network_ms

    load_before = os.getloadavg()
    started = time.perf_counter()
    skeleton = preset_skeleton(args.preset)
    table = dea_latency_table(args.table, skeleton)
    networks = []
    for position, target in enumerate(args.target_latency_ms):
        share = args.networks // len(args.target_latency_ms) + (position < args.networks % len(args.target_latency_ms))
        networks += dea_networks(skeleton, table, target, share, args.regenerations, args.seed + position)
    predicted = [cell_network_latency_ms(table, network) for network in networks]
    # without the fitted parts (per-part dispatch, network overhead): what the calibration adds
    raw = [fixed_latency_ms(table, network) + sum(raw_cell_latency_ms(table, layer.block.cell, slot)
                                                 for layer, slot in zip(network.layers, network.slots())
                                                 if slot.searchable) for network in networks]
    rounds = [[] for _ in networks]
    for _ in range(args.rounds):
        for index, network in enumerate(networks):
            rounds[index].append(measure_network_ms(network, table, repeats=args.repeats))
    measured = [min(values) if table.statistic == "min" else sorted(values)[len(values) // 2] for values in rounds]
    errors = [abs(p - m) / m for p, m in zip(predicted, measured)]
    result = {
        "bench": "cell_latency", "preset": args.preset, "target_latency_ms": args.target_latency_ms,
        "device": table.device, "device_name": table.device_name, "batch_size": table.batch_size,
        "threads": table.threads, "torch": torch.__version__, "networks": len(networks),
        "spearman_predicted_measured": round(spearman(predicted, measured), 4),
        "mean_relative_error": round(sum(errors) / len(errors), 4),
        "max_relative_error": round(max(errors), 4),
        "mean_signed_error": round(sum((p - m) / m for p, m in zip(predicted, measured)) / len(networks), 4),
        "mean_signed_error_uncalibrated": round(sum((r - m) / m for r, m in zip(raw, measured)) / len(networks), 4),
        "predicted_ms_range": [round(min(predicted), 3), round(max(predicted), 3)],
        "measured_ms_range": [round(min(measured), 3), round(max(measured), 3)],
        "load_average_before": [round(x, 2) for x in load_before],
        "load_average_after": [round(x, 2) for x in os.getloadavg()],
        "wall_time_s": round(time.perf_counter() - started, 1),
    }
    print(json.dumps(result))
    return result


if __name__ == "__main__":
    main()
