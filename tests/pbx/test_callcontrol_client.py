"""CallControlClient against the simulator: states, devices, both makecall forms, actions, failures."""
from __future__ import annotations

import pytest

from gateway.pbx.callcontrol import CallControlClient
from gateway.pbx.errors import PbxNotFound, PbxRejected
from tests.support.wait import wait_until


@pytest.fixture
def callcontrol(sim, session, tokens) -> CallControlClient:
    """A Call Control client logged in to the simulator."""
    return CallControlClient(session, sim.url, tokens, timeout_s=5)


def served(sim, prefix: str) -> list:
    """The requests the simulator served whose path starts with `prefix`, oldest first."""
    return [request for request in sim.requests if request.path.startswith(prefix)]


def test_all_states_lists_the_monitored_dns(callcontrol):
    states = callcontrol.all_states()

    assert {"101", "102", "800"} <= {state["dn"] for state in states}
    assert all({"dn", "type", "devices", "participants"} <= set(state) for state in states)


def test_dn_state_and_devices_of_an_extension(callcontrol):
    state = callcontrol.dn_state("101")
    devices = callcontrol.devices("101")

    assert state["dn"] == "101"
    assert devices and all(device["device_id"].startswith("sip:101@") for device in devices)


def test_device_id_with_sip_uri_characters_is_percent_encoded(callcontrol):
    device_id = callcontrol.devices("101")[0]["device_id"]

    device = callcontrol.device("101", device_id)

    assert ";" in device_id and device["device_id"] == device_id


def test_unknown_device_raises_not_found(callcontrol):
    with pytest.raises(PbxNotFound):
        callcontrol.device("101", "sip:101@10.9.9.9:5060;rinstance=nope/..")


def test_makecall_from_device_then_drop(callcontrol):
    device_id = callcontrol.devices("103")[0]["device_id"]

    started = callcontrol.makecall_from_device("103", device_id, "104", attached_data={"crm": "42"})
    participant_id = started["result"]["id"]
    ringing = wait_until(lambda: callcontrol.participants("104"))
    before = callcontrol.participant("103", participant_id)
    dropped = callcontrol.drop("103", participant_id)

    assert before["device_id"] == device_id
    assert ringing[0]["status"] == "Ringing"
    assert dropped["finalstatus"] in ("Success", 1)
    wait_until(lambda: not callcontrol.participants("103"))
    with pytest.raises(PbxNotFound):
        callcontrol.participant("103", participant_id)


def test_makecall_from_the_dn(callcontrol):
    started = callcontrol.makecall("105", "106", timeout_s=20)

    participants = wait_until(lambda: callcontrol.participants("105"))

    assert started["finalstatus"] in ("Success", 1)
    assert participants[0]["dn"] == "105"


def test_failed_action_raises_rejected_with_the_pbx_reason(callcontrol):
    callcontrol.makecall("105", "106")
    ringing = wait_until(lambda: callcontrol.participants("106"))

    with pytest.raises(PbxRejected) as raised:
        callcontrol.transferto("106", ringing[0]["id"], "107")

    assert raised.value.status in (422, 424)
    assert raised.value.message


def test_action_on_a_gone_participant_raises_not_found(callcontrol):
    with pytest.raises(PbxNotFound):
        callcontrol.drop("101", 987654)


def test_makecall_is_never_retried(sim, callcontrol):
    sim.faults.fail(503, "/callcontrol/105/makecall", times=1)

    with pytest.raises(PbxRejected) as raised:
        callcontrol.makecall("105", "106")

    assert raised.value.status == 503
    assert len(served(sim, "/callcontrol/105/makecall")) == 1
    assert callcontrol.participants("105") == []


def test_reads_retry_a_503(sim, callcontrol):
    sim.faults.fail(503, "/callcontrol/101", times=1)

    state = callcontrol.dn_state("101")

    assert state["dn"] == "101"
    assert [request.status for request in served(sim, "/callcontrol/101")] == [503, 200]


def test_expired_token_is_refreshed_for_call_control(sim, callcontrol):
    callcontrol.all_states()
    sim.faults.expire_tokens()

    states = callcontrol.all_states()

    assert states
    assert sum(1 for request in sim.requests if request.path == "/connect/token") == 2
