"""Shared pieces of the benchmarks: child processes, configs, /proc readings, percentiles, tables.

Everything listens on 127.0.0.1 only. A child process's output goes to a log file in the
benchmark's temporary directory; its last lines are printed when it fails to come up.

Also a tiny entry point used as a child process by webapi_bench.py:

    python bench/common.py bare --config CONFIG --port PORT

serves a bare Flask app (one endpoint returning a small constant JSON) under gunicorn with the
gateway's own settings (`gateway.server.settings(config)`) minus the gateway's worker hooks.
"""
from __future__ import annotations

import argparse
import logging
import os
import platform
import secrets
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterable, Sequence

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

import requests  # noqa: E402

if TYPE_CHECKING:
    from gateway.sim.model import Directory

logger = logging.getLogger(__name__)

HOST = "127.0.0.1"
BARE_PATH = "/webapi/{key}/bare.ping"
BARE_ANSWER = {"result": "ok"}


# --- numbers and tables ------------------------------------------------------------------------

def percentile(values: Sequence[float], pct: float) -> float:
    """The `pct` percentile (nearest rank) of `values`; NaN when empty."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    rank = max(1, min(len(ordered), int(round(pct / 100.0 * len(ordered) + 0.5))))
    return ordered[rank - 1]


def percentiles(values: Sequence[float], pcts: Iterable[float] = (50, 90, 99)) -> list[float]:
    ordered = sorted(values)
    return [percentile(ordered, p) for p in pcts]


def table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """A plain text table, first column left-aligned, the others right-aligned."""
    cells = [[str(h) for h in headers]] + [[str(c) for c in row] for row in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]

    def line(row: list[str]) -> str:
        return "  ".join(c.ljust(widths[i]) if i == 0 else c.rjust(widths[i]) for i, c in enumerate(row))

    return "\n".join([line(cells[0]), line(["-" * w for w in widths])] + [line(r) for r in cells[1:]])


def machine_line() -> str:
    """Cores, CPU model, Python: printed at the top of every benchmark."""
    model = ""
    try:
        for text in Path("/proc/cpuinfo").read_text().splitlines():
            if text.startswith("model name"):
                model = text.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return (f"machine: {os.cpu_count()} cores{' (' + model + ')' if model else ''}, "
            f"Python {platform.python_version()}, {platform.system()} {platform.release()}")


# --- /proc -------------------------------------------------------------------------------------

def children_of(pid: int) -> list[int]:
    """The direct child processes of `pid`."""
    try:
        text = Path(f"/proc/{pid}/task/{pid}/children").read_text()
        return [int(p) for p in text.split()]
    except OSError:
        pass
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                found.append(int(entry.name))
    return found


def place(pids: Iterable[int], cpus: set[int]) -> None:
    """Let every thread of the processes `pids` run only on `cpus` (threads they start later
    inherit it). A thread or process gone meanwhile is skipped."""
    for pid in pids:
        try:
            threads = [int(tid) for tid in os.listdir(f"/proc/{pid}/task")]
        except OSError:
            continue
        for tid in threads:
            try:
                os.sched_setaffinity(tid, cpus)
            except OSError:
                continue


def status_kb(pid: int, field: str) -> int | None:
    """A `kB` field of /proc/<pid>/status (VmHWM: peak RSS, VmRSS: current RSS)."""
    try:
        for text in Path(f"/proc/{pid}/status").read_text().splitlines():
            if text.startswith(field + ":"):
                return int(text.split()[1])
    except OSError:
        return None
    return None


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of process `pid` (all its threads), in seconds."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return sock.getsockname()[1]


# --- configs and child processes ---------------------------------------------------------------

def quiet_directory() -> Directory:
    """The simulator's default PBX content with recording off everywhere (no WAVs to make or fetch)."""
    from gateway.sim.defaults import default_directory
    directory = default_directory()
    for user in directory.users.values():
        user.record_calls = False
        user.record_external_only = False
    return directory


def write_config(directory: Path, *, sim_url: str, client_id: str, client_secret: str, port: int,
                 hook_url: str = "", recordings: bool = False, threads: int | None = None,
                 level: str = "INFO") -> tuple[Path, str]:
    """A gateway config.ini for a benchmark; returns (path, access key)."""
    key = secrets.token_urlsafe(18)
    state = directory / "state"
    state.mkdir(parents=True, exist_ok=True)
    path = directory / "config.ini"
    path.write_text(
        "[pbx]\n"
        f"url = {sim_url}\nclient_id = {client_id}\nclient_secret = {client_secret}\n"
        "verify_tls = false\ntimezone = Europe/Prague\n\n"
        "[webapi]\n"
        f"key = {key}\nlisten = {HOST}:{port}\npublic_url = http://{HOST}:{port}\n"
        + (f"threads = {threads}\n" if threads else "") + "\n"
        "[webhooks]\n"
        f"url = {hook_url}\nmethod = GET\n\n"
        "[recordings]\n"
        f"enabled = {'true' if recordings else 'false'}\nmp3_dir = {state / 'mp3'}\n\n"
        "[storage]\n"
        f"state_dir = {state}\n\n"
        "[logging]\n"
        f"level = {level}\n",
        encoding="utf-8")
    path.chmod(0o600)
    return path, key


