"""The simulated PBX and the CRM's webhook receiver as child processes of a benchmark, each with its own CPU.

In production the PBX, the gateway and the CRM are separate processes (machines). A benchmark that
ran the simulator and the receiver inside its own process would, during a burst, measure its own
GIL: the arrival timestamps would wait for the simulator's request threads. So each runs in a child
process started with multiprocessing's "spawn" context (a fresh interpreter, no forked threads) and
answers the benchmark over a pipe, one request and one answer at a time:

    SimProcess(time_scale)   SimServer with `quiet_directory`, the `Emissions` subscriber on its
                             engine and the `Reads` tap on its app; plays a phase of calls at a rate
                             (`play`), tells how far it got (`progress`) and hands back the phase's
                             timestamps (`results`).
    ReceiverProcess()        gateway.webhooks.receiver.WebhookReceiver (HTTP/1.1 keep-alive), keeping
                             every arrival's time and parameters; `collect()` fetches the new ones.

Timestamps: every process stamps with `time.perf_counter()`, which on Linux is CLOCK_MONOTONIC, one
clock for every process of the machine, so a time taken in one process may be subtracted from a time
taken in another. `check_shared_clock` proves it once per child at start (the child's reading must lie
between two readings of the benchmark taken around the round trip): where the clock is not shared the
benchmark stops instead of printing wrong delays.

A child ends when asked (`stop()`), when its pipe to the benchmark closes (the benchmark exited or was
killed), and at the benchmark's exit (a daemon process). It ignores Ctrl-C, which the terminal sends to
the benchmark too: the benchmark's `finally` stops it.
"""
from __future__ import annotations

import bisect
import logging
import multiprocessing
import re
import signal
import threading
import time
import traceback
from collections import defaultdict
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from typing import Any, Callable

logger = logging.getLogger(__name__)

UPSERT, REMOVE = 0, 1   # WebSocket event_type values (V20-API-NOTES §e)
RECEIVER_PATH = "/crm/webhook"
ANSWER_TIMEOUT_S = 60.0
SAMPLE_EVERY_S = 0.05   # the simulator's count of active calls, during a phase

EventKey = tuple[int, str, str]     # (v20 call id, dn, "ringing" | "start" | "end")


# --- the parent's side: a child process and its pipe ----------------------------------------------

class ChildProcess:
    """A spawned child running `target(conn, *args)`; `ask(op, **args)` is one round trip (thread-safe)."""

    def __init__(self, name: str, target: Callable[..., None], *args: Any) -> None:
        context = multiprocessing.get_context("spawn")
        self.name = name
        self._conn, child_end = context.Pipe()
        self._lock = threading.Lock()
        self.process = context.Process(target=target, args=(child_end, *args), name=name, daemon=True)
        self.process.start()
        child_end.close()   # only the child holds it now: its exit reads as EOF here

    @property
    def pid(self) -> int:
        assert self.process.pid is not None
        return self.process.pid

    def ask(self, op: str, timeout_s: float = ANSWER_TIMEOUT_S, **args: Any) -> Any:
        with self._lock:
            try:
                self._conn.send((op, args))
                if not self._conn.poll(timeout_s):
                    raise SystemExit(f"{self.name} did not answer {op!r} within {timeout_s:.0f} s")
                status, value = self._conn.recv()
            except (EOFError, OSError):
                self.process.join(1)
                raise SystemExit(f"{self.name} exited (code {self.process.exitcode}) during {op!r}") from None
        if status != "ok":
            raise SystemExit(f"{self.name} failed on {op!r}:\n{value}")
        return value

    def check_clock(self) -> None:
        """Stop the benchmark unless the child's perf_counter is this process's (see the module docstring)."""
        for _ in range(3):
            before = time.perf_counter()
            theirs = self.ask("clock")
            check_shared_clock(self.name, before, theirs, time.perf_counter())

    def stop(self, timeout_s: float = 15.0) -> None:
        """Ask the child to end (no answer awaited: a Ctrl-C may have cut a round trip short), then make sure."""
        try:
            self._conn.send(("stop", {}))
        except OSError:
            pass
        self.process.join(timeout_s)
        if self.process.is_alive():
            self.process.terminate()
            self.process.join(5)
        self._conn.close()


