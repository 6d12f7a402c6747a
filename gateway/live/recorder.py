"""The recorder: copies what the watcher consumes and produces to the captures in progress.

The watcher hands it each WebSocket message, each (re)connection and each webhook event it
writes; `reads(api, client)` wraps a PBX client so every read the watcher makes (participant, DN
state, resync, DID rules) is copied too, with its answer or error. With no capture open each call
returns at once. Records are plain JSON-able dicts `{"type", "t" (epoch seconds), ...}`; the file
format is described in gateway/capture/records.py.
"""
from __future__ import annotations

import logging
import queue
import threading
from typing import Any, Callable

from gateway.clock import Clock

logger = logging.getLogger(__name__)

Record = dict[str, Any]
CAPTURE_LIMIT = 200_000          # records buffered per capture before new ones are dropped


class Capture:
    """One capture in progress: records wait here until the capturing side takes them."""

    def __init__(self, first: list[Record], limit: int = CAPTURE_LIMIT) -> None:
        self._queue: queue.Queue[Record] = queue.Queue(limit)
        self.dropped = 0
        for record in first:
            self.put(record)

    def put(self, record: Record) -> None:
        try:
            self._queue.put_nowait(record)
        except queue.Full:
            self.dropped += 1

    def get(self, timeout_s: float) -> Record | None:
        """The next record, or None when none came within `timeout_s`."""
        try:
            return self._queue.get(timeout=timeout_s)
        except queue.Empty:
            return None


class Recorder:
    """Fans records out to every open Capture; any thread may call it."""

    def __init__(self, clock: Clock) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._captures: list[Capture] = []

    @property
    def is_recording(self) -> bool:
        return bool(self._captures)

    def record(self, kind: str, **fields: Any) -> Record:
        """A record of `kind` stamped with the current time."""
        return {"type": kind, "t": round(self._clock.time(), 6), **fields}

    def start(self, first: list[Record]) -> Capture:
        """Open a capture whose first records are `first` (the snapshot taken when it starts)."""
        capture = Capture(first)
        with self._lock:
            self._captures = [*self._captures, capture]
        logger.info("capture started (%d open)", len(self._captures))
        return capture

    def stop(self, capture: Capture) -> None:
        with self._lock:
            self._captures = [c for c in self._captures if c is not capture]
        if capture.dropped:
            logger.warning("capture stopped: %d records did not fit and were dropped", capture.dropped)
        logger.info("capture stopped (%d open)", len(self._captures))

    # --- what the watcher reports ----------------------------------------------------------------

    def message(self, message: Any) -> None:
        """A WebSocket message, before the watcher handles it."""
        if self._captures:
            self._emit(self.record("message", body=message))

    def connected(self) -> None:
        """The event stream (re)connected; the resync's reads follow."""
        if self._captures:
            self._emit(self.record("connect"))

    def webhook(self, call_key: str, params: dict[str, str]) -> None:
        """A webhook event the watcher wrote to the outbox."""
        if self._captures:
            self._emit(self.record("webhook", call_key=call_key, params=dict(params)))

    def read(self, api: str, call: str, args: list[Any], kwargs: dict[str, Any], *,
             body: Any = None, error: BaseException | None = None) -> None:
        """One read of the PBX with its answer (`body`) or the error it raised."""
        if not self._captures:
            return
        fields: dict[str, Any] = {"api": api, "call": call, "args": list(args)}
        if kwargs:
            fields["kwargs"] = dict(kwargs)
        if error is not None:
            fields["error"] = {"class": type(error).__name__, "message": str(error)}
            if isinstance(getattr(error, "status", None), int):
                fields["error"]["status"] = error.status   # type: ignore[attr-defined]
        else:
            fields["body"] = body
        self._emit(self.record("read", **fields))

    def reads(self, api: str, client: Any) -> ReadTap:
        """`client` with every public method call copied to the captures (api names the client)."""
        return ReadTap(api, client, self)

    def _emit(self, record: Record) -> None:
        for capture in self._captures:
            capture.put(record)


class ReadTap:
    """A PBX client whose public method calls are reported to a Recorder; everything else passes."""

    def __init__(self, api: str, client: Any, recorder: Recorder) -> None:
        self._api = api
        self._client = client
        self._recorder = recorder

    def __getattr__(self, name: str) -> Any:
        attribute = getattr(self._client, name)
        if name.startswith("_") or not callable(attribute):
            return attribute
        return self._tapped(name, attribute)

    def _tapped(self, name: str, method: Callable[..., Any]) -> Callable[..., Any]:
        def call(*args: Any, **kwargs: Any) -> Any:
            if not self._recorder.is_recording:
                return method(*args, **kwargs)
            try:
                answer = method(*args, **kwargs)
            except Exception as exc:
                self._recorder.read(self._api, name, list(args), kwargs, error=exc)
                raise
            self._recorder.read(self._api, name, list(args), kwargs, body=answer)
            return answer

        return call
