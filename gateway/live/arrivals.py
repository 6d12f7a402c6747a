"""When calls arrived at the PBX, from XAPI `/ActiveCalls`: for calls first seen by a resync.

A call the watcher first meets in a resync (after a reconnect, or at start) has been going on for
a while; its call-link id must carry its real arrival time, not the resync's. Call Control shows
no start time, XAPI `/ActiveCalls` does. This module is the only one that reads ActiveCall rows.

Fields (official spec, `Pbx.ActiveCall`): `Id`, `Caller`, `Callee`, `Status`, `EstablishedAt`,
`LastChangeStatus`, `ServerNow`. What is inferred here:
- (inferred) `EstablishedAt` is when the call arrived at the PBX (its name says "established", but
  the row exists from the first ring, Status "Routing"), and `ServerNow` is the PBX's clock at the
  time of the answer. The call's age is taken from the PBX's two clocks and applied to ours, so the
  id agrees with the ids the gateway stamps on calls it sees arrive live even when clocks differ.
- (inferred) How a row relates to a Call Control call is undocumented: `ActiveCall.Id` is not
  documented as equal to the Call Control `callid` (V20-API-NOTES §f), so rows are matched by
  numbers, never by Id. `Caller` and `Callee` are display strings that start with a number or DN
  ("+420774852529", "101 Alice Smith", "800 Sales"); a row matches a call when each of its
  non-empty sides names a DN or a number of that call's legs (the DN, the queue / ring group it
  rings for, who transferred it, the far party). A call two rows match with different times gets
  no arrival time (the resync time is used, as before).
"""
from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any, Iterable

from gateway.live.model import Leg
from gateway.live.ports import EntityLister
from gateway.pbx.errors import PbxError

logger = logging.getLogger(__name__)

_SAME_TIME = timedelta(seconds=1)     # rows this close are the same arrival for an id (second resolution)
_MIN_SUFFIX_DIGITS = 6                # "+420774852529" and "774852529" are the same number


@dataclass(frozen=True)
class ActiveCall:
    """One `/ActiveCalls` row, read: the numbers of both sides, when the call arrived and the PBX's
    clock at the time of the answer (None when the row has no ServerNow)."""

    caller: str
    callee: str
    established_at: datetime
    server_now: datetime | None

    def arrived_at(self, now: datetime) -> datetime:
        """The arrival on our clock: `now` less the call's age on the PBX's clock."""
        if self.server_now is None:
            return min(self.established_at, now)
        return now - max(timedelta(0), self.server_now - self.established_at)


def read_active_calls(xapi: EntityLister) -> list[ActiveCall]:
    """The PBX's active calls; [] (logged) when XAPI cannot be read or a row has no usable time."""
    try:
        rows = xapi.list("ActiveCalls")
    except PbxError as exc:
        logger.warning("cannot read /ActiveCalls (%s); calls first seen by this resync get ids stamped "
                       "with the resync time", exc)
        return []
    calls = []
    for row in rows:
        established = _time(row.get("EstablishedAt"))
        if established is None:
            continue
        calls.append(ActiveCall(_number(row.get("Caller")), _number(row.get("Callee")), established,
                                _time(row.get("ServerNow"))))
    return calls


def arrival_of(legs: Iterable[Leg], active: list[ActiveCall], now: datetime) -> datetime | None:
    """When the call with these legs arrived (on our clock), or None when no row, or rows that
    disagree, match it."""
    numbers = _numbers_of(legs)
    arrivals = [row.arrived_at(now) for row in active if _is_match(row, numbers)]
    if not arrivals:
        return None
    if max(arrivals) - min(arrivals) > _SAME_TIME:
        logger.info("several active calls match numbers %s; arrival time unknown", sorted(numbers))
        return None
    return min(arrivals)


def _numbers_of(legs: Iterable[Leg]) -> set[str]:
    numbers: set[str] = set()
    for leg in legs:
        numbers.update(n for n in (leg.dn, leg.via_dn, leg.referred_by_dn, leg.party_number, leg.party_dn) if n)
    return numbers


def _is_match(row: ActiveCall, numbers: set[str]) -> bool:
    sides = [side for side in (row.caller, row.callee) if side]
    return bool(sides) and all(any(_is_same_number(side, n) for n in numbers) for side in sides)


def _is_same_number(a: str, b: str) -> bool:
    if a == b:
        return True
    da, db = re.sub(r"\D", "", a), re.sub(r"\D", "", b)
    if not da or not db:
        return False
    if da == db:
        return True
    short, long = sorted((da, db), key=len)
    return len(short) >= _MIN_SUFFIX_DIGITS and long.endswith(short)


def _number(display: Any) -> str:
    """The number a display string starts with ("101 Alice Smith" -> "101"); "" when none."""
    text = str(display or "").strip()
    return text.split()[0] if text else ""


def _time(raw: Any) -> datetime | None:
    if not raw:
        return None
    try:
        value = datetime.fromisoformat(str(raw).replace("Z", "+00:00"))
    except ValueError:
        return None
    return value if value.tzinfo is not None else value.replace(tzinfo=timezone.utc)
