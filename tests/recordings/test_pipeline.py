"""The pipeline from a finished call to MP3 files and FILES webhooks in the outbox."""
from __future__ import annotations

import logging
import threading
from datetime import datetime, timedelta, timezone
from urllib.parse import urlsplit

import pytest
from flask import Flask

from gateway.clock import Clock, FakeClock
from gateway.live.webhooks import CallEnded
from gateway.live.model import Call
from gateway.pbx.errors import PbxRejected
from gateway.recordings.history_link import HistoryRecordings, HistoryUnavailable
from gateway.recordings.pipeline import RecordingPipeline
from gateway.recordings.serve import create_recordings_blueprint
from gateway.webhooks.outbox import Outbox
from tests.support.wait import wait_until

CALL_KEY = "261124100000_7"
LEG1, LEG2 = f"{CALL_KEY}-1", f"{CALL_KEY}-2"
CALLER = "+420774852529"


def ended(leg_id: str, user: str, *, answered_at: datetime, ended_at: datetime,
          is_transferred: bool = False, call_key: str = CALL_KEY) -> CallEnded:
    """The CallEnded event of one answered leg, as the watcher produces it."""
    return CallEnded(call_key=call_key, id=leg_id, event="incoming", callerid=CALLER, user=user,
                     finishtype="Ok", is_transferred=is_transferred,
                     title=f"Incoming call from {CALLER}, answered by {user}", v20_call_id=7, dn=user,
                     participant_id=1, answered_at=answered_at, ended_at=ended_at)


def make_call(arrived_at: datetime) -> Call:
    return Call(v20_call_id=7, arrived_at=arrived_at, answered_at=arrived_at, direction="inbound",
                did="", link=1, legs=())


def row(rec_id: int, start: datetime, seconds: float, dn: str = "101") -> dict:
    """A /Recordings entry of extension `dn` talking to the caller."""
    return {"Id": rec_id, "StartTime": start.strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
            "EndTime": (start + timedelta(seconds=seconds)).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "FromDn": "10000", "FromCallerNumber": CALLER, "ToDn": dn, "ToCallerNumber": dn,
            "RecordingUrl": ""}


@pytest.fixture
def outbox(tmp_path):
    """A real SQLite outbox."""
    return Outbox(tmp_path / "state" / "outbox.sqlite3", clock=Clock())


@pytest.fixture
def run_pipeline(recordings_config, outbox):
    """Build and start a RecordingPipeline with fast polling; stopped after the test."""
    started: list[RecordingPipeline] = []

    def make(xapi, *, clock=None, history=None, **sections) -> RecordingPipeline:
        pipeline = RecordingPipeline(recordings_config(**sections), xapi, outbox, clock=clock or Clock(),
                                     history=history, poll_s=0.05, settle_s=0.1, retry_delay_s=0)
        pipeline.start()
        started.append(pipeline)
        return pipeline

    yield make
    for pipeline in started:
        pipeline.stop(timeout_s=5)


def posted(outbox: Outbox, count: int) -> list:
    return wait_until(lambda: (events := outbox.events()) and len(events) >= count and events)


def test_one_leg_gives_one_mp3_and_one_files_webhook(run_pipeline, standin_xapi, outbox, wav_bytes,
                                                      mp3_dir, probe):
    now = datetime.now(timezone.utc)
    xapi = standin_xapi([row(11, now - timedelta(seconds=5), 2.0)], wavs={11: wav_bytes(2.0)})
    pipeline = run_pipeline(xapi)

    pipeline.call_ended(make_call(now - timedelta(seconds=8)),
                        [ended(LEG1, "101", answered_at=now - timedelta(seconds=6), ended_at=now)])
    [event] = posted(outbox, 1)

    assert event.call_key == CALL_KEY and event.method == "POST"
    assert list(event.params) == ["FILES", "id"] and event.params["id"] == LEG1
    [link] = event.params["FILES"]
    assert urlsplit(link).path == f"/webapi/recording/{LEG1}-1.mp3"
    assert link.startswith("https://gw.example.com:5001/webapi/recording/")
    assert abs(probe(mp3_dir / f"{LEG1}-1.mp3")["duration_s"] - 2.0) < 0.1
    assert sorted(p.name for p in mp3_dir.iterdir()) == [f"{LEG1}-1.mp3"]
    assert pipeline.status().posted == 1 and pipeline.status().converted == 1


