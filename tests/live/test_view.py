"""LiveView: answers from the model when live, from GET /callcontrol otherwise; find_leg narrowing."""
from __future__ import annotations

import pytest

from gateway.clock import FakeClock
from gateway.live.errors import NoSuchLeg
from gateway.live.machine import Rules, advance
from gateway.live.model import CallTable
from gateway.live.view import LiveView
from gateway.live.watcher import WatcherStatus
from tests.support.live import T0, ZONE, participant, seen


class StandInWatcher:
    """Reports the given connection state."""

    def __init__(self, *, is_live: bool) -> None:
        self.is_live = is_live
        self.clock = FakeClock(T0)

    def status(self) -> WatcherStatus:
        return WatcherStatus(connected=self.is_live, synced=self.is_live, last_event_age_s=None, calls=0,
                             events_total=0)


class StandInCallControl:
    """GET /callcontrol over fixed DNInfo entries; counts the reads."""

    def __init__(self, states: list[dict]) -> None:
        self.states = states
        self.reads = 0

    def all_states(self) -> list[dict]:
        self.reads += 1
        return self.states


def table_with(*events) -> CallTable:
    table = CallTable()
    calls = {}
    for event in events:
        call, _ = advance(calls.get(event.leg.v20_call_id), event, Rules(timezone=ZONE))
        calls[call.v20_call_id] = call
        table.put(call)
    return table


LIVE_TABLE = [
    seen("101", 1, "Connected", 0, device_id="sip:101@10.0.0.5:5060;rinstance=aa", party_caller_id="+420111222333"),
    seen("101", 2, "Ringing", 5, call=700, device_id="sip:101@10.0.0.6:5060", party_caller_id="+420444555666"),
    seen("102", 3, "Ringing", 5, call=700, device_id="sip:102@10.0.0.7:5060", party_caller_id="+420444555666"),
]


@pytest.fixture
def live_view():
    """A LiveView whose watcher is live, over a table with 101 talking and 101+102 ringing."""
    return LiveView(table_with(*LIVE_TABLE), StandInWatcher(is_live=True), StandInCallControl([]))


@pytest.mark.parametrize("kwargs, expected", [
    pytest.param({}, 1, id="a talking leg comes before a ringing one"),
    pytest.param({"statuses": ("ringing",)}, 2, id="statuses narrow to ringing legs"),
    pytest.param({"contact": "10.0.0.6"}, 2, id="contact contained in the device id"),
    pytest.param({"contact": "sip:101@10.0.0.5:5060;rinstance=aa"}, 1, id="contact equal to the device id"),
    pytest.param({"external": "444555666"}, 2, id="external matching the end of the party number"),
    pytest.param({"external": "+420111222333"}, 1, id="external equal to the party number"),
])
def test_find_leg_narrows_by_contact_external_and_status(live_view, kwargs, expected):
    assert live_view.find_leg("101", **kwargs).participant_id == expected


@pytest.mark.parametrize("dn, kwargs, message", [
    pytest.param("103", {}, "extension 103 has no call in progress", id="an extension with no call"),
    pytest.param("101", {"contact": "10.9.9.9"}, "no call on a device matching '10.9.9.9'", id="no such device"),
    pytest.param("101", {"external": "999"}, "no call with 999", id="no such far end"),
    pytest.param("102", {"statuses": ("talking",)}, "extension 102 has no call in progress", id="no leg in status"),
])
def test_find_leg_without_a_match_says_why(live_view, dn, kwargs, message):
    with pytest.raises(NoSuchLeg, match=message):
        live_view.find_leg(dn, **kwargs)


def test_live_view_answers_from_the_table_when_live(live_view):
    assert live_view.is_live
    assert [call.v20_call_id for call in live_view.calls()] == [698, 700]
    assert live_view.busy_dns() == {"101", "102"}
    assert live_view.is_busy("102") and not live_view.is_busy("103")
    assert [leg.participant_id for leg in live_view.legs_of("101")] == [1, 2]


def test_view_reads_the_pbx_when_not_live():
    callcontrol = StandInCallControl([
        {"dn": "800", "type": "Wqueue", "participants": [participant("800", 10, "Connected")]},
        {"dn": "101", "type": "Wextension", "participants": [
            participant("101", 11, "Connected", on_behalf_of_dn="800", on_behalf_of_type="Wqueue")]},
        {"dn": "102", "type": "Wextension", "participants": []},
    ])
    view = LiveView(CallTable(), StandInWatcher(is_live=False), callcontrol)

    [call] = view.calls()

    assert not view.is_live
    assert (call.v20_call_id, call.direction, call.link, call.did) == (698, "inbound", 1, "+420233000111")
    assert [(leg.dn, leg.dn_kind, leg.status) for leg in call.legs] == [
        ("800", "queue", "talking"), ("101", "extension", "talking")]
    assert view.find_leg("101").via_dn == "800"
    assert view.busy_dns() == {"800", "101"}
    assert not view.is_busy("102")
    assert callcontrol.reads == 4
