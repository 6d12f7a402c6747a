"""The simulator's own OData v4 query evaluator over rendered entities (dicts with v20 field names).

Supports what the XAPI clients send: `$filter` (eq ne gt ge lt le, and or not, parentheses,
contains/startswith/endswith/tolower/toupper/trim/length, string literals with '' escaping,
numbers, true/false/null, date-times, enum literals 'Queue' and Pbx.PeerType'Queue'), `$select`,
`$expand` (with nested options in parentheses), `$orderby` (several keys, asc/desc), `$top`
(capped, as 20.0.8 answers 400 above 100), `$skip`, `$count` and a plain-text `$search`.
Every malformed query raises `ODataError`, whose message the XAPI answers with a 400.
It shares nothing with the gateway's own OData helpers on purpose.
"""
from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Callable, Mapping

logger = logging.getLogger(__name__)

INVALID = "The query specified in the URI is not valid. "


class ODataError(ValueError):
    """A query the evaluator rejects; the message is what the XAPI puts in its 400 error body."""


@dataclass(frozen=True)
class Navigation:
    """A navigation property: `load(row)` gives the related rows (a list, one dict, or None)."""

    target: "EntityType"
    load: Callable[[dict], Any]


@dataclass
class EntityType:
    """What the evaluator must know about an entity type: its name, fields and navigation properties."""

    name: str                                   # "Pbx.User"
    fields: tuple[str, ...]
    navigation: dict[str, Navigation] = field(default_factory=dict)


@dataclass
class Query:
    """Parsed query options of one request (or of one nested `$expand` item)."""

    filter: tuple | None = None
    select: tuple[str, ...] | None = None
    expand: dict[str, "Query"] = field(default_factory=dict)
    orderby: tuple[tuple[str, bool], ...] = ()   # (property path, descending)
    top: int | None = None
    skip: int = 0
    count: bool = False
    search: str | None = None


# ---------------------------------------------------------------- query options

_OPTIONS = ("$filter", "$select", "$expand", "$orderby", "$top", "$skip", "$count", "$search", "$format")


def parse_query(options: Mapping[str, str], *, max_top: int | None = 100) -> Query:
    """Parse the `$...` options of a request; other parameters are ignored."""
    for name in options:
        if name.startswith("$") and name not in _OPTIONS:
            raise ODataError(f"{INVALID}The query parameter '{name}' is not supported.")
    query = Query()
    if options.get("$filter", "").strip():
        query.filter = parse_filter(options["$filter"])
    if "$select" in options:
        names = tuple(n.strip() for n in options["$select"].split(",") if n.strip())
        query.select = None if "*" in names else names
    if options.get("$expand", "").strip():
        query.expand = _parse_expand(options["$expand"])
    if options.get("$orderby", "").strip():
        query.orderby = _parse_orderby(options["$orderby"])
    if "$top" in options:
        query.top = _whole_number("$top", options["$top"])
        if max_top is not None and query.top > max_top:
            raise ODataError(f"{INVALID}The limit of '{max_top}' for Top query has been exceeded. "
                             f"The value from the incoming request is '{query.top}'.")
    if "$skip" in options:
        query.skip = _whole_number("$skip", options["$skip"])
    if "$count" in options:
        value = options["$count"].strip().lower()
        if value not in ("true", "false"):
            raise ODataError(f"{INVALID}'{options['$count']}' is not a valid count option.")
        query.count = value == "true"
    if options.get("$search", "").strip():
        query.search = options["$search"].strip().strip('"').lower()
    return query


def _whole_number(name: str, raw: str) -> int:
    if not raw.strip().isdigit():
        raise ODataError(f"{INVALID}Invalid value '{raw}' for {name} query option found. "
                         f"The {name} query option requires a non-negative integer value.")
    return int(raw)


def _split_top_level(text: str, separator: str) -> list[str]:
    """Split on `separator` outside parentheses and string literals."""
    parts, depth, current, quoted = [], 0, [], False
    for char in text:
        if char == "'":
            quoted = not quoted
        elif not quoted and char == "(":
            depth += 1
        elif not quoted and char == ")":
            depth -= 1
        if char == separator and depth == 0 and not quoted:
            parts.append("".join(current))
            current = []
        else:
            current.append(char)
    if depth != 0 or quoted:
        raise ODataError(f"{INVALID}Syntax error: unbalanced parentheses or quotes in '{text}'.")
    parts.append("".join(current))
    return [p.strip() for p in parts if p.strip()]


