"""The Call Control WebSocket (`/callcontrol/ws`): participant events out, requests in.

Every message the server sends is `{"sequence": n, "event": {"event_type", "entity",
"attached_data"}}` with `n` counting up by one per connection (V20-API-NOTES §e). A request
`{"RequestID", "Path", "RequestData"}` is answered by an `event_type` 4 message whose
`attached_data` is `{"RequestID", "Path", "StatusCode", "Response"}`, `Response` being the JSON
text REST would answer (docs/v20-call-flows.md "Wire basics").
"""
from __future__ import annotations

import json
import logging
import queue
import threading
from typing import Any

from gateway.sim import callcontrol
from gateway.sim.calls import RESPONSE
from gateway.sim.model import ApiClient

logger = logging.getLogger(__name__)

_CLOSE = object()


class Connection:
    """One open WebSocket. The engine pushes events from any thread; one writer sends them in order."""

    def __init__(self, sim: Any, client: ApiClient, token_id: str) -> None:
        self.ws: Any = None
        self.client = client
        self.token_id = token_id
        self._sim = sim
        self._outbox: queue.Queue = queue.Queue()
        self._send_lock = threading.Lock()
        self._sequence = 0
        self._closed = threading.Event()

    def wants(self, dn: str) -> bool:
        return dn in self.client.monitored

    def push(self, event_type: int, entity: str, attached_data: Any = None) -> None:
        """Queue one event (never blocks: the engine calls this with its lock held)."""
        self._outbox.put((event_type, entity, attached_data))

    def close(self) -> None:
        """Close the socket from the server side (faults, superseded token, reset)."""
        if self._closed.is_set():
            return
        self._closed.set()
        self._outbox.put(_CLOSE)

    def run(self, ws: Any) -> None:
        """Serve the upgraded socket `ws` until either side closes it (runs on the request's thread)."""
        self.ws = ws
        reader = threading.Thread(target=self._read, name="sim-ws-reader", daemon=True)
        reader.start()
        try:
            self._write()
        finally:
            self._closed.set()
            with self._send_lock:
                try:
                    self.ws.close()
                except Exception:   # already closed by the client
                    pass
            reader.join(2.0)

    def _write(self) -> None:
        while not self._closed.is_set() and self.ws.connected:
            try:
                item = self._outbox.get(timeout=0.5)
            except queue.Empty:
                continue
            if item is _CLOSE:
                return
            event_type, entity, attached_data = item
            self._sequence += 1
            message = {"sequence": self._sequence,
                       "event": {"event_type": event_type, "entity": entity, "attached_data": attached_data}}
            with self._send_lock:
                self.ws.send(json.dumps(message))

    def _read(self) -> None:
        while not self._closed.is_set():
            try:
                text = self.ws.receive(timeout=0.5)
            except Exception:   # the client went away
                break
            if text is None:
                if not self.ws.connected:
                    break
                continue
            try:
                self._answer(text)
            except Exception:
                logger.exception("WebSocket request failed for client %s", self.client.client_id)
        self._closed.set()
        self._outbox.put(_CLOSE)

    def _answer(self, text: str | bytes) -> None:
        try:
            request = json.loads(text)
        except ValueError:
            logger.info("ignoring a WebSocket message that is not JSON (%d bytes)", len(text))
            return
        if not isinstance(request, dict) or "Path" not in request:
            logger.info("ignoring a WebSocket message that is not a request")
            return
        path = str(request.get("Path") or "")
        data = request.get("RequestData")
        if isinstance(data, str) and data.strip():
            try:
                data = json.loads(data)
            except ValueError:
                data = None
        segments = callcontrol.split_path(path)
        method = "POST" if callcontrol.is_post(segments) else "GET"
        status, body = callcontrol.handle(self._sim, self.client, method, segments, data)
        self.push(RESPONSE, path, {"RequestID": str(request.get("RequestID", "")), "Path": path,
                                   "StatusCode": status, "Response": json.dumps(body)})


class Sockets:
    """The open connections of one server, so faults and token changes can close them."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._open: list[Connection] = []

    def add(self, connection: Connection) -> None:
        with self._lock:
            self._open.append(connection)

    def discard(self, connection: Connection) -> None:
        with self._lock:
            if connection in self._open:
                self._open.remove(connection)

    def count(self) -> int:
        with self._lock:
            return len(self._open)

    def close_all(self) -> None:
        with self._lock:
            connections = list(self._open)
        for connection in connections:
            connection.close()

    def close_token(self, token_id: str) -> None:
        """Close the sockets opened with a token that is no longer live."""
        with self._lock:
            connections = [c for c in self._open if c.token_id == token_id]
        for connection in connections:
            connection.close()


def open_connection(sim: Any, client: ApiClient, token_id: str) -> Connection:
    """Subscribe a new connection to the engine before the upgrade completes.

    A client that sees its handshake succeed must get every event from then on, so the
    subscription exists before the handshake; events meanwhile wait in the connection's queue.
    """
    connection = Connection(sim, client, token_id)
    sim.sockets.add(connection)
    sim.engine.subscribe(connection)
    return connection


def close_connection(sim: Any, connection: Connection) -> None:
    connection.close()
    sim.engine.unsubscribe(connection)
    sim.sockets.discard(connection)


def serve(socket: Any, sim: Any, connection: Connection) -> None:
    """The `/callcontrol/ws` handler body: serve the upgraded socket until it closes."""
    logger.info("WebSocket opened for client %s", connection.client.client_id)
    try:
        connection.run(socket)
    finally:
        close_connection(sim, connection)
        logger.info("WebSocket closed for client %s", connection.client.client_id)
