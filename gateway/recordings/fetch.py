"""Finds the WAV recordings of a finished call's answered legs and fetches them.

v20 has no documented link between a Call Control call and its recordings (V20-API-NOTES §f), so
recordings are found by what they show (inferred, verify on a live PBX):
- XAPI: `GET /Recordings?$filter=StartTime ge <answered - margin> and (FromDn eq '<ext>' or
  ToDn eq '<ext>')`; a recording belongs to a leg when one of its DNs is the leg's extension, one of
  its caller numbers ends like the leg's other party (when both are known) and it started inside
  the leg's time window. `matches` is the only place that decides this.
- With `[recordings] local_dir` (the gateway on the PBX host), an XAPI recording whose
  `RecordingUrl` names a file under that folder is read from disk instead of downloaded; and when
  XAPI is refused, unreachable or has nothing for a leg, WAV files under `local_dir/<ext>/` and
  `local_dir/` are accepted when their name holds the extension (and the other number, when known)
  and their modification time lies in the window. Those files are only ever read.
- Recordings appear a little after the hang-up. `Search` is the waiting policy: poll with growing
  delays until the same set is seen twice, or until `[recordings] wait_s` has passed.
Downloading needs the System Owner role on the API client: a 403 is logged as such and kept in
`status()` so the health check shows it.
"""
from __future__ import annotations

import logging
import os
import re
import threading
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Protocol

from gateway.pbx import odata
from gateway.pbx.errors import PbxError, PbxRejected

logger = logging.getLogger(__name__)

NUMBER_TAIL_DIGITS = 7       # compare numbers by their last digits: "+420774852529" ~ "774852529"
START_SLACK = timedelta(seconds=5)   # a recording may start a little before the answer we saw
FORBIDDEN_HINT = ("XAPI refused /Recordings (403): the API client needs the System Owner role "
                  "to read and download recordings")


@dataclass(frozen=True)
class WantedLeg:
    """One answered leg whose recordings are looked for; times are aware UTC datetimes."""

    leg_id: str
    dn: str                          # the extension (legacy `user`)
    numbers: tuple[str, ...]         # the other party's numbers (legacy `callerid`), may be empty
    not_before: datetime
    not_after: datetime
    answered_at: datetime | None = None

    @property
    def link(self) -> int:
        """The call-link number at the end of the leg id (`..._669-2` -> 2)."""
        tail = self.leg_id.rpartition("-")[2]
        return int(tail) if tail.isdigit() else 0


@dataclass(frozen=True)
class Candidate:
    """A recording found on the PBX or on disk; `key` identifies it across polls."""

    key: str
    start_time: datetime
    dns: tuple[str, ...]
    numbers: tuple[str, ...]
    recording_id: int | None = None
    path: Path | None = None         # a readable WAV on this host, else download `recording_id`


def _digits(value: str) -> str:
    return re.sub(r"[^0-9]", "", value or "")


def _numbers_agree(ours: tuple[str, ...], theirs: tuple[str, ...]) -> bool:
    wanted = [d[-NUMBER_TAIL_DIGITS:] for d in map(_digits, ours) if d]
    seen = [d for d in map(_digits, theirs) if d]
    if not wanted or not seen:
        return True                  # nothing to compare: the DN and time window decide
    return any(s.endswith(w) or w.endswith(s[-NUMBER_TAIL_DIGITS:]) for w in wanted for s in seen)


def matches(candidate: Candidate, leg: WantedLeg) -> bool:
    """Whether a recording belongs to a leg: same extension, other number agrees, time in window."""
    return (leg.dn in candidate.dns
            and leg.not_before <= candidate.start_time <= leg.not_after
            and _numbers_agree(leg.numbers, candidate.numbers))


