"""Benchmark: webhook delay and gateway memory at 100 and 1000 concurrent calls.

Runs, all on 127.0.0.1:
  - the simulator in this process (a time scale; recording switched off on every extension so no
    WAVs are made), with a subscriber on its call engine that timestamps every participant event
    as the engine emits it;
  - a fast webhook receiver in this process (ThreadingHTTPServer, HTTP/1.1 keep-alive) that
    timestamps every arrival;
  - the gateway exactly as production (`3cx-gateway run --config <tmp config>`) with [webhooks] url
    pointing at the receiver and [recordings] enabled = false (no conversions distort the run).
Each phase plays N inbound calls to the registered extensions 100-119 (round robin), started at a
steady rate: each rings, is answered, talks until every call of the phase is up (so all N overlap)
and is hung up by the caller. Each webhook is matched to the engine event that caused it, by the
v20 call id inside the call-link id, the extension and the event type:
    ringing         <- the Upsert of the extension's participant while Ringing
    hangupincoming  <- the Upsert that made it Connected
    incoming (end)  <- its Remove
and the delay (emission -> arrival) is reported as p50/p90/p99/max with the counts and the gunicorn
worker's peak RSS (VmHWM). Targets: p99 under 50 ms at 1000 concurrent calls, memory under 150 MB.
Same-run baseline: this process's own GETs straight to the receiver, timed the same way, during
each phase, so readers see which part of the delay is the gateway.

Burst phases (`--burst N`, 0 to skip): N calls started within one second, each ringing 1 simulated
second; once at time scale 1 (a second simulator and gateway, started for it) and once at the main
time scale (at 10, each call rings 0.1 s: a participant may be gone before the gateway reads it).
Targets: p99 at most 1 s and nothing lost at time scale 1; nothing lost at the main scale, where
webhooks completed from the call history ("recovered" legs) are allowed and counted. A leg
reported from the history has no ringing webhook (none is sent after the fact): counted apart.

    .venv/bin/python bench/webhook_bench.py [--calls 100,1000] [--rate 50] [--time-scale 10] [--burst 1000]
"""
from __future__ import annotations

import argparse
import logging
import os
import re
import shutil
import sys
import tempfile
import threading
import time
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import requests

from bench.common import (HOST, free_port, machine_line, percentiles, quiet_directory, start_gateway,
                          status_kb, table, wait_http, write_config)
from gateway.webhooks.receiver import Webhook, WebhookReceiver

logger = logging.getLogger(__name__)

TARGET_P99_MS = 50.0
TARGET_BURST_P99_MS = 1000.0
RECOVERED = "recovered from call history"
TARGET_RSS_MB = 150.0
EXTENSIONS = [str(n) for n in range(100, 120)]   # the default directory's registered extensions
DID = "+420233000111"
RING_REAL_S = 1.0
PROBE_INTERVAL_S = 0.02
LAG_EVERY = 10          # the gateway's /healthz (event lag) is read every 10th sample: 0.5 s
UPSERT, REMOVE = 0, 1   # WebSocket event_type values (V20-API-NOTES §e)

# webhook event -> the kind of engine event that causes it
WEBHOOK_KINDS = {"ringing": "ringing", "hangupincoming": "start", "pickupincoming": "start",
                 "incoming": "end"}
_LINK_ID = re.compile(r"^\d{12}_(\d+)-\d+$")


# --- what happened, with timestamps (time.perf_counter() of this process) -----------------------

class Emissions:
    """Subscribes to the engine: (v20 call id, dn, kind) -> when the engine emitted it."""

    def __init__(self, engine: Any) -> None:
        self._engine = engine
        self._lock = threading.Lock()
        self.at: dict[tuple[int, str, str], float] = {}
        self.participant_of: dict[tuple[int, str], int] = {}
        self._call_of: dict[int, int] = {}

    def wants(self, dn: str) -> bool:
        return True

    def push(self, event_type: int, entity: str) -> None:
        # Runs on the engine's thread with the engine lock held (re-entrant): keep it short.
        now = time.perf_counter()
        parts = entity.strip("/").split("/")
        dn, participant_id = parts[-3], int(parts[-1])
        if event_type == UPSERT:
            view = self._engine.participant(dn, participant_id)
            if view is None:
                return
            callid, status = int(view["callid"]), view["status"]
            kind = {"Ringing": "ringing", "Connected": "start"}.get(status)
            with self._lock:
                self._call_of[participant_id] = callid
                self.participant_of[(callid, dn)] = participant_id
        elif event_type == REMOVE:
            with self._lock:
                callid = self._call_of.get(participant_id)
            kind = "end"
        else:
            return
        if kind is None or callid is None:
            return
        with self._lock:
            self.at.setdefault((callid, dn, kind), now)


