"""v20's call history in our own words: the only module that reads `Pbx.CallLogData` rows.

`GET /ReportCallLogData/Pbx.GetCallLogData(...)` (XapiClient.call_log) answers one row per party
of each finished call. Here a row becomes a `HistorySegment` and the rows of one call a
`HistoryCall`; `CallHistory.calls(since, until)` does both over the XAPI. `KnownCall` and
`match_calls()` pair history calls with calls the gateway knows, by DNs, numbers and time: never by
`CallId`, which is 1 on every V20 row. Users of this module (gap recovery, recordings, transfer
reconciliation) take `HistoryCall.recording_ids` / `HistorySegment.recording_ids` for the
`/Recordings` ids of a call or one party.

Use:

    history = CallHistory(xapi)                         # xapi: gateway.pbx.xapi.XapiClient
    for call in history.calls(since, until):            # HistoryCall, oldest first
        call.answered                                   # rows on which an extension talked, in order
        call.recording_ids_of("101")                    # /Recordings ids of extension 101's parts
    pairs = match_calls(calls, [KnownCall(key, dns, numbers, started_at, ended_at), ...])
    # MainCallHistoryId -> the KnownCall it is; unpaired history calls are calls nobody knew

What 3CX documents is only the field list (official spec, V20-API-NOTES §i [S]). Every other
reading below is marked (inferred) with its source, so a PBX that behaves otherwise is fixed here.
"""
from __future__ import annotations

import logging
import re
import zlib
from dataclasses import dataclass
from functools import cached_property
from datetime import datetime, timedelta, timezone
from typing import Any, Iterable, Mapping, Protocol, Sequence

logger = logging.getLogger(__name__)

# Integer DN types of history rows (`SourceType`, `DestinationType`) are undocumented; third-party
# map (inferred, V20-API-NOTES §f): 0 extension, 1 external line, 4 queue, 5 voicemail, 6 IVR,
# 7 fax, 8 parking, 12 end call, 16 group (ring group). Unknown codes read as "other".
_DN_KINDS = {0: "extension", 1: "external", 4: "queue", 5: "voicemail", 6: "ivr", 7: "fax", 8: "parking",
             12: "endcall", 16: "ringgroup"}
GROUP_KINDS = frozenset({"queue", "ringgroup", "ivr"})

_ISO_DURATION = re.compile(r"^(?P<sign>-)?P(?:(?P<d>\d+(?:\.\d+)?)D)?"
                           r"(?:T(?:(?P<h>\d+(?:\.\d+)?)H)?(?:(?P<m>\d+(?:\.\d+)?)M)?(?:(?P<s>\d+(?:\.\d+)?)S)?)?$")
_CLOCK_DURATION = re.compile(r"^(?:(?P<d>\d+)\.)?(?P<h>\d+):(?P<m>\d{1,2}):(?P<s>\d{1,2}(?:\.\d+)?)$")

MATCH_SLACK_S = 30.0     # how far apart the gateway's and the PBX's times of one call may be
NUMBER_SUFFIX = 7        # numbers match when equal or when one ends with the other's last 7+ digits


def parse_duration(value: Any) -> float:
    """Seconds in a history duration: ISO-8601 (`PT1M23.5S`, what V20 sends) or `[d.]hh:mm:ss[.f]`
    (older builds, inferred from V20-API-NOTES §i "accept hh:mm:ss too"). Empty or null is 0;
    anything else raises ValueError."""
    if value is None or value == "":
        return 0.0
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    text = str(value).strip()
    iso = _ISO_DURATION.match(text)
    if iso and text not in ("P", "PT", "-P"):
        parts = {k: float(v) for k, v in iso.groupdict().items() if k != "sign" and v}
        seconds = (parts.get("d", 0) * 86400 + parts.get("h", 0) * 3600 + parts.get("m", 0) * 60
                   + parts.get("s", 0))
        return -seconds if iso.group("sign") else seconds
    clock = _CLOCK_DURATION.match(text)
    if clock:
        return (int(clock.group("d") or 0) * 86400 + int(clock.group("h")) * 3600 + int(clock.group("m")) * 60
                + float(clock.group("s")))
    raise ValueError(f"not a duration: {text!r}")


