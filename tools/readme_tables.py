"""Regenerate the README's generated tables from the code: `python tools/readme_tables.py [--check]`.

Sources: gateway.config.SCHEMA, read from the config section dataclasses' field metadata, and
TARGET_SCHEMA for [webhook:NAME] (configuration table), and gateway.webapi.registry.REGISTRY
(command table: each command's parameters and docstring). A command's status comes from its
docstring: a paragraph starting "Not possible on v20:" means 501, one starting "Difference on
v20:" names a difference; otherwise it works as the legacy product did.
"""
from __future__ import annotations

import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from gateway.config import ENVIRONMENT, SCHEMA, TARGET_PREFIX, TARGET_SCHEMA  # noqa: E402
from gateway.webapi import commands  # noqa: E402,F401  (registers the commands)
from gateway.webapi.registry import REGISTRY  # noqa: E402


def _cell(text: str) -> str:
    return " ".join(text.split()).replace("|", "\\|")


def config_table() -> str:
    rows = ["| section | key | default | meaning |", "|---|---|---|---|"]
    for section, keys in SCHEMA.items():
        for key, (_kind, default, help_text) in keys.items():
            shown = "(required)" if default is None else (f"`{default}`" if default else "(empty)")
            env = ENVIRONMENT.get((section, key))
            meaning = help_text if not env or env in help_text else f"{help_text}; or {env}"
            rows.append(f"| `[{section}]` | `{key}` | {shown} | {_cell(meaning)} |")
        if section == "webhooks":
            for key, (_kind, default, help_text) in TARGET_SCHEMA.items():
                empty = "(empty)" if key == "secret" else "(empty: all)"
                shown = "(required)" if default is None else (f"`{default}`" if default else empty)
                rows.append(f"| `[{TARGET_PREFIX}NAME]` | `{key}` | {shown} | {_cell(help_text)} |")
    return "\n".join(rows)


def command_status(doc: str) -> tuple[str, str]:
    """(status, summary) from a command docstring."""
    paragraphs = [p.strip() for p in re.split(r"\n\s*\n", doc) if p.strip()]
    summary = paragraphs[0]
    for paragraph in paragraphs:
        for prefix, status, label in (("Not possible on v20:", "501", "Not possible:"),
                                      ("Difference on v20:", "difference", "Difference:")):
            if paragraph.startswith(prefix):
                note = f"**{label}** {paragraph.removeprefix(prefix).strip()}"
                return status, note if paragraph is summary else f"{summary} {note}"
    return "works", summary


def command_table() -> str:
    rows = ["| command | parameters | on 3CX v20 | status |", "|---|---|---|---|"]
    for name, command in REGISTRY.items():
        params = ", ".join(f"`{p}`" if spec.required else f"`{p}`?" for p, spec in command.params.items())
        status, text = command_status(command.help)
        rows.append(f"| `{name}` | {params or '—'} | {_cell(text)} | {status} |")
    return "\n".join(rows) + "\n\n`?` marks an optional parameter."


def render(readme: str) -> str:
    for marker, table in (("config-table", config_table()), ("command-table", command_table())):
        pattern = re.compile(rf"(<!-- {marker}:start -->\n).*?(<!-- {marker}:end -->)", re.S)
        readme = pattern.sub(lambda m, table=table: f"{m.group(1)}{table}\n{m.group(2)}", readme)
    return readme


def main() -> int:
    path = ROOT / "README.md"
    current = path.read_text(encoding="utf-8")
    wanted = render(current)
    if "--check" in sys.argv:
        if current != wanted:
            print("README.md tables are out of date: run python tools/readme_tables.py")
            return 1
        return 0
    path.write_text(wanted, encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
