"""Reading recordings from the PBX: the XAPI look-ups, the waiting policy, 403 reporting, local files."""
from __future__ import annotations

import logging
import os
from datetime import datetime, timedelta, timezone

import pytest

from gateway.pbx.errors import PbxRejected, PbxUnreachable
from gateway.recordings.fetch import FetcherStatus, RecordingFetcher, Search, parse_time, recordings_filter
from gateway.recordings.matching import Candidate, WantedLeg

T0 = datetime(2026, 11, 24, 9, 0, 0, tzinfo=timezone.utc)


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def make_leg(leg_id="261124100000_7-1", dn="101", numbers=("+420774852529",), answered_s=0.0,
             ended_s=60.0) -> WantedLeg:
    return WantedLeg(leg_id, dn, tuple(numbers), at(answered_s), at(ended_s))


def make_candidate(key="rec:1", start_s=1.0, dns=("10000", "101"), numbers=("+420774852529", "101")):
    return Candidate(key, at(start_s), tuple(dns), tuple(numbers), recording_id=int(key.split(":")[1]))


def xapi_row(rec_id, start_s=1.0, from_dn="10000", to_dn="101", from_number="+420774852529",
             to_number="101", url=""):
    return {"Id": rec_id, "StartTime": at(start_s).strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
            "EndTime": at(start_s + 5).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "FromDn": from_dn, "FromCallerNumber": from_number, "ToDn": to_dn,
            "ToCallerNumber": to_number, "RecordingUrl": url}


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


def test_look_lists_each_extensions_recordings_since_a_time(standin_xapi):
    xapi = standin_xapi([xapi_row(5, 2), xapi_row(6, 1)])

    found = RecordingFetcher(xapi).look(["101"], at(-60))

    assert [c.recording_id for c in found.candidates] == [5, 6] and found.is_complete
    assert found.candidates[0].end_time == at(7) and found.candidates[0].keys == ("rec:5",)
    assert xapi.queries == ["(StartTime ge 2026-11-24T08:59:00Z and (FromDn eq '101' or ToDn eq '101'))"]


def test_by_ids_reads_only_the_given_recordings_in_start_order(standin_xapi):
    xapi = standin_xapi([xapi_row(5, 2), xapi_row(6, 1), xapi_row(7, 3)])

    found = RecordingFetcher(xapi).by_ids([5, 6])

    assert [c.recording_id for c in found] == [6, 5]
    assert xapi.queries == ["(Id eq 5 or Id eq 6)"]


def test_look_refused_with_403_says_system_owner_in_log_and_status(caplog, standin_xapi):
    fetcher = RecordingFetcher(standin_xapi(error=PbxRejected(403, "Forbidden")))
    caplog.set_level(logging.ERROR, logger="gateway.recordings.fetch")

    found = fetcher.look(["101"], at(0))

    assert found.candidates == [] and not found.is_complete
    assert fetcher.status().is_forbidden is True
    assert "System Owner" in fetcher.status().last_error
    assert any("System Owner" in r.getMessage() for r in caplog.records)


def test_look_clears_the_error_once_xapi_answers_again(standin_xapi):
    xapi = standin_xapi(error=PbxUnreachable("timed out"))
    fetcher = RecordingFetcher(xapi)
    fetcher.look(["101"], at(0))

    xapi.error = None
    fetcher.look(["101"], at(0))

    assert fetcher.status() == FetcherStatus(last_error=None, is_forbidden=False)


def test_fetch_downloads_the_wav_into_the_work_folder(tmp_path, wav_bytes, standin_xapi):
    data = wav_bytes(1.0)
    fetcher = RecordingFetcher(standin_xapi([xapi_row(5)], wavs={5: data}))
    [candidate] = fetcher.look(["101"], at(0)).candidates

    path = fetcher.fetch(candidate, tmp_path)

    assert path.parent == tmp_path and path.read_bytes() == data


def test_look_reads_recording_url_from_local_dir(tmp_path, make_wav, standin_xapi):
    local = tmp_path / "Recordings"
    wav = make_wav("[Alice]_101-+420774852529_20261124090001(7).wav", 1.0, folder=local / "101")
    xapi = standin_xapi([xapi_row(5, url=f"101/{wav.name}"), xapi_row(6, 2, url="../../etc/passwd")])

    found = RecordingFetcher(xapi, local_dir=local).look(["101"], at(0))

    assert [(c.recording_id, c.path) for c in found.candidates] == [(5, wav.resolve()), (6, None)]
    assert found.candidates[0].keys == ("rec:5", f"file:{wav.resolve()}")


def test_look_offers_local_files_when_xapi_refuses(tmp_path, make_wav, standin_xapi):
    local = tmp_path / "Recordings"
    ours = make_wav("[Alice]_101-+420774852529_20261124090001(7).wav", 4.0, folder=local / "101")
    os.utime(ours, (at(5).timestamp(),) * 2)
    fetcher = RecordingFetcher(standin_xapi(error=PbxRejected(403, "Forbidden")), local_dir=local)

    found = fetcher.look(["101"], at(0), [make_leg()])

    [candidate] = found.candidates
    assert candidate.path == ours and not found.is_complete
    assert (candidate.start_time, candidate.end_time) == (at(1), at(5))   # its length before its mtime
    assert "101" in candidate.dns and "+420774852529" in candidate.numbers
    assert fetcher.fetch(candidate, tmp_path / "work") == ours