def assign(candidates: list[Candidate], legs: list[WantedLeg]) -> dict[str, list[Candidate]]:
    """Give each recording to one leg it matches; each leg's files in start-time order.

    When several legs match (a transfer chain that visits the same extension twice), the file goes
    to the leg answered last before it started; without answer times, to the lowest link number.
    """
    result: dict[str, list[Candidate]] = {leg.leg_id: [] for leg in legs}
    ordered = sorted(legs, key=lambda leg: (leg.link, leg.leg_id))
    for candidate in sorted(candidates, key=lambda c: (c.start_time, c.key)):
        matching = [leg for leg in ordered if matches(candidate, leg)]
        if not matching:
            continue
        started = [leg for leg in matching
                   if leg.answered_at and leg.answered_at - START_SLACK <= candidate.start_time]
        chosen = max(started, key=_answered_at) if started else matching[0]
        result[chosen.leg_id].append(candidate)
    return result


def _answered_at(leg: WantedLeg) -> datetime:
    return leg.answered_at or datetime.min.replace(tzinfo=timezone.utc)


def recordings_filter(dn: str, not_before: datetime) -> str:
    """The XAPI $filter for one extension's recordings that started after `not_before`."""
    return odata.all_of(odata.ge("StartTime", not_before),
                        odata.any_of(odata.eq("FromDn", dn), odata.eq("ToDn", dn)))


def parse_time(value: str | None) -> datetime | None:
    """An XAPI date-time (`2025-03-01T10:15:30.1234567Z`) as an aware UTC datetime, or None."""
    if not value:
        return None
    value = re.sub(r"(\.\d{6})\d+", r"\1", value.strip())
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=timezone.utc)
    return parsed.astimezone(timezone.utc)


