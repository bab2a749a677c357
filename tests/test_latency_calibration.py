"""Latency tables that hold on another CPU (issue 33): the calibration, timing in turn, the bench's floor."""

from __future__ import annotations

import json
import random
from dataclasses import replace

import pytest

from autospace.errors import AutospaceError
from autospace.latency.keys import block_key, fixed_keys
from autospace.latency.prediction import (
    candidate_latencies_ms, entries_sum_ms, fixed_latency_ms, network_latency_ms, trust_note,
)
from autospace.latency.table import OVERHEAD_KEY, Calibration, fit_calibration, load_table, save_table
from autospace.nn.block_supernet import layer_choices
from test_latency import fake_table, small_space


def test_calibration_recovers_a_line_and_falls_back_to_the_median_gap():
    rng = random.Random(0)
    sums = [rng.uniform(2.0, 4.0) for _ in range(20)]
    fitted = fit_calibration([(s, 0.4 + 1.25 * s) for s in sums], noise=0.02)
    assert fitted.slope == pytest.approx(1.25, abs=1e-4) and fitted.intercept_ms == pytest.approx(0.4, abs=1e-4)
    assert fitted.residual == pytest.approx(0.0, abs=1e-4) and fitted.noise == 0.02
    few = fit_calibration([(1.0, 1.5), (2.0, 2.1), (3.0, 3.9)])  # too few pairs to trust a slope
    assert few.slope == 1.0 and few.intercept_ms == pytest.approx(0.5)  # the median of the gaps .1 .5 .9
    wild = fit_calibration([(s, 10 - 3 * s) for s in sums])  # a negative slope: the entries are wrong, not the map
    assert wild.slope == 1.0


def test_calibrated_prediction_is_the_line_through_the_sum_of_the_entries():
    space = small_space()
    calibration = Calibration(intercept_ms=-0.3, slope=1.2)
    table = replace(fake_table(space, overhead=0.25), calibration=calibration)
    rng = random.Random(2)
    for _ in range(5):
        network = space.skeleton.network([rng.choice(blocks) for blocks in layer_choices(space)])
        keys = fixed_keys(network) + [block_key(layer.block, slot) for layer, slot in
                                      zip(network.layers, network.slots())
                                      if slot.searchable and not layer.block.is_empty()]
        plain = sum(table.entries[key].value(table.statistic) for key in keys)  # the overhead entry is not used
        assert entries_sum_ms(table, network) == pytest.approx(plain, rel=1e-12)
        assert network_latency_ms(table, network) == pytest.approx(-0.3 + 1.2 * plain, rel=1e-12)
        # the search's linear form (fixed part + one candidate per layer) gives the same number
        rows = candidate_latencies_ms(table, space.skeleton, layer_choices(space))
        picks = [blocks.index(layer.block) for blocks, layer in
                 zip(layer_choices(space), [layer for layer, slot in zip(network.layers, network.slots())
                                            if slot.searchable])]
        linear = fixed_latency_ms(table, space.skeleton) + sum(row[i] for row, i in zip(rows, picks))
        assert linear == pytest.approx(network_latency_ms(table, network), rel=1e-12)


def test_calibration_round_trips_is_refitted_from_its_pairs_and_damage_is_refused(tmp_path):
    pairs = [(2.0 + 0.1 * i, 1.1 * (2.0 + 0.1 * i) + 0.2) for i in range(10)]
    table = replace(fake_table(small_space()), calibration=fit_calibration(pairs, noise=0.03))
    save_table(tmp_path / "t.json", table)
    assert load_table(tmp_path / "t.json") == table
    data = json.loads((tmp_path / "t.json").read_text())
    data["calibration"]["slope"] = 7.0  # the stored line is a record; the pairs decide
    (tmp_path / "edited.json").write_text(json.dumps(data))
    assert load_table(tmp_path / "edited.json").calibration.slope == pytest.approx(1.1, abs=1e-4)
    for damage in ([], [[1.0]], [[1.0, -2.0]], [["a", 1.0]], "pairs"):
        data["calibration"]["pairs"] = damage
        (tmp_path / "bad.json").write_text(json.dumps(data))
        with pytest.raises(AutospaceError, match="damaged"):
            load_table(tmp_path / "bad.json")
    assert "10 whole networks" in trust_note(table) and "3.0%" in trust_note(table)
    assert "uncalibrated" in trust_note(fake_table(small_space()))


def test_networks_take_turns_pass_by_pass(monkeypatch):
    """The whole passes alternate network by network (a drifting CPU then slows or speeds all of them
    alike); timing them one after the other would give each its own stretch of the drift."""
    import autospace.nn as nn_package
    from autospace.latency.timing import random_networks, time_networks
    import torch

    space = small_space()
    networks = random_networks(space, 3, seed=5)
    order = []
    build = nn_package.build_network

    def tagged(network):
        model = build(network)
        tag = len(order_models)
        order_models.append(model)
        model.register_forward_pre_hook(lambda module, inputs, tag=tag: order.append(tag))
        return model

    order_models = []
    monkeypatch.setattr(nn_package, "build_network", tagged)
    timed = time_networks(networks, torch.device("cpu"), 1, warmup=1, repeats=2)
    assert order == [0, 1, 2] * 3  # warmup + repeats turns, each network once per turn
    for (segments, whole), network in zip(timed, networks):
        assert len(whole) == 2 and all(t > 0 for t in whole)
        assert len(segments) == len(network.layers) + 2 and all(len(s) == 2 for s in segments)


