"""The watcher: Call Control events in, the live model and webhook events out.

The event stream (`EventStream.set_handlers`) hands it every message (`submit`) and every
(re)connection, which brings a resync that diffs `GET /callcontrol` against the table
and feeds the differences to the same `machine.advance`, so an end missed while disconnected still
produces its webhook. Each step's webhook events and the call's new state are committed to SQLite
together (live/store.py) before the table changes; at start the stored calls are loaded, so calls
in progress keep their ids across a restart. A call whose last leg went is settled by `tick()`
once `[webhooks] end_grace_s` has passed (see live/machine.py).

Bursts (read in parallel, apply in order): the stream's thread only takes each message in
(`submit`) and starts its participant read in a bounded pool (live/reads.py). The "watcher" thread
applies the messages in the order they arrived, each once its read is back, and writes the steps
of every run of ready messages in one transaction (cut after BATCH_S of applying, so the first
webhooks of a burst leave while the rest is applied); it is the only thread that writes to the table
(resyncs and grace-period ticks run there too). `handle()` does the same for one message, at once.

A participant gone before it could be read is still a leg that existed (`UnreadLeg`): counted,
and, with gap recovery, reconciled from the call history: a known call that lost a reading is
handed to the recovery at its end instead of being ended as missed, and a leg of a call never read
at all makes the recovery look the call up (and send it, marked recovered, if nobody reported it).
"""
from __future__ import annotations

import bisect
import logging
import re
import threading
import time
from collections import deque
from concurrent.futures import Future
from contextlib import contextmanager
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any, Callable, Iterator

from gateway.clock import Clock
from gateway.config import Config
from gateway.live import v20
from gateway.live.arrivals import arrival_of, read_active_calls
from gateway.live.ids import call_link_id
from gateway.live.webhooks import CallEnded, WebhookEvent
from gateway.live.machine import GraceOver, LegGone, LegSeen, MachineEvent, Rules, advance
from gateway.live.model import ArrivalClaims, Call, CallTable, Leg
from gateway.live.ports import (CallEndedHook, CallStates, EntityLister, EventSource, GapWatch, WebhookSink,
                               tell_call_ended)
from gateway.live.reads import ParticipantReads, ReadPoolStatus
from gateway.live.recorder import Capture, Recorder
from gateway.live.store import CallStore, call_json
from gateway.live.unknowns import Unknowns
from gateway.pbx.errors import PbxError, PbxNotFound

logger = logging.getLogger(__name__)

# WebSocket event_type values (V20-API-NOTES §e): 0 Upsert, 1 Remove, 2 DTMF, 4 Response.
UPSERT = 0
REMOVE = 1

DID_REFRESH_S = 60.0
DID_CONDITION = "BasedOnDID"
BATCH_MAX = 500             # messages applied (and committed) together at most
BATCH_S = 0.05              # ... and no more once applying them took this long: their webhooks wait for the commit
TICK_S = 0.25               # how often the "watcher" thread looks for grace periods that are over
UNREAD_KEEP_S = 600.0       # unread legs of no known call are kept this long for the call's end
RESYNC_RETRY_S = 2.0        # a resync asked for by a failed read is tried again this often while it fails


class DidNames:
    """DID number → DID rule name (XAPI `/InboundRules`: RuleName where Data is the DID).

    Only rules whose `Condition` is `BasedOnDID` name DIDs: a `BasedOnCallerID` rule's Data is a
    caller's number (official XAPI spec, `Pbx.InboundRule.Condition`, `Pbx.RuleConditionType`).

    Cached; a number not in the cache reloads the rules at most once every `refresh_s`. A number
    no rule names stays the number itself (legacy `did` falls back to it).
    """

    def __init__(self, xapi: EntityLister, *, clock: Clock, refresh_s: float = DID_REFRESH_S) -> None:
        self._xapi = xapi
        self._clock = clock
        self._refresh_s = refresh_s
        self._names: dict[str, str] = {}
        self._loaded_at: float | None = None

    def name_of(self, did: str) -> str:
        if not did:
            return ""
        name = self._match(did)
        if name is None and (self._loaded_at is None or self._clock.time() - self._loaded_at >= self._refresh_s):
            self._load()
            name = self._match(did)
        return name or did

    def _match(self, did: str) -> str | None:
        if did in self._names:
            return self._names[did]
        digits = _digits(did)
        return next((name for data, name in self._names.items() if digits and _digits(data) == digits), None)

    def _load(self) -> None:
        self._loaded_at = self._clock.time()
        try:
            rules = self._xapi.list("InboundRules")
        except PbxError as exc:
            logger.warning("cannot read the DID rules (/InboundRules): %s; webhooks show DID numbers", exc)
            return
        self._names = {str(rule.get("Data")): str(rule.get("RuleName") or rule.get("Data"))
                       for rule in rules if rule.get("Data") and rule.get("Condition") == DID_CONDITION}
        logger.info("DID rules loaded: %d", len(self._names))


