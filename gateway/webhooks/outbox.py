"""The webhook outbox: every event is committed to SQLite before anyone tries to send it.

One row per event and target; `id` (uuid4 hex) is the X-Webhook-Id and never changes across
retries, so delivery is at-least-once and a receiver can drop duplicates. `seq` orders events
globally. `target` names the webhook target the row is for ("default" = [webhooks]); each target
is its own queue: `due()` and `next_due_at()` take a target, and one target's backlog never
holds back another's. A file written before targets existed has no `target` column: it is added
on open, and the rows already there belong to the default target.

Ordering lives in `due()`: for each target's `call_key` only its oldest *pending* event is returned, and
only once its `next_attempt_at` has come, so the events of one call go out one after the other
while different calls proceed in parallel. A *failed* event no longer blocks its call: once an
event is marked failed, the next one of that call may go (a CRM that rejects one event must not
stall every later event of the call for good). A requeued event is pending again and, being the
oldest of its call, goes out before that call's later pending events.

The file uses WAL and `synchronous=FULL`: a committed `add()` survives a kill -9 and a power cut.
Delivery outcomes (`record()`) are written with `synchronous=NORMAL`: they survive a kill -9; a
power cut can only make an event go out once more, under the same id.
Every thread opens its own connection (sqlite3 connections must not be shared between threads).
Times are epoch seconds from the injected clock.

`transaction()` lets another table of the same file commit together with events: the live call
table (gateway/live/store.py) writes a call's row in the transaction that adds its webhook events,
so a crash can never keep the one without the other.

When webhooks are off (`enabled=False`, i.e. `[webhooks] url` is empty) no event is recorded:
`add()` still returns a fresh id but writes nothing, so turning webhooks on later does not flood
the CRM with stale events, and the file does not grow without anyone to drain it.
"""
from __future__ import annotations

import json
import logging
import sqlite3
import threading
import uuid
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Protocol

from gateway.clock import Clock
from gateway.db import ThreadConnections, Transaction

logger = logging.getLogger(__name__)

FILENAME = "outbox.sqlite3"
DEFAULT_TARGET = "default"   # = gateway.config.DEFAULT_TARGET: the [webhooks] target
STATES = ("pending", "delivered", "failed")
HEAD_SCAN_ROWS = 512    # pending rows walked in order for due heads before SQLite groups them instead


@dataclass(frozen=True)
class OutboxCounts:
    """How many events are in each state (one field per name in STATES)."""

    pending: int = 0
    delivered: int = 0
    failed: int = 0

    def of(self, state: str) -> int:
        """The count of one of STATES."""
        return int(getattr(self, state))

    def as_dict(self) -> dict[str, int]:
        """{"pending": n, "delivered": n, "failed": n}, as /healthz shows it."""
        return {state: self.of(state) for state in STATES}

    @staticmethod
    def total(parts: Iterable[OutboxCounts]) -> OutboxCounts:
        """The sum of several targets' counts."""
        parts = list(parts)
        return OutboxCounts(**{state: sum(part.of(state) for part in parts) for state in STATES})

_TABLE = """
CREATE TABLE IF NOT EXISTS events (
    seq             INTEGER PRIMARY KEY AUTOINCREMENT,
    id              TEXT NOT NULL UNIQUE,
    call_key        TEXT NOT NULL,
    params          TEXT NOT NULL,
    method          TEXT,
    state           TEXT NOT NULL DEFAULT 'pending'
                    CHECK (state IN ('pending', 'delivered', 'failed')),
    attempts        INTEGER NOT NULL DEFAULT 0,
    next_attempt_at REAL NOT NULL,
    last_error      TEXT,
    created_at      REAL NOT NULL,
    delivered_at    REAL,
    retry_since     REAL NOT NULL,
    target          TEXT NOT NULL DEFAULT 'default'
);
"""
# Created after _migrate(): an older file gets its target column first.
_INDEXES = """
DROP INDEX IF EXISTS events_pending_by_call;
CREATE INDEX IF NOT EXISTS events_pending_by_target ON events (target, call_key, seq) WHERE state = 'pending';
CREATE INDEX IF NOT EXISTS events_pending_in_order ON events (target, seq) WHERE state = 'pending';
CREATE INDEX IF NOT EXISTS events_by_state ON events (state, seq);
"""
# retry_since: start of the [webhooks] retry_hours window; created_at, reset by requeue().


