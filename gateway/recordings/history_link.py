"""The strongest link from a finished call to its recordings: v20's call history, by recording id.

v20's call-history rows carry `SrcRecId` / `DstRecId`, the ids in `/Recordings` of the recording
made on that row's segment (V20-API-NOTES §i). When the rows of a finished call can be found, its
legs' recordings are known by id and nothing has to be guessed. The recordings pipeline asks a
`CallHistoryLink` first, and searches `/Recordings` by extension, number and time (`matching.py`)
only when the history cannot be read, or does not list the call within half of `wait_s`.

Reading history rows and matching them to a call the gateway saw is `gateway.live.history`'s job
(shared with recovery); `HistoryRecordingLink` adapts it. Which ids of a row are a leg's is
inferred (V20-API-NOTES §f, §i): the row on which the leg's extension talked, closest to the leg's
own answer, and on it the id of the extension's side (`SrcRecId` or `DstRecId`), plus the other
ids the row lists under `Recordings` when the other side is not an extension (an outside party is
not recorded; a leg recorded in segments lists each).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta
from typing import Protocol, Sequence

from gateway.live.history import MATCH_SLACK_S, CallHistory, HistoryCall, HistorySegment, KnownCall, match_calls
from gateway.live.model import Call
from gateway.pbx.clock import ClockOffset, PbxClock
from gateway.pbx.errors import PbxError
from gateway.recordings.matching import WantedLeg


class HistoryUnavailable(Exception):
    """The call history cannot be read (refused, unreachable, or not offered by this PBX)."""


@dataclass(frozen=True)
class HistoryRecordings:
    """What the call history says about one finished call's recordings.

    `by_leg`: leg id -> the recording ids of that leg's rows, in the rows' order (an answered leg
    with no id was not recorded). Legs the history could not place are absent, not empty.
    """

    by_leg: dict[str, tuple[int, ...]] = field(default_factory=dict)


class CallHistoryLink(Protocol):
    """Finds a finished call's recording ids in the call history."""

    def recordings_of(self, call: Call, legs: Sequence[WantedLeg]) -> HistoryRecordings | None:
        """The recordings of finished call `call` for `legs`.

        None while the history does not list the call (yet); raises HistoryUnavailable when the
        history cannot be read at all. Called from the recordings thread only.
        """
        ...


class HistoryRecordingLink:
    """`CallHistoryLink` over v20's call history: a finished call's rows -> its legs' recording ids."""

    def __init__(self, history: CallHistory, pbx_clock: PbxClock, *, slack_s: float = MATCH_SLACK_S) -> None:
        self._history = history
        self._pbx_clock = pbx_clock
        self._slack = timedelta(seconds=slack_s)

    def recordings_of(self, call: Call, legs: Sequence[WantedLeg]) -> HistoryRecordings | None:
        """See CallHistoryLink; PBX errors (403 without System Owner, unreachable) are HistoryUnavailable."""
        if not legs:
            return HistoryRecordings({})
        offset = self._pbx_clock.offset()
        started = offset.to_pbx(min(call.arrived_at, *(leg.answered_at for leg in legs)))
        ended = offset.to_pbx(max(leg.ended_at for leg in legs))
        try:
            calls = self._history.calls(started - self._slack, ended + self._slack)
        except PbxError as exc:
            raise HistoryUnavailable(str(exc)) from exc
        known = KnownCall(key=str(call.v20_call_id), dns=frozenset(leg.dn for leg in legs),
                          numbers=frozenset(n for leg in legs for n in leg.numbers),
                          started_at=started, ended_at=ended)
        matched = match_calls(calls, [known])
        found = next((c for c in calls if c.main_id in matched), None)
        if found is None:
            return None
        by_leg: dict[str, tuple[int, ...]] = {}
        for leg in legs:
            segment = _segment_of(found, leg, offset)
            if segment is not None:
                by_leg[leg.leg_id] = leg_recording_ids(segment, leg.dn)
        return HistoryRecordings(by_leg)


def _segment_of(call: HistoryCall, leg: WantedLeg, offset: ClockOffset) -> HistorySegment | None:
    """The row on which `leg`'s extension talked, closest to the leg's own answer (a chain may
    visit one extension twice)."""
    answered = offset.to_pbx(leg.answered_at)
    rows = [s for s in call.answered if s.answering_extension == leg.dn and s.answered_at is not None]
    return min(rows, key=lambda s: abs((s.answered_at or answered) - answered), default=None)


def leg_recording_ids(segment: HistorySegment, dn: str) -> tuple[int, ...]:
    """The recording ids of extension `dn`'s side of a history row (see the module docstring)."""
    is_source = segment.source.dn == dn and segment.source.is_extension
    own, other = ((segment.src_recording_id, segment.destination) if is_source
                  else (segment.dst_recording_id, segment.source))
    other_id = segment.dst_recording_id if is_source else segment.src_recording_id
    ids = [own] if own is not None else []
    if not other.is_extension:
        ids += [i for i in segment.recording_ids if i not in (own, other_id)]
    return tuple(ids)
