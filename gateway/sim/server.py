"""`SimServer`: the simulated 3CX v20 on one port (token, XAPI, Call Control REST and WebSocket).

One Flask app served by werkzeug's threaded server on a daemon thread. Every request is logged
(`requests`), passes the fault injector, and (under /xapi/ and /callcontrol) is authenticated
with the bearer token, which sets `flask.g.sim_client` for the views.
"""
from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable
from urllib.parse import parse_qsl, unquote_plus

import flask
from flask_sock import Sock
from werkzeug.exceptions import HTTPException
from werkzeug.serving import BaseWSGIServer, WSGIRequestHandler, make_server

from gateway.sim import scenarios, ws
from gateway.sim.auth import TokenIssuer, TokenRejected, create_token_blueprint, unauthorized
from gateway.sim.callcontrol import create_callcontrol_blueprint
from gateway.sim.engine import Engine
from gateway.sim.faults import Faults
from gateway.sim.model import ApiClient, Directory

logger = logging.getLogger(__name__)

MAX_LOGGED_REQUESTS = 100_000


@dataclass
class SimRequest:
    """One request the simulator served: `query` is the decoded query string, `status` its answer."""

    method: str
    path: str
    query: str
    status: int | None = None

    @property
    def params(self) -> dict[str, str]:
        return dict(parse_qsl(self.query, keep_blank_values=True))


class _QuietHandler(WSGIRequestHandler):
    """werkzeug's handler without a line per request on stderr (`requests` records them), whose
    `Date` header reads the PBX's wall clock (`server.pbx_wall`), set off like the PBX's own."""

    def log_request(self, code: Any = "-", size: Any = "-") -> None:
        pass

    def date_time_string(self, timestamp: float | None = None) -> str:
        wall = getattr(self.server, "pbx_wall", None)
        if timestamp is None and wall is not None:
            timestamp = wall.time()
        return super().date_time_string(timestamp)


def _default_directory() -> Directory:
    from gateway.sim.defaults import default_directory   # the default PBX content
    return default_directory()


