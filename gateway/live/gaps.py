"""What the gateway observed and reported, kept durably so an outage or restart can be closed.

One SQLite file in `[storage] state_dir` (`recovery.sqlite3`), WAL with `synchronous=NORMAL` (what a
killed process committed survives), one connection per thread. It holds:
- `observed_until`: the time up to which the PBX was observed continuously (event stream connected
  and synced), and `open_since`: the arrival of the oldest call in progress at that time;
- `calls`: every call the gateway reported live: its DNs, outside numbers, start and end, and,
  while it is open, the live model's state of it (to complete it after a restart);
- `recovered`: the MainCallHistoryIds sent from the call history (never sent twice);
- `gaps`: gaps the call history could not cover, for /healthz and doctor.
Times are aware UTC datetimes in the API, epoch seconds in the file.
"""
from __future__ import annotations

import json
import logging
import sqlite3
import threading
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from gateway.db import ThreadConnections, Transaction
from gateway.live.history import KnownCall

logger = logging.getLogger(__name__)

FILENAME = "recovery.sqlite3"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS observed (
    id             INTEGER PRIMARY KEY CHECK (id = 1),
    until          REAL NOT NULL,
    open_since     REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS calls (
    key            TEXT PRIMARY KEY,
    dns            TEXT NOT NULL,
    numbers        TEXT NOT NULL,
    started_at     REAL NOT NULL,
    ended_at       REAL,
    state          TEXT,
    updated_at     REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS calls_by_start ON calls (started_at);
CREATE TABLE IF NOT EXISTS recovered (
    main_id        TEXT PRIMARY KEY,
    key            TEXT NOT NULL,
    at             REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS gaps (
    seq            INTEGER PRIMARY KEY AUTOINCREMENT,
    since          REAL NOT NULL,
    until          REAL NOT NULL,
    reason         TEXT NOT NULL,
    noted_at       REAL NOT NULL
);
"""


@dataclass(frozen=True)
class UncoveredGap:
    """A time range whose calls could not be read from the call history, and why."""

    since: datetime
    until: datetime
    reason: str
    noted_at: datetime

    def describe(self) -> str:
        return (f"calls between {self.since:%Y-%m-%d %H:%M:%S} and {self.until:%Y-%m-%d %H:%M:%S} UTC were not "
                f"recovered from the call history: {self.reason}")


def gaps_path(state_dir: str | Path) -> Path:
    """The file inside `[storage] state_dir` (the service and doctor must agree on it)."""
    return Path(state_dir) / FILENAME


class GapStore:
    """The durable record of observation, reported calls and uncovered gaps; safe from any thread."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._schema_lock = threading.Lock()
        # WAL with synchronous=NORMAL survives a killed process; one fsync per checkpoint.
        self._connections = ThreadConnections(self.path, synchronous="NORMAL", prepare=self._prepare)

    def _db(self) -> sqlite3.Connection:
        return self._connections.get()

    def _prepare(self, db: sqlite3.Connection) -> None:
        with self._schema_lock:
            db.executescript(_SCHEMA)

    def close(self) -> None:
        self._connections.close()

    # --- observation ---------------------------------------------------------------------------

    def observed(self) -> tuple[datetime, datetime] | None:
        """(observed_until, open_since), or None before the PBX was ever observed."""
        row = self._db().execute("SELECT until, open_since FROM observed WHERE id = 1").fetchone()
        return None if row is None else (_time(row[0]), _time(row[1]))

    def observe(self, until: datetime, open_since: datetime) -> None:
        """The PBX was observed continuously up to `until`; the oldest open call arrived at `open_since`."""
        self._db().execute("INSERT INTO observed (id, until, open_since) VALUES (1, ?, ?) "
                           "ON CONFLICT (id) DO UPDATE SET until = excluded.until, open_since = excluded.open_since",
                           (until.timestamp(), min(open_since, until).timestamp()))

    # --- reported calls ------------------------------------------------------------------------

    def note_call(self, known: KnownCall, state: str | None) -> None:
        """Record (or widen) a call the gateway reported; `state` (live/store.py `call_json`) None
        once it has ended."""
        self.note_calls([(known, state)])

    def note_calls(self, calls: list[tuple[KnownCall, str | None]]) -> None:
        """`note_call` for several calls in one transaction."""
        db = self._db()
        now = datetime.now(timezone.utc).timestamp()
        with Transaction(db):
            for known, state in calls:
                row = db.execute("SELECT dns, numbers, started_at, ended_at FROM calls WHERE key = ?",
                                 (known.key,)).fetchone()
                dns, numbers, started = set(known.dns), set(known.numbers), known.started_at.timestamp()
                ended = known.ended_at.timestamp() if known.ended_at else None
                if row is not None:
                    dns |= set(json.loads(row[0]))
                    numbers |= set(json.loads(row[1]))
                    started = min(started, row[2])
                    ended = ended if ended is not None else row[3]
                db.execute("INSERT OR REPLACE INTO calls (key, dns, numbers, started_at, ended_at, state, updated_at) "
                           "VALUES (?, ?, ?, ?, ?, ?, ?)",
                           (known.key, json.dumps(sorted(dns)), json.dumps(sorted(n for n in numbers if n)),
                            started, ended, None if ended is not None else state, now))

    def known_calls(self, since: datetime) -> list[KnownCall]:
        """Calls reported live that started at `since` or later, or are still open."""
        rows = self._db().execute(
            "SELECT key, dns, numbers, started_at, ended_at FROM calls WHERE ended_at IS NULL OR started_at >= ? "
            "ORDER BY started_at", (since.timestamp(),)).fetchall()
        return [KnownCall(key, frozenset(json.loads(dns)), frozenset(json.loads(numbers)), _time(started),
                          None if ended is None else _time(ended)) for key, dns, numbers, started, ended in rows]

    def open_states(self) -> dict[str, dict[str, Any]]:
        """key → saved live state of every reported call not seen to end."""
        rows = self._db().execute("SELECT key, state FROM calls WHERE ended_at IS NULL AND state IS NOT NULL")
        return {key: json.loads(state) for key, state in rows.fetchall()}

    def close_call(self, key: str, ended_at: datetime) -> None:
        """A reported call is over (completed, or given up on)."""
        self._db().execute("UPDATE calls SET ended_at = COALESCE(ended_at, ?), state = NULL WHERE key = ?",
                           (ended_at.timestamp(), key))

    # --- recovered calls -----------------------------------------------------------------------

    def is_recovered(self, main_id: str) -> bool:
        return self._db().execute("SELECT 1 FROM recovered WHERE main_id = ?", (main_id,)).fetchone() is not None

    def mark_recovered(self, main_id: str, key: str) -> None:
        """A history call was sent (as call `key`): never again."""
        self._db().execute("INSERT OR IGNORE INTO recovered (main_id, key, at) VALUES (?, ?, ?)",
                           (main_id, key, datetime.now(timezone.utc).timestamp()))

    # --- gaps the history could not cover ------------------------------------------------------

    def note_uncovered(self, since: datetime, until: datetime, reason: str) -> None:
        self._db().execute("INSERT INTO gaps (since, until, reason, noted_at) VALUES (?, ?, ?, ?)",
                           (since.timestamp(), until.timestamp(), reason, datetime.now(timezone.utc).timestamp()))

    def uncovered(self, noted_since: datetime, limit: int = 20) -> list[UncoveredGap]:
        """Gaps noted since `noted_since`, newest first."""
        rows = self._db().execute("SELECT since, until, reason, noted_at FROM gaps WHERE noted_at >= ? "
                                  "ORDER BY seq DESC LIMIT ?", (noted_since.timestamp(), limit)).fetchall()
        return [UncoveredGap(_time(a), _time(b), reason, _time(at)) for a, b, reason, at in rows]

    def purge(self, older_than: datetime) -> int:
        """Forget ended calls, recovered ids and gaps older than `older_than`; the count removed."""
        cut = older_than.timestamp()
        db = self._db()
        with Transaction(db):
            removed = db.execute("DELETE FROM calls WHERE ended_at IS NOT NULL AND ended_at < ?", (cut,)).rowcount
            removed += db.execute("DELETE FROM recovered WHERE at < ?", (cut,)).rowcount
            removed += db.execute("DELETE FROM gaps WHERE noted_at < ?", (cut,)).rowcount
        return removed


def _time(epoch_s: float) -> datetime:
    return datetime.fromtimestamp(epoch_s, tz=timezone.utc)