def check_shared_clock(name: str, before: float, theirs: float, after: float) -> None:
    """The child's perf_counter reading `theirs` must lie between the parent's `before` and `after`."""
    if not before <= theirs <= after:
        raise SystemExit(
            f"{name}: time.perf_counter() is not one clock shared by the processes of this machine "
            f"(ours {before:.6f} .. {after:.6f} around the round trip, the child's {theirs:.6f}); "
            "delays measured across processes would be wrong, so the benchmark stops")


# --- the child's side --------------------------------------------------------------------------

def _serve(conn: Connection, handle: Callable[[str, dict[str, Any]], Any]) -> None:
    """Answer requests until "stop" or until the benchmark's end of the pipe closes."""
    while True:
        try:
            op, args = conn.recv()
        except (EOFError, OSError):
            return
        if op == "stop":
            return
        try:
            answer: tuple[str, Any] = ("ok", time.perf_counter() if op == "clock" else handle(op, args))
        except Exception:  # noqa: BLE001 - the benchmark prints it and stops
            answer = ("error", traceback.format_exc())
        try:
            conn.send(answer)
        except OSError:
            return


def _child_setup() -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)    # the benchmark gets Ctrl-C too and stops us
    logging.getLogger("werkzeug").setLevel(logging.ERROR)


# --- the webhook receiver ----------------------------------------------------------------------

@dataclass
class Arrival:
    """One request at the receiver: `at` is its time.perf_counter() on arrival, `params` its parameters."""

    at: float
    params: dict[str, str]


class ReceiverProcess(ChildProcess):
    """The CRM's webhook receiver in its own process; `arrivals` is what `collect()` has fetched so far."""

    def __init__(self) -> None:
        super().__init__("webhook receiver", _run_receiver)
        self.url: str = self.ask("url")
        self.check_clock()
        self.arrivals: list[Arrival] = []

    def collect(self) -> list[Arrival]:
        """Fetch the arrivals since the last call (appended to `arrivals`) and return them."""
        new = [Arrival(at, params) for at, params in self.ask("arrivals", start=len(self.arrivals))]
        self.arrivals.extend(new)
        return new


def _run_receiver(conn: Connection) -> None:
    _child_setup()
    from gateway.webhooks.receiver import Webhook, WebhookReceiver

    arrivals: list[tuple[float, dict[str, Any]]] = []
    lock = threading.Lock()

    def arrive(webhook: Webhook) -> None:
        with lock:
            arrivals.append((webhook.at, webhook.params))

    def handle(op: str, args: dict[str, Any]) -> Any:
        if op == "url":
            return server.url
        if op == "arrivals":
            with lock:
                return arrivals[args["start"]:]
        raise ValueError(f"unknown request {op!r}")

    server = WebhookReceiver(arrive, path=RECEIVER_PATH, keep_alive=True, name="bench-receiver")
    try:
        _serve(conn, handle)
    finally:
        server.stop()


# --- the simulator -----------------------------------------------------------------------------

@dataclass
class SimProgress:
    """How far the simulator is with the phase it plays."""

    started: int = 0                    # calls started so far
    failed: int = 0                     # calls that did not start
    errors: list[str] = field(default_factory=list)     # why, since the previous progress
    done: int = 0                       # started calls whose scenario has finished
    is_ramped: bool = False             # every call of the phase was started (or failed to)
    call_ids: list[int] | None = None   # v20 call ids of the started calls, once ramped
    history: list[tuple[int, int]] = field(default_factory=list)   # new (HistoryCall.number, call id)

    @property
    def is_done(self) -> bool:
        return self.is_ramped and self.done == self.started


@dataclass
class SimResults:
    """A phase's timestamps (time.perf_counter() of the simulator's process) for its calls."""

    emitted: dict[EventKey, float]                    # when the engine emitted each participant event
    participant_of: dict[tuple[int, str], int]        # (call id, dn) -> participant id
    reads: dict[tuple[str, int], list[float]]         # (dn, participant id) -> the gateway's GETs of it, sorted
    list_reads: dict[str, list[float]]                # dn -> the gateway's GETs of its participant list, sorted
    peak_calls: int                                   # most calls active at once, sampled every 0.05 s

    def first_read(self, dn: str, participant_id: int, since: float) -> float | None:
        """When the gateway first read the participant (alone or in its DN's list) at or after `since`."""
        found = []
        for times in (self.reads.get((dn, participant_id), []), self.list_reads.get(dn, [])):
            at = bisect.bisect_left(times, since)
            if at < len(times):
                found.append(times[at])
        return min(found, default=None)


