"""Latency tables (issue 18): round trip, refusal, prediction = sum of entries, a tiny real measurement."""

from __future__ import annotations

import json
import random

import pytest

from autospace.arch.presets import preset_skeleton
from autospace.arch.space import manual_space
from autospace.cost.latency import (
    OVERHEAD_KEY, LatencyEntry, LatencyTable, block_key, fixed_keys, load_table, network_latency_ms,
    require_same_conditions, save_table,
)
from autospace.errors import AutospaceError
from autospace.nn.block_supernet import layer_choices


def fake_table(space, seed: int = 0, overhead: float = 0.0) -> LatencyTable:
    """Every key a network of `space` needs, with a distinct random time."""
    rng = random.Random(seed)
    skeleton = space.skeleton
    keys = fixed_keys(skeleton) + [block_key(block, slot) for slot, blocks in
                                   zip(skeleton.searchable_slots(), layer_choices(space)) for block in blocks
                                   if not block.is_empty()]
    entries = {key: LatencyEntry(rng.uniform(0.1, 2.0), 0.01, 5, rng.uniform(0.05, 0.1)) for key in keys}
    if overhead:
        entries[OVERHEAD_KEY] = LatencyEntry(overhead, 0.0, 3, overhead)
    return LatencyTable("cpu", "test cpu", 1, 1, "2.x", "fp32", statistic="median", entries=entries)


def small_space():
    return manual_space(preset_skeleton("cifar-small"))


def test_table_round_trips_through_json(tmp_path):
    table = fake_table(small_space())
    save_table(tmp_path / "t.json", table)
    assert load_table(tmp_path / "t.json") == table
    data = json.loads((tmp_path / "t.json").read_text())
    data["entries"][next(iter(data["entries"]))]["median_ms"] = -1
    (tmp_path / "bad.json").write_text(json.dumps(data))
    with pytest.raises(AutospaceError, match="damaged"):
        load_table(tmp_path / "bad.json")
    (tmp_path / "other.json").write_text("{}")
    with pytest.raises(AutospaceError, match="not a latency table"):
        load_table(tmp_path / "other.json")


def test_table_of_another_device_or_batch_size_is_refused_naming_both():
    table = fake_table(small_space())
    require_same_conditions(table, "cpu", "test cpu", 1)
    with pytest.raises(AutospaceError, match=r"cpu \(test cpu\) at batch size 1.*cuda:0 \(H200\) at batch size 1"):
        require_same_conditions(table, "cuda:0", "H200", 1)
    with pytest.raises(AutospaceError, match="batch size 1, but this is cpu \\(test cpu\\) at batch size 8"):
        require_same_conditions(table, "cpu", "test cpu", 8)


@pytest.mark.parametrize("statistic", ["median", "min"])
def test_predicted_latency_is_the_sum_of_the_entries(statistic):
    from dataclasses import replace

    space = small_space()
    table = replace(fake_table(space, overhead=0.25), statistic=statistic)
    rng = random.Random(1)
    for _ in range(5):
        network = space.skeleton.network([rng.choice(blocks) for blocks in layer_choices(space)])
        keys = fixed_keys(network) + [OVERHEAD_KEY] + [block_key(layer.block, slot) for layer, slot in
                                                       zip(network.layers, network.slots())
                                                       if slot.searchable and not layer.block.is_empty()]
        expected = sum(table.entries[key].value(statistic) for key in keys)
        assert network_latency_ms(table, network) == pytest.approx(expected, rel=1e-12)


def test_missing_entry_names_the_layer_and_the_command():
    space = small_space()
    table = fake_table(space)
    network = space.skeleton.network([blocks[0] for blocks in layer_choices(space)])
    key = block_key(network.layers[1].block, network.slots()[1])
    del table.entries[key]
    with pytest.raises(AutospaceError, match="no entry for layer 1.*autospace latency-table"):
        network_latency_ms(table, network)


def test_measured_table_covers_a_space_resumes_and_refuses_another_batch_size(tmp_path):
    from autospace.arch.blocks import CellBlock, InvertedResidual, MultiBranch
    from autospace.arch.cell import reference_cell
    from autospace.arch.network import Skeleton, Stage
    from autospace.arch.space import Candidate, SearchSpace
    from autospace.latency_timing import measure_latency_table

    skeleton = Skeleton(stages=(Stage(8, 2, 2),), stem_channels=8, first_channels=8, head_channels=16, resolution=8)
    multi = MultiBranch((InvertedResidual(3, 3), CellBlock(reference_cell())))
    space = SearchSpace(skeleton, ((Candidate(InvertedResidual(3, 3)), Candidate(multi)),
                                   (Candidate(CellBlock(reference_cell())), Candidate(InvertedResidual(5, 6)))))
    out = tmp_path / "t.json"
    table = measure_latency_table(space, "cpu", 1, out, warmup=1, repeats=3, progress=False)
    assert OVERHEAD_KEY in table.entries and load_table(out) == table
    rng = random.Random(0)
    for _ in range(4):  # every network of the space, multi-branch included, has a prediction
        network = skeleton.network([rng.choice(blocks) for blocks in layer_choices(space)])
        assert network_latency_ms(table, network) > 0
    again = measure_latency_table(space, "cpu", 1, out, warmup=1, repeats=3, progress=False)
    assert again == table  # nothing left to measure: the table is kept as it was
    with pytest.raises(AutospaceError, match="batch size 1.*batch size 2"):
        measure_latency_table(space, "cpu", 2, out, warmup=1, repeats=3, progress=False)
