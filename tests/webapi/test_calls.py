"""makecall, drop, answer, transfer, join: Call Control actions against calls the simulator plays."""
from __future__ import annotations

import re

import pytest

from gateway.config import from_dict
from gateway.sim.defaults import device_id
from gateway.sim.model import Device
from gateway.sim.scenarios import inbound
from gateway.webapi.commands.calls import _pick_device
from tests.support.wait import wait_until
from tests.support.shape import examples, same_shape, same_shape_with_additions

EXAMPLES = examples()
CALLER = "+420774852529"


def statuses(sim, dn: str) -> list[str]:
    """The Call Control statuses of `dn`'s participants right now."""
    return [p["status"] for p in sim.engine.participants(dn)]


def leg_status(gateway, dn: str) -> list[str]:
    """What the gateway's live view knows of `dn`'s legs."""
    return [leg.status for leg in gateway.live.legs_of(dn)]


def makecall_requests(sim) -> list[str]:
    return [r.path for r in sim.requests if r.method == "POST" and r.path.endswith("/makecall")]


def test_makecall_rings_first_from_its_device_and_answers_the_example_shape(sim, webapi):
    status, answer = webapi("makecall", first="103", second=CALLER)

    assert status == 200
    assert same_shape_with_additions(answer, EXAMPLES["makecall"]["answer"])
    assert (answer["first"], answer["second"]) == ("103", CALLER)
    assert re.fullmatch(rf"\d{{12}}_{sim.engine.participants('103')[0]['callid']}-1", answer["id"])
    assert statuses(sim, "103") == ["Ringing"]
    assert sim.engine.participants("103")[0]["party_caller_id"] == CALLER
    [path] = makecall_requests(sim)
    assert path.startswith("/callcontrol/103/devices/")


def test_makecall_rings_the_desk_phone_before_apps_and_web_clients(sim, webapi):
    with sim.directory.lock:
        sim.directory.users["105"].devices = [
            Device(device_id=device_id("105", "web"), user_agent="3CX Web Client"),
            Device(device_id=device_id("105", "app"), user_agent="3CX Windows App"),
            Device(device_id=device_id("105", "desk"), user_agent="Yealink SIP-T46U 66.86.0.15")]

    status, _answer = webapi("makecall", first="105", second=CALLER)

    assert status == 200
    assert makecall_requests(sim) == [f"/callcontrol/105/devices/{device_id('105', 'desk')}/makecall"]


DEFAULT = from_dict({"pbx": {"url": "https://pbx.test", "client_id": "c", "client_secret": "s"},
                     "webapi": {"key": "k"}}, environ={}).webapi.makecall_devices


@pytest.mark.parametrize("agents, preference, expected", [
    pytest.param(["3CX Mobile Client", "Fanvil X6U"], DEFAULT, "Fanvil X6U", id="a desk phone before the mobile app"),
    pytest.param(["3CX WebRTC proxy", "3CX Windows App"], DEFAULT, "3CX Windows App", id="an app before a web client"),
    pytest.param(["3CX Web Client", "Zoiper rev.1234"], DEFAULT, "Zoiper rev.1234",
                 id="an unrecognised agent ranks at the lone star, before 3CX's apps"),
    pytest.param(["Yealink T54W", "Yealink T46U"], DEFAULT, "Yealink T54W", id="the first listed among equals"),
    pytest.param(["Yealink T46U", "3CX Mobile Client"], ("*mobile*", "*"), "3CX Mobile Client",
                 id="a configured preference wins"),
    pytest.param(["Yealink T46U", "3CX Mobile Client"], (), "Yealink T46U", id="no preference: the first listed"),
])
def test_pick_device_follows_the_preference(agents, preference, expected):
    devices = [{"dn": "101", "device_id": f"sip:101@h{i}", "user_agent": agent} for i, agent in enumerate(agents)]

    assert _pick_device(devices, preference)["user_agent"] == expected


def test_pick_device_without_devices_is_none():
    assert _pick_device([], DEFAULT) is None


def test_makecall_from_an_extension_without_devices_uses_the_dn_form(sim, webapi):
    status, answer = webapi("makecall", first="125", second="101")

    assert (status, answer["first"], answer["second"]) == (200, "125", "101")
    assert answer["id"].endswith(f"_{sim.engine.participants('125')[0]['callid']}-1")
    assert makecall_requests(sim) == ["/callcontrol/125/makecall"]


def test_makecall_from_a_queue_uses_the_dn_form_and_passes_on_the_pbx_answer(sim, webapi):
    status, answer = webapi("makecall", first="800", second=CALLER)

    assert makecall_requests(sim) == ["/callcontrol/800/makecall"]
    # The simulator, like a PBX that refuses a queue as the calling side, says why.
    assert (status, answer["command"]) == (502, "makecall")
    assert "800" in answer["error"]


def test_makecall_from_an_unknown_number_returns_404(sim, webapi):
    status, answer = webapi("makecall", first="555", second=CALLER)

    assert status == 404
    assert "555" in answer["error"]