def test_measured_table_is_calibrated_and_an_interrupted_table_is_calibrated_on_resume(tmp_path, monkeypatch):
    from autospace.arch.network import Skeleton, Stage
    from autospace.arch.blocks import InvertedResidual
    from autospace.arch.space import Candidate, SearchSpace
    import autospace.latency.timing as timing

    skeleton = Skeleton(stages=(Stage(8, 2, 2),), stem_channels=8, first_channels=8, head_channels=16, resolution=8)
    space = SearchSpace(skeleton, ((Candidate(InvertedResidual(3, 3)), Candidate(InvertedResidual(5, 6))),
                                   (Candidate(InvertedResidual(3, 1)), Candidate(InvertedResidual(5, 3)))))
    out = tmp_path / "t.json"
    real = timing.time_networks
    calls = []

    def interrupted(*args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    monkeypatch.setattr(timing, "time_networks", interrupted)
    with pytest.raises(KeyboardInterrupt):
        timing.measure_latency_table(space, "cpu", 1, out, warmup=1, repeats=3, rounds=2, progress=False,
                                     calibration_networks=4)
    kept = load_table(out)
    assert kept.entries and kept.calibration is None  # the finished round's entries, no fit on half the rounds
    monkeypatch.setattr(timing, "time_networks", real)
    table = timing.measure_latency_table(space, "cpu", 1, out, warmup=1, repeats=3, rounds=2, progress=False,
                                         calibration_networks=4)
    assert {key: entry for key, entry in table.entries.items()} == kept.entries  # entries kept, only calibrated
    assert table.calibration is not None and len(table.calibration.pairs) == 4 and OVERHEAD_KEY not in table.entries
    assert table.calibration.noise is not None
    again = timing.measure_latency_table(space, "cpu", 1, out, warmup=1, repeats=3, progress=False)
    assert again == table  # calibrated and complete: nothing measured
    with pytest.raises(AutospaceError, match="calibration networks is -1"):
        timing.measure_latency_table(space, "cpu", 1, tmp_path / "x.json", calibration_networks=-1)


def test_bench_reports_the_floor_the_baselines_and_where_the_error_comes_from(tmp_path, capsys):
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parents[1] / "bench" / "latency_table.py"
    spec = importlib.util.spec_from_file_location("latency_bench", path)
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    row = bench.main(["cifar-small", "--table", str(tmp_path / "t.json"), "--networks", "4", "--repeats", "2",
                      "--rounds", "1"])
    assert json.loads(capsys.readouterr().out.strip().splitlines()[-1]) == row
    for field in ("retest_spearman", "retest_mean_relative_error", "spearman_madds_measured",
                  "spearman_params_measured", "spearman_predicted_measured", "mean_signed_error",
                  "drift", "corrected_mean_relative_error", "entries_error", "calibration_error", "cpu"):
        assert field in row
    assert row["dominant_error"] in ("entries", "calibration") and row["fresh_table"] is True
    assert row["calibration"]["networks"] > 0 and row["anchors"] == 8  # a fresh table keeps 8 networks whole
    assert row["drift"] > 0 and row["retest_drift"] > 0
    assert -1 <= row["retest_spearman"] <= 1 and row["retest_mean_relative_error"] >= 0


def anchored_table(tmp_path, calibration_networks=10):
    """A small space's table, measured quickly (its anchors are real networks with real times)."""
    from autospace.latency.timing import measure_latency_table

    return measure_latency_table(small_space(), "cpu", 1, tmp_path / "t.json", warmup=1, repeats=3, rounds=2,
                                 progress=False, calibration_networks=calibration_networks)


def test_a_table_keeps_its_first_calibration_networks_as_anchors_and_refuses_damaged_ones(tmp_path):
    from autospace.arch.codec import network_from_dict, network_to_dict
    from autospace.latency.table import ANCHOR_NETWORKS, CALIBRATION_SEED
    from autospace.latency.timing import random_networks

    table = anchored_table(tmp_path)
    assert len(table.anchors) == ANCHOR_NETWORKS
    first = random_networks(small_space(), ANCHOR_NETWORKS, CALIBRATION_SEED)
    assert [anchor.network for anchor in table.anchors] == [network_to_dict(network) for network in first]
    # each anchor's time is its whole-pass figure in the calibration: the pair of the same network
    wholes = {round(entries_sum_ms(table, network_from_dict(a.network)), 5): a.whole_ms for a in table.anchors}
    pairs = dict(table.calibration.pairs)
    assert all(pairs[total] == whole for total, whole in wholes.items())
    assert load_table(tmp_path / "t.json") == table
    data = json.loads((tmp_path / "t.json").read_text())
    for damage in ({"network": data["anchors"][0]["network"], "whole_ms": 0},
                   {"network": {"layers": "x"}, "whole_ms": 1.0}, {"whole_ms": 1.0}):
        data["anchors"][0] = damage
        (tmp_path / "bad.json").write_text(json.dumps(data))
        with pytest.raises(AutospaceError, match="damaged"):
            load_table(tmp_path / "bad.json")


def test_drift_is_the_median_ratio_of_anchor_times_now_to_then():
    from autospace.latency.drift import drift_of
    from autospace.latency.table import Anchor

    table = replace(fake_table(small_space()), anchors=tuple(Anchor({}, then) for then in (1.0, 2.0, 4.0, 8.0)))
    assert drift_of(table, [1.1, 2.4, 4.0, 12.0]) == pytest.approx((1.1 + 1.2) / 2)  # ratios 1, 1.1, 1.2, 1.5
    assert drift_of(replace(table, anchors=table.anchors[:3]), [0.5, 2.4, 4.0]) == pytest.approx(1.0)


def test_profile_scales_the_prediction_by_the_drift_its_anchors_measure(tmp_path, monkeypatch):
    import autospace.latency.drift as drift_module
    from autospace.latency.profiling import profile_against_table
    from autospace.latency.timing import random_networks

    table = anchored_table(tmp_path)
    network = random_networks(small_space(), 1, seed=9)[0]
    predicted = network_latency_ms(table, network)
    # this machine now runs 1.2x slower than when the table was made: the anchors say so
    now = [1.2 * anchor.whole_ms for anchor in table.anchors]
    monkeypatch.setattr(drift_module, "time_in_turn", lambda networks, table, rounds, repeats: (
        [1.25 * predicted] + now, [[] for _ in networks]))
    result = profile_against_table(network, tmp_path / "t.json", "cpu", repeats=20)
    assert result["drift"] == pytest.approx(1.2) and result["table_latency_ms"] == pytest.approx(predicted, abs=1e-4)
    assert result["predicted_latency_ms"] == pytest.approx(1.2 * predicted, abs=1e-4)
    assert result["relative_error"] == pytest.approx(1.2 / 1.25 - 1, abs=1e-3)
    assert "8 anchor networks" in result["prediction_trust"]
    monkeypatch.undo()  # and for real: the network timed beside the anchors
    real = profile_against_table(network, tmp_path / "t.json", "cpu", repeats=20)
    assert 0.2 < real["drift"] < 5 and real["measured_latency_ms"] > 0
    assert real["predicted_latency_ms"] == pytest.approx(real["table_latency_ms"] * real["drift"], rel=1e-3)
    old = replace(table, anchors=())  # a table made before anchors: no correction, and the note says so
    save_table(tmp_path / "old.json", old)
    plain = profile_against_table(network, tmp_path / "old.json", "cpu", repeats=20)
    assert plain["drift"] is None and plain["predicted_latency_ms"] == plain["table_latency_ms"]
    assert "cannot correct" in plain["prediction_trust"]


def test_a_calibrated_table_whose_fixed_part_is_negative_still_prices_and_fits_networks():
    """A calibration's intercept (below zero on the Xeon VM: -0.58 to -0.98 ms) sits on the fixed part, which
    can then be negative; the expected latency, the budget fit and the latency penalty must still work."""
    import torch

    from autospace.cost.expected import expected_madds
    from autospace.search.budget import most_probable_within_budget

    space = small_space()
    plain = fake_table(space)
    intercept = -1.1 * fixed_latency_ms(plain, space.skeleton) - 0.5  # the fixed part comes to -0.5 ms
    table = replace(plain, calibration=Calibration(intercept_ms=intercept, slope=1.1))
    # in microseconds, as the search's latency constraint holds them
    fixed = 1000 * fixed_latency_ms(table, space.skeleton)
    rows = [[1000 * value for value in row]
            for row in candidate_latencies_ms(table, space.skeleton, layer_choices(space))]
    assert fixed < 0 < fixed + sum(min(row) for row in rows)
    probabilities = [torch.full((len(row),), 1.0 / len(row)) for row in rows]
    uniform = fixed + sum(sum(row) / len(row) for row in rows)
    assert float(expected_madds(probabilities, rows, fixed)) == pytest.approx(uniform, rel=1e-6)
    target = fixed + sum(min(row) for row in rows) + 1000.0
    choice = most_probable_within_budget([[0.0] * len(row) for row in rows], rows, fixed, target)
    assert fixed + sum(row[i] for row, i in zip(rows, choice)) <= target
    with pytest.raises(AutospaceError, match="cheapest network costs"):
        expected_madds(probabilities, rows, -(sum(min(row) for row in rows) + 1000.0))
