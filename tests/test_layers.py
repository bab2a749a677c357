"""The package's layers (DESIGN 3): the front door -> evolve, search, nb201 -> train -> report, latency ->
nn -> cost -> arch, data -> runtime. Every import between two packages runs down that table, lazy imports
inside functions included; no module imports itself back through others (no circle); `arch` is plain data
without torch."""

import ast
import subprocess
import sys
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "autospace"
FRONT_DOOR = "front door"  # the package root's modules
ROOT_MODULES = {"__init__", "__main__", "cli", "errors", "export", "export_source", "pipeline"}  # export_source:
# the source of export's stand-alone model.py

# What each package may import (besides itself, `autospace.errors` and the bare `autospace` package, whose
# __init__ holds the version and a lazy table of the public API and imports nothing): the packages below it.
# Packages on one floor (evolve, search, nb201; report, latency; arch, data) never import each other.
BELOW_TRAIN = {"report", "latency", "nn", "cost", "arch", "data", "runtime"}
ALLOWED = {
    FRONT_DOOR: {"evolve", "search", "nb201", "train"} | BELOW_TRAIN,
    "evolve": {"train"} | BELOW_TRAIN,
    "search": {"train"} | BELOW_TRAIN,
    "nb201": {"train"} | BELOW_TRAIN,
    "train": BELOW_TRAIN,
    "report": {"nn", "cost", "arch", "data", "runtime"},
    "latency": {"nn", "cost", "arch", "data", "runtime"},
    "nn": {"cost", "arch", "data", "runtime"},
    "cost": {"arch", "data", "runtime"},
    "arch": {"runtime"},
    "data": {"runtime"},
    "runtime": set(),
}


def test_arch_and_configs_import_without_torch():
    code = ("import sys\n"
            "import autospace.arch, autospace.arch.codec, autospace.arch.netconfig, autospace.arch.presets\n"
            "import autospace.arch.pools\n"
            "from autospace.arch import Network, load_arch, manual_space\n"
            "import autospace.search.evolution, autospace.search.config, autospace.evolve.config\n"
            "import autospace.evolve.nse_config, autospace.train.config, autospace.runtime.config\n"
            "import autospace.latency.table, autospace.latency.keys, autospace.latency.prediction\n"
            "import autospace.runtime.resume, autospace.report.notes\n"
            "print('torch' in sys.modules)")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                            cwd=PACKAGE.parent)
    assert result.stdout.strip() == "False"


def module_files() -> dict[str, Path]:
    """Every module of the package by dotted name (a package by its own name)."""
    found = {}
    for path in PACKAGE.rglob("*.py"):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        found[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return found


MODULES = module_files()


def lazy_exports(package: str) -> dict[str, str]:
    """A package's lazy `_EXPORTS` (name -> defining module, dotted)."""
    for node in ast.walk(ast.parse(MODULES[package].read_text(encoding="utf-8"))):
        if isinstance(node, ast.Assign) and any(getattr(target, "id", "") == "_EXPORTS" for target in node.targets):
            exports = ast.literal_eval(node.value)
            return {name: module if module.startswith("autospace.") else f"{package}.{module}"
                    for name, module in exports.items()}
    return {}


def imported_modules(path: Path) -> set[str]:
    """The package's modules `path` imports anywhere (inside functions too): a name taken from a package
    with lazy exports counts as its defining module; absolute module strings in `_EXPORTS` count too."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            for alias in node.names:
                full = f"{node.module}.{alias.name}"
                if full in MODULES:
                    found.add(full)
                elif node.module in MODULES and node.module != "autospace":
                    found.add(lazy_exports(node.module).get(alias.name, node.module))
                else:
                    found.add(node.module)
        elif isinstance(node, ast.Constant) and isinstance(node.value, str) and node.value in MODULES:
            found.add(node.value)
    return {name for name in found if name in MODULES}


def package_of(module: str) -> str | None:
    """The package a module belongs to; None for the ground every module may import."""
    parts = module.split(".")
    if module in ("autospace", "autospace.errors"):
        return None
    return FRONT_DOOR if len(parts) == 2 and parts[1] in ROOT_MODULES else parts[1]


def test_the_root_keeps_only_the_front_door_and_every_package_has_a_floor():
    assert {path.stem for path in PACKAGE.glob("*.py")} == ROOT_MODULES
    packages = {path.parent.name for path in PACKAGE.glob("*/__init__.py")}
    assert packages == set(ALLOWED) - {FRONT_DOOR}


def test_the_table_runs_one_way():
    """No pair of packages may import each other, directly or around a longer loop (a topological order)."""
    remaining = {package: set(below) for package, below in ALLOWED.items()}
    while remaining:
        bottom = [package for package, below in remaining.items() if not below & set(remaining)]
        assert bottom, f"the allowed arrows form a loop among {sorted(remaining)}"
        for package in bottom:
            del remaining[package]


def test_every_import_runs_down_the_table():
    wrong = []
    for module, path in sorted(MODULES.items()):
        here = package_of(module)
        if here is None:
            continue
        if here not in ALLOWED:
            wrong.append(f"{path.relative_to(PACKAGE.parent)} is on no floor of the table")
            continue
        for target in sorted(imported_modules(path)):
            there = package_of(target)
            if there is not None and there != here and there not in ALLOWED[here]:
                wrong.append(f"{path.relative_to(PACKAGE.parent)} ({here}) imports {target} ({there})")
    assert not wrong, "imports against the layers:\n" + "\n".join(wrong)


def test_no_module_imports_itself_back():
    graph = {module: imported_modules(path) - {module, "autospace"} for module, path in MODULES.items()}
    done: set[str] = set()

    def visit(module: str, trail: list[str]) -> None:
        if module in trail:
            raise AssertionError("an import circle: " + " -> ".join(trail[trail.index(module):] + [module]))
        if module in done:
            return
        for target in sorted(graph[module]):
            visit(target, trail + [module])
        done.add(module)

    for module in sorted(graph):
        visit(module, [])


def test_the_loops_hand_their_results_to_the_report_layer():
    """The space learners write data (space.json, history); their readable outputs (space.md, fitness.png)
    are the report layer's, handed the results by `evolve()`."""
    for loop in ("evolve/dea.py", "evolve/nse.py"):
        assert "autospace.report.space" not in imported_modules(PACKAGE / loop), loop
