"""How a webhook request reaches a target: one keep-alive HTTP/1.1 connection per sender thread.

`Delivery` builds each request once (`WireRequest`: method, request target, headers, body) and
hands it to its target's transport:

- `DirectTransport` (the usual case) speaks HTTP/1.1 itself, keeping one connection per sender
  thread open between webhooks (gateway/keepalive.py). A request costs a fraction of
  what the general-purpose client costs (bench/delivery_bench.py), which is what lets a burst of
  calls leave in time. HTTPS checks the certificate against REQUESTS_CA_BUNDLE / CURL_CA_BUNDLE
  when set, else the same CA bundle `requests` uses. A kept connection the CRM closed meanwhile
  costs nothing: the request is sent once more on a new one (a CRM that did act on the first
  sees the X-Webhook-Id twice).
- `ClientTransport` sends through a `requests` Session: used when the environment names a proxy
  for the target (HTTPS_PROXY, HTTP_PROXY, ALL_PROXY, unless NO_PROXY names its host).

Both raise `requests.Timeout` or `requests.ConnectionError` for a request that got no answer, so
the retry policy (policy.py) reads every transport's failures alike. Redirects are never followed.
"""
from __future__ import annotations

import http.client
from dataclasses import dataclass
from typing import Protocol
from urllib.parse import urlsplit

import requests
from requests.utils import get_environ_proxies

from gateway import httpenv
from gateway.keepalive import KeptConnections

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
    if httpenv.names_proxy(url, get_environ_proxies(url)):
        return ClientTransport(url)
    return DirectTransport(url)


class DirectTransport:
    """HTTP/1.1 with one kept connection per calling thread (gateway/keepalive.py)."""

    def __init__(self, url: str) -> None:
        self._connections = KeptConnections(url, verify=httpenv.ca_bundle() or True)

    def send(self, request: WireRequest, timeout_s: float) -> WireResponse:
        try:
            answer = self._connections.exchange(request.method, request.target, request.headers, request.body,
                                                timeout_s=timeout_s, max_body=MAX_BODY_BYTES)
        except (OSError, http.client.HTTPException) as exc:
            raise _failure(exc) from exc
        return WireResponse(answer.status)

    def close(self) -> None:
        """Close every kept connection (after the senders stopped)."""
        self._connections.close()


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


def _failure(exc: BaseException) -> requests.RequestException:
    """The error as the retry policy reads it: a timeout, or a request that got no answer."""
    if isinstance(exc, TimeoutError):
        return requests.Timeout(f"{type(exc).__name__}: {exc}")
    return requests.ConnectionError(f"{type(exc).__name__}: {exc}")
