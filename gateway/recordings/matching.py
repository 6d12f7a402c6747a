"""Which leg a recording found by searching `/Recordings` belongs to: the fallback rule, pure.

The strongest link from a call to its recordings is v20's call history (`history_link.py`). When
that cannot be read, recordings are matched by what they show (inferred, V20-API-NOTES §f):

- **fits**: the recording names the leg's extension (`FromDn`/`ToDn`), one of its caller numbers
  ends like the leg's other party (when both are known), and it lies within the leg's own span
  (answered .. ended), moved onto the PBX's clock by the measured offset, give or take
  `tolerance_s` plus the offset's uncertainty: it starts no earlier than that (and the event
  delay) before the answer, and it starts and ends no later than that after the hang-up;
- a recording that fits one leg of all the legs the gateway knows of goes to it;
- when it fits several, the leg whose span contains its start (within the offset's uncertainty,
  and the event delay on the answer side) wins; when none or several do, it is **ambiguous**:
  logged by the caller and left out, never guessed;
- a recording already announced for a leg (the ledger) is never offered to another.

Times: legs carry gateway-clock times; candidates carry PBX-clock times; all aware UTC.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Iterable

from gateway.pbx.clock import ClockOffset

NUMBER_TAIL_DIGITS = 7       # compare numbers by their last digits: "+420774852529" ~ "774852529"
EVENT_DELAY_S = 1.0          # we learn of an answer this much after the PBX connected it, at most


@dataclass(frozen=True)
class WantedLeg:
    """One answered leg whose recordings are looked for; times on the gateway's clock, aware UTC."""

    leg_id: str
    dn: str                          # the extension (legacy `user`)
    numbers: tuple[str, ...]         # the other party's numbers (legacy `callerid`), may be empty
    answered_at: datetime
    ended_at: datetime
    v20_call_id: int = 0

    @property
    def link(self) -> int:
        """The call-link number at the end of the leg id (`..._669-2` -> 2)."""
        tail = self.leg_id.rpartition("-")[2]
        return int(tail) if tail.isdigit() else 0


@dataclass(frozen=True)
class Candidate:
    """A recording found on the PBX or on disk; times on the PBX's clock."""

    key: str                         # "rec:<id>" for a PBX recording, "file:<path>" for a bare file
    start_time: datetime
    dns: tuple[str, ...]
    numbers: tuple[str, ...]
    recording_id: int | None = None
    path: Path | None = None         # a readable WAV on this host, else download `recording_id`
    end_time: datetime | None = None

    @property
    def keys(self) -> tuple[str, ...]:
        """Every name this recording goes by (its PBX id and its file), for the ledger."""
        names = [self.key]
        if self.recording_id is not None and f"rec:{self.recording_id}" not in names:
            names.append(f"rec:{self.recording_id}")
        if self.path is not None and f"file:{self.path}" not in names:
            names.append(f"file:{self.path}")
        return tuple(names)


@dataclass(frozen=True)
class Ambiguous:
    """A recording that several known legs (or none of them for certain) could claim."""

    candidate: Candidate
    leg_ids: tuple[str, ...]


@dataclass(frozen=True)
class Assignment:
    """The outcome of one matching: leg id -> its files by start time, and what was left out."""

    by_leg: dict[str, list[Candidate]] = field(default_factory=dict)
    ambiguous: list[Ambiguous] = field(default_factory=list)


def _digits(value: str) -> str:
    return re.sub(r"[^0-9]", "", value or "")


def numbers_agree(ours: Iterable[str], theirs: Iterable[str]) -> bool:
    """Whether a recording's numbers name the leg's other party (True when either side has none)."""
    wanted = [d[-NUMBER_TAIL_DIGITS:] for d in map(_digits, ours) if d]
    seen = [d for d in map(_digits, theirs) if d]
    if not wanted or not seen:
        return True                  # nothing to compare: the DN and the span decide
    return any(s.endswith(w) or w.endswith(s[-NUMBER_TAIL_DIGITS:]) for w in wanted for s in seen)


def pbx_span(leg: WantedLeg, offset: ClockOffset) -> tuple[datetime, datetime]:
    """The leg's answered .. ended on the PBX's clock."""
    return offset.to_pbx(leg.answered_at), offset.to_pbx(max(leg.ended_at, leg.answered_at))


def fits(candidate: Candidate, leg: WantedLeg, offset: ClockOffset, tolerance_s: float) -> bool:
    """Same extension, numbers agree, and the recording lies within the leg's span +- tolerance."""
    if leg.dn not in candidate.dns or not numbers_agree(leg.numbers, candidate.numbers):
        return False
    margin = timedelta(seconds=tolerance_s + offset.uncertainty_s)
    start, end = pbx_span(leg, offset)
    # We note the answer when its event arrives, a little after the PBX connected (and began recording).
    if not start - margin - timedelta(seconds=EVENT_DELAY_S) <= candidate.start_time <= end + margin:
        return False
    return candidate.end_time is None or candidate.end_time <= end + margin


def contains_start(candidate: Candidate, leg: WantedLeg, offset: ClockOffset) -> bool:
    """Whether the leg's span holds the recording's start, as closely as the clocks allow."""
    uncertainty = timedelta(seconds=offset.uncertainty_s)
    start, end = pbx_span(leg, offset)
    # The gateway notes an answer and a hang-up when their events arrive, a little after the PBX.
    return start - uncertainty - timedelta(seconds=EVENT_DELAY_S) <= candidate.start_time <= end + uncertainty


def assign(candidates: Iterable[Candidate], legs: Iterable[WantedLeg], offset: ClockOffset,
           tolerance_s: float) -> Assignment:
    """Give each recording to the one known leg it belongs to; see the module docstring."""
    legs = sorted(legs, key=lambda leg: (leg.answered_at, leg.leg_id))
    result = Assignment({leg.leg_id: [] for leg in legs}, [])
    for candidate in sorted(candidates, key=lambda c: (c.start_time, c.key)):
        fitting = [leg for leg in legs if fits(candidate, leg, offset, tolerance_s)]
        if not fitting:
            continue
        if len(fitting) > 1:
            fitting = [leg for leg in fitting if contains_start(candidate, leg, offset)]
            if len(fitting) != 1:
                claimants = tuple(leg.leg_id for leg in legs if fits(candidate, leg, offset, tolerance_s))
                result.ambiguous.append(Ambiguous(candidate, claimants))
                continue
        result.by_leg[fitting[0].leg_id].append(candidate)
    return result


def search_since(legs: Iterable[WantedLeg], offset: ClockOffset, tolerance_s: float) -> datetime:
    """The earliest PBX-clock start a recording of any of `legs` may have (the XAPI filter's bound)."""
    margin = timedelta(seconds=tolerance_s + offset.uncertainty_s + EVENT_DELAY_S)
    return min(offset.to_pbx(leg.answered_at) for leg in legs) - margin
