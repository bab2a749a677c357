"""Search a network inside a space: `search(config, out)` writes out/arch.json.

Spaces: `manual`, `open` (spos only) or a space.json (e.g. from `autospace evolve`).
Methods: proxyless-g, proxyless-rl, spos (DESIGN 2.4).
"""

from autospace.runtime.lazy import lazy_exports

_EXPORTS = {"BUDGET_TOLERANCE": "api", "search": "api", "SEARCH_METHODS": "config", "SearchConfig": "config"}
__all__ = sorted(_EXPORTS)
__getattr__ = lazy_exports(__name__, _EXPORTS)
