"""Calls that happen while the gateway cannot see the PBX are reported from v20's call history.

The real service parts (Services + Runtime: event stream, watcher, recovery thread, SQLite outbox and
gap store, delivery, recordings pipeline with ffmpeg) run against the simulator; webhooks arrive at
a real local HTTP server.
"""
from __future__ import annotations

import re

from gateway.sim.scenarios import inbound
from tests.support.live import CALLER, DID
from tests.support.simulator import slow_timeouts
from tests.support.wait import wait_until

RECOVERED = "recovered from call history"


def outage_during(sim, gateway, *scenarios, refuse: str = "websockets", seconds: float = 2.0) -> list:
    """Cut the gateway off the event stream, play `scenarios` to their end meanwhile, and wait until
    the gateway is back in step; the played calls."""
    wait_until(lambda: gateway.recovery.status().observed_until, timeout_s=10)
    sim.faults.outage(seconds, refuse=refuse)
    wait_until(lambda: not gateway.watcher.status().connected, timeout_s=5)
    played = [sim.play(scenario, wait=False) for scenario in scenarios]
    for call in played:
        call.wait()
    assert sim.faults.is_in_outage, "the calls must end inside the outage"
    wait_until(lambda: gateway.watcher.status().synced, timeout_s=30)
    return played


def settled(gateway) -> bool:
    status = gateway.recovery.status()
    return (status.deferred == 0 and not status.last_error and gateway.outbox.tally().pending == 0
            and gateway.recordings.status().pending == 0)


def by_event(receiver) -> list[tuple[str, str, str]]:
    """(event or FILES, user, id) of every webhook received, in order."""
    out = []
    for hook in receiver.received:
        params = hook.params
        out.append(("FILES", "", params["id"]) if "FILES" in params else
                   (params["event"], params.get("user", ""), params["id"]))
    return out


def test_calls_during_an_outage_are_recovered_exactly_once(sim, live_gateway, receiver, client):
    answered, abandoned = outage_during(
        sim, live_gateway,
        inbound(CALLER, did=DID).to_extension("101").answered_by("101").talk(10).caller_hangs_up(),
        inbound("+420601000222", did=DID).to_queue("800", rings=["101", "102"]).rings(5).caller_abandons())

    receiver.wait_for(4, timeout_s=30)
    wait_until(lambda: settled(live_gateway), timeout_s=20)

    hooks = by_event(receiver)
    assert sorted(event for event, _, _ in hooks) == ["FILES", "hangupincoming", "incoming", "incoming"]
    ends = {h.params["user"]: h.params for h in receiver.received if h.params.get("event") == "incoming"}
    start = next(h.params for h in receiver.received if h.params.get("event") == "hangupincoming")
    files = next(h.params for h in receiver.received if "FILES" in h.params)
    assert (start["user"], start["callerid"]) == ("101", CALLER)
    assert ends["101"]["finishtype"] == "Ok" and ends["101"]["id"] == start["id"] == files["id"]
    assert re.fullmatch(r"\d{12}_\d+-1", start["id"])
    assert ends["800"]["finishtype"] == "Missed" and ends["800"]["callerid"] == "+420601000222"
    assert re.fullmatch(r"\d{12}_\d+-0", ends["800"]["id"])
    assert all(RECOVERED in h.params["title"] for h in receiver.received if "title" in h.params)
    assert "not answered in queue 800" in ends["800"]["title"]
    assert live_gateway.recovery.status().recovered_calls == 2
    assert "gateway_recovered_calls_total 2.0" in client.get("/metrics").get_data(as_text=True)


def test_tokens_refused_during_the_outage_too(sim, live_gateway, receiver):
    outage_during(sim, live_gateway,
                  inbound(CALLER, did=DID).to_queue("800", rings=["102"]).rings(2).caller_abandons(),
                  refuse="tokens")

    [hook] = receiver.wait_for(1, timeout_s=30)
    wait_until(lambda: settled(live_gateway), timeout_s=20)

    assert (hook.params["event"], hook.params["user"], hook.params["finishtype"]) == ("incoming", "800", "Missed")
    assert len(receiver.received) == 1


def test_call_ringing_before_the_gap_and_answered_in_it_is_reported_as_answered(sim, live_gateway, receiver):
    slow_timeouts(sim.directory)
    wait_until(lambda: live_gateway.recovery.status().observed_until, timeout_s=10)
    played = sim.play(inbound(CALLER, did=DID).to_queue("800", rings=["101", "102"]).rings(100)
                      .answered_by("102").talk(10).caller_hangs_up(), wait=False)
    receiver.wait_for(2)                                  # 101 and 102 ring
    sim.faults.outage(2.0)
    wait_until(lambda: not live_gateway.watcher.status().connected, timeout_s=5)
    sim.engine.answer_offer(played.call_id, "102")
    sim.engine.hang_up(played.call_id)
    played.wait()

    receiver.wait_for(5, timeout_s=30)
    wait_until(lambda: settled(live_gateway), timeout_s=20)

    hooks = by_event(receiver)
    assert [(e, u) for e, u, _ in hooks] == [("ringing", "101"), ("ringing", "102"), ("hangupincoming", "102"),
                                             ("incoming", "102"), ("FILES", "")]
    prefix = hooks[0][2].rsplit("-", 1)[0]
    assert [i for _, _, i in hooks] == [f"{prefix}-0", f"{prefix}-0", f"{prefix}-1", f"{prefix}-1", f"{prefix}-1"]
    end = receiver.received[3].params
    assert end["finishtype"] == "Ok" and "answered by 102" in end["title"] and RECOVERED in end["title"]


