"""The simulator's XAPI over real HTTP: reads, OData options, writes, actions, errors and roles."""
from __future__ import annotations

from datetime import datetime, timezone

import pytest

from gateway.sim.model import ApiClient
from tests.support.simulator import Xapi, add_recording, assert_error
from tests.support.wait import wait_until


@pytest.fixture
def xapi(sim) -> Xapi:
    """A client logged in to the simulator as its default API client."""
    return Xapi.login(sim.url, sim.client_id, sim.client_secret)


# ---------------------------------------------------------------- probes and singletons

def test_defs_probe_reports_the_pbx_version(sim, xapi):
    answer = xapi.get("/Defs", **{"$select": "Id"})

    assert answer.status_code == 200
    assert answer.headers["X-3CX-Version"] == sim.directory.version
    assert answer.json()["Id"] == 0


def test_system_status_counts_extensions_and_calls(xapi):
    status = xapi.get("/SystemStatus").json()

    assert (status["ExtensionsTotal"], status["ExtensionsRegistered"], status["CallsActive"]) == (30, 20, 0)
    assert status["Version"].startswith("20.") and status["LicenseActive"] is True


def test_dial_code_settings_name_the_queue_login_codes(xapi):
    codes = xapi.get("/DialCodeSettings").json()

    assert codes["DialCodeLoggedInQueue"] and codes["DialCodeLoggedOutQueue"]


def test_unknown_path_is_404_in_error_shape(xapi):
    assert_error(xapi.get("/Nonsense"), 404)


# ---------------------------------------------------------------- users: reads

def test_users_list_counts_and_pages(xapi):
    first = xapi.get("/Users", **{"$count": "true", "$top": "10", "$orderby": "Number"}).json()
    rest = xapi.values("/Users", **{"$skip": "10", "$top": "100", "$orderby": "Number", "$select": "Number"})

    assert first["@odata.count"] == 30 and first["@odata.context"].endswith("$metadata#Users")
    assert [u["Number"] for u in first["value"]] == [str(n) for n in range(100, 110)]
    assert [u["Number"] for u in rest] == [str(n) for n in range(110, 130)]


def test_users_top_above_100_is_rejected(xapi):
    assert_error(xapi.get("/Users", **{"$top": "101"}), 400, "The limit of '100' for Top query")


def test_users_filter_by_number_with_select(xapi):
    users = xapi.values("/Users", **{"$filter": "Number eq '101'", "$select": "Id,Number,FirstName,IsRegistered"})

    assert [set(u) for u in users] == [{"Id", "Number", "FirstName", "IsRegistered"}]
    assert users[0]["Number"] == "101" and users[0]["IsRegistered"] is True


def test_users_filter_on_registration(xapi):
    registered = xapi.values("/Users", **{"$filter": "IsRegistered eq true", "$select": "Number"})

    assert len(registered) == 20 and "120" not in {u["Number"] for u in registered}


def test_users_injection_attempt_matches_nothing(xapi):
    assert xapi.values("/Users", **{"$filter": "Number eq '101'' or Number ne '''"}) == []


def test_users_malformed_filter_is_400(xapi):
    assert_error(xapi.get("/Users", **{"$filter": "Number eq '101"}), 400, "Syntax error")
    assert_error(xapi.get("/Users", **{"$filter": "Number eq 101"}), 400, "incompatible types")


def test_user_by_id_and_by_number_agree(xapi):
    by_number = xapi.user("102")
    by_id = xapi.get(f"/Users({by_number['Id']})").json()

    assert by_id == by_number and by_id["@odata.context"].endswith("$metadata#Users/$entity")
    assert "Groups" not in by_id and "ForwardingProfiles" not in by_id


@pytest.mark.parametrize("path", ["/Users(999999)", "/Users(Number='999')", "/Users(Number='O''Brien')"])
def test_unknown_user_is_404(xapi, path):
    assert_error(xapi.get(path), 404)


