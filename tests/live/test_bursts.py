"""Bursts, against the simulator: a participant gone before its read is still reported (from the
call history), and the event backlog shows in /metrics. (Per-call order with reads finishing out of
order is in test_watcher.py.)"""
from __future__ import annotations

import re

from gateway.sim.scenarios import inbound
from tests.support.live import CALLER, DID
from tests.support.simulator import slow_timeouts
from tests.support.wait import wait_until

RECOVERED = "recovered from call history"


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


def test_event_lag_and_read_pool_appear_in_metrics_and_healthz_warns_while_reads_are_slow(
        sim, live_gateway, client, receiver):
    slow_timeouts(sim.directory)
    wait_until(lambda: live_gateway.live.is_live, timeout_s=10)
    sim.faults.delay(3.0, "/callcontrol/101/participants/")   # [pbx] event_lag_warn_s is 2

    sim.play(inbound(CALLER, did=DID).to_extension("101").rings(500).answered_by("101").talk(500)
             .caller_hangs_up(), wait=False)

    wait_until(lambda: _metric(client, "gateway_event_lag_seconds") > 0.2, timeout_s=10)
    assert _metric(client, "gateway_event_backlog") >= 1
    assert _metric(client, "gateway_participant_reads_running") >= 1
    warnings = wait_until(lambda: [w for w in client.get("/healthz").get_json()["warnings"] if "applied" in w],
                          timeout_s=10)
    assert "call events are applied" in warnings[0] and "1 waiting" in warnings[0]
    sim.faults.clear()
    assert [h.params["event"] for h in receiver.wait_for(1, timeout_s=20)] == ["ringing"]
    wait_until(lambda: _metric(client, "gateway_event_backlog") == 0, timeout_s=10)
    assert _metric(client, "gateway_event_lag_seconds") == 0


def test_reads_of_one_dn_waiting_together_take_one_list_read_and_a_participant_missing_from_it_is_gone(
        sim, live_gateway, client, receiver):
    slow_timeouts(sim.directory)
    wait_until(lambda: live_gateway.live.is_live and live_gateway.recovery.status().observed_until, timeout_s=10)
    sim.faults.delay(1.5, "/callcontrol/101/participants/", times=1)   # the first read is slow: the next ones wait

    sim.play(inbound("+420601000001", did=DID).to_extension("101").rings(500).answered_by("101").talk(5)
             .caller_hangs_up(), wait=False)
    wait_until(lambda: live_gateway.watcher.status().reads.running == 1, timeout_s=5)
    for n in (2, 3):
        sim.play(inbound(f"+42060100000{n}", did=DID).to_extension("101").rings(500).answered_by("101").talk(5)
                 .caller_hangs_up(), wait=False)
    sim.play(inbound("+420601000004", did=DID).to_extension("101").rings(5).caller_abandons())  # gone before the read
    wait_until(lambda: live_gateway.watcher.status().reads.queued >= 3, timeout_s=5)

    ringing = receiver.wait_for(3, timeout_s=20)
    assert sorted(h.params["callerid"][-1] for h in ringing) == ["1", "2", "3"]
    reads = [r.path for r in sim.requests if r.method == "GET" and r.path.startswith("/callcontrol/101/participants")]
    assert reads.count("/callcontrol/101/participants") == 1 and len(reads) == 2
    assert _metric(client, "gateway_participant_reads_listed_total") == 3
    assert _metric(client, "gateway_unread_legs_total") == 1
    [missed] = [h.params for h in receiver.wait_for(4, timeout_s=20) if h.params["callerid"].endswith("4")]
    assert (missed["event"], missed["finishtype"]) == ("incoming", "Missed") and RECOVERED in missed["title"]


def test_a_participant_the_pbx_failed_to_read_is_caught_up_by_a_resync(sim, live_gateway, client, receiver):
    slow_timeouts(sim.directory)
    wait_until(lambda: live_gateway.live.is_live, timeout_s=10)
    sim.faults.fail(500, "/callcontrol/101/participants/", times=None)    # no participant of 101 can be read

    sim.play(inbound(CALLER, did=DID).to_extension("101").rings(100).answered_by("101").talk(100)
             .caller_hangs_up())

    hooks = [h.params for h in receiver.wait_for(3, timeout_s=20)]
    assert [(p["event"], p["user"]) for p in hooks] == [("ringing", "101"), ("hangupincoming", "101"),
                                                        ("incoming", "101")]
    assert len({p["id"].rsplit("-", 1)[0] for p in hooks}) == 1 and hooks[2]["finishtype"] == "Ok"
    assert not any(RECOVERED in p.get("title", "") for p in hooks)
