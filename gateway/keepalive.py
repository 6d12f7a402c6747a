"""Kept HTTP/1.1 connections to one origin, one per calling thread.

The hot paths of the gateway, Call Control participant reads (pbx/lean.py) and webhooks
(webhooks/transport.py), send hundreds of small requests a second to one place; the
general-purpose client spends several times the request itself on each. `KeptConnections`
keeps one connection per thread open between requests. A kept connection the other side closed
meanwhile is noticed when the request cannot be written or the connection ends before an answer
starts; the request is then sent once more on a new connection (a server that did act on the
first sees it twice: both callers' requests are safe to repeat).

The exchange itself is HTTP/1.1 written and read here, over a plain (or TLS) socket: the request
goes out in one write, the answer's status line and headers are split by hand, and the body is
read by Content-Length, by chunks, or to the end of the connection. `http.client` parses every
answer's headers with the e-mail parser, which cost more than the rest of a webhook's delivery.

Failures are raised as they come (`OSError`, `ssl.SSLError`, `http.client.HTTPException`): each
caller tells them in its own words.
"""
from __future__ import annotations

import http.client
import socket
import ssl
import threading
from dataclasses import dataclass
from typing import BinaryIO, Iterable
from urllib.parse import urlsplit

import certifi

MAX_LINE = 65536        # of a status or header line
MAX_HEADERS = 100


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
        default_port = 443 if self._is_https else 80
        self._host = parts.hostname or ""
        self._port = parts.port or default_port
        self._host_header = _host_header(self._host, parts.port, default_port)
        self._context = tls_context(verify) if self._is_https else None
        self._local = threading.local()
        self._lock = threading.Lock()
        self._open: set[_Connection] = set()

    def exchange(self, method: str, target: str, headers: Iterable[tuple[str, str]], body: bytes, *,
                 timeout_s: float, max_body: int) -> Answer:
        """Send `method target` with exactly `headers` (only Host is added) and `body`; read at most
        `max_body` bytes of the answer (a longer one closes the connection)."""
        request = _request(method, target, self._host_header, headers, body)
        connection, is_kept = self._connection(timeout_s)
        try:
            return self._exchange(connection, method, request, max_body)
        except (http.client.RemoteDisconnected, BrokenPipeError, ConnectionResetError):
            self._drop(connection)
            if not is_kept:
                raise
        except (OSError, http.client.HTTPException):
            self._drop(connection)
            raise
        connection, _ = self._connection(timeout_s)      # the kept one was closed by the other side: once more
        try:
            return self._exchange(connection, method, request, max_body)
        except (OSError, http.client.HTTPException):
            self._drop(connection)
            raise

    def close(self) -> None:
        """Close every kept connection (once no thread sends any more)."""
        with self._lock:
            connections, self._open = self._open, set()
        for connection in connections:
            connection.close()

    def _connection(self, timeout_s: float) -> tuple[_Connection, bool]:
        connection: _Connection | None = getattr(self._local, "connection", None)
        if connection is not None:
            connection.sock.settimeout(timeout_s)
            return connection, True
        sock = socket.create_connection((self._host, self._port), timeout_s)
        try:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            if self._context is not None:
                sock = self._context.wrap_socket(sock, server_hostname=self._host)
        except BaseException:
            sock.close()
            raise
        connection = _Connection(sock)
        self._local.connection = connection
        with self._lock:
            self._open.add(connection)
        return connection, False

    def _exchange(self, connection: _Connection, method: str, request: bytes, max_body: int) -> Answer:
        connection.sock.sendall(request)
        answer, will_close = _read_answer(connection.reader, method, max_body)
        if will_close or answer.is_cut:
            self._drop(connection)
        return answer

    def _drop(self, connection: _Connection) -> None:
        connection.close()
        with self._lock:
            self._open.discard(connection)
        if getattr(self._local, "connection", None) is connection:
            self._local.connection = None


