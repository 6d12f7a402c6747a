"""Participant reads at the edge of the watcher: in parallel for different participants, in order for one.

An Upsert carries no state: the watcher reads the participant after it (V20-API-NOTES §e). One read
at a time caps the watcher at about one event per PBX round trip; a burst of new calls then queues
behind it, and a short call is gone before its read. `ParticipantReads` runs the reads in a bounded
pool (`[pbx] read_workers`) on the shared HTTP session, so the reads of a burst overlap. Two reads
of the same participant never overlap and start in the order asked: the later one's answer is never
older than the earlier one's, so a leg never seems to go back from talking to ringing.

The answers are only handed back (as futures); the watcher applies them in the order the events
arrived, in its own thread. Nothing here touches the live model.
"""
from __future__ import annotations

import logging
import threading
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from gateway.live.ports import CallStates

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class ReadPoolStatus:
    """The read pool for /healthz and /metrics: reads waiting for a worker, reads under way, workers."""

    queued: int
    running: int
    workers: int


class ParticipantReads:
    """`read(dn, participant_id)` -> a Future of the participant's JSON (or of the PbxError it raised).

    Any thread may call `read`; the pool's threads ("participant-read-N") only do the GET.
    """

    def __init__(self, callcontrol: CallStates, *, workers: int) -> None:
        self._callcontrol = callcontrol
        self._workers = max(1, workers)
        self._pool: ThreadPoolExecutor | None = None
        self._lock = threading.Lock()
        self._last: dict[tuple[str, int], Future[dict[str, Any]]] = {}
        self._queued = 0
        self._running = 0

    def status(self) -> ReadPoolStatus:
        with self._lock:
            return ReadPoolStatus(queued=self._queued, running=self._running, workers=self._workers)

    def read(self, dn: str, participant_id: int) -> Future[dict[str, Any]]:
        """Read `/callcontrol/{dn}/participants/{participant_id}` after any earlier read of it."""
        key = (dn, participant_id)
        answer: Future[dict[str, Any]] = Future()
        with self._lock:
            if self._pool is None:
                self._pool = ThreadPoolExecutor(self._workers, thread_name_prefix="participant-read")
            earlier = self._last.get(key)
            self._last[key] = answer
            self._queued += 1
        if earlier is None or earlier.done():
            self._submit(key, answer)
        else:
            earlier.add_done_callback(lambda _done: self._submit(key, answer))
        return answer

    def close(self) -> None:
        """Let the reads under way finish; no new read starts a pool until the next `read`."""
        with self._lock:
            pool, self._pool = self._pool, None
        if pool is not None:
            pool.shutdown(wait=False, cancel_futures=False)

    def _submit(self, key: tuple[str, int], answer: Future[dict[str, Any]]) -> None:
        with self._lock:
            pool = self._pool
        try:
            if pool is None:
                raise RuntimeError("closed")
            pool.submit(self._run, key, answer)
        except RuntimeError:          # closed or shutting down: read here rather than lose it
            self._run(key, answer)

    def _run(self, key: tuple[str, int], answer: Future[dict[str, Any]]) -> None:
        with self._lock:
            self._queued -= 1
            self._running += 1
        try:
            answer.set_result(self._callcontrol.participant(*key))
        except BaseException as exc:   # handed to the watcher, which decides (PbxNotFound: gone)
            answer.set_exception(exc)
        finally:
            with self._lock:
                self._running -= 1
                if self._last.get(key) is answer:
                    del self._last[key]
