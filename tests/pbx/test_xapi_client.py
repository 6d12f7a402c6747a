"""XapiClient against the simulator: paging, finding by number, escaping, retries and errors."""
from __future__ import annotations

from datetime import datetime, timezone

import pytest

from gateway.pbx import odata
from gateway.pbx.errors import PbxAuthFailed, PbxNotFound, PbxRejected
from gateway.pbx.xapi import XapiClient
from gateway.sim.model import Contact, Recording


@pytest.fixture
def xapi(sim, session, tokens) -> XapiClient:
    """An XAPI client logged in to the simulator."""
    return XapiClient(session, sim.url, tokens, timeout_s=5)


def served(sim, path: str) -> list:
    """The requests the simulator served for exactly `path`, oldest first."""
    return [request for request in sim.requests if request.path == path]


def add_contacts(sim, count: int) -> None:
    """Put `count` more phonebook entries into the simulated PBX."""
    with sim.directory.lock:
        for n in range(count):
            contact = Contact(id=sim.directory.new_id(), first_name="Bulk", last_name=f"Contact {n:03d}",
                              phone=f"+42060000{n:04d}")
            sim.directory.contacts[contact.id] = contact


def test_list_pages_by_100_until_a_short_page(sim, xapi):
    before = len(xapi.list("Contacts"))
    add_contacts(sim, 205 - before)

    contacts = xapi.list("Contacts", select=["Id", "LastName"], orderby="Id")

    assert len(contacts) == 205
    assert len({contact["Id"] for contact in contacts}) == 205
    pages = [(request.params["$top"], request.params["$skip"]) for request in served(sim, "/xapi/v1/Contacts")[1:]]
    assert pages == [("100", "0"), ("100", "100"), ("100", "200")]


def test_list_stops_at_top(sim, xapi):
    add_contacts(sim, 150)

    contacts = xapi.list("Contacts", top=120)

    assert len(contacts) == 120


def test_list_applies_the_filter(xapi):
    users = xapi.list("Users", filter=odata.any_of(odata.eq("Number", "101"), odata.eq("Number", "102")),
                      select="Id,Number")

    assert sorted(user["Number"] for user in users) == ["101", "102"]


def test_find_returns_the_entity_with_that_number(xapi):
    user = xapi.find("Users", "101", select=["Id", "Number", "FirstName"])

    assert user["Number"] == "101"
    assert user["FirstName"]


def test_find_of_a_missing_number_raises_not_found(xapi):
    with pytest.raises(PbxNotFound, match="no entry with Number '999'"):
        xapi.find("Queues", "999")


def test_apostrophe_in_a_literal_finds_the_contact(xapi):
    found = xapi.list("Contacts", filter=odata.eq("LastName", "O'Brien"))

    assert [contact["FirstName"] for contact in found] == ["John"]


def test_injection_through_a_number_finds_nothing(xapi):
    with pytest.raises(PbxNotFound):
        xapi.find("Users", "101' or Number ne '")


def test_get_of_an_unknown_id_raises_not_found(xapi):
    with pytest.raises(PbxNotFound):
        xapi.get("/Users(987654)")


def test_get_retries_a_503_once_and_succeeds(sim, xapi):
    sim.faults.fail(503, "/xapi/v1/Users", times=1)

    user = xapi.find("Users", "101")

    assert user["Number"] == "101"
    assert [request.status for request in served(sim, "/xapi/v1/Users")] == [503, 200]


def test_get_gives_up_after_two_retries(sim, xapi):
    sim.faults.fail(503, "/xapi/v1/Users", times=5)

    with pytest.raises(PbxRejected) as raised:
        xapi.find("Users", "101")

    assert raised.value.status == 503
    assert len(served(sim, "/xapi/v1/Users")) == 3


def test_post_is_never_retried(sim, xapi):
    sim.faults.fail(503, "/xapi/v1/Contacts", times=1)

    with pytest.raises(PbxRejected) as raised:
        xapi.post("/Contacts", {"FirstName": "Nina", "LastName": "Once", "PhoneNumber": "+420777000111"})

    assert raised.value.status == 503
    assert [request.method for request in served(sim, "/xapi/v1/Contacts")] == ["POST"]
    assert xapi.list("Contacts", filter=odata.eq("LastName", "Once")) == []


def test_post_patch_delete_round_trip(xapi):
    created = xapi.post("/Contacts", {"FirstName": "Nina", "LastName": "Nováková", "PhoneNumber": "+420777000111"})

    xapi.patch(f"/Contacts({created['Id']})", {"LastName": "O'Hara"})
    renamed = xapi.get(f"/Contacts({created['Id']})")
    xapi.delete(f"/Contacts({created['Id']})")

    assert renamed["LastName"] == "O'Hara"
    with pytest.raises(PbxNotFound):
        xapi.get(f"/Contacts({created['Id']})")


def test_rejected_post_carries_the_pbx_message(xapi):
    with pytest.raises(PbxRejected) as raised:
        xapi.post("/Users", {"Number": "101", "FirstName": "Duplicate"})

    assert raised.value.status == 400
    assert raised.value.message


def test_version_reads_the_version_header(sim, xapi):
    version = xapi.version()

    assert version.startswith("20.")
    assert served(sim, "/xapi/v1/Defs")[-1].status == 200


def test_second_401_after_a_refresh_raises_auth_failed(sim, xapi):
    sim.faults.fail(401, "/xapi/v1/Users", times=2)

    with pytest.raises(PbxAuthFailed, match="GET /xapi/v1/Users"):
        xapi.find("Users", "101")

    assert len(served(sim, "/xapi/v1/Users")) == 2
    assert len(served(sim, "/connect/token")) == 2


def test_patch_is_retried_after_a_503(sim, xapi):
    contact = xapi.list("Contacts", filter=odata.eq("LastName", "Walker"))[0]
    path = f"/Contacts({contact['Id']})"
    sim.faults.fail(503, "/xapi/v1" + path, times=1)

    xapi.patch(path, {"CompanyName": "Acme a.s."})

    assert xapi.get(path)["CompanyName"] == "Acme a.s."
    assert [request.status for request in served(sim, "/xapi/v1" + path)][:2] == [503, 204]


def test_download_returns_the_raw_bytes(sim, xapi):
    wav = b"RIFF\x24\x00\x00\x00WAVEfmt " + bytes(range(256))
    now = datetime(2026, 11, 24, 9, 0, tzinfo=timezone.utc)
    with sim.directory.lock:
        recording = Recording(id=sim.directory.new_id(), start_time=now, end_time=now, from_dn="101",
                              from_dn_type=0, from_caller_number="101", from_display_name="Jan Novák",
                              to_dn="102", to_dn_type=0, to_caller_number="102",
                              to_display_name="Petra Svobodová", call_type="Local", wav=wav)
        sim.directory.recordings[recording.id] = recording

    downloaded = xapi.download(f"/Recordings/Pbx.DownloadRecording(recId={recording.id})")

    assert downloaded == wav
