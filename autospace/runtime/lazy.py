"""Packages whose public names are imported on first use, so importing a package costs nothing
(`autospace.arch` and the config dataclasses stay free of torch)."""

from __future__ import annotations

import importlib


def lazy_exports(package: str, exports: dict[str, str]):
    """The `__getattr__` of `package`: `exports` maps each public name to the module that defines it
    (relative to the package, or absolute when it starts with 'autospace.')."""

    def __getattr__(name: str):
        if name not in exports:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        module = exports[name] if exports[name].startswith("autospace.") else f"{package}.{exports[name]}"
        return getattr(importlib.import_module(module), name)

    return __getattr__
