"""Errors a legacy command can answer; each renders as {"error": ..., "command": ...}.

    WebApiError              500  (also what an unexpected exception becomes)
     ├── BadKey              401  wrong or missing access key; no PBX call is made
     ├── UnknownCommand      404  no such legacy command
     ├── BadParameter        400  a parameter is missing or malformed (names it and what is expected)
     ├── NoSuchNumber        404  the extension/queue/group/contact does not exist on the PBX
     ├── NoSuchCall          404  the extension has no call matching the request
     ├── NotPossibleOnV20    501  3CX v20 offers no way to do this (see the README's command table)
     ├── PbxDown             503  the PBX is unreachable or timed out
     └── PbxRefused          502  the PBX refused the request (its message is passed on)
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


# Every PbxError subclass maps to exactly one WebApiError; a test walks the subclasses.
PBX_ERRORS: dict[type[PbxError], Callable[[Any], WebApiError]] = {
    PbxUnreachable: lambda exc: PbxDown(f"the PBX is unreachable: {exc}"),
    PbxAuthFailed: _auth,
    PbxNotFound: _not_found,
    PbxRejected: lambda exc: PbxRefused(f"the PBX refused the request: {exc.message}"),
    PbxError: lambda exc: PbxRefused(f"the PBX request failed: {exc}"),
}


def from_pbx(exc: PbxError) -> WebApiError:
    """Translate a PBX client exception into the answer the legacy client sees."""
    for cls in type(exc).__mro__:
        if cls in PBX_ERRORS:
            return PBX_ERRORS[cls](exc)
    raise TypeError(f"unmapped PBX error {type(exc).__name__}")


def from_live(exc: NoSuchLeg) -> WebApiError:
    """A live-model lookup that found no call answers 404 NoSuchCall."""
    return NoSuchCall(str(exc))