@dataclass
class Search:
    """Waiting for one call's recordings: when to look next and when to give up (epoch seconds)."""

    legs: list[WantedLeg]
    started_at: float
    wait_s: float
    poll_s: float = 1.0
    settle_s: float = 1.5
    max_poll_s: float = 10.0
    due_at: float = 0.0
    polls: int = 0
    keys: frozenset[str] = frozenset()
    found: dict[str, list[Candidate]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.due_at = self.due_at or self.started_at

    @property
    def deadline(self) -> float:
        return self.started_at + self.wait_s

    def record(self, found: dict[str, list[Candidate]], now: float) -> bool:
        """Note one poll's result; True when the search is over (stable, or out of time)."""
        self.polls += 1
        keys = frozenset(c.key for files in found.values() for c in files)
        is_stable = bool(keys) and keys == self.keys
        if keys:
            self.found = found
        self.keys = keys or self.keys
        if is_stable or now >= self.deadline:
            return True
        if keys:
            delay = self.settle_s
        else:
            delay = min(self.poll_s * 2 ** (self.polls - 1), self.max_poll_s)
        self.due_at = min(now + delay, self.deadline)
        return False


@dataclass(frozen=True)
class FetcherStatus:
    """The outcome of the last XAPI look-up: its error, and whether it was a missing role (403)."""

    last_error: str | None
    is_forbidden: bool


class RecordingStore(Protocol):
    """The XAPI reads the fetcher needs (`XapiClient`; tests hand in a stand-in)."""

    def list(self, entity_set: str, *, filter: str | None = None,
             orderby: str | None = None) -> list[dict[str, Any]]: ...

    def download(self, path: str) -> bytes: ...


class RecordingFetcher:
    """Looks up recordings through XAPI (and `local_dir`) and produces WAV files to convert."""

    def __init__(self, xapi: RecordingStore, *, local_dir: str | os.PathLike[str] = "") -> None:
        self._xapi = xapi
        self._local_dir = Path(local_dir) if str(local_dir) else None
        self._lock = threading.Lock()
        self._last_error: str | None = None
        self._is_forbidden = False

    def find(self, legs: list[WantedLeg]) -> dict[str, list[Candidate]]:
        """One look for the recordings of a call's legs: leg id -> files by start time."""
        by_key: dict[str, Candidate] = {}
        failed = False
        for dn in sorted({leg.dn for leg in legs}):
            not_before = min(leg.not_before for leg in legs if leg.dn == dn)
            try:
                rows = self._xapi.list("Recordings", filter=recordings_filter(dn, not_before),
                                       orderby="StartTime")
            except PbxError as exc:
                failed = True
                self._note_error(exc, dn)
                continue
            self._clear_error()
            for row in rows:
                candidate = self._from_xapi(row)
                if candidate is not None:
                    by_key.setdefault(candidate.key, candidate)
        found = assign(list(by_key.values()), legs)
        if self._local_dir is not None:
            short = [leg for leg in legs if failed or not found[leg.leg_id]]
            if short:
                local = assign(self._scan_local(short), short)
                for leg_id, files in local.items():
                    found[leg_id] = found[leg_id] or files
        return found

    def fetch(self, candidate: Candidate, work_dir: Path) -> Path:
        """A WAV file holding `candidate`: the local file itself, or a download into `work_dir`."""
        if candidate.path is not None:
            return candidate.path
        data = self._xapi.download(f"/Recordings/Pbx.DownloadRecording(recId={candidate.recording_id})")
        target = work_dir / f"{candidate.recording_id}.wav"
        target.write_bytes(data)
        return target

    def status(self) -> FetcherStatus:
        """The error and 403 flag of the last XAPI look-up."""
        with self._lock:
            return FetcherStatus(last_error=self._last_error, is_forbidden=self._is_forbidden)

    # --- helpers ------------------------------------------------------------------------------

    def _note_error(self, exc: PbxError, dn: str) -> None:
        is_forbidden = isinstance(exc, PbxRejected) and exc.status == 403
        message = FORBIDDEN_HINT if is_forbidden else f"looking up recordings failed: {exc}"
        with self._lock:
            is_new = message != self._last_error
            self._last_error = message
            self._is_forbidden = is_forbidden
        if is_new:
            logger.error("recordings of %s: %s", dn, message)
        else:
            logger.debug("recordings of %s: %s", dn, message)

    def _clear_error(self) -> None:
        with self._lock:
            if self._last_error is not None:
                logger.info("recordings: XAPI look-ups work again")
            self._last_error = None
            self._is_forbidden = False

    def _from_xapi(self, row: dict[str, Any]) -> Candidate | None:
        start = parse_time(row.get("StartTime"))
        if start is None or row.get("Id") is None:
            return None
        path = self._local_file(row.get("RecordingUrl") or "")
        return Candidate(
            key=f"file:{path}" if path else f"xapi:{row['Id']}",
            start_time=start,
            dns=tuple(str(row.get(k) or "") for k in ("FromDn", "ToDn")),
            numbers=tuple(str(row.get(k) or "") for k in ("FromCallerNumber", "ToCallerNumber")),
            recording_id=int(row["Id"]),
            path=path,
        )

    def _local_file(self, relative: str) -> Path | None:
        """`local_dir/<RecordingUrl>` when that is an existing file inside `local_dir`."""
        if self._local_dir is None or not relative:
            return None
        root = self._local_dir.resolve()
        path = (root / relative.replace("\\", "/").lstrip("/")).resolve()
        if root not in path.parents or not path.is_file():
            return None
        return path

    def _scan_local(self, legs: list[WantedLeg]) -> list[Candidate]:
        candidates: list[Candidate] = []
        if self._local_dir is None:
            return candidates
        folders = {self._local_dir} | {self._local_dir / leg.dn for leg in legs}
        for folder in sorted(folders):
            try:
                entries = list(os.scandir(folder))
            except OSError:
                continue
            for entry in entries:
                if not entry.name.lower().endswith(".wav") or not entry.is_file(follow_symlinks=False):
                    continue
                tokens = tuple(t for t in re.split(r"[^0-9+]+", entry.name) if t)
                mtime = datetime.fromtimestamp(entry.stat().st_mtime, timezone.utc)
                candidates.append(Candidate(key=f"file:{Path(entry.path).resolve()}", start_time=mtime,
                                            dns=tokens, numbers=tokens, path=Path(entry.path)))
        return candidates