def _parse_expand(text: str) -> dict[str, Query]:
    expand: dict[str, Query] = {}
    for item in _split_top_level(text, ","):
        match = re.fullmatch(r"([A-Za-z_][A-Za-z0-9_]*)\s*(?:\((.*)\))?", item, re.S)
        if not match:
            raise ODataError(f"{INVALID}Syntax error in $expand item '{item}'.")
        nested = {}
        for option in _split_top_level(match.group(2) or "", ";"):
            key, _, value = option.partition("=")
            nested[key.strip()] = value
        expand[match.group(1)] = parse_query(nested, max_top=None)
    return expand


def _parse_orderby(text: str) -> tuple[tuple[str, bool], ...]:
    keys = []
    for item in _split_top_level(text, ","):
        words = item.split()
        if len(words) > 2 or (len(words) == 2 and words[1] not in ("asc", "desc")) \
                or not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_/]*", words[0]):
            raise ODataError(f"{INVALID}Syntax error in $orderby item '{item}'.")
        keys.append((words[0], len(words) == 2 and words[1] == "desc"))
    return tuple(keys)


# ---------------------------------------------------------------- $filter parsing

_TOKEN = re.compile(r"""
    (?P<space>\s+)
  | (?P<string>'(?:[^']|'')*')
  | (?P<datetime>\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?(?:Z|[+-]\d{2}:\d{2}))
  | (?P<number>-?\d+(?:\.\d+)?(?![A-Za-z_]))
  | (?P<name>[A-Za-z_][A-Za-z0-9_.]*(?:/[A-Za-z_][A-Za-z0-9_]*)*)
  | (?P<punct>[(),])
""", re.X)
_COMPARISONS = {"eq", "ne", "gt", "ge", "lt", "le"}
_FUNCTIONS: dict[str, tuple[int, Callable[..., Any]]] = {
    "contains": (2, lambda s, t: t in s),
    "startswith": (2, lambda s, t: s.startswith(t)),
    "endswith": (2, lambda s, t: s.endswith(t)),
    "tolower": (1, lambda s: s.lower()),
    "toupper": (1, lambda s: s.upper()),
    "trim": (1, lambda s: s.strip()),
    "length": (1, len),
}


@dataclass(frozen=True)
class _Token:
    kind: str
    text: str
    position: int


def parse_filter(text: str) -> tuple:
    """Parse a `$filter` expression into a small tree of tuples; raises ODataError."""
    tokens = _tokenize(text)
    parser = _Parser(tokens, text)
    tree = parser.expression()
    if parser.peek() is not None:
        parser.fail(parser.peek())
    return tree


def _tokenize(text: str) -> list[_Token]:
    tokens, position = [], 0
    while position < len(text):
        match = _TOKEN.match(text, position)
        if not match:
            raise ODataError(f"{INVALID}Syntax error at position {position} in '{text}'.")
        if match.lastgroup != "space":
            kind = match.lastgroup
            token_text = match.group()
            # An identifier glued to a string literal is an enum literal: Pbx.PeerType'Queue'.
            if kind == "name" and "." in token_text and text.startswith("'", match.end()):
                literal = _TOKEN.match(text, match.end())
                if literal and literal.lastgroup == "string":
                    tokens.append(_Token("enum", literal.group(), position))
                    position = literal.end()
                    continue
            tokens.append(_Token(kind, token_text, position))
        position = match.end()
    return tokens


