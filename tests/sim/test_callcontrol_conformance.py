"""Every Call Control answer and WebSocket message of the simulator fits the reconstructed spec.

Schemas come from tests/data/callcontrol-schemas.json (extracted by tools/extract_specs.py from
callcontrol-v20.openapi.yaml); unknown fields and wrong JSON types fail here.
"""
from __future__ import annotations

import json
from pathlib import Path
from urllib.parse import quote

import jsonschema
import pytest

from gateway.sim.scenarios import inbound, internal, outbound
from tests.support.simulator import Api
from tests.support.simulator import Events

SPEC = json.loads((Path(__file__).parent.parent / "data" / "callcontrol-schemas.json").read_text(encoding="utf-8"))
CALLER = "+420774852529"


def validate(body, definition: str, *, many: bool = False) -> None:
    """Raise unless `body` is a `definition` (or a list of them)."""
    ref = {"$ref": f"#/definitions/{definition}"}
    schema = {"type": "array", "items": ref} if many else ref
    jsonschema.Draft202012Validator({"definitions": SPEC["definitions"], **schema}).validate(body)


@pytest.fixture
def api(sim):
    """An authenticated client, and a WebSocket on the same token."""
    client = Api(sim)
    events = Events(sim, token=client.token)
    yield client, events
    events.close()


def test_state_views_conform(sim, api):
    client, _ = api
    sim.engine.inbound(CALLER, "PragueDID")
    device_id = sim.directory.users["101"].devices[0].device_id

    validate(client.get("/callcontrol").json(), "DNInfo", many=True)
    for dn in ("101", "800", "700", "600"):
        validate(client.get(f"/callcontrol/{dn}").json(), "DNInfo")
    validate(client.get("/callcontrol/101/devices").json(), "DNDevice", many=True)
    validate(client.get(f"/callcontrol/101/devices/{quote(device_id, safe='')}").json(), "DNDevice")
    participants = client.get("/callcontrol/101/participants").json()
    validate(participants, "CallParticipant", many=True)
    validate(client.get(f"/callcontrol/101/participants/{participants[0]['id']}").json(), "CallParticipant")


def test_results_conform(sim, api):
    client, _ = api
    device_id = sim.directory.users["102"].devices[0].device_id
    sim.engine.inbound(CALLER, "PragueDID", "104")
    [ringing] = client.get("/callcontrol/104/participants").json()

    answers = [
        client.post("/callcontrol/103/makecall", {"destination": "+420602111222"}),
        client.post("/callcontrol/101/makecall", {"destination": "105"}),
        client.post(f"/callcontrol/102/devices/{quote(device_id, safe='')}/makecall", {"destination": "106"}),
        client.post("/callcontrol/101/makecall", {}),
        client.post(f"/callcontrol/104/participants/{ringing['id']}/attach_participant_data",
                    {"attacheddata": {"ticket": "7"}}),
        client.post(f"/callcontrol/104/participants/{ringing['id']}/answer"),
        client.post(f"/callcontrol/104/participants/{ringing['id']}/divert", {"destination": "105"}),
    ]

    assert [a.status_code for a in answers] == [200, 200, 200, 422, 200, 422, 200]
    for answer in answers:
        validate(answer.json(), "CallControlResultResponse")


@pytest.mark.parametrize("scenario", [
    inbound(CALLER, "PragueDID").to_queue("800", rings=["101", "102"]).answered_by("101").talk(2)
    .blind_transfer(by="101", to="103").answered_by("103").caller_hangs_up(),
    inbound(CALLER, "PragueDID").to_ring_group("700").answered_by("102").attended_transfer(by="102", to="104")
    .hangs_up(by="104"),
    inbound(CALLER, "PragueDID").to_ivr("600", press="101").caller_abandons(),
    outbound("101", "+420602111222").answered().talk(2).hangs_up(by="101"),
    internal("101", "102").answered_by("102").hangs_up(by="102"),
], ids=["queue and blind transfer", "ring group and attended transfer", "IVR abandoned", "outbound",
        "internal"])
def test_every_ws_message_and_fetched_entity_conforms(sim, api, scenario):
    client, events = api

    sim.play(scenario)
    answer = events.request("end", "/callcontrol/101")   # queued after every event of the call

    assert any(m["event"]["event_type"] == 1 for m in events.messages)

    for message in events.messages:
        validate(message, "WsEvent")
    validate(answer["event"]["attached_data"], "WebSocketResponse")
    validate(json.loads(answer["event"]["attached_data"]["Response"]), "DNInfo")
    for message in events.messages:
        if message["event"]["event_type"] == 0:
            fetched = client.get(message["event"]["entity"])
            assert fetched.status_code in (200, 404)
            if fetched.status_code == 200:
                validate(fetched.json(), "CallParticipant")


def test_participants_during_a_call_conform(sim, api):
    client, events = api
    sim.play(inbound(CALLER, "PragueDID").to_queue("800"), wait=True)

    events.wait_for(3)

    for message in events.messages:
        validate(message, "WsEvent")
        validate(client.get(message["event"]["entity"]).json(), "CallParticipant")
