"""Benchmark: WebAPI commands of the production service against a bare Flask endpoint.

Starts, all on 127.0.0.1:
  - the simulator as a child process (`3cx-gateway simulate`) playing a few calls that stay in
    progress (three talking, one ringing), so live-state commands have something to count;
  - the gateway exactly as production (`3cx-gateway run --config <tmp config>`: gunicorn, one
    worker, gthread threads), its event stream connected and synced (/healthz 200);
  - a bare Flask app (one endpoint returning a small constant JSON) under gunicorn with the same
    settings (`gateway.server.settings(config)` minus the gateway's hooks), in another child.
Then loads each endpoint with N concurrent keep-alive connections for a fixed time, in
alternating slices (bare, command, command, ..., bare, ...) after a warm-up, so all see the same
machine conditions, and prints req/s, p50/p90/p99 latency and the ratio to the bare endpoint.
Target: live-state commands reach at least 70% of the bare endpoint's throughput.

    .venv/bin/python bench/webapi_bench.py [--duration 10] [--connections 8] [--slices 2]
                                           [--warmup 1] [--client python|wrk] [--install]
"""
from __future__ import annotations

import argparse
import logging
import http.client
import json
import re
import resource
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import (BARE_PATH, HOST, Child, cpu_seconds, free_port, machine_line,
                          percentiles, start_bare, start_gateway, start_simulator, table, wait_http,
                          write_config)

logger = logging.getLogger(__name__)

TARGET_RATIO = 0.70
CALLS_IN_PROGRESS = 4   # played by the simulator (see _scenario_file)

# (label, path after /webapi/<key>/, kind); "bare" is the baseline of the ratio.
ENDPOINTS = [
    ("bare endpoint", None, "baseline"),
    ("pbx.calls.get", "pbx.calls.get", "live"),
    ("ext.state.get?num=102", "ext.state.get?num=102", "live"),
    ("all.ext.get (cached)", "all.ext.get", "directory"),
    ("queue.members.get?num=800", "queue.members.get?num=800", "directory"),
]


@dataclass
class Tally:
    """What the runs of one endpoint added up to."""

    requests: int = 0
    errors: int = 0
    seconds: float = 0.0       # measured time (wrk: its own)
    wall_s: float = 0.0        # wall time of the slices, for the CPU columns
    server_cpu_s: float = 0.0
    pbx_cpu_s: float = 0.0
    latencies_ms: list[float] = field(default_factory=list)
    wrk_percentiles: list[list[float]] = field(default_factory=list)
    first_error: str = ""

    @property
    def rate(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0


# --- load generators ---------------------------------------------------------------------------

def python_load(port: int, path: str, connections: int, duration_s: float, tally: Tally | None) -> None:
    """`connections` threads, each one keep-alive http.client connection, for `duration_s`."""
    results: list[tuple[int, int, list[float], str]] = []
    lock = threading.Lock()
    start = threading.Barrier(connections + 1)
    deadline = [0.0]

    def worker() -> None:
        done, errors, latencies, first_error = 0, 0, [], ""
        conn = http.client.HTTPConnection(HOST, port, timeout=30)
        start.wait()
        end = deadline[0]
        clock = time.perf_counter
        while clock() < end:
            began = clock()
            try:
                conn.request("GET", path)
                response = conn.getresponse()
                body = response.read()
                if response.status != 200:
                    errors += 1
                    first_error = first_error or f"HTTP {response.status}: {body[:200]!r}"
            except (OSError, http.client.HTTPException) as exc:
                errors += 1
                first_error = first_error or f"{type(exc).__name__}: {exc}"
                conn.close()
                conn = http.client.HTTPConnection(HOST, port, timeout=30)
                continue
            latencies.append((clock() - began) * 1000.0)
            done += 1
        conn.close()
        with lock:
            results.append((done, errors, latencies, first_error))

    threads = [threading.Thread(target=worker, daemon=True) for _ in range(connections)]
    for thread in threads:
        thread.start()
    deadline[0] = time.perf_counter() + duration_s
    began = time.perf_counter()
    start.wait()
    for thread in threads:
        thread.join(duration_s + 60)
    elapsed = time.perf_counter() - began
    if tally is not None:
        tally.seconds += elapsed
        tally.wall_s += elapsed
        for done, errors, latencies, first_error in results:
            tally.requests += done
            tally.errors += errors
            tally.latencies_ms.extend(latencies)
            tally.first_error = tally.first_error or first_error


_WRK_UNITS = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60000.0}


