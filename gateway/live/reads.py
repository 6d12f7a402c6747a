"""Participant reads at the edge of the watcher: in parallel for different DNs, in order for one,
and one read for all the participants of a DN that are waiting together.

An Upsert carries no state: the watcher reads the participant after it (V20-API-NOTES §e). One read
at a time caps the watcher at about one event per PBX round trip; a burst of new calls then queues
behind it, and a short call is gone before its read. `ParticipantReads` runs the reads in a bounded
pool (`[pbx] read_workers`) on the shared HTTP session, so the reads of different DNs overlap.

One DN has one read under way at most, and its reads start in the order asked, so a later answer
is never older than an earlier one (a leg never seems to go back from talking to ringing). While
a DN's read is under way or waits for a worker, the reads asked for that DN gather into its next
read: one participant is read with `GET /callcontrol/{dn}/participants/{id}`, several with one
`GET /callcontrol/{dn}/participants` (documented to list the same `CallParticipant` objects;
a participant the list lacks is gone, as a 404 on its own read says). So a burst of calls to a
few extensions costs a few reads, not one per event, and each read's answer is at least as new as
every event it answers.

The answers are only handed back (as futures); the watcher applies them in the order the events
arrived, in its own thread. Nothing here touches the live model.
"""
from __future__ import annotations

import logging
import threading
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from gateway.live.ports import CallStates
from gateway.pbx.errors import PbxNotFound

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class ReadPoolStatus:
    """The read pool for /healthz and /metrics: participants waiting for a read, reads under way,
    workers, and how many participants were answered by a DN's list read since start."""

    queued: int
    running: int
    workers: int
    listed: int = 0


@dataclass
class _DnRead:
    """The next read of one DN: the participants asked for, each with the futures waiting for it."""

    dn: str
    wanted: dict[int, list[Future[dict[str, Any]]]] = field(default_factory=dict)

    @property
    def count(self) -> int:
        return sum(len(futures) for futures in self.wanted.values())


class ParticipantReads:
    """`read(dn, participant_id)` -> a Future of the participant's JSON (or of the PbxError the
    read raised; PbxNotFound when the participant is gone).

    Any thread may call `read`; the pool's threads ("participant-read-N") only do the GETs.
    """

    def __init__(self, callcontrol: CallStates, *, workers: int) -> None:
        self._callcontrol = callcontrol
        self._workers = max(1, workers)
        self._pool: ThreadPoolExecutor | None = None
        self._lock = threading.Lock()
        self._next: dict[str, _DnRead] = {}      # per DN: the read not started yet, still gathering
        self._busy: set[str] = set()             # DNs with a read under way
        self._queued = 0
        self._running = 0
        self._listed = 0

    def status(self) -> ReadPoolStatus:
        with self._lock:
            return ReadPoolStatus(queued=self._queued, running=self._running, workers=self._workers,
                                  listed=self._listed)

    def read(self, dn: str, participant_id: int) -> Future[dict[str, Any]]:
        """Read `/callcontrol/{dn}/participants/{participant_id}` in the DN's next read."""
        answer: Future[dict[str, Any]] = Future()
        with self._lock:
            if self._pool is None:
                self._pool = ThreadPoolExecutor(self._workers, thread_name_prefix="participant-read")
            self._queued += 1
            job = self._next.get(dn)
            if job is not None:                  # not started yet: this participant joins it
                job.wanted.setdefault(participant_id, []).append(answer)
                return answer
            job = self._next[dn] = _DnRead(dn, {participant_id: [answer]})
            start_now = dn not in self._busy     # else it starts when the DN's read under way ends
        if start_now:
            self._submit(job)
        return answer

    def close(self) -> None:
        """Let the reads under way finish; no new read starts a pool until the next `read`."""
        with self._lock:
            pool, self._pool = self._pool, None
        if pool is not None:
            pool.shutdown(wait=False, cancel_futures=False)

    def _submit(self, job: _DnRead) -> None:
        with self._lock:
            pool = self._pool
        try:
            if pool is None:
                raise RuntimeError("closed")
            pool.submit(self._run, job)
        except RuntimeError:          # closed or shutting down: read here rather than lose it
            self._run(job)

    def _run(self, job: _DnRead) -> None:
        with self._lock:
            if self._next.get(job.dn) is job:
                del self._next[job.dn]           # from now on, reads of the DN gather into a new job
            self._busy.add(job.dn)
            self._queued -= job.count
            self._running += 1
            if len(job.wanted) > 1:
                self._listed += job.count
        try:
            self._answer(job)
        finally:
            with self._lock:
                self._running -= 1
                self._busy.discard(job.dn)
                waiting = self._next.get(job.dn)
            if waiting is not None:
                self._submit(waiting)

    def _answer(self, job: _DnRead) -> None:
        """Do the job's GET and settle every future (an exception goes to all of them: the watcher
        decides what it means)."""
        try:
            if len(job.wanted) == 1:
                [(participant_id, futures)] = job.wanted.items()
                found = {participant_id: self._callcontrol.participant(job.dn, participant_id)}
            else:
                found = {int(listed["id"]): listed   # the client lists only the ids asked for
                         for listed in self._callcontrol.listed_participants(job.dn, sorted(job.wanted))}
        except BaseException as exc:
            for futures in job.wanted.values():
                for future in futures:
                    future.set_exception(exc)
            return
        for participant_id, futures in job.wanted.items():
            participant = found.get(participant_id)
            for future in futures:
                if participant is None:
                    future.set_exception(PbxNotFound(f"participant {job.dn}/{participant_id} is gone"))
                else:
                    future.set_result(participant)
