"""Exceptions raised by the PBX clients; nothing else leaves `gateway.pbx`.

    PbxError
     ├── PbxUnreachable   connection refused/reset, DNS, TLS, timeout, WebSocket dropped
     ├── PbxAuthFailed    /connect/token refused the client id or secret, or 401 after a refresh
     ├── PbxNotFound      404: the DN, participant, entity or device does not exist
     └── PbxRejected      any other non-2xx answer: .status and the PBX's own message
"""
from __future__ import annotations


class PbxError(Exception):
    """Base class of every failure talking to the PBX; the message never holds a secret."""


class PbxUnreachable(PbxError):
    """The PBX could not be reached or did not answer in time."""


class PbxAuthFailed(PbxError):
    """The PBX refused our credentials or token."""


class PbxNotFound(PbxError):
    """The PBX answered 404."""


class PbxRejected(PbxError):
    """The PBX answered a non-2xx status other than 401/404."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(f"PBX answered {status}: {message}")
        self.status = status
        self.message = message
