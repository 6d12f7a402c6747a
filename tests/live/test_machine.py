"""The pure call state machine: sequences of leg events in, legacy webhooks out."""
from __future__ import annotations

from dataclasses import replace

import pytest

from gateway.live.machine import LegGone, Rules, advance
from tests.support.live import (CALLER, ZONE, at, ended, gone, grace_over, internal, make_leg, outbound, ringing,
                                 run, seen, started, without_titles)

Q = {"on_behalf_of_dn": "800", "on_behalf_of_type": "Wqueue"}
RG = {"on_behalf_of_dn": "700", "on_behalf_of_type": "Wringgroup"}
IVR = {"on_behalf_of_dn": "600", "on_behalf_of_type": "Wivr"}
BY_101 = {"referred_by_dn": "101", "referred_by_type": "Wextension"}

SEQUENCES = [
    pytest.param(
        [seen("101", 1, "Ringing", 0), seen("101", 1, "Connected", 5), gone("101", 1, 65)],
        [ringing("101", "ext", 0),
         started("hangupincoming", "101", "NotDef", 1),
         ended("incoming", "101", "Ok", False, 1)],
        id="1 external call to 101 answered then the caller hangs up"),
    pytest.param(
        [seen("800", 10, "Connected", 0, dn_kind="queue"),
         seen("101", 11, "Ringing", 1, **Q), seen("102", 12, "Ringing", 1, **Q),
         seen("102", 12, "Connected", 6, **Q), gone("101", 11, 6), gone("800", 10, 6), gone("102", 12, 60)],
        [ringing("101", "queue", 0), ringing("102", "queue", 0),
         started("hangupincoming", "102", "NotDef", 1),
         ended("incoming", "102", "Ok", False, 1)],
        id="2 queue call answered by the second agent says nothing for the first"),
    pytest.param(
        [seen("800", 10, "Connected", 0, dn_kind="queue"),
         seen("101", 11, "Ringing", 1, **Q), seen("102", 12, "Ringing", 1, **Q),
         gone("101", 11, 20), gone("102", 12, 20), gone("800", 10, 20)],
        [ringing("101", "queue", 0), ringing("102", "queue", 0),
         ended("incoming", "800", "Missed", False, 0)],
        id="3 queue call abandoned is missed at the queue"),
    pytest.param(
        [seen("101", 1, "Ringing", 0), seen("101", 1, "Connected", 5),
         seen("103", 2, "Ringing", 30, **BY_101), gone("101", 1, 30),
         seen("103", 2, "Connected", 35, **BY_101), gone("103", 2, 90)],
        [ringing("101", "ext", 0), started("hangupincoming", "101", "NotDef", 1),
         ended("incoming", "101", "Ok", True, 1),
         ringing("103", "ext", 2), started("hangupincoming", "103", "Blind", 2),
         ended("incoming", "103", "Ok", False, 2)],
        id="4 blind transfer to 103 who answers"),
    pytest.param(
        [seen("101", 1, "Ringing", 0), seen("101", 1, "Connected", 5),
         internal("101", 3, "Dialing", "103", 20, call=699), internal("103", 4, "Ringing", "101", 20, call=699),
         internal("101", 3, "Connected", "103", 25, call=699), internal("103", 4, "Connected", "101", 25, call=699),
         seen("103", 2, "Connected", 40, **BY_101), gone("101", 3, 40), gone("103", 4, 40), gone("101", 1, 40),
         gone("103", 2, 100)],
        [ringing("101", "ext", 0), started("hangupincoming", "101", "NotDef", 1),
         ended("incoming", "101", "Ok", True, 1),
         started("hangupincoming", "103", "Accomp", 2),
         ended("incoming", "103", "Ok", False, 2)],
        id="5 attended transfer: the consultation is internal and silent, 103 starts as Accomp"),
    pytest.param(
        [seen("101", 1, "Ringing", 0), seen("101", 1, "Connected", 5),
         seen("103", 2, "Ringing", 30, **BY_101), gone("101", 1, 30), gone("103", 2, 50)],
        [ringing("101", "ext", 0), started("hangupincoming", "101", "NotDef", 1),
         ended("incoming", "101", "Ok", True, 1),
         ringing("103", "ext", 2),
         ended("incoming", "103", "Missed", False, 2)],
        id="6 blind transfer to 103 who does not answer ends Missed on link 2"),
    pytest.param(
        [outbound("101", 1, "Dialing", 0), outbound("101", 1, "Connected", 8), gone("101", 1, 68)],
        [started("hangupoutgoing", "101", "NotDef", 1), ended("outgoing", "101", "Ok", False, 1)],
        id="7 outbound call answered has no ringing"),
    pytest.param(
        [outbound("101", 1, "Dialing", 0), gone("101", 1, 30)],
        [ended("outgoing", "101", "Missed", False, 0)],
        id="8 outbound call not answered is missed on link 0"),
    pytest.param(
        [seen("101", 11, "Ringing", 0, **RG), seen("102", 12, "Ringing", 0, **RG),
         seen("102", 12, "Connected", 4, **RG), gone("101", 11, 4), gone("102", 12, 30)],
        [ringing("101", "other", 0), ringing("102", "other", 0),
         started("hangupincoming", "102", "NotDef", 1), ended("incoming", "102", "Ok", False, 1)],
        id="9 ring group call rings as other with one id"),
    pytest.param(
        [seen("101", 1, "Ringing", 0), seen("101", 1, "Connected", 5), gone("101", 1, 80, is_resync=True)],
        [ringing("101", "ext", 0), started("hangupincoming", "101", "NotDef", 1),
         ended("incoming", "101", "Ok", False, 1)],
        id="10 an end found by a resync still ends the call"),
    pytest.param(
        [seen("101", 1, "Ringing", 0), seen("101", 1, "Connected", 5),
         seen("800", 10, "Connected", 30, dn_kind="queue", **BY_101), gone("101", 1, 30),
         seen("102", 12, "Ringing", 31, **Q, **BY_101), seen("102", 12, "Connected", 35, **Q, **BY_101),
         gone("800", 10, 35), gone("102", 12, 90)],
        [ringing("101", "ext", 0), started("hangupincoming", "101", "NotDef", 1),
         ended("incoming", "101", "Ok", True, 1),
         ringing("102", "queue", 2), started("hangupincoming", "102", "Blind", 2),
         ended("incoming", "102", "Ok", False, 2)],
        id="11 transferred to queue 800: its agent rings as queue"),
    pytest.param(
        [seen("101", 1, "Ringing", 0), seen("101", 1, "Connected", 5),
         seen("102", 12, "Ringing", 30, **RG, **BY_101), gone("101", 1, 30),
         seen("103", 13, "Ringing", 30, **RG, **BY_101), gone("102", 12, 50), gone("103", 13, 50)],
        [ringing("101", "ext", 0), started("hangupincoming", "101", "NotDef", 1),
         ended("incoming", "101", "Ok", True, 1),
         ringing("102", "other", 2), ringing("103", "other", 2),
         ended("incoming", "700", "Missed", False, 2)],
        id="12 transferred to ring group 700 and not answered: rings as other, missed at the group"),
]