class Reads:
    """Installed on the simulator's app: when the gateway read each participant (after an Upsert)."""

    PATH = re.compile(r"^/callcontrol/([^/]+)/participants/(\d+)$")

    def __init__(self) -> None:
        self.at: dict[tuple[str, int], list[float]] = defaultdict(list)
        self._lock = threading.Lock()

    def before_request(self) -> None:
        import flask
        now = time.perf_counter()
        match = self.PATH.match(flask.request.path)
        if match and flask.request.method == "GET":
            with self._lock:
                self.at[(match.group(1), int(match.group(2)))].append(now)


@dataclass
class Arrival:
    at: float
    params: dict[str, str]


@dataclass
class Receiver:
    """The webhook receiver: every arrival with its time; probes carry their send time."""

    arrivals: list[Arrival] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def serve(self) -> WebhookReceiver:
        """Start taking webhooks (keep-alive, as a CRM behind nginx would)."""
        return WebhookReceiver(self._arrive, path="/crm/webhook", keep_alive=True, name="bench-receiver")

    def _arrive(self, webhook: Webhook) -> None:
        with self.lock:
            self.arrivals.append(Arrival(webhook.at, webhook.params))

    def webhooks(self) -> list[Arrival]:
        with self.lock:
            return [a for a in self.arrivals if a.params.get("event") != "probe"]

    def probes(self) -> list[Arrival]:
        with self.lock:
            return [a for a in self.arrivals if a.params.get("event") == "probe"]


class Prober:
    """The same-run baseline: GETs straight to the receiver every PROBE_INTERVAL_S, timed like webhooks."""

    def __init__(self, url: str) -> None:
        self._url = url
        self._session = requests.Session()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.sent: dict[str, float] = {}
        self._count = 0

    def probe(self) -> None:
        self._count += 1
        tag = f"p{self._count}"
        self.sent[tag] = time.perf_counter()
        self._session.get(self._url, params={"event": "probe", "tag": tag}, timeout=10).close()

    def start(self) -> None:
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="bench-prober", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(10)

    def _run(self) -> None:
        while not self._stop.wait(PROBE_INTERVAL_S):
            self.probe()

    def delays_ms(self, arrivals: list[Arrival], tags: set[str]) -> list[float]:
        return [(a.at - self.sent[a.params["tag"]]) * 1000.0 for a in arrivals
                if a.params.get("tag") in tags]


# --- one phase -------------------------------------------------------------------------------------

@dataclass
class Phase:
    calls: int
    name: str = ""
    seconds: float = 0.0
    peak_calls: int = 0
    expected: int = 0
    received: int = 0
    matched: int = 0
    unmatched: int = 0
    duplicates: int = 0
    delays_ms: list[float] = field(default_factory=list)
    to_read_ms: list[float] = field(default_factory=list)
    read_to_arrival_ms: list[float] = field(default_factory=list)
    probe_ms: list[float] = field(default_factory=list)
    peak_rss_kb: int | None = None
    rss_kb: int | None = None
    failed_starts: int = 0
    lost_by_kind: dict[str, int] = field(default_factory=dict)
    delivered: int = 0
    recovered: int = 0              # webhooks completed from the call history
    recovered_legs_unrung: int = 0  # ringing never sent for a leg reported from the history
    lag_max_s: float = 0.0          # the gateway's event lag, highest seen during the phase
    unread_legs: int = 0            # participants gone before the gateway read them (its /metrics)


def delivered_count(health_url: str) -> int:
    """The outbox's delivered count, from the gateway's /healthz."""
    return int(requests.get(health_url, timeout=10).json()["outbox"]["delivered"])


