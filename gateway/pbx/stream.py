"""The Call Control WebSocket (/callcontrol/ws): one "events" thread that connects, delivers, reconnects.

The thread loops: connect with the shared bearer token (a 401 on the upgrade refreshes it once),
call `on_connect()` (the watcher resyncs there, before any event of the new connection is
delivered), hand each message's JSON to `on_message`, call `on_tick()` about every `tick_s` while
connected (the watcher's timers run there, in the same thread), ping every `ping_interval_s`, and on
close or error call `on_disconnect(reason)` and reconnect after a capped, jittered exponential backoff:
from MIN_BACKOFF_S up to MAX_BACKOFF_S (a few seconds, so the gateway is blind for little longer
than the PBX was away). A token obtained after a refused or failed token request ends the wait at
once: the PBX is back, so the stream reconnects without waiting for the rest of its backoff.
A token refresh closes the current connection (`close_current`), because on v20 a new token
invalidates the old one (V20-API-NOTES §a).

Answers to `request()` (event_type 4) are matched by RequestID and never delivered to `on_message`.
"""
from __future__ import annotations

import itertools
import json
import logging
import random
import ssl
import threading
import time
from contextlib import contextmanager
from typing import Any, Callable, Iterator
from urllib.parse import urlsplit, urlunsplit

import websocket

from gateway.pbx.auth import TokenSource
from gateway.pbx.errors import PbxAuthFailed, PbxError, PbxNotFound, PbxRejected, PbxUnreachable
from gateway.pbx.http import message_from_body

logger = logging.getLogger(__name__)

RESPONSE_EVENT = 4            # event_type of an answer to a request sent over the socket
SILENCE_PINGS = 3             # this many ping intervals without any frame (pongs included) = dead link
MIN_BACKOFF_S = 0.5           # first reconnect delay, doubled per failure ...
MAX_BACKOFF_S = 4.0           # ... up to this, then jittered down to half


def ws_url(base_url: str) -> str:
    """ws(s)://host[:port][/prefix]/callcontrol/ws for the PBX at http(s)://host[:port][/prefix]."""
    parts = urlsplit(base_url)
    schemes = {"http": "ws", "https": "wss", "ws": "ws", "wss": "wss"}
    scheme = schemes.get(parts.scheme.lower())
    if scheme is None or not parts.netloc:
        raise ValueError(f"{base_url!r} is not an http(s) URL")
    return urlunsplit((scheme, parts.netloc, parts.path.rstrip("/") + "/callcontrol/ws", "", ""))


def backoff_delay_s(failures: int, *, min_s: float, max_s: float, rand: Callable[[], float] = random.random) -> float:
    """Delay before reconnect attempt number `failures` (1, 2, ...): min_s doubled each time, capped
    at max_s, then jittered down to half so many gateways do not reconnect in step."""
    base: float = min(max_s, min_s * 2 ** max(0, failures - 1))
    return base * (0.5 + 0.5 * rand())


def _ignore(*_args: Any) -> None:
    return None


class _Pending:
    """One request() waiting for its answer."""

    def __init__(self) -> None:
        self.done = threading.Event()
        self.answer: dict[str, Any] | None = None
        self.error: PbxError | None = None


