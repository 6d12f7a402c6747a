"""Gap recovery: calls that happened while the gateway was not watching are reported from v20's call history.

The watcher tells `Recovery` what it reports (`reported`), when the event stream is synced
(`synced`) or lost (`lost`), and hands over calls whose legs all vanished across a gap (`defer`)
instead of ending them as missed. The "recovery" thread then:

- while the stream is connected and synced, records every `HEARTBEAT_S` that the PBX was observed
  up to now (`GapStore.observe`), with the arrival of the oldest call in progress;
- after every (re)connection, and so at every start, reads the call history from the last observed
  time (back to the oldest call then in progress, minus `SLACK_S`) up to now, and:
  - completes each deferred call (and each call reported before a restart that never ended) from
    its history call: answered, by whom, how long (`recovered.completed_events`);
  - sends, through the outbox, the events of every history call in the gap that matches no call the
    gateway reported (`history.match_calls`), then marks it recovered in SQLite (never sent twice)
    and hands its answered ends to the recordings pipeline, as the watcher does for a live call;
- when the history cannot be read (no System Owner role, report refused) or the gap is longer than
  `[webhooks] recover_max_gap_hours`, notes the uncovered gap (log, /healthz, doctor) and ends
  deferred calls as before (legs gone, titled so). Live webhooks never wait for any of this.

Order of writes: events go to the outbox first, then the call is marked recovered. A kill between
the two re-sends that call's events after the restart, under the same ids (they derive from the
history), which a receiver can drop; nothing is lost.
"""
from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any, Callable

from gateway.clock import Clock
from gateway.config import Config
from gateway.live.gaps import GapStore, UncoveredGap
from gateway.live.history import CallHistory, HistoryCall, KnownCall, match_calls
from gateway.live.ids import call_prefix
from gateway.live.machine import LegGone, Rules, advance
from gateway.live.model import Call, CallTable
from gateway.live.ports import CallEndedHook, WebhookSink, tell_call_ended
from gateway.live.store import call_from_state, call_json
from gateway.live.recovered import Recovered, completed_events, recovered_events, with_unavailable_note
from gateway.live.webhooks import CallEnded, WebhookEvent
from gateway.pbx.errors import PbxAuthFailed, PbxError, PbxRejected

logger = logging.getLogger(__name__)

HEARTBEAT_S = 5.0          # how often "observed until now" is written while synced
SLACK_S = 60.0             # read this much more history before the gap (clocks, call set-up)
DEFER_WAIT_S = 30.0        # how long a vanished call may be missing from the history before giving up
RETRY_S = 2.0              # wait between reads while a deferred call is not in the history yet
FAILED_READS = 5           # transient read failures in a row before a gap is declared uncovered
KEEP_DAYS = 7              # reported calls, recovered ids and gaps are kept this long
BACKLOG_SLACK_S = 2.0      # history calls that ended this close to the watcher's backlog wait for it
WARN_DAYS = 1              # uncovered gaps noted within this are /healthz warnings


@dataclass(frozen=True)
class GapReport:
    """A gap the call history did not cover (UTC ISO times) and why."""

    since: str
    until: str
    reason: str


@dataclass(frozen=True)
class HistoryRead:
    """The last read of the call history: its period (UTC ISO), calls found, seconds taken, when."""

    since: str
    until: str
    calls: int
    seconds: float
    at: str


@dataclass(frozen=True)
class RecoveryStatus:
    """Gap recovery's state for /healthz: how far the PBX was observed (None before the first
    sync), calls waiting for the history, counts since start, the last read, recent uncovered gaps."""

    enabled: bool
    observed_until: str | None
    deferred: int
    recovered_calls: int
    completed_calls: int
    events: int
    reads: int
    last_read: HistoryRead | None
    last_error: str | None
    uncovered: tuple[GapReport, ...]
    unread_legs_found: int = 0       # legs gone before their read whose call the history showed
    unread_legs_not_found: int = 0   # ... and those it never showed (given up after DEFER_WAIT_S)


@dataclass
class _Deferred:
    call: Call
    ends: list[CallEnded]
    since: float            # clock time it was deferred
    fallback: list[WebhookEvent] | None = None   # sent when the history cannot tell (a live call's end)


@dataclass
class _Unread:
    """A leg of no known call, gone before the watcher could read it: its call is looked up."""

    dn: str
    at: datetime
    since: float            # clock time it was noted