class Child:
    """A child process whose output goes to `log_path`; stopped with SIGTERM (then SIGKILL)."""

    def __init__(self, name: str, argv: list[str], log_path: Path) -> None:
        self.name = name
        self.log_path = log_path
        self._log = open(log_path, "wb")
        self.process = subprocess.Popen(argv, stdout=self._log, stderr=subprocess.STDOUT,
                                        stdin=subprocess.DEVNULL, cwd=str(REPO))

    @property
    def pid(self) -> int:
        return self.process.pid

    def is_running(self) -> bool:
        return self.process.poll() is None

    def tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def worker_pid(self, timeout_s: float = 10.0) -> int:
        """The gunicorn worker: the child of this (gunicorn master) process."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            kids = children_of(self.pid)
            if kids:
                return kids[0]
            time.sleep(0.1)
        raise RuntimeError(f"{self.name}: no gunicorn worker process found")

    def stop(self, timeout_s: float = 30.0) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=5)
        self._log.close()

    def fail(self, what: str) -> SystemExit:
        return SystemExit(f"{self.name} {what}; last lines of {self.log_path}:\n{self.tail()}")


def start_gateway(config_path: Path, log_path: Path) -> Child:
    """`3cx-gateway run --config <config_path>` exactly as production (gunicorn, one worker)."""
    return Child("gateway", [sys.executable, "-m", "gateway.cli", "run", "--config", str(config_path)], log_path)


def start_bare(config_path: Path, port: int, log_path: Path) -> Child:
    """The bare Flask app under gunicorn with the gateway's settings (see the module docstring)."""
    return Child("bare app", [sys.executable, str(Path(__file__).resolve()), "bare",
                              "--config", str(config_path), "--port", str(port)], log_path)


def start_simulator(port: int, log_path: Path, *, scenario: Path | None = None,
                    time_scale: float = 1.0) -> Child:
    """`3cx-gateway simulate` as a child process."""
    argv = [sys.executable, "-m", "gateway.cli", "simulate", "--port", str(port),
            "--time-scale", str(time_scale)]
    if scenario is not None:
        argv += ["--scenario", str(scenario)]
    return Child("simulator", argv, log_path)


def wait_http(url: str, child: Child | None = None, *, timeout_s: float = 60.0,
              expect: int | None = 200) -> requests.Response:
    """Poll `url` until it answers (with `expect`, when given); the child dying ends the wait."""
    deadline = time.monotonic() + timeout_s
    last: str = "no answer"
    while time.monotonic() < deadline:
        if child is not None and not child.is_running():
            raise child.fail("exited")
        try:
            response = requests.get(url, timeout=2)
            if expect is None or response.status_code == expect:
                return response
            last = f"HTTP {response.status_code}: {response.text[:200]}"
        except requests.RequestException as exc:
            last = type(exc).__name__
        time.sleep(0.2)
    if child is not None:
        raise child.fail(f"did not answer {url} ({last}) within {timeout_s:.0f} s")
    raise SystemExit(f"{url} did not answer ({last}) within {timeout_s:.0f} s")


# --- the bare app --------------------------------------------------------------------------------

def bare_options(config_path: str, port: int) -> dict[str, Any]:
    """gateway.server.settings(config) minus the gateway's hooks, bound to `port`."""
    from gateway.config import load
    from gateway.server import settings
    options = settings(load(config_path))
    for hook in ("post_worker_init", "worker_exit"):
        options.pop(hook, None)
    options["bind"] = f"{HOST}:{port}"
    options["proc_name"] = "bench-bare"
    return options


def serve_bare(config_path: str, port: int) -> None:
    """Serve the bare app until SIGTERM."""
    import flask
    from gunicorn.app.base import BaseApplication

    options = bare_options(config_path, port)
    app = flask.Flask("bench.bare")

    @app.get("/webapi/<key>/bare.ping")
    def ping(key: str) -> flask.Response:
        return flask.jsonify(BARE_ANSWER)

    class BareApplication(BaseApplication):
        def load_config(self) -> None:
            for key, value in options.items():
                self.cfg.set(key, value)

        def load(self) -> Any:
            return app

    BareApplication().run()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="benchmark helper processes")
    sub = parser.add_subparsers(dest="what", required=True)
    bare = sub.add_parser("bare", help="serve the bare Flask app with the gateway's gunicorn settings")
    bare.add_argument("--config", required=True)
    bare.add_argument("--port", type=int, required=True)
    args = parser.parse_args(argv)
    serve_bare(args.config, args.port)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