class _Parser:
    """Recursive descent: or < and < comparison < not < primary (OData precedence)."""

    def __init__(self, tokens: list[_Token], text: str) -> None:
        self.tokens, self.text, self.index = tokens, text, 0

    def peek(self) -> _Token | None:
        return self.tokens[self.index] if self.index < len(self.tokens) else None

    def take(self) -> _Token:
        token = self.peek()
        if token is None:
            raise ODataError(f"{INVALID}Syntax error at position {len(self.text)} in '{self.text}'.")
        self.index += 1
        return token

    def fail(self, token: _Token) -> None:
        raise ODataError(f"{INVALID}Syntax error at position {token.position} in '{self.text}'.")

    def is_word(self, *words: str) -> bool:
        token = self.peek()
        return token is not None and token.kind == "name" and token.text in words

    def expression(self) -> tuple:
        node = self.conjunction()
        while self.is_word("or"):
            self.take()
            node = ("or", node, self.conjunction())
        return node

    def conjunction(self) -> tuple:
        node = self.comparison()
        while self.is_word("and"):
            self.take()
            node = ("and", node, self.comparison())
        return node

    def comparison(self) -> tuple:
        node = self.unary()
        if self.is_word(*_COMPARISONS):
            op = self.take().text
            node = ("cmp", op, node, self.unary())
        return node

    def unary(self) -> tuple:
        if self.is_word("not"):
            self.take()
            return ("not", self.unary())
        return self.primary()

    def primary(self) -> tuple:
        token = self.take()
        if token.kind == "punct" and token.text == "(":
            node = self.expression()
            self.expect(")")
            return node
        if token.kind in ("string", "enum"):
            return ("lit", token.text[1:-1].replace("''", "'"))
        if token.kind == "number":
            return ("lit", float(token.text) if "." in token.text else int(token.text))
        if token.kind == "datetime":
            return ("lit", _parse_datetime(token.text))
        if token.kind == "name":
            if token.text in ("true", "false"):
                return ("lit", token.text == "true")
            if token.text == "null":
                return ("lit", None)
            if token.text in _COMPARISONS | {"and", "or", "not"}:
                self.fail(token)
            nxt = self.peek()
            if nxt is not None and nxt.kind == "punct" and nxt.text == "(":
                return self.call(token)
            return ("prop", tuple(token.text.split("/")))
        self.fail(token)
        raise AssertionError("unreachable")

    def call(self, name: _Token) -> tuple:
        if name.text not in _FUNCTIONS:
            raise ODataError(f"{INVALID}Unknown function '{name.text}'.")
        self.expect("(")
        args = [self.expression()]
        while self.peek() is not None and self.peek().text == ",":
            self.take()
            args.append(self.expression())
        self.expect(")")
        if len(args) != _FUNCTIONS[name.text][0]:
            raise ODataError(f"{INVALID}No function signature for the function with name '{name.text}' "
                             f"matches the specified arguments.")
        return ("call", name.text, tuple(args))

    def expect(self, punct: str) -> None:
        token = self.take()
        if token.kind != "punct" or token.text != punct:
            self.fail(token)


