"""The recording pipeline: after a call ends, find each answered leg's WAVs, convert, post FILES.

Which recordings are a leg's (the README's "Recordings" section says the same for admins):
1. the call history (a `CallHistoryLink`; Services gives `HistoryRecordingLink`): the recording
   ids of the call's rows (`history_link.py`); asked until it lists the call, for at most half of
   `[recordings] wait_s`;
2. otherwise, or when the history cannot be read, a `/Recordings` search (`matching.py`): same
   extension and number, within the leg's own answered..ended span on the PBX's clock (offset
   measured by `PbxClock`) give or take `[recordings] match_tolerance_s`, matched against every
   leg the pipeline knows of, not only this call's, so neighbouring calls never share a file;
   a recording that more than one leg could claim is logged and left out.
Either way, a recording is claimed in the ledger (SQLite, `[storage] state_dir`) for its leg before
it is announced, and one claimed for a leg is never offered to another, across restarts too.

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
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterable

from gateway.clock import Clock
from gateway.config import Config
from gateway.live.model import Call
from gateway.live.ports import WebhookSink
from gateway.live.webhooks import CallEnded, FilesReady
from gateway.pbx.clock import PbxClock
from gateway.pbx.errors import PbxError
from gateway.recordings.convert import ConversionPool
from gateway.recordings.fetch import RecordingFetcher, RecordingStore, Search
from gateway.recordings.history_link import CallHistoryLink, HistoryUnavailable
from gateway.recordings.ledger import LedgerError, RecordingLedger, ledger_path
from gateway.recordings.links import RecordingLinks
from gateway.recordings.matching import Ambiguous, Candidate, WantedLeg, assign, search_since
from gateway.recordings.names import is_valid_leg_id, mp3_name

logger = logging.getLogger(__name__)

CONVERT_TIMEOUT_S = 600.0    # one ffmpeg run; a two-hour call converts in well under a minute
DOWNLOAD_ATTEMPTS = 3
_WORK_PREFIX = ".incoming-"  # hidden download folders inside mp3_dir; never a valid MP3 name
_IDLE_WAIT_S = 0.25          # upper bound of one loop wait, so an injected clock is re-read


@dataclass
class _CallJob:
    """One ended call: its legs to look for and the end events that name them."""

    call: Call
    search: Search
    events: dict[str, CallEnded]     # leg id -> its CallEnded event
    is_searching: bool = False   # False: asking the call history; True: searching /Recordings
    ambiguous: list[Ambiguous] = field(default_factory=list)


@dataclass(frozen=True)
class PipelineStatus:
    """State for /healthz and /metrics; `last_error` names a missing System Owner role.

    pending: calls still waiting for recordings; converted / failed: files since start;
    posted: FILES webhooks queued; missing: answered legs whose recording never appeared;
    ambiguous: recordings left out because more than one leg could claim them;
    pbx_clock_offset_s: the PBX's clock minus ours (None before the first PBX answer).
    """

    enabled: bool
    posting: bool
    pending: int
    posted: int
    missing: int
    converted: int
    failed: int
    ambiguous: int
    last_error: str | None
    is_forbidden: bool
    pbx_clock_offset_s: float | None


class KnownLegs:
    """Every leg handed to the pipeline lately, so that each call's search sees its neighbours."""

    def __init__(self, keep_s: float) -> None:
        self._keep_s = keep_s
        self._legs: dict[str, tuple[WantedLeg, float]] = {}
        self._lock = threading.Lock()

    def add(self, legs: Iterable[WantedLeg], now: float) -> None:
        with self._lock:
            for leg in legs:
                self._legs[leg.leg_id] = (leg, now)
            self._legs = {k: v for k, v in self._legs.items() if now - v[1] <= self._keep_s}

    def on(self, dns: Iterable[str]) -> list[WantedLeg]:
        """The known legs of extensions `dns`."""
        wanted = set(dns)
        with self._lock:
            return [leg for leg, _ in self._legs.values() if leg.dn in wanted]


