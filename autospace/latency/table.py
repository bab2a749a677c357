"""Per-device latency lookup tables (DESIGN 2.7), plain data, no torch.

A table holds the measured time of every module a network of a space can be
made of, each at the shape it runs at: the stem, every candidate block at its
layer's slot (input channels and size, output channels, stride), the fixed
first block and the head (1x1 conv, pooling, classifier). A network's predicted
latency is the sum of its entries (ProxylessNAS, once-for-all and NSE do the
same), so under per-layer distributions the expected latency is linear in the
probabilities, exactly like expected MAdds.

Entries are keyed by strings that name the module and its shape; identical
layers of a stage share one entry. The measurement conditions (device and its
name, threads, torch version, precision, batch size) are part of the table:
a table measured elsewhere is refused where that matters.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Sequence

from autospace.arch.blocks import Block, MultiBranch, block_to_string, canonical_block
from autospace.arch.network import LayerSlot, conv_output_size
from autospace.errors import AutospaceError

TABLE_FORMAT = "autospace.latency-table/1"


STATISTICS = ("min", "median")
OVERHEAD_KEY = "network overhead"  # what a whole forward pass takes beyond the sum of its modules' entries


@dataclass(frozen=True)
class LatencyEntry:
    median_ms: float
    spread_ms: float  # interquartile range of the repeats
    repeats: int
    min_ms: float | None = None

    def value(self, statistic: str) -> float:
        return self.min_ms if statistic == "min" and self.min_ms is not None else self.median_ms


@dataclass(frozen=True)
class LatencyTable:
    device: str              # "cpu" or "cuda:N"
    device_name: str         # CPU model or GPU name: a table is only valid on the machine it describes
    batch_size: int
    threads: int
    torch_version: str
    precision: str           # fp32 or bf16
    channels_last: bool = True
    warmup: int = 0
    statistic: str = "min"   # which figure of each entry predictions use
    entries: dict = field(default_factory=dict)  # key -> LatencyEntry

    def with_entries(self, entries: dict) -> "LatencyTable":
        return LatencyTable(**{**self.conditions(), "entries": {**self.entries, **entries}})

    def conditions(self) -> dict:
        return {key: value for key, value in asdict(self).items() if key != "entries"}

    def describe(self) -> str:
        return (f"{self.device} ({self.device_name}), batch {self.batch_size}, {self.threads} thread(s), "
                f"{self.precision}, torch {self.torch_version}")


# ---- keys ----------------------------------------------------------------------------------------

def slot_shape(slot: LayerSlot) -> str:
    return f"{slot.in_channels}x{slot.input_size}->{slot.out_channels}s{slot.stride}"


def block_key(block: Block, slot: LayerSlot) -> str:
    return f"block {slot_shape(slot)} {block_to_string(canonical_block(block))}"


def stem_key(network) -> str:
    """`network`: a Network or a Skeleton (both carry the stem's settings)."""
    size = conv_output_size(network.resolution, network.stem_stride)
    return (f"stem {network.in_channels}x{network.resolution}->{network.stem_channels}x{size}"
            f"s{network.stem_stride} {network.activation}")


def head_key(network, last_channels: int, final_size: int) -> str:
    return (f"head {last_channels}x{final_size}->{network.head_channels}->{network.num_classes} "
            f"{network.activation}")


def fixed_keys(network) -> list[str]:
    """Stem, every non-searchable layer and head of a Network or Skeleton."""
    slots = network.slots()
    keys = [stem_key(network)]
    if hasattr(network, "first_block"):  # a Skeleton
        keys += [block_key(network.first_block, slot) for slot in slots if not slot.searchable]
    else:
        keys += [block_key(layer.block, slot) for layer, slot in zip(network.layers, slots) if not slot.searchable]
    return keys + [head_key(network, slots[-1].out_channels, slots[-1].output_size)]


# ---- lookups -------------------------------------------------------------------------------------

def _missing(table: LatencyTable, key: str, where: str) -> AutospaceError:
    return AutospaceError(
        f"the latency table has no entry for {where} ({key!r}); measure it with `autospace latency-table "
        f"SPACE --device {table.device} --batch-size {table.batch_size} -o TABLE.json` (an existing table is "
        f"extended)")


def entry_ms(table: LatencyTable, key: str, where: str = "a module") -> float:
    entry = table.entries.get(key)
    if entry is None:
        raise _missing(table, key, where)
    return entry.value(table.statistic)


def block_latency_ms(table: LatencyTable, block: Block, slot: LayerSlot) -> float:
    """A block's entry; an empty block costs 0. A multi-branch block without its own entry is the sum of
    its branches' entries (the mean of the branches is cheap next to them)."""
    if block.is_empty():
        return 0.0
    key = block_key(block, slot)
    if key in table.entries:
        return table.entries[key].value(table.statistic)
    block = canonical_block(block)
    if isinstance(block, MultiBranch):
        return sum(block_latency_ms(table, branch, slot) for branch in block.branches)
    raise _missing(table, key, f"layer {slot.index}")


def fixed_latency_ms(table: LatencyTable, network) -> float:
    """Stem, fixed blocks and head, plus the table's per-network overhead when it has one."""
    overhead = table.entries[OVERHEAD_KEY].value(table.statistic) if OVERHEAD_KEY in table.entries else 0.0
    return overhead + sum(entry_ms(table, key, "the stem, fixed block or head") for key in fixed_keys(network))


def network_latency_ms(table: LatencyTable, network) -> float:
    """Predicted latency of a Network: the sum of its entries."""
    searchable = sum(block_latency_ms(table, layer.block, slot)
                     for layer, slot in zip(network.layers, network.slots()) if slot.searchable)
    return fixed_latency_ms(table, network) + searchable


def candidate_latencies_ms(table: LatencyTable, skeleton, choices: Sequence[Sequence[Block]]) -> list[list[float]]:
    """Per searchable layer of `skeleton`, the entry of each block of `choices[l]`."""
    return [[block_latency_ms(table, block, slot) for block in blocks]
            for slot, blocks in zip(skeleton.searchable_slots(), choices)]


# ---- files ---------------------------------------------------------------------------------------

def table_to_json(table: LatencyTable) -> dict:
    return {"format": TABLE_FORMAT, **table.conditions(),
            "entries": {key: asdict(entry) for key, entry in sorted(table.entries.items())}}


# The range of each whole-number field of a table, as a config's fields are checked: a table is user input.
TABLE_INTEGER_RANGES = {"batch_size": (1, 65536), "threads": (1, 4096), "warmup": (0, 10**6), "repeats": (1, 10**9)}


def _table_integer(value, name: str, default=None) -> int:
    """A table's whole-number field, checked against `TABLE_INTEGER_RANGES` (1e400 and "16" are refused)."""
    if value is None and default is not None:
        return default
    low, high = TABLE_INTEGER_RANGES[name]
    if isinstance(value, float) and value.is_integer() and abs(value) < 2**63:
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise ValueError(f"{name} is {value!r}; it must be a whole number in [{low}, {high}]")
    return value


def _table_text(value, name: str) -> str:
    if not isinstance(value, str) or len(value) > 1000:
        raise ValueError(f"{name} must be a string of at most 1000 characters")
    return value


def table_from_json(data, source: str = "latency table") -> LatencyTable:
    if not isinstance(data, dict) or data.get("format") != TABLE_FORMAT:
        raise AutospaceError(f"{source} is not a latency table (format {TABLE_FORMAT!r}); make one with "
                             f"`autospace latency-table`")
    try:
        entries = {}
        for key, value in data["entries"].items():
            low = value.get("min_ms")
            entry = LatencyEntry(float(value["median_ms"]), float(value["spread_ms"]),
                                 _table_integer(value["repeats"], "repeats"), None if low is None else float(low))
            times = (entry.median_ms, entry.spread_ms, entry.median_ms if low is None else entry.min_ms)
            if not all(0 <= time < float("inf") for time in times):
                raise ValueError(f"entry {key!r} has a time that is not a finite number >= 0")
            entries[str(key)] = entry
        table = LatencyTable(device=_table_text(data["device"], "device"),
                             device_name=_table_text(data["device_name"], "device_name"),
                             batch_size=_table_integer(data["batch_size"], "batch_size"),
                             threads=_table_integer(data["threads"], "threads"),
                             torch_version=_table_text(data["torch_version"], "torch_version"),
                             precision=_table_text(data["precision"], "precision"),
                             channels_last=bool(data.get("channels_last", True)),
                             warmup=_table_integer(data.get("warmup"), "warmup", default=0),
                             statistic=str(data.get("statistic", "median")), entries=entries)
    except (KeyError, TypeError, ValueError, AttributeError, OverflowError) as error:
        raise AutospaceError(f"{source} is damaged ({error}); measure it again with `autospace latency-table`")
    if table.statistic not in STATISTICS:
        raise AutospaceError(f"{source} has statistic {table.statistic!r}; valid: {', '.join(STATISTICS)}")
    if table.batch_size < 1:
        raise AutospaceError(f"{source} has batch size {table.batch_size}; it must be >= 1")
    return table


def save_table(path: str | Path, table: LatencyTable) -> None:
    from autospace.runtime.atomic import atomic_write_json

    atomic_write_json(path, table_to_json(table))


def load_table(path: str | Path) -> LatencyTable:
    from autospace.runtime.parsing import parse_json, read_text_file

    path = Path(path)
    text = read_text_file(path, "latency table")  # refuses a missing, huge or endless file (/dev/zero)
    return table_from_json(parse_json(text, str(path)), str(path))


def require_same_conditions(table: LatencyTable, device: str, device_name: str, batch_size: int,
                            source: str = "the latency table") -> None:
    """Refuse to mix measurements of two devices or batch sizes."""
    if (table.device, table.device_name, table.batch_size) != (device, device_name, batch_size):
        raise AutospaceError(
            f"{source} was measured on {table.device} ({table.device_name}) at batch size {table.batch_size}, "
            f"but this is {device} ({device_name}) at batch size {batch_size}; use a table of this device and "
            f"batch size (or --device {table.device} --batch-size {table.batch_size})")


# The conditions a table records once and that must match wherever it is used to predict or extended
# with new entries: the machine (device, device_name), the software (torch_version) and how it times
# (threads, precision, batch_size, channels_last). warmup and statistic are how its samples are taken and
# summarised: an extension keeps the table's own.
MATCHING_CONDITIONS = ("device", "device_name", "torch_version", "threads", "precision", "batch_size",
                       "channels_last")


def condition_differences(table: LatencyTable, here: dict) -> dict:
    """{field: (the table's value, here's value)} for each field of `MATCHING_CONDITIONS` in `here` that differs."""
    recorded = table.conditions()
    return {name: (recorded[name], here[name]) for name in MATCHING_CONDITIONS
            if name in here and recorded[name] != here[name]}


def describe_differences(differences: dict) -> str:
    return ", ".join(f"{name} {old!r} in the table, {new!r} here" for name, (old, new) in differences.items())


def predicted_vs_measured(predicted_ms: float, measured_ms: float) -> dict:
    return {"predicted_latency_ms": round(predicted_ms, 4), "measured_latency_ms": round(measured_ms, 4),
            "relative_error": round((predicted_ms - measured_ms) / measured_ms, 4) if measured_ms > 0 else None}


def dumps(table: LatencyTable) -> str:
    return json.dumps(table_to_json(table))
