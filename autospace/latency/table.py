"""Per-device latency lookup tables (DESIGN 2.7): the table, its file format and its conditions.

A table holds the measured time of every module a network of a space can be
made of, each at the shape it runs at (`keys.py` names the entries): the stem,
every candidate block at its layer's slot (input channels and size, output
channels, stride), the fixed first block and the head (1x1 conv, pooling,
classifier), or an open-space cell's components. A network's predicted latency
is the sum of its entries (`prediction.py`; ProxylessNAS, once-for-all and NSE
do the same), so under per-layer distributions the expected latency is linear
in the probabilities, exactly like expected MAdds.

The measurement conditions (device and its name, threads, torch version,
precision, batch size) are part of the table: a table measured elsewhere is
refused where that matters, and `open_table` extends an existing table only
under its own conditions (`--latency-remeasure` starts one of this machine's
beside it). Plain data: torch is imported only to open a table for timing and
to read this machine's conditions.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

from autospace.errors import AutospaceError

# Random networks of the space timed beside the probes: their segments add samples (and contexts) to the entries,
# their whole passes fit the calibration. On the Xeon VM, 24 left keys of a learned space (111 entries) with one
# network's samples, and its table ranked 40 test networks at Spearman 0.90; 64 gave 0.97 (retest 0.98).
CALIBRATION_NETWORKS = 64
CALIBRATION_SEED = 1_000_003  # not a seed a bench draws its test networks with
# The first calibration networks are kept whole in the table with their times, as anchors: timed again beside a
# network when it is profiled, they say how far this machine's speed has moved since the table was made (on the
# Xeon VM: -19% to +11% within minutes, more than the table's own error), and the prediction is scaled by it.
ANCHOR_NETWORKS = 8

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
class Calibration:
    """A whole forward pass = intercept_ms + slope * (the sum of the network's entries), least squares over
    whole networks timed interleaved with the entries' probes (`timing.py` says why). `pairs` keeps every
    (sum of entries, measured whole) it was fitted on, so a table extended to a new space refits on all of
    them; `residual` is the fit's mean relative error on them, what a prediction can be trusted to."""
    intercept_ms: float
    slope: float
    pairs: tuple = ()        # ((sum_ms, whole_ms), ...)
    residual: float = 0.0
    noise: float | None = None  # mean relative difference of one network's whole time between two rounds

    def trust(self) -> str:
        noise = "" if self.noise is None else f"; the same network timed twice differed by {100 * self.noise:.1f}%"
        return (f"calibrated on {len(self.pairs)} whole networks: mean error {100 * self.residual:.1f}% on "
                f"them{noise}")

    def apply(self, sum_ms: float) -> float:
        return self.intercept_ms + self.slope * sum_ms


def fit_calibration(pairs, noise: float | None = None) -> Calibration:
    """Least-squares line through (sum of entries, whole) pairs; with too few or too alike sums to fit a
    slope, slope 1 and the median gap as the intercept. The slope is kept in [0.5, 2]: beyond that the
    entries, not the map, are wrong."""
    pairs = tuple((round(float(a), 5), round(float(b), 5)) for a, b in pairs)
    n = len(pairs)
    sums, wholes = [a for a, _ in pairs], [b for _, b in pairs]
    mean_sum, mean_whole = sum(sums) / n, sum(wholes) / n
    spread = sum((a - mean_sum) ** 2 for a in sums)
    slope = 1.0
    if n >= 5 and spread > 0:
        slope = sum((a - mean_sum) * (b - mean_whole) for a, b in pairs) / spread
    if not 0.5 <= slope <= 2.0:
        slope = 1.0
    if slope == 1.0:
        gaps = sorted(b - a for a, b in pairs)
        intercept = gaps[n // 2]
    else:
        intercept = mean_whole - slope * mean_sum
    residual = sum(abs(intercept + slope * a - b) / b for a, b in pairs) / n
    return Calibration(round(intercept, 5), round(slope, 5), pairs, round(residual, 5),
                       None if noise is None else round(noise, 5))


@dataclass(frozen=True)
class Anchor:
    """A whole network of the table (as its JSON, so an anchor serves every space the table covers) and the
    statistic of its whole passes when the table was timed."""
    network: dict
    whole_ms: float


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
    statistic: str = "median"  # which figure of each entry predictions use
    entries: dict = field(default_factory=dict)  # key -> LatencyEntry
    calibration: Calibration | None = None  # the fitted map from the sum of entries to a whole pass
    anchors: tuple = ()      # Anchor, ...: networks timed again at use to measure the machine's drift

    def with_entries(self, entries: dict) -> "LatencyTable":
        return replace(self, entries={**self.entries, **entries})

    def with_calibration(self, calibration: "Calibration | None") -> "LatencyTable":
        return replace(self, calibration=calibration)

    def with_anchors(self, anchors) -> "LatencyTable":
        return replace(self, anchors=tuple(anchors))

    def conditions(self) -> dict:
        return {key: value for key, value in asdict(self).items()
                if key not in ("entries", "calibration", "anchors")}

    def describe(self) -> str:
        return (f"{self.device} ({self.device_name}), batch {self.batch_size}, {self.threads} thread(s), "
                f"{self.precision}, torch {self.torch_version}")


# ---- files ---------------------------------------------------------------------------------------

def table_to_json(table: LatencyTable) -> dict:
    data = {"format": TABLE_FORMAT, **table.conditions(),
            "entries": {key: asdict(entry) for key, entry in sorted(table.entries.items())}}
    if table.calibration is not None:
        data["calibration"] = {**asdict(table.calibration), "pairs": [list(pair) for pair in table.calibration.pairs]}
    if table.anchors:
        data["anchors"] = [asdict(anchor) for anchor in table.anchors]
    return data


def calibration_from_json(data) -> Calibration | None:
    """A table's calibration, refitted from its pairs (the stored line is only a record of that fit)."""
    if data is None:
        return None
    pairs = data["pairs"]
    if not isinstance(pairs, list) or not pairs or len(pairs) > 100_000:
        raise ValueError("calibration pairs must be a non-empty list")
    checked = []
    for pair in pairs:
        a, b = (float(value) for value in pair)
        if not (0 <= a < float("inf") and 0 < b < float("inf")):
            raise ValueError("a calibration pair is not two finite times > 0")
        checked.append((a, b))
    noise = data.get("noise")
    if noise is not None and not 0 <= float(noise) < float("inf"):
        raise ValueError("calibration noise is not a finite number >= 0")
    return fit_calibration(checked, None if noise is None else float(noise))


def anchors_from_json(data) -> tuple:
    """A table's anchors, each network checked as an architecture file is (a table is user input)."""
    from autospace.arch.codec import network_from_dict

    if data is None:
        return ()
    if not isinstance(data, list) or len(data) > 1000:
        raise ValueError("anchors must be a list of at most 1000 networks")
    anchors = []
    for index, anchor in enumerate(data):
        whole = float(anchor["whole_ms"])
        if not 0 < whole < float("inf"):
            raise ValueError(f"anchor {index} has a time that is not a finite number > 0")
        network_from_dict(anchor["network"], f"anchor {index}")  # its AutospaceError is a ValueError: "damaged"
        anchors.append(Anchor(anchor["network"], whole))
    return tuple(anchors)


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
                             statistic=str(data.get("statistic", "median")), entries=entries,
                             calibration=calibration_from_json(data.get("calibration")),
                             anchors=anchors_from_json(data.get("anchors")))
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


# ---- opening a table to time into, and the conditions of this machine ---------------------------

def table_conditions(device, batch_size: int, threads: int, precision: str, warmup: int, statistic: str) -> dict:
    """The conditions of a table timed now on `device` (a torch.device)."""
    import torch

    from autospace.runtime.device import hardware_info

    info = hardware_info(device)
    return {"device": str(device), "device_name": info["device_name"], "batch_size": batch_size,
            "threads": threads, "torch_version": torch.__version__, "precision": precision,
            "channels_last": True, "warmup": warmup, "statistic": statistic}


def open_table(out, device: str, batch_size: int, threads: int, warmup: int, repeats: int, precision: str,
               statistic: str, rounds: int):
    """Check the timing arguments, set this process's threads for timing, and return (device, autocast
    dtype, table): the table at `out` to extend (refused when measured under other conditions), or a new one."""
    import torch

    from autospace.runtime.device import resolve_device, resolve_precision

    for name, value, (least, most) in (("batch size", batch_size, TABLE_INTEGER_RANGES["batch_size"]),
                                       ("threads", threads, TABLE_INTEGER_RANGES["threads"]),
                                       ("repeats", repeats, (1, 100_000)), ("warmup", warmup, (0, 100_000)),
                                       ("rounds", rounds, (1, 1000))):
        if isinstance(value, bool) or not isinstance(value, int) or not least <= value <= most:
            raise AutospaceError(f"{name} is {value!r}; it must be an integer in [{least}, {most:,}]")
    if statistic not in STATISTICS:
        raise AutospaceError(f"statistic {statistic!r} is unknown; valid: {', '.join(STATISTICS)}")
    device = resolve_device(device)
    if device.type == "cpu":
        torch.set_num_threads(threads)
    else:
        threads = torch.get_num_threads()  # host threads do not time a GPU kernel; recorded all the same
    autocast_dtype = resolve_precision(precision, device)
    precision = "bf16" if autocast_dtype is not None else "fp32"
    table = LatencyTable(**table_conditions(device, batch_size, threads, precision, warmup, statistic))
    if out is not None and Path(out).exists():
        old = load_table(out)
        require_same_conditions(old, table.device, table.device_name, batch_size, str(out))
        differences = condition_differences(old, table.conditions())
        if differences:  # one table, one set of conditions: never a mix
            raise AutospaceError(f"{out} was measured under other conditions ({describe_differences(differences)}); "
                                 f"a table is extended only where {', '.join(MATCHING_CONDITIONS)} match: use "
                                 f"--threads {old.threads} --precision {old.precision} on the machine and torch "
                                 f"version that measured it, or another output file")
        table = old
    return device, autocast_dtype, table


def here_conditions(table: LatencyTable) -> dict:
    """This machine's values of the conditions `table` must match to be used or extended here: device
    (its CUDA device when the table is a GPU's and one is here, else the CPU) and its name, torch version,
    and the threads the table was timed with, when this process can run that many (else the cores it has)."""
    import os

    import torch

    from autospace.runtime.device import hardware_info

    device = torch.device("cpu")
    if table.device.startswith("cuda") and torch.cuda.is_available():
        device = torch.device(table.device)
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    threads = table.threads if device.type != "cpu" or table.threads <= cores else cores
    return {"device": str(device), "device_name": hardware_info(device)["device_name"],
            "torch_version": torch.__version__, "threads": threads}


REMEASURE_HINT = "--latency-remeasure (measures what the run needs on this machine into TABLE.here.json)"


def require_table_conditions(table: LatencyTable, path, hint: str = REMEASURE_HINT) -> None:
    """Refuse in one line to use or extend `table` (read from `path`) where this machine's conditions differ
    from the ones it records, naming the fields that differ."""
    differences = condition_differences(table, here_conditions(table))
    if differences:
        raise AutospaceError(f"{path} was measured under other conditions ({describe_differences(differences)}); a "
                             f"latency table is used or extended only where {', '.join(MATCHING_CONDITIONS)} match; "
                             f"measure one here (`autospace latency-table SPACE --threads N -o NEW.json`) or pass "
                             f"{hint}")


def remeasured_table_path(path) -> Path:
    """Where `--latency-remeasure` keeps the table measured on this machine for `path`: TABLE.here.json."""
    path = Path(path)
    return path.with_name(f"{path.stem}.here.json")


def start_remeasured_table(path) -> Path:
    """A table beside `path` with this machine's conditions and `path`'s batch size, precision, warmup and
    statistic, holding no entries yet (a run measures the ones it needs into it); an existing one is kept
    when this machine's conditions match it. Returns its path."""
    old = load_table(path)
    new_path = remeasured_table_path(path)
    if new_path.exists():
        require_table_conditions(load_table(new_path), new_path, "another --latency-table")
        return new_path
    here = here_conditions(old)
    save_table(new_path, LatencyTable(**{**old.conditions(), **here}))
    return new_path


def dumps(table: LatencyTable) -> str:
    return json.dumps(table_to_json(table))
