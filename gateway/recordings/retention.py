"""Retention: delete MP3 files older than `[recordings] keep_days`, nightly and on demand.

`delete_expired` is the whole policy and a plain function; the CLI calls it for a manual run and
`schedule_retention` registers it with the runtime's APScheduler at `cleanup_time` in the PBX's
time zone. Only files whose names pass `is_valid_name` are ever removed.
"""
from __future__ import annotations

import logging
import os
import stat
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

from apscheduler.schedulers.base import BaseScheduler

from gateway.clock import Clock
from gateway.config import Config
from gateway.recordings.names import is_valid_name

logger = logging.getLogger(__name__)

JOB_ID = "recordings-retention"


def delete_expired(mp3_dir: str | os.PathLike[str], keep_days: int, now: datetime) -> list[Path]:
    """Remove valid MP3 files in `mp3_dir` last modified more than `keep_days` before `now`.

    Subfolders, symbolic links and every other name are left alone. Returns the removed paths.
    """
    folder = Path(mp3_dir)
    cutoff = (now - timedelta(days=keep_days)).timestamp()
    removed: list[Path] = []
    try:
        entries = sorted(os.scandir(folder), key=lambda entry: entry.name)
    except FileNotFoundError:
        logger.info("retention: %s does not exist, nothing to delete", folder)
        return removed
    for entry in entries:
        if not is_valid_name(entry.name):
            continue
        try:
            info = entry.stat(follow_symlinks=False)
            if not stat.S_ISREG(info.st_mode) or info.st_mtime >= cutoff:
                continue
            os.unlink(entry.path)
        except FileNotFoundError:
            continue
        except OSError as exc:
            logger.warning("retention: could not delete %s: %s", entry.path, exc)
            continue
        removed.append(Path(entry.path))
        logger.info("retention: deleted %s (older than %s days)", entry.name, keep_days)
    logger.info("retention: %s file(s) deleted from %s", len(removed), folder)
    return removed


def schedule_retention(scheduler: BaseScheduler, config: Config, clock: Clock) -> None:
    """Add the nightly job to an APScheduler scheduler (cron at cleanup_time, PBX time zone)."""
    hour, minute = (int(part) for part in config.recordings.cleanup_time.split(":"))
    mp3_dir = config.recordings.mp3_dir
    keep_days = config.recordings.keep_days

    def run() -> None:
        try:
            delete_expired(mp3_dir, keep_days, clock.now())
        except Exception:  # a failed night must not stop the scheduler
            logger.exception("retention: nightly run failed")

    scheduler.add_job(run, "cron", hour=hour, minute=minute, timezone=ZoneInfo(config.pbx.timezone),
                      id=JOB_ID, name="delete expired recordings", replace_existing=True,
                      coalesce=True, misfire_grace_time=3600)
