"""Where capture records come from: the running service's watcher, or a read-only watcher of our own.

v20 keeps one token per API client, so a second client revokes the service's token: while the
service runs it does the recording (asked over its control socket, see control.py); only when no
service runs does `capture_direct` connect to the PBX itself. Neither sends a webhook or changes
anything on the PBX.
"""
from __future__ import annotations

import logging
import time
from datetime import datetime, timezone
from typing import Any, Callable, Iterator

from gateway import __version__
from gateway.clock import Clock
from gateway.config import Config
from gateway.live.model import CallTable
from gateway.live.recorder import Capture, Record, Recorder
from gateway.live.watcher import Watcher
from gateway.pbx.errors import PbxError
from gateway.webhooks.routing import RoutedEvent

logger = logging.getLogger(__name__)

POLL_S = 0.2


def header(config: Config, source: str) -> Record:
    """The first record: what made the capture and the settings the watcher followed."""
    return {"type": "capture", "version": 1, "gateway": __version__, "source": source,
            "started_at": datetime.now(timezone.utc).isoformat(timespec="seconds"), "anonymized": False,
            "rules": {"timezone": config.pbx.timezone, "answer_event": config.webhooks.answer_event,
                      "ringing_cancelled": config.webhooks.ringing_cancelled,
                      "internal_calls": config.webhooks.internal_calls,
                      "end_grace_s": config.webhooks.end_grace_s}}


def snapshot(recorder: Recorder, callcontrol: Any, xapi: Any) -> Callable[[], list[Record]]:
    """What a capture starts with: every monitored DN with its participants, and the DID rules."""

    def take() -> list[Record]:
        records = []
        for kind, read in (("state", callcontrol.all_states), ("did_rules", lambda: xapi.list("InboundRules"))):
            try:
                records.append(recorder.record(kind, body=read()))
            except PbxError as exc:
                logger.warning("capture: cannot read the %s at the start: %s", kind, exc)
        return records

    return take


def drain(recorder: Recorder, capture: Capture, seconds: float, *, is_stopped: Callable[[], bool] = lambda: False
          ) -> Iterator[Record]:
    """The capture's records for `seconds`, then an `end` record; the capture is closed at the end."""
    deadline = time.monotonic() + seconds
    try:
        while time.monotonic() < deadline and not is_stopped():
            record = capture.get(min(POLL_S, max(0.0, deadline - time.monotonic())))
            if record is not None:
                yield record
        while (record := capture.get(0)) is not None:
            yield record
    finally:
        recorder.stop(capture)
    yield recorder.record("end", dropped=capture.dropped)


def capture_service(services: Any, seconds: float, *, is_stopped: Callable[[], bool] = lambda: False
                    ) -> Iterator[Record]:
    """Records of the running service's watcher for `seconds` (run inside the service)."""
    yield header(services.config, "service")
    capture = services.watcher.capture(snapshot(services.recorder, services.callcontrol, services.xapi))
    yield from drain(services.recorder, capture, seconds, is_stopped=is_stopped)


class _Discard:
    """The outbox of a read-only watcher: webhooks are recorded, never queued or sent."""

    def publish(self, event: RoutedEvent, writer: object = None) -> list[str]:
        return []


def capture_direct(config: Config, seconds: float) -> Iterator[Record]:
    """Connect to the PBX ourselves (only when no service runs) and record for `seconds`."""
    from gateway.pbx.auth import TokenSource
    from gateway.pbx.callcontrol import CallControlClient
    from gateway.pbx.http import new_session
    from gateway.pbx.stream import EventStream
    from gateway.pbx.xapi import XapiClient

    pbx = config.pbx
    clock = Clock()
    session = new_session(verify_tls=pbx.verify_tls, url=pbx.url)
    tokens = TokenSource(session, pbx.url, pbx.client_id, pbx.client_secret, timeout_s=pbx.timeout_s, clock=clock)
    callcontrol = CallControlClient(session, pbx.url, tokens, timeout_s=pbx.timeout_s)
    xapi = XapiClient(session, pbx.url, tokens, timeout_s=pbx.timeout_s)
    recorder = Recorder(clock)
    watcher = Watcher(EventStream(pbx.url, tokens, verify_tls=pbx.verify_tls),
                      recorder.reads("callcontrol", callcontrol), recorder.reads("xapi", xapi), CallTable(),
                      _Discard(), config, clock=clock, recorder=recorder)
    yield header(config, "direct")
    # Open the capture before the stream connects, so the first resync is part of it.
    capture = watcher.capture(snapshot(recorder, callcontrol, xapi))
    watcher.start()
    try:
        yield from drain(recorder, capture, seconds)
    finally:
        watcher.stop(5)
        session.close()