@pytest.mark.parametrize("events, expected", SEQUENCES)
def test_sequence_makes_the_legacy_webhooks(events, expected):
    webhooks, calls = run(events)

    assert without_titles(webhooks) == expected
    assert calls == {}


EDGES = [
    pytest.param(
        [seen("101", 1, "Connected", 0), gone("101", 1, 10)],
        [ringing("101", "ext", 0), started("hangupincoming", "101", "NotDef", 1),
         ended("incoming", "101", "Ok", False, 1)],
        id="a leg seen Connected without Ringing rang too briefly to be read and starts on link 1"),
    pytest.param(
        [seen("101", 1, "Connected", 0, is_resync=True), gone("101", 1, 10)],
        [started("hangupincoming", "101", "NotDef", 1), ended("incoming", "101", "Ok", False, 1)],
        id="a talking leg found by a resync starts without a late ringing"),
    pytest.param(
        [seen("800", 10, "Connected", 0, dn_kind="queue"), seen("101", 11, "Ringing", 1, **Q),
         seen("102", 12, "Connected", 2, **Q), gone("101", 11, 2), gone("800", 10, 2), gone("102", 12, 9)],
        [ringing("101", "queue", 0), ringing("102", "queue", 0), started("hangupincoming", "102"),
         ended("incoming", "102")],
        id="a queue agent first read Connected still rang with the others"),
    pytest.param(
        [seen("101", 1, "Ringing", 0), seen("101", 1, "Ringing", 1), seen("101", 1, "Connected", 2),
         seen("101", 1, "Connected", 3), gone("101", 1, 10), gone("101", 1, 11)],
        [ringing("101"), started("hangupincoming", "101"), ended("incoming", "101")],
        id="duplicate upserts and removes change nothing"),
    pytest.param(
        [gone("101", 1, 0)],
        [],
        id="a remove of an unknown leg is ignored"),
    pytest.param(
        [seen("800", 10, "Connected", 0, dn_kind="queue"),
         seen("101", 11, "Ringing", 1, **Q), gone("101", 11, 21),
         seen("102", 12, "Ringing", 21, **Q), gone("102", 12, 41),
         seen("101", 13, "Ringing", 41, **Q), seen("101", 13, "Connected", 45, **Q),
         gone("800", 10, 45), gone("101", 13, 99)],
        [ringing("101", "queue", 0), ringing("102", "queue", 0), ringing("101", "queue", 0),
         started("hangupincoming", "101", "NotDef", 1), ended("incoming", "101", "Ok", False, 1)],
        id="a hunt queue rotating agents keeps one id and says nothing when an agent stops ringing"),
    pytest.param(
        [seen("101", 11, "Ringing", 0, **Q), seen("102", 12, "Ringing", 0, **Q),
         gone("101", 11, 20), gone("102", 12, 20)],
        [ringing("101", "queue", 0), ringing("102", "queue", 0), ended("incoming", "800", "Missed", False, 0)],
        id="a missed queue call without the queue's own leg is still reported for the queue"),
    pytest.param(
        [seen("101", 11, "Ringing", 0, **RG), gone("101", 11, 20)],
        [ringing("101", "other", 0), ended("incoming", "700", "Missed", False, 0)],
        id="a missed ring group call is reported for the ring group"),
    pytest.param(
        [seen("600", 5, "Connected", 0, dn_kind="ivr"), seen("101", 6, "Ringing", 3, **IVR), gone("600", 5, 3),
         seen("101", 6, "Connected", 6, **IVR), gone("101", 6, 20)],
        [ringing("101", "other", 0), started("hangupincoming", "101"), ended("incoming", "101")],
        id="a call forwarded by an IVR rings as other"),
    pytest.param(
        [seen("101", 1, "Ringing", 0), gone("101", 1, 20)],
        [ringing("101"), ended("incoming", "101", "Missed", False, 0)],
        id="an unanswered direct call is missed by the extension"),
    pytest.param(
        [internal("101", 1, "Dialing", "102", 0), internal("102", 2, "Ringing", "101", 0),
         internal("101", 1, "Connected", "102", 3), internal("102", 2, "Connected", "101", 3),
         gone("101", 1, 10), gone("102", 2, 10)],
        [],
        id="an internal call is silent by default"),
    pytest.param(
        [seen("101", 1, "Ringing", 0, party_did=""), seen("101", 1, "Connected", 2, party_did=""),
         gone("101", 1, 5)],
        [ringing("101", did=""), started("hangupincoming", "101", did=""), ended("incoming", "101")],
        id="a call without DID has an empty did"),
    pytest.param(
        [outbound("101", 1, "Ringing", 0, party_dn="", party_caller_id=CALLER, party_dn_type=""),
         outbound("101", 1, "Dialing", 2), outbound("101", 1, "Connected", 4), gone("101", 1, 9)],
        [started("hangupoutgoing", "101"), ended("outgoing", "101")],
        id="a makecall ringing its own device first makes no ringing"),
    pytest.param(
        [seen("101", 1, "Ringing", 0), seen("101", 1, "Connected", 5),
         seen("103", 2, "Ringing", 30, **BY_101), gone("101", 1, 30), seen("103", 2, "Connected", 35, **BY_101),
         seen("104", 3, "Ringing", 50, referred_by_dn="103"), gone("103", 2, 50),
         seen("104", 3, "Connected", 52, referred_by_dn="103"), gone("104", 3, 60)],
        [ringing("101"), started("hangupincoming", "101"), ended("incoming", "101", "Ok", True, 1),
         ringing("103", link=2), started("hangupincoming", "103", "Blind", 2),
         ended("incoming", "103", "Ok", True, 2),
         ringing("104", link=3), started("hangupincoming", "104", "Blind", 3),
         ended("incoming", "104", "Ok", False, 3)],
        id="each further transfer adds one to the link"),
]


