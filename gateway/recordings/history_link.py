"""The strongest link from a finished call to its recordings: v20's call history, by recording id.

v20's call-history rows carry `SrcRecId` / `DstRecId`, the ids in `/Recordings` of the recording
made on that row's segment (V20-API-NOTES §i). When the rows of a finished call can be found, its
legs' recordings are known by id and nothing has to be guessed. The recordings pipeline asks a
`CallHistoryLink` first, and searches `/Recordings` by extension, number and time (`matching.py`)
only when the history cannot be read, or does not list the call within half of `wait_s`.

Reading history rows and matching them to a call the gateway saw is the call-history module's
job (shared with recovery); an adapter to it implements `CallHistoryLink`.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol, Sequence

from gateway.live.model import Call
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