def test_user_forwarding_profiles_are_the_five_v20_profiles(xapi):
    user = xapi.user("101")

    profiles = xapi.values(f"/Users({user['Id']})/ForwardingProfiles")

    assert [p["Name"] for p in profiles] == ["Available", "Away", "Out of office", "Custom 1", "Custom 2"]
    assert user["CurrentProfileName"] == "Available"


def test_user_groups_expand_with_nested_rights(xapi):
    users = xapi.values("/Users", **{"$filter": "Number eq '101'", "$select": "Number",
                                     "$expand": "Groups($expand=Rights)"})

    groups = {g["Name"]: g["Rights"]["RoleName"] for g in users[0]["Groups"]}
    assert groups == {"DEFAULT": "users", "Sales": "managers"}


def test_user_groups_navigation(xapi):
    user = xapi.user("103")

    groups = xapi.values(f"/Users({user['Id']})/Groups")

    assert sorted(g["Name"] for g in groups) == ["DEFAULT", "Support"]
    assert all("Rights" not in g for g in groups)


# ---------------------------------------------------------------- users: writes

def test_create_user_with_number_answers_201(xapi):
    answer = xapi.post("/Users", {"Number": "150", "FirstName": "Nova", "LastName": "Osoba",
                                  "EmailAddress": "nova@example.com"})

    assert answer.status_code == 201
    assert answer.json()["Number"] == "150" and answer.json()["IsRegistered"] is False
    assert xapi.user("150")["EmailAddress"] == "nova@example.com"


def test_create_user_with_taken_number_is_already_in_use(xapi):
    error = assert_error(xapi.post("/Users", {"Number": "101", "FirstName": "Dup"}), 400)

    assert error["details"] == [{"code": "", "target": "Number", "message": "WARNINGS.XAPI.ALREADY_IN_USE"}]


def test_create_user_without_number_takes_the_first_free(xapi):
    free = xapi.get("/Users/Pbx.GetFirstAvailableExtensionNumber()").json()["Number"]

    created = xapi.post("/Users", {"FirstName": "Auto"}).json()

    assert free == created["Number"] == "130"
    assert xapi.get("/Users/Pbx.GetFirstAvailableExtensionNumber()").json()["Number"] == "131"


def test_created_user_is_in_the_default_department_with_profiles(xapi):
    created = xapi.post("/Users", {"Number": "151", "CurrentProfileName": "Away"}).json()

    groups = xapi.values(f"/Users({created['Id']})/Groups")
    profiles = xapi.values(f"/Users({created['Id']})/ForwardingProfiles")

    assert [g["Name"] for g in groups] == ["DEFAULT"] and len(profiles) == 5
    assert created["CurrentProfileName"] == "Away"


def test_patch_user_changes_fields(xapi):
    user = xapi.user("105")

    answer = xapi.patch(f"/Users({user['Id']})", {"FirstName": "Renamed", "RecordCalls": False,
                                                  "QueueStatus": "LoggedOut", "Language": "CS"})

    assert answer.status_code == 204
    changed = xapi.user("105")
    assert (changed["FirstName"], changed["RecordCalls"], changed["QueueStatus"], changed["Language"]) == \
        ("Renamed", False, "LoggedOut", "CS")


@pytest.mark.parametrize("body, target", [
    ({"Number": "199"}, "Number"),
    ({"CurrentProfileName": "Holiday"}, "CurrentProfileName"),
    ({"QueueStatus": "Asleep"}, "QueueStatus"),
    ({"Enabled": "yes"}, "Enabled"),
    ({"NoSuchField": 1}, "NoSuchField"),
    ({"ForwardingProfiles": [{"Name": "Nope", "CustomMessage": "x"}]}, "ForwardingProfiles"),
    ({"Groups": [{"GroupId": 999999, "Rights": {"RoleName": "users"}}]}, "Groups"),
], ids=["number change", "unknown profile", "bad queue status", "wrong type", "unknown field",
        "unknown forwarding profile", "unknown department"])
def test_patch_user_rejects_bad_values(xapi, body, target):
    user = xapi.user("104")

    error = assert_error(xapi.patch(f"/Users({user['Id']})", {"FirstName": "Unchanged?", **body}), 400)

    assert error["details"][0]["target"] == target
    assert xapi.user("104")["FirstName"] == user["FirstName"]   # nothing applied