def parse_time(value: Any) -> datetime:
    """An aware UTC datetime from a history date-time (`2026-11-24T09:00:00.123Z`). A value without
    an offset is taken as UTC (inferred: V20-API-NOTES §i says StartTime is UTC)."""
    text = str(value or "").strip()
    if not text:
        raise ValueError("no date-time")
    if text.endswith("Z"):
        text = text[:-1] + "+00:00"
    # fromisoformat (3.11) takes up to 6 fraction digits; .NET writes up to 7.
    text = re.sub(r"(\.\d{6})\d+", r"\1", text)
    moment = datetime.fromisoformat(text)
    return moment.replace(tzinfo=timezone.utc) if moment.tzinfo is None else moment.astimezone(timezone.utc)


def digits(number: str) -> str:
    return re.sub(r"\D", "", number or "")


def same_number(a: str, b: str) -> bool:
    """Whether two phone numbers name the same party: equal digits, or one ends with the other's
    last NUMBER_SUFFIX+ digits (a national and an international form of one number)."""
    x, y = digits(a), digits(b)
    if not x or not y:
        return False
    if x == y:
        return True
    shorter = min(len(x), len(y))
    return shorter >= NUMBER_SUFFIX and (x.endswith(y) or y.endswith(x))


@dataclass(frozen=True)
class Party:
    """One end of a history row. `kind`: extension | external | queue | ringgroup | ivr | voicemail
    | other. `dn` is the DN number (for an outside party the trunk's, inferred); `number` the caller
    id (for an outside party the outside number)."""

    dn: str
    kind: str
    number: str
    name: str

    @property
    def is_extension(self) -> bool:
        return self.kind == "extension"

    @property
    def is_external(self) -> bool:
        return self.kind == "external"


@dataclass(frozen=True)
class HistorySegment:
    """One row: `source`'s call reaching `destination`, from `started_at`, ringing then talking.

    `recording_ids` are `/Recordings` ids (SrcRecId, DstRecId, then Recordings[].Id, without
    repeats): the source's recording first (V20-API-NOTES §f [S] names them equal to Recording.Id).
    """

    row_id: str
    main_id: str
    started_at: datetime
    source: Party
    destination: Party
    is_answered: bool
    ringing_s: float
    talking_s: float
    direction: str              # inbound | outbound | internal | "" (the row's `Direction`, lowercased)
    status: str
    reason: str
    src_recording_id: int | None
    dst_recording_id: int | None
    recording_ids: tuple[int, ...]

    @property
    def answered_at(self) -> datetime | None:
        return self.started_at + timedelta(seconds=self.ringing_s) if self.is_answered else None

    @property
    def ended_at(self) -> datetime:
        return self.started_at + timedelta(seconds=self.ringing_s + self.talking_s)

    @property
    def answering_extension(self) -> str:
        """The extension that talked on this row ("" if none): the destination of an answered row,
        or the source of an answered outside call it placed."""
        if not self.is_answered:
            return ""
        if self.destination.is_extension:
            return self.destination.dn
        if self.destination.is_external and self.source.is_extension:
            return self.source.dn
        return ""


