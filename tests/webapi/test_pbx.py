"""pbx.* commands and the license/info answer, with calls played on the simulated PBX."""
from __future__ import annotations

import re

import pytest

from gateway import __version__
from gateway.sim.scenarios import inbound, internal, outbound
from tests.support.config import ACCESS_KEY
from tests.support.wait import wait_until
from tests.support.shape import shape_differences

ISO_UTC = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$")


def calls_seen(webapi, count: int) -> dict:
    """Wait until pbx.callsinfo.get shows `count` calls with every leg settled; return pbx.ac.get."""
    def ready():
        status, answer = webapi("pbx.ac.get")
        return answer if status == 200 and answer["count"] == count else None
    return wait_until(ready)


# --- /webapi/<key>/ -------------------------------------------------------------------------------

def test_info_describes_gateway_and_pbx_licence(sim, client):
    response = client.get(f"/webapi/{ACCESS_KEY}/")

    answer = response.get_json()
    assert response.status_code == 200
    assert answer["product"] == "3cx-gateway"
    assert answer["version"] == __version__
    assert answer["release"] == "Webhooks"
    assert re.fullmatch(r"(\d\d\.\d\d\.\d{4} \d\d:\d\d:\d\d)?", answer["licenseExpire"])
    assert answer["concurrentCalls"] == sim.directory.max_sim_calls
    assert answer["clientLicensesNum"].isdigit()
    assert (answer["callRecords"], answer["api"], answer["quality"]) == (True, True, False)


# --- pbx.calls.get --------------------------------------------------------------------------------

def test_calls_get_is_zero_without_calls(sim, webapi):
    assert webapi("pbx.calls.get") == (200, {"result": 0})


def test_calls_get_counts_calls_in_progress(sim, webapi):
    sim.play(internal("101", "102").rings(1).answered_by("102").talk(600).caller_hangs_up(), wait=False)
    sim.play(outbound("103", "+420602111222").rings(600).no_answer(), wait=False)

    wait_until(lambda: webapi("pbx.calls.get")[1] == {"result": 2})


def test_calls_get_counts_live_calls(sim, live_gateway, webapi):
    wait_until(lambda: live_gateway.live.is_live)
    sim.play(internal("104", "105").rings(600).no_answer(), wait=False)

    wait_until(lambda: webapi("pbx.calls.get")[1] == {"result": 1})


# --- pbx.ac.get -----------------------------------------------------------------------------------

def test_ac_get_without_calls(sim, webapi):
    assert webapi("pbx.ac.get") == (200, {"count": 0, "AConnByCallID": []})


def test_ac_get_shows_an_internal_call(sim, webapi):
    played = sim.play(internal("101", "102").rings(1).answered_by("102").talk(600).caller_hangs_up(),
                      wait=False)

    answer = wait_until(lambda: (a := calls_seen(webapi, 1)) and all(
        c["status"] == "Connected" for c in a["AConnByCallID"][0]["AConnList"]) and a)

    call = answer["AConnByCallID"][0]
    assert call["callID"] == played.call_id
    assert (call["direction"], call["did"]) == ("Internal", "")
    assert sorted(call["AConnList"], key=lambda c: c["dnNum"]) == [
        {"dnNum": "101", "dnType": "extension", "externalParty": "102", "status": "Connected"},
        {"dnNum": "102", "dnType": "extension", "externalParty": "101", "status": "Connected"},
    ]


def test_ac_get_shows_an_outbound_call_dialling(sim, webapi):
    sim.play(outbound("103", "+420602111222").rings(600).no_answer(), wait=False)

    answer = calls_seen(webapi, 1)

    call = answer["AConnByCallID"][0]
    assert call["direction"] == "Outbound"
    assert call["AConnList"] == [{"dnNum": "103", "dnType": "extension",
                                  "externalParty": "+420602111222", "status": "Dialing"}]


