"""Benchmark: calls played while the gateway is cut off, recovered from the call history.

Runs, all on 127.0.0.1:
  - the simulator in this process (recording off everywhere, so the figures are about webhooks);
  - a webhook receiver in this process that timestamps every arrival;
  - the gateway exactly as production (`3cx-gateway run --config <tmp config>`).
Once the gateway is live, the simulator refuses its event stream for M seconds (`Faults.outage`)
and plays N inbound calls spread over that time, every one started and ended inside it: odd ones
are answered by an extension (100-119) and hung up, even ones abandoned in queue 800. When the
outage ends the gateway reconnects, resyncs and reads the call history for the gap.

Prints, per phase: N, M, how many calls the CRM received webhooks for (recovered), the expected
and received webhook counts, the time from the gateway's reconnection (its /healthz saying synced
again) to the last recovered webhook's arrival, and the cost of one recovery read (the gateway's
own read of the gap, from /healthz) beside a same-run baseline: this process reading the same
period of call history through the same XAPI client code. Target: the last recovered webhook
within 10 s of the reconnection for 100 calls.

    .venv/bin/python bench/recovery_bench.py [--calls 20,100] [--outage 10] [--time-scale 20]
"""
from __future__ import annotations

import argparse
import logging
import re
import shutil
import sys
import tempfile
import threading
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import requests

from bench.common import HOST, free_port, machine_line, quiet_directory, start_gateway, table, wait_http, write_config
from gateway.webhooks.receiver import Webhook, WebhookReceiver

logger = logging.getLogger(__name__)

TARGET_S = 10.0
EXTENSIONS = [str(n) for n in range(100, 120)]
_LINK_ID = re.compile(r"^(\d{12}_\d+)-\d+$")


class Receiver:
    """The shared webhook receiver, keeping (arrival perf_counter, params) of every webhook."""

    def __init__(self) -> None:
        self.arrivals: list[tuple[float, dict[str, Any]]] = []
        self._lock = threading.Lock()
        self._server = WebhookReceiver(self._arrive, keep_alive=True, name="bench-receiver")

    def _arrive(self, webhook: Webhook) -> None:
        with self._lock:
            self.arrivals.append((webhook.at, dict(webhook.params)))

    @property
    def url(self) -> str:
        return self._server.url

    def snapshot(self) -> list[tuple[float, dict[str, Any]]]:
        with self._lock:
            return list(self.arrivals)

    def stop(self) -> None:
        self._server.stop()


def health(base: str) -> dict:
    try:
        return requests.get(f"{base}/healthz", timeout=5).json()
    except (requests.RequestException, ValueError):
        return {}


