"""An outbox written by the version before webhook targets is migrated on open, and what it queued
still goes to the default target ([webhooks]), not to a newly configured one."""
from __future__ import annotations

import json
import sqlite3

from gateway.clock import Clock
from gateway.config import WebhookTarget
from gateway.webhooks.delivery import Deliveries
from gateway.webhooks.outbox import Outbox, OutboxCounts, list_lines
from tests.support.wait import wait_until

# The file layout of the previous version (commit e5c5e82, gateway/webhooks/outbox.py), verbatim.
PREVIOUS_SCHEMA = """
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
    retry_since     REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS events_pending_by_call ON events (call_key, seq) WHERE state = 'pending';
CREATE INDEX IF NOT EXISTS events_by_state ON events (state, seq);
"""


def previous_version_file(path, rows: list[tuple[str, str, dict, str]]) -> None:
    """An outbox file as the previous version left it: (id, call_key, params, state) rows."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with sqlite3.connect(path) as db:
        db.execute("PRAGMA journal_mode=WAL")
        db.executescript(PREVIOUS_SCHEMA)
        for event_id, call_key, params, state in rows:
            db.execute("INSERT INTO events (id, call_key, params, state, next_attempt_at, created_at, retry_since)"
                       " VALUES (?, ?, ?, ?, 0, 0, 0)", (event_id, call_key, json.dumps(params), state))
    db.close()


def test_events_queued_before_the_upgrade_go_to_the_default_target(receiver, tmp_path):
    path = tmp_path / "state" / "outbox.sqlite3"
    previous_version_file(path, [
        ("a" * 32, "261124100000_1", {"event": "ringing", "user": "101", "id": "261124100000_1-0"}, "pending"),
        ("b" * 32, "261124100000_1", {"event": "incoming", "user": "101", "id": "261124100000_1-0"}, "pending"),
        ("c" * 32, "261124100000_0", {"event": "outgoing", "user": "102", "id": "261124100000_0-1"}, "failed"),
    ])
    from tests.support.receiver import Receiver
    other = Receiver()
    clock = Clock()
    outbox = Outbox(path, clock=clock)
    deliveries = Deliveries(outbox, [WebhookTarget("default", receiver.url), WebhookTarget("crm", other.url)],
                            clock=clock)

    deliveries.start()
    try:
        receiver.wait_for(2)
        wait_until(lambda: outbox.tally().pending == 0, timeout_s=10)
    finally:
        deliveries.stop(5)
        other.stop()

    assert [(r.headers["X-Webhook-Id"], r.params["event"]) for r in receiver.received] == [
        ("a" * 32, "ringing"), ("b" * 32, "incoming")]
    assert other.received == []
    assert outbox.tally_by_target() == {"default": OutboxCounts(pending=0, delivered=2, failed=1)}
    assert f"{'c' * 32}  failed     target=default" in "\n".join(list_lines(outbox))


def test_opening_a_migrated_file_again_changes_nothing(tmp_path):
    path = tmp_path / "outbox.sqlite3"
    previous_version_file(path, [("a" * 32, "k", {"n": 1}, "pending")])
    Outbox(path, clock=Clock()).tally()

    again = Outbox(path, clock=Clock())
    again.add("k", {"n": 2}, target="crm")

    assert [(e.target, e.params["n"]) for e in again.events()] == [("default", 1), ("crm", 2)]
    assert [e.params["n"] for e in again.due(10, target="default")] == [1]
    assert [e.params["n"] for e in again.due(10, target="crm")] == [2]
