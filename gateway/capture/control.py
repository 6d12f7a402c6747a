"""The service's local control socket: `capture` and `doctor` ask the running service, not the PBX.

A Unix socket at `<state_dir>/control.sock`, mode 0600: only the service's own user (and root) can
connect, and the server checks the caller's uid (SO_PEERCRED) as well. Nothing it answers holds a
key, secret or token (records carry none, and each line is also passed through `redact`).

Protocol: the client sends one JSON line, the server answers JSON lines and closes.
    {"op": "capture", "seconds": N}   -> capture records for N seconds (records.py), ending with "end"
    {"op": "unknowns"}                -> {"unknowns": [{"kind", "value", "where", "reading", "count"}]}
"""
from __future__ import annotations

import json
import logging
import os
import socket
import struct
import threading
from dataclasses import asdict
from pathlib import Path
from typing import Any, Iterator

from gateway.logs import redact

logger = logging.getLogger(__name__)

SOCKET_NAME = "control.sock"
MAX_REQUEST_BYTES = 4096
MAX_CAPTURE_S = 24 * 3600
MAX_SOCKET_PATH = 100            # sun_path holds 108 bytes on Linux


class NoService(Exception):
    """No service is listening on the control socket (it is safe to connect to the PBX directly)."""


class ServiceUnreachable(Exception):
    """A service seems to run but cannot be asked (e.g. another user's socket): do not go direct."""


def socket_path(state_dir: str | Path) -> Path:
    return Path(state_dir) / SOCKET_NAME


class ControlServer:
    """Serves the control socket in its own thread; thread shape: start(), stop(timeout_s)."""

    def __init__(self, services: Any) -> None:
        self._services = services
        self._path = socket_path(services.config.storage.state_dir)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._sock: socket.socket | None = None

    def start(self) -> None:
        if len(str(self._path)) > MAX_SOCKET_PATH:
            logger.warning("control socket path %s is too long for a Unix socket; capture and doctor "
                           "cannot ask this service", self._path)
            return
        self._stop.clear()
        self._path.parent.mkdir(parents=True, exist_ok=True)
        if self._path.is_socket() or self._path.exists():
            self._path.unlink()   # left by a killed service; a running one would hold the state lock
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        umask = os.umask(0o177)    # the socket file is created 0600
        try:
            sock.bind(str(self._path))
        finally:
            os.umask(umask)
        os.chmod(self._path, 0o600)
        sock.listen(4)
        sock.settimeout(0.5)
        self._sock = sock
        self._thread = threading.Thread(target=self._run, name="control", daemon=True)
        self._thread.start()
        logger.info("control socket listening at %s", self._path)

    def stop(self, timeout_s: float) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout_s)
        if self._sock is not None:
            self._sock.close()
            self._sock = None
            try:
                self._path.unlink()
            except OSError:
                pass

    def _run(self) -> None:
        while not self._stop.is_set():
            assert self._sock is not None
            try:
                conn, _ = self._sock.accept()
            except socket.timeout:
                continue
            except OSError:
                if not self._stop.is_set():
                    logger.exception("control socket: accept failed")
                    self._stop.wait(1.0)
                continue
            threading.Thread(target=self._serve, args=(conn,), name="control-client", daemon=True).start()

    def _serve(self, conn: socket.socket) -> None:
        with conn:
            try:
                if not _is_allowed(conn):
                    _send(conn, {"error": "not allowed: connect as the service's user or root"})
                    return
                request = _read_request(conn)
                for answer in self._answers(request):
                    _send(conn, answer, self._services.config.secrets())
            except (OSError, ValueError) as exc:
                logger.info("control socket: client gone or bad request (%s)", exc)
            except Exception:
                logger.exception("control socket: request failed")

    def _answers(self, request: dict[str, Any]) -> Iterator[dict[str, Any]]:
        from gateway.capture.sources import capture_service
        op = request.get("op")
        if op == "unknowns":
            yield {"unknowns": [asdict(u) for u in self._services.watcher.unknowns.items()]}
        elif op == "capture":
            seconds = float(request.get("seconds") or 0)
            if not 0 < seconds <= MAX_CAPTURE_S:
                yield {"error": f"seconds must be between 1 and {MAX_CAPTURE_S}"}
                return
            logger.info("control socket: capture for %g s", seconds)
            yield from capture_service(self._services, seconds, is_stopped=self._stop.is_set)
        else:
            yield {"error": f"unknown op {op!r}"}


def ask(state_dir: str | Path, request: dict[str, Any], *, timeout_s: float) -> Iterator[dict[str, Any]]:
    """Send `request` to the service and yield its answers. NoService when none is listening;
    ServiceUnreachable when one seems to run but refuses us (then never connect to the PBX)."""
    path = socket_path(state_dir)
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(timeout_s)
    try:
        sock.connect(str(path))
    except (FileNotFoundError, ConnectionRefusedError):
        sock.close()
        raise NoService(f"no service is listening at {path}") from None
    except PermissionError:
        sock.close()
        raise ServiceUnreachable(f"a service runs but {path} is not ours to use: run this as the service's "
                                 "user (sudo -u 3cx-gateway ...)") from None
    except OSError as exc:
        sock.close()
        raise ServiceUnreachable(f"cannot ask the service at {path}: {exc}") from None
    with sock:
        sock.sendall(json.dumps(request).encode() + b"\n")
        with sock.makefile("r", encoding="utf-8") as lines:
            for line in lines:
                answer = json.loads(line)
                if isinstance(answer, dict) and "error" in answer and len(answer) == 1:
                    raise ServiceUnreachable(f"the service refused: {answer['error']}")
                yield answer


def _is_allowed(conn: socket.socket) -> bool:
    """The caller runs as our own user or as root."""
    try:
        creds = conn.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
    except (AttributeError, OSError):
        return False
    _pid, uid, _gid = struct.unpack("3i", creds)
    return uid in (0, os.getuid())


def _read_request(conn: socket.socket) -> dict[str, Any]:
    conn.settimeout(5.0)
    data = b""
    while b"\n" not in data:
        chunk = conn.recv(1024)
        if not chunk:
            break
        data += chunk
        if len(data) > MAX_REQUEST_BYTES:
            raise ValueError("request too long")
    request = json.loads(data.split(b"\n", 1)[0] or b"{}")
    if not isinstance(request, dict):
        raise ValueError("request is not an object")
    return request


def _send(conn: socket.socket, answer: dict[str, Any], secrets: Any = ()) -> None:
    line = redact(json.dumps(answer, ensure_ascii=False, separators=(",", ":")), secrets)
    conn.sendall(line.encode("utf-8") + b"\n")
