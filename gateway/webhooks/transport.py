"""How a webhook request reaches a target: one keep-alive HTTP/1.1 connection per sender thread.

`Delivery` builds each request once (`WireRequest`: method, request target, headers, body) and
hands it to its target's transport:

- `DirectTransport` (the usual case) speaks HTTP/1.1 over `http.client`, keeping one connection
  per sender thread open between webhooks. A request costs a fraction of what the general-purpose
  client costs (bench/webhook_bench.py), which is what lets a burst of calls leave in time.
  HTTPS checks the certificate against REQUESTS_CA_BUNDLE / CURL_CA_BUNDLE when set, else the
  same CA bundle `requests` uses. A kept connection the CRM closed meanwhile is noticed when the
  request cannot be written or the connection ends before an answer starts; the request is then
  sent once more on a new connection (a CRM that did act on the first sees the X-Webhook-Id twice).
- `ClientTransport` sends through a `requests` Session: used when the environment names a proxy
  for the target (HTTPS_PROXY, HTTP_PROXY, ALL_PROXY, unless NO_PROXY names its host).

Both raise `requests.Timeout` or `requests.ConnectionError` for a request that got no answer, so
the retry policy (policy.py) reads every transport's failures alike. Redirects are never followed.
"""
from __future__ import annotations

import http.client
import os
import ssl
import threading
from dataclasses import dataclass
from typing import Protocol
from urllib.parse import urlsplit

import certifi
import requests
from requests.utils import get_environ_proxies

from gateway import httpenv

MAX_BODY_BYTES = 64 * 1024      # of an answer read to keep the connection; a longer one closes it
# What `requests` sends by default, sent here too: a CRM sees the same request whichever transport.
CLIENT_HEADERS = (("Accept-Encoding", "gzip, deflate"), ("Accept", "*/*"), ("Connection", "keep-alive"))


@dataclass(frozen=True)
class WireRequest:
    """One request as it goes on the wire: `target` is the path with the query string."""

    method: str
    target: str
    headers: tuple[tuple[str, str], ...]
    body: bytes = b""


@dataclass(frozen=True)
class WireResponse:
    """What a delivery needs of an answer (policy.classify reads `status_code`)."""

    status_code: int


class Transport(Protocol):
    """Sends requests to one target (scheme, host and port fixed); any thread."""

    def send(self, request: WireRequest, timeout_s: float) -> WireResponse: ...

    def close(self) -> None: ...


def transport_for(url: str) -> Transport:
    """The transport for a target `url`: direct, unless the environment names a proxy for it."""
    scheme = urlsplit(url).scheme
    proxies = get_environ_proxies(url)
    if proxies.get(scheme) or proxies.get("all"):
        return ClientTransport(url)
    return DirectTransport(url)


class DirectTransport:
    """HTTP/1.1 with one kept connection per calling thread (see the module docstring)."""

    def __init__(self, url: str) -> None:
        parts = urlsplit(url)
        self._is_https = parts.scheme == "https"
        self._host = parts.hostname or ""
        self._port = parts.port
        self._context = _tls_context() if self._is_https else None
        self._local = threading.local()
        self._lock = threading.Lock()
        self._open: set[http.client.HTTPConnection] = set()

    def send(self, request: WireRequest, timeout_s: float) -> WireResponse:
        connection, is_kept = self._connection(timeout_s)
        try:
            return self._exchange(connection, request)
        except (http.client.RemoteDisconnected, BrokenPipeError, ConnectionResetError) as exc:
            self._drop(connection)
            if not is_kept:
                raise _failure(exc) from exc
        except (OSError, http.client.HTTPException) as exc:
            self._drop(connection)
            raise _failure(exc) from exc
        connection, _ = self._connection(timeout_s)   # the kept one was closed by the CRM: once more
        try:
            return self._exchange(connection, request)
        except (OSError, http.client.HTTPException) as exc:
            self._drop(connection)
            raise _failure(exc) from exc

    def close(self) -> None:
        """Close every kept connection (after the senders stopped)."""
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
            connection = http.client.HTTPSConnection(self._host, self._port, timeout=timeout_s,
                                                     context=self._context)
        else:
            connection = http.client.HTTPConnection(self._host, self._port, timeout=timeout_s)
        self._local.connection = connection
        with self._lock:
            self._open.add(connection)
        return connection, False

    def _exchange(self, connection: http.client.HTTPConnection, request: WireRequest) -> WireResponse:
        connection.putrequest(request.method, request.target, skip_accept_encoding=True)
        for name, value in request.headers:
            connection.putheader(name, value)
        connection.endheaders(request.body or None)
        response = connection.getresponse()
        body = response.read(MAX_BODY_BYTES)
        if response.will_close or len(body) == MAX_BODY_BYTES and not response.isclosed():
            self._drop(connection)
        return WireResponse(response.status)

    def _drop(self, connection: http.client.HTTPConnection) -> None:
        connection.close()
        with self._lock:
            self._open.discard(connection)
        if getattr(self._local, "connection", None) is connection:
            self._local.connection = None


class ClientTransport:
    """Through a `requests` Session (a proxy from the environment applies)."""

    def __init__(self, url: str) -> None:
        parts = urlsplit(url)
        self._origin = f"{parts.scheme}://{parts.netloc}"
        self._session = httpenv.settle(requests.Session(), url)

    def send(self, request: WireRequest, timeout_s: float) -> WireResponse:
        prepared = requests.Request(request.method, self._origin + request.target, headers=dict(request.headers),
                                    data=request.body or None).prepare()
        response = self._session.send(prepared, timeout=timeout_s, allow_redirects=False)
        response.close()
        return WireResponse(response.status_code)

    def close(self) -> None:
        self._session.close()


def _tls_context() -> ssl.SSLContext:
    bundle = next((os.environ[name] for name in httpenv.CA_BUNDLE_VARIABLES if os.environ.get(name)), None)
    return ssl.create_default_context(cafile=bundle or certifi.where())


def _failure(exc: BaseException) -> requests.RequestException:
    """The error as the retry policy reads it: a timeout, or a request that got no answer."""
    if isinstance(exc, TimeoutError):
        return requests.Timeout(f"{type(exc).__name__}: {exc}")
    return requests.ConnectionError(f"{type(exc).__name__}: {exc}")