class RecordingPipeline:
    """Turns ended calls into MP3 files and FILES webhooks; see the module docstring."""

    def __init__(self, config: Config, xapi: RecordingStore, outbox: WebhookSink, *, clock: Clock,
                 pbx_clock: PbxClock | None = None,
                 history: CallHistoryLink | None = None, poll_s: float = 1.0, settle_s: float = 1.5,
                 convert_timeout_s: float = CONVERT_TIMEOUT_S, retry_delay_s: float = 1.0) -> None:
        settings = config.recordings
        self.is_enabled = bool(settings.enabled)
        self.is_posting = self.is_enabled and bool(config.targets)
        self.is_full_info = bool(config.webhooks.recording_full_info)
        self.mp3_dir = Path(settings.mp3_dir)
        self.wait_s = float(settings.wait_s)
        self.tolerance_s = float(settings.match_tolerance_s)
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
        self.pbx_clock = pbx_clock or PbxClock(clock=clock)
        self.ledger = RecordingLedger(ledger_path(config.storage.state_dir), clock=clock)
        self._history = history
        # A leg stays known while searches that started around its end can still be running.
        self._known = KnownLegs(keep_s=2 * self.wait_s + 300)
        self._has_warned_clock = False
        self._reported_ambiguous: dict[str, None] = {}   # recordings already logged as ambiguous
        self._inbox: queue.Queue[_CallJob] = queue.Queue()
        self._legs = ThreadPoolExecutor(max_workers=settings.workers, thread_name_prefix="recordings-leg")
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self._waiting = 0
        self._counts = {"posted": 0, "missing": 0, "converted": 0, "failed": 0, "ambiguous": 0}
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
        self._known.add(legs, self._clock.time())
        with self._lock:
            self._waiting += 1
        self._inbox.put(_CallJob(call, search, events, is_searching=self._history is None))
        logger.debug("call %s: waiting for recordings of %s", call.v20_call_id,
                     ", ".join(events))

    def start(self) -> None:
        """Start the search thread (the leg and ffmpeg threads start on demand)."""
        if self._thread is not None or not self.is_enabled:
            return
        self._remove_leftovers()
        try:
            pruned = self.ledger.prune()
            if pruned:
                logger.info("recordings: forgot %d old ledger entries", pruned)
        except LedgerError as exc:
            logger.error("recordings: %s", exc)
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
        offset = self.pbx_clock.offset()
        with self._lock:
            return PipelineStatus(enabled=self.is_enabled, posting=self.is_posting, pending=self._waiting,
                                  posted=self._counts["posted"], missing=self._counts["missing"],
                                  converted=self._counts["converted"], failed=self._counts["failed"],
                                  ambiguous=self._counts["ambiguous"],
                                  last_error=fetch.last_error or self._last_error,
                                  is_forbidden=fetch.is_forbidden,
                                  pbx_clock_offset_s=round(offset.offset_s, 2) if offset.samples else None)

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
        found: dict[str, list[Candidate]] | None = None
        is_over = False
        if not job.is_searching:
            found, is_complete = self._look_in_history(job, now)
            if found is not None and not is_complete and now < search.deadline:
                search.polls += 1             # listed, but not every recording is readable yet
                search.due_at = min(now + self._settle_s, search.deadline)
                return False
            if found is not None:             # the history's word is final: no need to settle
                search.polls += 1
                search.found, is_over = found, True
        if found is None and job.is_searching:
            found = self._look_by_search(job)
        if found is None:                     # the history does not list the call yet
            search.polls += 1
            search.due_at = min(now + min(self._poll_s * 2 ** (search.polls - 1), search.max_poll_s),
                                self._history_deadline(search))
            return False
        if not (is_over or search.record(found, now)):
            return False
        with self._lock:
            self._waiting -= 1
        for item in job.ambiguous:
            with self._lock:
                if item.candidate.key in self._reported_ambiguous:
                    continue          # the other claimant's search reported it already
                self._reported_ambiguous[item.candidate.key] = None
                while len(self._reported_ambiguous) > 10_000:
                    del self._reported_ambiguous[next(iter(self._reported_ambiguous))]
                self._counts["ambiguous"] += 1
            logger.warning("recording %s (started %s) could belong to legs %s: left out rather than guessed",
                           item.candidate.recording_id or item.candidate.key,
                           item.candidate.start_time.isoformat(), ", ".join(item.leg_ids))
        for leg in search.legs:
            files = self._claim(leg, search.found.get(leg.leg_id, []))
            if not files:
                with self._lock:
                    self._counts["missing"] += 1
                logger.info("leg %s: no recording of %s appeared within %gs", leg.leg_id, leg.dn,
                            self.wait_s)
                continue
            self._legs.submit(self._finish_leg, leg, files, job.events[leg.leg_id])
        return True

    def _history_deadline(self, search: Search) -> float:
        return search.started_at + search.wait_s / 2

    def _look_in_history(self, job: _CallJob, now: float) -> tuple[dict[str, list[Candidate]] | None, bool]:
        """(the call's recordings by id from its history rows, whether all of them could be read);
        (None, False) while the call is not listed.

        Switches the job to searching when the history cannot be read or has not listed the call
        within half of `wait_s`.
        """
        assert self._history is not None
        try:
            answer = self._history.recordings_of(job.call, job.search.legs)
        except HistoryUnavailable as exc:
            logger.warning("call %s: call history unavailable (%s); searching /Recordings instead",
                           job.call.v20_call_id, exc)
            job.is_searching = True
            return None, False
        if answer is None:
            if now >= self._history_deadline(job.search):
                logger.info("call %s: not in the call history after %gs; searching /Recordings instead",
                            job.call.v20_call_id, self.wait_s / 2)
                job.is_searching = True
            return None, False
        wanted = {rec_id for ids in answer.by_leg.values() for rec_id in ids}
        candidates = self.fetcher.by_ids(wanted)
        if candidates is None:
            return {}, False
        by_id = {c.recording_id: c for c in candidates}
        found = {leg.leg_id: sorted((by_id[i] for i in answer.by_leg.get(leg.leg_id, ()) if i in by_id),
                                    key=lambda c: (c.start_time, c.key))
                 for leg in job.search.legs}
        return found, wanted <= set(by_id)

    def _look_by_search(self, job: _CallJob) -> dict[str, list[Candidate]]:
        """This call's recordings by extension, number and span, against every known leg."""
        offset = self.pbx_clock.offset()
        if offset.samples == 0 and not self._has_warned_clock:
            self._has_warned_clock = True
            logger.warning("recordings: the PBX sent no Date header yet; taking its clock to agree with ours")
        legs = job.search.legs
        dns = {leg.dn for leg in legs}
        found = self.fetcher.look(dns, search_since(legs, offset, self.tolerance_s), legs)
        ours = {leg.leg_id for leg in legs}
        try:
            owners = self.ledger.claimed_by(k for c in found.candidates for k in c.keys)
        except LedgerError as exc:       # without the ledger nothing is announced: wait for it
            self._note_error(str(exc))
            logger.error("recordings of %s: %s", ", ".join(sorted(ours)), exc)
            return {leg.leg_id: [] for leg in legs}
        kept: dict[str, list[Candidate]] = {leg.leg_id: [] for leg in legs}
        pool: list[Candidate] = []
        for candidate in found.candidates:
            claimants = {owners[k] for k in candidate.keys if k in owners}
            if not claimants:
                pool.append(candidate)
            elif claimants <= ours and len(claimants) == 1:
                kept[claimants.pop()].append(candidate)   # claimed before for one of ours (a re-run)
        result = assign(pool, self._known.on(dns), offset, self.tolerance_s)
        job.ambiguous = [a for a in result.ambiguous if ours & set(a.leg_ids)]
        return {leg_id: sorted(files + result.by_leg.get(leg_id, []), key=lambda c: (c.start_time, c.key))
                for leg_id, files in kept.items()}

    def _claim(self, leg: WantedLeg, files: list[Candidate]) -> list[Candidate]:
        """The files of `files` now claimed for `leg` in the ledger (those another leg has are left out)."""
        claimed: list[Candidate] = []
        for candidate in files:
            try:
                is_ours = self.ledger.claim(candidate.keys, leg.leg_id)
            except LedgerError as exc:
                self._note_error(str(exc))
                logger.error("leg %s: %s; recording %s not announced", leg.leg_id, exc, candidate.key)
                continue
            if is_ours:
                claimed.append(candidate)
            else:
                logger.warning("leg %s: recording %s was already announced for another leg; left out",
                               leg.leg_id, candidate.key)
        return claimed

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
        ended_at = _aware(event.ended_at) or _aware(call.ended_at) or now
        numbers = (event.callerid,) if event.callerid else ()
        return WantedLeg(leg_id, dn, numbers, since, max(ended_at, since), v20_call_id=call.v20_call_id)

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