@dataclass(frozen=True)
class Attempt:
    """The outcome of one delivery attempt, to record: the event's new `state` (one of STATES),
    the error of a failed attempt, and when a pending event is due again (epoch s)."""

    event_id: str
    state: str
    error: str | None = None
    next_attempt_at: float | None = None


class EventAdder(Protocol):
    """Anything events can be added to: the outbox, or a writer inside one of its transactions."""

    def add(self, call_key: str, params: dict[str, Any], *, method: str | None = None,
            target: str = DEFAULT_TARGET) -> str: ...


class OutboxError(Exception):
    """The outbox file cannot be created or opened (message names the file and the reason)."""


@dataclass(frozen=True)
class OutboxEvent:
    """One stored webhook event; `params` is the decoded JSON object, times are epoch seconds."""

    seq: int
    id: str
    call_key: str
    params: dict[str, Any]
    method: str | None
    state: str
    attempts: int
    next_attempt_at: float
    last_error: str | None
    created_at: float
    delivered_at: float | None
    retry_since: float
    target: str = DEFAULT_TARGET

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def outbox_path(state_dir: str | Path) -> Path:
    """The outbox file inside `[storage] state_dir` (Services and the CLI must agree on it)."""
    return Path(state_dir) / FILENAME


class Outbox:
    """The durable queue of webhook events; safe to call from any thread."""

    def __init__(self, path: str | Path, *, clock: Clock, enabled: bool = True) -> None:
        self.path = Path(path)
        self.is_enabled = enabled
        self._clock = clock
        self._callbacks: list[Callable[[], None]] = []
        self._schema_lock = threading.Lock()
        # Writers of this process queue here, not in SQLite's busy handler: that one sleeps (up to
        # 100 ms a try) when the write lock is taken, which under a burst delays every webhook.
        self._write_lock = threading.Lock()
        self._has_schema = False
        self._connections = ThreadConnections(self.path, synchronous="FULL", prepare=self._prepare)
        # Delivery outcomes are written without a disk sync of their own: a power cut may forget that
        # an event was delivered (it is sent again, same id: at-least-once); a killed process forgets
        # nothing (WAL), and the next synced commit (an add) makes them durable too.
        self._outcome_connections = ThreadConnections(self.path, synchronous="NORMAL", prepare=self._prepare)

    # --- connections ---------------------------------------------------------------------------

    def _db(self, connections: ThreadConnections | None = None) -> sqlite3.Connection:
        """The calling thread's connection (of `connections`, else the synced ones); the first one
        creates the folder and the table.

        Nothing touches the disk before the first use, so building the object does no I/O.
        """
        try:
            return (connections or self._connections).get()
        except (OSError, sqlite3.Error) as exc:
            raise OutboxError(f"cannot open the webhook outbox {self.path}: {exc}") from exc

    def _prepare(self, db: sqlite3.Connection) -> None:
        db.row_factory = sqlite3.Row
        with self._schema_lock:
            if not self._has_schema:
                db.executescript(_TABLE)
                _migrate(db, self.path)
                db.executescript(_INDEXES)
                self._has_schema = True

    def _write(self) -> Transaction:
        return Transaction(self._db(), self._write_lock)

    def close(self) -> None:
        """Close the calling thread's connections (other threads' close when those threads end)."""
        self._connections.close()
        self._outcome_connections.close()

    # --- writing -------------------------------------------------------------------------------

    def on_add(self, callback: Callable[[], None]) -> None:
        """Call `callback()` after every committed add() or requeue() (wakes the dispatcher)."""
        self._callbacks.append(callback)

    def _notify(self) -> None:
        for callback in self._callbacks:
            try:
                callback()
            except Exception:
                logger.exception("outbox: on_add callback failed")

    def publish(self, event: Any, writer: EventAdder | None = None) -> list[str]:
        """Store a webhook event (gateway.live.webhooks) for the default target only; returns [id].

        Through `writer` when given (inside `transaction()`), else in a transaction of its own.
        With several targets, `routing.Router.publish` stands in for this.
        """
        return [(writer or self).add(event.call_key, event.params(), method=event.method)]

    def add(self, call_key: str, params: dict[str, Any], *, method: str | None = None,
            target: str = DEFAULT_TARGET) -> str:
        """Store one event for `target` and return its id (the X-Webhook-Id); committed before this returns.

        `params` is a JSON object of the fields as the CRM sees them. `method` None sends it with
        the target's method; "POST" forces a JSON POST (needed for list values).
        """
        if not self.is_enabled:
            return OutboxWriter.skipped(call_key, params, method)
        with self.transaction() as writer:
            return writer.add(call_key, params, method=method, target=target)

    @contextmanager
    def transaction(self) -> Iterator[OutboxWriter]:
        """One write transaction (BEGIN IMMEDIATE ... COMMIT) on the calling thread's connection.

        Events added through the writer and statements run on `writer.db` commit together, or not
        at all when the block raises. The dispatcher is woken after the commit. With webhooks off,
        `writer.add` records nothing but `writer.db` still works.
        """
        writer = OutboxWriter(self._db(), self.is_enabled, self._clock.time())
        with Transaction(writer.db, self._write_lock):
            yield writer
        if writer.added:
            self._notify()

    def record(self, outcomes: Iterable[Attempt]) -> None:
        """Record several attempts' outcomes in one transaction (one disk sync for a whole burst)."""
        now = self._clock.time()
        with Transaction(self._db(self._outcome_connections), self._write_lock) as db:
            for attempt in outcomes:
                if attempt.state == "delivered":
                    db.execute("UPDATE events SET state = 'delivered', attempts = attempts + 1,"
                               " delivered_at = ?, last_error = NULL WHERE id = ?", (now, attempt.event_id))
                elif attempt.state == "pending":
                    db.execute("UPDATE events SET state = 'pending', attempts = attempts + 1,"
                               " last_error = ?, next_attempt_at = ? WHERE id = ?",
                               (attempt.error, float(attempt.next_attempt_at or now), attempt.event_id))
                else:
                    db.execute("UPDATE events SET state = 'failed', attempts = attempts + 1,"
                               " last_error = ? WHERE id = ?", (attempt.error, attempt.event_id))

    def mark_delivered(self, event_id: str) -> None:
        """Record a successful attempt."""
        self.record([Attempt(event_id, "delivered")])

    def mark_retry(self, event_id: str, error: str, next_attempt_at: float) -> None:
        """Record a failed attempt; the event becomes due again at `next_attempt_at` (epoch s)."""
        self.record([Attempt(event_id, "pending", error, float(next_attempt_at))])

    def mark_failed(self, event_id: str, error: str) -> None:
        """Record a last failed attempt; the event is given up until requeued."""
        self.record([Attempt(event_id, "failed", error)])

    def requeue(self, ids: Iterable[str] | None = None, *, target: str | None = None) -> int:
        """Make failed events (all, or those in `ids`; of every target or of `target`) pending and
        due now; returns how many. Their attempt count and retry window start afresh.
        """
        if not self.is_enabled:
            return 0
        now = self._clock.time()
        sql = ("UPDATE events SET state = 'pending', attempts = 0, next_attempt_at = ?,"
               " retry_since = ? WHERE state = 'failed'")
        if target is not None:
            sql += " AND target = ?"
        scope = (target,) if target is not None else ()
        with self._write() as db:
            if ids is None:
                changed = db.execute(sql, (now, now, *scope)).rowcount
            else:
                changed = sum(db.execute(sql + " AND id = ?", (now, now, *scope, event_id)).rowcount
                              for event_id in ids)
        if changed:
            logger.info("outbox: requeued %d failed events", changed)
            self._notify()
        return changed

    def purge_delivered(self, older_than: datetime | float) -> int:
        """Delete delivered events delivered before `older_than` (datetime or epoch s); returns how many."""
        if not self.is_enabled:
            return 0
        cutoff = older_than.timestamp() if isinstance(older_than, datetime) else float(older_than)
        with self._write() as db:
            return db.execute("DELETE FROM events WHERE state = 'delivered' AND delivered_at < ?",
                              (cutoff,)).rowcount

    # --- reading -------------------------------------------------------------------------------

    def due(self, limit: int, now: float | None = None, *, skip_calls: Iterable[str] = (),
            target: str = DEFAULT_TARGET) -> list[OutboxEvent]:
        """The events of `target` to send now, oldest first: each call's oldest pending event, if due.

        `skip_calls` leaves out calls whose head event is already being sent, so the limit is
        spent on calls that can actually proceed.
        """
        return self.due_and_next(limit, now, skip_calls=skip_calls, target=target)[0]

    def next_due_at(self, *, skip_calls: Iterable[str] = (), target: str = DEFAULT_TARGET) -> float | None:
        """When `target`'s earliest head event (see due) is due, in epoch s; None when there is none."""
        if not self.is_enabled:
            return None
        heads, skip = _grouped(skip_calls, target)
        row = self._db().execute(f"SELECT MIN(e.next_attempt_at) FROM events AS e JOIN ({heads}) AS head"
                                 " ON e.seq = head.seq", skip).fetchone()
        return None if row[0] is None else float(row[0])

    def due_and_next(self, limit: int, now: float | None = None, *, skip_calls: Iterable[str] = (),
                     target: str = DEFAULT_TARGET) -> tuple[list[OutboxEvent], float | None]:
        """`due(limit, now)` and, when fewer than `limit` are due, `next_due_at()` of the rest (None:
        nothing else waits); when `limit` are due, `now` (there may be more). One pass for both."""
        if not self.is_enabled:
            return [], None
        now = self._clock.time() if now is None else float(now)
        heads = self._heads(int(limit), now, skip_calls, target)
        due = [seq for seq, next_at in heads if next_at <= now]
        later = [next_at for _seq, next_at in heads if next_at > now]
        next_at = now if len(due) >= limit else min(later, default=None)
        if not due:
            return [], next_at
        rows = self._db().execute(f"SELECT * FROM events WHERE seq IN ({', '.join('?' * len(due))}) ORDER BY seq",
                                  due).fetchall()
        return [_event(row) for row in rows], next_at

    def _heads(self, limit: int, now: float, skip_calls: Iterable[str], target: str) -> list[tuple[int, float]]:
        """(seq, next_attempt_at) of each of `target`'s calls' oldest pending event, in seq order,
        leaving out `skip_calls`; the scan stops once `limit` of them are due at `now`.

        Walks the pending events in seq order and keeps the first of each call: a burst's due
        heads are found near the start, so the cost follows what is handed out, not the backlog.
        """
        seen = set(skip_calls)
        heads: list[tuple[int, float]] = []
        due = 0
        # A long backlog of events waiting for their retry (a CRM down) would make this walk long on
        # every round: past `cap` rows the heads are grouped by SQLite instead.
        cap = 4 * limit + len(seen) + HEAD_SCAN_ROWS
        for walked, (seq, call_key, next_at) in enumerate(self._db().execute(
                "SELECT seq, call_key, next_attempt_at FROM events WHERE state = 'pending' AND target = ?"
                " ORDER BY seq", (target,))):
            if walked >= cap:
                return self._grouped_due(limit, now, skip_calls, target)
            if call_key in seen:
                continue
            seen.add(call_key)
            heads.append((seq, next_at))
            if next_at <= now:
                due += 1
                if due >= limit:
                    break
        return heads

    def _grouped_due(self, limit: int, now: float, skip_calls: Iterable[str],
                     target: str) -> list[tuple[int, float]]:
        """`_heads` for a long backlog, grouped by SQLite over the pending index: the first `limit`
        due heads, then (seq 0) the earliest time one of the others is due, if any."""
        heads, skip = _grouped(skip_calls, target)
        due = [(int(seq), float(next_at)) for seq, next_at in self._db().execute(
            f"SELECT e.seq, e.next_attempt_at FROM events AS e JOIN ({heads}) AS head ON e.seq = head.seq"
            " WHERE e.next_attempt_at <= ? ORDER BY e.seq LIMIT ?", (*skip, now, limit))]
        if len(due) < limit:
            later = self._db().execute(
                f"SELECT MIN(e.next_attempt_at) FROM events AS e JOIN ({heads}) AS head ON e.seq = head.seq"
                " WHERE e.next_attempt_at > ?", (*skip, now)).fetchone()[0]
            if later is not None:
                due.append((0, float(later)))
        return due

    def get(self, event_id: str) -> OutboxEvent | None:
        """One event by id, or None."""
        if not self.is_enabled:
            return None
        row = self._db().execute("SELECT * FROM events WHERE id = ?", (event_id,)).fetchone()
        return _event(row) if row else None

    def tally(self) -> OutboxCounts:
        """How many events are in each state, over every target."""
        return OutboxCounts.total(self.tally_by_target().values())

    def tally_by_target(self) -> dict[str, OutboxCounts]:
        """The same counts per target name."""
        by_target: dict[str, dict[str, int]] = {}
        if self.is_enabled:
            for target, state, count in self._db().execute(
                    "SELECT target, state, COUNT(*) FROM events GROUP BY target, state"):
                by_target.setdefault(target, {})[state] = count
        return {target: OutboxCounts(**by_state) for target, by_state in by_target.items()}

    def events(self, state: str | None = None, limit: int = 100, *,
               target: str | None = None) -> list[OutboxEvent]:
        """Events in `state` (or all) of `target` (or every target), oldest first, at most `limit`."""
        if state is not None and state not in STATES:
            raise ValueError(f"state must be one of {', '.join(STATES)}, got {state!r}")
        if not self.is_enabled:
            return []
        conditions = [(sql, value) for sql, value in (("state = ?", state), ("target = ?", target))
                      if value is not None]
        where = ("WHERE " + " AND ".join(sql for sql, _ in conditions)) if conditions else ""
        rows = self._db().execute(f"SELECT * FROM events {where} ORDER BY seq LIMIT ?",
                                  (*(value for _, value in conditions), int(limit))).fetchall()
        return [_event(row) for row in rows]

    def failed(self, limit: int = 100) -> list[dict[str, Any]]:
        """The failed events, oldest first, as plain dicts (see OutboxEvent for the keys)."""
        return [event.to_dict() for event in self.events("failed", limit)]