@dataclass(frozen=True)
class WatcherStatus:
    """The watcher's state for /healthz, /metrics and LiveView."""

    connected: bool
    synced: bool
    last_event_age_s: float | None   # None before the first event
    calls: int                       # calls in the live model
    events_total: int                # Call Control messages handled since start
    lag_s: float = 0.0               # age of the oldest message taken in and not yet applied
    backlog: int = 0                 # messages taken in and not yet applied
    reads: ReadPoolStatus | None = None   # the participant read pool
    unread_legs: int = 0             # participants gone before they could be read, since start


@dataclass(frozen=True)
class UnreadLeg:
    """A participant gone before its read: what its event told. `v20_call_id` None: not known."""

    dn: str
    participant_id: int
    at: datetime
    v20_call_id: int | None


@dataclass
class _Parsed:
    """A message the watcher acts on: an Upsert or Remove of a participant."""

    event_type: int
    dn: str
    participant_id: int
    attached: Any


@dataclass(frozen=True)
class _Step:
    """One call step to write: its webhook events and the call's new state."""

    v20_call_id: int
    call: Call
    webhooks: list[WebhookEvent]
    ends: list[CallEnded]
    state: str | None = None        # call_json(call), for the store and the recovery's note alike


@dataclass
class _Queued:
    """A message taken in (or a job for the "watcher" thread), waiting to be applied in order."""

    at: float                                   # clock time it was taken in
    parsed: _Parsed | None = None
    reading: Future[dict[str, Any]] | None = None
    job: Callable[[], Any] | None = None
    done: Future[Any] | None = None


def _leg_time(leg: UnreadLeg) -> datetime:
    return leg.at


def _digits(number: str) -> str:
    return re.sub(r"\D", "", number)


