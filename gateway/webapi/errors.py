"""Errors a legacy command can answer; each renders as {"error": ..., "command": ...}.

    WebApiError              500  (also what an unexpected exception becomes)
     ├── BadKey              401  wrong or missing access key; no PBX call is made
     ├── UnknownCommand      404  no such legacy command
     ├── BadParameter        400  a parameter is missing or malformed (names it and what is expected)
     ├── BadMethod           405  a method the path does not take (HEAD on a write command, PUT, ...)
     ├── BadRequest          4xx  a request refused before any command ran (too large, malformed)
     ├── NoSuchNumber        404  the extension/queue/group/contact does not exist on the PBX
     ├── NoSuchCall          404  the extension has no call matching the request
     ├── NotPossibleOnV20    501  3CX v20 offers no way to do this (see the README's command table)
     ├── PbxDown             503  the PBX is unreachable or timed out
     └── PbxRefused          502  the PBX refused the request (its message is passed on)

`translate` turns what the layers below raise (every `PbxError` class and the live model's
`NoSuchLeg`) into one of these, through the single table `UPSTREAM_ERRORS`.
"""
from __future__ import annotations

from typing import Any, Callable

from gateway.live.errors import NoSuchLeg
from gateway.pbx.errors import PbxAuthFailed, PbxError, PbxNotFound, PbxRejected, PbxUnreachable


class WebApiError(Exception):
    """Base class; `status` is the HTTP status, str(self) the message shown to the client."""

    status = 500


class BadKey(WebApiError):
    status = 401

    def __init__(self) -> None:
        super().__init__("invalid access key")


class UnknownCommand(WebApiError):
    status = 404

    def __init__(self, name: str) -> None:
        super().__init__(f"unknown command {name!r}")


class BadParameter(WebApiError):
    status = 400

    def __init__(self, name: str, expected: str) -> None:
        super().__init__(f"parameter {name!r}: {expected}")
        self.name = name


class BadMethod(WebApiError):
    """`allowed` is the Allow header's list."""

    status = 405

    def __init__(self, message: str, allowed: tuple[str, ...]) -> None:
        super().__init__(message)
        self.allowed = allowed


class BadRequest(WebApiError):
    """A refusal of the HTTP layer (413 body too large, 400 malformed form, ...) with its own status."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


class NoSuchNumber(WebApiError):
    status = 404


class NoSuchCall(WebApiError):
    status = 404


class NotPossibleOnV20(WebApiError):
    status = 501


class PbxDown(WebApiError):
    status = 503


class PbxRefused(WebApiError):
    status = 502


def _not_found(exc: PbxError) -> WebApiError:
    return NoSuchNumber(f"not found on the PBX: {exc}")


def _auth(exc: PbxError) -> WebApiError:
    return PbxRefused(f"the PBX refused the gateway's credentials: {exc}")


# Every PbxError class and every NoSuchLeg class is a key here, each mapped to exactly one
# WebApiError; a test walks the subclasses, so a new class cannot be left out.
UPSTREAM_ERRORS: dict[type[Exception], Callable[[Any], WebApiError]] = {
    PbxUnreachable: lambda exc: PbxDown(f"the PBX is unreachable: {exc}"),
    PbxAuthFailed: _auth,
    PbxNotFound: _not_found,
    PbxRejected: lambda exc: PbxRefused(f"the PBX refused the request: {exc.message}"),
    PbxError: lambda exc: PbxRefused(f"the PBX request failed: {exc}"),
    NoSuchLeg: lambda exc: NoSuchCall(str(exc)),
}


def translate(exc: Exception) -> WebApiError | None:
    """The answer the legacy client sees for a PBX client or live-model exception; None for others."""
    for cls in type(exc).__mro__:
        if cls in UPSTREAM_ERRORS:
            return UPSTREAM_ERRORS[cls](exc)
    return None