class _Connection:
    """A socket and the buffered reader of its answers."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.reader: BinaryIO = sock.makefile("rb")

    def close(self) -> None:
        self.reader.close()
        self.sock.close()


def _host_header(host: str, port: int | None, default_port: int) -> str:
    """The Host header `http.client` would send: IPv6 in brackets, the port unless the default."""
    try:
        name = host.encode("ascii").decode()
    except UnicodeEncodeError:
        name = host.encode("idna").decode()
    if ":" in name:
        name = f"[{name}]"
    return name if port is None or port == default_port else f"{name}:{port}"


def _request(method: str, target: str, host: str, headers: Iterable[tuple[str, str]], body: bytes) -> bytes:
    """The request's bytes: request line, Host, `headers` as given (latin-1), blank line, body."""
    lines = [f"{method} {target} HTTP/1.1", f"Host: {host}"]
    for name, value in headers:
        if "\r" in name or "\n" in name or "\r" in value or "\n" in value:
            raise ValueError(f"invalid header {name!r}")
        lines.append(f"{name}: {value}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


def _read_answer(reader: BinaryIO, method: str, max_body: int) -> tuple[Answer, bool]:
    """Read one answer (1xx interim answers skipped): the answer and whether the connection must
    be closed after it."""
    while True:
        version, status, reason = _status_line(reader)
        headers = _header_lines(reader)
        if status >= 200 or status == 101:
            break
    fields = {name.lower(): value for name, value in headers}
    connection = fields.get("connection", "").lower()
    will_close = "close" in connection or (version == "HTTP/1.0" and "keep-alive" not in connection)
    if method == "HEAD" or status in (204, 304) or status < 200:
        return Answer(status, reason, headers, b""), will_close
    if "chunked" in fields.get("transfer-encoding", "").lower():
        body, is_cut = _chunked(reader, max_body)
    elif "content-length" in fields:
        try:
            length = int(fields["content-length"])
        except ValueError:
            raise http.client.HTTPException(f"bad Content-Length {fields['content-length']!r}") from None
        if length < 0:
            raise http.client.HTTPException(f"bad Content-Length {length}")
        body = _exactly(reader, min(length, max_body))
        is_cut = length > max_body
    else:                                   # no length: the body runs to the end of the connection
        body = reader.read(max_body)
        is_cut = len(body) == max_body and reader.read(1) != b""
        will_close = True
    return Answer(status, reason, headers, body, is_cut), will_close


def _status_line(reader: BinaryIO) -> tuple[str, int, str]:
    line = reader.readline(MAX_LINE + 1)
    if not line:
        raise http.client.RemoteDisconnected("Remote end closed connection without response")
    if len(line) > MAX_LINE:
        raise http.client.LineTooLong("status line")
    text = line.decode("iso-8859-1").rstrip("\r\n")
    version, _, rest = text.partition(" ")
    code, _, reason = rest.partition(" ")
    if not version.startswith("HTTP/") or len(code) != 3 or not code.isdigit():
        raise http.client.BadStatusLine(text)
    return version, int(code), reason.strip()


def _header_lines(reader: BinaryIO) -> list[tuple[str, str]]:
    headers: list[tuple[str, str]] = []
    while True:
        line = reader.readline(MAX_LINE + 1)
        if len(line) > MAX_LINE:
            raise http.client.LineTooLong("header line")
        if line in (b"\r\n", b"\n", b""):
            return headers
        if len(headers) >= MAX_HEADERS:
            raise http.client.HTTPException(f"more than {MAX_HEADERS} headers")
        text = line.decode("iso-8859-1").rstrip("\r\n")
        if text[:1] in (" ", "\t") and headers:       # a folded line continues the header before it
            name, value = headers[-1]
            headers[-1] = (name, f"{value} {text.strip()}")
            continue
        name, colon, value = text.partition(":")
        if not colon:
            raise http.client.HTTPException(f"bad header line {text[:100]!r}")
        headers.append((name.strip(), value.strip()))


def _exactly(reader: BinaryIO, length: int) -> bytes:
    data = reader.read(length)
    if len(data) < length:
        raise http.client.IncompleteRead(data, length - len(data))
    return data


def _chunked(reader: BinaryIO, max_body: int) -> tuple[bytes, bool]:
    """A chunked body: its first `max_body` bytes, and whether there was more (then the rest is
    left unread and the connection must be closed)."""
    parts: list[bytes] = []
    kept = 0
    while True:
        line = reader.readline(MAX_LINE + 1)
        if not line:
            raise http.client.IncompleteRead(b"".join(parts))
        try:
            size = int(line.split(b";", 1)[0].strip(), 16)
        except ValueError:
            raise http.client.HTTPException(f"bad chunk size {line[:40]!r}") from None
        if size == 0:
            _header_lines(reader)           # trailers
            return b"".join(parts), False
        if kept + size > max_body:
            parts.append(_exactly(reader, max_body - kept))
            return b"".join(parts), True
        parts.append(_exactly(reader, size))
        kept += size
        _exactly(reader, 2)                 # the CRLF after the chunk
