"""The PBX's clock offset, measured from the `Date` headers of its answers."""
from __future__ import annotations

from email.utils import format_datetime
from datetime import datetime, timedelta, timezone

import pytest
import requests

from gateway.clock import FakeClock
from gateway.pbx.clock import UNKNOWN, PbxClock

T0 = datetime(2026, 11, 24, 9, 0, 0, tzinfo=timezone.utc)


def date_header(moment: datetime) -> str:
    """An HTTP Date header (whole seconds, as a server writes it) of `moment`."""
    return format_datetime(moment.replace(microsecond=0), usegmt=True)


def answer(pbx_clock: PbxClock, clock: FakeClock, offset_s: float, rtt_s: float = 0.01) -> None:
    """One PBX answer: sent now, stamped by a PBX `offset_s` ahead at mid-trip, received rtt_s later."""
    stamped = clock.now() + timedelta(seconds=offset_s + rtt_s / 2)
    clock.advance(rtt_s)
    pbx_clock.note(date_header(stamped), received_at=clock.time(), elapsed_s=rtt_s)


@pytest.mark.parametrize("offset_s", [-45.3, 0.0, 0.62, 37.5], ids=["behind", "agrees", "ahead by 0.62 s", "ahead"])
def test_answers_at_many_phases_narrow_the_offset_below_a_tenth(offset_s):
    clock = FakeClock(T0)
    pbx_clock = PbxClock(clock=clock)

    for _ in range(40):
        answer(pbx_clock, clock, offset_s)
        clock.advance(0.137)                  # answers land at every phase of the second

    estimate = pbx_clock.offset()
    assert abs(estimate.offset_s - offset_s) <= estimate.uncertainty_s < 0.1
    assert estimate.samples == 40


def test_one_answer_knows_the_offset_to_about_half_a_second():
    clock = FakeClock(T0 + timedelta(seconds=0.3))
    pbx_clock = PbxClock(clock=clock)

    answer(pbx_clock, clock, 12.0)

    estimate = pbx_clock.offset()
    assert abs(estimate.offset_s - 12.0) <= estimate.uncertainty_s <= 0.51


def test_a_stepped_clock_is_followed_at_once():
    clock = FakeClock(T0)
    pbx_clock = PbxClock(clock=clock)
    for _ in range(10):
        answer(pbx_clock, clock, 5.0)
        clock.advance(0.29)

    answer(pbx_clock, clock, -20.0)

    assert abs(pbx_clock.offset().offset_s + 20.0) <= 0.51


def test_old_answers_stop_counting():
    clock = FakeClock(T0)
    pbx_clock = PbxClock(clock=clock, window_s=60)
    answer(pbx_clock, clock, 3.0)

    clock.advance(61)

    assert pbx_clock.offset() == UNKNOWN


@pytest.mark.parametrize("header", [None, "", "yesterday"], ids=["missing", "empty", "unreadable"])
def test_answers_without_a_usable_date_are_ignored(header):
    clock = FakeClock(T0)
    pbx_clock = PbxClock(clock=clock)

    pbx_clock.note(header, received_at=clock.time(), elapsed_s=0.01)

    assert pbx_clock.offset() == UNKNOWN


def test_watch_session_reads_every_answer_of_the_simulated_pbx(sim):
    sim.set_clock_offset(-30.0)
    session = requests.Session()
    pbx_clock = PbxClock(clock=FakeClock(datetime.now(timezone.utc)))
    pbx_clock.watch_session(session)

    session.get(f"{sim.url}/xapi/v1/Defs", timeout=5)

    estimate = pbx_clock.offset()
    assert estimate.samples == 1 and abs(estimate.offset_s + 30.0) < 1.5
