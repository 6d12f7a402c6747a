"""Runtime.start()/stop(): the watcher, webhook senders, conversion pool and nightly scheduler.

Exactly one Runtime runs per service process (see server.py: one gunicorn worker), because the
live call model, the watcher's WebSocket and the outbox senders must exist once.
"""
from __future__ import annotations

import logging
import threading
from datetime import timedelta
from typing import TYPE_CHECKING

from apscheduler.schedulers.background import BackgroundScheduler

from gateway.recordings.retention import schedule_retention

if TYPE_CHECKING:
    from gateway.services import Services

logger = logging.getLogger(__name__)

DELIVERED_KEEP_DAYS = 7


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
            s.watcher.start()
            self._scheduler = BackgroundScheduler(timezone=s.config.pbx.timezone)
            schedule_retention(self._scheduler, s.config, s.clock)
            self._scheduler.add_job(self._purge_delivered, "cron", hour=4, minute=30,
                                    id="purge-delivered-webhooks")
            self._scheduler.start()
            self.is_running = True
            logger.info("runtime started: pbx %s, webhooks %s", s.config.pbx.url,
                        "on" if s.config.webhooks.url else "off")

    def _purge_delivered(self) -> None:
        """Delivered webhooks are kept a week for inspection, then dropped from the outbox."""
        s = self._services
        removed = s.outbox.purge_delivered(s.clock.now() - timedelta(days=DELIVERED_KEEP_DAYS))
        logger.info("outbox: purged %s delivered webhook(s)", removed)

    def stop(self, timeout_s: float = 10.0) -> None:
        """Stop taking events, finish in-flight conversions and deliveries, then close."""
        with self._lock:
            if not self.is_running:
                return
            s = self._services
            if self._scheduler is not None:
                self._scheduler.shutdown(wait=False)
            s.watcher.stop(timeout_s)
            s.recordings.stop(timeout_s)
            s.delivery.stop(timeout_s)
            self.is_running = False
            logger.info("runtime stopped")