def play_phase(sim: Any, emissions: Emissions, reads: Reads, receiver: Receiver, prober: Prober,
               calls: int, rate: float, time_scale: float, worker_pid: int, gateway: Any,
               timeout_s: float, health_url: str, *, ring_sim_s: float | None = None, name: str = "") -> Phase:
    from gateway.sim.scenarios import ScenarioError, inbound

    phase = Phase(calls, name or f"{calls} calls")
    ramp_s = calls / rate
    talk_real_s = ramp_s + 2.0                 # the first call is still up when the last one is answered
    ring_sim = RING_REAL_S * time_scale if ring_sim_s is None else ring_sim_s
    talk_sim = talk_real_s * time_scale
    webhooks_before = len(receiver.webhooks())
    delivered_before = delivered_count(health_url)
    probe_tags_before = set(prober.sent)
    played: list[Any] = []
    stop_sampling = threading.Event()

    def sample() -> None:
        rounds = 0
        while not stop_sampling.wait(0.05):
            phase.peak_calls = max(phase.peak_calls, sim.engine.calls_active())
            rounds += 1
            if rounds % LAG_EVERY:
                continue
            try:
                lag = float(requests.get(health_url, timeout=2).json()["events"]["lag_s"])
            except (requests.RequestException, ValueError, KeyError):
                continue
            phase.lag_max_s = max(phase.lag_max_s, lag)

    sampler = threading.Thread(target=sample, name="bench-sampler", daemon=True)
    sampler.start()
    prober.start()
    began = time.perf_counter()
    for n in range(calls):
        wait_s = began + n / rate - time.perf_counter()
        if wait_s > 0:
            time.sleep(wait_s)
        ext = EXTENSIONS[n % len(EXTENSIONS)]
        scenario = (inbound(f"+42077{n:07d}", did=DID).to_extension(ext)
                    .rings(ring_sim).answered_by(ext).talk(talk_sim).caller_hangs_up())
        try:
            played.append(sim.play(scenario, wait=False))
        except ScenarioError as error:
            phase.failed_starts += 1
            print(f"  call {n} did not start: {error}", flush=True)
    deadline = time.monotonic() + talk_real_s + ring_sim / time_scale + timeout_s
    for call in played:
        call.done.wait(max(0.0, deadline - time.monotonic()))
    phase.expected = 3 * len(played)
    call_ids = {call.call_id for call in played}
    while time.monotonic() < deadline:
        history = history_numbers(sim, emissions)
        mine = [a for a in receiver.webhooks()[webhooks_before:] if _call_id(a, history) in call_ids]
        unrung = {(c, u) for c, u, k in _keys(mine, history) if k == "start"} - \
            {(c, u) for c, u, k in _keys(mine, history) if k == "ringing"}
        if len(mine) >= phase.expected - len(unrung) and _is_recovered_only(mine, unrung):
            break
        if not gateway.is_running():
            raise gateway.fail("exited during the benchmark")
        time.sleep(0.1)
    time.sleep(0.5)    # a late duplicate or stray webhook still counts
    prober.stop()
    stop_sampling.set()
    sampler.join(2)
    phase.seconds = time.perf_counter() - began
    phase.delivered = delivered_count(health_url) - delivered_before

    seen: set[tuple[int, str, str]] = set()
    history = history_numbers(sim, emissions)
    for arrival in receiver.webhooks()[webhooks_before:]:
        callid = _call_id(arrival, history)
        if callid not in call_ids:
            continue
        phase.received += 1
        if RECOVERED in arrival.params.get("title", ""):
            phase.recovered += 1
        kind = WEBHOOK_KINDS.get(arrival.params.get("event", ""))
        key = (callid, arrival.params.get("user", ""), kind or "")
        emitted = emissions.at.get(key)
        if kind is None or emitted is None:
            phase.unmatched += 1
            continue
        if key in seen:
            phase.duplicates += 1
            continue
        seen.add(key)
        phase.matched += 1
        phase.delays_ms.append((arrival.at - emitted) * 1000.0)
        if kind in ("ringing", "start"):
            participant_id = emissions.participant_of.get((callid, key[1]))
            read = next((t for t in reads.at.get((key[1], participant_id), []) if t >= emitted), None)
            if read is not None:
                phase.to_read_ms.append((read - emitted) * 1000.0)
                phase.read_to_arrival_ms.append((arrival.at - read) * 1000.0)
    recovered_legs = {(a_call, user) for a_call, user, kind in seen if kind == "start"
                      and _recovered_start(receiver.webhooks()[webhooks_before:], history, a_call, user)}
    for key in emissions.at:
        if key[0] in call_ids and key not in seen:
            if key[2] == "ringing" and (key[0], key[1]) in recovered_legs:
                phase.recovered_legs_unrung += 1
                continue
            phase.lost_by_kind[key[2]] = phase.lost_by_kind.get(key[2], 0) + 1
    try:
        metrics = requests.get(health_url.replace("/healthz", "/metrics"), timeout=5).text
        phase.unread_legs = int(float(re.search(r"^gateway_unread_legs_total (\S+)$", metrics, re.M).group(1)))
    except (requests.RequestException, AttributeError, ValueError):
        phase.unread_legs = -1
    phase.probe_ms = prober.delays_ms(receiver.probes(), set(prober.sent) - probe_tags_before)
    phase.peak_rss_kb = status_kb(worker_pid, "VmHWM")
    phase.rss_kb = status_kb(worker_pid, "VmRSS")
    return phase