def test_makecall_from_an_extension_the_api_client_does_not_monitor_passes_on_the_refusal(sim, webapi):
    with sim.directory.lock:
        sim.directory.api_clients[sim.client_id].monitored.remove("103")

    status, answer = webapi("makecall", first="103", second=CALLER)

    assert status == 502
    assert "monitored" in answer["error"]


@pytest.mark.parametrize("params, bad", [
    ({"first": "103", "second": "call me"}, "second"),
    ({"first": "+103", "second": CALLER}, "first"),
    ({"second": CALLER}, "first"),
], ids=["second not a number", "first not an extension", "first missing"])
def test_makecall_with_a_bad_parameter_returns_400_naming_it(sim, webapi, params, bad):
    status, answer = webapi("makecall", **params)

    assert status == 400
    assert f"'{bad}'" in answer["error"]


def test_drop_ends_the_extensions_call(sim, live_gateway, webapi):
    wait_until(lambda: live_gateway.live.is_live)  # act on the watcher's model, not the fallback
    sim.play(inbound(CALLER).to_extension("103").rings(1).answered_by("103").talk(600), wait=False)
    wait_until(lambda: leg_status(live_gateway, "103") == ["talking"])

    status, answer = webapi("drop", num="103", external="852529")

    assert status == 200
    assert same_shape(answer, EXAMPLES["drop"]["answer"])
    assert answer == {"result": "Drop"}
    wait_until(lambda: sim.engine.calls_active() == 0)


@pytest.mark.parametrize("params", [{}, {"external": "999"}, {"contact": "sip:999@"}],
                         ids=["no call", "other far end", "other device"])
def test_drop_without_a_matching_call_returns_404(sim, live_gateway, webapi, params):
    wait_until(lambda: live_gateway.live.is_live)  # act on the watcher's model, not the fallback
    if params:
        sim.play(inbound(CALLER).to_extension("103").rings(1).answered_by("103").talk(600), wait=False)
        wait_until(lambda: leg_status(live_gateway, "103") == ["talking"])

    status, answer = webapi("drop", num="103", **params)

    assert status == 404
    assert "103" in answer["error"]


def test_answer_picks_up_on_a_remote_controllable_device(sim, live_gateway, webapi):
    wait_until(lambda: live_gateway.live.is_live)  # act on the watcher's model, not the fallback
    sim.play(inbound(CALLER).to_extension("101").rings(600).no_answer(), wait=False)
    wait_until(lambda: leg_status(live_gateway, "101") == ["ringing"])

    status, answer = webapi("answer", num="101")

    assert status == 200
    assert same_shape(answer, EXAMPLES["answer"]["answer"])
    assert answer == {"result": "Answer"}
    wait_until(lambda: statuses(sim, "101") == ["Connected"])


def test_answer_on_an_ordinary_phone_is_not_possible_on_v20(sim, live_gateway, webapi):
    wait_until(lambda: live_gateway.live.is_live)  # act on the watcher's model, not the fallback
    sim.play(inbound(CALLER).to_extension("103").rings(600).no_answer(), wait=False)
    wait_until(lambda: leg_status(live_gateway, "103") == ["ringing"])

    status, answer = webapi("answer", num="103")

    assert status == 501, answer
    assert "remote control" in answer["error"]
    assert statuses(sim, "103") == ["Ringing"]


def test_transfer_of_a_talking_call_transfers_it(sim, live_gateway, webapi):
    wait_until(lambda: live_gateway.live.is_live)  # act on the watcher's model, not the fallback
    sim.play(inbound(CALLER).to_extension("103").rings(1).answered_by("103").talk(600), wait=False)
    wait_until(lambda: leg_status(live_gateway, "103") == ["talking"])

    status, answer = webapi("transfer", num="103", dest="104")

    assert status == 200, answer
    assert same_shape(answer, EXAMPLES["transfer"]["answer"])
    assert answer == {"result": "Transfer"}
    wait_until(lambda: statuses(sim, "104") == ["Ringing"] and statuses(sim, "103") == [])


def test_transfer_of_a_ringing_call_diverts_it(sim, live_gateway, webapi):
    wait_until(lambda: live_gateway.live.is_live)  # act on the watcher's model, not the fallback
    sim.play(inbound(CALLER).to_extension("103").rings(600).no_answer(), wait=False)
    wait_until(lambda: leg_status(live_gateway, "103") == ["ringing"])

    status, answer = webapi("transfer", num="103", dest="104")

    assert (status, answer) == (200, {"result": "Transfer"})
    wait_until(lambda: statuses(sim, "104") == ["Ringing"] and statuses(sim, "103") == [])


def test_transfer_without_a_call_returns_404(sim, webapi):
    status, answer = webapi("transfer", num="103", dest="104")

    assert status == 404


def test_transfer_without_dest_returns_400_naming_it(sim, webapi):
    status, answer = webapi("transfer", num="103")

    assert status == 400
    assert "'dest'" in answer["error"]


def test_join_is_not_possible_on_v20(sim, webapi):
    status, answer = webapi("join", num="102")

    assert status == 501
    assert same_shape(answer, {"error": "", "command": ""})
    assert "conference" in answer["error"]

