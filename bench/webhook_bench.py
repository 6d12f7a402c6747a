"""Benchmark: webhook delay and gateway memory at 100 and 1000 concurrent calls.

Runs, all on 127.0.0.1, each in its own process as the PBX, the gateway and the CRM would be
(bench/processes.py; on a small machine a simulator or receiver sharing this process's GIL would
make the benchmark measure itself):
  - the simulator (a time scale; recording switched off on every extension so no WAVs are made),
    with a subscriber on its call engine that timestamps every participant event as the engine
    emits it, and a tap timestamping the gateway's reads of each participant (alone or in its
    DN's participant list);
  - a fast webhook receiver (ThreadingHTTPServer, HTTP/1.1 keep-alive) that timestamps every arrival;
  - the gateway exactly as production (`3cx-gateway run --config <tmp config>`) with [webhooks] url
    pointing at the receiver and [recordings] enabled = false (no conversions distort the run).
Timestamps are time.perf_counter(), CLOCK_MONOTONIC on Linux: one clock for all the processes of
the machine (checked once per child at start; the benchmark stops where it is not shared).
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
each phase, so readers see which part of the delay is the gateway. Per phase also the CPU seconds
(/proc/PID/stat) of the gateway's worker, the simulator, the receiver and this process, and the
gateway's CPU per call: whether the gateway or the test rig is the limit on a small machine.

Cores (`--cores`): with `own` (the default on a machine of 2 cores or more) the gateway's processes
run on a core of their own (the last one) and the rig, the simulator, the receiver and this process,
on the others, as a PBX and a CRM would be other programs: on a small machine a Python simulator
and receiver that take half the CPU of a burst would otherwise make the gateway wait for a core
behind them, and the benchmark would measure the rig. With `shared` every process may run on
every core, as the system schedules them. With `own`, the burst at time scale 1 is played once
more with the cores shared, for comparison.

Burst phases (`--burst N`, 0 to skip): N calls started within one second, each ringing 1 simulated
second; once at time scale 1 (a second simulator and gateway, started for it) and once at the main
time scale (at 10, each call rings 0.1 s: a participant may be gone before the gateway reads it).
Targets: p99 at most 1 s and nothing lost at time scale 1; nothing lost at the main scale, where
webhooks completed from the call history ("recovered" legs) are allowed and counted. A leg
reported from the history has no ringing webhook (none is sent after the fact): counted apart.

    .venv/bin/python bench/webhook_bench.py [--calls 100,1000] [--rate 50] [--time-scale 10] [--burst 1000]
                                            [--cores own|shared]
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
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import requests

from bench.common import (HOST, Child, cpu_seconds, free_port, machine_line, percentiles, place, start_gateway,
                          status_kb, table, wait_http, write_config)
from bench.processes import Arrival, ReceiverProcess, SimProcess

logger = logging.getLogger(__name__)

TARGET_P99_MS = 50.0
TARGET_BURST_P99_MS = 1000.0
RECOVERED = "recovered from call history"
TARGET_RSS_MB = 150.0
EXTENSIONS = [str(n) for n in range(100, 120)]   # the default directory's registered extensions
DID = "+420233000111"
RING_REAL_S = 1.0
PROBE_INTERVAL_S = 0.02
SAMPLE_EVERY_S = 0.5    # the gateway's /healthz (event lag) and the processes' CPU time
WAIT_ROUND_S = 0.1      # waiting for a phase to complete: new arrivals and the simulator's progress
CPU_PROCESSES = ("gateway", "simulator", "receiver", "bench")

# webhook event -> the kind of engine event that causes it
WEBHOOK_KINDS = {"ringing": "ringing", "hangupincoming": "start", "pickupincoming": "start",
                 "incoming": "end"}
_LINK_ID = re.compile(r"^\d{12}_(\d+)-\d+$")


# --- the phase's webhooks as they arrive ----------------------------------------------------------

class Progress:
    """The webhooks of one phase's calls, each arrival examined once (the wait for completion stays linear).

    An arrival is the phase's when the call number in its call-link id is one of the phase's v20 call
    ids, or a call-history number (`history`, from the simulator) standing for one. An arrival not
    (yet) placed waits in `_pending` and is tried again when new history numbers come.
    """

    def __init__(self, call_ids: list[int], history: dict[int, int]) -> None:
        self.call_ids = set(call_ids)
        self.expected = 3 * len(call_ids)
        self._history = history
        self._history_size = len(history)
        self.mine: list[tuple[int, Arrival]] = []                  # (v20 call id, arrival), in arrival order
        self._pending: list[Arrival] = []
        self._rung: set[tuple[int, str]] = set()                    # legs with a ringing webhook
        self._started: set[tuple[int, str]] = set()                 # legs with a start webhook
        self.recovered_starts: set[tuple[int, str]] = set()         # ... whose start came from the call history

    def add(self, arrivals: list[Arrival]) -> None:
        if len(self._history) != self._history_size:
            self._history_size = len(self._history)
            pending, self._pending = self._pending, []
            arrivals = pending + arrivals
        for arrival in arrivals:
            if arrival.params.get("event") == "probe":
                continue
            callid = _call_id(arrival, self._history)
            if callid not in self.call_ids:
                self._pending.append(arrival)
                continue
            assert callid is not None
            self.mine.append((callid, arrival))
            leg = (callid, arrival.params.get("user", ""))
            kind = WEBHOOK_KINDS.get(arrival.params.get("event", ""))
            if kind == "ringing":
                self._rung.add(leg)
            elif kind == "start":
                self._started.add(leg)
                if RECOVERED in arrival.params.get("title", ""):
                    self.recovered_starts.add(leg)

    def is_complete(self) -> bool:
        """Every expected webhook arrived, but a ringing one of a leg whose start came from the call history."""
        unrung = self._started - self._rung
        return len(self.mine) >= self.expected - len(unrung) and unrung <= self.recovered_starts


def _call_id(arrival: Arrival, history: dict[int, int]) -> int | None:
    """The v20 call id in a webhook's call-link id; for a call reported from the call history (whose
    id carries a number derived from MainCallHistoryId) the call id behind that number."""
    match = _LINK_ID.match(arrival.params.get("id", ""))
    if not match:
        return None
    number = int(match.group(1))
    return history.get(number, number)


class CpuMeter:
    """CPU seconds (utime + stime, /proc/PID/stat) of the processes of a phase, and each one's busiest
    stretch between two `sample()`s as a share of one core."""

    def __init__(self, pids: dict[str, int]) -> None:
        self._pids = pids
        self._began = self._read()
        self._last = (time.perf_counter(), self._began)
        self.busiest: dict[str, float] = dict.fromkeys(pids, 0.0)

    def _read(self) -> dict[str, float]:
        out = {}
        for name, pid in self._pids.items():
            try:
                out[name] = cpu_seconds(pid)
            except (OSError, IndexError, ValueError):
                out[name] = float("nan")
        return out

    def sample(self) -> None:
        now, reading = time.perf_counter(), self._read()
        then, before = self._last
        for name in self._pids:
            self.busiest[name] = max(self.busiest[name], (reading[name] - before[name]) / (now - then))
        self._last = (now, reading)

    def spent(self) -> dict[str, float]:
        reading = self._read()
        return {name: reading[name] - self._began[name] for name in self._pids}


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
            try:
                self.probe()
            except requests.RequestException as error:    # not counted: no arrival carries its tag
                logger.warning("probe failed: %s", error)

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
    started: int = 0
    expected: int = 0
    received: int = 0
    matched: int = 0
    unmatched: int = 0
    duplicates: int = 0
    delays_ms: list[float] = field(default_factory=list)
    delays_by_kind_ms: dict[str, list[float]] = field(default_factory=dict)
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
    cpu_s: dict[str, float] = field(default_factory=dict)       # process -> CPU seconds during the phase
    busiest: dict[str, float] = field(default_factory=dict)     # process -> busiest 0.5 s, share of a core


def delivered_count(health_url: str) -> int:
    """The outbox's delivered count, from the gateway's /healthz."""
    return int(requests.get(health_url, timeout=10).json()["outbox"]["delivered"])


def play_phase(stack: Stack, receiver: ReceiverProcess, prober: Prober, calls: int, rate: float,
               timeout_s: float, *, ring_sim_s: float | None = None, name: str = "") -> Phase:
    sim, time_scale, health_url = stack.sim, stack.time_scale, stack.health_url
    phase = Phase(calls, name or f"{calls} calls")
    ramp_s = calls / rate
    talk_real_s = ramp_s + 2.0                 # the first call is still up when the last one is answered
    ring_sim = RING_REAL_S * time_scale if ring_sim_s is None else ring_sim_s
    talk_sim = talk_real_s * time_scale
    receiver.collect()
    first = len(receiver.arrivals)
    delivered_before = delivered_count(health_url)
    probe_tags_before = set(prober.sent)
    cpu = CpuMeter({"gateway": stack.worker, "simulator": sim.pid, "receiver": receiver.pid, "bench": os.getpid()})
    stop_sampling = threading.Event()

    def sample() -> None:
        while not stop_sampling.wait(SAMPLE_EVERY_S):
            cpu.sample()
            try:
                lag = float(requests.get(health_url, timeout=2).json()["events"]["lag_s"])
            except (requests.RequestException, ValueError, KeyError):
                continue
            phase.lag_max_s = max(phase.lag_max_s, lag)

    sampler = threading.Thread(target=sample, name="bench-sampler", daemon=True)
    sampler.start()
    prober.start()
    began = time.perf_counter()
    sim.play(calls, rate, did=DID, extensions=EXTENSIONS, ring_sim_s=ring_sim, talk_sim_s=talk_sim)
    deadline = time.monotonic() + ramp_s + talk_real_s + ring_sim / time_scale + timeout_s
    progress: Progress | None = None
    while True:
        state = sim.progress()
        for error in state.errors:
            print(f"  {error}", flush=True)
        new = receiver.collect()
        if progress is None and state.call_ids is not None:
            progress = Progress(state.call_ids, sim.history)
            new = receiver.arrivals[first:]
        if progress is not None:
            progress.add(new)
            if state.is_done and progress.is_complete():
                break
        if time.monotonic() >= deadline:
            break
        if not stack.gateway.is_running():
            raise stack.gateway.fail("exited during the benchmark")
        time.sleep(WAIT_ROUND_S)
    if progress is None:
        raise SystemExit(f"{sim.name}: the calls of {phase.name} were not all started within the phase's time")
    time.sleep(0.5)    # a late duplicate or stray webhook still counts
    prober.stop()
    stop_sampling.set()
    sampler.join(2)
    phase.seconds = time.perf_counter() - began
    phase.cpu_s = cpu.spent()
    phase.busiest = cpu.busiest
    phase.delivered = delivered_count(health_url) - delivered_before
    state = sim.progress()
    progress.add(receiver.collect())
    phase.failed_starts = state.failed
    phase.started = len(progress.call_ids)
    phase.expected = progress.expected
    results = sim.results(sorted(progress.call_ids))
    phase.peak_calls = results.peak_calls

    seen: set[tuple[int, str, str]] = set()
    for callid, arrival in progress.mine:
        phase.received += 1
        if RECOVERED in arrival.params.get("title", ""):
            phase.recovered += 1
        kind = WEBHOOK_KINDS.get(arrival.params.get("event", ""))
        key = (callid, arrival.params.get("user", ""), kind or "")
        emitted = results.emitted.get(key)
        if kind is None or emitted is None:
            phase.unmatched += 1
            continue
        if key in seen:
            phase.duplicates += 1
            continue
        seen.add(key)
        phase.matched += 1
        phase.delays_ms.append((arrival.at - emitted) * 1000.0)
        phase.delays_by_kind_ms.setdefault(kind, []).append((arrival.at - emitted) * 1000.0)
        if kind in ("ringing", "start"):
            participant_id = results.participant_of.get((callid, key[1]))
            read = results.first_read(key[1], participant_id or 0, emitted)
            if read is not None:
                phase.to_read_ms.append((read - emitted) * 1000.0)
                phase.read_to_arrival_ms.append((arrival.at - read) * 1000.0)
    recovered_legs = {leg for leg in progress.recovered_starts if (*leg, "start") in seen}
    for key in results.emitted:
        if key not in seen:
            if key[2] == "ringing" and (key[0], key[1]) in recovered_legs:
                phase.recovered_legs_unrung += 1
                continue
            phase.lost_by_kind[key[2]] = phase.lost_by_kind.get(key[2], 0) + 1
    try:
        metrics = requests.get(health_url.replace("/healthz", "/metrics"), timeout=5).text
        phase.unread_legs = int(float(re.search(r"^gateway_unread_legs_total (\S+)$", metrics, re.M).group(1)))
    except (requests.RequestException, AttributeError, ValueError):
        phase.unread_legs = -1
    probes = [a for a in receiver.arrivals[first:] if a.params.get("event") == "probe"]
    phase.probe_ms = prober.delays_ms(probes, set(prober.sent) - probe_tags_before)
    phase.peak_rss_kb = status_kb(stack.worker, "VmHWM")
    phase.rss_kb = status_kb(stack.worker, "VmRSS")
    return phase


# --- where the processes run -----------------------------------------------------------------------

OWN = "own"
SHARED = "shared"


class Cores:
    """Places the gateways on a core of their own and the rig on the others (`own`), or lets every
    process run anywhere (`shared`); see the module docstring."""

    def __init__(self) -> None:
        self.all = set(os.sched_getaffinity(0))
        self.gateway = {max(self.all)}
        self.rig = self.all - self.gateway

    @property
    def can_own(self) -> bool:
        return bool(self.rig)

    def describe(self, mode: str) -> str:
        if mode == OWN:
            return (f"cores: the gateway on core {min(self.gateway)} of its own; simulator, receiver and "
                    f"benchmark on {', '.join(str(c) for c in sorted(self.rig))}")
        return f"cores: every process on any of the {len(self.all)} cores"

    def arrange(self, mode: str, stacks: list[Stack], receiver: ReceiverProcess) -> None:
        gateways = [pid for stack in stacks if stack.gateway is not None for pid in (stack.gateway.pid, stack.worker)]
        rig = [os.getpid(), receiver.pid, *(stack.sim.pid for stack in stacks)]
        if mode == OWN:
            place(gateways, self.gateway)
            place(rig, self.rig)
        else:
            place(gateways + rig, self.all)


# --- main --------------------------------------------------------------------------------------------

def _ms(values: list[float]) -> list[str]:
    if not values:
        return ["-"] * 4
    return [f"{v:.1f}" for v in percentiles(values)] + [f"{max(values):.1f}"]


class Stack:
    """A simulator process at one time scale with its own gateway (`3cx-gateway run`) sending to `hook_url`."""

    def __init__(self, root: Path, time_scale: float, hook_url: str) -> None:
        self.time_scale = time_scale
        self.sim = SimProcess(time_scale)
        self.gateway: Child | None = None
        try:
            root.mkdir(parents=True, exist_ok=True)
            self.root = root
            self.port = free_port()
            config_path, _ = write_config(root, sim_url=self.sim.url, client_id=self.sim.client_id,
                                          client_secret=self.sim.client_secret, port=self.port, hook_url=hook_url)
            self.gateway = start_gateway(config_path, root / "gateway.log")
            self.health_url = f"http://{HOST}:{self.port}/healthz"
            wait_http(self.health_url, self.gateway)
            self.worker = self.gateway.worker_pid()
        except BaseException:
            self.stop()
            raise

    def play(self, receiver: ReceiverProcess, prober: Prober, calls: int, rate: float, timeout_s: float, *,
             ring_sim_s: float | None = None, name: str = "") -> Phase:
        return play_phase(self, receiver, prober, calls, rate, timeout_s, ring_sim_s=ring_sim_s, name=name)

    def stop(self) -> None:
        if self.gateway is not None:
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
    parser.add_argument("--cores", choices=(OWN, SHARED), default=None,
                        help="the gateway on a core of its own, or every process on any core (default: own "
                        "on a machine of 2 cores or more)")
    args = parser.parse_args()
    cores = Cores()
    mode = args.cores or (OWN if cores.can_own else SHARED)
    if mode == OWN and not cores.can_own:
        parser.error("--cores own needs 2 cores or more")
    try:
        phases = [int(n) for n in args.calls.split(",") if n.strip()]
    except ValueError:
        parser.error("--calls takes whole numbers, e.g. 100,1000")
    if not phases or min(phases) < 1 or args.rate <= 0 or args.time_scale <= 0 or args.burst < 0:
        parser.error("--calls, --rate and --time-scale must be positive, --burst not negative")

    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    stacks: list[Stack] = []
    receiver = ReceiverProcess()
    hook_url = receiver.url
    prober = Prober(hook_url)
    with tempfile.TemporaryDirectory(prefix="webhook-bench-") as tmp:
        root = Path(tmp)
        try:
            main_stack = Stack(root / "main", args.time_scale, hook_url)
            stacks.append(main_stack)
            idle_rss_kb = status_kb(main_stack.worker, "VmRSS")

            print("webhook_bench: delay from the PBX's Call Control event to the webhook at the receiver")
            print(machine_line())
            print(cores.describe(mode))
            print(f"load average before the run: {' '.join(f'{v:.2f}' for v in os.getloadavg())}")
            print(f"gateway: 3cx-gateway run (gunicorn, one gthread worker), [webhooks] method GET, "
                  f"[recordings] enabled = false, logging INFO; PBX: simulator in its own process, "
                  f"time scale {args.time_scale:g}x; CRM: webhook receiver in its own process")
            print(f"calls: inbound to extensions {EXTENSIONS[0]}-{EXTENSIONS[-1]} round robin, started at "
                  f"{args.rate:g}/s, ring {RING_REAL_S:g} s, talk until all are up, caller hangs up; "
                  f"3 webhooks each (ringing, hangupincoming, incoming)")
            print(f"worker RSS before the first call: {idle_rss_kb / 1024:.1f} MB\n", flush=True)

            for _ in range(20):     # the idle baseline: the receiver's own round trip, nothing else running
                prober.probe()
            receiver.collect()
            idle_probe = prober.delays_ms(receiver.arrivals, set(prober.sent))

            cores.arrange(mode, stacks, receiver)
            results = []
            for calls in phases:
                print(f"playing {calls} concurrent calls ...", flush=True)
                results.append(main_stack.play(receiver, prober, calls, args.rate, args.timeout))
            bursts = []
            compared = []       # the burst at time scale 1 with the cores shared, beside the one with a core of its own
            if args.burst:
                print(f"burst: {args.burst} calls within 1 s at time scale {args.time_scale:g} "
                      f"(ring 1 simulated s) ...", flush=True)
                bursts.append(main_stack.play(receiver, prober, args.burst, float(args.burst), args.timeout,
                                              ring_sim_s=1.0, name=f"burst {args.burst}/s, {args.time_scale:g}x"))
                print(f"burst: {args.burst} calls within 1 s at time scale 1 (a second simulator and gateway) ...",
                      flush=True)
                single = Stack(root / "scale1", 1.0, hook_url)
                stacks.append(single)
                cores.arrange(mode, stacks, receiver)
                bursts.insert(0, single.play(receiver, prober, args.burst, float(args.burst), args.timeout,
                                             ring_sim_s=1.0, name=f"burst {args.burst}/s, 1x"))
                if mode == OWN:
                    print(f"burst: {args.burst} calls within 1 s at time scale 1, every process on any core "
                          "(for comparison) ...", flush=True)
                    cores.arrange(SHARED, stacks, receiver)
                    compared.append(single.play(receiver, prober, args.burst, float(args.burst), args.timeout,
                                                ring_sim_s=1.0, name=f"burst {args.burst}/s, 1x, cores shared"))

            rows = []
            for phase in results + bursts + compared:
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
            for phase in results + bursts + compared:
                if phase.lost_by_kind:
                    print(f"{phase.name}: no webhook for these engine events: "
                          + ", ".join(f"{kind} {n}" for kind, n in sorted(phase.lost_by_kind.items())))
            print()
            rows = []
            for phase in results + bursts + compared:
                for kind in ("ringing", "start", "end"):
                    rows.append([f"{phase.name}: {kind}", *_ms(phase.delays_by_kind_ms.get(kind, []))])
            print(table(["delay by webhook (ringing; start: hangupincoming; end: incoming)", "p50 ms", "p90 ms",
                         "p99 ms", "max ms"], rows))
            print()
            rows = []
            for phase in results + bursts + compared:
                rows.append([f"{phase.name}: event -> gateway reads participant", *_ms(phase.to_read_ms)])
                rows.append([f"{phase.name}: read -> webhook arrives", *_ms(phase.read_to_arrival_ms)])
                rows.append([f"{phase.name}: baseline, direct GET to receiver", *_ms(phase.probe_ms)])
            rows.append(["idle: baseline, direct GET to receiver", *_ms(idle_probe)])
            print(table(["where the time goes (ringing + answer webhooks)", "p50 ms", "p90 ms", "p99 ms", "max ms"],
                        rows))
            print("(reads: the gateway's first GET of the participant, or of its DN's participant list, after the "
                  "event; baseline: this process's own GET to the same receiver, every "
                  f"{PROBE_INTERVAL_S * 1000:.0f} ms during the phase, send -> arrival)\n")
            rows = []
            for phase in results + bursts + compared:
                per_call = phase.cpu_s["gateway"] * 1000.0 / phase.started if phase.started else float("nan")
                rows.append([phase.name, f"{phase.seconds:.1f}",
                             *[f"{phase.cpu_s[p]:.2f} ({phase.busiest[p] * 100:.0f}%)" for p in CPU_PROCESSES],
                             f"{per_call:.2f}"])
            print(table(["CPU during the phase", "wall s", *[f"{p} s (busiest)" for p in CPU_PROCESSES],
                         "gateway ms/call"], rows))
            print("(CPU: utime + stime of /proc/PID/stat while the phase ran; gateway: its gunicorn worker; "
                  "simulator, receiver: their processes; bench: this process (prober, samplers); busiest: "
                  f"the highest share of one core over {SAMPLE_EVERY_S:g} s; gateway ms/call: the worker's CPU "
                  "per call started)\n")
            biggest = max(results, key=lambda p: p.calls)
            p99 = percentiles(biggest.delays_ms)[2] if biggest.delays_ms else float("inf")
            rss_mb = (biggest.peak_rss_kb or 0) / 1024
            print(f"target: p99 under {TARGET_P99_MS:.0f} ms at {biggest.calls} concurrent calls: "
                  f"{p99:.1f} ms -> {'met' if p99 < TARGET_P99_MS else 'MISSED'}")
            print(f"target: memory under {TARGET_RSS_MB:.0f} MB: peak RSS {rss_mb:.1f} MB -> "
                  f"{'met' if rss_mb < TARGET_RSS_MB else 'MISSED'}")
            everything = results + bursts + compared
            is_complete = all(p.matched + p.recovered_legs_unrung == p.expected for p in everything)
            lost_total = sum(p.expected - p.matched - p.recovered_legs_unrung for p in everything)
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
                for other in compared:
                    other_p99 = percentiles(other.delays_ms)[2] if other.delays_ms else float("inf")
                    print(f"for comparison: {other.name}: p99 {other_p99:.1f} ms, "
                          f"{other.expected - other.matched - other.recovered_legs_unrung} lost")
            print(f"load average after the run: {' '.join(f'{v:.2f}' for v in os.getloadavg())}")
            if not is_complete:
                for stack in stacks:
                    kept = Path(tempfile.gettempdir()) / f"webhook-bench-gateway-{stack.time_scale:g}x.log"
                    shutil.copyfile(stack.root / "gateway.log", kept)
                    print(f"the gateway's log is kept in {kept}")
            return 0
        finally:
            prober.stop()
            for stack in stacks:
                stack.stop()
            receiver.stop()


if __name__ == "__main__":
    raise SystemExit(main())
