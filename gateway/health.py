"""/healthz: is the gateway doing its job? 200 when healthy, 503 with the reasons when not.

Neither this nor /metrics needs the access key, and neither shows a secret; publish them only to
your monitoring (the nginx snippet in the README keeps them local).
"""
from __future__ import annotations

import logging
import shutil
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Any

from flask import Blueprint, Response, jsonify

if TYPE_CHECKING:
    from gateway.services import Services

logger = logging.getLogger(__name__)

MIN_FREE_BYTES = 200 * 1024 * 1024
STALE_EVENTS_S = 3600.0


def _free_bytes(path: Path) -> int | None:
    for candidate in (path, *path.parents):
        if candidate.exists():
            return shutil.disk_usage(candidate).free
    return None


def assess(services: Services) -> tuple[bool, dict[str, Any]]:
    """(healthy, report): problems make it unhealthy, warnings do not."""
    problems: list[str] = []
    warnings: list[str] = []
    token = services.tokens.status()
    if not token.valid:
        problems.append(f"no valid PBX token: {token.last_error or 'not obtained yet'}")
    events = services.watcher.status()
    if not events.connected:
        problems.append("the Call Control event stream is disconnected (no live calls, no webhooks)")
    elif not events.synced:
        problems.append("the Call Control event stream is resynchronising")
    if events.lag_s > services.config.pbx.event_lag_warn_s:
        warnings.append(f"call events are applied {events.lag_s:.1f} s late ({events.backlog} waiting, "
                        f"{events.reads.queued if events.reads else 0} participant reads queued)")
    age = events.last_event_age_s
    if age is not None and age > STALE_EVENTS_S:
        warnings.append(f"no call event for {int(age)} s")
    outbox, by_target = services.outbox.tally(), services.outbox.tally_by_target()
    targets = services.delivery.status()
    for name, target in by_target.items():
        if target.failed:
            warnings.append(f"{target.failed} webhook(s) to target {name} failed; "
                            f"see `3cx-gateway outbox list --target {name}`")
        if name not in targets and target.pending:
            warnings.append(f"{target.pending} webhook(s) wait for target {name}, which is no longer "
                            "configured; see `3cx-gateway outbox list`")
    recovery = services.recovery.status()
    for gap in recovery.uncovered:
        warnings.append(f"calls between {gap.since} and {gap.until} were not recovered from the call "
                        f"history: {gap.reason}")
    recordings = services.recordings.status()
    if recordings.last_error:
        warnings.append(f"recordings: {recordings.last_error}")
    free = None
    if services.config.recordings.enabled:
        free = _free_bytes(Path(services.config.recordings.mp3_dir))
        if free is not None and free < MIN_FREE_BYTES:
            problems.append(f"only {free // (1024 * 1024)} MiB free for MP3 files")
    report = {
        "status": "ok" if not problems else "unhealthy",
        "problems": problems,
        "warnings": warnings,
        "pbx": {"token_valid": token.valid, "token_expires_in_s": token.expires_in_s},
        "events": asdict(events),
        "outbox": outbox.as_dict(),
        "webhook_targets": {name: asdict(status) for name, status in targets.items()},
        "recordings": asdict(recordings),
        "recovery": asdict(recovery),
        "disk_free_bytes": free,
    }
    return not problems, report


def create_health_blueprint(services: Services) -> Blueprint:
    """GET /healthz for these services."""
    blueprint = Blueprint("health", __name__)

    @blueprint.get("/healthz")
    def healthz() -> tuple[Response, int]:
        healthy, report = assess(services)
        return jsonify(report), (200 if healthy else 503)

    return blueprint