def run_phase(sim: Any, receiver: Receiver, base: str, calls: int, outage_s: float) -> list[Any]:
    from gateway.sim.scenarios import inbound

    before = len(receiver.snapshot())
    sim.faults.outage(outage_s + 60)            # ended below, once every call is over
    deadline = time.monotonic() + 10
    while health(base).get("events", {}).get("connected") and time.monotonic() < deadline:
        time.sleep(0.05)
    began = time.monotonic()
    played = []
    for n in range(calls):
        # Start the calls over the first half of the outage; each lasts a few simulated seconds.
        target = began + (outage_s / 2) * n / max(1, calls)
        time.sleep(max(0.0, target - time.monotonic()))
        caller = f"+4206010{n:05d}"
        if n % 2:
            ext = EXTENSIONS[n % len(EXTENSIONS)]
            scenario = inbound(caller).to_extension(ext).rings(2).answered_by(ext) \
                .talk(5).caller_hangs_up()
        else:
            scenario = inbound(caller).to_queue("800", rings=[]).rings(3).caller_abandons()
        played.append(sim.play(scenario, wait=False))
    for call in played:
        call.wait(timeout_s=outage_s * 4 + 60)
    time.sleep(max(0.0, began + outage_s - time.monotonic()))
    sim.faults.end_outage()
    reconnected = None
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        events = health(base).get("events", {})
        if events.get("connected") and events.get("synced"):
            reconnected = time.perf_counter()
            break
        time.sleep(0.02)
    if reconnected is None:
        raise SystemExit("the gateway did not reconnect within 60 s")
    expected = calls + (calls // 2)             # answered: start + end; abandoned: end
    deadline = time.monotonic() + 60
    while len(receiver.snapshot()) - before < expected and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(1.0)                             # anything extra (a duplicate) would arrive now
    arrivals = receiver.snapshot()[before:]
    recovered_calls = {m.group(1) for _, p in arrivals if (m := _LINK_ID.match(p.get("id", "")))}
    last = max((at for at, _ in arrivals), default=reconnected)
    report = health(base).get("recovery", {})
    read = report.get("last_read") or {}
    baseline_s = baseline_read(sim, read)
    return [calls, f"{outage_s:g}", len(recovered_calls), expected, len(arrivals),
            f"{last - reconnected:.2f}", read.get("calls", "?"), read.get("seconds", "?"), f"{baseline_s:.3f}",
            "ok" if calls < 100 or last - reconnected <= TARGET_S else "MISSED"]


def baseline_read(sim: Any, read: dict) -> float:
    """This process reading the same period of call history with the gateway's own XAPI client."""
    from gateway.clock import Clock
    from gateway.pbx.auth import TokenSource
    from gateway.pbx.http import new_session
    from gateway.pbx.xapi import XapiClient

    session = new_session(verify_tls=False)
    tokens = TokenSource(session, sim.url, sim.client_id, sim.client_secret, timeout_s=10, clock=Clock())
    xapi = XapiClient(session, sim.url, tokens, timeout_s=10)
    now = datetime.now(timezone.utc)
    since = now - timedelta(hours=1)
    if read.get("since"):
        since = datetime.fromisoformat(read["since"].replace("Z", "+00:00"))
    tokens.token()
    began = time.perf_counter()
    xapi.call_log(since, now + timedelta(minutes=1))
    took = time.perf_counter() - began
    session.close()
    return took


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", default="20,100", help="comma-separated call counts, one phase each")
    parser.add_argument("--outage", type=float, default=10.0, help="seconds the gateway is cut off")
    parser.add_argument("--time-scale", type=float, default=20.0, help="simulated seconds per real second")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)

    from gateway.sim.server import SimServer

    print(machine_line(), flush=True)
    work = Path(tempfile.mkdtemp(prefix="recovery-bench-"))
    sim = SimServer(time_scale=args.time_scale, directory_factory=quiet_directory)
    sim.start()
    with sim.directory.lock:
        sim.directory.max_sim_calls = 10_000
    receiver = Receiver()
    port = free_port()
    config_path, _ = write_config(work, sim_url=sim.url, client_id=sim.client_id, client_secret=sim.client_secret,
                                  port=port, hook_url=receiver.url, level="WARNING")
    gateway = start_gateway(config_path, work / "gateway.log")
    base = f"http://{HOST}:{port}"
    rows = []
    try:
        wait_http(f"{base}/healthz", gateway, timeout_s=60)
        deadline = time.monotonic() + 30
        while not health(base).get("recovery", {}).get("observed_until") and time.monotonic() < deadline:
            time.sleep(0.1)
        for calls in [int(n) for n in args.calls.split(",") if n.strip()]:
            rows.append(run_phase(sim, receiver, base, calls, args.outage))
            print(f"phase {calls} calls done", flush=True)
    finally:
        gateway.stop()
        receiver.stop()
        sim.stop()
        shutil.rmtree(work, ignore_errors=True)
    print(table(["calls", "outage s", "recovered", "webhooks expected", "received", "last after reconnect s",
                 "history calls read", "recovery read s", "baseline read s", f"target {TARGET_S:g} s"], rows))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