class OutboxWriter:
    """Adds events inside `Outbox.transaction()`; `db` is the transaction's connection."""

    def __init__(self, db: sqlite3.Connection, is_enabled: bool, now: float) -> None:
        self.db = db
        self.added = 0
        self._is_enabled = is_enabled
        self._now = now

    @staticmethod
    def skipped(call_key: str, params: dict[str, Any], method: str | None) -> str:
        """Check an event as add() would and return a fresh id without recording it (webhooks off)."""
        event_id = _new_event_id(params, method)
        logger.debug("webhooks are off; event %s of call %s not recorded", event_id, call_key)
        return event_id

    def add(self, call_key: str, params: dict[str, Any], *, method: str | None = None,
            target: str = DEFAULT_TARGET) -> str:
        """Store one event for `target` (see Outbox.add); committed with the transaction."""
        if not self._is_enabled:
            return self.skipped(call_key, params, method)
        event_id = _new_event_id(params, method)
        body = json.dumps(params, ensure_ascii=False)
        now = self._now
        self.db.execute(
            "INSERT INTO events (id, call_key, params, method, next_attempt_at, created_at,"
            " retry_since, target) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (event_id, call_key, body, method, now, now, now, target))
        self.added += 1
        return event_id


def _new_event_id(params: dict[str, Any], method: str | None) -> str:
    """A fresh event id (uuid4 hex), once `params` and `method` are checked."""
    if not isinstance(params, dict):
        raise TypeError("params must be a dict")
    if method is not None and method not in ("GET", "POST"):
        raise ValueError(f"method must be None, 'GET' or 'POST', got {method!r}")
    return uuid.uuid4().hex


def _grouped(skip_calls: Iterable[str], target: str) -> tuple[str, list[str]]:
    """SQL selecting the seq of each of `target`'s calls' oldest pending event (leaving out
    `skip_calls`), and its parameters."""
    skip = list(skip_calls)
    where = f" AND call_key NOT IN ({', '.join('?' * len(skip))})" if skip else ""
    return (f"SELECT MIN(seq) AS seq FROM events WHERE state = 'pending' AND target = ?{where} GROUP BY call_key",
            [target, *skip])


def _migrate(db: sqlite3.Connection, path: Path) -> None:
    """Bring a file written by an earlier version up to date (idempotent, in one transaction)."""
    columns = {row[1] for row in db.execute("PRAGMA table_info(events)")}
    if "target" not in columns:
        # Rows queued before targets existed were all for [webhooks]: they keep going there.
        db.execute("ALTER TABLE events ADD COLUMN target TEXT NOT NULL DEFAULT 'default'")
        logger.info("outbox %s: added the target column; queued webhooks go to the default target", path)


def _event(row: sqlite3.Row) -> OutboxEvent:
    values = dict(row)
    values["params"] = json.loads(values["params"])
    return OutboxEvent(**values)


# --- for `3cx-gateway outbox list|requeue` -------------------------------------------------------

def _when(epoch_s: float | None) -> str:
    if epoch_s is None:
        return "-"
    return datetime.fromtimestamp(epoch_s, timezone.utc).strftime("%Y-%m-%d %H:%M:%SZ")


def format_event(event: OutboxEvent) -> str:
    """One line describing an event for an administrator (no secrets: params hold none)."""
    line = (f"{event.id}  {event.state:<9}  target={event.target}  call={event.call_key}"
            f"  created={_when(event.created_at)}"
            f"  attempts={event.attempts}")
    if event.state == "pending":
        line += f"  next={_when(event.next_attempt_at)}"
    if event.state == "delivered":
        line += f"  delivered={_when(event.delivered_at)}"
    if event.last_error:
        line += f"  error={event.last_error}"
    event_name = event.params.get("event")
    if event_name is not None:
        line += f"  event={event_name}"
    return line


def list_lines(outbox: Outbox, state: str | None = "failed", limit: int = 100,
               target: str | None = None) -> list[str]:
    """`outbox list`: a summary line of counts, one per target, then one line per event in `state`
    (None: all) of `target` (None: every target)."""
    by_target = outbox.tally_by_target()
    counts = OutboxCounts.total(by_target.values())
    lines = [", ".join(f"{name}: {counts.of(name)}" for name in STATES)]
    lines += [f"target {name}: " + ", ".join(f"{state}: {by_state.of(state)}" for state in STATES)
              for name, by_state in sorted(by_target.items())
              if target is None or name == target]
    lines += [format_event(event) for event in outbox.events(state, limit, target=target)]
    return lines


def requeue_ids(outbox: Outbox, ids: list[str] | None = None, target: str | None = None) -> int:
    """`outbox requeue [ID ...] [--target NAME]`: failed events back to pending (all of them, or
    all of one target, when no ids are given)."""
    return outbox.requeue(ids or None, target=target)
