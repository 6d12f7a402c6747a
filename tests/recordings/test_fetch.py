"""Finding recordings: the matching rule, the waiting policy, 403 reporting and local files."""
from __future__ import annotations

import logging
import os
from datetime import datetime, timedelta, timezone

import pytest

from gateway.pbx.errors import PbxRejected, PbxUnreachable
from gateway.recordings.fetch import (Candidate, FetcherStatus, RecordingFetcher, Search, WantedLeg, assign, matches,
                                      parse_time, recordings_filter)

T0 = datetime(2026, 11, 24, 9, 0, 0, tzinfo=timezone.utc)


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def make_leg(leg_id="261124100000_7-1", dn="101", numbers=("+420774852529",), answered_s=0.0,
             ended_s=60.0) -> WantedLeg:
    return WantedLeg(leg_id, dn, tuple(numbers), at(answered_s - 60), at(ended_s + 60), at(answered_s))


def make_candidate(key="xapi:1", start_s=1.0, dns=("10000", "101"), numbers=("+420774852529", "101")):
    return Candidate(key, at(start_s), tuple(dns), tuple(numbers), recording_id=int(key.split(":")[1]))


def xapi_row(rec_id, start_s=1.0, from_dn="10000", to_dn="101", from_number="+420774852529",
             to_number="101", url=""):
    return {"Id": rec_id, "StartTime": at(start_s).strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
            "EndTime": at(start_s + 5).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "FromDn": from_dn, "FromCallerNumber": from_number, "ToDn": to_dn,
            "ToCallerNumber": to_number, "RecordingUrl": url}


@pytest.mark.parametrize("candidate, expected", [
    (make_candidate(), True),
    (make_candidate(dns=("10000", "102")), False),
    (make_candidate(numbers=("774852529", "101")), True),
    (make_candidate(numbers=("00420774852529",)), True),
    (make_candidate(numbers=("+420777000111", "101")), False),
    (make_candidate(numbers=("", "")), True),
    (make_candidate(start_s=-61), False),
    (make_candidate(start_s=121), False),
], ids=["same extension and caller", "other extension", "caller without country code",
        "caller with 00 prefix", "other caller", "recording without numbers",
        "started long before the answer", "started after the call ended"])
def test_matches_decides_by_extension_number_and_time(candidate, expected):
    assert matches(candidate, make_leg()) is expected


def test_matches_without_caller_number_uses_extension_and_time():
    assert matches(make_candidate(numbers=("+1555",)), make_leg(numbers=()))


def test_assign_gives_each_leg_its_extensions_files_by_start_time():
    legs = [make_leg("261124100000_7-1", "101", ended_s=10),
            make_leg("261124100000_7-2", "103", answered_s=10, ended_s=30)]
    first = make_candidate("xapi:1", 1, dns=("10000", "101"))
    second = make_candidate("xapi:2", 11, dns=("10000", "103"))
    third = make_candidate("xapi:3", 20, dns=("10000", "103"))

    found = assign([third, first, second], legs)

    assert found == {"261124100000_7-1": [first], "261124100000_7-2": [second, third]}


def test_assign_splits_a_chain_visiting_one_extension_twice_by_answer_time():
    legs = [make_leg("261124100000_7-1", "101", answered_s=0, ended_s=10),
            make_leg("261124100000_7-2", "102", answered_s=10, ended_s=20),
            make_leg("261124100000_7-3", "101", answered_s=20, ended_s=30)]
    early = make_candidate("xapi:1", 1)
    late = make_candidate("xapi:2", 21)

    found = assign([early, late], legs)

    assert found["261124100000_7-1"] == [early] and found["261124100000_7-3"] == [late]


def test_recordings_filter_names_start_time_and_both_directions():
    assert recordings_filter("101", at(-60)) == \
        "(StartTime ge 2026-11-24T08:59:00Z and (FromDn eq '101' or ToDn eq '101'))"


@pytest.mark.parametrize("raw, expected", [
    ("2026-11-24T09:00:01Z", at(1)),
    ("2026-11-24T09:00:01.1234567Z", at(1.123456)),
    ("2026-11-24T10:00:01+01:00", at(1)),
    ("", None), (None, None), ("yesterday", None),
])
def test_parse_time_reads_xapi_date_times(raw, expected):
    assert parse_time(raw) == expected