def test_posted_link_downloads_the_converted_file(run_pipeline, standin_xapi, outbox, wav_bytes,
                                                   mp3_dir):
    now = datetime.now(timezone.utc)
    pipeline = run_pipeline(standin_xapi([row(11, now - timedelta(seconds=3), 1.0)],
                                         wavs={11: wav_bytes(1.0)}))
    pipeline.call_ended(make_call(now - timedelta(seconds=5)),
                        [ended(LEG1, "101", answered_at=now - timedelta(seconds=4), ended_at=now)])
    [link] = posted(outbox, 1)[0].params["FILES"]
    app = Flask("test")
    app.register_blueprint(create_recordings_blueprint(mp3_dir, pipeline.links, clock=Clock()))

    parts = urlsplit(link)
    response = app.test_client().get(f"{parts.path}?{parts.query}")

    assert response.status_code == 200
    assert response.data == (mp3_dir / f"{LEG1}-1.mp3").read_bytes()


def test_transfer_chain_gives_each_leg_its_own_webhook(run_pipeline, standin_xapi, outbox, wav_bytes,
                                                        mp3_dir):
    now = datetime.now(timezone.utc)
    xapi = standin_xapi([row(11, now - timedelta(seconds=9), 3.0, dn="101"),
                         row(12, now - timedelta(seconds=5), 4.0, dn="103")],
                        wavs={11: wav_bytes(3.0), 12: wav_bytes(4.0)})
    pipeline = run_pipeline(xapi)

    pipeline.call_ended(make_call(now - timedelta(seconds=12)), [
        ended(LEG1, "101", answered_at=now - timedelta(seconds=10), ended_at=now - timedelta(seconds=5),
              is_transferred=True),
        ended(LEG2, "103", answered_at=now - timedelta(seconds=5), ended_at=now),
    ])
    events = posted(outbox, 2)

    bodies = sorted(({"id": e.params["id"], "FILES": [urlsplit(f).path for f in e.params["FILES"]]}
                     for e in events), key=lambda body: body["id"])
    assert bodies == [
        {"id": LEG1, "FILES": [f"/webapi/recording/{LEG1}-1.mp3"]},
        {"id": LEG2, "FILES": [f"/webapi/recording/{LEG2}-1.mp3"]},
    ]
    assert sorted(p.name for p in mp3_dir.iterdir()) == [f"{LEG1}-1.mp3", f"{LEG2}-1.mp3"]


def test_leg_with_two_files_numbers_them_by_start_time(run_pipeline, standin_xapi, outbox, wav_bytes,
                                                        mp3_dir, probe):
    now = datetime.now(timezone.utc)
    xapi = standin_xapi([row(22, now - timedelta(seconds=3), 1.0), row(21, now - timedelta(seconds=8), 3.0)],
                        wavs={21: wav_bytes(3.0), 22: wav_bytes(1.0)})
    pipeline = run_pipeline(xapi)

    pipeline.call_ended(make_call(now - timedelta(seconds=10)),
                        [ended(LEG1, "101", answered_at=now - timedelta(seconds=9), ended_at=now)])
    [event] = posted(outbox, 1)

    assert [urlsplit(f).path for f in event.params["FILES"]] == [
        f"/webapi/recording/{LEG1}-1.mp3", f"/webapi/recording/{LEG1}-2.mp3"]
    assert abs(probe(mp3_dir / f"{LEG1}-1.mp3")["duration_s"] - 3.0) < 0.1
    assert abs(probe(mp3_dir / f"{LEG1}-2.mp3")["duration_s"] - 1.0) < 0.1


def test_full_info_adds_the_call_end_fields(run_pipeline, standin_xapi, outbox, wav_bytes):
    now = datetime.now(timezone.utc)
    pipeline = run_pipeline(standin_xapi([row(11, now - timedelta(seconds=3), 1.0)],
                                         wavs={11: wav_bytes(1.0)}),
                            webhooks={"recording_full_info": "true"})
    end = ended(LEG1, "101", answered_at=now - timedelta(seconds=4), ended_at=now)

    pipeline.call_ended(make_call(now - timedelta(seconds=5)), [end])
    [event] = posted(outbox, 1)

    assert list(event.params)[:2] == ["FILES", "id"]
    assert {k: v for k, v in event.params.items() if k != "FILES"} == end.params()


def test_plain_links_when_signing_is_off(run_pipeline, standin_xapi, outbox, wav_bytes):
    now = datetime.now(timezone.utc)
    pipeline = run_pipeline(standin_xapi([row(11, now - timedelta(seconds=3), 1.0)],
                                         wavs={11: wav_bytes(1.0)}),
                            recordings={"signed_links": "false"})

    pipeline.call_ended(make_call(now - timedelta(seconds=5)),
                        [ended(LEG1, "101", answered_at=now - timedelta(seconds=4), ended_at=now)])

    assert posted(outbox, 1)[0].params["FILES"] == [
        f"https://gw.example.com:5001/webapi/recording/{LEG1}-1.mp3"]


