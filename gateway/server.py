"""gunicorn settings and hooks: the only module that knows gunicorn.

One worker process with threads: the watcher thread, the live call model and the webhook outbox
senders must exist exactly once, and requests read the live model in memory. `preload_app` stays
False because threads started in the master before the fork would not exist in the worker; the
runtime starts in `post_worker_init`, inside the worker, and stops in `worker_exit` (gunicorn's
SIGTERM handling ends there), so a stop finishes in-flight deliveries and conversions.

Requests gunicorn refuses before the app sees them (a request line over MAX_REQUEST_LINE_BYTES,
headers over MAX_HEADER_FIELD_BYTES, NUL/CR/LF or spaces in the request line, a bad HTTP version)
are answered by `GatewayWorker` in the WebAPI's JSON error shape instead of gunicorn's HTML page,
and logged without the raw request text (which may carry the key or a recording link's `sig`).
"""
from __future__ import annotations

import gc
import json
import logging
import ssl
from datetime import datetime
from typing import Any

from gunicorn import util
from gunicorn.app.base import BaseApplication
from gunicorn.config import KNOWN_SETTINGS
from gunicorn.http import errors as http_errors
from gunicorn.http.wsgi import Response as GunicornResponse
from gunicorn.http.wsgi import default_environ
from gunicorn.workers.gthread import ThreadWorker

from gateway.config import Config

logger = logging.getLogger(__name__)

# gunicorn's largest finite request line (its parser caps the setting at 8190; 0 would mean "no
# limit at all", which one worker must not offer). A 10 kB parameter is over it and gets a 414 in
# the JSON shape; POST the form instead to send long values (bodies up to 64 KiB are read).
MAX_REQUEST_LINE_BYTES = 8190
MAX_HEADER_FIELD_BYTES = 8190

# gunicorn's refusals -> (status, reason, message shown to the client); the first match wins.
_REFUSALS: tuple[tuple[tuple[type[BaseException], ...], int, str, str], ...] = (
    ((http_errors.InvalidResponseHeader, http_errors.InvalidResponseHeaderName), 500,
     "Internal Server Error", "internal error; see the gateway's log"),
    ((http_errors.LimitRequestLine,), 414, "URI Too Long",
     f"request line too long: at most {MAX_REQUEST_LINE_BYTES} bytes; send long values as a POST form"),
    ((http_errors.LimitRequestHeaders,), 431, "Request Header Fields Too Large",
     f"request headers too large: at most {MAX_HEADER_FIELD_BYTES} bytes each"),
    ((http_errors.UnsupportedTransferCoding,), 501, "Not Implemented", "unsupported transfer coding"),
    ((http_errors.ExpectationFailed,), 417, "Expectation Failed", "unsupported Expect header"),
    ((http_errors.ForbiddenProxyRequest, ssl.SSLError), 403, "Forbidden", "request forbidden"),
    ((http_errors.ConfigurationProblem,), 500, "Internal Server Error", "internal error; see the gateway's log"),
    ((http_errors.ParseException,), 400, "Bad Request",
     "malformed HTTP request (control characters or spaces in the request line, bad header or version)"),
)


def refusal(exc: BaseException) -> tuple[int, str, str]:
    """(status, reason, message) of the answer to a request that failed with `exc` before the app."""
    for classes, status, reason, message in _REFUSALS:
        if isinstance(exc, classes):
            return status, reason, message
    return 500, "Internal Server Error", "internal error; see the gateway's log"


def error_response(status: int, reason: str, message: str) -> bytes:
    """A complete HTTP/1.1 answer carrying {"error": message, "command": ""}; the connection closes."""
    body = json.dumps({"error": message, "command": ""}).encode("utf-8")
    head = (f"HTTP/1.1 {status} {reason}\r\nConnection: close\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\n\r\n")
    return head.encode("ascii") + body


