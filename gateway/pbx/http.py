"""HTTP transport to the PBX: the pooled session, error translation and authorised requests with retry.

`AuthorizedHttp.send()` is the one path XAPI and Call Control REST requests take:
- the bearer token comes from the shared `TokenSource`; a 401 refreshes it once and retries once;
- timeouts, connection errors and 5xx answers are retried (2 retries, short capped backoff) only
  for idempotent methods (GET, PATCH with full values, DELETE), never for POST (makecall, actions);
- every failure leaves as the most specific `gateway.pbx.errors` class, with the PBX's own message.
"""
from __future__ import annotations

import logging
import time
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, Callable, Iterator

import requests
from requests.adapters import HTTPAdapter

from gateway import __version__, httpenv
from gateway.logs import redact
from gateway.pbx.errors import PbxAuthFailed, PbxError, PbxNotFound, PbxRejected, PbxUnreachable

if TYPE_CHECKING:
    from gateway.pbx.auth import TokenSource
    from gateway.pbx.lean import LeanGets

logger = logging.getLogger(__name__)

USER_AGENT = f"3cx-gateway/{__version__}"
POOL_SIZE = 32
DEFAULT_TIMEOUT_S = 10.0
IDEMPOTENT_METHODS = frozenset({"GET", "HEAD", "PATCH", "PUT", "DELETE"})
RETRY_DELAYS_S = (0.2, 0.5)     # one delay per retry: 2 retries, capped well under a second
MAX_MESSAGE_CHARS = 300


class _PbxSession(requests.Session):
    """A Session that never waits forever: a request without a timeout gets DEFAULT_TIMEOUT_S."""

    def request(self, method: str | bytes, url: str | bytes, *args: Any, **kwargs: Any) -> requests.Response:
        if kwargs.get("timeout") is None:
            kwargs["timeout"] = DEFAULT_TIMEOUT_S
        return super().request(method, url, *args, **kwargs)


def new_session(*, verify_tls: bool, url: str | None = None) -> requests.Session:
    """A Session with a pool of POOL_SIZE connections per host, our User-Agent and TLS checks as
    configured; with the PBX's `url`, the environment's proxy settings for it are read once (httpenv)."""
    session = _PbxSession()
    adapter = HTTPAdapter(pool_connections=4, pool_maxsize=POOL_SIZE, max_retries=0)
    session.mount("https://", adapter)
    session.mount("http://", adapter)
    session.verify = verify_tls
    session.headers["User-Agent"] = USER_AGENT
    if not verify_tls:
        logger.warning("TLS certificate verification of the PBX is off")
    if url is not None:
        httpenv.settle(session, url)
    return session


def pbx_message(response: requests.Response) -> str:
    """The PBX's own explanation of a failed answer, from v20's error bodies, else the reason phrase.

    XAPI: {"error": {"message": "...", "details": [{"target": "Number", "message": "..."}]}};
    token endpoint: {"error": "...", "error_description": "..."};
    Call Control: a CallControlResultResponse with "reasontext"/"reason".
    """
    try:
        body = response.json()
    except ValueError:
        body = None
    message = message_from_body(body) if body is not None else ""
    if not message:
        text = (response.text or "").strip() if _is_text(response) else ""
        message = text or response.reason or f"HTTP {response.status_code}"
    return _shorten(message)


def message_from_body(body: Any) -> str:
    """The human message inside a v20 error body (XAPI, token or Call Control shape); "" if none."""
    if not isinstance(body, dict):
        return body.strip() if isinstance(body, str) else ""
    error = body.get("error")
    if isinstance(error, dict):
        parts = [str(error.get("message") or "").strip()]
        for detail in error.get("details") or []:
            if isinstance(detail, dict) and detail.get("message"):
                target = str(detail.get("target") or "").strip()
                text = str(detail["message"]).strip()
                parts.append(f"{target}: {text}" if target else text)
        return "; ".join(part for part in parts if part)
    if isinstance(error, str) or "error_description" in body:
        description = str(body.get("error_description") or "").strip()
        return description or str(error or "").strip()
    for key in ("reasontext", "reason", "message", "title"):
        value = body.get(key)
        if isinstance(value, str) and value.strip():
            return value.strip()
    return ""


def error_for(response: requests.Response, what: str) -> PbxError:
    """The error for a non-2xx answer to `what` ("GET /xapi/v1/Users"): 404, 401 or anything else."""
    message = pbx_message(response)
    if response.status_code == 404:
        return PbxNotFound(f"{what}: {message}")
    if response.status_code == 401:
        return PbxAuthFailed(f"the PBX refused our token for {what}: {message}")
    return PbxRejected(response.status_code, message)


