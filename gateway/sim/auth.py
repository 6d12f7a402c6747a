"""The simulated PBX's OAuth token endpoint (`POST /connect/token`) and bearer-token checks.

Tokens are JWT-shaped (`base64url(header).base64url(payload).base64url(hmac)`) with `exp`, `iat`
and `client_id` in the payload, signed with a key private to one server. Only one token per API
client is live at a time: issuing a new one invalidates the previous one (V20-API-NOTES §a).
"""
from __future__ import annotations

import base64
import hashlib
import hmac
import json
import logging
import secrets
import threading
import time
from dataclasses import dataclass
from typing import Any, Callable

import flask

logger = logging.getLogger(__name__)


class TokenRejected(Exception):
    """A bearer token that does not authenticate; the message says why (never the token)."""


@dataclass
class _Live:
    token_id: str
    expires_at: float       # epoch seconds
    is_expired: bool = False


class TokenIssuer:
    """Issues and checks tokens; thread-safe. `on_superseded(token)` runs when a token is replaced."""

    def __init__(self, *, lifetime_s: float = 3600, expires_in_unit: str = "seconds") -> None:
        if expires_in_unit not in ("seconds", "minutes"):
            raise ValueError("expires_in_unit must be 'seconds' or 'minutes'")
        self.lifetime_s = float(lifetime_s)
        self.expires_in_unit = expires_in_unit
        self._key = secrets.token_bytes(32)
        self._lock = threading.Lock()
        self._live: dict[str, _Live] = {}
        self._superseded_handlers: list[Callable[[str], None]] = []

    def on_superseded(self, handler: Callable[[str], None]) -> None:
        self._superseded_handlers.append(handler)

    def issue(self, client_id: str) -> tuple[str, int]:
        """A new token for `client_id` and its `expires_in` (in `expires_in_unit`)."""
        now = time.time()
        token_id = secrets.token_hex(8)
        expires_at = now + self.lifetime_s
        payload = {"client_id": client_id, "iat": int(now), "exp": int(expires_at), "jti": token_id,
                   "iss": "3cx-sim"}
        token = self._sign(payload)
        with self._lock:
            previous = self._live.get(client_id)
            self._live[client_id] = _Live(token_id, expires_at)
        if previous is not None:
            for handler in self._superseded_handlers:
                handler(previous.token_id)
        if self.expires_in_unit == "minutes":
            expires_in = max(1, round(self.lifetime_s / 60))
        else:
            expires_in = max(1, int(self.lifetime_s))
        return token, expires_in

    def check(self, token: str) -> tuple[str, str]:
        """(client_id, token_id) of a live token; raises TokenRejected otherwise."""
        payload = self._verify(token)
        client_id, token_id = str(payload.get("client_id", "")), str(payload.get("jti", ""))
        with self._lock:
            live = self._live.get(client_id)
            if live is None or live.token_id != token_id:
                raise TokenRejected("token was superseded or revoked")
            if live.is_expired or time.time() >= live.expires_at:
                raise TokenRejected("token expired")
        return client_id, token_id

    def expire_all(self) -> None:
        """Every token issued so far counts as expired from now on."""
        with self._lock:
            for live in self._live.values():
                live.is_expired = True

    def revoke_all(self) -> None:
        with self._lock:
            self._live.clear()

    def _sign(self, payload: dict[str, Any]) -> str:
        header = _b64(json.dumps({"alg": "HS256", "typ": "JWT"}, separators=(",", ":")).encode())
        body = _b64(json.dumps(payload, separators=(",", ":")).encode())
        signature = hmac.new(self._key, f"{header}.{body}".encode(), hashlib.sha256).digest()
        return f"{header}.{body}.{_b64(signature)}"

    def _verify(self, token: str) -> dict[str, Any]:
        parts = token.split(".")
        if len(parts) != 3:
            raise TokenRejected("malformed token")
        expected = hmac.new(self._key, f"{parts[0]}.{parts[1]}".encode(), hashlib.sha256).digest()
        try:
            is_valid = hmac.compare_digest(expected, _unb64(parts[2]))
            payload = json.loads(_unb64(parts[1]))
        except (ValueError, TypeError):
            raise TokenRejected("malformed token") from None
        if not is_valid or not isinstance(payload, dict):
            raise TokenRejected("bad token signature")
        return payload


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def unauthorized(description: str) -> flask.Response:
    """The 401 answer (V20-API-NOTES §a shape)."""
    response = flask.jsonify({"error": "unauthorized", "error_description": description})
    response.status_code = 401
    response.headers["WWW-Authenticate"] = 'Bearer error="invalid_token"'
    return response


def create_token_blueprint(sim: Any) -> flask.Blueprint:
    """`POST /connect/token` (client_credentials, form-urlencoded or multipart) for `sim`'s API clients."""
    blueprint = flask.Blueprint("sim_token", __name__)

    @blueprint.post("/connect/token")
    def token() -> Any:
        form = flask.request.form
        grant_type = form.get("grant_type", "")
        client_id = form.get("client_id", "")
        secret = form.get("client_secret", "")
        if grant_type != "client_credentials":
            return flask.jsonify({"error": "unsupported_grant_type",
                                  "error_description": "grant_type must be client_credentials"}), 400
        if sim.faults.is_refusing_tokens:
            return unauthorized("token requests are refused (fault injection)")
        with sim.directory.lock:
            client = sim.directory.api_clients.get(client_id)
            is_known = client is not None and hmac.compare_digest(client.secret.encode(), secret.encode())
        if not is_known:
            logger.info("token refused for client %r: bad client id or secret", client_id)
            return unauthorized("invalid client id or secret")
        access_token, expires_in = sim.tokens.issue(client_id)
        return flask.jsonify({"token_type": "Bearer", "expires_in": expires_in,
                              "access_token": access_token, "refresh_token": None})

    return blueprint
