"""Latency (DESIGN 2.7): lookup tables (`table`: format, conditions, open/extend; `keys`: what the
entries are called), prediction from a table (`prediction`), timing of blocks (`timing`) and of open-space
cell components (`cell_timing`), profiling a network (`profiling`) and `autospace latency-table` (`cli`)."""

from autospace.runtime.lazy import lazy_exports

_EXPORTS = {
    "LatencyEntry": "table", "LatencyTable": "table", "load_table": "table", "save_table": "table",
    "block_key": "keys", "cell_components": "keys",
    "cell_latency_ms": "prediction", "network_latency_ms": "prediction", "fixed_latency_ms": "prediction",
    "measure_latency_table": "timing", "measure_network_ms": "timing", "latency_table_for": "timing",
    "measure_cell_components": "cell_timing",
    "profile": "profiling", "profile_against_table": "profiling",
}
__all__ = sorted(_EXPORTS)
__getattr__ = lazy_exports(__name__, _EXPORTS)