def test_recording_that_never_appears_is_reported_after_wait_s(run_pipeline, standin_xapi, outbox):
    clock = FakeClock()
    pipeline = run_pipeline(standin_xapi([]), clock=clock)
    now = clock.now()
    pipeline.call_ended(make_call(now), [ended(LEG1, "101", answered_at=now, ended_at=now)])
    wait_until(lambda: pipeline.status().pending == 1)

    clock.advance(6)   # [recordings] wait_s = 5

    wait_until(lambda: pipeline.status().missing == 1)
    assert pipeline.status().pending == 0 and outbox.events() == []


def test_forbidden_recordings_show_in_status(run_pipeline, standin_xapi):
    clock = FakeClock()
    pipeline = run_pipeline(standin_xapi(error=PbxRejected(403, "Forbidden")), clock=clock)
    now = clock.now()

    pipeline.call_ended(make_call(now), [ended(LEG1, "101", answered_at=now, ended_at=now)])

    status = wait_until(lambda: (s := pipeline.status()).is_forbidden and s)
    assert "System Owner" in status.last_error


def test_call_ended_does_not_wait_for_the_pbx(run_pipeline, standin_xapi):
    gate = threading.Event()

    class SlowXapi(standin_xapi):
        def list(self, *args, **kwargs):
            gate.wait(10)
            return super().list(*args, **kwargs)

    clock = FakeClock()
    pipeline = run_pipeline(SlowXapi([]), clock=clock)
    now = clock.now()
    pipeline.call_ended(make_call(now), [ended(LEG1, "101", answered_at=now, ended_at=now)])

    pipeline.call_ended(make_call(now), [ended(LEG2, "102", answered_at=now, ended_at=now)])

    assert pipeline.status().pending == 2
    gate.set()


def test_disabled_pipeline_ignores_ended_calls(run_pipeline, standin_xapi, outbox):
    xapi = standin_xapi([])
    pipeline = run_pipeline(xapi, recordings={"enabled": "false"})
    now = datetime.now(timezone.utc)

    pipeline.call_ended(make_call(now), [ended(LEG1, "101", answered_at=now, ended_at=now)])

    assert pipeline.status().pending == 0 and xapi.queries == []


def test_without_webhooks_files_are_converted_but_not_posted(run_pipeline, standin_xapi, outbox,
                                                              wav_bytes, mp3_dir):
    now = datetime.now(timezone.utc)
    pipeline = run_pipeline(standin_xapi([row(11, now - timedelta(seconds=3), 1.0)],
                                         wavs={11: wav_bytes(1.0)}), webhooks={"url": ""})

    pipeline.call_ended(make_call(now - timedelta(seconds=5)),
                        [ended(LEG1, "101", answered_at=now - timedelta(seconds=4), ended_at=now)])

    wait_until(lambda: pipeline.status().converted == 1)
    assert (mp3_dir / f"{LEG1}-1.mp3").is_file() and outbox.events() == []
    assert pipeline.status().posted == 0


def test_broken_download_is_reported_and_nothing_posted(run_pipeline, standin_xapi, outbox, mp3_dir):
    now = datetime.now(timezone.utc)
    pipeline = run_pipeline(standin_xapi([row(11, now - timedelta(seconds=3), 1.0)],
                                         wavs={11: b"RIFF garbage"}))

    pipeline.call_ended(make_call(now - timedelta(seconds=5)),
                        [ended(LEG1, "101", answered_at=now - timedelta(seconds=4), ended_at=now)])

    status = wait_until(lambda: (s := pipeline.status()).failed == 1 and s, timeout_s=20)
    assert LEG1 in status.last_error and outbox.events() == []
    assert [p.name for p in mp3_dir.iterdir()] == []


def test_start_removes_leftover_download_folders_only(recordings_config, outbox, standin_xapi, mp3_dir):
    (mp3_dir / ".incoming-abc123").mkdir()
    (mp3_dir / ".incoming-abc123" / "7.wav").write_bytes(b"RIFF")
    kept = mp3_dir / f"{LEG1}-1.mp3"
    kept.write_bytes(b"mp3")
    pipeline = RecordingPipeline(recordings_config(), standin_xapi([]), outbox, clock=Clock())

    pipeline.start()
    pipeline.stop(timeout_s=5)

    assert [p.name for p in mp3_dir.iterdir()] == [kept.name]


class StandInHistory:
    """A call history that knows `by_leg` (leg id -> recording ids), or fails with `error`."""

    def __init__(self, by_leg=None, error=None):
        self.by_leg = by_leg
        self.error = error
        self.asked: list[int] = []

    def recordings_of(self, call, legs):
        self.asked.append(call.v20_call_id)
        if self.error:
            raise self.error
        return None if self.by_leg is None else HistoryRecordings(dict(self.by_leg))