class SimServer:
    """A simulated PBX on `host:port` (port 0: a free one); see the module docstring."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0, *, time_scale: float = 1.0,
                 token_lifetime_s: float = 3600, expires_in_unit: str = "seconds",
                 directory_factory: Callable[[], Directory] | None = None) -> None:
        self.host = host
        self.port = port
        self.url = ""
        self._directory_factory = directory_factory or _default_directory
        self.directory: Directory = self._directory_factory()
        self.engine = Engine(self.directory, time_scale=time_scale)
        self.tokens = TokenIssuer(lifetime_s=token_lifetime_s, expires_in_unit=expires_in_unit)
        self.sockets = ws.Sockets()
        # A superseded token's WebSockets are closed (inferred: a third party saw a new token end a
        # live media stream, V20-API-NOTES §a; whether v20 also closes the event socket is unverified).
        self.tokens.on_superseded(self.sockets.close_token)
        self.faults = Faults(on_drop_websockets=self.sockets.close_all, on_expire_tokens=self.tokens.expire_all)
        self.requests: list[SimRequest] = []
        self._requests_lock = threading.Lock()
        self.app = self._create_app()
        self._server: BaseWSGIServer | None = None
        self._thread: threading.Thread | None = None

    # -- the API client ---------------------------------------------------------------------------
    @property
    def api_client(self) -> ApiClient:
        with self.directory.lock:
            return next(iter(self.directory.api_clients.values()))

    @property
    def client_id(self) -> str:
        return self.api_client.client_id

    @property
    def client_secret(self) -> str:
        return self.api_client.secret

    @property
    def ws_url(self) -> str:
        return self.url.replace("http://", "ws://", 1) + "/callcontrol/ws"

    # -- lifecycle ----------------------------------------------------------------------------------
    def start(self) -> None:
        """Bind, then serve on a daemon thread; `url` is known on return."""
        self._server = make_server(self.host, self.port, self.app, threaded=True, request_handler=_QuietHandler)
        self._server.daemon_threads = True
        self._server.pbx_wall = self.engine.wall  # type: ignore[attr-defined]
        self.url = f"http://{self.host}:{self._server.server_port}"
        self.engine.start()
        self._thread = threading.Thread(target=self._server.serve_forever, name="sim-server", daemon=True)
        self._thread.start()
        logger.info("simulated PBX listening on %s", self.url)

    def stop(self) -> None:
        self.sockets.close_all()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        if self._thread is not None:
            self._thread.join(5)
        self.engine.stop(2.0)

    def reset(self) -> None:
        """A fresh default directory, no calls, no faults, no tokens, no sockets, no logged requests."""
        directory = self._directory_factory()
        self.faults.clear()
        self.tokens.revoke_all()
        self.sockets.close_all()
        self.directory = directory
        self.engine.reset(directory)
        with self._requests_lock:
            self.requests.clear()

    def set_clock_offset(self, seconds: float) -> None:
        """From now on the PBX's clock (recording times, `Date` headers) is `seconds` ahead of real
        time (negative: behind), like a PBX whose clock is wrong; `reset()` sets it right again."""
        self.engine.wall.offset_s = float(seconds)

    def play(self, scenario: Any, *, wait: bool = True) -> scenarios.PlayedCall:
        """Play a scenario (a builder, or its dict / JSON text); see gateway.sim.scenarios."""
        return scenarios.play(self.engine, scenario, wait=wait)

    # -- the app -----------------------------------------------------------------------------------
    def _create_app(self) -> flask.Flask:
        app = flask.Flask("gateway.sim")
        app.json.sort_keys = False
        app.register_blueprint(create_token_blueprint(self))
        app.register_blueprint(create_callcontrol_blueprint(self))
        xapi = _xapi_blueprint(self)
        if xapi is not None:
            app.register_blueprint(xapi, url_prefix="/xapi/v1")
        sock = Sock(app)

        @sock.route("/callcontrol/ws")
        def events(socket: Any) -> None:
            ws.serve(socket, self, flask.g.pop("sim_connection"))

        app.before_request(self._before_request)
        app.after_request(self._after_request)
        app.teardown_request(self._teardown_request)
        app.register_error_handler(Exception, self._error)
        return app

    def _before_request(self) -> Any:
        request = flask.request
        logged = SimRequest(request.method, request.path, unquote_plus(request.query_string.decode("latin-1")))
        flask.g.sim_request = logged
        with self._requests_lock:
            self.requests.append(logged)
            if len(self.requests) > MAX_LOGGED_REQUESTS:
                del self.requests[:len(self.requests) - MAX_LOGGED_REQUESTS]
        delay_s, status = self.faults.take(request.path)
        if delay_s:
            time.sleep(delay_s)
        if status:
            return flask.jsonify({"error": {"code": str(status), "message": "injected fault"}}), status
        path = request.path
        is_callcontrol = path == "/callcontrol" or path.startswith("/callcontrol/")
        if path == "/callcontrol/ws" and self.faults.is_refusing_websockets:
            return flask.jsonify({"error": "unavailable", "error_description": "WebSockets refused"}), 503
        if is_callcontrol or path.startswith("/xapi/"):
            refused = self._authenticate(is_callcontrol)
            if refused is None and path == "/callcontrol/ws":
                flask.g.sim_connection = ws.open_connection(self, flask.g.sim_client, flask.g.sim_token_id)
            return refused
        return None

    def _authenticate(self, is_callcontrol: bool) -> Any:
        header = flask.request.headers.get("Authorization", "")
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            return unauthorized("a bearer token is required")
        try:
            client_id, token_id = self.tokens.check(token.strip())
        except TokenRejected as rejected:
            return unauthorized(str(rejected))
        with self.directory.lock:
            client = self.directory.api_clients.get(client_id)
        if client is None:
            return unauthorized("unknown API client")
        if not (client.callcontrol_access if is_callcontrol else client.xapi_access):
            api = "Call Control" if is_callcontrol else "XAPI"
            return flask.jsonify({"error": "forbidden",
                                  "error_description": f"the API client has no {api} access"}), 403
        flask.g.sim_client = client
        flask.g.sim_token_id = token_id
        return None

    def _after_request(self, response: flask.Response) -> flask.Response:
        logged = flask.g.get("sim_request")
        if logged is not None:
            logged.status = response.status_code
        return response

    def _teardown_request(self, error: BaseException | None) -> None:
        connection = flask.g.pop("sim_connection", None)
        if connection is not None:   # subscribed, but the upgrade never happened
            ws.close_connection(self, connection)

    def _error(self, error: Exception) -> Any:
        if isinstance(error, HTTPException):
            return flask.jsonify({"error": error.name, "error_description": error.description}), error.code
        logger.exception("simulator request %s %s failed", flask.request.method, flask.request.path)
        return flask.jsonify({"error": "internal", "error_description": type(error).__name__}), 500


def _xapi_blueprint(sim: SimServer) -> flask.Blueprint | None:
    try:
        from gateway.sim.xapi import create_xapi_blueprint
    except ModuleNotFoundError as missing:
        if missing.name != "gateway.sim.xapi":
            raise
        logger.warning("gateway.sim.xapi is missing: the simulator serves no XAPI")
        return None
    return create_xapi_blueprint(sim)


def serve(host: str = "127.0.0.1", port: int = 5001, *, scenario_path: str | None = None,
          time_scale: float = 1.0, loop: bool = False) -> None:
    """`3cx-gateway simulate`: run a simulator in the foreground, optionally playing a scenario file."""
    sim = SimServer(host, port, time_scale=time_scale)
    plays = scenarios.load_file(Path(scenario_path)) if scenario_path else []
    sim.start()
    print(f"Simulated 3CX v20 at {sim.url}  (WebSocket {sim.ws_url})")
    print(f"API client id: {sim.client_id}   client secret: {sim.client_secret}   time scale: {time_scale}x")
    stop = threading.Event()
    try:
        while plays and not stop.is_set():
            _play_file(sim, plays, stop)
            if not loop:
                break
        if plays:
            print("Scenario file played." + (" Still serving; Ctrl+C to stop." if not loop else ""))
        while not stop.wait(3600):
            pass
    except KeyboardInterrupt:
        pass
    finally:
        sim.stop()


def _play_file(sim: SimServer, plays: list[tuple[float, scenarios.Scenario]], stop: threading.Event) -> None:
    started = sim.engine.clock.now()
    running = []
    for at_s, scenario in sorted(plays, key=lambda item: item[0]):
        wait_s = sim.engine.clock.real_seconds(at_s - (sim.engine.clock.now() - started))
        if stop.wait(wait_s):
            return
        try:
            running.append(sim.play(scenario, wait=False))
            print(f"call {running[-1].call_id}: {scenario.kind} {scenario.start}")
        except scenarios.ScenarioError as error:
            print(f"scenario skipped: {error}")
    for played in running:
        played.done.wait(600)
