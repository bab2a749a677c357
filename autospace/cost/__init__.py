"""Analytic params and MAdds of blocks and networks."""

from autospace.runtime.lazy import lazy_exports

_EXPORTS = {
    "Cost": "analytic", "block_cost": "analytic", "cell_cost": "analytic", "irb_cost": "analytic",
    "layer_costs": "analytic", "network_cost": "analytic", "network_madds": "analytic",
    "network_params": "analytic",
}
__all__ = sorted(_EXPORTS)
__getattr__ = lazy_exports(__name__, _EXPORTS)
