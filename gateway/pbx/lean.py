"""Call Control GETs over kept HTTP/1.1 connections, answered as ordinary `requests.Response`s.

A burst of calls means hundreds of participant reads a second, each a small JSON answer; the
general-purpose client spends several times the request itself preparing, merging settings and
wrapping the answer. `LeanGets` sends those GETs on kept connections (gateway/keepalive.py), one
per calling thread, and builds a `requests.Response` from the answer (status, reason, headers, body,
url, elapsed) and runs the session's response hooks on it (PBX latency metrics, the PBX clock),
so everything after the request (`http.json_body`, `http.error_for`, retries, token refresh) is
the same code for both paths. Failures raise `requests.Timeout`, `requests.exceptions.SSLError`
or `requests.ConnectionError`, as the general client would.

TLS follows the session's `verify`, read as requests reads it (`keepalive.tls_context`). The lean
path is not used when the environment names a proxy for the PBX (`for_pbx` answers None: such
requests keep going through the session), nor for anything but GETs without a body. No cookies are
sent or kept: a v20 API answer sets none (inferred: the API authenticates with the bearer token
alone).
"""
from __future__ import annotations

import http.client
import ssl
import time
from datetime import timedelta
from urllib.parse import urlsplit

import requests
from requests.structures import CaseInsensitiveDict
from requests.utils import get_encoding_from_headers

from gateway import httpenv
from gateway.keepalive import KeptConnections

MAX_BODY_BYTES = 32 * 1024 * 1024    # a longer answer is an error, not a participant


class LeanGets:
    """`get(url, headers, timeout_s)` -> the `requests.Response` of a GET to the PBX; any thread."""

    def __init__(self, session: requests.Session, base_url: str) -> None:
        self._session = session
        self._connections = KeptConnections(base_url, verify=session.verify)

    @classmethod
    def for_pbx(cls, session: requests.Session, base_url: str) -> LeanGets | None:
        """The lean path to the PBX at `base_url`, or None where the session must carry the requests
        (a proxy applies, or the url is not http(s))."""
        if urlsplit(base_url).scheme not in ("http", "https"):
            return None
        proxies = dict(session.proxies)
        if session.trust_env:
            proxies.update(requests.utils.get_environ_proxies(base_url))
        if httpenv.names_proxy(base_url, proxies):
            return None
        return cls(session, base_url)

    def get(self, url: str, headers: dict[str, str], timeout_s: float) -> requests.Response:
        """GET `url` (on this PBX) with the session's headers and `headers` on top."""
        parts = urlsplit(url)
        target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        sent = {"Accept-Encoding": "identity",
                **{str(k): str(v) for k, v in self._session.headers.items()
                   if str(k).lower() not in ("accept-encoding", "connection")}, **headers}
        started = time.perf_counter()
        try:
            answer = self._connections.exchange("GET", target, sent.items(), b"", timeout_s=timeout_s,
                                                max_body=MAX_BODY_BYTES + 1)
            if len(answer.body) > MAX_BODY_BYTES:
                raise http.client.HTTPException(f"answer longer than {MAX_BODY_BYTES} bytes")
        except (OSError, http.client.HTTPException) as exc:
            raise _failure(exc) from exc
        response = requests.Response()
        response.status_code = answer.status
        response.reason = answer.reason
        response.headers = CaseInsensitiveDict(answer.headers)
        response._content = answer.body
        response.url = url
        response.encoding = get_encoding_from_headers(response.headers)
        response.elapsed = timedelta(seconds=time.perf_counter() - started)
        for hook in self._session.hooks.get("response", []):     # as requests runs them
            hooked = hook(response)
            if hooked is not None:
                response = hooked
        return response


def _failure(exc: BaseException) -> requests.RequestException:
    """The exception the general client raises for the same failure (see http.translated)."""
    if isinstance(exc, TimeoutError):
        return requests.Timeout(f"{type(exc).__name__}: {exc}")
    if isinstance(exc, ssl.SSLError):
        return requests.exceptions.SSLError(f"{type(exc).__name__}: {exc}")
    return requests.ConnectionError(f"{type(exc).__name__}: {exc}")
