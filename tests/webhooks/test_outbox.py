"""Outbox: durable storage, per-call ordering in due(), failure, requeue and housekeeping."""
from __future__ import annotations

import sqlite3
import threading

import pytest

from gateway.webhooks.outbox import Outbox, OutboxCounts, OutboxError, list_lines, outbox_path, requeue_ids


@pytest.fixture
def outbox(tmp_path, clock):
    """An outbox in a folder that does not exist yet."""
    return Outbox(tmp_path / "state" / "deep" / "outbox.sqlite3", clock=clock)


def heads(outbox: Outbox, **kwargs) -> list[tuple[str, object]]:
    return [(event.call_key, event.params["n"]) for event in outbox.due(100, **kwargs)]


def test_add_writes_before_returning_and_creates_the_folder(outbox):
    event_id = outbox.add("call-1", {"event": "ringing", "user": "101"})

    with sqlite3.connect(outbox.path) as other:
        rows = other.execute("SELECT id, call_key, params, state, attempts FROM events").fetchall()
    assert rows == [(event_id, "call-1", '{"event": "ringing", "user": "101"}', "pending", 0)]
    assert len(event_id) == 32 and int(event_id, 16) >= 0


def test_outbox_uses_wal(outbox):
    outbox.add("call-1", {})

    with sqlite3.connect(outbox.path) as other:
        assert other.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_building_an_outbox_touches_no_disk(tmp_path, clock):
    Outbox(tmp_path / "never" / "outbox.sqlite3", clock=clock)

    assert not (tmp_path / "never").exists()


def test_params_round_trip_with_lists_and_unicode(outbox):
    params = {"FILES": ["https://gw/webapi/recording/1-1.mp3"], "title": "Žluťoučký kůň", "n": 0}

    event_id = outbox.add("call-1", params, method="POST")

    [event] = outbox.due(10)
    assert (event.id, event.params, event.method) == (event_id, params, "POST")
    assert list(event.params) == ["FILES", "title", "n"]


def test_due_returns_only_the_oldest_event_of_each_call(outbox):
    for n in range(3):
        outbox.add("call-a", {"n": n})
        outbox.add("call-b", {"n": n})

    first = heads(outbox)
    outbox.mark_delivered(outbox.due(1)[0].id)
    second = heads(outbox)

    assert first == [("call-a", 0), ("call-b", 0)]
    assert second == [("call-b", 0), ("call-a", 1)]


def test_due_holds_back_a_call_until_its_retry_time(outbox, clock):
    outbox.add("call-a", {"n": 0})
    outbox.add("call-a", {"n": 1})
    outbox.add("call-b", {"n": 0})
    head = outbox.due(1)[0]

    outbox.mark_retry(head.id, "HTTP 503", clock.time() + 30)

    assert heads(outbox) == [("call-b", 0)]
    assert heads(outbox, now=clock.time() + 30) == [("call-a", 0), ("call-b", 0)]
    assert outbox.next_due_at(skip_calls=["call-b"]) == clock.time() + 30
    assert outbox.get(head.id).attempts == 1 and outbox.get(head.id).last_error == "HTTP 503"


def test_due_skips_calls_already_in_flight(outbox):
    outbox.add("call-a", {"n": 0})
    outbox.add("call-b", {"n": 0})

    assert heads(outbox, skip_calls=["call-a"]) == [("call-b", 0)]


def test_failed_event_lets_the_next_event_of_its_call_go(outbox):
    first = outbox.add("call-a", {"n": 0})
    outbox.add("call-a", {"n": 1})

    outbox.mark_failed(first, "HTTP 404")

    assert heads(outbox) == [("call-a", 1)]
    assert outbox.tally() == OutboxCounts(pending=1, failed=1, delivered=0)
    [failed] = outbox.failed()
    assert (failed["id"], failed["state"], failed["last_error"], failed["attempts"]) == \
        (first, "failed", "HTTP 404", 1)


def test_requeue_makes_failed_events_due_again_first_in_their_call(outbox, clock):
    first = outbox.add("call-a", {"n": 0})
    outbox.add("call-a", {"n": 1})
    other = outbox.add("call-b", {"n": 0})
    outbox.mark_failed(first, "HTTP 404")
    outbox.mark_failed(other, "HTTP 404")
    clock.advance(3600)

    requeued = outbox.requeue([first, "no-such-id"])

    assert requeued == 1
    assert heads(outbox) == [("call-a", 0)]
    event = outbox.get(first)
    assert (event.state, event.attempts, event.retry_since) == ("pending", 0, clock.time())
    assert outbox.requeue() == 1 and outbox.tally().failed == 0


