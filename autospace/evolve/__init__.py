"""Search-space learners: AutoSpace's DEA (`dea.py`) and NSE (`nse.py`); `evolve` runs either."""

from autospace.runtime.lazy import lazy_exports

_EXPORTS = {"EVOLVE_METHODS": "api", "evolve": "api", "EvolveConfig": "config", "NseConfig": "nse_config",
            "evolve_autospace": "dea", "evolve_nse": "nse"}
__all__ = sorted(_EXPORTS)
__getattr__ = lazy_exports(__name__, _EXPORTS)
