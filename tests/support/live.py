"""Builders of the live-model tests: v20 participants, legs, machine events and expected webhooks."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any

from gateway.live import v20
from gateway.live.machine import GraceOver, LegGone, LegSeen, Rules, advance
from gateway.live.model import Call, Leg

T0 = datetime(2026, 11, 24, 9, 0, 0, tzinfo=timezone.utc)   # 10:00:00 in Europe/Prague
ZONE = "Europe/Prague"
CALLER = "+420774852529"
TRUNK = "10000"
DID = "+420233000111"
DID_NAME = "PragueDID"
CALL = 698


def participant(dn: str, participant_id: int, status: str = "Ringing", *, call: int = CALL,
                **fields: Any) -> dict:
    """A v20 CallParticipant as GET /callcontrol/{dn}/participants/{id} answers it (an outside caller)."""
    body = {
        "id": participant_id, "status": status, "dn": dn, "party_caller_name": "",
        "party_dn": TRUNK, "party_caller_id": CALLER, "party_did": DID,
        "device_id": f"sip:{dn}@127.0.0.1:5060", "party_dn_type": "Wexternalline",
        "direct_control": False, "originated_by_dn": "", "originated_by_type": "",
        "referred_by_dn": "", "referred_by_type": "", "on_behalf_of_dn": "", "on_behalf_of_type": "",
        "callid": call, "legid": participant_id,
    }
    body.update(fields)
    return body


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def make_leg(dn: str = "101", participant_id: int = 1, status: str = "Ringing", *, seconds: float = 0,
             dn_kind: str = "extension", **fields: Any) -> Leg:
    """A Leg read from `participant(...)` as the watcher would build it."""
    return v20.leg_from_participant(participant(dn, participant_id, status, **fields),
                                    seen_at=at(seconds), dn_kind=dn_kind)


def seen(dn: str, participant_id: int, status: str = "Ringing", seconds: float = 0, *,
         dn_kind: str = "extension", is_resync: bool = False, **fields: Any) -> LegSeen:
    """A LegSeen for `participant(...)` at T0 + seconds (DID name PragueDID when it has a DID)."""
    leg = make_leg(dn, participant_id, status, seconds=seconds, dn_kind=dn_kind, **fields)
    return LegSeen(leg, at(seconds), did_name=DID_NAME if leg.did == DID else "", is_resync=is_resync)


def gone(dn: str, participant_id: int, seconds: float = 0, *, is_resync: bool = False) -> LegGone:
    return LegGone(dn, participant_id, at(seconds), is_resync=is_resync)


def grace_over(seconds: float) -> GraceOver:
    """The grace period of every call whose last leg went is over, at T0 + seconds."""
    return GraceOver(at(seconds))


def outbound(dn: str, participant_id: int, status: str = "Dialing", seconds: float = 0, **fields: Any) -> LegSeen:
    """A leg of extension `dn` calling the outside number CALLER."""
    fields = {"party_did": "", "originated_by_dn": dn, "originated_by_type": "Wextension", **fields}
    return seen(dn, participant_id, status, seconds, **fields)


def internal(dn: str, participant_id: int, status: str, other: str, seconds: float = 0, **fields: Any) -> LegSeen:
    """A leg of extension `dn` in a call with extension `other`."""
    fields = {"party_dn": other, "party_caller_id": other, "party_dn_type": "Wextension",
              "party_did": "", **fields}
    if status == "Dialing":
        fields.setdefault("originated_by_dn", dn)
    return seen(dn, participant_id, status, seconds, **fields)


def run(events: list, rules: Rules | None = None) -> tuple[list[dict], dict[int, Call]]:
    """Feed events to `advance` as the watcher does (one Call per v20 call id); return the webhook
    params in order and the calls still in progress."""
    rules = rules or Rules(timezone=ZONE)
    calls: dict[int, Call] = {}
    out: list[dict] = []
    for event in events:
        if isinstance(event, GraceOver):
            for call_id in [c.v20_call_id for c in calls.values() if c.is_ending]:
                call, webhooks = advance(calls.pop(call_id), event, rules)
                out += [w.params() for w in webhooks]
            continue
        if isinstance(event, LegSeen):
            call_id = event.leg.v20_call_id
        else:
            call_id = next((c.v20_call_id for c in calls.values()
                            if c.leg(event.dn, event.participant_id)), -1)
        call, webhooks = advance(calls.get(call_id), event, rules)
        if call is not None and not call.is_ended:
            calls[call_id] = call
        else:
            calls.pop(call_id, None)
        out += [w.params() for w in webhooks]
    return out, calls


def link_id(link: int, call: int = CALL, arrived: str = "261124100000") -> str:
    return f"{arrived}_{call}-{link}"


def ringing(user: str, usertype: str = "ext", link: int = 0, *, callerid: str = CALLER, did: str = DID_NAME,
            event: str = "ringing", **ids: Any) -> dict:
    """Expected params of a ringing webhook."""
    return {"event": event, "callerid": callerid, "user": user, "usertype": usertype, "did": did,
            "id": link_id(link, **ids)}


def started(event: str, user: str, trtype: str = "NotDef", link: int = 1, *, callerid: str = CALLER,
            did: str | None = DID_NAME, **ids: Any) -> dict:
    """Expected params of a call-start webhook (no `did` for outgoing calls)."""
    params = {"callerid": callerid, "event": event, "user": user}
    if not event.endswith("outgoing"):
        params["did"] = did
    params.update({"trtype": trtype, "id": link_id(link, **ids)})
    return params


def ended(event: str, user: str, finishtype: str = "Ok", transfer: bool = False, link: int = 1, *,
          callerid: str = CALLER, title: Any = None, **ids: Any) -> dict:
    """Expected params of a call-end webhook; `title` is compared only when given."""
    params = {"event": event, "callerid": callerid, "user": user, "finishtype": finishtype,
              "transfer": "true" if transfer else "false", "title": title, "id": link_id(link, **ids)}
    return params


def without_titles(params: list[dict]) -> list[dict]:
    """Params with every end's title blanked, for comparisons that do not check titles."""
    return [{**p, "title": None} if "title" in p else p for p in params]
