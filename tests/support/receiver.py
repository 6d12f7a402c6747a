"""A real local HTTP server standing in for a CRM: it records every webhook it receives."""
from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qsl, urlsplit


@dataclass
class Received:
    """One request as the CRM saw it."""

    method: str
    path: str
    params: dict[str, str]          # query parameters (GET) or the JSON object (POST)
    headers: dict[str, str]
    body: bytes
    raw_query: str = ""
    json: object = field(default=None)


class Receiver:
    """Collects webhooks; `status` (default 200) is what it answers, so tests can make it fail."""

    def __init__(self) -> None:
        self.received: list[Received] = []
        self.status = 200
        self.refused = 0
        self._cond = threading.Condition()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def _handle(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                parts = urlsplit(self.path)
                params = dict(parse_qsl(parts.query, keep_blank_values=True))
                parsed = None
                if body and "json" in (self.headers.get("Content-Type") or ""):
                    parsed = json.loads(body)
                    if isinstance(parsed, dict):
                        params = {**params, **parsed}
                status = receiver.status
                if status < 300:
                    with receiver._cond:
                        receiver.received.append(Received(
                            self.command, parts.path, params, dict(self.headers.items()),
                            body, parts.query, parsed))
                        receiver._cond.notify_all()
                else:
                    receiver.refused += 1
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            do_GET = do_POST = _handle

            def log_message(self, *args: object) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05},
                                        name="receiver", daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}/hook"

    def wait_for(self, count: int, timeout_s: float = 10.0) -> list[Received]:
        """Wait until `count` webhooks have arrived; return them all (fails the test on timeout)."""
        deadline = time.monotonic() + timeout_s
        with self._cond:
            while len(self.received) < count:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(
                        f"expected {count} webhooks, got {len(self.received)}: "
                        f"{[r.params for r in self.received]}")
                self._cond.wait(left)
            return list(self.received)

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
