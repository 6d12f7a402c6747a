"""Runtime.start()/stop(): the watcher, webhook senders, conversion pool and nightly scheduler.

Exactly one Runtime runs per service process (see server.py: one gunicorn worker), because the
live call model, the watcher's WebSocket and the outbox senders must exist once.
"""
from __future__ import annotations

import logging
import threading
from datetime import timedelta
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo

from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.schedulers.base import BaseScheduler

from gateway.clock import Clock
from gateway.config import Config
from gateway.recordings.retention import schedule_retention
from gateway.webhooks.outbox import Outbox

if TYPE_CHECKING:
    from gateway.services import Services

logger = logging.getLogger(__name__)

PURGE_JOB_ID = "purge-delivered-webhooks"


def schedule_outbox_purge(scheduler: BaseScheduler, config: Config, outbox: Outbox, clock: Clock) -> None:
    """Add the nightly purge of delivered webhooks older than [webhooks] keep_delivered_days
    (cron at [webhooks] purge_time, PBX time zone)."""
    hour, minute = (int(part) for part in config.webhooks.purge_time.split(":"))
    keep_days = config.webhooks.keep_delivered_days

    def run() -> None:
        try:
            removed = outbox.purge_delivered(clock.now() - timedelta(days=keep_days))
        except Exception:  # a failed night must not stop the scheduler
            logger.exception("outbox: nightly purge failed")
            return
        logger.info("outbox: purged %s delivered webhook(s) older than %s days", removed, keep_days)

    scheduler.add_job(run, "cron", hour=hour, minute=minute, timezone=ZoneInfo(config.pbx.timezone),
                      id=PURGE_JOB_ID, name="purge delivered webhooks", replace_existing=True)


class Runtime:
    """Starts and stops every background part of one gateway process, in dependency order."""

    def __init__(self, services: Services) -> None:
        self._services = services
        self._lock = threading.Lock()
        self._scheduler: BackgroundScheduler | None = None
        self.is_running = False

    def start(self) -> None:
        """Start delivery first (so pending webhooks from a previous run go out), then the rest."""
        with self._lock:
            if self.is_running:
                return
            s = self._services
            s.delivery.start()
            s.recordings.start()
            s.recovery.start()
            s.watcher.start()
            try:
                s.control.start()
            except OSError as exc:
                logger.warning("control socket not started (%s): capture and doctor cannot ask this service", exc)
            self._scheduler = BackgroundScheduler(timezone=s.config.pbx.timezone)
            schedule_retention(self._scheduler, s.config, s.clock)
            schedule_outbox_purge(self._scheduler, s.config, s.outbox, s.clock)
            self._scheduler.add_job(s.recovery.purge, "cron", hour=4, minute=40, id="purge-recovery-state")
            self._scheduler.start()
            self.is_running = True
            logger.info("runtime started: pbx %s, webhook targets %s", s.config.pbx.url,
                        ", ".join(t.name for t in s.config.targets) or "off")

    def stop(self, timeout_s: float = 10.0) -> None:
        """Stop taking events, finish in-flight conversions and deliveries, then close."""
        with self._lock:
            if not self.is_running:
                return
            s = self._services
            if self._scheduler is not None:
                self._scheduler.shutdown(wait=False)
            s.control.stop(timeout_s)
            s.watcher.stop(timeout_s)
            s.recovery.stop(timeout_s)
            s.recordings.stop(timeout_s)
            s.delivery.stop(timeout_s)
            self.is_running = False
            logger.info("runtime stopped")
