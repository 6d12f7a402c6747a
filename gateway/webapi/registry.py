"""`@command` records each legacy command (name, parameters, function, help) in REGISTRY."""
from __future__ import annotations

import inspect
from dataclasses import dataclass
from typing import Any, Callable, Mapping

from gateway.webapi.errors import BadParameter
from gateway.webapi.params import Param


# A command body: (ctx: Services, **parsed parameters) -> the legacy JSON answer.
CommandFunction = Callable[..., dict[str, Any]]


@dataclass(frozen=True)
class Command:
    """One legacy command: its verbatim name, parameter spec, function and help text."""

    name: str
    params: Mapping[str, Param]
    function: CommandFunction
    help: str
    is_write: bool
    is_cached: bool = False

    @property
    def is_safe(self) -> bool:
        """Whether the command only reads: legacy read commands are exactly those named `*.get`.

        Writes (`is_write`) and call actions (makecall, drop, transfer, ...) are not safe; HEAD
        refuses them, so a HEAD request never changes anything.
        """
        return not self.is_write and self.name.endswith(".get")

    def parse(self, query: Mapping[str, str]) -> dict[str, Any]:
        """Turn raw query values into the function's keyword arguments; raises BadParameter."""
        values: dict[str, Any] = {}
        for name, param in self.params.items():
            raw = query.get(name)
            # Only an empty or all-space value counts as missing: a control character is a value,
            # refused by the type, so `num=%0a` is a 400 for an optional parameter too.
            if raw is None or (raw.strip(" ") == "" and not param.allow_empty):
                if param.required:
                    raise BadParameter(name, f"required; expected {param.expected}")
                values[name] = param.default
                continue
            try:
                values[name] = param.parse(raw)
            except ValueError as exc:
                raise BadParameter(name, str(exc)) from None
        return values


REGISTRY: dict[str, Command] = {}


def command(name: str, /, *, write: bool = False, cached: bool = False,
            **params: Param) -> Callable[[CommandFunction], CommandFunction]:
    """Register `function` as legacy command `name` (`ext.fwd.set` is function `ext_fwd_set`).

    `write=True` marks commands that change PBX state (they invalidate the directory cache).
    `cached=True` marks answers that describe configuration, not live state: they may be served
    from the short directory cache ([webapi] cache_s).
    """

    def register(function: CommandFunction) -> CommandFunction:
        if name in REGISTRY:
            raise ValueError(f"command {name!r} registered twice")
        expected = ["ctx", *params]
        actual = list(inspect.signature(function).parameters)
        if actual != expected:
            raise TypeError(f"{name}: parameters {actual} must be {expected}")
        doc = inspect.getdoc(function)
        if not doc:
            raise TypeError(f"{name}: a command needs a docstring (it is the help text)")
        if write and cached:
            raise TypeError(f"{name}: a write command cannot be cached")
        REGISTRY[name] = Command(name, dict(params), function, doc, write, cached)
        return function

    return register
