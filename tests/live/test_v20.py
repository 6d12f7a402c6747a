"""Readings of v20 participants: statuses, type names, direction and transfer kind."""
from __future__ import annotations

import pytest

from gateway.live import v20
from gateway.live.unknowns import Unknowns
from tests.support.live import CALLER, DID, T0, make_leg, participant


@pytest.mark.parametrize("raw, expected", [
    pytest.param("Dialing", "dialing", id="Dialing is dialing"),
    pytest.param("Ringing", "ringing", id="Ringing is ringing"),
    pytest.param("Connected", "talking", id="Connected is talking"),
    pytest.param("Talking", "talking", id="Talking is talking"),
    pytest.param("Hold", "talking", id="Hold is talking"),
    pytest.param("Held", "talking", id="Held is talking"),
    pytest.param("Parked", "", id="an unknown status has no reading of its own"),
])
def test_status_of_maps_v20_statuses(raw, expected):
    assert v20.status_of(raw) == expected


@pytest.mark.parametrize("raw, expected", [
    pytest.param("Connected", False, id="Connected is not on hold"),
    pytest.param("Hold", True, id="Hold is on hold"),
    pytest.param("Held", True, id="Held is on hold"),
])
def test_is_hold_status_reads_hold_words(raw, expected):
    assert v20.is_hold_status(raw) is expected


def test_unknown_status_keeps_the_previous_status_and_is_reported_once():
    unknowns = Unknowns()
    talking = make_leg(status="Connected")

    first = v20.leg_from_participant(participant("101", 1, "Parked"), seen_at=T0, previous=talking, unknowns=unknowns)
    again = v20.leg_from_participant(participant("101", 1, "Parked"), seen_at=T0, previous=first, unknowns=unknowns)

    assert (first.status, again.status) == ("talking", "talking")
    [unknown] = unknowns.items()
    assert (unknown.kind, unknown.value, unknown.count) == ("status", "Parked", 2)
    assert "kept as talking" in unknown.reading


def test_unknown_status_on_a_new_leg_reads_as_ringing():
    unknowns = Unknowns()

    leg = v20.leg_from_participant(participant("101", 1, "Alerting"), seen_at=T0, unknowns=unknowns)

    assert leg.status == "ringing"
    assert [u.value for u in unknowns.items()] == ["Alerting"]


def test_hold_keeps_the_leg_connected_and_on_hold():
    leg = v20.leg_from_participant(participant("101", 1, "Hold"), seen_at=T0)

    assert (leg.status, leg.is_on_hold, leg.answered_at) == ("talking", True, T0)


def test_unknown_type_name_is_other_and_reported():
    unknowns = Unknowns()

    leg = v20.leg_from_participant(participant("101", 1, on_behalf_of_dn="900", on_behalf_of_type="Wcallflow"),
                                   seen_at=T0, unknowns=unknowns)

    assert (leg.via_dn, leg.via_kind) == ("900", "other")
    assert [(u.kind, u.value) for u in unknowns.items()] == [("type", "Wcallflow")]


def test_unexpected_and_missing_fields_are_reported_and_the_leg_still_read():
    unknowns = Unknowns()
    body = participant("101", 1, "Ringing", party_caller_type="Wexternalline")
    del body["on_behalf_of_dn"], body["callid"]

    leg = v20.leg_from_participant(body, seen_at=T0, unknowns=unknowns)

    assert (leg.status, leg.via_dn, leg.v20_call_id) == ("ringing", "", 1)
    assert {(u.kind, u.value) for u in unknowns.items()} == {
        ("field", "party_caller_type"), ("missing", "callid"), ("missing", "on_behalf_of_dn"),
        ("unplaced", "no callid")}


def test_missing_dn_and_id_come_from_the_entity():
    body = participant("101", 1)
    del body["dn"], body["id"]

    leg = v20.leg_from_participant(body, seen_at=T0, dn="101", participant_id=44)

    assert leg.key == ("101", 44)