@contextmanager
def translated(what: str) -> Iterator[None]:
    """Turn `requests` exceptions raised inside into PbxUnreachable naming `what` and the cause."""
    try:
        yield
    except requests.Timeout:
        raise PbxUnreachable(f"{what}: the PBX did not answer in time") from None
    except requests.exceptions.SSLError as exc:
        raise PbxUnreachable(f"{what}: TLS failure ({_root_cause(exc)})") from None
    except requests.ConnectionError as exc:
        raise PbxUnreachable(f"{what}: cannot connect ({_root_cause(exc)})") from None
    except requests.RequestException as exc:
        raise PbxUnreachable(f"{what}: {type(exc).__name__} ({_root_cause(exc)})") from None


def json_body(response: requests.Response, what: str) -> Any:
    """The parsed JSON of a 2xx answer; None when empty; PbxRejected when it is not JSON."""
    if not response.content:
        return None
    try:
        return response.json()
    except ValueError:
        raise PbxRejected(response.status_code, f"{what}: the PBX answered something that is not JSON") from None


class AuthorizedHttp:
    """Bearer-authorised requests below base URL + prefix ("/xapi/v1"), with the module's retry policy."""

    def __init__(self, session: requests.Session, base_url: str, prefix: str, tokens: TokenSource, *,
                 timeout_s: float, sleep: Callable[[float], None] = time.sleep, lean: LeanGets | None = None) -> None:
        self._session = session
        self._lean = lean           # GETs without a body go this way when given (pbx/lean.py)
        self._base_url = base_url.rstrip("/")
        self.prefix = prefix.rstrip("/")
        self._tokens = tokens
        self._timeout_s = timeout_s
        self._sleep = sleep

    def send(self, method: str, path: str, *, query: str = "", body: Any = None,
             accept: str = "application/json") -> requests.Response:
        """Send `method` to prefix + `path` (already percent-encoded); return a 2xx response.

        `query` is an encoded query string without '?'. `body` is sent as JSON when not None.
        """
        method = method.upper()
        what = f"{method} {self.prefix}{path}"
        url = self._base_url + self.prefix + path + (f"?{query}" if query else "")
        is_idempotent = method in IDEMPOTENT_METHODS
        retries = 0
        has_refreshed = False
        while True:
            token = self._tokens.token()
            try:
                headers = {"Authorization": f"Bearer {token}", "Accept": accept}
                with translated(what):
                    if self._lean is not None and method == "GET" and body is None:
                        response = self._lean.get(url, headers, self._timeout_s)
                    else:
                        response = self._session.request(method, url, json=body, timeout=self._timeout_s,
                                                         headers=headers)
            except PbxUnreachable as exc:
                if is_idempotent and retries < len(RETRY_DELAYS_S):
                    logger.info("%s failed (%s); retrying", what, exc)
                    self._sleep(RETRY_DELAYS_S[retries])
                    retries += 1
                    continue
                raise
            status = response.status_code
            if status == 401 and not has_refreshed:
                logger.info("%s answered 401; refreshing the token once", what)
                has_refreshed = True
                self._tokens.refresh(token)
                continue
            if status >= 500 and is_idempotent and retries < len(RETRY_DELAYS_S):
                logger.info("%s answered %s; retrying", what, status)
                self._sleep(RETRY_DELAYS_S[retries])
                retries += 1
                continue
            if method == "DELETE" and status == 404 and retries:
                # A retried DELETE whose first attempt got through finds nothing left: that is success.
                return response
            if status >= 400:
                error = error_for(response, what)
                raise _redacted(error, token)
            return response


def _redacted(error: PbxError, token: str) -> PbxError:
    if token and token in str(error):
        if isinstance(error, PbxRejected):
            return PbxRejected(error.status, redact(error.message, [token]))
        return type(error)(redact(str(error), [token]))
    return error


def _is_text(response: requests.Response) -> bool:
    content_type = response.headers.get("Content-Type", "")
    return not content_type or content_type.startswith("text/plain") or "json" in content_type


def _shorten(message: str) -> str:
    message = " ".join(message.split())
    return message if len(message) <= MAX_MESSAGE_CHARS else message[:MAX_MESSAGE_CHARS - 1] + "…"


def _root_cause(exc: BaseException) -> str:
    """The innermost cause of a requests/urllib3 exception, short (no URL, which the caller names)."""
    seen = exc
    while True:
        inner = getattr(seen, "reason", None) or seen.__cause__ or seen.__context__
        if not isinstance(inner, BaseException) or inner is seen:
            break
        seen = inner
    text = str(seen)
    if text.startswith("<") and ": " in text:   # urllib3 prefixes the connection object's repr
        text = text.split(": ", 1)[1]
    return _shorten(text or type(seen).__name__)
