"""Retention: valid MP3 names older than keep_days go, everything else stays."""
from __future__ import annotations

import logging
import os
from datetime import datetime, timedelta, timezone

from apscheduler.schedulers.background import BackgroundScheduler

from gateway.clock import FakeClock
from gateway.recordings.retention import JOB_ID, delete_expired, schedule_retention

NOW = datetime(2026, 11, 24, 3, 0, tzinfo=timezone.utc)


def aged(path, days: float):
    """Create `path` last modified `days` before NOW."""
    path.write_bytes(b"mp3")
    moment = (NOW - timedelta(days=days)).timestamp()
    os.utime(path, (moment, moment))
    return path


def test_delete_expired_removes_only_old_valid_files(mp3_dir, caplog):
    old = aged(mp3_dir / "211230102738_669-1-1.mp3", 31)
    old2 = aged(mp3_dir / "211230102738_669-2-1.mp3", 400)
    young = aged(mp3_dir / "211230102738_669-1-2.mp3", 29)
    caplog.set_level(logging.INFO, logger="gateway.recordings.retention")

    removed = delete_expired(mp3_dir, 30, NOW)

    assert sorted(removed) == sorted([old, old2])
    assert sorted(p.name for p in mp3_dir.iterdir()) == [young.name]
    assert any(old.name in r.getMessage() for r in caplog.records)


def test_delete_expired_leaves_other_names_alone(mp3_dir, tmp_path):
    others = [aged(mp3_dir / name, 100) for name in
              ("notes.txt", "call.wav", "211230102738_669-1-1.wav", ".211230102738_669-1-1.mp3.ab12.part",
               "211230102738_669-1-1.mp3.bak")]
    (mp3_dir / "211230102738_669-9-1.mp3").mkdir()
    outside = aged(tmp_path / "outside.mp3", 100)
    os.symlink(outside, mp3_dir / "211230102738_669-8-1.mp3")

    removed = delete_expired(mp3_dir, 1, NOW)

    assert removed == []
    assert all(p.exists() for p in others) and outside.exists()
    assert (mp3_dir / "211230102738_669-9-1.mp3").is_dir()


def test_delete_expired_keeps_files_exactly_at_the_limit(mp3_dir):
    edge = aged(mp3_dir / "211230102738_669-1-1.mp3", 30)

    assert delete_expired(mp3_dir, 30, NOW) == [] and edge.exists()


def test_delete_expired_of_missing_folder_is_empty(tmp_path):
    assert delete_expired(tmp_path / "nowhere", 30, NOW) == []


def test_schedule_retention_runs_nightly_in_pbx_time_zone(recordings_config, mp3_dir):
    config = recordings_config(recordings={"cleanup_time": "02:30", "keep_days": "7"})
    clock = FakeClock(NOW)
    scheduler = BackgroundScheduler()
    expired = aged(mp3_dir / "211230102738_669-1-1.mp3", 8)

    schedule_retention(scheduler, config, clock)
    job = scheduler.get_job(JOB_ID)
    job.func()

    assert str(job.trigger.timezone) == "Europe/Prague"
    assert {f.name: str(f) for f in job.trigger.fields}["hour"] == "2"
    assert {f.name: str(f) for f in job.trigger.fields}["minute"] == "30"
    assert not expired.exists()