@dataclass(frozen=True)
class HistoryCall:
    """The rows of one finished call (one MainCallHistoryId), in order of StartTime, main row first."""

    main_id: str
    segments: tuple[HistorySegment, ...]

    @property
    def main(self) -> HistorySegment:
        return self.segments[0]

    @cached_property
    def started_at(self) -> datetime:
        return min(segment.started_at for segment in self.segments)

    @cached_property
    def ended_at(self) -> datetime:
        return max(segment.ended_at for segment in self.segments)

    @property
    def direction(self) -> str:
        """inbound | outbound | internal, from the parties (the row's `Direction` text is not
        documented; inferred): an outside source makes it inbound, an outside destination outbound."""
        if any(s.source.is_external for s in self.segments):
            return "inbound"
        if any(s.destination.is_external for s in self.segments):
            return "outbound"
        return "internal"

    @cached_property
    def external_number(self) -> str:
        """The outside party's number ("" for an internal call)."""
        for segment in self.segments:
            for party in (segment.source, segment.destination):
                if party.is_external and party.number:
                    return party.number
        return ""

    @property
    def answered(self) -> tuple[HistorySegment, ...]:
        """The rows on which an extension talked, in order (a transfer adds one per extension)."""
        return tuple(s for s in self.segments if s.answering_extension)

    @property
    def is_answered(self) -> bool:
        return bool(self.answered)

    @cached_property
    def dns(self) -> frozenset[str]:
        """Every DN of this PBX in the call (extensions, queues, ring groups, IVRs)."""
        return frozenset(p.dn for s in self.segments for p in (s.source, s.destination)
                         if p.dn and not p.is_external and p.kind != "other")

    @property
    def extensions(self) -> frozenset[str]:
        return frozenset(p.dn for s in self.segments for p in (s.source, s.destination) if p.is_extension and p.dn)

    @property
    def recording_ids(self) -> tuple[int, ...]:
        """Every `/Recordings` id of the call, in row order, without repeats."""
        seen: dict[int, None] = {}
        for segment in self.segments:
            seen.update(dict.fromkeys(segment.recording_ids))
        return tuple(seen)

    def recording_ids_of(self, dn: str) -> tuple[int, ...]:
        """The `/Recordings` ids of extension `dn`'s parts of the call (its side of each row)."""
        out: dict[int, None] = {}
        for segment in self.segments:
            if segment.source.dn == dn and segment.src_recording_id is not None:
                out[segment.src_recording_id] = None
            if segment.destination.dn == dn and segment.dst_recording_id is not None:
                out[segment.dst_recording_id] = None
        return tuple(out)

    @property
    def number(self) -> int:
        """The call-number part of legacy call-link ids for a call whose Call Control `callid` is
        unknown: MainCallHistoryId when it is a whole number below 10**9, else a stable 9-digit
        number derived from it (CRC-32), so the same call always gets the same id."""
        text = self.main_id.strip()
        if text.isdigit() and int(text) < 10 ** 9:
            return int(text)
        return zlib.crc32(text.encode("utf-8")) % 900_000_000 + 100_000_000


def read_segment(row: Mapping[str, Any]) -> HistorySegment:
    """One `Pbx.CallLogData` row; ValueError when it lacks a usable StartTime or duration."""
    # The rows of one call share MainCallHistoryId; fall back to CallHistoryId when it is empty
    # (inferred, V20-API-NOTES §i [O]). CallId and SegmentId are 1 on every V20 row: never used.
    row_id = str(row.get("CallHistoryId") or row.get("CdrId") or "")
    main_id = str(row.get("MainCallHistoryId") or "") or row_id
    src_rec, dst_rec = _rec_id(row.get("SrcRecId")), _rec_id(row.get("DstRecId"))
    listed = [_rec_id(item.get("Id")) for item in row.get("Recordings") or [] if isinstance(item, Mapping)]
    ids = tuple(dict.fromkeys(i for i in (src_rec, dst_rec, *listed) if i is not None))
    return HistorySegment(
        row_id=row_id, main_id=main_id, started_at=parse_time(row.get("StartTime")),
        source=_party(row, "Source"), destination=_party(row, "Destination"),
        # `Answered` is the row's own outcome (inferred from the field name and [O] sync clients).
        is_answered=bool(row.get("Answered")),
        ringing_s=max(0.0, parse_duration(row.get("RingingDuration"))),
        talking_s=max(0.0, parse_duration(row.get("TalkingDuration"))),
        direction=str(row.get("Direction") or "").lower(), status=str(row.get("Status") or ""),
        reason=str(row.get("Reason") or ""), src_recording_id=src_rec, dst_recording_id=dst_rec,
        recording_ids=ids)


def group_calls(rows: Iterable[Mapping[str, Any]]) -> list[HistoryCall]:
    """History calls from rows in any order: grouped by MainCallHistoryId, each call's rows by
    StartTime (a queue / ring group / IVR row first on a tie: the main row names the group,
    V20-API-NOTES §i [O]); calls ordered by start. A row that cannot be read is logged and skipped."""
    grouped: dict[str, list[HistorySegment]] = {}
    for row in rows:
        try:
            segment = read_segment(row)
        except (TypeError, ValueError) as exc:
            logger.warning("call history: skipping a row that cannot be read (%s): %.200r", exc, row)
            continue
        grouped.setdefault(segment.main_id, []).append(segment)
    calls = [HistoryCall(main_id, tuple(sorted(segments, key=lambda s: (s.started_at, s.destination.kind
                                                                          not in GROUP_KINDS))))
             for main_id, segments in grouped.items()]
    return sorted(calls, key=lambda call: (call.started_at, call.main_id))