def _call_id(arrival: Arrival, history: dict[int, int] | None = None) -> int | None:
    """The v20 call id in a webhook's call-link id; for a call reported from the call history (whose
    id carries a number derived from MainCallHistoryId) the call id behind that number."""
    match = _LINK_ID.match(arrival.params.get("id", ""))
    if not match:
        return None
    number = int(match.group(1))
    return (history or {}).get(number, number)


def history_numbers(sim: Any, emissions: Emissions) -> dict[int, int]:
    """HistoryCall.number of each call in the simulator's call history -> its v20 call id."""
    from gateway.live.history import HistoryCall
    by_participant = {(dn, participant_id): callid for (callid, dn), participant_id in emissions.participant_of.items()}
    with sim.directory.call_log_lock:
        rows = list(sim.directory.call_log)
    out: dict[int, int] = {}
    for row in rows:
        callid = by_participant.get((row.destination_dn, row.dst_participant))
        if callid is not None:
            out[HistoryCall(row.main_id, ()).number] = callid
    return out


def _keys(arrivals: list[Arrival], history: dict[int, int]) -> set[tuple[int | None, str, str]]:
    return {(_call_id(a, history), a.params.get("user", ""), WEBHOOK_KINDS.get(a.params.get("event", ""), ""))
            for a in arrivals}


def _is_recovered_only(arrivals: list[Arrival], unrung: set[tuple[int | None, str]]) -> bool:
    """Whether every leg without a ringing webhook got its start from the call history."""
    return all(any(RECOVERED in a.params.get("title", "") for a in arrivals
                   if a.params.get("user") == user and WEBHOOK_KINDS.get(a.params.get("event", "")) == "start")
               for _call, user in unrung) if unrung else True


def _recovered_start(arrivals: list[Arrival], history: dict[int, int], callid: int, user: str) -> bool:
    return any(_call_id(a, history) == callid and a.params.get("user") == user
               and WEBHOOK_KINDS.get(a.params.get("event", "")) == "start" and RECOVERED in a.params.get("title", "")
               for a in arrivals)


# --- main --------------------------------------------------------------------------------------------

def _ms(values: list[float]) -> list[str]:
    if not values:
        return ["-"] * 4
    return [f"{v:.1f}" for v in percentiles(values)] + [f"{max(values):.1f}"]