@pytest.mark.parametrize("raw, expected", [
    pytest.param("Wextension", "extension", id="Wextension is an extension"),
    pytest.param("Wexternalline", "external", id="Wexternalline is an outside party"),
    pytest.param("Wqueue", "queue", id="Wqueue is a queue"),
    pytest.param("Wringgroup", "ringgroup", id="Wringgroup is a ring group"),
    pytest.param("Wivr", "ivr", id="Wivr is an IVR"),
    pytest.param("Wroutepoint", "routepoint", id="Wroutepoint is a route point"),
    pytest.param("Wspecialmenu", "other", id="another W name is other"),
    pytest.param("", "", id="an empty field stays empty"),
    pytest.param(None, "", id="a null field is empty"),
    pytest.param("None", "", id="the None name is empty"),
])
def test_kind_of_maps_type_names(raw, expected):
    assert v20.kind_of(raw) == expected


def test_leg_from_participant_reads_every_field():
    body = participant("101", 7, "Connected", party_caller_name="Jan Novak", on_behalf_of_dn="800",
                       on_behalf_of_type="Wqueue", referred_by_dn="102", direct_control=True, legid=3)

    leg = v20.leg_from_participant(body, seen_at=T0, dn_kind="extension")

    assert (leg.dn, leg.participant_id, leg.v20_call_id, leg.v20_leg_id, leg.status) == ("101", 7, 698, 3, "talking")
    assert (leg.party_number, leg.party_name, leg.party_dn, leg.party_kind) == (
        CALLER, "Jan Novak", "10000", "external")
    assert (leg.did, leg.device_id, leg.is_remote_controllable) == (DID, "sip:101@127.0.0.1:5060", True)
    assert (leg.via_dn, leg.via_kind, leg.referred_by_dn) == ("800", "queue", "102")
    assert (leg.seen_at, leg.answered_at, leg.first_status) == (T0, T0, "talking")


@pytest.mark.parametrize("leg, expected", [
    pytest.param(make_leg(status="Ringing"), "inbound", id="ringing with an outside party is inbound"),
    pytest.param(make_leg(status="Connected"), "inbound", id="connected with an outside party is inbound"),
    pytest.param(make_leg(status="Dialing"), "outbound", id="dialing an outside party is outbound"),
    pytest.param(make_leg(status="Ringing", party_dn_type="Wextension", party_dn="102"), "internal",
                 id="an extension party is internal"),
    pytest.param(make_leg(status="Ringing", originated_by_dn="101", party_dn="", party_dn_type=""), "",
                 id="a makecall ringing its own device cannot tell yet"),
    pytest.param(make_leg("800", status="Connected", dn_kind="queue"), "inbound",
                 id="a queue's own leg with an outside party is inbound"),
])
def test_direction_of_reads_the_first_leg(leg, expected):
    assert v20.direction_of(leg) == expected


@pytest.mark.parametrize("leg, expected", [
    pytest.param(make_leg(status="Ringing"), "", id="a leg nobody referred is not transferred"),
    pytest.param(make_leg(status="Ringing", referred_by_dn="101"), "blind", id="a referred leg ringing first is blind"),
    pytest.param(make_leg(status="Connected", referred_by_dn="101"), "attended",
                 id="a referred leg connected first is attended"),
])
def test_transfer_kind_tells_blind_from_attended(leg, expected):
    assert v20.transfer_kind(leg) == expected


def test_dn_kind_of_defaults_to_extension():
    assert v20.dn_kind_of({"dn": "800", "type": "Wqueue"}) == "queue"
    assert v20.dn_kind_of({"dn": "101"}) == "extension"
    assert v20.dn_kind_of({"dn": "101", "type": "Extension"}) == "extension"


def test_dn_kind_of_an_unknown_type_is_an_extension_and_reported():
    unknowns = Unknowns()

    assert v20.dn_kind_of({"dn": "150", "type": "Wsomething"}, unknowns) == "extension"
    assert [(u.kind, u.value, u.where) for u in unknowns.items()] == [("type", "Wsomething", "/callcontrol/150")]