def _party(row: Mapping[str, Any], side: str) -> Party:
    raw_type = row.get(f"{side}Type")
    kind = _DN_KINDS.get(raw_type, "other") if isinstance(raw_type, int) and not isinstance(raw_type, bool) else "other"
    return Party(dn=str(row.get(f"{side}Dn") or ""), kind=kind, number=str(row.get(f"{side}CallerId") or ""),
                 name=str(row.get(f"{side}DisplayName") or ""))


def _rec_id(value: Any) -> int | None:
    # 0 or a negative id never names a recording (inferred: ids are positive in every sample).
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else None


class CallLogSource(Protocol):
    """What `CallHistory` needs of the XAPI client (`gateway.pbx.xapi.XapiClient.call_log`)."""

    def call_log(self, since: datetime, until: datetime) -> list[dict[str, Any]]: ...


class CallHistory:
    """Reads the PBX's call history as `HistoryCall`s; raises gateway.pbx.errors as the client does."""

    def __init__(self, xapi: CallLogSource) -> None:
        self._xapi = xapi

    def calls(self, since: datetime, until: datetime) -> list[HistoryCall]:
        """Finished calls that started in [since, until] (a call appears only once it has ended,
        V20-API-NOTES §i [O]: read with an overlap for calls in progress at the period's edges)."""
        return group_calls(self._xapi.call_log(since, until))


# --- matching ------------------------------------------------------------------------------------

@dataclass(frozen=True)
class KnownCall:
    """A call the gateway knows of (reported live, or in progress): what matching needs.

    `key` is the caller's own name for it (e.g. its call-link prefix); `dns` the monitored DNs
    that took part (extensions, queues...); `numbers` the outside numbers; `ended_at` None while
    the gateway has not seen it end.
    """

    key: str
    dns: frozenset[str]
    numbers: frozenset[str]
    started_at: datetime
    ended_at: datetime | None = None


def is_match(history: HistoryCall, known: KnownCall, *, slack_s: float = MATCH_SLACK_S) -> bool:
    """Whether `known` may be the same call as `history`: they share a DN, their outside numbers
    agree (when both have one) and their times overlap within `slack_s`."""
    if not history.dns & known.dns:
        return False
    outside = history.external_number
    if outside and known.numbers and not any(same_number(outside, number) for number in known.numbers):
        return False
    slack = timedelta(seconds=slack_s)
    if known.started_at > history.ended_at + slack:
        return False
    # The two calls' times overlap. Lenient on purpose: the gateway may meet a call late (after a
    # transfer from an unmonitored DN); `match_calls` pairs the closest starts first.
    return known.ended_at is None or known.ended_at >= history.started_at - slack


def match_calls(history: Sequence[HistoryCall], known: Sequence[KnownCall], *,
                slack_s: float = MATCH_SLACK_S) -> dict[str, KnownCall]:
    """Pair history calls with known calls, one to one: MainCallHistoryId → KnownCall.

    Candidates are the pairs `is_match` accepts; the closest start times pair first, so two calls
    from one number to one DN a minute apart each find their own.
    """
    by_dn: dict[str, set[int]] = {}         # only calls sharing a DN can match: look no further
    for j, k in enumerate(known):
        for dn in k.dns:
            by_dn.setdefault(dn, set()).add(j)
    pairs = sorted((abs((known[j].started_at - h.started_at).total_seconds()), i, j)
                   for i, h in enumerate(history)
                   for j in set[int]().union(*(by_dn.get(dn, ()) for dn in h.dns))
                   if is_match(h, known[j], slack_s=slack_s))
    taken_history: set[int] = set()
    taken_known: set[int] = set()
    out: dict[str, KnownCall] = {}
    for _, i, j in pairs:
        if i in taken_history or j in taken_known:
            continue
        taken_history.add(i)
        taken_known.add(j)
        out[history[i].main_id] = known[j]
    return out