def test_search_ends_when_the_same_files_are_seen_twice():
    search = Search([make_leg()], started_at=100.0, wait_s=60, poll_s=1, settle_s=1.5)
    files = {"261124100000_7-1": [make_candidate()]}

    assert search.record({"261124100000_7-1": []}, 100.0) is False
    assert search.due_at == 101.0
    assert search.record(files, 101.0) is False
    assert search.due_at == 102.5
    assert search.record(files, 102.5) is True
    assert search.found == files


def test_search_backs_off_and_gives_up_at_wait_s():
    search = Search([make_leg()], started_at=0.0, wait_s=10, poll_s=1, max_poll_s=4)
    nothing = {"261124100000_7-1": []}

    dues = []
    for _ in range(4):
        assert search.record(nothing, search.due_at) is False
        dues.append(search.due_at)

    assert dues == [1.0, 3.0, 7.0, 10.0]
    assert search.record(nothing, 10.0) is True and search.found == {}


def test_find_returns_matching_xapi_recordings(standin_xapi):
    xapi = standin_xapi([xapi_row(5, 2), xapi_row(6, 1), xapi_row(7, 3, to_dn="102")])

    found = RecordingFetcher(xapi).find([make_leg()])

    assert [c.recording_id for c in found["261124100000_7-1"]] == [6, 5]
    assert xapi.queries == ["(StartTime ge 2026-11-24T08:59:00Z and (FromDn eq '101' or ToDn eq '101'))"]


def test_find_refused_with_403_says_system_owner_in_log_and_status(caplog, standin_xapi):
    fetcher = RecordingFetcher(standin_xapi(error=PbxRejected(403, "Forbidden")))
    caplog.set_level(logging.ERROR, logger="gateway.recordings.fetch")

    found = fetcher.find([make_leg()])

    assert found == {"261124100000_7-1": []}
    assert fetcher.status().is_forbidden is True
    assert "System Owner" in fetcher.status().last_error
    assert any("System Owner" in r.getMessage() for r in caplog.records)


def test_find_clears_the_error_once_xapi_answers_again(standin_xapi):
    xapi = standin_xapi(error=PbxUnreachable("timed out"))
    fetcher = RecordingFetcher(xapi)
    fetcher.find([make_leg()])

    xapi.error = None
    fetcher.find([make_leg()])

    assert fetcher.status() == FetcherStatus(last_error=None, is_forbidden=False)


def test_fetch_downloads_the_wav_into_the_work_folder(tmp_path, wav_bytes, standin_xapi):
    data = wav_bytes(1.0)
    fetcher = RecordingFetcher(standin_xapi([xapi_row(5)], wavs={5: data}))
    candidate = fetcher.find([make_leg()])["261124100000_7-1"][0]

    path = fetcher.fetch(candidate, tmp_path)

    assert path.parent == tmp_path and path.read_bytes() == data


def test_find_reads_recording_url_from_local_dir(tmp_path, make_wav, standin_xapi):
    local = tmp_path / "Recordings"
    wav = make_wav("[Alice]_101-+420774852529_20261124090001(7).wav", 1.0, folder=local / "101")
    xapi = standin_xapi([xapi_row(5, url=f"101/{wav.name}"), xapi_row(6, 2, url="../../etc/passwd")])

    files = RecordingFetcher(xapi, local_dir=local).find([make_leg()])["261124100000_7-1"]

    assert [(c.recording_id, c.path) for c in files] == [(5, wav.resolve()), (6, None)]


def test_find_falls_back_to_local_files_when_xapi_refuses(tmp_path, make_wav, standin_xapi):
    local = tmp_path / "Recordings"
    ours = make_wav("[Alice]_101-+420774852529_20261124090001(7).wav", 1.0, folder=local / "101")
    other_caller = make_wav("[Alice]_101-+420777000111_20261124090001(8).wav", 1.0, folder=local / "101")
    too_old = make_wav("[Alice]_101-+420774852529_20261123090001(6).wav", 1.0, folder=local / "101")
    for path, seconds in ((ours, 5), (other_caller, 5), (too_old, -86400)):
        os.utime(path, (at(seconds).timestamp(),) * 2)
    fetcher = RecordingFetcher(standin_xapi(error=PbxRejected(403, "Forbidden")), local_dir=local)

    files = fetcher.find([make_leg()])["261124100000_7-1"]

    assert [c.path for c in files] == [ours]
    assert fetcher.fetch(files[0], tmp_path / "work") == ours