class Recovery:
    """See the module docstring. `on_call_ended(call, answered_ends)` is the recordings pipeline's."""

    def __init__(self, history: CallHistory, store: GapStore, webhooks: WebhookSink, table: CallTable,
                 config: Config, *,
                 clock: Clock, monitored: Callable[[], frozenset[str]],
                 on_call_ended: CallEndedHook | None = None,
                 applied_until: Callable[[], datetime | None] | None = None,
                 heartbeat_s: float = HEARTBEAT_S, defer_wait_s: float = DEFER_WAIT_S,
                 retry_s: float = RETRY_S) -> None:
        self.is_enabled = bool(config.webhooks.recover_calls)
        self.max_gap = timedelta(hours=config.webhooks.recover_max_gap_hours)
        self._history = history
        self._store = store
        self._webhooks = webhooks
        self._table = table
        self._rules = Rules.from_config(config)
        self._clock = clock
        self._monitored = monitored
        self._on_call_ended = on_call_ended
        self._applied_until = applied_until     # the watcher's: events before it are applied
        self._heartbeat_s = heartbeat_s
        self._defer_wait_s = defer_wait_s
        self._retry_s = retry_s
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._deferred: dict[str, _Deferred] = {}
        self._unread: list[_Unread] = []
        # Reported calls not yet written: key -> (latest Call, webhook users, webhook callerids, its JSON).
        self._notes: dict[str, tuple[Call, frozenset[str], frozenset[str], str | None]] = {}
        self._is_synced = False
        self._is_gap_open = False        # a synced() whose gap is not read yet
        self._has_orphans = True         # calls reported before a restart are looked at once
        self._failed_reads = 0
        self._counts = {"recovered_calls": 0, "completed_calls": 0, "events": 0, "reads": 0,
                        "unread_found": 0, "unread_not_found": 0}
        self._last_read: HistoryRead | None = None
        self._last_error: str | None = None

    # --- lifecycle ---------------------------------------------------------------------------------

    def start(self) -> None:
        if self._thread is not None:
            return
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="recovery", daemon=True)
        self._thread.start()

    def stop(self, timeout_s: float) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout_s)
            self._thread = None

    def status(self) -> RecoveryStatus:
        """For /healthz: counts, the last read, and recent uncovered gaps."""
        observed = self._safe(self._store.observed)
        gaps = self.uncovered()
        with self._lock:
            return RecoveryStatus(
                enabled=self.is_enabled, observed_until=_iso(observed[0]) if observed else None,
                deferred=len(self._deferred), recovered_calls=self._counts["recovered_calls"],
                completed_calls=self._counts["completed_calls"], events=self._counts["events"],
                reads=self._counts["reads"], last_read=self._last_read, last_error=self._last_error,
                uncovered=tuple(GapReport(_iso(g.since) or "", _iso(g.until) or "", g.reason) for g in gaps),
                unread_legs_found=self._counts["unread_found"], unread_legs_not_found=self._counts["unread_not_found"])

    def uncovered(self) -> list[UncoveredGap]:
        """Gaps noted in the last WARN_DAYS the call history did not cover, newest first."""
        gaps: list[UncoveredGap] | None = self._safe(
            lambda: self._store.uncovered(self._clock.now() - timedelta(days=WARN_DAYS)))
        return gaps or []

    # --- called by the watcher thread ----------------------------------------------------------

    def reported(self, call: Call, webhooks: list[WebhookEvent], state: str | None = None) -> None:
        """The live model produced `webhooks` for `call` (or ended it): remember what was reported
        (`state`: `call_json(call)` when the caller made it already).

        Kept in memory and written to SQLite by the recovery thread within moments (batched), so
        the watcher thread never waits for the disk; the thread writes them before any history read.
        """
        key = call_prefix(call.arrived_at, call.v20_call_id, self._rules.timezone)
        users = frozenset(w.user for w in webhooks) | {leg.dn for leg in call.legs} | {leg.via_dn for leg in call.legs}
        callers = frozenset(w.callerid for w in webhooks) | {call.external_number}
        with self._lock:
            earlier = self._notes.get(key)
            if earlier is not None:
                users, callers = users | earlier[1], callers | earlier[2]
            self._notes[key] = (call, users, callers, state)
        self._wake.set()

    def _flush(self) -> None:
        """Write the reported calls noted since the last flush (recovery thread)."""
        with self._lock:
            notes, self._notes = self._notes, {}
        if not notes:
            return
        batch = []
        for key, (call, users, callers, state) in notes.items():
            dns, numbers = users, callers
            known = KnownCall(key, frozenset(d for d in dns if d), frozenset(n for n in numbers if n),
                              call.arrived_at, call.ended_at)
            batch.append((known, None if call.is_ended else state or call_json(call)))
        try:
            self._store.note_calls(batch)
        except Exception:
            logger.exception("recovery: cannot record %d reported call(s)", len(batch))

    def defer(self, call: Call, ends: list[CallEnded], *, fallback: list[WebhookEvent] | None = None) -> None:
        """`call`'s end waits for the call history: every leg of it vanished across a gap, or
        (with `fallback`, the live model's own end events) it ended having lost a reading."""
        key = call_prefix(call.arrived_at, call.v20_call_id, self._rules.timezone)
        if fallback is None:
            logger.info("call %s: gone while disconnected; its end waits for the call history", call.v20_call_id)
        with self._lock:
            self._deferred[key] = _Deferred(call, list(ends), self._clock.time(),
                                            None if fallback is None else list(fallback))
        self._wake.set()

    def unread(self, dn: str, at: datetime) -> None:
        """A leg of DN `dn` of no known call was gone at `at` before the watcher could read it: look
        its call up in the history (sent, marked recovered, when nobody reported it)."""
        with self._lock:
            self._unread.append(_Unread(dn, at, self._clock.time()))
        self._wake.set()

    def synced(self) -> None:
        """The event stream is connected and the model resynced: the gap before now can be read."""
        with self._lock:
            self._is_synced = True
            self._is_gap_open = True
        self._wake.set()

    def lost(self) -> None:
        """The event stream is gone: stop recording observation."""
        with self._lock:
            self._is_synced = False

    # --- the "recovery" thread -----------------------------------------------------------------

    def _run(self) -> None:
        next_tick = 0.0
        while not self._stop.is_set():
            try:
                self._flush()
                with self._lock:
                    is_due = self._is_gap_open or time.monotonic() >= next_tick
                if is_due:
                    next_tick = time.monotonic() + self._tick()
            except Exception:   # one bad round must not end the thread
                logger.exception("recovery: unexpected error")
                next_tick = time.monotonic() + self._heartbeat_s
            self._wake.wait(max(0.0, next_tick - time.monotonic()))
            self._wake.clear()
        self._flush()

    def _tick(self) -> float:
        with self._lock:
            is_synced, is_gap_open = self._is_synced, self._is_gap_open
            waiting = bool(self._deferred) or bool(self._unread)
        if not is_synced:
            return self._heartbeat_s
        if is_gap_open or waiting:
            return self._recover()
        self._observe(self._clock.now())
        return self._heartbeat_s

    def _observe(self, now: datetime) -> None:
        open_since = min((call.arrived_at for call in self._table.calls()), default=now)
        self._store.observe(now, open_since)

    def recover_now(self) -> float:
        """Run one recovery round at once (tests and the benchmark); the delay before the next."""
        return self._recover()

    def _recover(self) -> float:
        self._flush()
        now = self._clock.now()
        observed = self._store.observed()
        with self._lock:
            is_gap_open = self._is_gap_open
            self._is_gap_open = False
        if self._has_orphans:
            self._adopt_orphans()
        with self._lock:
            deferred = dict(self._deferred)
            unread = list(self._unread)
        if observed is None and not deferred and not unread:
            logger.info("recovery: first start, nothing observed before; watching from now")
            self._observe(now)
            return self._heartbeat_s
        since = observed[0] if observed else now
        if not self.is_enabled:
            if is_gap_open and now - since > timedelta(seconds=SLACK_S):
                logger.warning("recovery is off ([webhooks] recover_calls): calls between %s and %s are not "
                               "recovered", _iso(since), _iso(now))
            self._give_up(deferred, "recovery is off")
            self._drop_unread()
            self._observe(now)
            return self._heartbeat_s
        if now - since > self.max_gap:
            self._uncovered(since, now, f"the gap is longer than [webhooks] recover_max_gap_hours "
                                        f"({self.max_gap.total_seconds() / 3600:g} h)", deferred)
            return self._heartbeat_s
        starts = ([since, observed[1] if observed else now] + [d.call.arrived_at for d in deferred.values()]
                  + [u.at for u in unread])
        window = (min(starts) - timedelta(seconds=SLACK_S), now + timedelta(seconds=SLACK_S))
        started = self._clock.time()
        try:
            calls = self._history.calls(*window)
        except (PbxRejected, PbxAuthFailed) as exc:
            reason = ("the API client lacks the System Owner role (403)"
                      if isinstance(exc, PbxRejected) and exc.status == 403 else f"the PBX refused the report: {exc}")
            self._uncovered(since, now, reason, deferred)
            return self._heartbeat_s
        except PbxError as exc:
            self._failed_reads += 1
            self._note_error(f"cannot read the call history: {exc}")
            if self._failed_reads >= FAILED_READS:
                self._failed_reads = 0
                self._uncovered(since, now, f"the call history could not be read: {exc}", deferred)
                return self._heartbeat_s
            with self._lock:
                self._is_gap_open = self._is_gap_open or is_gap_open
            return self._retry_s
        self._failed_reads = 0
        took = self._clock.time() - started
        waiting = self._apply(calls, deferred, since, window[0])
        waiting = self._look_up(calls, unread) or waiting
        with self._lock:
            self._counts["reads"] += 1
            self._last_read = HistoryRead(_iso(window[0]) or "", _iso(window[1]) or "", len(calls), round(took, 3),
                                          _iso(now) or "")
        self._observe(now)
        return self._retry_s if waiting else self._heartbeat_s

    def _apply(self, calls: list[HistoryCall], deferred: dict[str, _Deferred], since: datetime,
               window_start: datetime) -> bool:
        """Complete deferred calls and send unreported ones; True while a deferred call still waits."""
        pending = [c for c in calls if not self._store.is_recovered(c.main_id)]
        deferred_known = [_known(key, d.call) for key, d in deferred.items()]
        completed = match_calls(pending, deferred_known)
        for history_call in pending:
            known = completed.get(history_call.main_id)
            if known is not None:
                self._complete(known.key, deferred[known.key], history_call)
        # Every history call of the window is paired, one to one, with the calls reported live (and
        # those in progress), so a caller who calls the same DN again is not taken for the earlier
        # call; only then are the calls that ended before the gap set aside (seen live, whether
        # reported or not, e.g. internal). A call whose events wait in the watcher's backlog is not
        # unreported: it is looked at again in the next round.
        pool = [c for c in pending if c.main_id not in completed]
        backlog = self._applied_until() if self._applied_until is not None else None
        later = [c for c in pool if backlog is not None and c.ended_at > backlog - timedelta(seconds=BACKLOG_SLACK_S)]
        pool = [c for c in pool if c not in later]
        if later:
            with self._lock:
                self._is_gap_open = True
        self._flush()           # what the watcher reported while the history was read
        reported = [k for k in self._store.known_calls(window_start) if k.key not in deferred]
        in_progress = [_known(call_prefix(c.arrived_at, c.v20_call_id, self._rules.timezone), c)
                       for c in self._table.calls()]
        already = match_calls(pool, reported + in_progress)
        monitored = self._monitored()
        for history_call in pool:
            if history_call.main_id in already or history_call.ended_at < since - timedelta(seconds=SLACK_S):
                continue
            self._send_recovered(history_call, monitored)
        waiting = bool(later)
        clock_now = self._clock.time()
        for key, item in deferred.items():
            if any(k.key == key for k in completed.values()):
                continue
            if clock_now - item.since >= self._defer_wait_s:
                self._give_up({key: item}, "the call is not in the call history")
            else:
                waiting = True
        return waiting

    def _look_up(self, calls: list[HistoryCall], unread: list[_Unread]) -> bool:
        """Settle the unread legs the history shows (their calls were matched or sent by `_apply`);
        True while one is still missing from it."""
        slack = timedelta(seconds=SLACK_S)
        waiting = False
        for leg in unread:
            is_found = any(leg.dn in c.dns and c.started_at - slack <= leg.at <= c.ended_at + slack for c in calls)
            if not is_found and self._clock.time() - leg.since < self._defer_wait_s:
                waiting = True
                continue
            if not is_found:
                logger.warning("a leg of DN %s gone before it could be read at %s is not in the call history; "
                               "its call may be unreported", leg.dn, _iso(leg.at))
            with self._lock:
                self._unread = [u for u in self._unread if u is not leg]
                self._counts["unread_found" if is_found else "unread_not_found"] += 1
        return waiting

    def _complete(self, key: str, item: _Deferred, history_call: HistoryCall) -> None:
        result = completed_events(item.call, history_call, self._rules,
                                  reported=frozenset(end.dn for end in item.ends))
        logger.info("call %s: completed from the call history (%d events)", item.call.v20_call_id, len(result.events))
        self._write(result, item.ends)
        with self._lock:
            self._deferred.pop(key, None)
            self._counts["completed_calls"] += 1
        self._store.mark_recovered(history_call.main_id, key)
        self._store.close_call(key, history_call.ended_at)

    def _send_recovered(self, history_call: HistoryCall, monitored: frozenset[str]) -> None:
        result = recovered_events(history_call, self._rules, monitored)
        key = call_prefix(result.call.arrived_at, result.call.v20_call_id, self._rules.timezone)
        if result.events:
            logger.info("call history: recovered call %s (%s, %d events) as %s", history_call.main_id,
                        history_call.direction, len(result.events), key)
            self._write(result, [])
            with self._lock:
                self._counts["recovered_calls"] += 1
        self._store.mark_recovered(history_call.main_id, key)

    def _write(self, result: Recovered, earlier_ends: list[CallEnded]) -> None:
        for event in result.events:
            self._webhooks.publish(event)
        with self._lock:
            self._counts["events"] += len(result.events)
        tell_call_ended(self._on_call_ended, result.call, earlier_ends + result.answered_ends)

    def _give_up(self, deferred: dict[str, _Deferred], reason: str) -> None:
        """End deferred calls the way the live model always did (legs gone), saying why."""
        for key, item in deferred.items():
            logger.warning("call %s: %s; ending it as seen at the reconnection", item.call.v20_call_id, reason)
            call: Call | None = item.call
            events: list[WebhookEvent] = []
            at = self._clock.now()
            if item.fallback is not None:       # a live call's end, held for the history: as made live
                events = list(item.fallback)
            else:
                for leg in item.call.legs:
                    call, made = advance(call, LegGone(leg.dn, leg.participant_id, at, is_resync=True), self._rules)
                    events += made
            events = with_unavailable_note(events, reason)
            for event in events:
                self._webhooks.publish(event)
            ends = item.ends + [e for e in events if isinstance(e, CallEnded) and e.is_answered]
            if call is not None:
                tell_call_ended(self._on_call_ended, call, ends)
            self._store.close_call(key, at)
            with self._lock:
                self._deferred.pop(key, None)

    def _drop_unread(self) -> None:
        with self._lock:
            self._counts["unread_not_found"] += len(self._unread)
            self._unread = []

    def _uncovered(self, since: datetime, until: datetime, reason: str, deferred: dict[str, _Deferred]) -> None:
        gap = UncoveredGap(since, until, reason, self._clock.now())
        logger.warning("recovery: %s", gap.describe())
        self._note_error(gap.describe())
        self._store.note_uncovered(since, until, reason)
        self._give_up(deferred, f"call history unavailable: {reason}")
        self._drop_unread()
        self._observe(until)

    def _adopt_orphans(self) -> None:
        """Calls reported before a restart that never ended and that the live model no longer has
        are completed from the history like vanished calls."""
        self._has_orphans = False
        live = {call_prefix(c.arrived_at, c.v20_call_id, self._rules.timezone) for c in self._table.calls()}
        for key, state in self._store.open_states().items():
            if key in live:
                continue
            try:
                call = call_from_state(state)
            except (KeyError, TypeError, ValueError) as exc:
                logger.warning("call %s: saved state unreadable (%s); forgetting it", key, exc)
                self._store.close_call(key, self._clock.now())
                continue
            if self._table.get(call.v20_call_id) is not None:
                # Still in progress: the resync found it again and the live model reports its end.
                logger.info("call %s: open before the restart and still in progress", call.v20_call_id)
                self._store.close_call(key, self._clock.now())
                continue
            with self._lock:
                self._deferred.setdefault(key, _Deferred(call, [], self._clock.time()))
            logger.info("call %s: open before the restart; its end waits for the call history", call.v20_call_id)

    def purge(self) -> int:
        return self._store.purge(self._clock.now() - timedelta(days=KEEP_DAYS))

    def _note_error(self, message: str) -> None:
        with self._lock:
            self._last_error = message

    def _safe(self, read: Callable[[], Any]) -> Any:
        try:
            return read()
        except Exception as exc:   # a status read must never fail /healthz
            logger.warning("recovery: cannot read its state file: %s", exc)
            return None


def _known(key: str, call: Call, history: HistoryCall | None = None) -> KnownCall:
    dns = {leg.dn for leg in call.legs} | {leg.via_dn for leg in call.legs if leg.via_dn}
    if call.stage_user:
        dns.add(call.stage_user)
    numbers = {call.external_number} | {leg.party_number for leg in call.legs if leg.party_kind == "external"}
    if history is not None:
        dns |= history.dns
        numbers.add(history.external_number)
    return KnownCall(key, frozenset(d for d in dns if d), frozenset(n for n in numbers if n), call.arrived_at,
                     call.ended_at or (history.ended_at if history else None))


def _iso(moment: datetime | None) -> str | None:
    if moment is None:
        return None
    return moment.astimezone(timezone.utc).isoformat(timespec="seconds").replace("+00:00", "Z")