def test_patch_user_same_number_is_accepted(xapi):
    user = xapi.user("104")

    assert xapi.patch(f"/Users({user['Id']})", {"Number": "104", "LastName": "Same"}).status_code == 204


def test_patch_current_profile_and_status_message(xapi):
    user = xapi.user("102")

    answer = xapi.patch(f"/Users({user['Id']})", {
        "CurrentProfileName": "Away", "ForwardingProfiles": [{"Name": "Away", "CustomMessage": "Back at 2"}]})

    assert answer.status_code == 204
    assert xapi.user("102")["CurrentProfileName"] == "Away"
    profiles = xapi.values(f"/Users({user['Id']})/ForwardingProfiles", **{"$filter": "Name eq 'Away'"})
    assert profiles[0]["CustomMessage"] == "Back at 2"


def test_patch_user_groups_replaces_departments(xapi):
    user = xapi.user("110")
    support = xapi.values("/Groups", **{"$filter": "Name eq 'Support'"})[0]

    xapi.patch(f"/Users({user['Id']})", {"Groups": [{"GroupId": support["Id"], "Rights": {"RoleName": "users"}}]})

    assert [g["Name"] for g in xapi.values(f"/Users({user['Id']})/Groups")] == ["Support"]


def test_delete_user_removes_it_everywhere(xapi):
    user = xapi.user("104")

    assert xapi.delete(f"/Users({user['Id']})").status_code == 204

    assert_error(xapi.get(f"/Users({user['Id']})"), 404)
    support = xapi.values("/Queues", **{"$filter": "Number eq '801'", "$expand": "Agents"})[0]
    assert [a["Number"] for a in support["Agents"]] == ["103", "105"]


def test_batch_delete_reports_unknown_ids(xapi):
    user = xapi.user("125")

    answer = xapi.post("/Users/Pbx.BatchDelete", {"ids": [user["Id"], 999999]})

    assert answer.status_code == 200
    assert answer.json()["value"] == [{"ExtensionNumber": "999999", "Error": "WARNINGS.XAPI.NOT_FOUND"}]
    assert_error(xapi.get("/Users(Number='125')"), 404)


def test_make_call_starts_a_call_in_the_engine(sim, xapi):
    answer = xapi.post("/Users/Pbx.MakeCall", {"dn": "101", "destination": "102"})

    assert answer.status_code == 200
    assert isinstance(answer.json()["FinalStatus"], str)
    assert wait_until(lambda: sim.engine.calls_active() == 1, timeout_s=5)


def test_make_call_from_unknown_dn_is_400(xapi):
    assert_error(xapi.post("/Users/Pbx.MakeCall", {"dn": "999", "destination": "102"}), 400)


# ---------------------------------------------------------------- queues, ring groups, IVRs

def test_queues_expand_agents_and_managers(xapi):
    queues = xapi.values("/Queues", **{"$expand": "Agents,Managers", "$orderby": "Number",
                                       "$select": "Number,Name,PollingStrategy"})

    summary = [(q["Number"], q["Name"], q["PollingStrategy"], [a["Number"] for a in q["Agents"]],
                [m["Number"] for m in q["Managers"]]) for q in queues]
    assert summary == [("800", "Sales", "RingAll", ["101", "102"], []),
                       ("801", "Support", "Hunt", ["103", "104", "105"], ["101"]),
                       ("802", "Billing", "HuntRandomStart", ["104", "106"], [])]


def test_queue_agents_navigation_and_patch_replaces(xapi):
    queue = xapi.get("/Queues(Number='800')").json()

    answer = xapi.patch(f"/Queues({queue['Id']})", {"Agents": [{"Number": "103"}, {"Number": "101"}],
                                                    "PollingStrategy": "LongestWaiting"})

    assert answer.status_code == 204
    assert [a["Number"] for a in xapi.values(f"/Queues({queue['Id']})/Agents")] == ["103", "101"]
    assert xapi.get(f"/Queues({queue['Id']})").json()["PollingStrategy"] == "LongestWaiting"


