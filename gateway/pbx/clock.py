"""The PBX's clock as seen from ours: the offset between them, measured from HTTP `Date` headers.

Times the PBX writes (a recording's `StartTime`, a call-history row's) are on the PBX's clock; the
times the gateway notes (a leg answered, a leg ended) are on its own. `PbxClock` watches every PBX
answer on the shared `requests.Session`: an answer stamped `Date: D` (whole seconds, RFC 9110)
that was sent at our `t_sent` and received at our `t_received` says

    D - t_received  <=  pbx - ours  <  D + 1 - t_sent

Answers arrive at every phase of the second, so intersecting these ranges narrows the offset well
below a second within a few dozen answers. Only recent answers count (`window_s`, `max_samples`),
and when a new answer contradicts the older ones (a clock was stepped) the newer ones win.
"""
from __future__ import annotations

import logging
import threading
from collections import deque
from dataclasses import dataclass
from datetime import datetime, timedelta
from email.utils import parsedate_to_datetime
from typing import Any

import requests

from gateway.clock import Clock

logger = logging.getLogger(__name__)

WINDOW_S = 900.0         # answers older than this no longer count (clocks drift)
MAX_SAMPLES = 128


@dataclass(frozen=True)
class ClockOffset:
    """`pbx time - gateway time` in seconds, known to within +-`uncertainty_s`."""

    offset_s: float
    uncertainty_s: float
    samples: int

    def to_pbx(self, moment: datetime) -> datetime:
        """A gateway-clock time on the PBX's clock."""
        return moment + timedelta(seconds=self.offset_s)


# Before any answer carried a `Date` header the clocks are taken to agree (both are normally NTP
# synchronised); `samples == 0` says so, and the recordings pipeline logs it.
UNKNOWN = ClockOffset(0.0, 0.0, 0)


@dataclass(frozen=True)
class _Sample:
    received_at: float       # our epoch seconds
    low_s: float
    high_s: float


class PbxClock:
    """Estimates the PBX's clock offset from the answers it sees; thread-safe."""

    def __init__(self, *, clock: Clock, window_s: float = WINDOW_S, max_samples: int = MAX_SAMPLES) -> None:
        self._clock = clock
        self._window_s = window_s
        self._samples: deque[_Sample] = deque(maxlen=max_samples)
        self._lock = threading.Lock()
        self._reported: float | None = None

    def watch_session(self, session: requests.Session) -> None:
        """Read the `Date` header of every answer made through `session`."""

        def hook(response: requests.Response, *args: Any, **kwargs: Any) -> None:
            self.note(response.headers.get("Date"), received_at=self._clock.time(),
                      elapsed_s=response.elapsed.total_seconds())

        session.hooks.setdefault("response", []).append(hook)

    def note(self, date_header: str | None, *, received_at: float, elapsed_s: float) -> None:
        """One answer: its `Date` header, when we received it (epoch s) and how long it took."""
        if not date_header:
            return
        try:
            stamped = parsedate_to_datetime(date_header).timestamp()
        except (TypeError, ValueError, IndexError, OverflowError):
            logger.debug("unreadable Date header %r", date_header)
            return
        sent_at = received_at - max(0.0, elapsed_s)
        with self._lock:
            self._samples.append(_Sample(received_at, stamped - received_at, stamped + 1.0 - sent_at))

    def offset(self) -> ClockOffset:
        """The current estimate; `UNKNOWN` (0 +- 0 from 0 samples) before the first answer."""
        now = self._clock.time()
        with self._lock:
            recent = [s for s in self._samples if now - s.received_at <= self._window_s]
        if not recent:
            return UNKNOWN
        low, high, used = recent[-1].low_s, recent[-1].high_s, 1
        for sample in reversed(recent[:-1]):
            if sample.low_s > high or sample.high_s < low:
                break            # an older answer contradicts the newer ones: the clock was stepped
            low, high, used = max(low, sample.low_s), min(high, sample.high_s), used + 1
        estimate = ClockOffset((low + high) / 2, (high - low) / 2, used)
        self._report(estimate)
        return estimate

    def _report(self, estimate: ClockOffset) -> None:
        # Log once when the offset is first known and whenever it moves by more than a second.
        with self._lock:
            previous, self._reported = self._reported, estimate.offset_s
            if previous is not None and abs(previous - estimate.offset_s) <= 1.0:
                self._reported = previous
                return
        logger.info("PBX clock is %+.2fs from ours (+-%.2fs, %d answers)", estimate.offset_s,
                    estimate.uncertainty_s, estimate.samples)
