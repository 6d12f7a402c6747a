"""A process killed with SIGKILL loses no webhook: the next process delivers them, same ids."""
from __future__ import annotations

import subprocess
import sys
from datetime import datetime, timedelta, timezone

import pytest

from gateway.clock import Clock, FakeClock
from gateway.webhooks.delivery import Delivery
from gateway.webhooks.outbox import Outbox, OutboxCounts
from tests.support.webhooks import CHILD_CODE
from tests.support.webhooks import webhooks_config as webhooks


def run_child_and_kill(*args: str) -> list[str]:
    """Run CHILD_CODE with `args`, read the ids it reports, then SIGKILL it; returns the ids."""
    child = subprocess.Popen([sys.executable, "-c", CHILD_CODE, *args],
                             stdout=subprocess.PIPE, text=True)
    try:
        ids = []
        for line in child.stdout:
            if line.strip() == "ready":
                break
            ids.append(line.strip())
        else:
            pytest.fail(f"child ended early with {child.wait()}")
    finally:
        child.kill()  # SIGKILL: no cleanup, no atexit, no SQLite close
        child.wait()
        child.stdout.close()
    assert child.returncode == -9
    return ids


def test_events_of_a_killed_process_are_delivered_by_the_next(receiver, tmp_path):
    path = tmp_path / "state" / "outbox.sqlite3"
    ids = run_child_and_kill(str(path), "4", "3")

    clock = Clock()
    outbox = Outbox(path, clock=clock)
    delivery = Delivery(outbox, webhooks(url=receiver.url), clock=clock)
    delivery.start()
    try:
        got = receiver.wait_for(12)
    finally:
        delivery.stop(timeout_s=5)

    assert not delivery.is_running
    assert sorted(r.headers["X-Webhook-Id"] for r in got) == sorted(ids)
    for k in range(3):
        in_call = [r.headers["X-Webhook-Id"] for r in got if r.params["call"] == f"call-{k}"]
        assert in_call == [i for n, i in enumerate(ids) if n % 3 == k]
    assert outbox.tally() == OutboxCounts(pending=0, failed=0, delivered=12)


def test_events_retried_by_a_killed_process_keep_their_ids_and_attempts(receiver, tmp_path):
    path = tmp_path / "outbox.sqlite3"
    receiver.status = 503
    ids = run_child_and_kill(str(path), "2", "2", receiver.url)
    receiver.status = 200
    refused_before_restart = receiver.refused

    clock = FakeClock(datetime.now(timezone.utc) + timedelta(hours=1))
    outbox = Outbox(path, clock=clock)
    Delivery(outbox, webhooks(url=receiver.url), clock=clock).run_due()

    assert refused_before_restart == 2
    got = receiver.wait_for(4)
    assert [r.headers["X-Webhook-Id"] for r in got] == ids
    assert [outbox.get(i).attempts for i in ids] == [2, 2, 1, 1]