def test_calls_the_gateway_saw_are_not_sent_again_by_recovery(sim, live_gateway, receiver):
    sim.play(inbound(CALLER, did=DID).to_extension("101").rings(5).answered_by("101").talk(20).caller_hangs_up())
    receiver.wait_for(4, timeout_s=20)                    # ringing, start, end, FILES
    wait_until(lambda: settled(live_gateway), timeout_s=20)
    live = by_event(receiver)

    outage_during(sim, live_gateway,
                  inbound("+420601000222").to_queue("800", rings=["102"]).rings(2).caller_abandons())
    receiver.wait_for(5, timeout_s=30)
    wait_until(lambda: settled(live_gateway), timeout_s=20)

    assert [e for e, _, _ in live] == ["ringing", "hangupincoming", "incoming", "FILES"]
    assert by_event(receiver)[:4] == live and by_event(receiver)[4][:2] == ("incoming", "800")
    assert len(receiver.received) == 5 and live_gateway.recovery.status().recovered_calls == 1


def test_without_system_owner_live_webhooks_flow_and_healthz_names_the_gap(sim, live_gateway, receiver, client):
    sim.api_client.role = "system_admins"
    outage_during(sim, live_gateway, inbound(CALLER).to_queue("800", rings=["102"]).rings(2).caller_abandons())

    wait_until(lambda: live_gateway.recovery.status().uncovered, timeout_s=20)
    sim.play(inbound(CALLER, did=DID).to_extension("103").answered_by("103").talk(20).caller_hangs_up())
    receiver.wait_for(3, timeout_s=20)

    assert [e for e, _, _ in by_event(receiver)][:3] == ["ringing", "hangupincoming", "incoming"]
    report = client.get("/healthz").get_json()
    [warning] = [w for w in report["warnings"] if "not recovered from the call history" in w]
    [gap] = report["recovery"]["uncovered"]
    assert gap["since"] in warning and gap["until"] in warning and "System Owner" in warning
    assert "gateway_uncovered_gaps 1.0" in client.get("/metrics").get_data(as_text=True)


def test_call_ringing_when_the_service_stopped_is_completed_after_the_restart(sim, config, receiver):
    from gateway.services import Services

    slow_timeouts(sim.directory)
    first = Services(config)
    first.runtime.start()
    wait_until(lambda: first.recovery.status().observed_until, timeout_s=10)
    played = sim.play(inbound(CALLER, did=DID).to_extension("101").rings(100).answered_by("101").talk(10)
                      .caller_hangs_up(), wait=False)
    receiver.wait_for(1)                                  # 101 rings
    first.runtime.stop(timeout_s=10)
    first.http.close()
    sim.engine.answer_offer(played.call_id, "101")
    sim.engine.hang_up(played.call_id)
    played.wait()

    second = Services(config)
    second.runtime.start()
    try:
        receiver.wait_for(4, timeout_s=30)
        wait_until(lambda: settled(second), timeout_s=20)
    finally:
        second.runtime.stop(timeout_s=10)
        second.http.close()

    hooks = by_event(receiver)
    assert [(e, u) for e, u, _ in hooks] == [("ringing", "101"), ("hangupincoming", "101"), ("incoming", "101"),
                                             ("FILES", "")]
    prefix = hooks[0][2].rsplit("-", 1)[0]
    assert prefix.endswith(f"_{played.call_id}")
    assert [i for _, _, i in hooks] == [f"{prefix}-0", f"{prefix}-1", f"{prefix}-1", f"{prefix}-1"]
    assert second.recovery.status().completed_calls == 1


def test_a_caller_calling_the_same_extension_again_in_the_gap_is_not_taken_for_the_first_call(
        sim, live_gateway, receiver):
    sim.play(inbound(CALLER, did=DID).to_extension("101").rings(5).answered_by("101").talk(20).caller_hangs_up())
    receiver.wait_for(4, timeout_s=20)                    # ringing, start, end, FILES
    wait_until(lambda: settled(live_gateway), timeout_s=20)

    outage_during(sim, live_gateway, inbound(CALLER, did=DID).to_extension("101").rings(5).caller_abandons())
    receiver.wait_for(5, timeout_s=30)
    wait_until(lambda: settled(live_gateway), timeout_s=20)

    again = receiver.received[4].params
    assert (again["event"], again["user"], again["finishtype"]) == ("incoming", "101", "Missed")
    assert again["id"].rsplit("-", 1)[0] != receiver.received[0].params["id"].rsplit("-", 1)[0]
    assert len(receiver.received) == 5
