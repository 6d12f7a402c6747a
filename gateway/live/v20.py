"""Readings of v20 Call Control participants: the only module that reads participant dicts.

Every reading 3CX does not document is marked (inferred) and cites docs/v20-call-flows.md or
V20-API-NOTES §d-§f, so a real PBX that behaves otherwise is fixed here and nowhere else.
"""
from __future__ import annotations

import logging
from datetime import datetime
from typing import Any

from gateway.live.model import Leg
from gateway.live.unknowns import Unknowns

logger = logging.getLogger(__name__)

# `status` word -> (our status, is on hold). Each row is one reading; a correction from a capture
# is a change of one row plus a replay test (tests/live/captures/).
_STATUSES: dict[str, tuple[str, bool]] = {
    "Dialing": ("dialing", False),      # documented (V20-API-NOTES §d): this DN calls out
    "Ringing": ("ringing", False),      # documented: offered to this DN
    "Connected": ("talking", False),    # documented
    "Talking": ("talking", False),      # (inferred) the v20 reference 000's example answer shows it
    "Hold": ("talking", True),          # (inferred) the quick reference 001 lists it: connected, on hold
    "Held": ("talking", True),          # (inferred) 001 as well: connected, held by the other side
}
# A word not in the table keeps the leg's previous status (a connected leg stays connected); a leg
# first read with one is taken as offered to the DN, so it is tracked and ends Missed if nobody
# answers. Either way the word is reported (Unknowns).
_UNKNOWN_STATUS_FIRST = "ringing"

# `*_type` names -> our kind. Wextension, Wqueue, Wivr, Wroutepoint (3CX's examples), Wexternalline
# and Wspecialmenu (observed) are documented or seen; Wringgroup is (inferred) (docs/v20-call-flows.md
# "Type names"); "Extension" is the DN `type` in the v20 reference 000's example answer. "None" and
# "" mean no such DN. An unknown name reads as "other" (as the DN's own type: "extension").
_KINDS: dict[str, str] = {
    "Wextension": "extension",
    "Wexternalline": "external",
    "Wqueue": "queue",
    "Wringgroup": "ringgroup",
    "Wivr": "ivr",
    "Wroutepoint": "routepoint",
    "Wspecialmenu": "other",
    "Extension": "extension",
    "None": "",
    "": "",
}

# Every field of a CallParticipant (V20-API-NOTES §d, docs/v20-call-flows.md "Wire basics").
PARTICIPANT_FIELDS = frozenset({
    "id", "status", "dn", "party_caller_name", "party_dn", "party_caller_id", "party_did", "device_id",
    "party_dn_type", "direct_control", "originated_by_dn", "originated_by_type", "referred_by_dn",
    "referred_by_type", "on_behalf_of_dn", "on_behalf_of_type", "callid", "legid",
})
# The fields whose type names are read with _KINDS.
_TYPE_FIELDS = ("party_dn_type", "on_behalf_of_type", "referred_by_type", "originated_by_type")


def status_of(raw: Any) -> str:
    """Our leg status for a known v20 `status` ("dialing" | "ringing" | "talking"), "" for an unknown one."""
    return _STATUSES.get(str(raw or ""), ("", False))[0]


def is_hold_status(raw: Any) -> bool:
    """Whether a v20 `status` word means connected and on hold."""
    return _STATUSES.get(str(raw or ""), ("", False))[1]


def kind_of(type_name: Any, unknowns: Unknowns | None = None, *, where: str = "") -> str:
    """Our kind for a v20 `*_type` name ("" for an empty field, e.g. no on_behalf_of; "other" for an
    unknown name, which is reported to `unknowns`)."""
    name = "" if type_name is None else str(type_name)
    kind = _KINDS.get(name)
    if kind is None:
        if unknowns is not None:
            unknowns.note("type", name, where=where, reading="read as another kind of DN (usertype other)")
        return "other"
    return kind


def dn_kind_of(dn_info: dict[str, Any], unknowns: Unknowns | None = None) -> str:
    """What a monitored DN is, from a DNInfo (`GET /callcontrol/{dn}` → `type`); default extension.

    An unknown type name also reads as an extension: its calls then make webhooks, which is better
    than losing them (the name is reported).
    """
    name = "" if dn_info.get("type") is None else str(dn_info.get("type"))
    kind = _KINDS.get(name)
    if kind is None:
        if unknowns is not None:
            unknowns.note("type", name, where=f"/callcontrol/{dn_info.get('dn', '')}",
                          reading="the DN is taken for an extension")
        return "extension"
    return kind or "extension"


