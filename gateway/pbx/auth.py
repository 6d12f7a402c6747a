"""The bearer token of the gateway's API client: one token, shared by XAPI, Call Control and the WebSocket.

v20 keeps only one active access token per API client: a new token invalidates the previous one
(V20-API-NOTES §a). So `TokenSource` fetches tokens one at a time behind a lock, reuses the token
until shortly before it expires, and tells its subscribers (`on_refresh`) whenever it replaced one
or obtained one after a failed token request, so the event stream can reconnect with the new token
(at once, when it was waiting out a backoff because the PBX refused or was away).
"""
from __future__ import annotations

import base64
import binascii
import json
import logging
import threading
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from typing import Any, Callable

import requests

from gateway.clock import Clock
from gateway.logs import redact
from gateway.pbx.errors import PbxAuthFailed, PbxError, PbxRejected
from gateway.pbx.http import pbx_message, translated

logger = logging.getLogger(__name__)

REFRESH_MARGIN_S = 60.0          # fetch a new token this long before the old one expires
DEFAULT_LIFETIME_S = 3600.0      # documented lifetime (60 minutes) when the answer says nothing usable
RENEWAL_RETRY_S = 10.0           # after a failed early renewal, keep the valid token this long before retrying


def jwt_claims(token: str) -> dict[str, Any] | None:
    """The payload of a JWT (base64url JSON, signature not checked); None when `token` is not one."""
    parts = token.split(".")
    if len(parts) != 3:
        return None
    payload = parts[1] + "=" * (-len(parts[1]) % 4)
    try:
        claims = json.loads(base64.urlsafe_b64decode(payload.encode("ascii")))
    except (ValueError, binascii.Error, UnicodeError):
        return None
    return claims if isinstance(claims, dict) else None


def jwt_lifetime_s(token: str, *, issuer_now_s: float) -> float | None:
    """Seconds the JWT stays valid, from its `exp`, counted from its `iat` when present.

    `issuer_now_s` is the PBX's idea of now (its Date header, else our clock); it is used only when
    the token has no `iat`. Working from the PBX's own times keeps clock skew out of the answer.
    None when the token has no usable `exp`.
    """
    claims = jwt_claims(token)
    if not claims:
        return None
    exp = claims.get("exp")
    if not isinstance(exp, (int, float)) or isinstance(exp, bool):
        return None
    iat = claims.get("iat")
    issued = float(iat) if isinstance(iat, (int, float)) and not isinstance(iat, bool) else issuer_now_s
    lifetime = float(exp) - issued
    return lifetime if lifetime > 0 else None


def expires_in_seconds(expires_in: Any) -> float | None:
    """`expires_in` of a token answer in seconds; None when missing or not a positive number.

    Inferred rule (V20-API-NOTES §a): before 20.0.9 `expires_in` was in minutes (the docs show 60),
    from 20.0.9 in seconds (3600). No real lifetime is a minute or less, so values <= 60 are minutes.
    """
    try:
        value = float(expires_in)
    except (TypeError, ValueError):
        return None
    if not value > 0 or value != value:
        return None
    return value * 60.0 if value <= 60 else value


def refresh_after_s(lifetime_s: float) -> float:
    """When to replace a token of that lifetime: REFRESH_MARGIN_S early, but never in its first 3/4."""
    return max(lifetime_s - REFRESH_MARGIN_S, lifetime_s * 0.75)


@dataclass(frozen=True)
class TokenStatus:
    """The token's state for health checks."""

    valid: bool
    expires_in_s: float | None      # None while there is no token
    last_error: str | None          # the last failed fetch, cleared by a successful one