class SimProcess(ChildProcess):
    """The simulated PBX at `time_scale` in its own process (see the module docstring)."""

    def __init__(self, time_scale: float) -> None:
        super().__init__(f"simulator ({time_scale:g}x)", _run_simulator, time_scale)
        hello = self.ask("hello")
        self.url: str = hello["url"]
        self.client_id: str = hello["client_id"]
        self.client_secret: str = hello["client_secret"]
        self.time_scale = time_scale
        self.history: dict[int, int] = {}   # HistoryCall.number -> v20 call id, for calls reported from history
        self.check_clock()

    def play(self, calls: int, rate: float, *, did: str, extensions: list[str], ring_sim_s: float,
             talk_sim_s: float) -> None:
        """Start playing a phase and return at once: `calls` inbound calls to `did`, started at `rate` per
        second, call n to extension `extensions[n % len(extensions)]`, which rings `ring_sim_s`, answers,
        talks `talk_sim_s` (simulated seconds) and the caller hangs up."""
        self.ask("play", calls=calls, rate=rate, did=did, extensions=extensions, ring_sim_s=ring_sim_s,
                 talk_sim_s=talk_sim_s)

    def progress(self) -> SimProgress:
        """The phase's progress; its new history numbers are also added to `history`."""
        progress: SimProgress = self.ask("progress", history_start=len(self.history))
        self.history.update(progress.history)
        return progress

    def results(self, call_ids: list[int]) -> SimResults:
        """End the phase's sampling; the timestamps of calls `call_ids`."""
        results: SimResults = self.ask("results", call_ids=call_ids)
        return results


class Emissions:
    """Subscribes to the engine: (v20 call id, dn, kind) -> when the engine emitted it."""

    def __init__(self, engine: Any) -> None:
        self._engine = engine
        self.lock = threading.Lock()
        self.at: dict[EventKey, float] = {}
        self.participant_of: dict[tuple[int, str], int] = {}
        self.call_of: dict[tuple[str, int], int] = {}       # (dn, participant id) -> call id
        self._call_of_participant: dict[int, int] = {}

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
            with self.lock:
                self._call_of_participant[participant_id] = callid
                self.participant_of[(callid, dn)] = participant_id
                self.call_of[(dn, participant_id)] = callid
        elif event_type == REMOVE:
            with self.lock:
                callid = self._call_of_participant.get(participant_id)
            kind = "end"
        else:
            return
        if kind is None or callid is None:
            return
        with self.lock:
            self.at.setdefault((callid, dn, kind), now)


class Reads:
    """Installed on the simulator's app: when the gateway read each participant (after an Upsert), alone
    (`GET /callcontrol/{dn}/participants/{id}`) or in its DN's list (`GET /callcontrol/{dn}/participants`)."""

    PATH = re.compile(r"^/callcontrol/([^/]+)/participants(?:/(\d+))?$")

    def __init__(self) -> None:
        self.at: dict[tuple[str, int], list[float]] = defaultdict(list)
        self.lists_at: dict[str, list[float]] = defaultdict(list)
        self.lock = threading.Lock()

    def before_request(self) -> None:
        import flask
        now = time.perf_counter()
        match = self.PATH.match(flask.request.path)
        if match and flask.request.method == "GET":
            with self.lock:
                if match.group(2) is None:
                    self.lists_at[match.group(1)].append(now)
                else:
                    self.at[(match.group(1), int(match.group(2)))].append(now)


