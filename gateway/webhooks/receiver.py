"""WebhookReceiver: a local HTTP server on the CRM's side of the webhooks, for the demo, tests and benchmarks.

It answers every GET or POST with `status` (200 unless changed, so a test can make the CRM fail)
and hands each accepted request to `on_webhook` as a `Webhook`: the query parameters, merged with
the JSON object of a POST. Nothing in the service itself uses it.
"""
from __future__ import annotations

import json
import logging
import threading
import time
from dataclasses import dataclass
from email.message import Message
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable
from urllib.parse import parse_qsl, urlsplit

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Webhook:
    """One request as the CRM saw it; `at` is `time.perf_counter()` when it arrived."""

    method: str
    path: str
    params: dict[str, Any]          # query parameters, then the fields of a JSON object body
    headers: dict[str, str]
    body: bytes
    raw_query: str
    json: Any                       # the parsed JSON body, None when it was not JSON
    at: float


class WebhookReceiver:
    """Takes webhooks on 127.0.0.1:<free port> in its own thread until `stop()`.

    `keep_alive=True` speaks HTTP/1.1 with persistent connections, as a CRM behind nginx would
    (the benchmark measures with it); otherwise every request closes its connection.
    """

    def __init__(self, on_webhook: Callable[[Webhook], None], *, path: str = "/hook",
                 keep_alive: bool = False, name: str = "webhook-receiver") -> None:
        self.status = 200
        self.refused = 0
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1" if keep_alive else "HTTP/1.0"

            def _handle(self) -> None:
                at = time.perf_counter()
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                status = receiver.status
                if status < 300:
                    on_webhook(_webhook(self.command, self.path, self.headers, body, at))
                else:
                    receiver.refused += 1
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            do_GET = do_POST = _handle

            def log_message(self, *args: object) -> None:
                pass

        self._path = path
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05},
                                        name=name, daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}{self._path}"

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()


def _webhook(method: str, target: str, headers: Message[str, str], body: bytes, at: float) -> Webhook:
    parts = urlsplit(target)
    params: dict[str, Any] = dict(parse_qsl(parts.query, keep_blank_values=True))
    parsed = None
    if body and "json" in (headers.get("Content-Type") or ""):
        try:
            parsed = json.loads(body)
        except ValueError:
            logger.warning("webhook receiver: a body that claims to be JSON is not")
        if isinstance(parsed, dict):
            params = {**params, **parsed}
    return Webhook(method, parts.path, params, dict(headers.items()), body, parts.query, parsed, at)
