"""Does a latency table predict measured latency? One JSON line.

Draws `--networks` networks uniformly from a space (each layer a candidate, or
zero where the layer has a residual), predicts each one's latency from the table
(the sum of its entries) and measures the whole network under the table's
conditions (device, batch size, threads, precision). Prints the Spearman rank
correlation and the mean relative error |predicted - measured| / measured, and
the load average before and after (timings on a shared machine are only as good
as the quiet they got).

    python bench/latency_table.py cifar-small --table runs/lat/manual.json
    python bench/latency_table.py runs/lat-space/space.json --table runs/lat/learned.json --networks 40

A missing table (or missing entries) is measured first into --table.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import time


def spearman(first, second) -> float:
    def ranks(values):
        order = sorted(range(len(values)), key=lambda i: values[i])
        result = [0.0] * len(values)
        position = 0
        while position < len(order):  # ties share their mean rank
            end = position
            while end + 1 < len(order) and values[order[end + 1]] == values[order[position]]:
                end += 1
            for k in range(position, end + 1):
                result[order[k]] = (position + end) / 2
            position = end + 1
        return result

    a, b = ranks(first), ranks(second)
    mean_a, mean_b = sum(a) / len(a), sum(b) / len(b)
    covariance = sum((x - mean_a) * (y - mean_b) for x, y in zip(a, b))
    scale = (sum((x - mean_a) ** 2 for x in a) * sum((y - mean_b) ** 2 for y in b)) ** 0.5
    return covariance / scale if scale else 0.0


def draw_networks(space, count: int, seed: int):
    from autospace.nn.block_supernet import layer_choices

    rng = random.Random(seed)
    choices = layer_choices(space)
    networks, seen = [], set()
    for _ in range(count * 20):
        blocks = tuple(rng.choice(blocks) for blocks in choices)
        if blocks not in seen:
            seen.add(blocks)
            networks.append(space.skeleton.network(list(blocks)))
        if len(networks) == count:
            break
    return networks


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("space", help="preset (its manual space), nse:PRESET or a space.json")
    parser.add_argument("--table", required=True, help="latency table (measured, or extended, if needed)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--batch-size", type=int, default=1)
    parser.add_argument("--networks", type=int, default=30)
    parser.add_argument("--repeats", type=int, default=50, help="timed passes per network and per table entry")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--rounds", type=int, default=3,
                        help="passes over all networks, each of --repeats timed passes (a burst of other work "
                             "spoils one round of a network, not all)")
    args = parser.parse_args(argv)

    import torch

    from autospace.cost import network_madds
    from autospace.latency.cli import table_space
    from autospace.latency.prediction import network_latency_ms
    from autospace.latency.timing import measure_latency_table, measure_network_ms

    load_before = os.getloadavg()
    started = time.perf_counter()
    space = table_space(args.space)
    table = measure_latency_table(space, args.device, args.batch_size, args.table, repeats=args.repeats,
                                  progress=False, rounds=args.rounds)
    networks = draw_networks(space, args.networks, args.seed)
    predicted = [network_latency_ms(table, network) for network in networks]
    rounds = [[] for _ in networks]
    for _ in range(args.rounds):  # interleaved: a burst of other work spoils one round of a network, not all
        for index, network in enumerate(networks):
            rounds[index].append(measure_network_ms(network, table, repeats=args.repeats))
    # the table's statistic: min of the rounds' minima, or the median of their medians
    measured = [min(values) if table.statistic == "min" else sorted(values)[len(values) // 2] for values in rounds]
    madds = [network_madds(network) for network in networks]
    errors = [abs(p - m) / m for p, m in zip(predicted, measured)]
    result = {
        "bench": "latency_table", "space": args.space, "device": table.device, "device_name": table.device_name,
        "batch_size": table.batch_size, "threads": table.threads, "torch": torch.__version__,
        "networks": len(networks), "entries": len(table.entries),
        "spearman_predicted_measured": round(spearman(predicted, measured), 4),
        "mean_relative_error": round(sum(errors) / len(errors), 4),
        "max_relative_error": round(max(errors), 4),
        "mean_signed_error": round(sum((p - m) / m for p, m in zip(predicted, measured)) / len(networks), 4),
        "spearman_madds_measured": round(spearman(madds, measured), 4),
        "measured_ms_range": [round(min(measured), 3), round(max(measured), 3)],
        "load_average_before": [round(x, 2) for x in load_before],
        "load_average_after": [round(x, 2) for x in os.getloadavg()],
        "wall_time_s": round(time.perf_counter() - started, 1),
    }
    print(json.dumps(result))
    return result


if __name__ == "__main__":
    main()
