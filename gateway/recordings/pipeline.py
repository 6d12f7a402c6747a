"""The recording pipeline: after a call ends, find each answered leg's WAVs, convert, post FILES.

Threads (started by `start()`, all daemon, stopped by `stop(timeout_s)`):
- "recordings": takes ended calls from a queue and polls for their recordings (`fetch.Search`),
  so the watcher thread that calls `call_ended` never waits;
- "recordings-leg" (`workers` of them): fetch one leg's WAVs, convert each through the
  `ConversionPool` to `<leg id>-<n>.mp3` in `[recordings] mp3_dir`, then queue the FILES webhook;
- "ffmpeg" (`workers`): the conversion pool itself.

The FILES webhook, one per leg with at least one converted file, always a JSON POST (003_*.txt):
    {"FILES": ["<public_url>/webapi/recording/<leg id>-1.mp3?exp=..&sig=..", ...], "id": "<leg id>"}
with `[webhooks] recording_full_info = true` followed by every call-end field of that leg.
It goes through the outbox under the call's key, so it is sent after that call's end webhooks.
With `[recordings] enabled = false` nothing happens; with an empty `[webhooks] url` files are still
converted and served, but no webhook is queued.
"""
from __future__ import annotations

import logging
import queue
import shutil
import tempfile
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Iterable

from gateway.clock import Clock
from gateway.config import Config
from gateway.live.model import Call
from gateway.live.ports import WebhookSink
from gateway.live.webhooks import CallEnded, FilesReady
from gateway.pbx.errors import PbxError
from gateway.recordings.convert import ConversionPool
from gateway.recordings.fetch import Candidate, RecordingFetcher, RecordingStore, Search, WantedLeg
from gateway.recordings.links import RecordingLinks
from gateway.recordings.names import is_valid_leg_id, mp3_name

logger = logging.getLogger(__name__)

MARGIN_S = 60.0              # recordings may start this much before the answer time we know of
CONVERT_TIMEOUT_S = 600.0    # one ffmpeg run; a two-hour call converts in well under a minute
DOWNLOAD_ATTEMPTS = 3
_WORK_PREFIX = ".incoming-"  # hidden download folders inside mp3_dir; never a valid MP3 name
_IDLE_WAIT_S = 0.25          # upper bound of one loop wait, so an injected clock is re-read


@dataclass
class _CallJob:
    """One ended call: its legs to look for and the end events that name them."""

    search: Search
    events: dict[str, CallEnded]     # leg id -> its CallEnded event


@dataclass(frozen=True)
class PipelineStatus:
    """State for /healthz and /metrics; `last_error` names a missing System Owner role.

    pending: calls still waiting for recordings; converted / failed: files since start;
    posted: FILES webhooks queued; missing: answered legs whose recording never appeared.
    """

    enabled: bool
    posting: bool
    pending: int
    posted: int
    missing: int
    converted: int
    failed: int
    last_error: str | None
    is_forbidden: bool


