"""Bursts: participant reads run in parallel, events are applied in the order they arrived, and a
participant gone before its read is still reported (from the call history)."""
from __future__ import annotations

import re
import threading

from gateway.live.webhooks import CallEnded
from gateway.sim.scenarios import inbound
from tests.live.test_watcher import Parts, StandInPbx, remove, upsert
from tests.support.live import CALLER, DID, participant
from tests.support.simulator import slow_timeouts
from tests.support.wait import wait_until

RECOVERED = "recovered from call history"


class GatedPbx(StandInPbx):
    """A stand-in PBX whose participant reads wait until the test opens that participant's gate;
    `answered` lists the reads in the order they were answered."""

    def __init__(self) -> None:
        super().__init__()
        self.gates: dict[tuple[str, int], threading.Event] = {}
        self.answered: list[tuple[str, int]] = []
        self._lock = threading.Lock()

    def gate(self, dn: str, participant_id: int) -> threading.Event:
        with self._lock:
            return self.gates.setdefault((dn, participant_id), threading.Event())

    def participant(self, dn: str, participant_id: int) -> dict:
        assert self.gate(dn, participant_id).wait(10), f"gate {dn}/{participant_id} never opened"
        try:
            return super().participant(dn, participant_id)
        finally:
            with self._lock:
                self.answered.append((dn, participant_id))


class GapWatchStandIn:
    """Records what the watcher hands to gap recovery."""

    def __init__(self) -> None:
        self.deferred: list[tuple[int, list, list | None]] = []
        self.unread_legs: list[tuple[str, object]] = []

    def reported(self, call, webhooks) -> None:
        return None

    def defer(self, call, ends, *, fallback=None) -> None:
        self.deferred.append((call.v20_call_id, ends, fallback))

    def unread(self, dn, at) -> None:
        self.unread_legs.append((dn, at))

    def synced(self) -> None:
        return None

    def lost(self) -> None:
        return None


def test_events_of_interleaved_calls_apply_in_arrival_order_while_reads_finish_out_of_order(tmp_path):
    pbx = GatedPbx()
    parts = Parts(tmp_path, pbx=pbx)
    for n, dn in enumerate(["101", "102", "103"], start=1):
        pbx.put(participant(dn, n, "Ringing", call=700 + n))
    for n, dn in enumerate(["101", "102", "103"], start=1):
        parts.watcher.submit(upsert(dn, n))

    pbx.gate("103", 3).set()
    pbx.gate("102", 2).set()
    wait_until(lambda: len(pbx.answered) == 2, timeout_s=5)
    assert parts.watcher.status().backlog == 3            # nothing applied before the first read is back
    pbx.gate("101", 1).set()
    wait_until(lambda: len(parts.sent()) == 3, timeout_s=5)
    for n, dn in enumerate(["101", "102", "103"], start=1):
        pbx.put(participant(dn, n, "Connected", call=700 + n))
    for n, dn in reversed(list(enumerate(["101", "102", "103"], start=1))):
        parts.watcher.submit(upsert(dn, n))
    wait_until(lambda: len(parts.sent()) == 6, timeout_s=5)
    for n, dn in enumerate(["101", "102", "103"], start=1):
        pbx.drop(dn, n)
        parts.watcher.submit(remove(dn, n))
    wait_until(lambda: len(parts.sent()) == 9, timeout_s=5)

    assert pbx.answered[:3] == [("103", 3), ("102", 2), ("101", 1)]
    sent = [(params["user"], params["event"]) for _key, params in parts.sent()]
    assert sent[:3] == [("101", "ringing"), ("102", "ringing"), ("103", "ringing")]
    for dn in ("101", "102", "103"):
        assert [event for user, event in sent if user == dn] == ["ringing", "hangupincoming", "incoming"]
    parts.watcher.stop(5)