@pytest.mark.parametrize("body, target", [
    ({"PollingStrategy": "Random"}, "PollingStrategy"),
    ({"Agents": [{"Number": "999"}]}, "Agents"),
    ({"Managers": "101"}, "Managers"),
], ids=["unknown strategy", "unknown agent", "managers not a list"])
def test_queue_patch_rejects_bad_values(xapi, body, target):
    queue = xapi.get("/Queues(Number='801')").json()

    error = assert_error(xapi.patch(f"/Queues({queue['Id']})", body), 400)

    assert error["details"][0]["target"] == target


def test_queue_create_and_delete(xapi):
    number = xapi.get("/Queues/Pbx.GetFirstAvailableQueueNumber()").json()["Number"]
    created = xapi.post("/Queues", {"Name": "Night", "PollingStrategy": "RingAll",
                                    "Agents": [{"Number": "107"}]})

    assert created.status_code == 201 and created.json()["Number"] == number == "803"
    assert xapi.delete(f"/Queues({created.json()['Id']})").status_code == 204
    assert_error(xapi.get("/Queues(Number='803')"), 404)


def test_ring_group_members_patch_replaces(xapi):
    group = xapi.get("/RingGroups(Number='700')").json()

    xapi.patch(f"/RingGroups({group['Id']})", {"Members": [{"Number": "105"}]})

    assert [m["Number"] for m in xapi.values(f"/RingGroups({group['Id']})/Members")] == ["105"]
    assert group["RingStrategy"] == "RingAll"


def test_receptionists_trunks_and_inbound_rules(xapi):
    ivrs = xapi.values("/Receptionists", **{"$select": "Number,Name", "$orderby": "Number"})
    trunk = xapi.get("/Trunks(Number='10000')").json()
    rules = xapi.values("/InboundRules", **{"$filter": "RuleName eq 'PragueDID'", "$expand": "TrunkDN"})

    assert ivrs[0] == {"Number": "600", "Name": "Main menu"}
    assert trunk["DidNumbers"] == ["+420233000111", "+420233000112"] and trunk["Gateway"]["Name"] == "Provider A"
    assert rules[0]["Data"] == "+420233000111"
    assert rules[0]["OfficeHoursDestination"]["Number"] == "800"
    assert rules[0]["TrunkDN"]["Number"] == "10000"


# ---------------------------------------------------------------- departments and peers

def test_groups_list_and_members(xapi):
    groups = {g["Name"]: g for g in xapi.values("/Groups")}

    members = xapi.values(f"/Groups({groups['Sales']['Id']})/Members", **{"$select": "Number"})

    assert groups["DEFAULT"]["IsDefault"] is True and groups["Sales"]["IsDefault"] is False
    assert [m["Number"] for m in members] == ["101", "102", "106"]


def test_group_members_patch_replaces(xapi):
    sales = xapi.values("/Groups", **{"$filter": "Name eq 'Sales'"})[0]

    xapi.patch(f"/Groups({sales['Id']})", {"Members": [{"Number": "120", "Rights": {"RoleName": "users"}}]})

    assert [m["Number"] for m in xapi.values(f"/Groups({sales['Id']})/Members")] == ["120"]
    assert "Sales" not in [g["Name"] for g in xapi.values(f"/Users({xapi.user('101')['Id']})/Groups")]


@pytest.mark.parametrize("literal", ["'Queue'", "Pbx.PeerType'Queue'"])
def test_peers_filter_on_type(xapi, literal):
    peers = xapi.values("/Peers", **{"$filter": f"Type eq {literal}", "$select": "Number", "$orderby": "Number"})

    assert [p["Number"] for p in peers] == ["800", "801", "802"]


def test_peer_by_number(xapi):
    assert xapi.get("/Peers(Number='10000')").json()["Type"] == "ExternalLine"


# ---------------------------------------------------------------- contacts

def test_contacts_filter_handles_apostrophes(xapi):
    contacts = xapi.values("/Contacts", **{"$filter": "LastName eq 'O''Brien'"})

    assert [c["FirstName"] for c in contacts] == ["John"]