def wrk_load(wrk: str, port: int, path: str, connections: int, duration_s: float, tally: Tally | None) -> None:
    """The same load with `wrk --latency` (2 threads); its own percentiles are kept per slice."""
    seconds = max(1, int(round(duration_s)))
    argv = [wrk, "-t", "2", "-c", str(connections), "-d", f"{seconds}s", "--latency",
            f"http://{HOST}:{port}{path}"]
    began = time.perf_counter()
    output = subprocess.run(argv, capture_output=True, text=True, timeout=seconds + 60).stdout
    elapsed = time.perf_counter() - began
    if tally is None:
        return
    total = re.search(r"(\d+) requests in", output)
    rate = re.search(r"Requests/sec:\s+([\d.]+)", output)
    bad = re.search(r"Non-2xx or 3xx responses: (\d+)", output)
    errors = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", output)
    pcts = {int(m.group(1)): float(m.group(2)) * _WRK_UNITS[m.group(3)]
            for m in re.finditer(r"^\s+(\d+)%\s+([\d.]+)(us|ms|s|m)\s*$", output, re.M)}
    tally.requests += int(total.group(1)) if total else 0
    tally.wall_s += elapsed
    if total and rate and float(rate.group(1)) > 0:
        tally.seconds += int(total.group(1)) / float(rate.group(1))
    tally.errors += (int(bad.group(1)) if bad else 0) + (sum(int(g) for g in errors.groups()) if errors else 0)
    tally.wrk_percentiles.append([pcts.get(50, float("nan")), pcts.get(90, float("nan")),
                                  pcts.get(99, float("nan"))])
    if not total:
        tally.first_error = tally.first_error or output[-300:]


