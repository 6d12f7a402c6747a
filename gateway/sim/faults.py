"""Fault injection: make the simulated PBX slow, failing, refusing or forgetful, on purpose.

Tests and integrators call these on `SimServer.faults`; the server consults them for every
request (`before_request`) and for WebSocket upgrades.
"""
from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from typing import Callable

logger = logging.getLogger(__name__)


@dataclass
class _Rule:
    path_prefix: str
    times: int | None          # None: every time
    status: int = 0
    delay_s: float = 0.0

    def take(self, path: str) -> bool:
        if not path.startswith(self.path_prefix) or self.times == 0:
            return False
        if self.times is not None:
            self.times -= 1
        return True


class Faults:
    """Thread-safe set of active faults. `on_drop_websockets` / `on_expire_tokens` do the work."""

    def __init__(self, *, on_drop_websockets: Callable[[], None] = lambda: None,
                 on_expire_tokens: Callable[[], None] = lambda: None) -> None:
        self._lock = threading.Lock()
        self._on_drop_websockets = on_drop_websockets
        self._on_expire_tokens = on_expire_tokens
        self._fails: list[_Rule] = []
        self._delays: list[_Rule] = []
        self.is_refusing_websockets = False
        self.is_refusing_tokens = False
        self._words: dict[str, str] = {}
        self._outage_timer: threading.Timer | None = None

    def rename_words(self, words: dict[str, str]) -> None:
        """Call Control answers say `words[x]` wherever they said the string value x (e.g. a status
        word or type name a newer 3CX build might use: {"Connected": "Bridged"})."""
        with self._lock:
            self._words = dict(words)

    def renamed(self, body: object) -> object:
        """`body` with the renamed words replaced (string values only; keys stay)."""
        with self._lock:
            words = dict(self._words)
        return _rename(body, words) if words else body

    def outage(self, seconds: float, *, refuse: str = "websockets") -> None:
        """Keep clients off the event stream for `seconds` (real) while calls go on.

        Every WebSocket is dropped now; until the time is up new ones are refused ("websockets":
        upgrades answer 503) or no token is issued and the issued ones are expired ("tokens":
        `POST /connect/token` answers 401). Then everything is accepted again by itself.
        """
        if refuse not in ("websockets", "tokens"):
            raise ValueError(f"refuse must be 'websockets' or 'tokens', got {refuse!r}")
        logger.info("fault: outage of %.1fs (refusing %s)", seconds, refuse)
        self.end_outage()
        if refuse == "tokens":
            self.refuse_tokens(True)
            self.expire_tokens()
        self.refuse_websockets(True)
        self.drop_websockets()
        timer = threading.Timer(seconds, self.end_outage)
        timer.daemon = True
        with self._lock:
            self._outage_timer = timer
        timer.start()

    def end_outage(self) -> None:
        """End an `outage` now (no-op without one)."""
        with self._lock:
            timer, self._outage_timer = self._outage_timer, None
        if timer is None:
            return
        timer.cancel()
        self.refuse_websockets(False)
        self.refuse_tokens(False)
        logger.info("fault: outage over")

    @property
    def is_in_outage(self) -> bool:
        with self._lock:
            return self._outage_timer is not None

    def drop_websockets(self) -> None:
        """Close every open Call Control WebSocket now (clients may reconnect)."""
        logger.info("fault: dropping all WebSockets")
        self._on_drop_websockets()

    def refuse_websockets(self, on: bool = True) -> None:
        """While on, WebSocket upgrades are answered 503."""
        self.is_refusing_websockets = bool(on)

    def refuse_tokens(self, on: bool = True) -> None:
        """While on, `POST /connect/token` answers 401."""
        self.is_refusing_tokens = bool(on)

    def expire_tokens(self) -> None:
        """Every token issued so far is expired from now on (requests with it get 401)."""
        logger.info("fault: expiring all tokens")
        self._on_expire_tokens()

    def fail(self, status: int, path_prefix: str = "", times: int | None = 1) -> None:
        """The next `times` requests under `path_prefix` answer `status` (None: until cleared)."""
        with self._lock:
            self._fails.append(_Rule(path_prefix, times, status=int(status)))

    def delay(self, seconds: float, path_prefix: str = "", times: int | None = None) -> None:
        """Requests under `path_prefix` wait `seconds` (real) before being served."""
        with self._lock:
            self._delays.append(_Rule(path_prefix, times, delay_s=float(seconds)))

    def clear(self) -> None:
        """No faults any more."""
        self.end_outage()
        with self._lock:
            self._fails.clear()
            self._delays.clear()
        self.is_refusing_websockets = False
        self.is_refusing_tokens = False
        with self._lock:
            self._words = {}

    def take(self, path: str) -> tuple[float, int | None]:
        """For one request to `path`: (seconds to wait, status to fail with or None). Consumes `times`."""
        with self._lock:
            delay_s = next((rule.delay_s for rule in self._delays if rule.take(path)), 0.0)
            status = next((rule.status for rule in self._fails if rule.take(path)), None)
            self._fails = [rule for rule in self._fails if rule.times != 0]
            self._delays = [rule for rule in self._delays if rule.times != 0]
        return delay_s, status


def _rename(body: object, words: dict[str, str]) -> object:
    if isinstance(body, str):
        return words.get(body, body)
    if isinstance(body, list):
        return [_rename(item, words) for item in body]
    if isinstance(body, dict):
        return {key: _rename(value, words) for key, value in body.items()}
    return body