def test_contacts_by_number_matches_national_and_international_forms(xapi):
    answer = xapi.get("/Contacts/Pbx.GetContactsByNumber(number='602111222')")

    assert answer.status_code == 200
    assert [c["LastName"] for c in answer.json()["value"]] == ["Malý"]


def test_contact_crud(xapi):
    created = xapi.post("/Contacts", {"FirstName": "Ann", "LastName": "D'Arcy", "PhoneNumber": "+420777000111"})
    path = f"/Contacts({created.json()['Id']})"

    patched = xapi.patch(path, {"CompanyName": "Arcy Ltd"})
    fetched = xapi.get(path).json()
    deleted = xapi.delete(path)

    assert (created.status_code, patched.status_code, deleted.status_code) == (201, 204, 204)
    assert (fetched["LastName"], fetched["CompanyName"]) == ("D'Arcy", "Arcy Ltd")
    assert_error(xapi.get(path), 404)


# ---------------------------------------------------------------- active calls

def test_active_calls_list_and_drop(sim, xapi):
    xapi.post("/Users/Pbx.MakeCall", {"dn": "101", "destination": "102"})
    calls = wait_until(lambda: xapi.values("/ActiveCalls"), timeout_s=5)

    answer = xapi.post(f"/ActiveCalls({calls[0]['Id']})/Pbx.DropCall")

    assert answer.status_code == 200
    assert wait_until(lambda: sim.engine.calls_active() == 0, timeout_s=5)


def test_active_call_keeps_its_arrival_time_after_the_answer(sim, xapi):
    from gateway.sim.scenarios import inbound

    played = sim.play(inbound("+420774852529").to_extension("101").rings(10).answered_by("101").talk(1000),
                      wait=False)
    arrived = sim.engine.call(played.call_id).created_at
    wait_until(lambda: sim.engine.call(played.call_id).is_established, timeout_s=5)

    [row] = xapi.values("/ActiveCalls")

    established = datetime.fromisoformat(row["EstablishedAt"].replace("Z", "+00:00"))
    server_now = datetime.fromisoformat(row["ServerNow"].replace("Z", "+00:00"))
    assert row["Status"] == "Talking" and row["Caller"] == "+420774852529" and row["Callee"].startswith("101 ")
    assert abs((established - arrived).total_seconds()) < 0.001
    assert server_now > established
    sim.engine.hang_up(played.call_id)


def test_drop_of_unknown_call_is_404(xapi):
    assert_error(xapi.post("/ActiveCalls(999999)/Pbx.DropCall"), 404)


# ---------------------------------------------------------------- recordings

def test_recordings_filter_and_download(sim, xapi):
    add_recording(sim, 501, "101")
    add_recording(sim, 502, "103", start=datetime(2025, 3, 2, 10, 0, tzinfo=timezone.utc))

    found = xapi.values("/Recordings", **{"$filter": "(FromDn eq '101' or ToDn eq '101') and "
                                                     "StartTime ge 2025-03-01T00:00:00Z", "$orderby": "Id desc"})
    wav = xapi.get("/Recordings/Pbx.DownloadRecording(recId=501)")

    assert [r["Id"] for r in found] == [501]
    assert wav.status_code == 200 and wav.headers["Content-Type"] == "audio/x-wav"
    assert wav.content.startswith(b"RIFF")


def test_recording_by_key_is_404_as_on_v20(sim, xapi):
    add_recording(sim, 501)

    assert_error(xapi.get("/Recordings(501)"), 404)
    assert_error(xapi.get("/Recordings/Pbx.DownloadRecording(recId=999)"), 404)


def test_recordings_need_the_system_owner_role(sim):
    with sim.directory.lock:
        sim.directory.api_clients["901"] = ApiClient(client_id="901", secret="admin-secret-901",
                                                     role="system_admins")
    admin = Xapi.login(sim.url, "901", "admin-secret-901")

    assert_error(admin.get("/Recordings"), 403)
    assert_error(admin.get("/Recordings/Pbx.DownloadRecording(recId=1)"), 403)
    assert admin.get("/Users", **{"$top": "1"}).status_code == 200
