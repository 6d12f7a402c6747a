"""The live call model: `Leg` and `Call` (frozen snapshots) and `CallTable` (the calls now in progress).

Only the watcher thread writes to a `CallTable`; request threads read it. `Call` and `Leg` are frozen
and replaced with `evolve` (a quick `dataclasses.replace`), never mutated, so a reader never sees
half an update.
"""
from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, fields
from datetime import datetime, timedelta
from typing import Any, TypeVar

logger = logging.getLogger(__name__)

_Snapshot = TypeVar("_Snapshot", "Leg", "Call")
_FIELD_NAMES: dict[type, frozenset[str]] = {}


def evolve(snapshot: _Snapshot, **changes: Any) -> _Snapshot:
    """`dataclasses.replace` for `Leg` and `Call` (neither has __post_init__ or field defaults made
    by a factory), without running `__init__` again: the machine makes a dozen copies per event."""
    kind = type(snapshot)
    names = _FIELD_NAMES.get(kind)
    if names is None:
        names = _FIELD_NAMES[kind] = frozenset(f.name for f in fields(kind))
    unknown = changes.keys() - names
    if unknown:
        raise TypeError(f"{kind.__name__} has no field {', '.join(sorted(unknown))}")
    copy = object.__new__(kind)
    copy.__dict__.update(snapshot.__dict__)
    copy.__dict__.update(changes)
    return copy


@dataclass(frozen=True)
class Leg:
    """One monitored DN's part in a call (a v20 participant), in our own words.

    `status` is "ringing" | "dialing" | "talking". `party_kind`, `dn_kind` and `via_kind` are
    "extension" | "external" | "queue" | "ringgroup" | "ivr" | "routepoint" | "other" ("" for no via).
    The fields after `answered_at` are the machine's bookkeeping, with defaults.
    """

    dn: str
    participant_id: int
    v20_call_id: int
    v20_leg_id: int
    status: str
    party_number: str
    party_name: str
    party_dn: str
    party_kind: str
    did: str
    device_id: str
    is_remote_controllable: bool
    via_dn: str
    via_kind: str
    referred_by_dn: str
    seen_at: datetime
    answered_at: datetime | None
    dn_kind: str = "extension"          # what the monitored DN itself is (a queue DN has legs too)
    originated_by_dn: str = ""
    first_status: str = ""              # the status of the first reading of this leg
    link: int = 0                       # the call-link number its webhooks carry
    transfer_kind: str = ""             # "" | "blind" | "attended": how this leg received the call
    is_finished: bool = False           # its end webhook was already produced (e.g. at a transfer)
    is_on_hold: bool = False            # connected and on hold (v20 status Hold / Held)

    @property
    def key(self) -> tuple[str, int]:
        """(dn, participant_id): how Call Control names this leg."""
        return (self.dn, self.participant_id)


@dataclass(frozen=True)
class LastLegGone:
    """The last leg of a call went at `at`; the call's end is final once the grace period is over.

    Kept so that a new leg of the same call within the grace period continues it (a hunt queue
    v20 does not monitor shows nothing between one agent's ring and the next), and so that the
    end, when it becomes final, is reported for the leg that went last.
    """

    leg: Leg
    at: datetime
    is_resync: bool = False


@dataclass(frozen=True)
class Call:
    """One v20 call (`callid`) with the legs of it that monitored DNs show.

    `direction` is "inbound" | "outbound" | "internal" ("" until a leg tells). `did` is the DID
    rule name (or the number when no rule matches). `link` is 0 until answered, 1 at the first
    answer, +1 per transfer. The fields after `legs` are the machine's bookkeeping.
    """

    v20_call_id: int
    arrived_at: datetime
    answered_at: datetime | None
    direction: str
    did: str
    link: int
    legs: tuple[Leg, ...]
    external_number: str = ""           # the outside party, the legacy `callerid`
    is_link_answered: bool = False      # someone answered at the current link
    stage_user: str = ""                # who a miss at the current link is reported for
    stage_kind: str = ""                # what stage_user is: extension, queue, ringgroup, ivr
    ended_at: datetime | None = None
    is_end_found_by_resync: bool = False
    last_gone: LastLegGone | None = None   # set while the end waits for the grace period
    did_number: str = ""                # the DID number itself (`did` holds the rule name)
    external_name: str = ""             # the outside party's display name as the PBX shows it
    queues: tuple[str, ...] = ()        # every queue the call went through, in order
    ringgroups: tuple[str, ...] = ()    # every ring group the call went through, in order

    def leg(self, dn: str, participant_id: int) -> Leg | None:
        """The leg `(dn, participant_id)` of this call, or None."""
        return next((leg for leg in self.legs if leg.key == (dn, participant_id)), None)

    @property
    def is_ended(self) -> bool:
        return self.ended_at is not None

    @property
    def is_ending(self) -> bool:
        """No leg left, the end not final yet (see LastLegGone)."""
        return self.last_gone is not None and not self.is_ended