def test_call_history_names_the_recordings_by_id(run_pipeline, standin_xapi, outbox, wav_bytes, mp3_dir):
    now = datetime.now(timezone.utc)
    xapi = standin_xapi([row(11, now - timedelta(seconds=4), 1.0), row(12, now - timedelta(seconds=3), 2.0)],
                        wavs={11: wav_bytes(1.0), 12: wav_bytes(2.0)})
    history = StandInHistory({LEG1: (12,)})
    pipeline = run_pipeline(xapi, history=history)

    pipeline.call_ended(make_call(now - timedelta(seconds=5)),
                        [ended(LEG1, "101", answered_at=now - timedelta(seconds=4), ended_at=now)])
    [event] = posted(outbox, 1)

    assert [urlsplit(f).path for f in event.params["FILES"]] == [f"/webapi/recording/{LEG1}-1.mp3"]
    assert xapi.queries == ["(Id eq 12)"] and xapi.downloads == ["/Recordings/Pbx.DownloadRecording(recId=12)"]
    assert history.asked == [7]


def test_unreadable_call_history_falls_back_to_the_search(run_pipeline, standin_xapi, outbox, wav_bytes):
    now = datetime.now(timezone.utc)
    xapi = standin_xapi([row(11, now - timedelta(seconds=3), 1.0)], wavs={11: wav_bytes(1.0)})
    pipeline = run_pipeline(xapi, history=StandInHistory(error=HistoryUnavailable("403 Forbidden")))

    pipeline.call_ended(make_call(now - timedelta(seconds=5)),
                        [ended(LEG1, "101", answered_at=now - timedelta(seconds=4), ended_at=now)])
    [event] = posted(outbox, 1)

    assert event.params["id"] == LEG1 and len(event.params["FILES"]) == 1
    assert xapi.queries[0].startswith("(StartTime ge ")


def test_call_missing_from_the_history_falls_back_after_half_of_wait_s(run_pipeline, standin_xapi, outbox,
                                                                        wav_bytes):
    clock = FakeClock(datetime.now(timezone.utc))
    now = clock.now()
    xapi = standin_xapi([row(11, now - timedelta(seconds=3), 1.0)], wavs={11: wav_bytes(1.0)})
    history = StandInHistory(None)
    pipeline = run_pipeline(xapi, clock=clock, history=history)
    pipeline.call_ended(make_call(now - timedelta(seconds=5)),
                        [ended(LEG1, "101", answered_at=now - timedelta(seconds=4), ended_at=now)])
    wait_until(lambda: history.asked)
    assert xapi.queries == []

    clock.advance(2.6)   # [recordings] wait_s = 5

    wait_until(lambda: xapi.queries)
    clock.advance(1)
    assert posted(outbox, 1)[0].params["id"] == LEG1


def test_recording_announced_before_a_restart_is_never_announced_for_another_leg(
        recordings_config, run_pipeline, standin_xapi, outbox, wav_bytes):
    now = datetime.now(timezone.utc)
    xapi = standin_xapi([row(11, now - timedelta(seconds=3), 1.0)], wavs={11: wav_bytes(1.0)})
    first = run_pipeline(xapi)
    first.call_ended(make_call(now - timedelta(seconds=5)),
                     [ended(LEG1, "101", answered_at=now - timedelta(seconds=4), ended_at=now)])
    posted(outbox, 1)
    first.stop(timeout_s=5)

    again = run_pipeline(xapi)      # a restart: same state folder, nothing in memory
    other = "261124100007_8-1"
    again.call_ended(make_call(now - timedelta(seconds=5)),
                     [ended(other, "101", answered_at=now - timedelta(seconds=4), ended_at=now,
                            call_key="261124100007_8")])

    wait_until(lambda: again.status().missing == 1, timeout_s=10)
    assert [e.params["id"] for e in outbox.events()] == [LEG1]


def test_recording_two_calls_could_claim_is_left_out_and_logged(run_pipeline, standin_xapi, outbox,
                                                                 wav_bytes, caplog):
    now = datetime.now(timezone.utc)
    boundary = now - timedelta(seconds=5)
    xapi = standin_xapi([row(11, boundary, 0.05)], wavs={11: wav_bytes(1.0)})
    pipeline = run_pipeline(xapi)
    caplog.set_level(logging.WARNING, logger="gateway.recordings.pipeline")

    pipeline.call_ended(make_call(now - timedelta(seconds=12)),
                        [ended(LEG1, "101", answered_at=now - timedelta(seconds=10), ended_at=boundary)])
    pipeline.call_ended(make_call(now - timedelta(seconds=5)),
                        [ended("261124100005_8-1", "101", answered_at=boundary + timedelta(seconds=0.1),
                               ended_at=now, call_key="261124100005_8")])

    wait_until(lambda: pipeline.status().missing == 2, timeout_s=20)
    assert outbox.events() == [] and pipeline.status().ambiguous == 1
    assert any("recording 11" in r.getMessage() and "left out" in r.getMessage() for r in caplog.records)
