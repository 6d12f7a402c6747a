"""Extract every command example of the legacy API reference into tests/webapi/data/004-examples.json.

Source (read only here, never at test time): ../shared/spec/004_c376b5f5b64e5e98.txt (relative to
the repository root), the legacy product's API reference. Each example there is a title line, a
URL line `https://{{3CXFQDN}}/webapi/{{AccessKey}}/<command>?<params>`, optional note lines and
the exact JSON answer.

Output, keyed by legacy command name ("" for the license/info URL /webapi/<key>/):
    {"source": ..., "sha256": ..., "commands": {name: {"title", "params", "answer"}}}
`params` keeps the example's raw values, placeholders such as "{0/1}" included.

Run from the repository root: `.venv/bin/python tools/extract_examples.py`.
"""
from __future__ import annotations

import hashlib
import json
import re
import sys
from pathlib import Path
from urllib.parse import parse_qsl, urlsplit

REPO = Path(__file__).resolve().parent.parent
SOURCE = REPO.parent / "shared" / "spec" / "004_c376b5f5b64e5e98.txt"
OUTPUT = REPO / "tests" / "webapi" / "data" / "004-examples.json"

_URL = re.compile(r"^https://\S*?/webapi/[^/\s]+/(?P<rest>.*)$")


def _command_and_params(rest: str) -> tuple[str, dict[str, str]]:
    """'ext.fwd.set?num=102&status&message=Custom message' -> name and raw parameter values."""
    name, _, query = rest.partition("?")
    # The reference writes spaces unencoded ("message=Custom message"); keep them as written.
    params = dict(parse_qsl(urlsplit("?" + query.replace(" ", "%20")).query, keep_blank_values=True))
    return name.strip(), params


def _json_after(lines: list[str], start: int) -> tuple[object, int]:
    """The JSON value whose first line is the next line starting with '{' (and the index after it)."""
    index = start
    while not lines[index].lstrip().startswith("{"):
        index += 1
    block: list[str] = []
    for end in range(index, len(lines)):
        block.append(lines[end])
        try:
            return json.loads("\n".join(block)), end + 1
        except json.JSONDecodeError:
            continue
    raise ValueError(f"unterminated JSON starting at line {index + 1}")


def extract(text: str) -> dict[str, dict]:
    """Every example of the reference, in its order: command name -> title, params, answer."""
    lines = text.splitlines()
    commands: dict[str, dict] = {}
    for index, line in enumerate(lines):
        match = _URL.match(line.strip())
        if not match:
            continue
        name, params = _command_and_params(match.group("rest"))
        answer, _ = _json_after(lines, index + 1)
        commands[name] = {"title": lines[index - 1].strip(), "params": params, "answer": answer}
    return commands


def main() -> int:
    """Write the examples file; return the process exit code."""
    text = SOURCE.read_text(encoding="utf-8")
    commands = extract(text)
    data = {
        "source": f"../shared/spec/{SOURCE.name}",
        "sha256": hashlib.sha256(text.encode("utf-8")).hexdigest(),
        "commands": commands,
    }
    OUTPUT.parent.mkdir(parents=True, exist_ok=True)
    OUTPUT.write_text(json.dumps(data, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    print(f"{OUTPUT.relative_to(REPO)}: {len(commands)} examples", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
