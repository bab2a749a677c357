"""autospace: neural architecture search that designs its own search space.

The Python API, one name per job (imported on first use, so `import autospace`
stays light and `autospace.arch` never pulls in torch):

    evolve(method, config, out)     learn a search space -> SearchSpace, out/space.json
    search(config, out)             find a network in a space -> Network, out/arch.json
    train(arch, config, out)        train a network from scratch -> metrics dict
    run(config, out)                evolve -> search -> train -> report.md
    load_arch(path), load_space(path), save_arch(path, network), save_space(path, space)
    build_model(network)            the one builder: Network -> torch.nn.Module
    profile(network, device)        params, MAdds, latency at batch 1 and 64
    export_model(run_dir, format)   ONNX, TorchScript or plain-PyTorch files
    draw(source, out)               a picture of a cell, space or network
"""

import sys
import types

__version__ = "0.1.0"

_API = {
    "evolve": ("autospace.evolve", "evolve"),
    "search": ("autospace.search", "search"),
    "train": ("autospace.train", "train"),
    "run": ("autospace.pipeline", "run_pipeline"),
    "load_arch": ("autospace.arch", "load_arch"),
    "load_space": ("autospace.arch", "load_space"),
    "save_arch": ("autospace.arch", "save_arch"),
    "save_space": ("autospace.arch", "save_space"),
    "build_model": ("autospace.nn", "build_network"),
    "profile": ("autospace.latency.profiling", "profile"),
    "export_model": ("autospace.export", "export_model"),
    "draw": ("autospace.report.show", "draw"),
    "EvolveConfig": ("autospace.evolve", "EvolveConfig"),
    "NseConfig": ("autospace.evolve", "NseConfig"),
    "SearchConfig": ("autospace.search", "SearchConfig"),
    "TrainConfig": ("autospace.train", "TrainConfig"),
    "RunConfig": ("autospace.pipeline", "RunConfig"),
    "load_config": ("autospace.runtime.config", "load_config"),
}

__all__ = sorted(_API)

# `evolve`, `search` and `train` name both a function of the API and a subpackage. Importing a
# subpackage makes Python bind it as an attribute of its parent, which would hide the function
# (`autospace.train(...)` -> "'module' object is not callable") once anything imported, say,
# `autospace.train.config`. The functions win: the import system's binding is dropped, and the
# subpackages stay reachable as `sys.modules["autospace.train"]`, `from autospace.train import X`
# or `importlib.import_module("autospace.train")`.
_FUNCTIONS_OVER_SUBPACKAGES = frozenset({"evolve", "search", "train"})


class _Package(types.ModuleType):
    def __setattr__(self, name: str, value) -> None:
        if name in _FUNCTIONS_OVER_SUBPACKAGES and isinstance(value, types.ModuleType):
            return
        super().__setattr__(name, value)


sys.modules[__name__].__class__ = _Package


def __getattr__(name: str):
    if name not in _API:
        raise AttributeError(f"module 'autospace' has no attribute {name!r}")
    import importlib

    module, attribute = _API[name]
    return getattr(importlib.import_module(module), attribute)