def _parse_datetime(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


# ---------------------------------------------------------------- evaluation

_OPERATORS = {"eq": "Equal", "ne": "NotEqual", "gt": "GreaterThan", "ge": "GreaterThanOrEqual",
              "lt": "LessThan", "le": "LessThanOrEqual"}


def evaluate(node: tuple, row: Mapping[str, Any]) -> Any:
    """The value of a parsed `$filter` tree for one rendered entity."""
    kind = node[0]
    if kind == "lit":
        return node[1]
    if kind == "prop":
        value: Any = row
        for segment in node[1]:
            value = value.get(segment) if isinstance(value, Mapping) else None
        return value
    if kind == "and":
        return _truth(evaluate(node[1], row)) and _truth(evaluate(node[2], row))
    if kind == "or":
        return _truth(evaluate(node[1], row)) or _truth(evaluate(node[2], row))
    if kind == "not":
        return not _truth(evaluate(node[1], row))
    if kind == "call":
        args = [evaluate(arg, row) for arg in node[2]]
        if any(arg is None for arg in args):
            return None
        if not all(isinstance(arg, str) for arg in args):
            raise ODataError(f"{INVALID}No function signature for the function with name '{node[1]}' "
                             f"matches the specified arguments.")
        return _FUNCTIONS[node[1]][1](*args)
    return _compare(node[1], evaluate(node[2], row), evaluate(node[3], row))


def _truth(value: Any) -> bool:
    if value is None:
        return False
    if not isinstance(value, bool):
        raise ODataError(f"{INVALID}The $filter expression must evaluate to a single boolean value.")
    return value


def _compare(op: str, left: Any, right: Any) -> bool:
    if left is None or right is None:
        if op in ("eq", "ne"):
            return (left is right) == (op == "eq")
        return False
    left, right = _comparable(op, left, right)
    return {"eq": left == right, "ne": left != right, "gt": left > right, "ge": left >= right,
            "lt": left < right, "le": left <= right}[op]


def _comparable(op: str, left: Any, right: Any) -> tuple[Any, Any]:
    """Both operands of one OData type, or ODataError as v20 answers incompatible operand types."""
    if isinstance(left, datetime) and isinstance(right, str):
        right = _parse_datetime_value(right)
    elif isinstance(right, datetime) and isinstance(left, str):
        left = _parse_datetime_value(left)
    kinds = {_edm(left), _edm(right)}
    if len(kinds) > 1 and kinds != {"Edm.Int32", "Edm.Double"}:
        raise ODataError(f"{INVALID}A binary operator with incompatible types was detected. Found operand "
                         f"types '{_edm(left)}' and '{_edm(right)}' for operator kind '{_OPERATORS[op]}'.")
    return left, right


def _parse_datetime_value(value: str) -> datetime | str:
    try:
        return _parse_datetime(value)
    except ValueError:
        return value


def _edm(value: Any) -> str:
    if isinstance(value, bool):
        return "Edm.Boolean"
    if isinstance(value, int):
        return "Edm.Int32"
    if isinstance(value, float):
        return "Edm.Double"
    if isinstance(value, datetime):
        return "Edm.DateTimeOffset"
    if isinstance(value, str):
        return "Edm.String"
    return "Edm.Untyped"


# ---------------------------------------------------------------- applying a query

def apply(query: Query, entity_type: EntityType, rows: list[dict]) -> tuple[list[dict], int]:
    """Filter, search, order, page and shape `rows`; returns (page, count before paging)."""
    check(query, entity_type)
    if query.filter is not None:
        rows = [row for row in rows if _truth(evaluate(query.filter, row))]
    if query.search:
        rows = [row for row in rows
                if any(isinstance(v, str) and query.search in v.lower() for v in row.values())]
    count = len(rows)
    for name, descending in reversed(query.orderby):
        path = tuple(name.split("/"))
        rows = sorted(rows, key=lambda row: _sort_key(evaluate(("prop", path), row)), reverse=descending)
    end = None if query.top is None else query.skip + query.top
    return [shape(query, entity_type, row) for row in rows[query.skip:end]], count


def _sort_key(value: Any) -> tuple:
    return (value is not None, value if value is not None else 0)


def shape(query: Query, entity_type: EntityType, row: dict) -> dict:
    """One entity as answered: the selected fields plus the expanded navigation properties."""
    check(query, entity_type)
    out = {k: v for k, v in row.items() if query.select is None or k in query.select}
    for name, nested in query.expand.items():
        navigation = entity_type.navigation[name]
        related = navigation.load(row)
        if isinstance(related, list):
            out[name], _ = apply(nested, navigation.target, related)
        elif related is not None:
            out[name] = shape(nested, navigation.target, related)
        else:
            out[name] = None
    return out


def check(query: Query, entity_type: EntityType) -> None:
    """Reject property names the entity type does not have, as v20 does."""
    for name in query.select or ():
        if name not in entity_type.fields and name not in entity_type.navigation:
            raise _unknown_property(name, entity_type)
    for name, _ in query.orderby:
        if name.split("/")[0] not in entity_type.fields:
            raise _unknown_property(name, entity_type)
    for name in query.expand:
        if name not in entity_type.navigation:
            raise ODataError(f"{INVALID}Property '{name}' on type '{entity_type.name}' is not a navigation "
                             f"property or complex property. Only navigation properties can be expanded.")
    if query.filter is not None:
        _check_filter(query.filter, entity_type)


def _check_filter(node: tuple, entity_type: EntityType) -> None:
    if node[0] == "prop":
        if node[1][0] not in entity_type.fields:
            raise _unknown_property(node[1][0], entity_type)
    elif node[0] == "call":
        for arg in node[2]:
            _check_filter(arg, entity_type)
    elif node[0] in ("and", "or"):
        _check_filter(node[1], entity_type)
        _check_filter(node[2], entity_type)
    elif node[0] == "not":
        _check_filter(node[1], entity_type)
    elif node[0] == "cmp":
        _check_filter(node[2], entity_type)
        _check_filter(node[3], entity_type)


def _unknown_property(name: str, entity_type: EntityType) -> ODataError:
    return ODataError(f"{INVALID}Could not find a property named '{name}' on type '{entity_type.name}'.")