class GatewayWorker(ThreadWorker):
    """gunicorn's threaded worker; requests refused before the app are answered in the JSON shape."""

    def handle_error(self, req: Any, client: Any, addr: Any, exc: BaseException) -> None:
        started = datetime.now()
        status, reason, message = refusal(exc)
        if status >= 500:
            # The traceback is the gunicorn internals; the request line stays out of the log.
            self.log.exception("error handling a request before the app: %s", type(exc).__name__)
        else:
            # gunicorn's own warning quotes the raw request tail (it once carried a link's sig).
            self.log.warning("refused a request from %s with %s: %s", (addr or ("",))[0], status,
                             type(exc).__name__)
        if req is None:
            req = getattr(exc, "req", None)   # gunicorn attaches it to header errors
        if req is not None and getattr(req, "method", None) is not None:
            environ = default_environ(req, client, self.cfg)
            environ["REMOTE_ADDR"] = (addr or ("",))[0]
            response = GunicornResponse(req, client, self.cfg)
            response.status = f"{status} {reason}"
            self.log.access(response, req, environ, datetime.now() - started)
        try:
            util.write_nonblock(client, error_response(status, reason, message))
        except Exception:
            self.log.debug("could not send the error answer")


# The cyclic garbage collector's generation 0 runs after this many new objects (Python's default is
# 700). A burst of calls makes hundreds of thousands of short-lived objects, nearly all freed by
# reference counting; at the default, collections took a tenth of a second of a 1000-call burst
# with the interpreter stopped, one full collection 68 ms on its own (bench/webhook_bench.py).
GC_THRESHOLD = 20_000


def post_worker_init(worker: Any) -> None:
    """In the worker, after create_app(): start the watcher, senders and scheduler.

    The objects made so far (modules, the app, configuration) live as long as the process:
    `gc.freeze()` leaves them out of every later collection, and generation 0 is collected less
    often (GC_THRESHOLD); /metrics shows the collections (python_gc_*)."""
    gc.freeze()
    gc.set_threshold(GC_THRESHOLD, *gc.get_threshold()[1:])
    worker.wsgi.extensions["gateway"].runtime.start()


def worker_exit(server: Any, worker: Any) -> None:
    """On SIGTERM/SIGINT: stop taking events, finish deliveries, flush state."""
    services = getattr(worker, "wsgi", None) and worker.wsgi.extensions.get("gateway")
    if services is not None:
        services.runtime.stop(timeout_s=10)


def settings(config: Config) -> dict[str, Any]:
    """gunicorn settings for this config (a plain dict, so a test can read them)."""
    from gateway.logs import ACCESS_LOG_FORMAT
    options: dict[str, Any] = {
        "bind": config.webapi.listen,
        "workers": 1,                    # see the module docstring: the runtime must exist once
        "worker_class": GatewayWorker,   # gunicorn's gthread, with JSON answers to its refusals
        "threads": config.webapi.threads,
        "preload_app": False,
        "timeout": 60,
        "graceful_timeout": 20,
        "keepalive": 5,
        "limit_request_line": MAX_REQUEST_LINE_BYTES,
        "limit_request_field_size": MAX_HEADER_FIELD_BYTES,
        "accesslog": "-",
        "errorlog": "-",
        "access_log_format": ACCESS_LOG_FORMAT,
        "loglevel": config.logging.level.lower(),
        "post_worker_init": post_worker_init,
        "worker_exit": worker_exit,
        "proc_name": "3cx-gateway",
    }
    if any(setting.name == "control_socket_disable" for setting in KNOWN_SETTINGS):
        # gunicorn >= 25.1 opens a management socket under $HOME by default (it can change the
        # worker count, which must stay 1); the gateway has no use for it.
        options["control_socket_disable"] = True
    if config.webapi.tls_cert:
        options["certfile"] = config.webapi.tls_cert
        options["keyfile"] = config.webapi.tls_key
    return options


class GatewayApplication(BaseApplication):
    """Runs create_app(config) under gunicorn with `settings(config)`."""

    def __init__(self, config: Config) -> None:
        self._config = config
        super().__init__()

    def load_config(self) -> None:
        for key, value in settings(self._config).items():
            self.cfg.set(key, value)

    def load(self) -> Any:
        from gateway.app import create_app
        from gateway.logs import setup_logging
        setup_logging(self._config.logging.level, self._config.secrets())
        return create_app(self._config)


def serve(config: Config) -> None:
    """Serve until SIGTERM; returns when gunicorn has shut down."""
    from gateway.logs import setup_logging
    # In the master too: its own lines (the DEBUG configuration dump spans many lines) get the
    # same redaction and escaping as the worker's.
    setup_logging(config.logging.level, config.secrets())
    GatewayApplication(config).run()
