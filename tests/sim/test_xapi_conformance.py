"""Every XAPI endpoint the simulator serves answers what 3CX's official v20 OpenAPI spec declares.

Schemas come from tests/data/xapi-schemas.json (written by tools/extract_specs.py from the spec):
unknown fields, wrong JSON types, bad enum names, out-of-range integers and malformed date-times all
fail here, so the simulator cannot drift from v20 unnoticed.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Callable

import jsonschema
import pytest

from gateway.sim.xapi import SERVED_PATHS
from tests.support.simulator import Xapi, add_recording
from tests.support.wait import wait_until

SPEC = json.loads((Path(__file__).parent.parent / "data" / "xapi-schemas.json").read_text(encoding="utf-8"))


@pytest.fixture
def xapi(sim) -> Xapi:
    """A client logged in to the simulator as its default API client."""
    return Xapi.login(sim.url, sim.client_id, sim.client_secret)


def validate(body: Any, schema: dict) -> None:
    """Raise jsonschema.ValidationError unless `body` fits `schema` (refs into the extracted definitions)."""
    jsonschema.Draft202012Validator({"definitions": SPEC["definitions"], **schema}).validate(body)


def ids(xapi: Xapi) -> dict[str, int]:
    """Ids of a few default entities, looked up through the XAPI itself."""
    first = {name: xapi.values(f"/{name}", **{"$top": "1", "$select": "Id"})[0]["Id"]
             for name in ("Receptionists", "Trunks", "InboundRules", "Groups", "Contacts")}
    return {**first, "user": xapi.user("101")["Id"], "spare_user": xapi.user("128")["Id"],
            "queue": xapi.get("/Queues(Number='801')").json()["Id"],
            "spare_queue": xapi.get("/Queues(Number='802')").json()["Id"],
            "ring_group": xapi.get("/RingGroups(Number='700')").json()["Id"],
            "spare_ring_group": xapi.get("/RingGroups(Number='701')").json()["Id"],
            "spare_contact": xapi.values("/Contacts", **{"$orderby": "Id desc", "$top": "1"})[0]["Id"]}


# (method, spec path) -> what to send: (path, query, body) built from the default entities' ids.
Request = Callable[[dict[str, int]], tuple[str, dict[str, str], dict | None]]
USER_EXPAND = "Groups($expand=Rights,GroupRights),ForwardingProfiles,ForwardingExceptions,Greetings,Phones"
REQUESTS: dict[tuple[str, str], Request] = {
    ("GET", "/Defs"): lambda i: ("/Defs", {}, None),
    ("GET", "/SystemStatus"): lambda i: ("/SystemStatus", {}, None),
    ("GET", "/DialCodeSettings"): lambda i: ("/DialCodeSettings", {}, None),
    ("GET", "/Users"): lambda i: ("/Users", {"$expand": USER_EXPAND, "$count": "true"}, None),
    ("POST", "/Users"): lambda i: ("/Users", {}, {"FirstName": "Conf", "LastName": "Ormance"}),
    ("GET", "/Users({Id})"): lambda i: (f"/Users({i['user']})", {"$expand": USER_EXPAND}, None),
    ("PATCH", "/Users({Id})"): lambda i: (f"/Users({i['user']})", {}, {"CurrentProfileName": "Away"}),
    ("DELETE", "/Users({Id})"): lambda i: (f"/Users({i['spare_user']})", {}, None),
    ("GET", "/Users(Number={Number})"): lambda i: ("/Users(Number='102')", {"$expand": "Groups"}, None),
    ("GET", "/Users({Id})/ForwardingProfiles"): lambda i: (f"/Users({i['user']})/ForwardingProfiles", {}, None),
    ("GET", "/Users({Id})/Groups"): lambda i: (f"/Users({i['user']})/Groups", {"$expand": "Rights"}, None),
    ("POST", "/Users/Pbx.BatchDelete"): lambda i: ("/Users/Pbx.BatchDelete", {}, {"ids": [i["spare_user"], 1]}),
    ("GET", "/Users/Pbx.GetFirstAvailableExtensionNumber()"):
        lambda i: ("/Users/Pbx.GetFirstAvailableExtensionNumber()", {}, None),
    ("POST", "/Users/Pbx.MakeCall"): lambda i: ("/Users/Pbx.MakeCall", {}, {"dn": "103", "destination": "104"}),
    ("GET", "/Queues"): lambda i: ("/Queues", {"$expand": "Agents,Managers,Groups"}, None),
    ("POST", "/Queues"): lambda i: ("/Queues", {}, {"Name": "New", "Agents": [{"Number": "101"}]}),
    ("GET", "/Queues({Id})"): lambda i: (f"/Queues({i['queue']})", {"$expand": "Agents,Managers"}, None),
    ("PATCH", "/Queues({Id})"): lambda i: (f"/Queues({i['queue']})", {}, {"PollingStrategy": "RingAll"}),
    ("DELETE", "/Queues({Id})"): lambda i: (f"/Queues({i['spare_queue']})", {}, None),
    ("GET", "/Queues(Number={Number})"): lambda i: ("/Queues(Number='800')", {}, None),
    ("GET", "/Queues({Id})/Agents"): lambda i: (f"/Queues({i['queue']})/Agents", {}, None),
    ("GET", "/Queues({Id})/Managers"): lambda i: (f"/Queues({i['queue']})/Managers", {}, None),
    ("GET", "/Queues/Pbx.GetFirstAvailableQueueNumber()"):
        lambda i: ("/Queues/Pbx.GetFirstAvailableQueueNumber()", {}, None),
    ("GET", "/RingGroups"): lambda i: ("/RingGroups", {"$expand": "Members"}, None),
    ("POST", "/RingGroups"): lambda i: ("/RingGroups", {}, {"Name": "New", "Members": [{"Number": "101"}]}),
    ("GET", "/RingGroups({Id})"): lambda i: (f"/RingGroups({i['ring_group']})", {"$expand": "Members"}, None),
    ("PATCH", "/RingGroups({Id})"): lambda i: (f"/RingGroups({i['ring_group']})", {}, {"RingTime": 30}),
    ("DELETE", "/RingGroups({Id})"): lambda i: (f"/RingGroups({i['spare_ring_group']})", {}, None),
    ("GET", "/RingGroups(Number={Number})"): lambda i: ("/RingGroups(Number='701')", {}, None),
    ("GET", "/RingGroups({Id})/Members"): lambda i: (f"/RingGroups({i['ring_group']})/Members", {}, None),
    ("GET", "/RingGroups/Pbx.GetFirstAvailableRingGroupNumber()"):
        lambda i: ("/RingGroups/Pbx.GetFirstAvailableRingGroupNumber()", {}, None),
    ("GET", "/Receptionists"): lambda i: ("/Receptionists", {"$expand": "Forwards"}, None),
    ("GET", "/Receptionists({Id})"): lambda i: (f"/Receptionists({i['Receptionists']})", {}, None),
    ("GET", "/Receptionists(Number={Number})"): lambda i: ("/Receptionists(Number='601')", {}, None),
    ("GET", "/Receptionists({Id})/Forwards"):
        lambda i: (f"/Receptionists({i['Receptionists']})/Forwards", {}, None),
    ("GET", "/Trunks"): lambda i: ("/Trunks", {}, None),
    ("GET", "/Trunks({Id})"): lambda i: (f"/Trunks({i['Trunks']})", {}, None),
    ("GET", "/Trunks(Number={Number})"): lambda i: ("/Trunks(Number='10001')", {}, None),
    ("GET", "/InboundRules"): lambda i: ("/InboundRules", {"$expand": "TrunkDN"}, None),
    ("GET", "/InboundRules({Id})"): lambda i: (f"/InboundRules({i['InboundRules']})", {}, None),
    ("GET", "/Groups"): lambda i: ("/Groups", {"$expand": "Members($expand=Rights),Rights"}, None),
    ("GET", "/Groups({Id})"): lambda i: (f"/Groups({i['Groups']})", {}, None),
    ("PATCH", "/Groups({Id})"): lambda i: (f"/Groups({i['Groups']})", {}, {"Name": "DEFAULT"}),
    ("GET", "/Groups({Id})/Members"): lambda i: (f"/Groups({i['Groups']})/Members", {}, None),
    ("GET", "/Peers"): lambda i: ("/Peers", {"$expand": "MemberOf"}, None),
    ("GET", "/Peers(Number={Number})"): lambda i: ("/Peers(Number='700')", {}, None),
    ("GET", "/Contacts"): lambda i: ("/Contacts", {}, None),
    ("POST", "/Contacts"): lambda i: ("/Contacts", {}, {"FirstName": "Ann", "PhoneNumber": "+420777000111"}),
    ("GET", "/Contacts({Id})"): lambda i: (f"/Contacts({i['Contacts']})", {}, None),
    ("PATCH", "/Contacts({Id})"): lambda i: (f"/Contacts({i['Contacts']})", {}, {"Tag": "VIP"}),
    ("DELETE", "/Contacts({Id})"): lambda i: (f"/Contacts({i['spare_contact']})", {}, None),
    ("GET", "/Contacts/Pbx.GetContactsByNumber(number={number})"):
        lambda i: ("/Contacts/Pbx.GetContactsByNumber(number='+420774852529')", {}, None),
    ("GET", "/ActiveCalls"): lambda i: ("/ActiveCalls", {}, None),
    ("POST", "/ActiveCalls({Id})/Pbx.DropCall"): lambda i: (f"/ActiveCalls({i['call']})/Pbx.DropCall", {}, None),
    ("GET", "/Recordings"): lambda i: ("/Recordings", {}, None),
    ("GET", "/Recordings/Pbx.DownloadRecording(recId={recId})"):
        lambda i: ("/Recordings/Pbx.DownloadRecording(recId=501)", {}, None),
}
CALL_LOG = ("/ReportCallLogData/Pbx.GetCallLogData(periodFrom={periodFrom},periodTo={periodTo},sourceType={sourceType},"
            "sourceFilter={sourceFilter},destinationType={destinationType},destinationFilter={destinationFilter},"
            "callsType={callsType},callTimeFilterType={callTimeFilterType},callTimeFilterFrom={callTimeFilterFrom},"
            "callTimeFilterTo={callTimeFilterTo},hidePcalls={hidePcalls})")
REQUESTS[("GET", CALL_LOG)] = lambda i: (
    "/ReportCallLogData/Pbx.GetCallLogData(periodFrom=2020-01-01T00:00:00.000Z,periodTo=2100-01-01T00:00:00Z,"
    "sourceType=0,sourceFilter='',destinationType=0,destinationFilter='',callsType=0,callTimeFilterType=0,"
    "callTimeFilterFrom='0:00:0',callTimeFilterTo='0:00:0',hidePcalls=true)",
    {"$orderby": "StartTime asc", "$top": "500", "$count": "true"}, None)
# Documented deviation: v20 answers the WAV itself although the spec declares a JSON IActionResult.
BINARY = {("GET", "/Recordings/Pbx.DownloadRecording(recId={recId})")}


def test_served_paths_are_the_extracted_ones():
    extracted = {(method, path) for path, methods in SPEC["paths"].items() for method in methods}

    assert extracted == set(SERVED_PATHS), "run tools/extract_specs.py after changing SERVED_PATHS"
    assert set(REQUESTS) == set(SERVED_PATHS)


@pytest.mark.parametrize("method, path", sorted(REQUESTS), ids=lambda value: value)
def test_endpoint_answers_the_spec_schema(sim, xapi, method, path):
    known = ids(xapi)
    add_recording(sim, 501)
    xapi.post("/Users/Pbx.MakeCall", {"dn": "101", "destination": "102"})
    known["call"] = wait_until(lambda: xapi.values("/ActiveCalls"), timeout_s=5)[0]["Id"]
    if path == CALL_LOG:   # the history lists finished calls only
        wait_until(lambda: sim.engine.participants("102"), timeout_s=5)
        sim.engine.hang_up(known["call"])
        wait_until(lambda: sim.directory.call_log, timeout_s=5)
    url, query, body = REQUESTS[(method, path)](known)
    declared = SPEC["paths"][path][method]

    answer = xapi.session.request(method, xapi.base_url + url, params=query, json=body, timeout=5)

    assert answer.status_code == declared["status"], answer.text
    if (method, path) in BINARY:
        assert answer.headers["Content-Type"] == "audio/x-wav"
    elif declared["schema"] is None:
        assert answer.content == b""
    else:
        validate(answer.json(), declared["schema"])
        if "value" in answer.json() and method == "GET":
            assert answer.json()["value"] or path.endswith("/Forwards"), "validate something, not nothing"


@pytest.mark.parametrize("path, query", [
    ("/Users", {"$filter": "Number eq '101"}),
    ("/Users", {"$top": "500"}),
    ("/Users(999999)", {}),
    ("/Queues", {"$expand": "Nope"}),
    ("/Recordings(1)", {}),
], ids=["syntax error", "top above cap", "unknown id", "unknown expand", "recording by key"])
def test_errors_answer_the_spec_error_body(xapi, path, query):
    answer = xapi.get(path, **query)

    assert answer.status_code in (400, 404)
    validate(answer.json(), SPEC["error"])


def test_created_user_fits_the_schema_with_every_field(xapi):
    created = xapi.post("/Users", {"Number": "160", "FirstName": "Full"}).json()

    validate(created, {"$ref": "#/definitions/Pbx.User"})
    assert {"Id", "Number", "IsRegistered", "CurrentProfileName", "QueueStatus"} <= set(created)


@pytest.mark.parametrize("bad", [
    {"Id": "7"}, {"IsRegistered": "yes"}, {"QueueStatus": "Busy"}, {"Unknown": 1}, {"Id": 2 ** 31},
], ids=["id as string", "bool as string", "bad enum", "unknown field", "int32 overflow"])
def test_schema_rejects_what_v20_would_never_send(bad):
    with pytest.raises(jsonschema.ValidationError):
        validate(bad, {"$ref": "#/definitions/Pbx.User"})


def test_schema_rejects_malformed_date_times():
    with pytest.raises(jsonschema.ValidationError):
        validate({"StartTime": "01/03/2025 10:00"}, {"$ref": "#/definitions/Pbx.Recording"})
