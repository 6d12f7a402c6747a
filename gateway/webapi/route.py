"""The HTTP routes of the legacy WebAPI: /webapi/<key>/ and /webapi/<key>/<command>.

The only module that touches flask.request. For every request it checks the access key
(constant time, before any PBX call), looks the command up, parses its parameters, calls it with
the Services and renders the answer, or the error as {"error": ..., "command": ...}.
Directory answers are cached for [webapi] cache_s seconds; any write command clears the cache.
Subscribers registered with `subscribe(app, callback)` hear `callback(command, status, duration_s)`
after each command request (the /metrics module uses this).
"""
from __future__ import annotations

import hmac
import logging
import time
from typing import TYPE_CHECKING, Any, Callable

from flask import Blueprint, Flask, Response, jsonify, request

from gateway.webapi import errors
from gateway.webapi.errors import WebApiError
from gateway.webapi.registry import REGISTRY, Command

if TYPE_CHECKING:
    from gateway.services import Services

logger = logging.getLogger(__name__)

# The name reported to subscribers for the license/info request and for unknown command names
# (an unbounded set of names must not become metric labels).
INFO = "info"
UNKNOWN = "unknown"

# An unknown command name is echoed back in the error; a longer one is cut to this many characters.
MAX_NAME_SHOWN = 64

RequestListener = Callable[[str, int, float], None]


class WebApi:
    """Per-app state of the WebAPI routes: the services and the request listeners."""

    def __init__(self, services: Services) -> None:
        self.services = services
        self.listeners: list[RequestListener] = []

    def is_key_valid(self, key: str) -> bool:
        expected = self.services.config.webapi.key.encode("utf-8")
        return hmac.compare_digest(key.encode("utf-8", "surrogateescape"), expected)

    def notify(self, name: str, status: int, duration_s: float) -> None:
        for listener in list(self.listeners):
            try:
                listener(name, status, duration_s)
            except Exception:
                logger.exception("request listener %r failed for command %s", listener, name)

    def run(self, command: Command, args: dict[str, Any]) -> dict[str, Any]:
        """Call `command`, through the cache when it is declared `cached=True`."""
        if command.is_cached:
            key = ("answer", command.name, tuple(sorted((k, repr(v)) for k, v in args.items())))
            return self.services.cache.get_or_load(key, lambda: command.function(self.services, **args))
        try:
            return command.function(self.services, **args)
        finally:
            if command.is_write:
                self.services.cache.clear()


def subscribe(app: Flask, listener: RequestListener) -> None:
    """Call `listener(command, status, duration_s)` after every WebAPI request of `app`."""
    app.extensions["webapi"].listeners.append(listener)


def _error_answer(exc: Exception, name: str) -> tuple[Response, int]:
    """The single error shape; unexpected exceptions are logged once with their traceback."""
    exc = errors.translate(exc) or exc
    if not isinstance(exc, WebApiError):
        logger.exception("command %s failed unexpectedly", name or INFO)
        exc = WebApiError("internal error; see the gateway's log")
    elif exc.status >= 500 and not isinstance(exc, errors.NotPossibleOnV20):
        logger.warning("command %s answered %s: %s", name or INFO, exc.status, exc)
    return jsonify({"error": str(exc), "command": name}), exc.status


def _raw_params() -> dict[str, str]:
    """Query string values, then form values (a POST form is tolerated); the first value wins."""
    values: dict[str, str] = {}
    for source in (request.args, request.form if request.method == "POST" else {}):
        for name in source:
            values.setdefault(name, source.get(name, ""))
    return values


def register(app: Flask, services: Services) -> WebApi:
    """Add the /webapi routes to `app`; the returned WebApi is also app.extensions["webapi"]."""
    webapi = WebApi(services)
    app.extensions["webapi"] = webapi
    # Importing the command modules fills REGISTRY.
    import gateway.webapi.commands  # noqa: F401
    from gateway.webapi.commands.pbx import license_info

    blueprint = Blueprint("webapi", __name__)

    def answer(name: str, label: str, key: str, call: Callable[[], dict[str, Any]]) -> tuple[Response, int]:
        started = time.perf_counter()
        try:
            if not webapi.is_key_valid(key):
                raise errors.BadKey()
            response, status = jsonify(call()), 200
        except Exception as exc:  # every failure leaves as the documented error shape
            response, status = _error_answer(exc, name)
        duration_s = time.perf_counter() - started
        logger.log(logging.DEBUG if status < 400 else logging.INFO, "command %s answered %s in %.0f ms",
                   name or INFO, status, duration_s * 1000)
        webapi.notify(label, status, duration_s)
        return response, status

    @blueprint.route("/webapi/<key>/", methods=["GET", "POST"])
    def info(key: str) -> tuple[Response, int]:
        return answer("", INFO, key, lambda: license_info(services))

    @blueprint.route("/webapi/<key>/<name>", methods=["GET", "POST"])
    def run_command(key: str, name: str) -> tuple[Response, int]:
        command = REGISTRY.get(name)
        if command is None and len(name) > MAX_NAME_SHOWN:
            name = name[:MAX_NAME_SHOWN] + "..."

        def call() -> dict[str, Any]:
            if command is None:
                raise errors.UnknownCommand(name)
            return webapi.run(command, command.parse(_raw_params()))

        return answer(name, name if command else UNKNOWN, key, call)

    app.register_blueprint(blueprint)
    return webapi