def test_on_add_is_called_after_add_and_requeue(outbox):
    calls = []
    outbox.on_add(lambda: calls.append(outbox.tally().pending))

    event_id = outbox.add("call-a", {"n": 0})
    outbox.mark_failed(event_id, "HTTP 400")
    outbox.requeue()

    assert calls == [1, 1]


def test_purge_delivered_keeps_recent_and_undelivered_events(outbox, clock):
    old = outbox.add("call-a", {"n": 0})
    outbox.mark_delivered(old)
    clock.advance(86400)
    recent = outbox.add("call-a", {"n": 1})
    outbox.mark_delivered(recent)
    outbox.add("call-a", {"n": 2})

    purged = outbox.purge_delivered(clock.now())

    assert purged == 1
    assert outbox.get(old) is None and outbox.get(recent).state == "delivered"
    assert outbox.tally() == OutboxCounts(pending=1, failed=0, delivered=1)


def test_threads_add_concurrently_each_with_its_own_connection(outbox):
    def add_many(key: str) -> None:
        for n in range(25):
            outbox.add(key, {"n": n})

    threads = [threading.Thread(target=add_many, args=(f"call-{k}",)) for k in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert outbox.tally().pending == 100
    assert sorted(heads(outbox)) == [(f"call-{k}", 0) for k in range(4)]


def test_disabled_outbox_records_nothing(tmp_path, clock):
    outbox = Outbox(tmp_path / "off" / "outbox.sqlite3", clock=clock, enabled=False)

    event_id = outbox.add("call-a", {"n": 0})

    assert len(event_id) == 32
    assert outbox.due(10) == [] and outbox.tally() == OutboxCounts(pending=0, failed=0, delivered=0)
    assert not (tmp_path / "off").exists()


def test_unusable_folder_is_a_clear_error(tmp_path, clock):
    (tmp_path / "file").write_text("not a folder")
    outbox = Outbox(tmp_path / "file" / "outbox.sqlite3", clock=clock)

    with pytest.raises(OutboxError, match="cannot open the webhook outbox .*outbox.sqlite3"):
        outbox.add("call-a", {})


def test_add_rejects_a_bad_method(outbox):
    with pytest.raises(ValueError, match="method"):
        outbox.add("call-a", {}, method="PUT")


def test_cli_functions_list_and_requeue(tmp_path, clock):
    outbox = Outbox(outbox_path(tmp_path), clock=clock)
    bad = outbox.add("call-a", {"event": "ringing"})
    outbox.mark_failed(bad, "HTTP 404")
    outbox.add("call-b", {"event": "incoming"})

    lines = list_lines(outbox)
    requeued = requeue_ids(outbox, [])

    assert outbox_path(tmp_path).name == "outbox.sqlite3"
    assert lines[:2] == ["pending: 1, delivered: 0, failed: 1", "target default: pending: 1, delivered: 0, failed: 1"]
    assert len(lines) == 3 and lines[2].startswith(bad) and "error=HTTP 404" in lines[2]
    assert "event=ringing" in lines[2] and "call=call-a" in lines[2] and "target=default" in lines[2]
    assert requeued == 1 and outbox.tally().failed == 0


def test_each_target_is_its_own_queue(outbox):
    outbox.add("call-a", {"n": 1}, target="crm")
    outbox.add("call-a", {"n": 2})
    outbox.add("call-a", {"n": 3}, target="crm")

    crm_before = heads(outbox, target="crm")
    default = heads(outbox)           # call-a's head at crm (n=1) does not hold back the default's
    outbox.mark_delivered(outbox.due(1, target="crm")[0].id)

    assert crm_before == [("call-a", 1)] and default == [("call-a", 2)]
    assert heads(outbox, target="crm") == [("call-a", 3)]
    assert outbox.tally_by_target() == {"crm": OutboxCounts(pending=1, delivered=1, failed=0),
                                         "default": OutboxCounts(pending=1, delivered=0, failed=0)}


def test_a_long_backlog_waiting_for_retries_still_yields_the_one_due_head_in_order(outbox, clock):
    waiting = []
    with outbox.transaction() as writer:
        for k in range(300):
            waiting.append(writer.add(f"call-{k}", {"n": 0}))
            writer.add(f"call-{k}", {"n": 1})
    later = clock.time() + 60
    for event_id in waiting[:-1]:
        outbox.mark_retry(event_id, "HTTP 503", later)     # every call but the last waits for its retry

    assert heads(outbox) == [("call-299", 0)]               # 600 pending rows: past the in-order walk
    assert outbox.due(2, clock.time(), skip_calls=["call-299"]) == []
    assert outbox.next_due_at(skip_calls=["call-299"]) == later
    assert outbox.due_and_next(5, clock.time())[1] == later
    assert [e.params["n"] for e in outbox.due(300, later) if e.call_key == "call-7"] == [0]