@pytest.mark.parametrize("events, expected", EDGES)
def test_edge_case_makes_the_expected_webhooks(events, expected):
    webhooks, _calls = run(events)

    assert without_titles(webhooks) == expected


RULES = [
    pytest.param(
        Rules(timezone=ZONE, answer_event="pickup"),
        [seen("101", 1, "Ringing", 0), seen("101", 1, "Connected", 5), gone("101", 1, 9)],
        [ringing("101"), started("pickupincoming", "101"), ended("incoming", "101")],
        id="answer_event pickup names the start pickupincoming"),
    pytest.param(
        Rules(timezone=ZONE, answer_event="pickup"),
        [outbound("101", 1, "Dialing", 0), outbound("101", 1, "Connected", 5), gone("101", 1, 9)],
        [started("pickupoutgoing", "101"), ended("outgoing", "101")],
        id="answer_event pickup names an outgoing start pickupoutgoing"),
    pytest.param(
        Rules(timezone=ZONE, ringing_cancelled=True),
        [seen("101", 11, "Ringing", 0, **Q), seen("102", 12, "Ringing", 0, **Q),
         seen("102", 12, "Connected", 4, **Q), gone("101", 11, 4), gone("102", 12, 30)],
        [ringing("101", "queue"), ringing("102", "queue"), started("hangupincoming", "102"),
         ringing("101", "queue", event="ringingcancelled"), ended("incoming", "102")],
        id="ringing_cancelled reports an agent that stops ringing while the call goes on"),
    pytest.param(
        Rules(timezone=ZONE, ringing_cancelled=True),
        [seen("101", 1, "Ringing", 0), gone("101", 1, 20)],
        [ringing("101"), ended("incoming", "101", "Missed", False, 0)],
        id="ringing_cancelled says nothing extra when the call ends with the ring"),
    pytest.param(
        Rules(timezone=ZONE, internal_calls=True),
        [internal("101", 1, "Dialing", "102", 0), internal("102", 2, "Ringing", "101", 0),
         internal("101", 1, "Connected", "102", 3), internal("102", 2, "Connected", "101", 3),
         gone("101", 1, 10), gone("102", 2, 10)],
        [ringing("102", callerid="101", did=""),
         started("hangupoutgoing", "101", callerid="102"), started("hangupincoming", "102", callerid="101", did=""),
         ended("outgoing", "101", callerid="102"), ended("incoming", "102", callerid="101")],
        id="internal_calls reports both sides of an internal call"),
]


