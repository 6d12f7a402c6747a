"""Benchmark: webhook delivery throughput and CPU per webhook, against plain HTTP clients.

Fills an outbox with N ringing events (each its own call, so nothing waits for an earlier event
of its call) and lets one target's `Delivery` (its dispatcher and senders, as the service runs
them) send them to a keep-alive receiver in its own process (bench/processes.py), timing until
the outbox counts them all delivered. Same-run baselines, to the same receiver, the same query
string each: a loop of `http.client` requests on one kept connection (the least any Python sender
can spend), and a loop of `requests.Session().get` calls (the general-purpose client). CPU is this
process's (utime + stime) while each ran: milliseconds per request.

    .venv/bin/python bench/delivery_bench.py [--events 3000] [--senders 8]
"""
from __future__ import annotations

import argparse
import http.client
import os
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import urlencode, urlsplit

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import requests

from bench.common import machine_line, table
from bench.processes import ReceiverProcess
from gateway.clock import Clock
from gateway.config import from_dict
from gateway.webhooks.delivery import Delivery
from gateway.webhooks.outbox import Outbox

PARAMS = {"event": "ringing", "callerid": "+420777000111", "user": "101", "did": "Prague",
          "title": "Incoming call from +420777000111 to 101"}


def _cpu_s() -> float:
    times = os.times()
    return times.user + times.system


def _row(name: str, count: int, wall_s: float, cpu_s: float) -> list[str]:
    return [name, str(count), f"{wall_s:.2f}", f"{count / wall_s:.0f}", f"{cpu_s / count * 1000:.2f}"]


def run_delivery(url: str, events: int, senders: int) -> list[str]:
    with tempfile.TemporaryDirectory(prefix="delivery-bench-") as tmp:
        outbox = Outbox(Path(tmp) / "outbox.sqlite3", clock=Clock())
        with outbox.transaction() as writer:
            for n in range(events):
                writer.add(f"call-{n}", {**PARAMS, "n": str(n)})
        config = from_dict({"pbx": {"url": "http://pbx.invalid", "client_id": "bench", "client_secret": "x"},
                            "webapi": {"key": "bench-key-0123456789"}, "webhooks": {"url": url}},
                           source="bench", environ={})
        delivery = Delivery(outbox, config.webhooks, clock=Clock(), senders=senders)
        cpu, began = _cpu_s(), time.perf_counter()
        delivery.start()
        while outbox.tally().delivered < events:
            time.sleep(0.005)
        wall, used = time.perf_counter() - began, _cpu_s() - cpu
        delivery.stop(5)
    return _row(f"gateway delivery ({senders} senders, outbox)", events, wall, used)


def run_http_client(url: str, events: int) -> list[str]:
    parts = urlsplit(url)
    connection = http.client.HTTPConnection(parts.hostname or "", parts.port, timeout=10)
    cpu, began = _cpu_s(), time.perf_counter()
    for n in range(events):
        connection.request("GET", f"{parts.path}?{urlencode({**PARAMS, 'n': str(n)})}",
                           headers={"X-Webhook-Id": f"plain-{n}"})
        connection.getresponse().read()
    wall, used = time.perf_counter() - began, _cpu_s() - cpu
    connection.close()
    return _row("baseline: http.client loop, one connection", events, wall, used)


def run_requests(url: str, events: int) -> list[str]:
    session = requests.Session()
    cpu, began = _cpu_s(), time.perf_counter()
    for n in range(events):
        session.get(url, params={**PARAMS, "n": str(n)}, headers={"X-Webhook-Id": f"req-{n}"}, timeout=10).close()
    wall, used = time.perf_counter() - began, _cpu_s() - cpu
    session.close()
    return _row("baseline: requests.Session loop", events, wall, used)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=3000, help="webhooks per run (default 3000)")
    parser.add_argument("--senders", type=int, default=8, help="the delivery's senders (default 8, as the service)")
    args = parser.parse_args()
    if args.events < 1 or args.senders < 1:
        parser.error("--events and --senders must be positive")
    receiver = ReceiverProcess()
    try:
        print("delivery_bench: webhooks delivered per second and CPU per webhook, one receiver (own process)")
        print(machine_line())
        rows = [run_http_client(receiver.url, args.events), run_requests(receiver.url, args.events),
                run_delivery(receiver.url, args.events, args.senders)]
        receiver.collect()
        print(table(["sender", "webhooks", "seconds", "per second", "CPU ms each"], rows))
        print("(CPU: this process's utime + stime while the run went, over the webhooks sent; the gateway's "
              "row includes writing every outcome to the outbox)")
        print(f"receiver got {len(receiver.arrivals)} requests in all")
    finally:
        receiver.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
