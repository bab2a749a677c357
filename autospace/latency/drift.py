"""How far this machine's speed has moved since a table was made, and networks timed under a table's conditions.

A virtual CPU's speed moves by several percent over minutes (on a 2-core Xeon VM: -19% to +11% between making
a table and using it), more than a calibrated table errs on the networks it was fitted on. A table keeps its
first calibration networks whole with their times (`table.Anchor`); timed again in turn with the networks
being measured, the median ratio of their times now to their times then is the drift, and a prediction
times the drift is what the table predicts for this machine now (`autospace profile --latency-table`).
"""

from __future__ import annotations

from typing import Sequence

from autospace.latency.table import LatencyTable


def time_in_turn(networks: Sequence, table: LatencyTable, rounds: int = 1, repeats: int = 50):
    """Per network its whole-pass figure and its segments' figures (stem, layers, head), under the table's
    device, threads, batch size, precision, warmup and statistic; the networks take turns pass by pass
    (`timing.time_networks`) in `rounds` rounds of `repeats` passes, as the table was timed."""
    import torch

    from autospace.latency.timing import restores_torch_threads, summarise, time_networks

    @restores_torch_threads
    def session():
        device = torch.device(table.device)
        if device.type == "cpu":
            torch.set_num_threads(table.threads)
        dtype = torch.bfloat16 if table.precision == "bf16" else None
        wholes = [[] for _ in networks]
        segments = [None for _ in networks]
        for _ in range(rounds):
            for index, (parts, whole) in enumerate(time_networks(networks, device, table.batch_size, table.warmup,
                                                                 repeats, dtype)):
                wholes[index] += whole
                segments[index] = parts if segments[index] is None else [a + b for a, b in zip(segments[index], parts)]
        return ([summarise(w).value(table.statistic) for w in wholes],
                [[summarise(s).value(table.statistic) for s in parts] for parts in segments])

    return session()


def anchor_networks(table: LatencyTable) -> list:
    from autospace.arch.codec import network_from_dict

    return [network_from_dict(anchor.network, f"anchor {index}") for index, anchor in enumerate(table.anchors)]


def drift_of(table: LatencyTable, anchor_times_now: Sequence[float]) -> float:
    """The median over the table's anchors of (time now / time when the table was made): above 1, this
    machine runs slower now."""
    ratios = sorted(now / anchor.whole_ms for now, anchor in zip(anchor_times_now, table.anchors))
    middle = len(ratios) // 2
    return ratios[middle] if len(ratios) % 2 else (ratios[middle - 1] + ratios[middle]) / 2


def time_beside_anchors(networks: Sequence, table: LatencyTable, rounds: int = 1, repeats: int = 50):
    """(per network its whole-pass figure, its segments' figures, the drift): the networks timed in turn with
    the table's anchors; the drift is None for a table without anchors (made before they were kept)."""
    anchors = anchor_networks(table)
    wholes, segments = time_in_turn(list(networks) + anchors, table, rounds, repeats)
    count = len(networks)
    drift = drift_of(table, wholes[count:]) if anchors else None
    return wholes[:count], segments[:count], drift


__all__ = ["anchor_networks", "drift_of", "time_beside_anchors", "time_in_turn"]
