"""Reads recordings from the PBX: XAPI `/Recordings` look-ups, downloads, and `local_dir` files.

Which leg a recording belongs to is decided elsewhere (`history_link.py` by id, `matching.py` by
what a recording shows); this module only finds and fetches (inferred, verify on a live PBX):
- XAPI: `GET /Recordings?$filter=StartTime ge <since> and (FromDn eq '<ext>' or ToDn eq '<ext>')`
  lists an extension's recordings; `by_ids` reads given ids (`Id eq a or Id eq b`).
- With `[recordings] local_dir` (the gateway on the PBX host), an XAPI recording whose
  `RecordingUrl` names a file under that folder is read from disk instead of downloaded; and when
  XAPI is refused or unreachable, WAV files under `local_dir/<ext>/` and `local_dir/` are offered
  as candidates named by the numbers in their file name, spanning their length up to their
  modification time. Those files are only ever read.
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
import wave
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Iterable, Protocol

from gateway.pbx import odata
from gateway.pbx.errors import PbxError, PbxRejected
from gateway.recordings.matching import Candidate, WantedLeg

logger = logging.getLogger(__name__)

FORBIDDEN_HINT = ("XAPI refused /Recordings (403): the API client needs the System Owner role "
                  "to read and download recordings")


@dataclass(frozen=True)
class Found:
    """One look: the recordings seen, and whether some look-up failed (so the list may be short)."""

    candidates: list[Candidate]
    is_complete: bool


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

    def look(self, dns: Iterable[str], since: datetime, legs: Iterable[WantedLeg] = ()) -> Found:
        """The recordings of extensions `dns` that started at `since` (PBX clock) or later.

        When an XAPI look-up fails and `local_dir` is set, the WAV files of `legs`' extensions
        found there are offered instead.
        """
        by_key: dict[str, Candidate] = {}
        failed: list[str] = []
        empty: list[str] = []
        for dn in sorted(set(dns)):
            try:
                rows = self._xapi.list("Recordings", filter=recordings_filter(dn, since), orderby="StartTime")
            except PbxError as exc:
                failed.append(dn)
                self._note_error(exc, dn)
                continue
            self._clear_error()
            if not rows:
                empty.append(dn)
            for row in rows:
                candidate = self._from_xapi(row)
                if candidate is not None:
                    by_key.setdefault(candidate.key, candidate)
        if (failed or empty) and self._local_dir is not None:
            for candidate in self._scan_local([leg for leg in legs if leg.dn in failed + empty]):
                by_key.setdefault(candidate.key, candidate)
        return Found(list(by_key.values()), is_complete=not failed)

    def by_ids(self, recording_ids: Iterable[int]) -> list[Candidate] | None:
        """The recordings with these ids (those the PBX still has), or None when XAPI failed."""
        ids = sorted(set(recording_ids))
        if not ids:
            return []
        try:
            rows = self._xapi.list("Recordings", filter=odata.any_of(*(odata.eq("Id", i) for i in ids)))
        except PbxError as exc:
            self._note_error(exc, "ids " + ",".join(map(str, ids)))
            return None
        self._clear_error()
        found = [c for c in map(self._from_xapi, rows) if c is not None and c.recording_id in ids]
        return sorted(found, key=lambda c: (c.start_time, c.key))

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
            key=f"rec:{row['Id']}",
            start_time=start,
            dns=tuple(str(row.get(k) or "") for k in ("FromDn", "ToDn")),
            numbers=tuple(str(row.get(k) or "") for k in ("FromCallerNumber", "ToCallerNumber")),
            recording_id=int(row["Id"]),
            path=path,
            end_time=parse_time(row.get("EndTime")),
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
                # Written until the recording ended: the modification time is its end (PBX host clock).
                ended = datetime.fromtimestamp(entry.stat().st_mtime, timezone.utc)
                started = ended - timedelta(seconds=_wav_seconds(Path(entry.path)))
                candidates.append(Candidate(key=f"file:{Path(entry.path).resolve()}", start_time=started,
                                            dns=tokens, numbers=tokens, path=Path(entry.path),
                                            end_time=ended))
        return candidates


def _wav_seconds(path: Path) -> float:
    """The length of a WAV file from its header (0 when it cannot be read)."""
    try:
        with wave.open(str(path), "rb") as handle:
            return handle.getnframes() / float(handle.getframerate() or 1)
    except (OSError, EOFError, wave.Error):
        return 0.0
