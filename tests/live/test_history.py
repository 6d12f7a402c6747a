"""Reading v20's call history (gateway.live.history) and matching it to calls the gateway knows."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from gateway.clock import Clock
from gateway.live.history import (CallHistory, KnownCall, group_calls, is_match, match_calls, parse_duration,
                                  read_segment)
from gateway.pbx.auth import TokenSource
from gateway.pbx.errors import PbxRejected
from gateway.pbx.http import new_session
from gateway.pbx.xapi import XapiClient
from gateway.sim.scenarios import inbound, outbound
from tests.support.history import HISTORY_CALLER, T0, row

CALLER = HISTORY_CALLER


@pytest.mark.parametrize("text, seconds", [
    ("PT1M23.5S", 83.5), ("PT0S", 0.0), ("PT2H", 7200.0), ("P1DT1S", 86401.0), ("PT0.25S", 0.25),
    ("00:01:23", 83.0), ("1:02:03.5", 3723.5), ("1.00:00:01", 86401.0), ("", 0.0), (None, 0.0),
])
def test_durations_read_as_iso_8601_or_clock_time(text, seconds):
    assert parse_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize("text", ["PT", "soon", "1:2", "P1Y"])
def test_other_durations_are_refused(text):
    with pytest.raises(ValueError):
        parse_duration(text)


def test_a_row_reads_into_a_segment_with_parties_times_and_recordings():
    segment = read_segment(row(SrcRecId=0, DstRecId=812, Recordings=[{"Id": 812}, {"Id": 813}]))

    assert (segment.source.kind, segment.source.number, segment.destination.kind, segment.destination.dn) == \
        ("external", CALLER, "extension", "101")
    assert segment.answered_at == T0 + timedelta(seconds=5)
    assert segment.ended_at == T0 + timedelta(seconds=68.5)
    assert segment.recording_ids == (812, 813) and segment.src_recording_id is None
    assert segment.answering_extension == "101"


def test_rows_group_by_main_id_with_the_queue_row_first_and_fall_back_to_the_row_id():
    rows = [row("m1", dst=("102", 0, "102"), start="2026-11-24T09:00:00Z", DstRecId=7),
            row("m1", dst=("800", 4, "800"), start="2026-11-24T09:00:00Z", answered=True, talking="PT0S"),
            row("m1", dst=("101", 0, "101"), answered=False, talking="PT0S"),
            row("", CallHistoryId="lonely", start="2026-11-24T08:00:00Z", answered=False),
            {"StartTime": "not a time"}]

    first, second = group_calls(rows)

    assert first.main_id == "lonely" and not first.is_answered
    assert second.main.destination.dn == "800"
    assert [s.answering_extension for s in second.answered] == ["102"]
    assert second.dns == {"800", "101", "102"} and second.external_number == CALLER
    assert second.direction == "inbound" and second.recording_ids_of("102") == (7,)


def test_call_number_for_ids_is_stable_and_fits_the_legacy_format():
    guid = group_calls([row("5f0c2a4e-1b7d-4c1e-9d7a-0c1e2b3a4f5d")])[0]
    numeric = group_calls([row("123456")])[0]

    assert guid.number == group_calls([row("5f0c2a4e-1b7d-4c1e-9d7a-0c1e2b3a4f5d")])[0].number
    assert 100_000_000 <= guid.number < 1_000_000_000
    assert numeric.number == 123456


def known(key: str = "k", *, dns=("101",), numbers=(CALLER,), start: float = 0, end: float | None = 70) -> KnownCall:
    return KnownCall(key, frozenset(dns), frozenset(numbers), T0 + timedelta(seconds=start),
                     None if end is None else T0 + timedelta(seconds=end))


def test_a_known_call_matches_by_dn_number_and_time_never_by_call_id():
    [call] = group_calls([row()])

    assert is_match(call, known())
    assert is_match(call, known(numbers=("0774852529",), start=2))        # national form, clocks apart
    assert is_match(call, known(end=None))                                 # still open on our side
    assert not is_match(call, known(dns=("102",)))
    assert not is_match(call, known(numbers=("+420111222333",)))
    assert not is_match(call, known(start=600, end=700))
    assert not is_match(call, known(start=-700, end=-600))


def test_matching_is_one_to_one_by_closest_start():
    calls = group_calls([row("a"), row("b", start="2026-11-24T09:00:20Z")])

    pairs = match_calls(calls, [known("late", start=19), known("early", start=1)])

    assert {main: k.key for main, k in pairs.items()} == {"a": "early", "b": "late"}


@pytest.fixture
def xapi(sim) -> XapiClient:
    clock = Clock()
    session = new_session(verify_tls=False)
    tokens = TokenSource(session, sim.url, sim.client_id, sim.client_secret, timeout_s=5, clock=clock)
    return XapiClient(session, sim.url, tokens, timeout_s=5)


def test_history_of_the_simulator_reads_answered_queue_call_with_its_recordings(sim, xapi):
    started = datetime.now(timezone.utc)
    played = sim.play(inbound(CALLER).to_queue("800", rings=["101", "102"]).rings(5).answered_by("102")
                      .talk(20).caller_hangs_up())
    sim.play(outbound("103", CALLER).answered().talk(5).hangs_up(by="103"))

    queue_call, outgoing = CallHistory(xapi).calls(started - timedelta(minutes=1), datetime.now(timezone.utc))

    assert queue_call.main.destination.dn == "800" and queue_call.direction == "inbound"
    assert [s.answering_extension for s in queue_call.answered] == ["102"]
    assert queue_call.recording_ids == tuple(played.recording_ids)
    assert queue_call.recording_ids_of("102") == tuple(played.recording_ids)
    assert outgoing.direction == "outbound" and [s.answering_extension for s in outgoing.answered] == ["103"]


def test_call_log_pages_through_every_row(sim, xapi):
    started = datetime.now(timezone.utc)
    for _ in range(4):
        sim.play(inbound(CALLER).to_queue("800", rings=["101"]).rings(1).caller_abandons())

    rows = xapi.call_log(started - timedelta(minutes=1), datetime.now(timezone.utc) + timedelta(seconds=1),
                         page_size=3)

    assert len(rows) == 8 and len({r["CallHistoryId"] for r in rows}) == 8
    assert [r for r in sim.requests if "GetCallLogData" in r.path][-1].params["$skip"] == "6"


def test_call_log_without_system_owner_is_refused(sim, xapi):
    sim.api_client.role = "system_admins"

    with pytest.raises(PbxRejected) as refused:
        xapi.call_log(datetime.now(timezone.utc) - timedelta(hours=1), datetime.now(timezone.utc))

    assert refused.value.status == 403