class RecordingPipeline:
    """Turns ended calls into MP3 files and FILES webhooks; see the module docstring."""

    def __init__(self, config: Config, xapi: RecordingStore, outbox: WebhookSink, *, clock: Clock, poll_s: float = 1.0,
                 settle_s: float = 1.5, margin_s: float = MARGIN_S,
                 convert_timeout_s: float = CONVERT_TIMEOUT_S, retry_delay_s: float = 1.0) -> None:
        settings = config.recordings
        self.is_enabled = bool(settings.enabled)
        self.is_posting = self.is_enabled and bool(config.targets)
        self.is_full_info = bool(config.webhooks.recording_full_info)
        self.mp3_dir = Path(settings.mp3_dir)
        self.wait_s = float(settings.wait_s)
        self.links = RecordingLinks.from_config(config)
        self._has_public_url = bool(config.webapi.public_url)
        self.fetcher = RecordingFetcher(xapi, local_dir=settings.local_dir)
        self.pool = ConversionPool(settings.workers, convert_timeout_s, bitrate=settings.bitrate,
                                   retry_delay_s=retry_delay_s)
        self._outbox = outbox
        self._clock = clock
        self._poll_s = poll_s
        self._settle_s = settle_s
        self._retry_delay_s = retry_delay_s
        self._margin = timedelta(seconds=margin_s)
        self._inbox: queue.Queue[_CallJob] = queue.Queue()
        self._legs = ThreadPoolExecutor(max_workers=settings.workers, thread_name_prefix="recordings-leg")
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self._waiting = 0
        self._counts = {"posted": 0, "missing": 0, "converted": 0, "failed": 0}
        self._last_error: str | None = None

    # --- called by other threads --------------------------------------------------------------

    def call_ended(self, call: Call, ended_events: Iterable[CallEnded]) -> None:
        """Queue the recordings of a call that has completely ended (the watcher thread calls this).

        `ended_events` are the CallEnded events of its answered legs. Returns at once; unanswered or
        id-less events are ignored.
        """
        if not self.is_enabled or self._stop.is_set():
            return
        now = self._clock.now()
        legs: list[WantedLeg] = []
        events: dict[str, CallEnded] = {}
        for event in ended_events:
            if not event.is_answered:
                continue
            leg = self._wanted_leg(call, event, now)
            if leg is not None:
                legs.append(leg)
                events[leg.leg_id] = event
        if not legs:
            return
        search = Search(legs, started_at=self._clock.time(), wait_s=self.wait_s, poll_s=self._poll_s,
                        settle_s=self._settle_s)
        with self._lock:
            self._waiting += 1
        self._inbox.put(_CallJob(search, events))
        logger.debug("call %s: waiting for recordings of %s", call.v20_call_id,
                     ", ".join(events))

    def start(self) -> None:
        """Start the search thread (the leg and ffmpeg threads start on demand)."""
        if self._thread is not None or not self.is_enabled:
            return
        self._remove_leftovers()
        if self.is_posting and not self._has_public_url:
            logger.warning("[webapi] public_url is empty: recording links will use %s, which CRMs "
                           "outside this host may not reach", self.links.base_url)
        self._thread = threading.Thread(target=self._run, name="recordings", daemon=True)
        self._thread.start()

    def stop(self, timeout_s: float) -> None:
        """Stop looking, let running conversions finish within `timeout_s`, drop the rest."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout_s)
        self._legs.shutdown(wait=False, cancel_futures=True)
        self.pool.stop(timeout_s)

    def status(self) -> PipelineStatus:
        """State for /healthz and /metrics (see PipelineStatus)."""
        fetch = self.fetcher.status()
        with self._lock:
            return PipelineStatus(enabled=self.is_enabled, posting=self.is_posting, pending=self._waiting,
                                  posted=self._counts["posted"], missing=self._counts["missing"],
                                  converted=self._counts["converted"], failed=self._counts["failed"],
                                  last_error=fetch.last_error or self._last_error,
                                  is_forbidden=fetch.is_forbidden)

    # --- the "recordings" thread --------------------------------------------------------------

    def _run(self) -> None:
        searching: list[_CallJob] = []
        while not self._stop.is_set():
            try:
                self._drain_inbox(searching, block=not searching)
                now = self._clock.time()
                for job in [j for j in searching if j.search.due_at <= now]:
                    if self._poll(job, now):
                        searching.remove(job)
                if searching:
                    next_due = min(j.search.due_at for j in searching)
                    self._stop.wait(max(0.0, min(next_due - self._clock.time(), _IDLE_WAIT_S)))
            except Exception:  # one bad call must not end the thread
                logger.exception("recordings: unexpected error in the search loop")
                self._stop.wait(1.0)

    def _drain_inbox(self, searching: list[_CallJob], *, block: bool) -> None:
        try:
            if block:
                searching.append(self._inbox.get(timeout=_IDLE_WAIT_S))
            while True:
                searching.append(self._inbox.get_nowait())
        except queue.Empty:
            pass

    def _poll(self, job: _CallJob, now: float) -> bool:
        search = job.search
        is_over = search.record(self.fetcher.find(search.legs), now)
        if not is_over:
            return False
        with self._lock:
            self._waiting -= 1
        for leg in search.legs:
            files = search.found.get(leg.leg_id, [])
            if not files:
                with self._lock:
                    self._counts["missing"] += 1
                logger.info("leg %s: no recording of %s appeared within %gs", leg.leg_id, leg.dn,
                            self.wait_s)
                continue
            self._legs.submit(self._finish_leg, leg, files, job.events[leg.leg_id])
        return True

    # --- a "recordings-leg" thread ------------------------------------------------------------

    def _finish_leg(self, leg: WantedLeg, files: list[Candidate], event: CallEnded) -> None:
        try:
            names = self._convert_leg(leg, files)
            if names and self.is_posting:
                self._post(leg, names, event)
        except Exception as exc:
            self._note_error(f"leg {leg.leg_id}: {exc}")
            logger.exception("leg %s: recording pipeline failed", leg.leg_id)

    def _convert_leg(self, leg: WantedLeg, files: list[Candidate]) -> list[str]:
        self.mp3_dir.mkdir(parents=True, exist_ok=True)
        # Downloads go to a hidden folder beside the MP3s: same file system, already writable.
        work_dir = Path(tempfile.mkdtemp(prefix=_WORK_PREFIX, dir=self.mp3_dir))
        names: list[str] = []
        try:
            for n, candidate in enumerate(files, start=1):
                name = mp3_name(leg.leg_id, n)
                wav = self._fetch(leg, candidate, work_dir)
                result = self.pool.convert(wav, self.mp3_dir / name, leg_id=leg.leg_id) if wav else None
                with self._lock:
                    self._counts["converted" if result and result.is_ok else "failed"] += 1
                if result and result.is_ok:
                    names.append(name)
                elif result:
                    self._note_error(f"leg {leg.leg_id}: {result.error}")
        finally:
            shutil.rmtree(work_dir, ignore_errors=True)
        return names

    def _fetch(self, leg: WantedLeg, candidate: Candidate, work_dir: Path) -> Path | None:
        for attempt in range(1, DOWNLOAD_ATTEMPTS + 1):
            try:
                return self.fetcher.fetch(candidate, work_dir)
            except (PbxError, OSError) as exc:
                logger.warning("leg %s: fetching recording %s failed (attempt %s of %s): %s",
                               leg.leg_id, candidate.key, attempt, DOWNLOAD_ATTEMPTS, exc)
                if self._stop.wait(self._retry_delay_s * attempt):
                    break
        self._note_error(f"leg {leg.leg_id}: could not fetch recording {candidate.key}")
        logger.error("leg %s: could not fetch recording %s", leg.leg_id, candidate.key)
        return None

    def _post(self, leg: WantedLeg, names: list[str], event: CallEnded) -> None:
        now = self._clock.time()
        body: dict[str, Any] = {"FILES": [self.links.url(name, now) for name in names],
                                "id": leg.leg_id}
        if self.is_full_info:
            body.update({k: v for k, v in event.params().items() if k not in body})
        event_ids = self._outbox.publish(FilesReady(event.call_key, body, getattr(event, "facts", None)))
        with self._lock:
            self._counts["posted"] += 1
        logger.info("leg %s: FILES webhook %s queued with %s file(s)", leg.leg_id, ",".join(event_ids), len(names))

    # --- helpers ------------------------------------------------------------------------------

    def _wanted_leg(self, call: Call, event: CallEnded, now: datetime) -> WantedLeg | None:
        leg_id = event.id
        dn = event.dn or event.user
        if not is_valid_leg_id(leg_id) or not dn:
            logger.warning("call end event without a usable id/user, no recording: %r", leg_id)
            return None
        answered_at = _aware(event.answered_at)
        if answered_at is None:
            answered = [leg.answered_at for leg in call.legs if leg.dn == dn and leg.answered_at]
            answered_at = _aware(min(answered) if answered else None)
        since = answered_at or _aware(call.answered_at) or _aware(call.arrived_at) or now
        ended_at = _aware(event.ended_at) or now
        numbers = (event.callerid,) if event.callerid else ()
        return WantedLeg(leg_id, dn, numbers, since - self._margin, max(ended_at, now) + self._margin,
                         answered_at)

    def _remove_leftovers(self) -> None:
        """Delete download folders a killed process left behind (never anything else)."""
        try:
            leftovers = [p for p in self.mp3_dir.glob(f"{_WORK_PREFIX}*") if p.is_dir() and not p.is_symlink()]
        except OSError:
            return
        for folder in leftovers:
            shutil.rmtree(folder, ignore_errors=True)
            logger.info("recordings: removed leftover download folder %s", folder)

    def _note_error(self, message: str) -> None:
        with self._lock:
            self._last_error = message


def _aware(moment: datetime | None) -> datetime | None:
    if moment is None:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)