class Watcher:
    """Keeps `table` in step with the PBX and writes webhook events to `outbox`.

    Only the event stream's thread (or a test calling `handle`) writes to the table. `on_call_ended
    (call, ended_events)` runs after a call completely ends, with the CallEnded events of its
    answered legs (the recordings pipeline uses it). With a `store` (the service's), each step is
    committed there with its webhook events and the stored calls are loaded at start; without one
    (capture, replay) webhook events go to `outbox` and nothing outlives the process.
    """

    def __init__(self, stream: EventSource, callcontrol: CallStates, xapi: EntityLister, table: CallTable,
                 outbox: WebhookSink, config: Config, *,
                 clock: Clock, on_call_ended: CallEndedHook | None = None,
                 unknowns: Unknowns | None = None, recorder: Recorder | None = None,
                 store: CallStore | None = None, arrival_claims: ArrivalClaims | None = None,
                 recovery: GapWatch | None = None) -> None:
        self.clock = clock
        self.unknowns = unknowns if unknowns is not None else Unknowns()   # what v20.py has no reading for
        self.recorder = recorder if recorder is not None else Recorder(clock)   # copies traffic to captures
        self._stream = stream
        self._callcontrol = callcontrol
        self._xapi = xapi
        self._table = table
        self._outbox = outbox
        self._store = store                 # None: calls in progress are not kept across a restart
        self._rules = Rules.from_config(config)
        self._on_call_ended = on_call_ended
        self.arrival_claims = arrival_claims or ArrivalClaims()
        self._recovery = recovery               # gateway.live.recovery.Recovery: gaps closed from call history
        self._dids = DidNames(xapi, clock=clock)
        self._lock = threading.RLock()          # handle() and resync() one at a time
        self._dn_kinds: dict[str, str] = {}
        self._answered_ends: dict[int, list[CallEnded]] = {}
        self._is_connected = False
        self._is_synced = False
        self._is_stopping = False
        self._last_event_at: float | None = None
        self._events_total = 0
        self._collections = frozenset({"participants"})   # the entities handled (Upsert and Remove)
        # Bursts: messages taken in by the stream's thread, applied in order by the "watcher" thread.
        self._reads = ParticipantReads(callcontrol, workers=config.pbx.read_workers)
        self._queue: deque[_Queued] = deque()
        self._queue_cond = threading.Condition()
        self._intake_lock = threading.Lock()      # capture(): no message taken in while it starts
        self._applier: threading.Thread | None = None
        self._stop_applying = threading.Event()
        # The steps of the batch being applied: writes, the table's calls before it, what follows the commit.
        self._steps_to_write: list[_Step] | None = None
        self._touched: dict[int, Call | None] | None = None
        self._after: list[Callable[[], None]] | None = None
        # Participants gone before their read: counted; with recovery, reconciled from the call history.
        self._unread_total = 0
        self._unread_calls: set[int] = set()          # known calls that lost a reading
        self._unread_legs: list[UnreadLeg] = []       # legs of no known call (kept UNREAD_KEEP_S)
        self._legs_seen: dict[int, dict[tuple[str, int], Leg]] = {}   # every leg of each call, last reading
        self._journal: dict[int, list[str]] = {}    # "event:id" of each call's webhooks, for its end's line
        self._resync_wanted = False         # a participant read failed: tick() resyncs
        self._resync_tried_at = float("-inf")

    # --- lifecycle -------------------------------------------------------------------------------

    def start(self) -> None:
        """Load the stored calls in progress, register with the event stream and start it (its
        thread runs every handler from then on)."""
        self._is_stopping = False
        self._restore()
        self._stop_applying.clear()
        self._applier = threading.Thread(target=self._apply_loop, name="watcher", daemon=True)
        self._applier.start()
        self._stream.set_handlers(self.submit, self._on_connect, self._on_disconnect, on_tick=self._tick_soon)
        self._stream.start()

    def _restore(self) -> None:
        """Put the calls in progress stored by the previous run back into the table (before the
        stream's thread starts, so the watcher is still the only writer); the first resync then
        diffs them against the PBX."""
        if self._store is None:
            return
        with self._lock:
            try:
                restored = self._store.load()
            except Exception:
                logger.exception("cannot read the calls in progress stored by the previous run; the resync "
                                 "finds them again, as new calls")
                return
            for stored in restored:
                self._table.put(stored.call)
                if stored.answered_ends:
                    self._answered_ends[stored.call.v20_call_id] = list(stored.answered_ends)
            if len(self._table):
                logger.info("restored %d calls in progress from the previous run", len(self._table))

    def stop(self, timeout_s: float) -> None:
        """Stop the stream, then apply what it took in (reads under way finish) and stop applying."""
        self._is_stopping = True
        self._stream.stop(timeout_s)
        self._stop_applying.set()
        with self._queue_cond:
            self._queue_cond.notify_all()
        if self._applier is not None:
            self._applier.join(timeout_s)
            if self._applier.is_alive():
                logger.warning("the watcher did not apply its last %d messages within %.1f s",
                               len(self._queue), timeout_s)
            self._applier = None
        self._reads.close()
        self._is_connected = False
        self._is_synced = False

    def capture(self, snapshot: Callable[[], list[dict[str, Any]]]) -> Capture:
        """Open a capture that starts with `snapshot()`'s records, taken while no message is waiting
        or being applied (every message before it is in the snapshot's state, every later one in
        the capture)."""
        with self._intake_lock:
            self._drain()
            with self._lock:
                return self.recorder.start(snapshot())

    def status(self) -> WatcherStatus:
        """Connection, sync state, event age, backlog and counts, for health checks and metrics."""
        now = self.clock.time()
        age = None if self._last_event_at is None else max(0.0, now - self._last_event_at)
        with self._queue_cond:
            oldest = next((item.at for item in self._queue if item.parsed is not None), None)
            backlog = sum(1 for item in self._queue if item.parsed is not None)
        return WatcherStatus(connected=self._is_connected, synced=self._is_synced, last_event_age_s=age,
                             calls=len(self._table), events_total=self._events_total,
                             lag_s=0.0 if oldest is None else round(max(0.0, now - oldest), 3), backlog=backlog,
                             reads=self._reads.status(), unread_legs=self._unread_total)

    def applied_until(self) -> datetime | None:
        """When the oldest message not yet applied was taken in; None when none waits."""
        with self._queue_cond:
            oldest = next((item.at for item in self._queue if item.parsed is not None), None)
        if oldest is None:
            return None
        return self.clock.now() - timedelta(seconds=max(0.0, self.clock.time() - oldest))

    def link_id(self, v20_call_id: int, link: int) -> str:
        """The call-link id call `v20_call_id` has at `link`; fixes its arrival now if not yet seen."""
        return call_link_id(self.arrival_claims.claim(v20_call_id, self.clock.now()), v20_call_id, link,
                            self._rules.timezone)
    def monitored_dns(self) -> frozenset[str]:
        """The DNs the API client monitors, as the last resync found them."""
        return frozenset(self._dn_kinds)

    # --- events ----------------------------------------------------------------------------------

    def handle(self, message: dict[str, Any]) -> None:
        """Apply one WebSocket message (`{"sequence", "event": {"event_type", "entity", ...}}`).

        Synchronous (tests, replay): the participant is read here. A failure is logged and the
        next message is handled as usual.
        """
        parsed = self._take_in(message)
        if parsed is None:
            return
        reading: Future[dict[str, Any]] = Future()
        if parsed.event_type == UPSERT:
            try:
                reading.set_result(self._callcontrol.participant(parsed.dn, parsed.participant_id))
            except Exception as exc:
                reading.set_exception(exc)
        with self._lock, self._steps():
            self._apply(parsed, reading if parsed.event_type == UPSERT else None, message)

    def submit(self, message: dict[str, Any]) -> None:
        """Take one message in (the stream's thread): start its read, queue it for the "watcher" thread."""
        with self._intake_lock:
            parsed = self._take_in(message)
            if parsed is None:
                return
            reading = self._reads.read(parsed.dn, parsed.participant_id) if parsed.event_type == UPSERT else None
            with self._queue_cond:
                self._queue.append(_Queued(self.clock.time(), parsed, reading))
                self._queue_cond.notify_all()

    def _take_in(self, message: dict[str, Any]) -> _Parsed | None:
        """Record and count a message; what it is about, or None (logged) when nothing handles it."""
        try:
            self.recorder.message(message)
            self._last_event_at = self.clock.time()
            self._events_total += 1
            event = message.get("event") if isinstance(message, dict) else None
            if not isinstance(event, dict):
                logger.warning("ignoring a message without an event: %.200r", message)
                return None
            entity = str(event.get("entity") or "")
            parts = entity.strip("/").split("/")
            if len(parts) < 3 or not str(event.get("event_type", "")).isdigit():
                logger.debug("ignoring event %s on %r", event.get("event_type"), entity)
                return None
            dn, collection, item = parts[-3:]
            event_type = int(event["event_type"])
            if event_type not in (UPSERT, REMOVE) or collection not in self._collections or not item.isdigit():
                logger.debug("no handler for event %s on %s", event.get("event_type"), entity)
                if event_type in (UPSERT, REMOVE):
                    self.unknowns.note("event", f"event_type {event['event_type']} on {collection}",
                                       where=entity, reading="ignored")
                return None
            return _Parsed(event_type, dn, int(item), event.get("attached_data"))
        except Exception:
            logger.exception("taking in message %.200r failed; carrying on", message)
            return None

    def _apply(self, parsed: _Parsed, reading: Future[dict[str, Any]] | None, message: Any) -> None:
        """One message, in arrival order (the caller holds the lock and a `_steps()` batch)."""
        try:
            if parsed.event_type == UPSERT and reading is not None:
                self._on_upsert(parsed, reading)
            else:
                self._on_remove(parsed.dn, parsed.participant_id)
        except Exception:
            logger.exception("handling message %.200r failed; carrying on", message)

    def _on_upsert(self, parsed: _Parsed, reading: Future[dict[str, Any]]) -> None:
        # An Upsert carries no state: read the participant (V20-API-NOTES §e). A 404 means it was
        # removed meanwhile: what the read would have shown is lost, not the leg (see _unread).
        dn, participant_id = parsed.dn, parsed.participant_id
        try:
            participant = reading.result()
        except PbxNotFound:
            self._unread(parsed)
            return
        except PbxError as exc:
            # Not gone, just not read (the PBX failed even after its retries): what the event
            # changed is read again with every other participant, by a resync (see tick()).
            logger.warning("participant %s/%s could not be read (%s); the PBX's state is read again in full",
                           dn, participant_id, exc)
            self._resync_wanted = True
            return
        self._seen(self._leg(participant, dn, participant_id))

    def _unread(self, parsed: _Parsed) -> None:
        """A participant gone before its read. A leg of a known call ends as removed (its Remove
        follows); the call is marked, so that its end is reconciled from the call history. A leg of
        no known call is kept with what its event told, for the recovery to look its call up."""
        dn, participant_id = parsed.dn, parsed.participant_id
        self._unread_total += 1
        cached = self._table.find_leg(dn, participant_id)
        call_id = cached.v20_call_id if cached is not None else v20.call_id_of_event(parsed.attached)
        now = self.clock.now()
        if call_id is not None and self._table.get(call_id) is not None:
            logger.info("participant %s/%s of call %s gone before it could be read; its end is reconciled "
                        "from the call history", dn, participant_id, call_id)
            self._unread_calls.add(call_id)
        else:
            logger.info("participant %s/%s gone before it could be read; its call is looked up in the call "
                        "history", dn, participant_id)
            leg = UnreadLeg(dn, participant_id, now, call_id)
            # In time order (taken in now): the expired ones are at the front.
            fresh = bisect.bisect_left(self._unread_legs, now - timedelta(seconds=UNREAD_KEEP_S), key=_leg_time)
            del self._unread_legs[:fresh]
            self._unread_legs.append(leg)
            if self._recovery is not None:
                self._later(lambda: self._recovery.unread(leg.dn, leg.at) if self._recovery else None)
        if cached is not None:
            self._feed(cached.v20_call_id, LegGone(dn, participant_id, now))

    def _on_remove(self, dn: str, participant_id: int) -> None:
        cached = self._table.find_leg(dn, participant_id)
        if cached is None:
            logger.debug("remove of unknown participant %s/%s", dn, participant_id)
            return
        self._feed(cached.v20_call_id, LegGone(dn, participant_id, self.clock.now()))

    # --- the "watcher" thread: messages applied in arrival order, batched ----------------------

    def _apply_loop(self) -> None:
        while True:
            with self._queue_cond:
                while not self._queue and not self._stop_applying.is_set():
                    if not self._queue_cond.wait(TICK_S):
                        break
                if not self._queue:
                    if self._stop_applying.is_set():
                        return
                    head = None
                else:
                    head = self._queue[0]
            if head is None:
                self.tick()
                continue
            try:
                self._apply_ready(head)
            except Exception:
                logger.exception("applying call events failed; carrying on")

    def _apply_ready(self, head: _Queued) -> None:
        """Apply the head of the queue (waiting for its read), then every message after it whose
        read is back, in one transaction; or run the head's job alone."""
        if head.job is not None:
            with self._queue_cond:
                self._queue.popleft()
                self._queue_cond.notify_all()
            assert head.done is not None
            try:
                head.done.set_result(head.job())
            except BaseException as exc:
                head.done.set_exception(exc)
            return
        if head.reading is not None:
            head.reading.exception()          # waits; the client's timeout bounds it
        try:
            with self._lock, self._steps():
                applied = 0
                budget_ends = time.monotonic() + BATCH_S
                while applied < BATCH_MAX and (applied == 0 or time.monotonic() < budget_ends):
                    with self._queue_cond:
                        item = self._queue[0] if self._queue else None
                        if item is None or item.job is not None or (item.reading is not None
                                                                      and not item.reading.done()):
                            break
                        self._queue.popleft()
                    assert item.parsed is not None
                    self._apply(item.parsed, item.reading, item.parsed)
                    applied += 1
        finally:
            with self._queue_cond:
                self._queue_cond.notify_all()
        self.tick()

    def _in_applier(self, job: Callable[[], Any]) -> Any:
        """Run `job` in the "watcher" thread after every message taken in before it; its result
        (or exception). Runs it here when that thread is not running (tests drive handlers)."""
        applier = self._applier
        if applier is None or not applier.is_alive() or threading.current_thread() is applier:
            return job()
        done: Future[Any] = Future()
        with self._queue_cond:
            self._queue.append(_Queued(self.clock.time(), job=job, done=done))
            self._queue_cond.notify_all()
        return done.result()

    def _drain(self) -> None:
        """Wait until every message taken in so far is applied."""
        self._in_applier(lambda: None)

    def _tick_soon(self) -> None:
        """The stream's tick: the "watcher" thread ticks by itself (TICK_S) when idle and after each batch."""
        if self._applier is None:
            self.tick()

    @contextmanager
    def _steps(self) -> Iterator[None]:
        """A batch: the steps inside are written at its end in one transaction, which is held only
        for the writes (the senders share the file's write lock). The table shows the steps at
        once; the effects that must follow the commit (recorder, recovery notes, call-ended
        callbacks) run after it. When the commit fails the table is put back as it was."""
        if self._after is not None:       # nested (a resync's steps inside a batch)
            yield
            return
        after: list[Callable[[], None]] = []
        touched: dict[int, Call | None] = {}
        steps: list[_Step] = []
        self._after, self._touched, self._steps_to_write = after, touched, steps
        try:
            yield
            if steps and self._store is not None:
                with self._store.batch() as batch:
                    for step in steps:
                        batch.step(step.v20_call_id, step.call, step.webhooks, step.ends, state=step.state)
        except BaseException:
            for v20_call_id, before in touched.items():
                self._table.restore(v20_call_id, before)
            raise
        finally:
            self._touched = self._after = self._steps_to_write = None
        for effect in after:
            try:
                effect()
            except Exception:
                logger.exception("an effect of a committed call step failed; carrying on")

    def _later(self, effect: Callable[[], None]) -> None:
        """Run `effect` after the current batch commits (at once outside a batch)."""
        if self._after is not None:
            self._after.append(effect)
        else:
            effect()

    def _seen(self, leg: Leg, *, is_resync: bool = False, arrived_at: datetime | None = None) -> None:
        cached = self._table.find_leg(leg.dn, leg.participant_id)
        if cached is not None and cached.v20_call_id != leg.v20_call_id:
            self._feed(cached.v20_call_id, LegGone(leg.dn, leg.participant_id, self.clock.now(), is_resync=is_resync))
        did_name = self._dids.name_of(leg.did) if leg.did else ""
        if self._table.get(leg.v20_call_id) is None:
            # A new call: makecall may have fixed its arrival already (ArrivalClaims); else this fixes it.
            arrived_at = self.arrival_claims.claim(leg.v20_call_id, arrived_at or self.clock.now())
        self._feed(leg.v20_call_id, LegSeen(leg, self.clock.now(), did_name=did_name, is_resync=is_resync,
                                            arrived_at=arrived_at))

    def _arrivals(self, legs: list[Leg]) -> dict[int, datetime]:
        """v20 call id -> arrival time, for the calls of `legs` the table does not know (read from
        XAPI /ActiveCalls once, only when there are such calls; see live/arrivals.py)."""
        unknown: dict[int, list[Leg]] = {}
        for leg in legs:
            if self._table.get(leg.v20_call_id) is None:
                unknown.setdefault(leg.v20_call_id, []).append(leg)
        if not unknown:
            return {}
        asked_at = self.clock.now()
        active = read_active_calls(self._xapi)
        # The rows' ServerNow was taken while the request was under way, not when the resync began:
        # the request's midpoint on our clock is the closest reading of that moment.
        answered_at = asked_at + (self.clock.now() - asked_at) / 2
        found = {call_id: arrival_of(call_legs, active, answered_at) for call_id, call_legs in unknown.items()}
        return {call_id: at for call_id, at in found.items() if at is not None}

    def _feed(self, v20_call_id: int, event: MachineEvent) -> None:
        """Advance one call; commit its webhook events and its new state in one transaction, then
        update the table.

        A step that makes no webhook is stored only when it creates the call (its arrival time),
        ends it or starts its grace period (when its last leg went). Other such steps are not
        written: after a crash the resync replays them from the PBX's state, exactly as it replays
        a step whose commit the crash prevented, and a busy PBX costs no extra disk syncs.
        """
        before = self._table.get(v20_call_id)
        call, webhooks = advance(before, event, self._rules)
        if call is None or (call == before and not webhooks):
            return
        seen = self._legs_seen.setdefault(v20_call_id, {})
        seen.update((leg.key, leg) for leg in call.legs)
        held: list[WebhookEvent] = []
        is_reconciled = call.is_ended and self._is_to_reconcile(call)
        if is_reconciled:
            # The live model missed part of this call: its Missed end waits for the call history.
            held = [w for w in webhooks if isinstance(w, CallEnded) and not w.is_answered]
            webhooks = [w for w in webhooks if w not in held]
        ends = self._answered_ends.get(v20_call_id, []) + [
            w for w in webhooks if isinstance(w, CallEnded) and w.is_answered]
        state: str | None = None
        if self._store is None:
            for webhook in webhooks:
                self._outbox.publish(webhook)
        elif webhooks or before is None or call.is_ended or call.is_ending:
            state = None if call.is_ended else call_json(call)
            self._store_step(_Step(v20_call_id, call, list(webhooks), list(ends), state))
        if ends:
            self._answered_ends[v20_call_id] = ends
        if webhooks:
            self._journal.setdefault(v20_call_id, []).extend(f"{w.event}:{w.id}" for w in webhooks)
        if self._touched is not None:
            self._touched.setdefault(v20_call_id, before)
        self._table.put(call)
        self._later(lambda: self._reported(call, webhooks, state))
        if call.is_ended:
            sent = " ".join(self._journal.pop(v20_call_id, ())) or "none"
            legs = tuple(replace(leg, is_finished=True) for leg in self._legs_seen.pop(v20_call_id, {}).values())
            if is_reconciled:
                ended = self._answered_ends.pop(v20_call_id, [])
                self._later(lambda: self._reconcile(replace(call, legs=legs), ended, held))
            else:
                self._later(lambda: self._ended(call, sent))

    def _store_step(self, step: _Step) -> None:
        if self._steps_to_write is not None:
            self._steps_to_write.append(step)
        elif self._store is not None:
            self._store.commit(step.v20_call_id, step.call, step.webhooks, step.ends, state=step.state)

    def _deferral(self, call: Call, ends: list[CallEnded]) -> Callable[[], None]:
        """Hands a call that vanished across a gap to the recovery (after the batch commits)."""
        def defer() -> None:
            if self._recovery is not None:
                self._recovery.defer(call, ends)
        return defer

    def _reported(self, call: Call, webhooks: list[WebhookEvent], state: str | None) -> None:
        for webhook in webhooks:
            self.recorder.webhook(webhook.call_key, webhook.params())
        if self._recovery is not None and (webhooks or call.is_ended):
            self._recovery.reported(call, webhooks, state)

    def _is_to_reconcile(self, call: Call) -> bool:
        """Whether a call that ended lost a reading: one of its legs, or a leg of no known call
        that came while it was in progress (it may have been this call's)."""
        if self._recovery is None:
            return False
        if call.v20_call_id in self._unread_calls:
            self._unread_calls.discard(call.v20_call_id)
            return True
        end = call.ended_at or self.clock.now()
        first = bisect.bisect_left(self._unread_legs, call.arrived_at - timedelta(seconds=1), key=_leg_time)
        return first < len(self._unread_legs) and self._unread_legs[first].at <= end

    def _reconcile(self, call: Call, ends: list[CallEnded], held: list[WebhookEvent]) -> None:
        """Hand an ended call that lost a reading to the recovery: it completes the call from the
        call history (what the live model did not report, marked recovered), or sends `held` (the
        live model's Missed end) when the history cannot tell."""
        logger.info("call %s ended with %d leg(s) never read; reconciling it with the call history",
                    call.v20_call_id, len(call.legs))
        assert self._recovery is not None
        self.arrival_claims.forget(call.v20_call_id)
        self._recovery.defer(call, ends, fallback=held)

    def _ended(self, call: Call, sent: str) -> None:
        """A call's end is committed: one INFO line for the whole call (each step was a DEBUG line of
        the machine: a third of the lines, and none while a burst of calls rings), then the
        recordings pipeline."""
        ends = self._answered_ends.pop(call.v20_call_id, [])
        self.arrival_claims.forget(call.v20_call_id)
        logger.info("call %s ended: %s, %s, link %d, %d answered legs; webhooks %s", call.v20_call_id,
                    call.direction or "direction unknown", "answered" if call.answered_at else "not answered",
                    call.link, len(ends), sent)
        tell_call_ended(self._on_call_ended, call, ends)

    def _leg(self, participant: dict[str, Any], dn: str, participant_id: int = 0) -> Leg:
        dn = str(participant.get("dn") or dn)
        previous = self._table.find_leg(dn, int(participant.get("id") or participant_id))
        return v20.leg_from_participant(participant, seen_at=self.clock.now(), dn_kind=self._dn_kind(dn),
                                        dn=dn, participant_id=participant_id, previous=previous,
                                        unknowns=self.unknowns)

    def _dn_kind(self, dn: str) -> str:
        kind = self._dn_kinds.get(dn)
        if kind is None:
            try:
                kind = v20.dn_kind_of(self._callcontrol.dn_state(dn), self.unknowns)
            except PbxError as exc:
                logger.warning("cannot read what DN %s is (%s); taking it for an extension", dn, exc)
                return "extension"
            self._dn_kinds[dn] = kind
        return kind

    # --- connection and resync ---------------------------------------------------------------------

    def _on_connect(self) -> None:
        self._is_connected = True
        self.recorder.connected()
        self._in_applier(self.resync)      # after every message of the previous connection
        if self._recovery is not None:
            self._recovery.synced()

    def tick(self) -> None:
        """Make final the ends of calls whose grace period is over (the stream's thread calls this
        often while connected). Nothing is settled until a resync has brought the table in step:
        while disconnected, a call that seems over may have gone on. A participant read that failed
        asks for a resync, done here (again every RESYNC_RETRY_S while the PBX cannot be read)."""
        if self._resync_wanted and self._is_connected and self._applier is threading.current_thread():
            now_s = self.clock.time()
            if now_s - self._resync_tried_at >= RESYNC_RETRY_S:
                self._resync_tried_at = now_s
                try:
                    self.resync()
                    self._resync_wanted = False
                except PbxError as exc:
                    logger.warning("resync after a failed participant read failed (%s); trying again", exc)
        if not self._is_synced:
            return
        try:
            with self._lock, self._steps():
                self._settle(self.clock.now())
        except Exception:
            logger.exception("settling ended calls failed; carrying on")

    def _settle(self, now: datetime) -> None:
        for call in self._table.ending():
            last = call.last_gone
            if last is not None and (now - last.at).total_seconds() >= self._rules.end_grace_s:
                self._feed(call.v20_call_id, GraceOver(now))

    def _on_disconnect(self, reason: str) -> None:
        if self._is_stopping:
            logger.info("watcher disconnected from the event stream (%s)", reason)
        else:
            logger.warning("watcher lost the event stream (%s); the model waits for a resync", reason)
        self._is_connected = False
        self._is_synced = False
        if self._recovery is not None:
            self._recovery.lost()

    def resync(self) -> None:
        """Diff `GET /callcontrol` against the table and feed the differences to the machine.

        New or changed legs go first (a transfer's new leg before the old one's removal, as on the
        wire), then legs that are gone; a call that ended while we were away gets its end here.
        Raises PbxError when the PBX cannot be read (the stream then reconnects and tries again).
        """
        with self._lock, self._steps():
            self._is_synced = False
            states = self._callcontrol.all_states()
            now = self.clock.now()
            for info in states:
                if info.get("dn"):
                    self._dn_kinds[str(info["dn"])] = v20.dn_kind_of(info, self.unknowns)
            current: dict[tuple[str, int], Leg] = {}
            for info in states:
                for participant in info.get("participants") or []:
                    leg = self._leg(participant, str(info.get("dn") or ""))
                    current[leg.key] = leg
            # Legs placing or first receiving a call before legs transferred to (referred_by).
            ordered = sorted(current.values(), key=lambda l: (l.v20_call_id, bool(l.referred_by_dn), l.participant_id))
            arrivals = self._arrivals(ordered)
            changed = 0
            for leg in ordered:
                cached = self._table.find_leg(leg.dn, leg.participant_id)
                if cached is None or cached.v20_call_id != leg.v20_call_id or not v20.is_same_reading(cached, leg):
                    self._seen(leg, is_resync=True, arrived_at=arrivals.get(leg.v20_call_id))
                    changed += 1
            for call in self._table.calls():
                if self._recovery is not None and call.legs and all(leg.key not in current for leg in call.legs):
                    # The whole call vanished while we were away: its end comes from the call history
                    # (the recovery keeps what it needs to finish it, even across a restart).
                    handed_over = replace(call, ended_at=now)
                    self._store_step(_Step(call.v20_call_id, handed_over, [], []))
                    if self._touched is not None:
                        self._touched.setdefault(call.v20_call_id, call)
                    self._table.put(handed_over)
                    self._legs_seen.pop(call.v20_call_id, None)
                    self._journal.pop(call.v20_call_id, None)
                    self._later(self._deferral(call, self._answered_ends.pop(call.v20_call_id, [])))
                    changed += 1
                    continue
                for leg in call.legs:
                    if leg.key not in current:
                        self._feed(call.v20_call_id, LegGone(leg.dn, leg.participant_id, now, is_resync=True))
                        changed += 1
            self._is_synced = True
            self._settle(now)
            logger.info("resync: %d legs on the PBX, %d differences applied, %d calls in progress",
                        len(current), changed, len(self._table))
