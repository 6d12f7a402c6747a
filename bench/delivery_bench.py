"""Benchmark: webhook delivery throughput and CPU per webhook, against plain HTTP clients.

Fills an outbox with N ringing events (each its own call, so nothing waits for an earlier event
of its call) and lets one target's `Delivery` (its dispatcher and senders, as the service runs
them) send them to a keep-alive receiver in its own process (bench/processes.py), timing until
the outbox counts them all delivered. Same-run baselines, to the same receiver, the same query
string each: a loop of `http.client` requests on one kept connection (the least any Python sender
can spend), and a loop of `requests.Session().get` calls (the general-purpose client). CPU is this
process's (utime + stime) while each ran: milliseconds per request.

A second table: the CRM down with a backlog. `--backlog` events wait for their retry (each call's
first event failed) while new events are added at 100 a second for 5 s and their attempts fail
(nothing listens at the target); the CPU this process spends, beside the same adds with no
delivery running (the baseline), tells what the dispatcher costs while the CRM is away.

    .venv/bin/python bench/delivery_bench.py [--events 3000] [--senders 8] [--backlog 20000]
"""
from __future__ import annotations

import argparse
import http.client
import logging
import os
import socket
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
from gateway.webhooks.outbox import Attempt, Outbox

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


def run_backlog(backlog: int, *, deliver: bool, seconds: float = 5.0, rate: float = 100.0) -> list[str]:
    with socket.socket() as probe:                  # a port nothing listens on: the CRM is down
        probe.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{probe.getsockname()[1]}/hook"
    with tempfile.TemporaryDirectory(prefix="delivery-bench-") as tmp:
        outbox = Outbox(Path(tmp) / "outbox.sqlite3", clock=Clock())
        firsts = []
        with outbox.transaction() as writer:
            for k in range(backlog // 2):
                firsts.append(writer.add(f"call-{k}", {**PARAMS, "n": "0"}))
                writer.add(f"call-{k}", {**PARAMS, "n": "1"})
        later = time.time() + 3600
        outbox.record(Attempt(event_id, "pending", "HTTP 503", later) for event_id in firsts)
        config = from_dict({"pbx": {"url": "http://pbx.invalid", "client_id": "bench", "client_secret": "x"},
                            "webapi": {"key": "bench-key-0123456789"}, "webhooks": {"url": url}},
                           source="bench", environ={})
        delivery = Delivery(outbox, config.webhooks, clock=Clock())
        if deliver:
            delivery.start()
            time.sleep(1.0)
        cpu, began = _cpu_s(), time.perf_counter()
        for n in range(int(seconds * rate)):
            outbox.add(f"new-{n}", {**PARAMS, "n": str(n)})
            time.sleep(max(0.0, began + (n + 1) / rate - time.perf_counter()))
        wall, used = time.perf_counter() - began, _cpu_s() - cpu
        delivery.stop(5)
    name = "gateway delivery running" if deliver else "baseline: the same adds, no delivery"
    return [name, str(backlog), f"{wall:.1f}", f"{used / wall * 100:.0f}%"]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=3000, help="webhooks per run (default 3000)")
    parser.add_argument("--senders", type=int, default=8, help="the delivery's senders (default 8, as the service)")
    parser.add_argument("--backlog", type=int, default=20000, help="events waiting while the CRM is down "
                        "(default 20000; 0 skips that table)")
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
        if args.backlog:
            print()
            logging.disable(logging.WARNING)      # one warning per failed attempt otherwise
            rows = [run_backlog(args.backlog, deliver=False), run_backlog(args.backlog, deliver=True)]
            print(table(["CRM down: 100 new events/s for 5 s", "waiting", "seconds", "CPU (one core = 100%)"], rows))
    finally:
        receiver.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