class Simulation:
    """The simulator's side of SimProcess: the server, its taps and the phase being played."""

    def __init__(self, time_scale: float) -> None:
        from bench.common import quiet_directory
        from gateway.sim.server import SimServer

        self.sim = SimServer(time_scale=time_scale, directory_factory=quiet_directory)
        self.reads = Reads()
        self.sim.app.before_request(self.reads.before_request)
        self.sim.start()
        self.emissions = Emissions(self.sim.engine)
        self.sim.engine.subscribe(self.emissions)
        self._lock = threading.Lock()
        self._played: list[Any] = []
        self._errors: list[str] = []
        self._errors_told = 0
        self._failed = 0
        self._is_ramped = True
        self._peak_calls = 0
        self._sampling = threading.Event()
        self._stop = threading.Event()
        self._log_rows = 0
        self._history: list[tuple[int, int]] = []
        self._sampler = threading.Thread(target=self._sample, name="bench-sampler", daemon=True)
        self._sampler.start()

    def stop(self) -> None:
        self._stop.set()
        self._sampler.join(1)
        self.sim.stop()

    def handle(self, op: str, args: dict[str, Any]) -> Any:
        if op == "hello":
            return {"url": self.sim.url, "client_id": self.sim.client_id, "client_secret": self.sim.client_secret}
        if op == "play":
            return self._play(**args)
        if op == "progress":
            return self._progress(**args)
        if op == "results":
            return self._results(**args)
        raise ValueError(f"unknown request {op!r}")

    def _play(self, calls: int, rate: float, did: str, extensions: list[str], ring_sim_s: float,
              talk_sim_s: float) -> None:
        with self._lock:
            if not self._is_ramped:
                raise RuntimeError("a phase is still starting its calls")
            self._played, self._errors, self._errors_told, self._failed = [], [], 0, 0
            self._is_ramped = False
            self._peak_calls = 0
        self._sampling.set()
        threading.Thread(target=self._ramp, args=(calls, rate, did, extensions, ring_sim_s, talk_sim_s),
                         name="bench-player", daemon=True).start()

    def _ramp(self, calls: int, rate: float, did: str, extensions: list[str], ring_sim_s: float,
              talk_sim_s: float) -> None:
        from gateway.sim.scenarios import ScenarioError, inbound

        began = time.perf_counter()
        try:
            for n in range(calls):
                wait_s = began + n / rate - time.perf_counter()
                if wait_s > 0:
                    time.sleep(wait_s)
                ext = extensions[n % len(extensions)]
                scenario = (inbound(f"+42077{n:07d}", did=did).to_extension(ext)
                            .rings(ring_sim_s).answered_by(ext).talk(talk_sim_s).caller_hangs_up())
                try:
                    played = self.sim.play(scenario, wait=False)
                except ScenarioError as error:
                    with self._lock:
                        self._failed += 1
                        self._errors.append(f"call {n} did not start: {error}")
                    continue
                with self._lock:
                    self._played.append(played)
        finally:
            with self._lock:
                self._is_ramped = True

    def _sample(self) -> None:
        """The peak of active calls while a phase is on (from `play` to `results`)."""
        while not self._stop.wait(SAMPLE_EVERY_S):
            if self._sampling.is_set():
                active = self.sim.engine.calls_active()
                with self._lock:
                    self._peak_calls = max(self._peak_calls, active)

    def _progress(self, history_start: int) -> SimProgress:
        with self._lock:
            played = list(self._played)
            errors = self._errors[self._errors_told:]
            self._errors_told = len(self._errors)
            progress = SimProgress(started=len(played), failed=self._failed, errors=errors,
                                   is_ramped=self._is_ramped)
        progress.done = sum(1 for call in played if call.done.is_set())
        if progress.is_ramped:
            progress.call_ids = [call.call_id for call in played]
        self._map_history()
        progress.history = self._history[history_start:]
        return progress

    def _map_history(self) -> None:
        """Number the call-log rows written since the last look (the log only grows): HistoryCall.number
        is what the gateway puts in the call-link id of a call it reports from the call history."""
        from gateway.live.history import HistoryCall

        directory = self.sim.directory
        with directory.call_log_lock:
            rows = directory.call_log[self._log_rows:]
        self._log_rows += len(rows)
        with self.emissions.lock:
            found = [(row.main_id, self.emissions.call_of.get((row.destination_dn, row.dst_participant)))
                     for row in rows]
        self._history.extend((HistoryCall(main_id, ()).number, callid) for main_id, callid in found
                             if callid is not None)

    def _results(self, call_ids: list[int]) -> SimResults:
        self._sampling.clear()
        wanted = set(call_ids)
        with self.emissions.lock:
            emitted = {key: at for key, at in self.emissions.at.items() if key[0] in wanted}
            participant_of = {key: pid for key, pid in self.emissions.participant_of.items() if key[0] in wanted}
        legs = {(dn, pid) for (_call, dn), pid in participant_of.items()}
        dns = {dn for dn, _pid in legs}
        since = min(emitted.values(), default=0.0)
        with self.reads.lock:
            reads = {leg: sorted(times) for leg, times in self.reads.at.items() if leg in legs}
            list_reads = {dn: sorted(t for t in times if t >= since) for dn, times in self.reads.lists_at.items()
                          if dn in dns}
        with self._lock:
            peak = self._peak_calls
        return SimResults(emitted, participant_of, reads, list_reads, peak)


def _run_simulator(conn: Connection, time_scale: float) -> None:
    _child_setup()
    simulation = Simulation(time_scale)
    try:
        _serve(conn, simulation.handle)
    finally:
        simulation.stop()
