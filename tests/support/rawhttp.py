"""A bare HTTP/1.1 server on loopback for transport tests: it records each request's head as
received (request line and headers), answers 200, and can misbehave as CRMs and proxies do.

It answers `answer` (`content_type`) to every request. `close_after_answer=True` closes the
connection right after each answer while leaving the keep-alive the client asked for in place (as
a server whose idle timeout has just run out); with `tls=(certfile, keyfile)` it speaks HTTPS.
`raw` replaces the whole answer with exactly those bytes (status line, headers and body as
written, for answers framed in other ways).
"""
from __future__ import annotations

import socket
import ssl
import threading
import time
from dataclasses import dataclass, field


@dataclass
class RawRequest:
    connection: int          # which accepted connection carried it (1, 2, ...)
    line: str                # "GET /hook?x=1 HTTP/1.1", or the absolute form a proxy receives
    headers: dict[str, str]
    body: bytes


@dataclass
class RawHttpServer:
    close_after_answer: bool = False
    tls: tuple[str, str] | None = None
    answer: bytes = b"ok"
    content_type: str = "text/plain"
    delay_s: float = 0.0             # how long each answer takes (the request is recorded at once)
    raw: bytes | None = None         # the exact bytes of every answer, instead of a 200 with `answer`
    requests: list[RawRequest] = field(default_factory=list)
    connections: int = 0

    def __post_init__(self) -> None:
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = self._listener.getsockname()[1]
        self.url = f"{'https' if self.tls else 'http'}://127.0.0.1:{self.port}"
        self._context: ssl.SSLContext | None = None
        if self.tls:
            self._context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            self._context.load_cert_chain(*self.tls)
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._accept, name="raw-http", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._listener.close()

    def _accept(self) -> None:
        while True:
            try:
                sock, _ = self._listener.accept()
            except OSError:
                return
            with self._lock:
                self.connections += 1
                number = self.connections
            threading.Thread(target=self._serve, args=(sock, number), daemon=True).start()

    def _serve(self, sock: socket.socket, number: int) -> None:
        try:
            if self._context is not None:
                sock = self._context.wrap_socket(sock, server_side=True)
            stream = sock.makefile("rb")
            while True:
                line = stream.readline()
                if not line:
                    return
                headers: dict[str, str] = {}
                while (header := stream.readline()) not in (b"\r\n", b"\n", b""):
                    name, _, value = header.decode("latin-1").partition(":")
                    headers[name.strip().lower()] = value.strip()
                body = stream.read(int(headers.get("content-length") or 0))
                with self._lock:
                    self.requests.append(RawRequest(number, line.decode("latin-1").rstrip("\r\n"), headers, body))
                if self.delay_s:
                    time.sleep(self.delay_s)
                if self.raw is not None:
                    sock.sendall(self.raw)
                else:
                    sock.sendall(b"HTTP/1.1 200 OK\r\nDate: Mon, 30 Nov 2026 08:00:00 GMT\r\n"
                                 + f"Content-Length: {len(self.answer)}\r\nContent-Type: {self.content_type}\r\n\r\n"
                                 .encode() + self.answer)
                if self.close_after_answer:
                    return
        except (OSError, ssl.SSLError):
            return
        finally:
            sock.close()