@pytest.mark.parametrize("rules, events, expected", RULES)
def test_rule_changes_the_webhooks(rules, events, expected):
    webhooks, _calls = run(events, rules)

    assert without_titles(webhooks) == expected


GRACE = Rules(timezone=ZONE, end_grace_s=3)
HUNT = {"on_behalf_of_dn": "801", "on_behalf_of_type": "Wqueue"}   # a queue the API client does not monitor

GRACE_PERIODS = [
    pytest.param(
        GRACE,
        [seen("103", 1, "Ringing", 0, **HUNT), gone("103", 1, 20), seen("104", 2, "Ringing", 20, **HUNT),
         seen("104", 2, "Connected", 25, **HUNT), gone("104", 2, 60), grace_over(63)],
        [ringing("103", "queue"), ringing("104", "queue"), started("hangupincoming", "104"),
         ended("incoming", "104")],
        id="a hunt queue's next agent within the grace period continues the one call"),
    pytest.param(
        Rules(timezone=ZONE),
        [seen("103", 1, "Ringing", 0, **HUNT), gone("103", 1, 20), seen("104", 2, "Ringing", 20, **HUNT),
         seen("104", 2, "Connected", 25, **HUNT), gone("104", 2, 60)],
        [ringing("103", "queue"), ended("incoming", "801", "Missed", False, 0),
         ringing("104", "queue", arrived="261124100020"), started("hangupincoming", "104", arrived="261124100020"),
         ended("incoming", "104", arrived="261124100020")],
        id="without a grace period the same call splits into a missed call and a second call"),
    pytest.param(
        GRACE,
        [seen("101", 1, "Ringing", 0), gone("101", 1, 20)],
        [ringing("101")],
        id="a missed call's end waits for the grace period"),
    pytest.param(
        GRACE,
        [seen("101", 1, "Ringing", 0), gone("101", 1, 20), grace_over(23)],
        [ringing("101"), ended("incoming", "101", "Missed", False, 0)],
        id="a missed call's end comes when the grace period is over"),
    pytest.param(
        GRACE,
        [seen("101", 1, "Ringing", 0), seen("101", 1, "Connected", 5), gone("101", 1, 60)],
        [ringing("101"), started("hangupincoming", "101"), ended("incoming", "101")],
        id="an answered leg's end goes out when the leg goes, without waiting"),
]