class Stack:
    """A simulator at one time scale with its own gateway (`3cx-gateway run`) sending to `hook_url`."""

    def __init__(self, root: Path, time_scale: float, hook_url: str) -> None:
        from gateway.sim.server import SimServer

        self.time_scale = time_scale
        self.sim = SimServer(time_scale=time_scale, directory_factory=quiet_directory)
        self.reads = Reads()
        self.sim.app.before_request(self.reads.before_request)
        self.sim.start()
        self.emissions = Emissions(self.sim.engine)
        self.sim.engine.subscribe(self.emissions)
        root.mkdir(parents=True, exist_ok=True)
        self.root = root
        self.port = free_port()
        config_path, _ = write_config(root, sim_url=self.sim.url, client_id=self.sim.client_id,
                                      client_secret=self.sim.client_secret, port=self.port, hook_url=hook_url)
        self.gateway = start_gateway(config_path, root / "gateway.log")
        self.health_url = f"http://{HOST}:{self.port}/healthz"
        wait_http(self.health_url, self.gateway)
        self.worker = self.gateway.worker_pid()

    def play(self, receiver: Receiver, prober: Prober, calls: int, rate: float, timeout_s: float, *,
             ring_sim_s: float | None = None, name: str = "") -> Phase:
        return play_phase(self.sim, self.emissions, self.reads, receiver, prober, calls, rate, self.time_scale,
                          self.worker, self.gateway, timeout_s, self.health_url, ring_sim_s=ring_sim_s, name=name)

    def stop(self) -> None:
        self.gateway.stop()
        self.sim.stop()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", default="100,1000", help="concurrent calls per phase, comma-separated")
    parser.add_argument("--rate", type=float, default=50.0, help="new calls per second while ramping up (default 50)")
    parser.add_argument("--time-scale", type=float, default=10.0, help="simulated seconds per real second")
    parser.add_argument("--timeout", type=float, default=60.0, help="seconds to wait for late webhooks per phase")
    parser.add_argument("--burst", type=int, default=1000, help="calls of the burst phases, started within one "
                        "second (0: no burst phases)")
    args = parser.parse_args()
    try:
        phases = [int(n) for n in args.calls.split(",") if n.strip()]
    except ValueError:
        parser.error("--calls takes whole numbers, e.g. 100,1000")
    if not phases or min(phases) < 1 or args.rate <= 0 or args.time_scale <= 0 or args.burst < 0:
        parser.error("--calls, --rate and --time-scale must be positive, --burst not negative")

    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    receiver = Receiver()
    server = receiver.serve()
    hook_url = server.url
    prober = Prober(hook_url)
    stacks: list[Stack] = []
    with tempfile.TemporaryDirectory(prefix="webhook-bench-") as tmp:
        root = Path(tmp)
        try:
            main_stack = Stack(root / "main", args.time_scale, hook_url)
            stacks.append(main_stack)
            idle_rss_kb = status_kb(main_stack.worker, "VmRSS")

            print("webhook_bench: delay from the PBX's Call Control event to the webhook at the receiver")
            print(machine_line())
            print(f"load average before the run: {' '.join(f'{v:.2f}' for v in os.getloadavg())}")
            print(f"gateway: 3cx-gateway run (gunicorn, one gthread worker), [webhooks] method GET, "
                  f"[recordings] enabled = false, logging INFO; PBX: simulator in this process, "
                  f"time scale {args.time_scale:g}x")
            print(f"calls: inbound to extensions {EXTENSIONS[0]}-{EXTENSIONS[-1]} round robin, started at "
                  f"{args.rate:g}/s, ring {RING_REAL_S:g} s, talk until all are up, caller hangs up; "
                  f"3 webhooks each (ringing, hangupincoming, incoming)")
            print(f"worker RSS before the first call: {idle_rss_kb / 1024:.1f} MB\n", flush=True)

            for _ in range(20):     # the idle baseline: the receiver's own round trip, nothing else running
                prober.probe()
            idle_probe = prober.delays_ms(receiver.probes(), set(prober.sent))

            results = []
            for calls in phases:
                print(f"playing {calls} concurrent calls ...", flush=True)
                results.append(main_stack.play(receiver, prober, calls, args.rate, args.timeout))
            bursts = []
            if args.burst:
                print(f"burst: {args.burst} calls within 1 s at time scale {args.time_scale:g} "
                      f"(ring 1 simulated s) ...", flush=True)
                bursts.append(main_stack.play(receiver, prober, args.burst, float(args.burst), args.timeout,
                                              ring_sim_s=1.0, name=f"burst {args.burst}/s, {args.time_scale:g}x"))
                print(f"burst: {args.burst} calls within 1 s at time scale 1 (a second simulator and gateway) ...",
                      flush=True)
                single = Stack(root / "scale1", 1.0, hook_url)
                stacks.append(single)
                bursts.insert(0, single.play(receiver, prober, args.burst, float(args.burst), args.timeout,
                                             ring_sim_s=1.0, name=f"burst {args.burst}/s, 1x"))

            rows = []
            for phase in results + bursts:
                lost = phase.expected - phase.matched - phase.recovered_legs_unrung
                rows.append([phase.name, str(phase.peak_calls), str(phase.expected), str(phase.delivered),
                             str(phase.received), str(lost), str(phase.recovered), str(phase.recovered_legs_unrung),
                             str(phase.duplicates + phase.unmatched), *_ms(phase.delays_ms),
                             f"{phase.lag_max_s:.2f}", str(phase.unread_legs),
                             f"{phase.peak_rss_kb / 1024:.1f}" if phase.peak_rss_kb else "?"])
            print()
            print(table(["phase", "peak calls", "expected", "sent", "received", "lost", "recovered", "unrung",
                         "dup/unmatched", "p50 ms", "p90 ms", "p99 ms", "max ms", "max lag s", "unread legs",
                         "peak RSS MB"], rows))
            print("(expected: engine events that make a webhook; sent: delivered according to the gateway's "
                  "outbox; recovered: webhooks completed from the call history; unrung: ringing webhooks not "
                  "sent for legs reported from the call history (not counted as lost); delay: engine emits the "
                  "event -> the webhook arrives at the receiver; max lag: the gateway's event lag (/healthz) "
                  "sampled every 0.5 s; unread legs: the gateway's count since it started; peak RSS: VmHWM of "
                  "the gunicorn worker since it started)")
            for phase in results + bursts:
                if phase.lost_by_kind:
                    print(f"{phase.name}: no webhook for these engine events: "
                          + ", ".join(f"{kind} {n}" for kind, n in sorted(phase.lost_by_kind.items())))
            print()
            rows = []
            for phase in results + bursts:
                rows.append([f"{phase.name}: event -> gateway reads participant", *_ms(phase.to_read_ms)])
                rows.append([f"{phase.name}: read -> webhook arrives", *_ms(phase.read_to_arrival_ms)])
                rows.append([f"{phase.name}: baseline, direct GET to receiver", *_ms(phase.probe_ms)])
            rows.append(["idle: baseline, direct GET to receiver", *_ms(idle_probe)])
            print(table(["where the time goes (ringing + answer webhooks)", "p50 ms", "p90 ms", "p99 ms", "max ms"],
                        rows))
            print("(baseline: this process's own GET to the same receiver, every "
                  f"{PROBE_INTERVAL_S * 1000:.0f} ms during the phase, send -> arrival)\n")
            biggest = max(results, key=lambda p: p.calls)
            p99 = percentiles(biggest.delays_ms)[2] if biggest.delays_ms else float("inf")
            rss_mb = (biggest.peak_rss_kb or 0) / 1024
            print(f"target: p99 under {TARGET_P99_MS:.0f} ms at {biggest.calls} concurrent calls: "
                  f"{p99:.1f} ms -> {'met' if p99 < TARGET_P99_MS else 'MISSED'}")
            print(f"target: memory under {TARGET_RSS_MB:.0f} MB: peak RSS {rss_mb:.1f} MB -> "
                  f"{'met' if rss_mb < TARGET_RSS_MB else 'MISSED'}")
            is_complete = all(p.matched + p.recovered_legs_unrung == p.expected for p in results + bursts)
            lost_total = sum(p.expected - p.matched - p.recovered_legs_unrung for p in results + bursts)
            print(f"target: no webhook lost: {lost_total} lost -> {'met' if is_complete else 'MISSED'}")
            if bursts:
                first = bursts[0]
                burst_p99 = percentiles(first.delays_ms)[2] if first.delays_ms else float("inf")
                first_lost = first.expected - first.matched - first.recovered_legs_unrung
                print(f"target: {first.name}: p99 at most {TARGET_BURST_P99_MS:.0f} ms and 0 lost: "
                      f"p99 {burst_p99:.1f} ms, {first_lost} lost -> "
                      f"{'met' if burst_p99 <= TARGET_BURST_P99_MS and first_lost == 0 else 'MISSED'}")
                for other in bursts[1:]:
                    other_lost = other.expected - other.matched - other.recovered_legs_unrung
                    print(f"target: {other.name}: 0 lost (recovered allowed): {other_lost} lost, "
                          f"{other.recovered} recovered webhooks, {other.recovered_legs_unrung} ringing not sent "
                          f"-> {'met' if other_lost == 0 else 'MISSED'}")
            print(f"load average after the run: {' '.join(f'{v:.2f}' for v in os.getloadavg())}")
            if not is_complete:
                for stack in stacks:
                    kept = Path(tempfile.gettempdir()) / f"webhook-bench-gateway-{stack.time_scale:g}x.log"
                    shutil.copyfile(stack.root / "gateway.log", kept)
                    print(f"the gateway's log is kept in {kept}")
            return 0
        finally:
            for stack in stacks:
                stack.stop()
            server.stop()


if __name__ == "__main__":
    raise SystemExit(main())