def test_lag_and_read_queue_show_while_a_read_is_slow(tmp_path):
    pbx = GatedPbx()
    parts = Parts(tmp_path, pbx=pbx)
    pbx.put(participant("101", 1, "Ringing"))
    parts.watcher.submit(upsert("101", 1))
    parts.clock.advance(4)

    status = parts.watcher.status()
    pbx.gate("101", 1).set()
    wait_until(lambda: parts.watcher.status().backlog == 0, timeout_s=5)

    assert (status.lag_s, status.backlog) == (4.0, 1)
    assert status.reads is not None and status.reads.queued + status.reads.running == 1
    assert parts.watcher.status().lag_s == 0.0
    parts.watcher.stop(5)


def test_a_call_that_lost_its_answer_reading_waits_for_the_call_history_instead_of_ending_missed(tmp_path):
    parts = Parts(tmp_path)
    recovery = GapWatchStandIn()
    parts.watcher._recovery = recovery
    parts.pbx.put(participant("101", 1, "Ringing"))
    parts.watcher.handle(upsert("101", 1))
    parts.pbx.drop("101", 1)                    # answered and hung up before the gateway read it

    parts.watcher.handle(upsert("101", 1))
    parts.watcher.handle(remove("101", 1))

    assert [p["event"] for _key, p in parts.sent()] == ["ringing"]
    [(call_id, ends, fallback)] = recovery.deferred
    assert call_id == 698 and ends == []
    assert [(e.finishtype, e.user) for e in fallback if isinstance(e, CallEnded)] == [("Missed", "101")]
    assert parts.watcher.status().unread_legs == 1 and parts.table.calls() == []


def test_a_participant_gone_before_its_first_read_is_looked_up_in_the_call_history(tmp_path):
    parts = Parts(tmp_path)
    recovery = GapWatchStandIn()
    parts.watcher._recovery = recovery

    parts.watcher.handle(upsert("101", 9))

    assert [dn for dn, _at in recovery.unread_legs] == ["101"]
    assert parts.watcher.status().unread_legs == 1 and parts.sent() == []


def _metric(client, name: str) -> float:
    match = re.search(rf"^{re.escape(name)} (\S+)$", client.get("/metrics").get_data(as_text=True), re.M)
    return float(match.group(1)) if match else -1.0


def test_a_call_whose_participants_were_gone_before_every_read_is_reported_from_the_call_history(
        sim, live_gateway, client, receiver):
    wait_until(lambda: live_gateway.recovery.status().observed_until, timeout_s=10)
    sim.faults.fail(404, "/callcontrol/101/participants/", times=None)   # every read: already gone

    sim.play(inbound(CALLER, did=DID).to_extension("101").rings(5).answered_by("101").talk(10).caller_hangs_up())

    hooks = [h.params for h in receiver.wait_for(2, timeout_s=20)]
    assert [(p["event"], p["user"]) for p in hooks] == [("hangupincoming", "101"), ("incoming", "101")]
    assert all(RECOVERED in p["title"] for p in hooks)
    assert hooks[1]["finishtype"] == "Ok" and hooks[0]["id"] == hooks[1]["id"]
    assert _metric(client, "gateway_unread_legs_total") >= 1
    wait_until(lambda: live_gateway.recovery.status().unread_legs_found >= 1, timeout_s=10)


def test_event_lag_and_read_pool_appear_in_metrics_while_reads_are_slow(sim, live_gateway, client, receiver):
    slow_timeouts(sim.directory)
    wait_until(lambda: live_gateway.live.is_live, timeout_s=10)
    sim.faults.delay(1.5, "/callcontrol/101/participants/")

    sim.play(inbound(CALLER, did=DID).to_extension("101").rings(500).answered_by("101").talk(500)
             .caller_hangs_up(), wait=False)

    wait_until(lambda: _metric(client, "gateway_event_lag_seconds") > 0.2, timeout_s=10)
    assert _metric(client, "gateway_event_backlog") >= 1
    assert _metric(client, "gateway_participant_reads_running") >= 1
    sim.faults.clear()
    assert [h.params["event"] for h in receiver.wait_for(1, timeout_s=20)] == ["ringing"]
    wait_until(lambda: _metric(client, "gateway_event_backlog") == 0, timeout_s=10)
    assert _metric(client, "gateway_event_lag_seconds") == 0
