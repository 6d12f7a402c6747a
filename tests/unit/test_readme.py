"""The README's generated tables match the code (config schema and command registry)."""
from __future__ import annotations

import importlib.util
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _tool():
    spec = importlib.util.spec_from_file_location("readme_tables", ROOT / "tools" / "readme_tables.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_readme_tables_are_up_to_date():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")

    assert _tool().render(readme) == readme, "run: python tools/readme_tables.py"


def test_every_command_and_config_key_is_in_the_readme():
    from gateway.config import SCHEMA
    from gateway.webapi.registry import REGISTRY

    readme = (ROOT / "README.md").read_text(encoding="utf-8")

    assert all(f"| `{name}` |" in readme for name in REGISTRY)
    assert all(f"| `[{section}]` | `{key}` |" in readme for section, keys in SCHEMA.items() for key in keys)


def test_not_possible_commands_are_marked_501():
    tool = _tool()
    from gateway.webapi.registry import REGISTRY

    statuses = {name: tool.command_status(command.help)[0] for name, command in REGISTRY.items()}

    assert {n for n, s in statuses.items() if s == "501"} == {"ext.queue.set", "join", "cfd.reset", "csv.reread"}
