"""Kept HTTP/1.1 connections to one origin, one per calling thread (`http.client`).

The hot paths of the gateway, Call Control participant reads (pbx/lean.py) and webhooks
(webhooks/transport.py), send hundreds of small requests a second to one place; the
general-purpose client spends several times the request itself on each. `KeptConnections`
keeps one connection per thread open between requests. A kept connection the other side closed
meanwhile is noticed when the request cannot be written or the connection ends before an answer
starts; the request is then sent once more on a new connection (a server that did act on the
first sees it twice: both callers' requests are safe to repeat).

Failures are raised as they come (`OSError`, `ssl.SSLError`, `http.client.HTTPException`): each
caller tells them in its own words.
"""
from __future__ import annotations

import http.client
import ssl
import threading
from dataclasses import dataclass
from typing import Iterable
from urllib.parse import urlsplit

import certifi


@dataclass(frozen=True)
class Answer:
    """An HTTP answer read whole, or its first `max_body` bytes (`is_cut`: there was more)."""

    status: int
    reason: str
    headers: list[tuple[str, str]]
    body: bytes
    is_cut: bool = False


def tls_context(verify: bool | str | None) -> ssl.SSLContext:
    """As requests reads `verify`: False checks nothing, a path names the CA bundle, True (or None)
    uses the bundle requests uses."""
    if verify is False:
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        return context
    return ssl.create_default_context(cafile=verify if isinstance(verify, str) else certifi.where())


class KeptConnections:
    """`exchange(...)` sends one request to the origin of `url` on the calling thread's kept connection."""

    def __init__(self, url: str, *, verify: bool | str | None = True) -> None:
        parts = urlsplit(url)
        self._is_https = parts.scheme == "https"
        self._host = parts.hostname or ""
        self._port = parts.port
        self._context = tls_context(verify) if self._is_https else None
        self._local = threading.local()
        self._lock = threading.Lock()
        self._open: set[http.client.HTTPConnection] = set()

    def exchange(self, method: str, target: str, headers: Iterable[tuple[str, str]], body: bytes, *,
                 timeout_s: float, max_body: int) -> Answer:
        """Send `method target` with exactly `headers` (http.client adds only Host) and `body`; read
        at most `max_body` bytes of the answer (a longer one closes the connection)."""
        headers = list(headers)
        connection, is_kept = self._connection(timeout_s)
        try:
            return self._exchange(connection, method, target, headers, body, max_body)
        except (http.client.RemoteDisconnected, BrokenPipeError, ConnectionResetError):
            self._drop(connection)
            if not is_kept:
                raise
        except (OSError, http.client.HTTPException):
            self._drop(connection)
            raise
        connection, _ = self._connection(timeout_s)      # the kept one was closed by the other side: once more
        try:
            return self._exchange(connection, method, target, headers, body, max_body)
        except (OSError, http.client.HTTPException):
            self._drop(connection)
            raise

    def close(self) -> None:
        """Close every kept connection (once no thread sends any more)."""
        with self._lock:
            connections, self._open = self._open, set()
        for connection in connections:
            connection.close()

    def _connection(self, timeout_s: float) -> tuple[http.client.HTTPConnection, bool]:
        connection: http.client.HTTPConnection | None = getattr(self._local, "connection", None)
        if connection is not None and connection.sock is not None:
            connection.timeout = timeout_s
            connection.sock.settimeout(timeout_s)
            return connection, True
        if self._is_https:
            connection = http.client.HTTPSConnection(self._host, self._port, timeout=timeout_s, context=self._context)
        else:
            connection = http.client.HTTPConnection(self._host, self._port, timeout=timeout_s)
        self._local.connection = connection
        with self._lock:
            self._open.add(connection)
        return connection, False

    def _exchange(self, connection: http.client.HTTPConnection, method: str, target: str,
                  headers: list[tuple[str, str]], body: bytes, max_body: int) -> Answer:
        connection.putrequest(method, target, skip_accept_encoding=True)
        for name, value in headers:
            connection.putheader(name, value)
        connection.endheaders(body or None)
        response = connection.getresponse()
        data = response.read(max_body)
        is_cut = len(data) == max_body and not response.isclosed()
        if response.will_close or is_cut:
            self._drop(connection)
        return Answer(response.status, response.reason, response.getheaders(), data, is_cut)

    def _drop(self, connection: http.client.HTTPConnection) -> None:
        connection.close()
        with self._lock:
            self._open.discard(connection)
        if getattr(self._local, "connection", None) is connection:
            self._local.connection = None
