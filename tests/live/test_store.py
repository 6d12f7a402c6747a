"""The live call table on disk: rows round-trip, and a call's row commits only with its webhook events."""
from __future__ import annotations

from dataclasses import dataclass, replace

import pytest

from gateway.clock import FakeClock
from gateway.live.machine import LegGone, Rules, advance
from gateway.live.model import Call
from gateway.live.store import CallStore, StoredCall
from gateway.live.webhooks import CallEnded
from gateway.webhooks.outbox import Outbox
from tests.support.live import T0, ZONE, at, seen

RULES = Rules(timezone=ZONE, end_grace_s=3)


@pytest.fixture
def outbox(tmp_path):
    """A real outbox file under tmp_path."""
    return Outbox(tmp_path / "outbox.sqlite3", clock=FakeClock(T0))


def talking_call() -> tuple[Call, list]:
    """A call answered by 101 after a blind transfer from 102 (so it has finished legs and two links)."""
    call, out = advance(None, seen("102", 1, "Ringing", 0), RULES)
    call, more = advance(call, seen("102", 1, "Connected", 5), RULES)
    out += more
    by_102 = {"referred_by_dn": "102", "referred_by_type": "Wextension"}
    call, more = advance(call, seen("101", 2, "Ringing", 20, **by_102), RULES)
    out += more
    call, more = advance(call, LegGone("102", 1, at(20)), RULES)
    out += more
    call, more = advance(call, seen("101", 2, "Connected", 25, **by_102), RULES)
    return call, out + more


def test_stored_call_reads_back_equal(outbox):
    call, webhooks = talking_call()
    ends = [w for w in webhooks if isinstance(w, CallEnded)]
    store = CallStore(outbox)

    store.commit(call.v20_call_id, call, webhooks, ends)

    assert CallStore(outbox).load() == [StoredCall(call, tuple(ends))]
    assert [e.params["event"] for e in outbox.events()] == [w.params()["event"] for w in webhooks]


def test_call_whose_end_waits_for_its_grace_period_reads_back_equal(outbox):
    call, _ = advance(None, seen("101", 1, "Ringing", 0), RULES)
    call, _ = advance(call, LegGone("101", 1, at(20)), RULES)
    store = CallStore(outbox)

    store.commit(call.v20_call_id, call, [], [])

    [stored] = CallStore(outbox).load()
    assert stored.call == call and stored.call.is_ending and stored.call.last_gone.leg.dn == "101"


def test_ended_call_leaves_the_table(outbox):
    call, _ = talking_call()
    store = CallStore(outbox)
    store.commit(call.v20_call_id, call, [], [])

    store.commit(call.v20_call_id, replace(call, ended_at=at(60)), [], [])

    assert store.load() == []


@dataclass(frozen=True)
class Unsendable:
    """A webhook event whose params cannot be stored (not JSON)."""

    call_key: str = "k"
    kind = "ringing"
    method = None
    facts = None

    def params(self) -> dict:
        return {"event": object()}


def test_failed_commit_keeps_neither_the_events_nor_the_row(outbox):
    call, webhooks = talking_call()
    store = CallStore(outbox)

    with pytest.raises(TypeError):
        store.commit(call.v20_call_id, call, [*webhooks, Unsendable()], [])

    assert outbox.events() == [] and store.load() == []


def test_stored_end_events_keep_the_facts_target_filters_read(outbox):
    q = {"on_behalf_of_dn": "800", "on_behalf_of_type": "Wqueue"}
    call, out = advance(None, seen("101", 1, "Ringing", 0, **q), RULES)
    call, more = advance(call, seen("101", 1, "Connected", 5, **q), RULES)
    call, ends = advance(call, LegGone("101", 1, at(30)), RULES)
    [end] = [w for w in ends if isinstance(w, CallEnded)]
    store = CallStore(outbox)

    store.commit(call.v20_call_id, replace(call, ended_at=None), [], [end])

    [stored] = CallStore(outbox).load()
    assert stored.answered_ends[0].facts == end.facts and end.facts is not None
    assert end.facts.queues == ("800",) and stored.call.queues == ("800",)