@pytest.mark.parametrize("rules, events, expected", GRACE_PERIODS)
def test_grace_period_joins_a_split_call_and_delays_only_what_it_must(rules, events, expected):
    webhooks, _calls = run(events, rules)

    assert without_titles(webhooks) == expected


def test_grace_period_keeps_the_call_until_it_is_over():
    call, _ = advance(None, seen("101", 1, "Ringing", 0), GRACE)
    call, _ = advance(call, seen("101", 1, "Connected", 5), GRACE)

    call, _ = advance(call, LegGone("101", 1, at(60)), GRACE)

    assert call.is_ending and not call.is_ended and call.last_gone.at == at(60)
    call, webhooks = advance(call, grace_over(63), GRACE)
    assert webhooks == [] and call.is_ended and call.ended_at == at(60)


def test_new_call_takes_an_arrival_time_given_with_its_first_reading():
    event = seen("102", 12, "Connected", 100, is_resync=True)

    call, webhooks = advance(None, replace(event, arrived_at=at(40)), Rules(timezone=ZONE))

    assert call.arrived_at == at(40)
    assert [w.params()["id"] for w in webhooks] == ["261124100040_698-1"]


TITLES = [
    pytest.param(
        [seen("101", 1, "Ringing", 0), seen("101", 1, "Connected", 5), gone("101", 1, 65)],
        "Incoming call from +420774852529 on DID PragueDID, answered by 101, duration 00:01:00",
        id="an answered incoming call names DID, who answered and the talk time"),
    pytest.param(
        [seen("101", 11, "Ringing", 0, **Q), gone("101", 11, 75)],
        "Incoming call from +420774852529 on DID PragueDID, not answered in queue 800, duration 00:01:15",
        id="a call missed in a queue names the queue"),
    pytest.param(
        [outbound("101", 1, "Dialing", 0), outbound("101", 1, "Connected", 8), gone("101", 1, 3608)],
        "Outgoing call from 101 to +420774852529, answered, duration 01:00:00",
        id="an outgoing call names both ends"),
    pytest.param(
        [seen("101", 1, "Ringing", 0), seen("101", 1, "Connected", 5), gone("101", 1, 80, is_resync=True)],
        "Incoming call from +420774852529 on DID PragueDID, answered by 101, duration 00:01:15 "
        "(end detected after reconnecting to the PBX)",
        id="an end found by a resync says so"),
    pytest.param(
        [seen("101", 1, "Ringing", 0), seen("101", 1, "Connected", 5),
         seen("103", 2, "Ringing", 30, **BY_101), gone("101", 1, 30), gone("103", 2, 31)],
        "Incoming call from +420774852529 on DID PragueDID, answered by 101, transferred to 103, duration 00:00:25",
        id="a transferred leg names where it went"),
]


@pytest.mark.parametrize("events, title", TITLES)
def test_end_title_reads_as_a_phrase(events, title):
    webhooks, _calls = run(events)

    ends = [w for w in webhooks if "title" in w]
    assert ends[0]["title"] == title


