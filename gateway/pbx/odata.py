"""OData v4 `$filter` building for XAPI: every literal quoted and escaped, so no value can change a query.

In an OData string literal the only special character is the quote itself, written twice inside
(`'O''Brien'`, V20-API-NOTES §0). Field names are not literals: they are checked against a strict
pattern instead, because nothing in the gateway needs a field name from outside.
"""
from __future__ import annotations

import logging
import re
from datetime import datetime, timezone

logger = logging.getLogger(__name__)

_FIELD = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(/[A-Za-z_][A-Za-z0-9_]*)*$")

Literal = str | int | float | bool | datetime | None


def quote(value: Literal) -> str:
    """`value` as an OData literal: strings single-quoted with ' doubled, numbers bare, true/false/null.

    A datetime becomes a UTC DateTimeOffset literal (2025-03-01T00:00:00Z); a naive one is taken as UTC.
    """
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if value != value or value in (float("inf"), float("-inf")):
            raise ValueError(f"{value!r} has no OData literal")
        return repr(value)
    if isinstance(value, datetime):
        moment = value if value.tzinfo else value.replace(tzinfo=timezone.utc)
        return moment.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    if isinstance(value, str):
        return "'" + value.replace("'", "''") + "'"
    raise TypeError(f"cannot put a {type(value).__name__} into an OData filter")


def field(name: str) -> str:
    """`name` checked as an OData property path (Number, Gateway/Host); ValueError otherwise."""
    if not _FIELD.match(name):
        raise ValueError(f"{name!r} is not an OData property name")
    return name


def eq(name: str, value: Literal) -> str:
    """`Number eq '101'`."""
    return f"{field(name)} eq {quote(value)}"


def ne(name: str, value: Literal) -> str:
    """`Number ne '101'`."""
    return f"{field(name)} ne {quote(value)}"


def ge(name: str, value: Literal) -> str:
    """`StartTime ge 2025-03-01T00:00:00Z`."""
    return f"{field(name)} ge {quote(value)}"


def lt(name: str, value: Literal) -> str:
    """`StartTime lt 2025-03-02T00:00:00Z`."""
    return f"{field(name)} lt {quote(value)}"


def contains(name: str, value: str) -> str:
    """`contains(PhoneNumber,'0612')`."""
    return f"contains({field(name)},{quote(value)})"


def any_of(*clauses: str) -> str:
    """The clauses joined by `or`, in parentheses so they combine safely with others: `(a or b)`."""
    return _join(" or ", clauses)


def all_of(*clauses: str) -> str:
    """The clauses joined by `and`, in parentheses: `(a and b)`."""
    return _join(" and ", clauses)


def _join(operator: str, clauses: tuple[str, ...]) -> str:
    parts = [clause for clause in clauses if clause]
    if not parts:
        raise ValueError("no clauses to combine")
    return "(" + operator.join(parts) + ")"
