"""The package's layers (DESIGN 3): `arch` is plain data without torch; `search` and `evolve` never
import each other (both stand on `train` and `runtime`)."""

import ast
import subprocess
import sys
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "autospace"


def test_arch_and_configs_import_without_torch():
    code = ("import sys\n"
            "import autospace.arch, autospace.arch.codec, autospace.arch.netconfig, autospace.arch.presets\n"
            "from autospace.arch import Network, load_arch, manual_space\n"
            "import autospace.search.evolution, autospace.search.config, autospace.evolve.config\n"
            "import autospace.evolve.nse_config, autospace.train.config, autospace.runtime.config\n"
            "print('torch' in sys.modules)")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                            cwd=PACKAGE.parent)
    assert result.stdout.strip() == "False"


def imported_modules(path: Path) -> set[str]:
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
    return found


def test_search_and_evolve_do_not_import_each_other():
    for package, other in (("search", "autospace.evolve"), ("evolve", "autospace.search")):
        for path in sorted((PACKAGE / package).glob("*.py")):
            wrong = sorted(name for name in imported_modules(path) if name == other or name.startswith(other + "."))
            assert not wrong, f"{path.relative_to(PACKAGE.parent)} imports {wrong}"
