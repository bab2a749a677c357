"""Does a latency table predict measured latency, and how well can it? One JSON line.

Draws `--networks` networks uniformly from a space (each layer a candidate, or
zero where the layer has a residual), predicts each one's latency from the table
and measures every network twice (test and retest: two sessions of `--rounds`
rounds in which the networks take turns pass by pass, as the table is timed),
under the table's conditions. The retest is the noise floor: a prediction can
rank the networks no better than the measurement ranks itself. Beside the table,
MAdds and #params are scored as predictors (the free baselines to beat), and the
table's old model (the plain sum of entries plus its overhead entry) too.

Where the error comes from: each network's segments (stem, layers, head) are also
timed inside its passes, so the prediction error splits into the entries against
the blocks timed in this network (`entries_error`) and the calibration against
the whole pass given those blocks (`calibration_error`). And the speed of a
virtual CPU moves by several percent over minutes: the table's anchor networks
are timed in turn with the test networks, as `autospace profile --latency-table`
times them beside a network, and the median ratio of their times now to their
times in the table is the machine's drift (`drift`, per session). The prediction
times the drift (`corrected_*`) is what the table predicts for this machine now:
profile reports that one.

    python bench/latency_table.py cifar-small --table runs/lat/manual.json --networks 40
    python bench/latency_table.py runs/e1/space.json --table runs/lat/learned.json --networks 40

A missing table (or missing entries) is measured first into --table; give a new
path for a fresh table.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

def mean(values) -> float:
    values = list(values)
    return sum(values) / len(values)


def error_figures(predicted, measured) -> dict:
    relative = [(p - m) / m for p, m in zip(predicted, measured)]
    return {"mean_relative_error": round(mean(abs(r) for r in relative), 4),
            "max_relative_error": round(max(abs(r) for r in relative), 4),
            "mean_signed_error": round(mean(relative), 4)}


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("space", help="preset (its manual space), nse:PRESET or a space.json")
    parser.add_argument("--table", required=True, help="latency table (measured, or extended, if needed)")
    parser.add_argument("--label", help="what the space is, for the row (default: the space argument)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--batch-size", type=int, default=1)
    parser.add_argument("--networks", type=int, default=40)
    parser.add_argument("--repeats", type=int, default=50, help="timed passes per network and round")
    parser.add_argument("--seed", type=int, default=0, help="draws the test networks")
    parser.add_argument("--rounds", type=int, default=3, help="rounds per session (the table's too)")
    args = parser.parse_args(argv)
    if not 3 <= args.networks <= 1000:
        parser.error(f"--networks is {args.networks}; it must be in [3, 1000] (a rank correlation needs 3)")

    import torch

    from autospace.cost import network_cost
    from autospace.latency.cli import table_space
    from autospace.latency.keys import network_keys
    from autospace.nb201.table import spearman  # plain Python, ties share ranks
    from autospace.latency.prediction import entries_sum_ms, network_latency_ms, slope
    from autospace.latency.drift import time_beside_anchors
    from autospace.latency.table import OVERHEAD_KEY
    from autospace.latency.timing import measure_latency_table, random_networks

    load_before = os.getloadavg()
    started = time.perf_counter()
    space = table_space(args.space)
    fresh_table = not Path(args.table).exists()
    table = measure_latency_table(space, args.device, args.batch_size, args.table, repeats=args.repeats,
                                  progress=False, rounds=args.rounds)
    table_s = time.perf_counter() - started
    networks = random_networks(space, args.networks, args.seed)
    measured, segments, drift = time_beside_anchors(networks, table, args.rounds, args.repeats)
    retest, _, retest_drift = time_beside_anchors(networks, table, args.rounds, args.repeats)

    predicted = [network_latency_ms(table, network) for network in networks]
    corrected = [p * (drift or 1.0) for p in predicted]  # what `profile --latency-table` reports
    sums = [entries_sum_ms(table, network) for network in networks]
    overhead = table.entries[OVERHEAD_KEY].value(table.statistic) if OVERHEAD_KEY in table.entries else 0.0
    plain = [total + overhead for total in sums]  # the model before issue 33: entries + overhead entry
    costs = [network_cost(network) for network in networks]
    # prediction - measured = [calibration applied to the in-context segments - measured]
    #                       + slope * [the entries - the same segments timed in this network]
    in_context = [sum(parts) for parts in segments]
    calibration = [(table.calibration.apply(s) if table.calibration is not None else s + overhead) - m
                   for s, m in zip(in_context, measured)]
    entries = [slope(table) * (total - s) for total, s in zip(sums, in_context)]
    block_errors = []
    for network, parts in zip(networks, segments):
        for key, part in zip(network_keys(network), parts):
            if key is not None and key in table.entries:
                block_errors.append((table.entries[key].value(table.statistic) - part) / part)
    calibration_share = mean(abs(c) / m for c, m in zip(calibration, measured))
    entries_share = mean(abs(e) / m for e, m in zip(entries, measured))
    result = {
        "bench": "latency_table", "space": args.label or args.space, "cpu": table.device_name,
        "device": table.device, "batch_size": table.batch_size, "threads": table.threads,
        "statistic": table.statistic, "torch": torch.__version__, "fresh_table": fresh_table,
        "networks": len(networks), "entries": len(table.entries), "seed": args.seed,
        "rounds": args.rounds, "repeats": args.repeats,
        "calibration": None if table.calibration is None else {
            "intercept_ms": table.calibration.intercept_ms, "slope": table.calibration.slope,
            "networks": len(table.calibration.pairs), "residual": table.calibration.residual,
            "noise": table.calibration.noise},
        "spearman_predicted_measured": round(spearman(predicted, measured), 4),
        **error_figures(predicted, measured),
        "anchors": len(table.anchors),
        "drift": None if drift is None else round(drift, 4),
        "retest_drift": None if retest_drift is None else round(retest_drift, 4),
        **{f"corrected_{name}": value for name, value in error_figures(corrected, measured).items()},
        "retest_spearman": round(spearman(retest, measured), 4),
        "retest_mean_relative_error": round(mean(abs(r - m) / m for r, m in zip(retest, measured)), 4),
        "retest_mean_signed_error": round(mean((r - m) / m for r, m in zip(retest, measured)), 4),
        "spearman_predicted_retest": round(spearman(predicted, retest), 4),
        "mean_signed_error_vs_retest": round(mean((p - r) / r for p, r in zip(predicted, retest)), 4),
        "spearman_madds_measured": round(spearman([cost.madds for cost in costs], measured), 4),
        "spearman_params_measured": round(spearman([cost.params for cost in costs], measured), 4),
        "spearman_plain_sum_measured": round(spearman(plain, measured), 4),
        "plain_sum_mean_signed_error": error_figures(plain, measured)["mean_signed_error"],
        "plain_sum_mean_relative_error": error_figures(plain, measured)["mean_relative_error"],
        "entries_error": round(entries_share, 4),
        "calibration_error": round(calibration_share, 4),
        "dominant_error": "entries" if entries_share > calibration_share else "calibration",
        "block_entry_vs_in_context": {"mean_relative_error": round(mean(abs(b) for b in block_errors), 4),
                                      "mean_signed_error": round(mean(block_errors), 4),
                                      "blocks": len(block_errors)},
        "measured_ms_range": [round(min(measured), 3), round(max(measured), 3)],
        "load_average_before": [round(x, 2) for x in load_before],
        "load_average_after": [round(x, 2) for x in os.getloadavg()],
        "table_s": round(table_s, 1),
        "wall_time_s": round(time.perf_counter() - started, 1),
    }
    print(json.dumps(result))
    return result


if __name__ == "__main__":
    main()