def test_advance_keeps_leg_times_and_marks_the_end():
    call, _ = advance(None, seen("101", 1, "Ringing", 0), Rules(timezone=ZONE))
    call, _ = advance(call, seen("101", 1, "Connected", 5), Rules(timezone=ZONE))

    leg = call.leg("101", 1)
    assert (leg.seen_at, leg.answered_at, leg.status, leg.link) == (at(0), at(5), "talking", 1)
    assert (call.arrived_at, call.answered_at, call.direction, call.did) == (at(0), at(5), "inbound", "PragueDID")

    call, _ = advance(call, LegGone("101", 1, at(9)), Rules(timezone=ZONE))

    assert call.ended_at == at(9) and call.legs == ()


def test_advance_with_no_call_and_a_remove_returns_nothing():
    assert advance(None, gone("101", 1), Rules()) == (None, [])


def test_advance_rejects_what_is_not_a_machine_event():
    with pytest.raises(TypeError):
        advance(None, make_leg(), Rules())  # type: ignore[arg-type]


def facts_of(events: list) -> list[tuple]:
    """(kind, user, extension, queues, ringgroups, direction, did number, caller name) per webhook."""
    calls: dict = {}
    out = []
    for event in events:
        call_id = event.leg.v20_call_id if not isinstance(event, LegGone) else next(
            (c.v20_call_id for c in calls.values() if c.leg(event.dn, event.participant_id)), -1)
        call, webhooks = advance(calls.get(call_id), event, Rules(timezone=ZONE, internal_calls=True))
        calls[call_id] = call
        for w in webhooks:
            f = w.facts
            out.append((w.kind, w.params()["user"], f.extension, set(f.queues), set(f.ringgroups), f.direction,
                        f.did_number, f.caller_name))
    return out


@pytest.mark.parametrize("events, expected", [
    pytest.param(
        [seen("800", 10, "Connected", 0, dn_kind="queue", party_caller_name="Alice"),
         seen("101", 11, "Ringing", 1, **Q), seen("101", 11, "Connected", 5, **Q),
         gone("800", 10, 6), gone("101", 11, 60)],
        [("ringing", "101", "101", {"800"}, set(), "inbound", "+420233000111", "Alice"),
         ("start", "101", "101", {"800"}, set(), "inbound", "+420233000111", "Alice"),
         ("end", "101", "101", {"800"}, set(), "inbound", "+420233000111", "Alice")],
        id="a queue call's agent events know the queue, the DID number and the caller's name"),
    pytest.param(
        [seen("101", 11, "Ringing", 1, **RG), seen("102", 12, "Ringing", 1, **RG),
         gone("101", 11, 20), gone("102", 12, 20)],
        [("ringing", "101", "101", set(), {"700"}, "inbound", "+420233000111", ""),
         ("ringing", "102", "102", set(), {"700"}, "inbound", "+420233000111", ""),
         ("end", "700", "", set(), {"700"}, "inbound", "+420233000111", "")],
        id="a ring group call knows the ring group; its missed end belongs to no extension but the group's"),
    pytest.param(
        [seen("800", 10, "Connected", 0, dn_kind="queue"), seen("101", 11, "Ringing", 1, **Q),
         gone("101", 11, 20), gone("800", 10, 20)],
        [("ringing", "101", "101", {"800"}, set(), "inbound", "+420233000111", ""),
         ("end", "800", "", {"800"}, set(), "inbound", "+420233000111", "")],
        id="a call missed at a queue is about the queue, not an extension"),
    pytest.param(
        [outbound("101", 1, "Dialing", 0), outbound("101", 1, "Connected", 5), gone("101", 1, 30)],
        [("start", "101", "101", set(), set(), "outbound", "", ""),
         ("end", "101", "101", set(), set(), "outbound", "", "")],
        id="an outbound call has no DID"),
])
def test_webhooks_carry_the_facts_target_filters_read(events, expected):
    assert facts_of(events) == expected


def test_evolve_copies_a_snapshot_as_dataclasses_replace_does_and_refuses_unknown_fields():
    from gateway.live.model import evolve

    leg = make_leg("101", 7, "Ringing")

    copy = evolve(leg, status="talking", link=2)

    assert copy == replace(leg, status="talking", link=2) and copy is not leg
    assert leg.status == "ringing" and leg.link == 0
    assert hash(copy) == hash(replace(leg, status="talking", link=2))
    with pytest.raises(TypeError, match="no field colour"):
        evolve(leg, colour="red")
