"""The simulator imports nothing from the rest of gateway (STYLE.md §1), so a misreading of v20
cannot hide in shared code on both sides."""
from __future__ import annotations

import ast
from pathlib import Path

import gateway.sim

SIM_DIR = Path(gateway.sim.__file__).parent


def imported_modules(path: Path) -> list[str]:
    """Every absolute module name `path` imports (relative imports resolve inside gateway.sim)."""
    names = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            names.append("gateway.sim" if node.level else node.module or "")
    return names


def test_sim_imports_nothing_of_gateway_outside_sim():
    files = sorted(SIM_DIR.rglob("*.py"))

    offending = {str(path.relative_to(SIM_DIR)): name for path in files for name in imported_modules(path)
                 if (name == "gateway" or name.startswith("gateway.")) and
                 not (name == "gateway.sim" or name.startswith("gateway.sim."))}

    assert len(files) >= 8
    assert offending == {}
