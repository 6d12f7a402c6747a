"""Call Control GETs over kept HTTP/1.1 connections, answered as ordinary `requests.Response`s.

A burst of calls means hundreds of participant reads a second, each a small JSON answer; the
general-purpose client spends several times the request itself preparing, merging settings and
wrapping the answer. `LeanGets` sends those GETs with `http.client`, one kept connection per
calling thread, and builds a `requests.Response` from the answer (status, reason, headers, body,
url, elapsed) and runs the session's response hooks on it (PBX latency metrics, the PBX clock),
so everything after the request (`http.json_body`, `http.error_for`, retries, token refresh) is
the same code for both paths. Failures raise `requests.Timeout`, `requests.exceptions.SSLError`
or `requests.ConnectionError`, as the general client would.

TLS follows the session: `verify` False skips the check, a path names the CA bundle, True uses the
bundle requests uses. It is not used when the environment names a proxy for the PBX (`for_pbx`
answers None: such requests keep going through the session), nor for anything but GETs without a
body. No cookies are sent or kept: a v20 API answer sets none (inferred: the API authenticates
with the bearer token alone).
"""
from __future__ import annotations

import http.client
import ssl
import threading
import time
from datetime import timedelta
from urllib.parse import urlsplit

import certifi
import requests
from requests.structures import CaseInsensitiveDict
from requests.utils import get_encoding_from_headers

MAX_BODY_BYTES = 32 * 1024 * 1024    # a longer answer is an error, not a participant


class LeanGets:
    """`get(url, headers, timeout_s)` -> the `requests.Response` of a GET to the PBX; any thread."""

    def __init__(self, session: requests.Session, base_url: str) -> None:
        parts = urlsplit(base_url)
        self._session = session
        self._is_https = parts.scheme == "https"
        self._host = parts.hostname or ""
        self._port = parts.port
        self._context = _tls_context(session.verify) if self._is_https else None
        self._local = threading.local()

    @classmethod
    def for_pbx(cls, session: requests.Session, base_url: str) -> LeanGets | None:
        """The lean path to the PBX at `base_url`, or None where the session must carry the requests
        (a proxy applies, or the url is not http(s))."""
        scheme = urlsplit(base_url).scheme
        if scheme not in ("http", "https"):
            return None
        proxies = dict(session.proxies)
        if session.trust_env:
            proxies.update(requests.utils.get_environ_proxies(base_url))
        if proxies.get(scheme) or proxies.get("all"):
            return None
        return cls(session, base_url)

    def get(self, url: str, headers: dict[str, str], timeout_s: float) -> requests.Response:
        """GET `url` (on this PBX) with the session's headers and `headers` on top."""
        parts = urlsplit(url)
        target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        sent = {**{str(k): str(v) for k, v in self._session.headers.items()
                   if str(k).lower() not in ("accept-encoding", "connection")}, **headers}
        started = time.perf_counter()
        connection, is_kept = self._connection(timeout_s)
        try:
            answer = self._exchange(connection, target, sent)
        except (http.client.RemoteDisconnected, BrokenPipeError, ConnectionResetError) as exc:
            self._drop(connection)
            if not is_kept:
                raise _failure(exc) from exc
            connection, _ = self._connection(timeout_s)     # the PBX closed the kept one: once more
            try:
                answer = self._exchange(connection, target, sent)
            except (OSError, http.client.HTTPException) as again:
                self._drop(connection)
                raise _failure(again) from again
        except (OSError, http.client.HTTPException) as exc:
            self._drop(connection)
            raise _failure(exc) from exc
        status, reason, answer_headers, body = answer
        response = requests.Response()
        response.status_code = status
        response.reason = reason
        response.headers = CaseInsensitiveDict(answer_headers)
        response._content = body
        response.url = url
        response.encoding = get_encoding_from_headers(response.headers)
        response.elapsed = timedelta(seconds=time.perf_counter() - started)
        for hook in self._session.hooks.get("response", []):     # as requests runs them
            hooked = hook(response)
            if hooked is not None:
                response = hooked
        return response

    def _connection(self, timeout_s: float) -> tuple[http.client.HTTPConnection, bool]:
        connection: http.client.HTTPConnection | None = getattr(self._local, "connection", None)
        if connection is not None and connection.sock is not None:
            connection.sock.settimeout(timeout_s)
            return connection, True
        if self._is_https:
            connection = http.client.HTTPSConnection(self._host, self._port, timeout=timeout_s, context=self._context)
        else:
            connection = http.client.HTTPConnection(self._host, self._port, timeout=timeout_s)
        self._local.connection = connection
        return connection, False

    def _exchange(self, connection: http.client.HTTPConnection, target: str,
                  headers: dict[str, str]) -> tuple[int, str, list[tuple[str, str]], bytes]:
        connection.putrequest("GET", target)
        for name, value in headers.items():
            connection.putheader(name, value)
        connection.endheaders()
        response = connection.getresponse()
        body = response.read(MAX_BODY_BYTES + 1)
        if len(body) > MAX_BODY_BYTES:
            raise http.client.HTTPException(f"answer longer than {MAX_BODY_BYTES} bytes")
        if response.will_close:
            self._drop(connection)
        return response.status, response.reason, response.getheaders(), body

    def _drop(self, connection: http.client.HTTPConnection) -> None:
        connection.close()
        if getattr(self._local, "connection", None) is connection:
            self._local.connection = None


def _tls_context(verify: bool | str | None) -> ssl.SSLContext:
    if verify is False:
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        return context
    return ssl.create_default_context(cafile=verify if isinstance(verify, str) else certifi.where())


def _failure(exc: BaseException) -> requests.RequestException:
    """The exception the general client raises for the same failure (see http.translated)."""
    if isinstance(exc, TimeoutError):
        return requests.Timeout(f"{type(exc).__name__}: {exc}")
    if isinstance(exc, ssl.SSLError):
        return requests.exceptions.SSLError(f"{type(exc).__name__}: {exc}")
    return requests.ConnectionError(f"{type(exc).__name__}: {exc}")