class EventStream:
    """The Call Control event stream; thread shape: start(), stop(timeout_s), a stop Event."""

    def __init__(self, base_url: str, tokens: TokenSource, *, verify_tls: bool = True,
                 ping_interval_s: float = 5.0, max_backoff_s: float = MAX_BACKOFF_S,
                 min_backoff_s: float = MIN_BACKOFF_S,
                 connect_timeout_s: float = 10.0, healthy_after_s: float = 10.0, tick_s: float = 0.25) -> None:
        self._url = ws_url(base_url)
        self._tokens = tokens
        self._sslopt = {} if verify_tls else {"cert_reqs": ssl.CERT_NONE, "check_hostname": False}
        self._ping_interval_s = ping_interval_s
        self._max_backoff_s = max_backoff_s
        self._min_backoff_s = min_backoff_s
        self._connect_timeout_s = connect_timeout_s
        self._healthy_after_s = healthy_after_s
        self._tick_s = tick_s
        self._on_message: Callable[[dict[str, Any]], None] = _ignore
        self._on_connect: Callable[[], None] = _ignore
        self._on_disconnect: Callable[[str], None] = _ignore
        self._on_tick: Callable[[], None] = _ignore
        self._lock = threading.Lock()
        self._ws: websocket.WebSocket | None = None
        self._ws_token: str | None = None     # the token the current connection was opened with
        self._generation = 0                  # counts close requests; see _open()
        self._close_reason: str | None = None
        self._pending: dict[str, _Pending] = {}
        self._request_ids = itertools.count(1)
        self._stop = threading.Event()
        self._wake = threading.Event()        # ends a backoff wait early (token regained, stop)
        self._thread: threading.Thread | None = None
        self._is_connected = False
        self._last_message_at: float | None = None
        self._connects = 0
        tokens.on_refresh(self._token_refreshed)

    # --- public ----------------------------------------------------------------------------------

    @property
    def is_connected(self) -> bool:
        """True while a connection is open and past on_connect()."""
        return self._is_connected

    @property
    def last_message_at(self) -> float | None:
        """Epoch seconds of the last message received, None before the first."""
        return self._last_message_at

    @property
    def connects(self) -> int:
        """How many connections have been opened so far."""
        return self._connects

    def set_handlers(self, on_message: Callable[[dict[str, Any]], None], on_connect: Callable[[], None],
                     on_disconnect: Callable[[str], None], *, on_tick: Callable[[], None] = _ignore) -> None:
        """Set the callbacks; all run in the "events" thread. Call before start()."""
        self._on_message = on_message
        self._on_connect = on_connect
        self._on_disconnect = on_disconnect
        self._on_tick = on_tick

    def start(self) -> None:
        """Start the "events" thread (no-op when it is running)."""
        if self._thread is not None and self._thread.is_alive():
            return
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._thread = threading.Thread(target=self._run, name="events", daemon=True)
        self._thread.start()

    def stop(self, timeout_s: float) -> None:
        """Stop the thread: set the flag, close the socket to unblock the read, join."""
        self._stop.set()
        self._wake.set()
        self.close_current("stopping")
        if self._thread is not None:
            self._thread.join(timeout_s)
            if self._thread.is_alive():
                logger.warning("event stream thread did not stop within %.1f s", timeout_s)

    def close_current(self, reason: str = "closed on request") -> None:
        """Close the current connection (if any); the thread reconnects at once unless stopping."""
        with self._lock:
            self._generation += 1
            ws = self._ws
            if ws is not None:
                self._close_reason = reason
        if ws is not None:
            _abort(ws)

    def request(self, path: str, data: Any = None, *, timeout_s: float = 5.0) -> dict[str, Any]:
        """Send {"RequestID","Path","RequestData"} and wait for the answer's attached_data.

        Returns {"RequestID", "Path", "StatusCode", "Response"} as the PBX sent it. PbxUnreachable
        when not connected, when the connection closes first or after `timeout_s`. Must not be
        called from a handler: the "events" thread is the one that reads the answer.
        """
        if threading.current_thread() is self._thread:
            raise RuntimeError("request() would wait on the thread that reads its answer")
        request_id = str(next(self._request_ids))
        pending = _Pending()
        with self._lock:
            ws = self._ws
            if ws is None:
                raise PbxUnreachable(f"event stream request {path}: not connected")
            self._pending[request_id] = pending
        frame = json.dumps({"RequestID": request_id, "Path": path,
                            "RequestData": "" if data is None else data})
        try:
            ws.send(frame)
        except (websocket.WebSocketException, OSError) as exc:
            self._forget(request_id)
            raise PbxUnreachable(f"event stream request {path}: cannot send ({exc})") from None
        if not pending.done.wait(timeout_s):
            self._forget(request_id)
            raise PbxUnreachable(f"event stream request {path}: no answer within {timeout_s:g} s")
        if pending.error is not None:
            raise pending.error
        assert pending.answer is not None
        return pending.answer

    # --- the thread ------------------------------------------------------------------------------

    def _run(self) -> None:
        failures = 0
        while not self._stop.is_set():
            try:
                failures = self._connect_and_serve(failures)
            except Exception:
                logger.exception("event stream: unexpected failure; reconnecting")
                failures += 1
                self._pause(self._delay_s(failures))
        logger.info("event stream stopped")

    def _connect_and_serve(self, failures: int) -> int:
        """One connection attempt and, if it opens, its whole life; returns the new failure count."""
        self._wake.clear()    # a wake-up from before this attempt is answered by the attempt itself
        try:
            ws = self._open()
        except PbxError as exc:
            failures += 1
            delay_s = self._delay_s(failures)
            logger.warning("event stream: cannot connect to %s: %s; retrying in %.1f s", self._url, exc, delay_s)
            self._pause(delay_s)
            return failures
        if ws is None:
            return failures   # a token refresh or stop() came while connecting
        opened_at = time.monotonic()
        with self._lock:
            opened_with = self._ws_token
        is_requested = self._serve(ws)
        if is_requested or self._stop.is_set():
            return 0          # we closed it ourselves (token refresh, close_current): reconnect at once
        if self._current_token() != opened_with:
            # The PBX closed a socket whose token was replaced (one live token per client, §a):
            # reconnect at once, so the gap in which events are missed stays as short as possible.
            logger.info("event stream: closed after a token refresh; reconnecting at once")
            return 0
        # A connection that lived long enough reconnects at once the first time; one that died
        # young lengthens the backoff.
        if time.monotonic() - opened_at >= self._healthy_after_s:
            logger.info("event stream: reconnecting at once")
            return 1
        failures += 1
        delay_s = self._delay_s(failures)
        logger.info("event stream: reconnecting in %.1f s", delay_s)
        self._pause(delay_s)
        return failures

    def _delay_s(self, failures: int) -> float:
        return backoff_delay_s(failures, min_s=self._min_backoff_s, max_s=self._max_backoff_s)

    def _pause(self, delay_s: float) -> None:
        """Wait `delay_s` before the next attempt, or less when stopped or woken by a regained token."""
        if self._wake.wait(delay_s) and not self._stop.is_set():
            logger.info("event stream: a new token was obtained; reconnecting at once")

    def _open(self) -> websocket.WebSocket | None:
        """Connect with the current token; on a 401 refresh it and try once more.

        Returns None when a close was requested while connecting (its token may already be stale).
        """
        for attempt in (1, 2):
            with self._lock:
                generation = self._generation
            token = self._tokens.token()
            try:
                with self._translated():
                    ws = websocket.create_connection(
                        self._url, timeout=self._connect_timeout_s, enable_multithread=True,
                        header=[f"Authorization: Bearer {token}"], sslopt=self._sslopt,
                        # checked by json.loads in _dispatch (a bad message is skipped), not byte by byte in Python
                        skip_utf8_validation=True)
            except PbxAuthFailed:
                if attempt == 2:
                    raise
                logger.info("event stream: the PBX refused the token on upgrade; refreshing it once")
                self._tokens.refresh(token)
                continue
            if self._register(ws, token, generation):
                return ws
            logger.info("event stream: a close was requested while connecting; connecting again")
            _abort(ws)
            ws.shutdown()
            return None
        raise PbxAuthFailed("the PBX refused the token on the WebSocket upgrade")  # not reached

    def _register(self, ws: websocket.WebSocket, token: str, generation: int) -> bool:
        """Make `ws` the current connection unless stopping or a close made it stale while connecting.

        A close requested meanwhile (close_current, token refresh) is satisfied by this connection
        when it already uses the current token. The token is read after seeing the close, so a
        refresh that announced itself is reflected; a later one closes the registered connection.
        """
        for _ in range(3):
            with self._lock:
                if self._stop.is_set():
                    return False
                if generation == self._generation:
                    self._ws, self._ws_token = ws, token
                    self._close_reason = None
                    return True
                generation = self._generation
            if self._current_token() != token:
                return False
        return False

    def _serve(self, ws: websocket.WebSocket) -> bool:
        """Run one connection to its end; return whether we closed it ourselves."""
        self._connects += 1
        logger.info("event stream connected to %s (connection %d)", self._url, self._connects)
        reason = "closed"
        try:
            try:
                self._on_connect()
            except Exception as exc:
                logger.exception("event stream: on_connect failed; reconnecting")
                reason = f"on_connect failed: {exc}"
            else:
                self._is_connected = True
                ws.settimeout(min(self._ping_interval_s, self._tick_s))
                reason = self._read(ws)
        finally:
            self._is_connected = False
            with self._lock:
                if self._ws is ws:
                    self._ws, self._ws_token = None, None
                requested, self._close_reason = self._close_reason, None
                pending = list(self._pending.values())
                self._pending.clear()
            _abort(ws)
            ws.shutdown()
            for waiting in pending:
                waiting.error = PbxUnreachable("the event stream closed before the answer came")
                waiting.done.set()
            reason = requested or reason
            logger.info("event stream disconnected from %s: %s", self._url, reason)
            try:
                self._on_disconnect(reason)
            except Exception:
                logger.exception("event stream: on_disconnect failed")
        return requested is not None

    def _read(self, ws: websocket.WebSocket) -> str:
        """Read frames until the connection ends; return why it ended."""
        last_ping = last_heard = last_tick = time.monotonic()
        while not self._stop.is_set():
            try:
                opcode, frame = ws.recv_data_frame(control_frame=True)
            except websocket.WebSocketTimeoutException:
                opcode, frame = None, None
            except (websocket.WebSocketException, OSError) as exc:
                return f"connection lost ({exc or type(exc).__name__})"
            now = time.monotonic()
            if opcode is not None:
                last_heard = now
            if opcode == websocket.ABNF.OPCODE_CLOSE:
                return f"closed by the PBX ({_close_code(frame.data)})"
            if opcode in (websocket.ABNF.OPCODE_TEXT, websocket.ABNF.OPCODE_BINARY):
                self._dispatch(frame.data)
            if now - last_tick >= self._tick_s:
                last_tick = now
                try:
                    self._on_tick()
                except Exception:
                    logger.exception("event stream: on_tick failed")
            if now - last_heard > SILENCE_PINGS * self._ping_interval_s:
                return f"nothing heard for {now - last_heard:.0f} s"
            if now - last_ping >= self._ping_interval_s:
                last_ping = now
                try:
                    ws.ping()
                except (websocket.WebSocketException, OSError) as exc:
                    return f"connection lost while pinging ({exc})"
        return "stopping"

    def _dispatch(self, data: bytes | str) -> None:
        self._last_message_at = time.time()
        try:
            message = json.loads(data)
        except ValueError:
            logger.warning("event stream: ignoring a message that is not JSON (%d bytes)", len(data))
            return
        if not isinstance(message, dict):
            logger.warning("event stream: ignoring a message that is not an object")
            return
        event = message.get("event")
        if isinstance(event, dict) and str(event.get("event_type")) == str(RESPONSE_EVENT):
            self._answer(event.get("attached_data"))
            return
        try:
            self._on_message(message)
        except Exception:
            entity = event.get("entity") if isinstance(event, dict) else None
            logger.exception("event stream: handling the message for %s failed", entity)

    def _answer(self, attached: Any) -> None:
        """Hand an event_type 4 answer to the request() waiting for its RequestID."""
        if isinstance(attached, str):
            try:
                attached = json.loads(attached)
            except ValueError:
                attached = None
        if not isinstance(attached, dict):
            logger.warning("event stream: ignoring a response without attached data")
            return
        request_id = str(attached.get("RequestID"))
        with self._lock:
            pending = self._pending.pop(request_id, None)
        if pending is None:
            logger.info("event stream: response to unknown or expired request %s", request_id)
            return
        pending.answer = attached
        pending.done.set()

    def _forget(self, request_id: str) -> None:
        with self._lock:
            self._pending.pop(request_id, None)

    def _token_refreshed(self) -> None:
        """A new token invalidates the one the connection was opened with: reconnect, unless done already.

        Also called when a token is obtained again after refusals: that ends a backoff wait at once.
        """
        self._wake.set()
        current = self._current_token()
        with self._lock:
            if self._ws is not None and current is not None and self._ws_token == current:
                return
        self.close_current("token refreshed")

    def _current_token(self) -> str | None:
        try:
            return self._tokens.token()
        except PbxError:
            return None

    @contextmanager
    def _translated(self) -> Iterator[None]:
        """Turn websocket-client and socket exceptions of the upgrade into gateway.pbx.errors."""
        try:
            yield
        except websocket.WebSocketBadStatusException as exc:
            message = _status_message(exc)
            if exc.status_code == 401:
                raise PbxAuthFailed(f"the PBX refused our token on the WebSocket upgrade: {message}") from None
            if exc.status_code == 404:
                raise PbxNotFound(f"GET /callcontrol/ws: {message}") from None
            raise PbxRejected(exc.status_code, message) from None
        except websocket.WebSocketTimeoutException:
            raise PbxUnreachable("the WebSocket upgrade timed out") from None
        except ssl.SSLError as exc:
            raise PbxUnreachable(f"TLS failure on the WebSocket ({exc.reason or exc})") from None
        except (websocket.WebSocketException, OSError, ValueError) as exc:
            raise PbxUnreachable(f"cannot open the WebSocket ({exc or type(exc).__name__})") from None


def _abort(ws: websocket.WebSocket) -> None:
    """Wake a thread blocked reading `ws` (shutdown of the socket); never raises."""
    try:
        ws.abort()
    except Exception:   # best effort on a socket another thread may be closing
        logger.debug("event stream: abort failed", exc_info=True)


def _close_code(data: bytes) -> str:
    if len(data) >= 2:
        code = int.from_bytes(data[:2], "big")
        text = data[2:].decode("utf-8", "replace").strip()
        return f"code {code}" + (f": {text}" if text else "")
    return "no code"


def _status_message(exc: websocket.WebSocketBadStatusException) -> str:
    body = exc.resp_body
    try:
        parsed = json.loads(body) if body else None
    except ValueError:
        parsed = None
    message = message_from_body(parsed) if parsed is not None else ""
    return message or exc.status_message or f"HTTP {exc.status_code}"