class CallTable:
    """The calls in progress, keyed by v20 call id. Written by the watcher only; readers get snapshots.

    Indexed by leg (`find_leg`), by DN (`legs_of`) and by the calls whose end waits (`ending`), so
    that each event costs the same with ten calls in progress or thousands.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._calls: dict[int, Call] = {}
        self._by_leg: dict[tuple[str, int], set[int]] = {}      # leg key -> the calls holding it
        self._by_dn: dict[str, set[tuple[str, int]]] = {}        # DN -> its legs' keys
        self._ending: set[int] = set()

    def calls(self) -> list[Call]:
        """Every call in progress, oldest first (not those whose end only waits for its grace period)."""
        with self._lock:
            calls = [call for call in self._calls.values() if not call.is_ending]
        return sorted(calls, key=lambda call: call.arrived_at)

    def ending(self) -> list[Call]:
        """The calls with no leg left whose end waits for its grace period, oldest end first."""
        with self._lock:
            calls = [self._calls[call_id] for call_id in self._ending]
        return sorted(calls, key=lambda call: call.last_gone.at if call.last_gone else call.arrived_at)

    def get(self, v20_call_id: int) -> Call | None:
        with self._lock:
            return self._calls.get(v20_call_id)

    def legs_of(self, dn: str) -> list[Leg]:
        """The legs of DN `dn` across all calls, oldest first."""
        with self._lock:
            legs = [leg for key in self._by_dn.get(dn, ()) for call_id in self._by_leg[key]
                    if (leg := self._calls[call_id].leg(*key)) is not None]
        return sorted(legs, key=lambda leg: leg.seen_at)

    def find_leg(self, dn: str, participant_id: int) -> Leg | None:
        """The leg Call Control names `/callcontrol/{dn}/participants/{participant_id}`, or None.

        Should two calls hold it (a moment during a transfer), the one the table took in first."""
        key = (dn, participant_id)
        with self._lock:
            call_ids = self._by_leg.get(key)
            if not call_ids:
                return None
            first = next(iter(call_ids)) if len(call_ids) == 1 else next(c for c in self._calls if c in call_ids)
            return self._calls[first].leg(*key)

    def put(self, call: Call) -> None:
        """Store `call` (watcher thread only); an ended call is dropped from the table."""
        with self._lock:
            self._set(call.v20_call_id, None if call.is_ended else call)

    def restore(self, v20_call_id: int, call: Call | None) -> None:
        """Put back a call as it was before a step whose commit failed (None: it did not exist)."""
        with self._lock:
            self._set(v20_call_id, call)

    def clear(self) -> None:
        """Forget every call (watcher thread only)."""
        with self._lock:
            self._calls.clear()
            self._by_leg.clear()
            self._by_dn.clear()
            self._ending.clear()

    def __len__(self) -> int:
        """How many calls the table holds, those whose end waits for its grace period included."""
        with self._lock:
            return len(self._calls)

    def _set(self, v20_call_id: int, call: Call | None) -> None:
        """Replace (None: drop) a call and its index entries; a replaced call keeps its place."""
        before = self._calls.get(v20_call_id)
        if before is not None:
            for leg in before.legs:
                call_ids = self._by_leg.get(leg.key, set())
                call_ids.discard(v20_call_id)
                if not call_ids:
                    self._by_leg.pop(leg.key, None)
                    keys = self._by_dn.get(leg.dn, set())
                    keys.discard(leg.key)
                    if not keys:
                        self._by_dn.pop(leg.dn, None)
            self._ending.discard(v20_call_id)
        if call is None:
            self._calls.pop(v20_call_id, None)
            return
        self._calls[v20_call_id] = call
        for leg in call.legs:
            self._by_leg.setdefault(leg.key, set()).add(v20_call_id)
            self._by_dn.setdefault(leg.dn, set()).add(leg.key)
        if call.is_ending:
            self._ending.add(v20_call_id)


class ArrivalClaims:
    """When each call arrived, as the watcher and `makecall` agree on it (call-link ids start with it).

    The first to `claim` a v20 call id fixes its time, so the id `makecall` answers and the ids of
    the call's webhooks are the same whichever side sees the call first. The watcher `forget`s a
    call when it ends; claims nobody forgets are dropped after `keep_s`. Any thread.
    """

    def __init__(self, keep_s: float = 3600.0) -> None:
        self._lock = threading.Lock()
        self._keep = timedelta(seconds=keep_s)
        self._times: dict[int, datetime] = {}

    def claim(self, v20_call_id: int, at: datetime) -> datetime:
        with self._lock:
            # Claims are taken in roughly in time order: expire from the oldest, stop at a fresh one.
            while self._times:
                oldest = next(iter(self._times))
                if at - self._times[oldest] <= self._keep:
                    break
                del self._times[oldest]
            return self._times.setdefault(v20_call_id, at)

    def forget(self, v20_call_id: int) -> None:
        with self._lock:
            self._times.pop(v20_call_id, None)
