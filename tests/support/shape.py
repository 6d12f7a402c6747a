"""Compare a WebAPI answer with a 004 example by shape: keys in order, nesting and value types."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

EXAMPLES_FILE = Path(__file__).resolve().parents[1] / "webapi" / "data" / "004-examples.json"


def examples() -> dict[str, dict]:
    """Command name -> {"title", "params", "answer"} as extracted from 004 ("" is /webapi/<key>/)."""
    return json.loads(EXAMPLES_FILE.read_text(encoding="utf-8"))["commands"]


def _kind(value: Any) -> str:
    # bool before int: True is an int to Python but not to a JSON client.
    for name, kind in (("null", type(None)), ("boolean", bool), ("integer", int), ("number", float),
                       ("string", str), ("array", list), ("object", dict)):
        if isinstance(value, kind):
            return name
    return type(value).__name__


def shape_differences(answer: Any, example: Any, *, nullable: frozenset[str] = frozenset(),
                      path: str = "$") -> list[str]:
    """Every place where `answer` differs from `example` in keys, key order, nesting or type.

    Lists: each item of `answer` is compared with the example's first item (an empty example list
    says nothing about items). `nullable` holds paths such as "$.callsInfo[].answeredAt" where null
    may stand for the example's type.
    """
    kind, expected = _kind(answer), _kind(example)
    if kind == "null" and path in nullable:
        return []
    if kind != expected:
        return [f"{path}: {kind}, expected {expected}"]
    if kind == "object":
        if list(answer) != list(example):
            return [f"{path}: keys {list(answer)}, expected {list(example)}"]
        return [d for key in example
                for d in shape_differences(answer[key], example[key], nullable=nullable, path=f"{path}.{key}")]
    if kind == "array" and example:
        return [d for item in answer
                for d in shape_differences(item, example[0], nullable=nullable, path=f"{path}[]")]
    return []


def same_shape(answer: Any, example: Any, *, nullable: frozenset[str] = frozenset()) -> bool:
    """True when `answer` has the example's keys (in order), nesting and value types."""
    return not shape_differences(answer, example, nullable=nullable)


def same_shape_with_additions(answer: dict, example: dict) -> bool:
    """`same_shape` for an answer that adds keys: the example's keys come first, in order, with the
    example's shapes; any further keys follow them (the README's command table calls them additive)."""
    legacy = {key: answer[key] for key in list(answer)[:len(example)]}
    return same_shape(legacy, example)
