"""Test helpers live in tests/support/: no test module imports another test module or a conftest."""
from __future__ import annotations

import ast
from pathlib import Path

TESTS = Path(__file__).resolve().parents[1]


def imported_test_modules(path: Path) -> list[str]:
    """The modules under `tests` that `path` imports, other than tests.support."""
    names: list[str] = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            if node.module.split(".")[0] == "tests":
                names.append(node.module)
        elif isinstance(node, ast.Import):
            names += [alias.name for alias in node.names if alias.name.split(".")[0] == "tests"]
    return [name for name in names if not name.startswith("tests.support")]


def test_tests_import_helpers_only_from_tests_support():
    offenders = {str(path.relative_to(TESTS)): imported_test_modules(path)
                 for path in sorted(TESTS.rglob("*.py"))}

    assert {path: names for path, names in offenders.items() if names} == {}
