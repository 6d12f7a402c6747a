"""The watcher: Call Control events in, the live model and webhook events out.

It runs in the event stream's thread (`EventStream.set_handlers`): every message goes through
`handle()`, every (re)connection through a resync that diffs `GET /callcontrol` against the table
and feeds the differences to the same `machine.advance`, so an end missed while disconnected still
produces its webhook. Each step's webhook events and the call's new state are committed to SQLite
together (live/store.py) before the table changes; at start the stored calls are loaded, so calls
in progress keep their ids across a restart. A call whose last leg went is settled by `tick()`
once `[webhooks] end_grace_s` has passed (see live/machine.py).
"""
from __future__ import annotations

import logging
import re
import threading
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any, Callable

from gateway.clock import Clock
from gateway.config import Config
from gateway.live import v20
from gateway.live.arrivals import arrival_of, read_active_calls
from gateway.live.ids import call_link_id
from gateway.live.webhooks import CallEnded
from gateway.live.machine import GraceOver, LegGone, LegSeen, MachineEvent, Rules, advance
from gateway.live.model import ArrivalClaims, Call, CallTable, Leg
from gateway.live.ports import CallStates, EntityLister, EventSource, GapWatch, WebhookSink
from gateway.live.recorder import Capture, Recorder
from gateway.live.store import CallStore
from gateway.live.unknowns import Unknowns
from gateway.pbx.errors import PbxError, PbxNotFound

logger = logging.getLogger(__name__)

# WebSocket event_type values (V20-API-NOTES §e): 0 Upsert, 1 Remove, 2 DTMF, 4 Response.
UPSERT = 0
REMOVE = 1

DID_REFRESH_S = 60.0
DID_CONDITION = "BasedOnDID"


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
                 clock: Clock, on_call_ended: Callable[[Call, list[CallEnded]], None] | None = None,
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
        self._handlers: dict[tuple[int, str], Callable[[str, int], None]] = {
            (UPSERT, "participants"): self._on_upsert,
            (REMOVE, "participants"): self._on_remove,
        }

    # --- lifecycle -------------------------------------------------------------------------------

    def start(self) -> None:
        """Load the stored calls in progress, register with the event stream and start it (its
        thread runs every handler from then on)."""
        self._is_stopping = False
        self._restore()
        self._stream.set_handlers(self.handle, self._on_connect, self._on_disconnect, on_tick=self.tick)
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
        self._is_stopping = True
        self._stream.stop(timeout_s)
        self._is_connected = False
        self._is_synced = False

    def capture(self, snapshot: Callable[[], list[dict[str, Any]]]) -> Capture:
        """Open a capture that starts with `snapshot()`'s records, taken while no event is handled."""
        with self._lock:
            return self.recorder.start(snapshot())

    def status(self) -> WatcherStatus:
        """Connection, sync state, event age and counts, for health checks and metrics."""
        age = None if self._last_event_at is None else max(0.0, self.clock.time() - self._last_event_at)
        return WatcherStatus(connected=self._is_connected, synced=self._is_synced, last_event_age_s=age,
                             calls=len(self._table), events_total=self._events_total)

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

        Synchronous; a failure is logged and the next message is handled as usual.
        """
        try:
            self.recorder.message(message)
            self._last_event_at = self.clock.time()
            self._events_total += 1
            event = message.get("event") if isinstance(message, dict) else None
            if not isinstance(event, dict):
                logger.warning("ignoring a message without an event: %.200r", message)
                return
            entity = str(event.get("entity") or "")
            parts = entity.strip("/").split("/")
            if len(parts) < 3 or not str(event.get("event_type", "")).isdigit():
                logger.debug("ignoring event %s on %r", event.get("event_type"), entity)
                return
            dn, collection, item = parts[-3:]
            handler = self._handlers.get((int(event["event_type"]), collection))
            if handler is None or not item.isdigit():
                logger.debug("no handler for event %s on %s", event.get("event_type"), entity)
                if int(event["event_type"]) in (UPSERT, REMOVE):
                    self.unknowns.note("event", f"event_type {event['event_type']} on {collection}",
                                       where=entity, reading="ignored")
                return
            with self._lock:
                handler(dn, int(item))
        except Exception:
            logger.exception("handling message %.200r failed; carrying on", message)

    def _on_upsert(self, dn: str, participant_id: int) -> None:
        # An Upsert carries no state: read the participant (V20-API-NOTES §e). A 404 means it was
        # removed meanwhile, which is a Remove as far as we are concerned.
        try:
            participant = self._callcontrol.participant(dn, participant_id)
        except PbxNotFound:
            logger.info("participant %s/%s gone before it could be read; treating as removed", dn, participant_id)
            self._on_remove(dn, participant_id)
            return
        self._seen(self._leg(participant, dn, participant_id))

    def _on_remove(self, dn: str, participant_id: int) -> None:
        cached = self._table.find_leg(dn, participant_id)
        if cached is None:
            logger.debug("remove of unknown participant %s/%s", dn, participant_id)
            return
        self._feed(cached.v20_call_id, LegGone(dn, participant_id, self.clock.now()))

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
        ends = self._answered_ends.get(v20_call_id, []) + [
            w for w in webhooks if isinstance(w, CallEnded) and w.is_answered]
        if self._store is None:
            for webhook in webhooks:
                self._outbox.publish(webhook)
        elif webhooks or before is None or call.is_ended or call.is_ending:
            self._store.commit(v20_call_id, call, webhooks, ends)
        for webhook in webhooks:
            self.recorder.webhook(webhook.call_key, webhook.params())
        if ends:
            self._answered_ends[v20_call_id] = ends
        if self._recovery is not None and (webhooks or call.is_ended):
            self._recovery.reported(call, webhooks)
        self._table.put(call)
        if call.is_ended:
            self._ended(call)

    def _ended(self, call: Call) -> None:
        ends = self._answered_ends.pop(call.v20_call_id, [])
        self.arrival_claims.forget(call.v20_call_id)
        logger.info("call %s ended (%d answered legs)", call.v20_call_id, len(ends))
        if self._on_call_ended is None:
            return
        try:
            self._on_call_ended(call, ends)
        except Exception:
            logger.exception("call %s: the call-ended callback failed", call.v20_call_id)

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
        self.resync()
        if self._recovery is not None:
            self._recovery.synced()

    def tick(self) -> None:
        """Make final the ends of calls whose grace period is over (the stream's thread calls this
        often while connected). Nothing is settled until a resync has brought the table in step:
        while disconnected, a call that seems over may have gone on."""
        if not self._is_synced:
            return
        try:
            with self._lock:
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
        with self._lock:
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
                    if self._store is not None:
                        self._store.commit(call.v20_call_id, handed_over, [], [])
                    self._table.put(handed_over)
                    self._recovery.defer(call, self._answered_ends.pop(call.v20_call_id, []))
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