def find_wrk(install: bool) -> str:
    wrk = shutil.which("wrk")
    if wrk is None and install:
        print("installing wrk (apt-get install -y wrk) ...", flush=True)
        subprocess.run(["apt-get", "install", "-y", "wrk"], check=False,
                       stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
        wrk = shutil.which("wrk")
    if wrk is None:
        raise SystemExit("wrk is not installed; use --client python, or --install to apt-get it")
    return wrk


# --- setup ---------------------------------------------------------------------------------------

def _scenario_file(path: Path) -> Path:
    """Calls that stay in progress: three answered and talking, one ringing (time scale 0.01)."""
    calls = [
        {"at": 0, "kind": "inbound", "caller": "+420774852529", "did": "", "to": {"type": "extension", "dn": "102"},
         "steps": [{"step": "rings", "seconds": 0.01}, {"step": "answered_by", "ext": "102"}]},
        {"at": 0, "kind": "inbound", "caller": "+420602111222", "did": "", "to": {"type": "extension", "dn": "103"},
         "steps": [{"step": "rings", "seconds": 0.01}, {"step": "answered_by", "ext": "103"}]},
        {"at": 0, "kind": "outbound", "ext": "104", "number": "+420603555444",
         "steps": [{"step": "rings", "seconds": 0.01}, {"step": "answered"}]},
        # Rings for 20 simulated seconds (the no-answer time) = 2000 real seconds at this scale.
        {"at": 0, "kind": "internal", "ext": "105", "other": "106", "steps": []},
    ]
    path.write_text(json.dumps({"calls": calls}, indent=1), encoding="utf-8")
    return path


def _wait_calls(port: int, key: str, expected: int, gateway: Child, timeout_s: float = 30.0) -> int:
    deadline = time.monotonic() + timeout_s
    count = -1
    while time.monotonic() < deadline:
        if not gateway.is_running():
            raise gateway.fail("exited")
        conn = http.client.HTTPConnection(HOST, port, timeout=5)
        conn.request("GET", f"/webapi/{key}/pbx.calls.get")
        count = int(json.loads(conn.getresponse().read()).get("result", -1))
        conn.close()
        if count >= expected:
            return count
        time.sleep(0.2)
    raise SystemExit(f"the gateway shows {count} calls in progress, expected {expected}")


def _check(port: int, path: str, label: str) -> None:
    conn = http.client.HTTPConnection(HOST, port, timeout=10)
    conn.request("GET", path)
    response = conn.getresponse()
    body = response.read()
    conn.close()
    if response.status != 200:
        raise SystemExit(f"{label} answers HTTP {response.status}: {body[:300]!r}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=float, default=10.0, help="measured seconds per endpoint (default 10)")
    parser.add_argument("--slices", type=int, default=2,
                        help="split each endpoint's time into this many alternating slices (default 2)")
    parser.add_argument("--warmup", type=float, default=1.0, help="warm-up seconds per endpoint (default 1)")
    parser.add_argument("--connections", type=int, default=8, help="concurrent keep-alive connections (default 8)")
    parser.add_argument("--threads", type=int, default=None,
                        help="[webapi] threads of both servers (default: the config default)")
    parser.add_argument("--client", choices=["python", "wrk"], default="python", help="load generator")
    parser.add_argument("--install", action="store_true", help="apt-get install wrk when --client wrk is missing")
    args = parser.parse_args()
    if args.duration <= 0 or args.slices < 1 or args.connections < 1:
        parser.error("--duration, --slices and --connections must be positive")
    wrk = find_wrk(args.install) if args.client == "wrk" else ""

    from gateway.config import load
    from gateway.server import settings
    from gateway.sim.defaults import API_CLIENT_ID, API_CLIENT_SECRET

    with tempfile.TemporaryDirectory(prefix="webapi-bench-") as tmp:
        root = Path(tmp)
        sim_port, gw_port, bare_port = free_port(), free_port(), free_port()
        sim = start_simulator(sim_port, root / "simulator.log", scenario=_scenario_file(root / "calls.json"),
                              time_scale=0.01)
        children: list[Child] = [sim]
        try:
            wait_http(f"http://{HOST}:{sim_port}/xapi/v1/Defs", sim, expect=401)
            config_path, key = write_config(root, sim_url=f"http://{HOST}:{sim_port}", client_id=API_CLIENT_ID,
                                            client_secret=API_CLIENT_SECRET, port=gw_port, threads=args.threads)
            gateway = start_gateway(config_path, root / "gateway.log")
            bare = start_bare(config_path, bare_port, root / "bare.log")
            children += [gateway, bare]
            wait_http(f"http://{HOST}:{gw_port}/healthz", gateway)
            wait_http(f"http://{HOST}:{bare_port}{BARE_PATH.format(key=key)}", bare)
            calls = _wait_calls(gw_port, key, CALLS_IN_PROGRESS, gateway)
            workers = {"gateway": gateway.worker_pid(), "bare": bare.worker_pid()}

            options = settings(load(config_path))
            shown = {k: options[k] for k in ("workers", "worker_class", "threads", "keepalive", "timeout",
                                             "preload_app", "accesslog")}
            print("webapi_bench: the production service (3cx-gateway run) against a bare Flask endpoint")
            print(machine_line())
            print("gunicorn (both servers): " + " ".join(f"{k}={v}" for k, v in shown.items())
                  + "  (gateway.server.settings; the bare app drops only the gateway's worker hooks)")
            print(f"load: {args.client} client, {args.connections} keep-alive connections, "
                  f"{args.duration:g} s per endpoint in {args.slices} alternating slice(s), "
                  f"warm-up {args.warmup:g} s each; loopback only")
            print(f"PBX: simulator child process, {calls} calls in progress, event stream connected\n", flush=True)

            targets = []
            for label, command, kind in ENDPOINTS:
                if command is None:
                    targets.append((label, bare_port, BARE_PATH.format(key=key), kind, workers["bare"]))
                else:
                    targets.append((label, gw_port, f"/webapi/{key}/{command}", kind, workers["gateway"]))
            for label, port, path, _, _ in targets:
                _check(port, path, label)

            def load_once(port: int, path: str, seconds: float, tally: Tally | None) -> None:
                if wrk:
                    wrk_load(wrk, port, path, args.connections, seconds, tally)
                else:
                    python_load(port, path, args.connections, seconds, tally)

            for _label, port, path, _, _ in targets:
                if args.warmup > 0:
                    load_once(port, path, args.warmup, None)
            tallies = {label: Tally() for label, *_ in targets}
            client_cpu = {label: 0.0 for label, *_ in targets}
            slice_s = args.duration / args.slices
            for _ in range(args.slices):
                for label, port, path, _, worker in targets:
                    for child in children:
                        if not child.is_running():
                            raise child.fail("exited during the benchmark")
                    cpu_before, pbx_before = cpu_seconds(worker), cpu_seconds(sim.pid)
                    own_before = resource.getrusage(resource.RUSAGE_SELF)
                    load_once(port, path, slice_s, tallies[label])
                    own_after = resource.getrusage(resource.RUSAGE_SELF)
                    tallies[label].server_cpu_s += cpu_seconds(worker) - cpu_before
                    tallies[label].pbx_cpu_s += cpu_seconds(sim.pid) - pbx_before
                    client_cpu[label] += (own_after.ru_utime + own_after.ru_stime
                                          - own_before.ru_utime - own_before.ru_stime)

            bare_rate = tallies[ENDPOINTS[0][0]].rate
            rows = []
            for label, _, _, kind, _ in targets:
                tally = tallies[label]
                if tally.wrk_percentiles:   # wrk: the mean of its per-slice percentiles
                    p50, p90, p99 = (sum(col) / len(col) for col in zip(*tally.wrk_percentiles, strict=True))
                else:
                    p50, p90, p99 = percentiles(tally.latencies_ms)
                ratio = tally.rate / bare_rate if bare_rate else float("nan")
                rows.append([label, kind, f"{tally.rate:,.0f}", f"{p50:.2f}", f"{p90:.2f}", f"{p99:.2f}",
                             f"{ratio:.2f}", f"{100 * tally.server_cpu_s / tally.wall_s:.0f}%",
                             f"{100 * tally.pbx_cpu_s / tally.wall_s:.0f}%",
                             f"{100 * client_cpu[label] / tally.wall_s:.0f}%" if not wrk else "-",
                             str(tally.errors)])
            print(table(["endpoint", "kind", "req/s", "p50 ms", "p90 ms", "p99 ms", "ratio",
                         "server cpu", "PBX cpu", "client cpu", "errors"], rows))
            print("(ratio: req/s over the bare endpoint's. CPU columns: CPU time over the run time, 100% = one "
                  "core; server = the gunicorn worker, PBX = the simulator process, client = this process)")
            for label, *_ in targets:
                if tallies[label].first_error:
                    print(f"first error on {label}: {tallies[label].first_error}")
            print()
            for label, _, _, kind, _ in targets:
                if kind == "live":
                    ratio = tallies[label].rate / bare_rate if bare_rate else 0.0
                    verdict = "met" if ratio >= TARGET_RATIO else "MISSED"
                    print(f"target: {label} >= {TARGET_RATIO:.0%} of the bare endpoint's req/s: "
                          f"{ratio:.0%} -> {verdict}")
            return 0
        finally:
            for child in reversed(children):
                child.stop()


if __name__ == "__main__":
    raise SystemExit(main())