class TokenSource:
    """The one bearer token of API client `client_id`; thread-safe; see the module docstring."""

    def __init__(self, session: requests.Session, base_url: str, client_id: str, client_secret: str, *,
                 timeout_s: float, clock: Clock) -> None:
        self._session = session
        self._url = base_url.rstrip("/") + "/connect/token"
        self._client_id = client_id
        self._client_secret = client_secret
        self._timeout_s = timeout_s
        self._clock = clock
        self._lock = threading.Lock()
        self._token: str | None = None
        self._refresh_at = 0.0
        self._expires_at = 0.0
        self._last_error: str | None = None
        self._callbacks: list[Callable[[], None]] = []

    def token(self) -> str:
        """The current token, fetching a new one when there is none or it is about to expire."""
        with self._lock:
            now = self._clock.time()
            if self._token is not None and now < self._refresh_at:
                return self._token
            try:
                token, has_replaced = self._fetch_locked()
            except PbxError as exc:
                if self._token is not None and now < self._expires_at:
                    logger.warning("token renewal for client id %s failed (%s); keeping the current token",
                                   self._client_id, exc)
                    self._refresh_at = min(now + RENEWAL_RETRY_S, self._expires_at)
                    return self._token
                raise
        if has_replaced:
            self._notify()
        return token

    def refresh(self, stale: str | None = None) -> str:
        """A new token after `stale` was refused; no request when another thread already replaced it."""
        with self._lock:
            if stale is not None and self._token is not None and self._token != stale:
                return self._token
            token, has_replaced = self._fetch_locked()
        if has_replaced:
            self._notify()
        return token

    def on_refresh(self, callback: Callable[[], None]) -> None:
        """Call `callback()` (in the refreshing thread, outside the lock) after each replaced token and
        after each token obtained following a failed token request."""
        with self._lock:
            self._callbacks.append(callback)

    def status(self) -> TokenStatus:
        """Whether a valid token is held, how long it has left and the last fetch error."""
        with self._lock:
            now = self._clock.time()
            has_token = self._token is not None
            return TokenStatus(valid=has_token and now < self._expires_at,
                               expires_in_s=round(self._expires_at - now, 1) if has_token else None,
                               last_error=self._last_error)

    def _fetch_locked(self) -> tuple[str, bool]:
        """POST /connect/token; store and return the new token and whether subscribers should hear of it
        (it replaced an older one, or the previous token request had failed)."""
        had_failed = self._last_error is not None
        try:
            token, lifetime_s = self._request_token()
        except PbxError as exc:
            self._last_error = str(exc)
            logger.warning("cannot obtain a token for client id %s: %s", self._client_id, exc)
            raise
        has_replaced = self._token is not None or had_failed
        now = self._clock.time()
        self._token = token
        self._expires_at = now + lifetime_s
        self._refresh_at = now + refresh_after_s(lifetime_s)
        self._last_error = None
        logger.info("obtained a token for client id %s, valid %.0f s", self._client_id, lifetime_s)
        return token, has_replaced

    def _request_token(self) -> tuple[str, float]:
        form = {"client_id": self._client_id, "client_secret": self._client_secret,
                "grant_type": "client_credentials"}
        with translated("POST /connect/token"):
            response = self._session.post(self._url, data=form, timeout=self._timeout_s,
                                          headers={"Accept": "application/json"})
        if response.status_code in (400, 401, 403):
            message = redact(pbx_message(response), [self._client_secret])
            raise PbxAuthFailed(f"the PBX refused client id {self._client_id!r}: {message}")
        if response.status_code >= 300:
            raise PbxRejected(response.status_code, redact(pbx_message(response), [self._client_secret]))
        try:
            body = response.json()
        except ValueError:
            body = None
        token = body.get("access_token") if isinstance(body, dict) else None
        if not isinstance(token, str) or not token:
            raise PbxRejected(response.status_code, "the token answer holds no access_token")
        lifetime_s = (jwt_lifetime_s(token, issuer_now_s=self._pbx_now(response))
                      or expires_in_seconds(body.get("expires_in"))
                      or DEFAULT_LIFETIME_S)
        return token, lifetime_s

    def _pbx_now(self, response: requests.Response) -> float:
        """The PBX's time from its Date header, else ours."""
        try:
            return parsedate_to_datetime(response.headers["Date"]).timestamp()
        except (KeyError, TypeError, ValueError, IndexError):
            return self._clock.time()

    def _notify(self) -> None:
        with self._lock:
            callbacks = list(self._callbacks)
        for callback in callbacks:
            try:
                callback()
            except Exception:
                logger.exception("token refresh callback %r failed", callback)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)
