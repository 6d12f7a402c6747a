"""Which recording went to which leg, kept in SQLite so a restart does not forget.

A recording is claimed for one leg before it is converted and announced; once claimed it is never
offered to another leg (`claimed_by`), and a second claim for another leg fails. A recording has
several names (`Candidate.keys`: its PBX id and, when read from disk, its file), and a claim covers
them all. Rows older than `keep_days` are pruned at start: by then no tight window can reach them.
Every thread opens its own connection.
"""
from __future__ import annotations

import logging
import sqlite3
import threading
from pathlib import Path
from typing import Iterable

from gateway.clock import Clock
from gateway.db import ThreadConnections

logger = logging.getLogger(__name__)

FILENAME = "recordings.sqlite3"
KEEP_DAYS = 14

_SCHEMA = """
CREATE TABLE IF NOT EXISTS claimed (
    recording_key TEXT PRIMARY KEY,
    leg_id TEXT NOT NULL,
    claimed_at REAL NOT NULL
);
"""


class LedgerError(Exception):
    """The ledger's database cannot be opened or written."""


def ledger_path(state_dir: str | Path) -> Path:
    """The ledger file inside `[storage] state_dir`."""
    return Path(state_dir) / FILENAME


class RecordingLedger:
    """The durable map recording name -> leg id; safe to call from any thread."""

    def __init__(self, path: str | Path, *, clock: Clock) -> None:
        self.path = Path(path)
        self._clock = clock
        self._lock = threading.Lock()          # claims are check-then-insert: one at a time
        self._connections = ThreadConnections(self.path, synchronous="FULL",
                                              prepare=lambda db: db.executescript(_SCHEMA))

    def _db(self) -> sqlite3.Connection:
        try:
            return self._connections.get()
        except (OSError, sqlite3.Error) as exc:
            raise LedgerError(f"cannot open the recordings ledger {self.path}: {exc}") from exc

    def claimed_by(self, keys: Iterable[str]) -> dict[str, str]:
        """recording name -> the leg id it was claimed for, for those of `keys` that are claimed."""
        keys = list(keys)
        if not keys:
            return {}
        marks = ",".join("?" * len(keys))
        try:
            rows = self._db().execute(f"SELECT recording_key, leg_id FROM claimed WHERE recording_key IN ({marks})",
                                      keys).fetchall()
        except sqlite3.Error as exc:
            raise LedgerError(f"cannot read the recordings ledger: {exc}") from exc
        return {key: leg_id for key, leg_id in rows}

    def claim(self, keys: Iterable[str], leg_id: str) -> bool:
        """Claim a recording (all its names) for `leg_id`; False when another leg has it already."""
        keys = list(dict.fromkeys(keys))
        with self._lock:
            db = self._db()
            try:
                db.execute("BEGIN IMMEDIATE")     # the check and the insert as one step
                owners = set(self.claimed_by(keys).values())
                if owners - {leg_id}:
                    db.execute("ROLLBACK")
                    return False
                db.executemany("INSERT OR IGNORE INTO claimed (recording_key, leg_id, claimed_at) VALUES (?, ?, ?)",
                               [(key, leg_id, self._clock.time()) for key in keys])
                db.execute("COMMIT")
            except (sqlite3.Error, LedgerError) as exc:
                if db.in_transaction:
                    db.execute("ROLLBACK")
                raise LedgerError(f"cannot write the recordings ledger: {exc}") from exc
        return True

    def prune(self, keep_days: float = KEEP_DAYS) -> int:
        """Forget claims older than `keep_days`; how many rows went."""
        try:
            cursor = self._db().execute("DELETE FROM claimed WHERE claimed_at < ?",
                                        (self._clock.time() - keep_days * 86400,))
        except sqlite3.Error as exc:
            raise LedgerError(f"cannot prune the recordings ledger: {exc}") from exc
        return cursor.rowcount

    def close(self) -> None:
        """Close the calling thread's connection."""
        self._connections.close()
