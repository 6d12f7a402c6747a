"""Call Control REST views of the simulator, over real HTTP (requests)."""
from __future__ import annotations

from urllib.parse import quote

import pytest

from tests.support.simulator import Api, connected
from tests.support.wait import wait_until

CALLER = "+420774852529"


@pytest.fixture
def api(sim):
    """An authenticated HTTP client of the simulator, timeouts slowed so nothing rings out."""
    yield from connected(sim, Api)


def test_all_states_lists_exactly_the_monitored_dns(sim, api):
    sim.api_client.monitored[:] = ["101", "800", "999"]     # 999 does not exist

    response = api.get("/callcontrol")

    assert response.status_code == 200
    assert [(i["dn"], i["type"]) for i in response.json()] == [("101", "Wextension"), ("800", "Wqueue")]


def test_dn_state_has_devices_and_participants(sim, api):
    call = sim.engine.inbound(CALLER, "PragueDID", "101")

    info = api.get("/callcontrol/101").json()

    assert list(info) == ["dn", "type", "devices", "participants"]
    assert [d["device_id"] for d in info["devices"]] == [d.device_id for d in sim.directory.users["101"].devices]
    [participant] = info["participants"]
    assert participant["callid"] == call.callid and participant["status"] == "Ringing"


def test_unmonitored_dn_is_forbidden(sim, api):
    sim.api_client.monitored.remove("105")

    assert api.get("/callcontrol/105").status_code == 403
    assert api.get("/callcontrol/105/participants").status_code == 403
    assert api.post("/callcontrol/105/makecall", {"destination": "101"}).status_code == 403


def test_device_by_percent_encoded_sip_uri(sim, api):
    device_id = sim.directory.users["102"].devices[0].device_id

    found = api.get(f"/callcontrol/102/devices/{quote(device_id, safe='')}")
    missing = api.get(f"/callcontrol/102/devices/{quote('sip:102@10.0.0.1', safe='')}")

    assert found.status_code == 200
    assert found.json() == {"dn": "102", "device_id": device_id, "user_agent": "Yealink SIP-T46U"}
    assert missing.status_code == 404


def test_participant_gone_is_404(sim, api):
    call = sim.engine.inbound(CALLER, "PragueDID", "103")
    [participant] = api.get("/callcontrol/103/participants").json()

    sim.engine.hang_up(call.callid)

    assert api.get(f"/callcontrol/103/participants/{participant['id']}").status_code == 404
    assert api.get("/callcontrol/103/participants/abc").status_code == 404


def test_makecall_dn_form_and_device_form(sim, api):
    device_id = sim.directory.users["102"].devices[0].device_id

    by_dn = api.post("/callcontrol/103/makecall", {"destination": "+420602111222"})
    by_device = api.post(f"/callcontrol/102/devices/{quote(device_id, safe='')}/makecall",
                         {"destination": "104", "timeout": 30})

    assert by_dn.status_code == 200 and by_dn.json()["result"]["status"] == "Ringing"
    assert by_device.status_code == 200
    assert by_device.json()["result"]["status"] == "Dialing"
    assert by_device.json()["result"]["device_id"] == device_id


def test_makecall_without_destination_is_422(api):
    response = api.post("/callcontrol/101/makecall", {})

    assert response.status_code == 422
    assert response.json()["finalstatus"] == "Failed"


def test_participant_actions(sim, api):
    call = sim.engine.inbound(CALLER, "PragueDID", "103")
    [ringing] = api.get("/callcontrol/103/participants").json()
    base = f"/callcontrol/103/participants/{ringing['id']}"

    answer = api.post(f"{base}/answer")               # 103's phone has no direct control
    transfer = api.post(f"{base}/transferto", {"destination": "104"})
    unknown = api.post(f"{base}/explode")
    divert = api.post(f"{base}/divert", {"destination": "104", "reason": "NoAnswer"})
    gone = api.post(f"{base}/drop")

    assert (answer.status_code, transfer.status_code, unknown.status_code) == (422, 422, 400)
    assert divert.status_code == 200 and divert.json()["finalstatus"] == "Success"
    assert gone.status_code == 404
    [diverted] = api.get("/callcontrol/104/participants").json()
    assert diverted["callid"] == call.callid and diverted["status"] == "Ringing"
    assert api.post(f"/callcontrol/104/participants/{diverted['id']}/drop").status_code == 200
    wait_until(lambda: sim.engine.calls_active() == 0)


def test_stream_get_returns_pcm_and_post_is_accepted(sim, api):
    sim.engine.inbound(CALLER, "PragueDID", "101")
    [participant] = api.get("/callcontrol/101/participants").json()
    path = f"/callcontrol/101/participants/{participant['id']}/stream"

    audio = api.get(path)
    sent = api.session.post(sim.url + path, data=b"\0" * 16000,
                            headers={"Content-Type": "application/octet-stream"})

    assert audio.status_code == 200 and len(audio.content) == 8000   # 0.5 s of 16-bit 8 kHz
    assert sent.status_code == 200
    assert api.get("/callcontrol/101/participants/999999/stream").status_code == 404


def test_requests_are_logged_with_status(sim, api):
    api.get("/callcontrol/101/participants")

    logged = sim.requests[-1]
    assert (logged.method, logged.path, logged.status) == ("GET", "/callcontrol/101/participants", 200)
    assert sim.requests[0].path == "/connect/token"
