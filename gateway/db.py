"""The SQLite files the gateway keeps (webhook outbox, gap record, recordings ledger): how they are opened.

Each thread gets its own connection (sqlite3 connections must not be shared between threads), in
autocommit mode (`isolation_level=None`: a write transaction is an explicit `Transaction`), with WAL
so readers never wait for a writer. `synchronous` is the file's durability: FULL survives a power
cut, NORMAL survives a killed process.
"""
from __future__ import annotations

import sqlite3
import threading
import time
from pathlib import Path
from typing import Callable


class ThreadConnections:
    """The calling thread's connection to one SQLite file; `prepare` runs on each new connection
    (the schema, a row factory). Nothing touches the disk before the first `get()`."""

    def __init__(self, path: Path, *, synchronous: str,
                 prepare: Callable[[sqlite3.Connection], object] | None = None) -> None:
        self.path = path
        self._synchronous = synchronous
        self._prepare = prepare
        self._local = threading.local()
        self._opening = threading.Lock()

    def get(self) -> sqlite3.Connection:
        db: sqlite3.Connection | None = getattr(self._local, "db", None)
        if db is None:
            # One at a time: switching a new file to WAL takes an exclusive lock that SQLite does not
            # wait for, so two threads opening it together could see "database is locked".
            with self._opening:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                db = sqlite3.connect(self.path, timeout=30.0, isolation_level=None)
                try:
                    _wal(db)
                    db.execute(f"PRAGMA synchronous={self._synchronous}")
                    if self._prepare is not None:
                        self._prepare(db)
                except BaseException:
                    db.close()
                    raise
            self._local.db = db
        return db

    def close(self) -> None:
        """Close the calling thread's connection (other threads' close when those threads end)."""
        db = getattr(self._local, "db", None)
        if db is not None:
            db.close()
            self._local.db = None


def _wal(db: sqlite3.Connection, attempts: int = 50) -> None:
    """Put the file in WAL mode; another process switching it at the same moment makes SQLite answer
    "locked" at once (no busy wait for this one), so try again for up to about a second."""
    for attempt in range(attempts):
        try:
            db.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or attempt == attempts - 1:
                raise
            time.sleep(0.02)


class Transaction:
    """`with`: BEGIN IMMEDIATE ... COMMIT (ROLLBACK on error) on an autocommit connection, holding
    `lock` throughout when given (the writers of one file in this process queue on it rather than in
    SQLite's busy handler, which sleeps up to 100 ms a try while the write lock is taken)."""

    def __init__(self, db: sqlite3.Connection, lock: threading.Lock | None = None) -> None:
        self._db = db
        self._lock = lock

    def __enter__(self) -> sqlite3.Connection:
        if self._lock is not None:
            self._lock.acquire()
        try:
            self._db.execute("BEGIN IMMEDIATE")
        except BaseException:
            if self._lock is not None:
                self._lock.release()
            raise
        return self._db

    def __exit__(self, kind: object, value: object, traceback: object) -> None:
        try:
            self._db.execute("COMMIT" if kind is None else "ROLLBACK")
        finally:
            if self._lock is not None:
                self._lock.release()
