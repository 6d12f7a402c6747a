"""The HTTP routes of the legacy WebAPI: /webapi/<key>/ and /webapi/<key>/<command>.

The only module that touches flask.request. For every request it checks the access key
(constant time, before any PBX call), looks the command up, parses its parameters, calls it with
the Services and renders the answer, or the error as {"error": ..., "command": ...}.
Directory answers are cached for [webapi] cache_s seconds; any write command clears the cache.

Every answer under /webapi/ is JSON, errors included: a wrong method, an unknown path, a body too
large and Werkzeug's own refusals render as the same {"error", "command"} shape (recording downloads
keep their single {"error": "not found"}). Methods: GET and POST run commands; HEAD answers like
GET for read commands (`*.get` and the info path) and is refused with 405 for every other command
(writes and call actions), so HEAD never changes anything;
OPTIONS, PUT, PATCH, DELETE and the rest are 405 with an Allow header. Paths are never slash-merged
or redirected: `/webapi/recording/%2fetc%2fpasswd` gets the recording 404 like any other bad name.
Subscribers registered with `subscribe(app, callback)` hear `callback(command, status, duration_s)`
after each command request (the /metrics module uses this).
"""
from __future__ import annotations

import hmac
import logging
import time
from typing import TYPE_CHECKING, Any, Callable

from flask import Blueprint, Flask, Response, jsonify, request
from werkzeug.exceptions import HTTPException

from gateway.recordings.serve import NOT_FOUND_BODY
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

# Largest POST body read (a form of command parameters is a few kB at most); beyond: 413.
MAX_BODY_BYTES = 64 * 1024

PREFIX = "/webapi/"
RECORDING = "recording"          # /webapi/recording/<name> is the download route, never a key
COMMAND_METHODS = ("GET", "HEAD", "POST")
RECORDING_METHODS = ("GET", "HEAD")

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
    if isinstance(exc, HTTPException) and exc.code is not None and exc.code < 500:
        exc = errors.BadRequest(_http_message(exc), exc.code)
    exc = errors.translate(exc) or exc
    if not isinstance(exc, WebApiError):
        logger.exception("command %s failed unexpectedly", name or INFO)
        exc = WebApiError("internal error; see the gateway's log")
    elif exc.status >= 500 and not isinstance(exc, errors.NotPossibleOnV20):
        logger.warning("command %s answered %s: %s", name or INFO, exc.status, exc)
    response = jsonify({"error": str(exc), "command": name})
    if isinstance(exc, errors.BadMethod):
        response.headers["Allow"] = ", ".join(exc.allowed)
    return response, exc.status


def _http_message(exc: HTTPException) -> str:
    """A short fixed message for a Werkzeug refusal (its description may quote the request)."""
    if exc.code == 413:
        return f"request body too large: at most {MAX_BODY_BYTES} bytes"
    return (exc.name or "bad request").lower()


def _shown_name(name: str) -> str:
    return name if len(name) <= MAX_NAME_SHOWN else name[:MAX_NAME_SHOWN] + "..."


def _bad_method(method: str, allowed: tuple[str, ...]) -> errors.BadMethod:
    return errors.BadMethod(f"method {method[:16]!r} not allowed here; allowed: {', '.join(allowed)}", allowed)


def _recording_refusal() -> tuple[Response, int]:
    """What /webapi/recording/... answers when the download route did not take the request."""
    if request.method in RECORDING_METHODS:
        return jsonify(NOT_FOUND_BODY), 404
    return _error_answer(_bad_method(request.method, RECORDING_METHODS), "")


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
    app.config["MAX_CONTENT_LENGTH"] = MAX_BODY_BYTES

    def answer(name: str, label: str, key: str, call: Callable[[], dict[str, Any]],
               command: Command | None = None) -> tuple[Response, int]:
        started = time.perf_counter()
        try:
            if not webapi.is_key_valid(key):
                raise errors.BadKey()
            if request.method == "HEAD" and command is not None and not command.is_safe:
                # HEAD must be safe (RFC 9110 9.3.1): a write or call action runs by GET or POST only.
                raise errors.BadMethod(f"{command.name} acts on the PBX: use GET or POST, not HEAD",
                                       ("GET", "POST"))
            response, status = jsonify(call()), 200
        except Exception as exc:  # every failure leaves as the documented error shape
            response, status = _error_answer(exc, name)
        duration_s = time.perf_counter() - started
        logger.log(logging.DEBUG if status < 400 else logging.INFO, "command %s answered %s in %.0f ms",
                   name or INFO, status, duration_s * 1000)
        webapi.notify(label, status, duration_s)
        return response, status

    # No automatic OPTIONS (it would answer 200 with an empty HTML body), no slash merging and no
    # trailing-slash redirects (a 308 is not the JSON shape, and its Location would repeat the key).
    rule_options: dict[str, Any] = {"methods": ["GET", "POST"], "provide_automatic_options": False,
                                    "merge_slashes": False, "strict_slashes": False}

    @blueprint.route("/webapi/<key>/", **rule_options)
    def info(key: str) -> tuple[Response, int]:
        if key == RECORDING:
            return _recording_refusal()
        return answer("", INFO, key, lambda: license_info(services))

    @blueprint.route("/webapi/<key>/<name>", **rule_options)
    def run_command(key: str, name: str) -> tuple[Response, int]:
        if key == RECORDING:
            return _recording_refusal()
        command = REGISTRY.get(name)
        if command is None:
            name = _shown_name(name)

        def call() -> dict[str, Any]:
            if command is None:
                raise errors.UnknownCommand(name)
            return webapi.run(command, command.parse(_raw_params()))

        return answer(name, name if command else UNKNOWN, key, call, command)

    def refused(exc: HTTPException) -> Any:
        """Routing and HTTP-layer refusals under /webapi/ in the JSON shape; elsewhere unchanged."""
        if not (request.path + "/").startswith(PREFIX):
            return exc
        key, _, rest = request.path[len(PREFIX):].partition("/")
        if key == RECORDING and exc.code in (404, 405):
            return _recording_refusal()
        name = "" if "/" in rest or key == RECORDING else _shown_name(rest)
        if exc.code is None or exc.code >= 500:
            # Flask has logged the exception already (with the path redacted by the log filter).
            return _error_answer(WebApiError("internal error; see the gateway's log"), name)
        if exc.code == 405 or request.method not in COMMAND_METHODS:
            return _error_answer(_bad_method(request.method, COMMAND_METHODS), name)
        if exc.code == 404:
            # A path of no route (an empty key, an extra segment): a wrong key is still a 401.
            if not webapi.is_key_valid(key):
                return _error_answer(errors.BadKey(), name)
            return _error_answer(errors.UnknownCommand(_shown_name(rest)), _shown_name(rest))
        return _error_answer(exc, name)

    app.register_blueprint(blueprint)
    app.register_error_handler(HTTPException, refused)
    return webapi