def test_ac_get_inbound_call_held_by_an_ivr_is_from_external(sim, webapi):
    sim.play(inbound("+420774852529", did="+420233000111").to_ivr("600").rings(600)
             .no_answer(), wait=False)

    answer = calls_seen(webapi, 1)

    assert answer["AConnByCallID"][0]["direction"] == "FromExternal"
    assert answer["AConnByCallID"][0]["AConnList"][0]["dnNum"] == "600"
    assert answer["AConnByCallID"][0]["AConnList"][0]["dnType"] == "ivr"


# --- pbx.callsinfo.get ----------------------------------------------------------------------------

def test_callsinfo_get_shows_owner_and_talk_partner(sim, webapi):
    played = sim.play(internal("101", "102").rings(1).answered_by("102").talk(600).caller_hangs_up(),
                      wait=False)

    def talking():
        status, answer = webapi("pbx.callsinfo.get")
        return answer if answer["count"] == 1 and answer["callsInfo"][0]["state"] == "Talking" \
            and answer["callsInfo"][0]["talkTo"] else None
    answer = wait_until(talking)

    info = answer["callsInfo"][0]
    assert info["callID"] == played.call_id
    assert ISO_UTC.match(info["startedAt"]) and ISO_UTC.match(info["answeredAt"])
    assert {info["owner"]["dnNum"], info["talkTo"][0]["dnNum"]} == {"101", "102"}
    assert info["owner"]["externalParty"] == info["talkTo"][0]["dnNum"]
    assert info["routingTo"] == []


def test_callsinfo_get_ringing_call_is_routing(sim, webapi):
    sim.play(internal("104", "105").rings(600).no_answer(), wait=False)

    def routing():
        answer = webapi("pbx.callsinfo.get")[1]
        return answer if answer["count"] == 1 and answer["callsInfo"][0]["routingTo"] else None
    info = wait_until(routing)["callsInfo"][0]

    assert info["state"] == "Routing"
    assert info["answeredAt"] is None
    assert info["talkTo"] == []
    assert [c["status"] for c in [info["owner"], *info["routingTo"]]] in (["Dialing", "Ringing"],
                                                                          ["Ringing", "Dialing"])


def test_callsinfo_get_queue_call_ringing_agents_is_routing(sim, webapi):
    sim.play(inbound("+420774852529", did="+420233000111").to_queue("800", rings=["101", "102"])
             .rings(600).no_answer(), wait=False)

    def agents_ringing():
        answer = webapi("pbx.callsinfo.get")[1]
        return answer if answer["count"] == 1 and len(answer["callsInfo"][0]["routingTo"]) == 2 else None
    info = wait_until(agents_ringing)["callsInfo"][0]

    assert info["state"] == "Routing"
    assert info["owner"]["dnNum"] == "800" and info["owner"]["dnType"] == "queue"
    assert info["talkTo"][0]["dnType"] == "external"
    assert sorted((c["dnNum"], c["status"]) for c in info["routingTo"]) == [("101", "Ringing"),
                                                                           ("102", "Ringing")]
    assert webapi("pbx.ac.get")[1]["AConnByCallID"][0]["direction"] == "Inbound"


@pytest.mark.parametrize("command", ["pbx.ac.get", "pbx.callsinfo.get"])
def test_live_model_answer_has_the_fallback_shape(sim, live_gateway, webapi, command):
    wait_until(lambda: live_gateway.live.is_live)
    sim.play(internal("101", "102").rings(1).answered_by("102").talk(600).caller_hangs_up(), wait=False)

    def both_connected():
        answer = webapi(command)[1]
        text = repr(answer)
        return answer if answer["count"] == 1 and "Ringing" not in text and "Dialing" not in text \
            and text.count("Connected") >= 2 else None
    live = wait_until(both_connected)
    live_gateway.runtime.stop(timeout_s=10)
    fallback = wait_until(both_connected)

    assert shape_differences(live, fallback) == []
    call_key = "AConnByCallID" if command == "pbx.ac.get" else "callsInfo"
    assert live[call_key][0]["callID"] == fallback[call_key][0]["callID"]
