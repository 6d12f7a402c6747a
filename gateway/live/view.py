"""LiveView: what commands ask about calls in progress, answered from the model or, when the
watcher is not in step with the PBX, straight from `GET /callcontrol`."""
from __future__ import annotations

import logging
from typing import Iterable

from gateway.live import v20
from gateway.live.errors import NoSuchLeg
from gateway.live.model import Call, CallTable, Leg
from gateway.live.ports import AllCallStates, LiveState

logger = logging.getLogger(__name__)

_STATUS_ORDER = ("talking", "ringing", "dialing")


class LiveView:
    """Read-only questions about live calls; safe from any request thread."""

    def __init__(self, table: CallTable, watcher: LiveState, callcontrol: AllCallStates) -> None:
        self._table = table
        self._watcher = watcher
        self._callcontrol = callcontrol

    @property
    def is_live(self) -> bool:
        """Whether the event stream is connected and the model resynchronised with the PBX."""
        status = self._watcher.status()
        return status.connected and status.synced

    def calls(self) -> list[Call]:
        """The calls in progress: from the model when live, else built from `GET /callcontrol`."""
        if self.is_live:
            return self._table.calls()
        return self._calls_from_pbx()

    def legs_of(self, dn: str) -> list[Leg]:
        if self.is_live:
            return self._table.legs_of(dn)
        return [leg for call in self._calls_from_pbx() for leg in call.legs if leg.dn == dn]

    def is_busy(self, dn: str) -> bool:
        return bool(self.legs_of(dn))

    def busy_dns(self) -> set[str]:
        return {leg.dn for call in self.calls() for leg in call.legs}

    def find_leg(self, dn: str, *, contact: str | None = None, external: str | None = None,
                 statuses: Iterable[str] = ("talking", "ringing", "dialing")) -> Leg:
        """The leg of `dn` to act on; raises NoSuchLeg saying what did not match.

        `contact` narrows by device (equal to or contained in the device id, e.g. "102" or a SIP
        contact); `external` by the far end (the party number or DN equals or ends with it).
        Talking legs come before ringing ones, then the newest.
        """
        wanted = tuple(statuses)
        legs = [leg for leg in self.legs_of(dn) if leg.status in wanted]
        if not legs:
            raise NoSuchLeg(f"extension {dn} has no call in progress")
        if contact:
            legs = [leg for leg in legs if leg.device_id == contact or contact in leg.device_id]
            if not legs:
                raise NoSuchLeg(f"extension {dn} has no call on a device matching {contact!r}")
        if external:
            legs = [leg for leg in legs if _is_party(leg, external)]
            if not legs:
                raise NoSuchLeg(f"extension {dn} has no call with {external}")
        rank = {status: index for index, status in enumerate(_STATUS_ORDER)}
        legs.sort(key=lambda leg: leg.seen_at, reverse=True)
        legs.sort(key=lambda leg: rank.get(leg.status, len(rank)))
        return legs[0]

    def _calls_from_pbx(self) -> list[Call]:
        now = self._watcher.clock.now()
        legs: dict[int, list[Leg]] = {}
        for info in self._callcontrol.all_states():
            kind = v20.dn_kind_of(info)
            for participant in info.get("participants") or []:
                if not participant.get("dn"):
                    participant = {**participant, "dn": info.get("dn", "")}
                leg = v20.leg_from_participant(participant, seen_at=now, dn_kind=kind)
                legs.setdefault(leg.v20_call_id, []).append(leg)
        calls = []
        for call_id, call_legs in legs.items():
            is_answered = any(leg.status == "talking" and leg.dn_kind == "extension" for leg in call_legs)
            direction = next((d for d in map(v20.direction_of, call_legs) if d), "")
            calls.append(Call(v20_call_id=call_id, arrived_at=now, answered_at=now if is_answered else None,
                              direction=direction, did=next((leg.did for leg in call_legs if leg.did), ""),
                              link=1 if is_answered else 0, legs=tuple(call_legs)))
        return calls


def _is_party(leg: Leg, external: str) -> bool:
    return any(number and (number == external or number.endswith(external))
               for number in (leg.party_number, leg.party_dn))
