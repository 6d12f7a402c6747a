"""The fallback rule: which leg a recording found by search belongs to, or none when unsure."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from gateway.pbx.clock import ClockOffset
from gateway.recordings.matching import Candidate, WantedLeg, assign, fits, search_since

T0 = datetime(2026, 11, 24, 9, 0, 0, tzinfo=timezone.utc)
CALLER = "+420774852529"
EXACT = ClockOffset(0.0, 0.0, 10)
TOLERANCE_S = 3.0


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def make_leg(leg_id="261124100000_7-1", dn="101", numbers=(CALLER,), answered_s=0.0, ended_s=60.0):
    return WantedLeg(leg_id, dn, tuple(numbers), at(answered_s), at(ended_s))


def make_recording(rec_id=1, start_s=0.2, end_s=59.8, dns=("10000", "101"), numbers=(CALLER, "101")):
    return Candidate(f"rec:{rec_id}", at(start_s), tuple(dns), tuple(numbers), recording_id=rec_id,
                     end_time=at(end_s) if end_s is not None else None)


@pytest.mark.parametrize("recording, expected", [
    (make_recording(), True),
    (make_recording(dns=("10000", "102")), False),
    (make_recording(numbers=("774852529", "101")), True),
    (make_recording(numbers=("00420774852529",)), True),
    (make_recording(numbers=("+420777000111", "101")), False),
    (make_recording(numbers=("", "")), True),
    (make_recording(start_s=-3.5), True),
    (make_recording(start_s=-4.5), False),
    (make_recording(start_s=62, end_s=None), True),
    (make_recording(start_s=64, end_s=None), False),
    (make_recording(start_s=30, end_s=70), False),
], ids=["same extension and caller within the span", "other extension", "caller without country code",
        "caller with 00 prefix", "other caller", "recording without numbers",
        "starts a little before the answer", "starts well before the answer",
        "starts just after the hang-up", "starts well after the hang-up", "ends well after the hang-up"])
def test_fits_decides_by_extension_number_and_the_legs_own_span(recording, expected):
    assert fits(recording, make_leg(), EXACT, TOLERANCE_S) is expected


@pytest.mark.parametrize("offset_s", [-45.0, 0.0, 37.5], ids=["pbx behind", "clocks agree", "pbx ahead"])
def test_fits_reads_the_span_on_the_pbx_clock(offset_s):
    leg = make_leg()
    recording = make_recording(start_s=offset_s + 0.2, end_s=offset_s + 59.8)

    assert fits(recording, leg, ClockOffset(offset_s, 0.4, 5), TOLERANCE_S)
    assert fits(recording, leg, EXACT, TOLERANCE_S) is (offset_s == 0.0)


def test_fits_widens_by_the_offsets_uncertainty():
    early = make_recording(start_s=-5)

    assert not fits(early, make_leg(), ClockOffset(0.0, 0.5, 3), TOLERANCE_S)
    assert fits(early, make_leg(), ClockOffset(0.0, 1.5, 3), TOLERANCE_S)


def test_callback_a_few_seconds_later_keeps_each_call_its_own_recording():
    first = make_leg("261124100000_7-1", answered_s=0, ended_s=20)
    second = make_leg("261124100025_8-1", answered_s=25, ended_s=50)
    first_rec = make_recording(1, 0, 20)
    second_rec = make_recording(2, 25, 50)

    result = assign([second_rec, first_rec], [first, second], EXACT, TOLERANCE_S)

    assert result.by_leg == {first.leg_id: [first_rec], second.leg_id: [second_rec]}
    assert result.ambiguous == []


def test_two_short_calls_go_each_to_the_leg_whose_span_holds_its_start():
    first = make_leg("261124100000_7-1", answered_s=0, ended_s=1)
    second = make_leg("261124100003_8-1", answered_s=3, ended_s=4)
    first_rec = make_recording(1, 0, 1)
    second_rec = make_recording(2, 3, 4)

    result = assign([first_rec, second_rec], [first, second], EXACT, TOLERANCE_S)

    assert result.by_leg == {first.leg_id: [first_rec], second.leg_id: [second_rec]}


def test_recording_two_legs_hold_equally_is_left_out_and_named():
    first = make_leg("261124100000_7-1", answered_s=0, ended_s=1)
    second = make_leg("261124100001_8-1", answered_s=1.2, ended_s=2)
    between = make_recording(3, 1.1, 1.9)

    result = assign([between], [first, second], ClockOffset(0.0, 0.5, 3), TOLERANCE_S)

    assert result.by_leg == {first.leg_id: [], second.leg_id: []}
    [ambiguous] = result.ambiguous
    assert ambiguous.candidate == between and ambiguous.leg_ids == (first.leg_id, second.leg_id)


def test_chain_visiting_one_extension_twice_splits_by_span():
    legs = [make_leg("261124100000_7-1", "101", answered_s=0, ended_s=10),
            make_leg("261124100000_7-2", "102", answered_s=10, ended_s=20),
            make_leg("261124100000_7-3", "101", answered_s=20, ended_s=30)]
    early = make_recording(1, 0.1, 10)
    middle = make_recording(2, 10.1, 20, dns=("10000", "102"))
    late = make_recording(3, 20.1, 30)

    result = assign([late, early, middle], legs, EXACT, TOLERANCE_S)

    assert result.by_leg == {legs[0].leg_id: [early], legs[1].leg_id: [middle], legs[2].leg_id: [late]}


def test_a_legs_segments_come_in_start_order():
    leg = make_leg()
    second = make_recording(2, 31, 59)
    first = make_recording(1, 0.2, 29)

    assert assign([second, first], [leg], EXACT, TOLERANCE_S).by_leg == {leg.leg_id: [first, second]}


def test_search_since_reaches_back_by_tolerance_uncertainty_and_event_delay():
    legs = [make_leg(answered_s=10), make_leg("261124100000_7-2", answered_s=20)]

    assert search_since(legs, ClockOffset(30.0, 0.5, 4), TOLERANCE_S) == at(10 + 30 - 3 - 0.5 - 1)
