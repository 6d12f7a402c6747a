"""Simulated time: a virtual clock running `time_scale` simulated seconds per real second, a
scheduler that runs callbacks after simulated delays on one daemon thread, and the PBX's wall
clock (real UTC time, optionally set off by a number of seconds like a PBX whose clock is wrong)."""
from __future__ import annotations

import heapq
import itertools
import logging
import threading
import time
from datetime import datetime, timedelta, timezone
from typing import Any, Callable

logger = logging.getLogger(__name__)


class VirtualClock:
    """Simulated seconds: `time_scale` of them pass per real second."""

    def __init__(self, time_scale: float) -> None:
        if time_scale <= 0:
            raise ValueError("time_scale must be positive")
        self.time_scale = float(time_scale)
        self._origin = time.monotonic()

    def now(self) -> float:
        """Simulated seconds since the clock was made."""
        return (time.monotonic() - self._origin) * self.time_scale

    def real_seconds(self, sim_s: float) -> float:
        return max(0.0, sim_s) / self.time_scale


class WallClock:
    """The time the PBX shows (recording times, HTTP `Date`): real UTC time plus `offset_s`."""

    def __init__(self, offset_s: float = 0.0) -> None:
        self.offset_s = float(offset_s)

    def now(self) -> datetime:
        return datetime.now(timezone.utc) + timedelta(seconds=self.offset_s)

    def time(self) -> float:
        """Epoch seconds on the PBX's clock."""
        return time.time() + self.offset_s


class Timer:
    """A scheduled callback; `cancel()` stops it from running."""

    __slots__ = ("due", "fn", "args", "is_cancelled")

    def __init__(self, due: float, fn: Callable[..., None], args: tuple) -> None:
        self.due = due
        self.fn = fn
        self.args = args
        self.is_cancelled = False

    def cancel(self) -> None:
        self.is_cancelled = True


class Scheduler:
    """Runs callbacks after simulated delays, in due order, on one daemon thread."""

    def __init__(self, clock: VirtualClock) -> None:
        self._clock = clock
        self._heap: list[tuple[float, int, Timer]] = []
        self._seq = itertools.count()
        self._cond = threading.Condition()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="sim-scheduler", daemon=True)
        self._thread.start()

    def stop(self, timeout_s: float) -> None:
        self._stop.set()
        with self._cond:
            self._cond.notify_all()
        if self._thread:
            self._thread.join(timeout_s)

    def call_later(self, sim_delay_s: float, fn: Callable[..., None], *args: Any) -> Timer:
        """Run `fn(*args)` after `sim_delay_s` simulated seconds."""
        timer = Timer(time.monotonic() + self._clock.real_seconds(sim_delay_s), fn, args)
        with self._cond:
            heapq.heappush(self._heap, (timer.due, next(self._seq), timer))
            if self._heap[0][2] is timer:
                self._cond.notify()
        return timer

    def clear(self) -> None:
        """Cancel everything pending."""
        with self._cond:
            for _, _, timer in self._heap:
                timer.cancel()
            self._heap.clear()

    def _run(self) -> None:
        while not self._stop.is_set():
            with self._cond:
                now = time.monotonic()
                due: list[Timer] = []
                while self._heap and self._heap[0][0] <= now:
                    due.append(heapq.heappop(self._heap)[2])
                if not due:
                    wait_s = self._heap[0][0] - now if self._heap else 0.5
                    self._cond.wait(min(wait_s, 0.5))
                    continue
            for timer in due:
                if timer.is_cancelled:
                    continue
                try:
                    timer.fn(*timer.args)
                except Exception:  # one bad callback must not stop the PBX
                    logger.exception("scheduled callback %s failed", getattr(timer.fn, "__name__", timer.fn))
