"""The nightly purge of delivered webhooks: when it runs and what it keeps come from [webhooks]."""
from __future__ import annotations

from datetime import datetime, timezone

from apscheduler.schedulers.background import BackgroundScheduler

from gateway.clock import FakeClock
from gateway.config import from_dict
from gateway.runtime import PURGE_JOB_ID, schedule_outbox_purge
from gateway.webhooks.outbox import Outbox

NOW = datetime(2026, 11, 24, 3, 0, tzinfo=timezone.utc)
DAY_S = 86400


def make_config(**webhooks: str):
    return from_dict({"pbx": {"url": "https://pbx.example.com", "client_id": "900", "client_secret": "s",
                              "timezone": "Europe/Prague"},
                      "webapi": {"key": "k"},
                      "webhooks": {"url": "http://127.0.0.1:9/hook", **webhooks}}, environ={})


def delivered(outbox: Outbox, n: int) -> str:
    event_id = outbox.add("call-a", {"n": n})
    outbox.mark_delivered(event_id)
    return event_id


def test_purge_runs_at_purge_time_in_pbx_zone_and_keeps_keep_delivered_days(tmp_path):
    clock = FakeClock(NOW)
    outbox = Outbox(tmp_path / "outbox.sqlite3", clock=clock)
    old = delivered(outbox, 0)
    clock.advance(2 * DAY_S)
    recent = delivered(outbox, 1)
    clock.advance(2 * DAY_S + 60)
    scheduler = BackgroundScheduler()

    schedule_outbox_purge(scheduler, make_config(keep_delivered_days="3", purge_time="01:15"), outbox, clock)
    job = scheduler.get_job(PURGE_JOB_ID)
    job.func()

    fields = {f.name: str(f) for f in job.trigger.fields}
    assert (str(job.trigger.timezone), fields["hour"], fields["minute"]) == ("Europe/Prague", "1", "15")
    assert outbox.get(old) is None and outbox.get(recent).state == "delivered"


def test_purge_defaults_keep_a_week_and_run_at_half_past_four():
    config = make_config()

    assert (config.webhooks.keep_delivered_days, config.webhooks.purge_time) == (7, "04:30")
