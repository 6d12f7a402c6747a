"""Readings of v20 Call Control participants: the only module that reads participant dicts.

Every reading 3CX does not document is marked (inferred) and cites docs/v20-call-flows.md or
V20-API-NOTES §d-§f, so a real PBX that behaves otherwise is fixed here and nowhere else.
"""
from __future__ import annotations

import logging
from datetime import datetime
from typing import Any

from gateway.live.model import Leg

logger = logging.getLogger(__name__)

# `status` values are documented (V20-API-NOTES §d): Dialing = this DN calls out, Ringing =
# offered to this DN, Connected. Anything else is kept lowercased so it shows up in logs.
_STATUSES = {"Dialing": "dialing", "Ringing": "ringing", "Connected": "talking"}

# `*_type` names: Wextension, Wqueue, Wivr, Wroutepoint, Wexternalline are documented or observed;
# Wringgroup is (inferred) (docs/v20-call-flows.md "Type names"). Unknown names read as "other".
_KINDS = {
    "Wextension": "extension",
    "Wexternalline": "external",
    "Wqueue": "queue",
    "Wringgroup": "ringgroup",
    "Wivr": "ivr",
    "Wroutepoint": "routepoint",
}


def status_of(raw: Any) -> str:
    """Our leg status for a v20 `status`: "dialing" | "ringing" | "talking"."""
    return _STATUSES.get(str(raw or ""), str(raw or "").lower())


def kind_of(type_name: Any) -> str:
    """Our kind for a v20 `*_type` name ("" stays "" for an empty field, e.g. no on_behalf_of)."""
    name = str(type_name or "")
    if not name or name == "None":
        return ""
    return _KINDS.get(name, "other")


def dn_kind_of(dn_info: dict[str, Any]) -> str:
    """What a monitored DN is, from a DNInfo (`GET /callcontrol/{dn}` → `type`); default extension."""
    return kind_of(dn_info.get("type")) or "extension"


def leg_from_participant(participant: dict[str, Any], *, seen_at: datetime, dn_kind: str = "extension") -> Leg:
    """A `Leg` from one v20 CallParticipant as `GET /callcontrol/{dn}/participants/{id}` answers it.

    The machine keeps `seen_at`, `answered_at` and its bookkeeping from an earlier reading of the
    same leg; a fresh reading starts with `first_status` = its status.
    """
    status = status_of(participant.get("status"))
    party_kind = kind_of(participant.get("party_dn_type")) or "other"
    return Leg(
        dn=str(participant.get("dn") or ""),
        participant_id=int(participant.get("id") or 0),
        v20_call_id=int(participant.get("callid") or 0),
        v20_leg_id=int(participant.get("legid") or 0),
        status=status,
        # party_caller_id is the outside number (inbound: the caller; outbound: the dialled number),
        # party_dn the trunk DN behind it (V20-API-NOTES §d observed samples).
        party_number=str(participant.get("party_caller_id") or participant.get("party_dn") or ""),
        party_name=str(participant.get("party_caller_name") or ""),
        party_dn=str(participant.get("party_dn") or ""),
        party_kind=party_kind,
        did=str(participant.get("party_did") or ""),
        device_id=str(participant.get("device_id") or ""),
        is_remote_controllable=bool(participant.get("direct_control")),
        # on_behalf_of_* names the queue / ring group / IVR the leg rings for (inferred;
        # docs/v20-call-flows.md flows 2-4).
        via_dn=str(participant.get("on_behalf_of_dn") or ""),
        via_kind=kind_of(participant.get("on_behalf_of_type")),
        # referred_by_* names who transferred the call to this leg (inferred; flows 5-6).
        referred_by_dn=str(participant.get("referred_by_dn") or ""),
        seen_at=seen_at,
        answered_at=seen_at if status == "talking" else None,
        dn_kind=dn_kind,
        originated_by_dn=str(participant.get("originated_by_dn") or ""),
        first_status=status,
    )


def is_originator(leg: Leg) -> bool:
    """Whether this leg's DN placed the call (it rings for no one else).

    A leg first seen Dialing calls out (documented). A makecall rings the caller's own device
    first: `Ringing` with `originated_by_dn` = its own DN (inferred; docs/v20-call-flows.md flow 9).
    """
    return leg.first_status == "dialing" or (bool(leg.originated_by_dn) and leg.originated_by_dn == leg.dn)


def direction_of(leg: Leg) -> str:
    """The call's direction as the first leg of it tells: "inbound" | "outbound" | "internal" | "".

    The heuristic others use (V20-API-NOTES §e): first seen Dialing or originated by this DN →
    outbound; an extension party → internal; Ringing → inbound. "" when this reading cannot tell
    (a makecall still ringing its own device has no party yet, flow 9).
    """
    if leg.dn_kind in ("queue", "ringgroup", "ivr", "routepoint"):
        # Only outside calls reach a queue's / IVR's own participant (flows 2 and 4).
        return "internal" if leg.party_kind == "extension" else "inbound"
    if leg.party_kind == "extension":
        return "internal"
    if is_originator(leg):
        if not leg.party_dn and leg.status == "ringing":
            return ""
        return "outbound"
    return "inbound"


def transfer_kind(leg: Leg) -> str:
    """How a referred leg got the call: "blind" | "attended" | "" (not transferred).

    A transferred leg whose first reading is Connected was consulted first (attended); one that
    starts Ringing was sent blind (inferred; docs/v20-call-flows.md flows 5-6).
    """
    if not leg.referred_by_dn:
        return ""
    return "attended" if leg.first_status == "talking" else "blind"


def is_same_reading(a: Leg, b: Leg) -> bool:
    """Whether two readings of one leg differ only in the machine's bookkeeping."""
    return (a.status, a.party_number, a.party_dn, a.via_dn, a.referred_by_dn, a.device_id) == \
           (b.status, b.party_number, b.party_dn, b.via_dn, b.referred_by_dn, b.device_id)