def leg_from_participant(participant: dict[str, Any], *, seen_at: datetime, dn_kind: str = "extension", dn: str = "",
                         participant_id: int = 0, previous: Leg | None = None,
                         unknowns: Unknowns | None = None) -> Leg:
    """A `Leg` from one v20 CallParticipant as `GET /callcontrol/{dn}/participants/{id}` answers it.

    `dn` and `participant_id` (from the entity path) stand in for missing fields; `previous` is the
    last reading of the same leg (an unknown status keeps its status). The machine keeps `seen_at`,
    `answered_at` and its bookkeeping from an earlier reading; a fresh one starts with `first_status`
    = its status. What this reading does not know goes to `unknowns`.
    """
    dn = str(participant.get("dn") or dn)
    participant_id = _int(participant.get("id")) or participant_id
    where = f"/callcontrol/{dn}/participants/{participant_id}"
    if unknowns is not None:
        for name in participant:
            if name not in PARTICIPANT_FIELDS:
                unknowns.note("field", name, where=where, reading="ignored")
        for name in sorted(PARTICIPANT_FIELDS - participant.keys()):
            unknowns.note("missing", name, where=where, reading="read as empty")
    status = _status(participant.get("status"), previous, unknowns, where)
    v20_call_id = _int(participant.get("callid"))
    if not v20_call_id:
        # Without a call id the leg cannot join its call: it makes a call of its own, numbered with
        # its participant id, so it is still tracked and ends with its webhooks.
        v20_call_id = participant_id
        if unknowns is not None:
            unknowns.note("unplaced", "no callid", where=where, reading="tracked as a call of its own")
    kinds = {name: kind_of(participant.get(name), unknowns, where=where) for name in _TYPE_FIELDS}
    return Leg(
        dn=dn,
        participant_id=participant_id,
        v20_call_id=v20_call_id,
        v20_leg_id=_int(participant.get("legid")),
        status=status,
        # party_caller_id is the outside number (inbound: the caller; outbound: the dialled number),
        # party_dn the trunk DN behind it (V20-API-NOTES §d observed samples).
        party_number=str(participant.get("party_caller_id") or participant.get("party_dn") or ""),
        party_name=str(participant.get("party_caller_name") or ""),
        party_dn=str(participant.get("party_dn") or ""),
        party_kind=kinds["party_dn_type"] or "other",
        did=str(participant.get("party_did") or ""),
        device_id=str(participant.get("device_id") or ""),
        is_remote_controllable=bool(participant.get("direct_control")),
        # on_behalf_of_* names the queue / ring group / IVR the leg rings for (inferred;
        # docs/v20-call-flows.md flows 2-4).
        via_dn=str(participant.get("on_behalf_of_dn") or ""),
        via_kind=kinds["on_behalf_of_type"],
        # referred_by_* names who transferred the call to this leg (inferred; flows 5-6).
        referred_by_dn=str(participant.get("referred_by_dn") or ""),
        seen_at=seen_at,
        answered_at=seen_at if status == "talking" else None,
        dn_kind=dn_kind,
        originated_by_dn=str(participant.get("originated_by_dn") or ""),
        first_status=status,
        is_on_hold=_is_on_hold(participant.get("status"), previous),
    )


def _status(raw: Any, previous: Leg | None, unknowns: Unknowns | None, where: str) -> str:
    status = status_of(raw)
    if status:
        return status
    if previous is not None:
        reading = f"kept as {previous.status} (the leg's previous status)"
        status = previous.status
    else:
        reading = f"a new leg is read as {_UNKNOWN_STATUS_FIRST}"
        status = _UNKNOWN_STATUS_FIRST
    if unknowns is not None:
        unknowns.note("status", "" if raw is None else raw, where=where, reading=reading)
    return status


def _is_on_hold(raw: Any, previous: Leg | None) -> bool:
    if status_of(raw):
        return is_hold_status(raw)
    return bool(previous and previous.is_on_hold)


def _int(value: Any) -> int:
    try:
        return int(value or 0)
    except (TypeError, ValueError):
        return 0


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
    return (a.status, a.is_on_hold, a.party_number, a.party_dn, a.via_dn, a.referred_by_dn, a.device_id) == \
           (b.status, b.is_on_hold, b.party_number, b.party_dn, b.via_dn, b.referred_by_dn, b.device_id)


def call_id_of_event(attached_data: Any) -> int | None:
    """The `callid` an Upsert's `attached_data` names, if any.

    (inferred) What `attached_data` holds for participant Upserts is undocumented (V20-API-NOTES §e
    shows the key, never a value; the simulator sends null). Should a build put the participant's
    fields there, `callid` tells the call of a participant gone before it could be read.
    """
    if isinstance(attached_data, dict) and str(attached_data.get("callid", "")).isdigit():
        return int(attached_data["callid"])
    return None
