"""PBX-wide commands (legacy `pbx.*`) and the license/info answer of /webapi/<key>/.

pbx.ac.get and pbx.callsinfo.get show the calls the gateway can see: those touching a DN the API
client monitors (V20-API-NOTES §e). Their connection entries come from the live model's legs.
"""
from __future__ import annotations

import logging
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any, Iterable
from zoneinfo import ZoneInfo

import gateway
from gateway.webapi import answers
from gateway.webapi.registry import command

if TYPE_CHECKING:
    from gateway.live.model import Call, Leg
    from gateway.services import Services

logger = logging.getLogger(__name__)

# Leg status -> the legacy connection status word.
_STATUS = {"talking": "Connected", "ringing": "Ringing", "dialing": "Dialing"}


def _expiry(value: Any, zone: str) -> str:
    """SystemStatus.ExpirationDate (ISO) as the legacy "dd.MM.yyyy HH:mm:ss" in the PBX's zone."""
    if not value:
        return ""
    try:
        moment = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError:
        return ""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return moment.astimezone(ZoneInfo(zone)).strftime("%d.%m.%Y %H:%M:%S")


def license_info(ctx: Services) -> dict[str, Any]:
    """The /webapi/<key>/ answer: this product, and the PBX licence as v20's SystemStatus shows it."""
    status = ctx.xapi.get("/SystemStatus") or {}
    return {
        "product": "3cx-gateway",
        "version": gateway.__version__,
        "release": "Webhooks",
        "licenseExpire": _expiry(status.get("ExpirationDate"), ctx.config.pbx.timezone),
        "clientLicensesNum": str(status.get("MaxUserExtensions") or 0),
        "concurrentCalls": int(status.get("MaxSimCalls") or 0),
        "callRecords": bool(ctx.config.recordings.enabled),
        "api": True,
        "quality": False,
    }


def _iso(moment: datetime | None) -> str | None:
    """ "2022-12-29T08:37:16Z" (UTC, whole seconds) or None."""
    if moment is None:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return moment.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def legacy_direction(call: Call) -> str:
    """The legacy direction word for a call.

    An inbound call that no extension holds yet (only an IVR or a queue has it) is "FromExternal",
    003's "came from an external line, but it hasn't been distributed yet". "External" (line to
    line) and "FromInternal" have no counterpart in the live model and are not produced.
    """
    if call.direction == "outbound":
        return "Outbound"
    if call.direction == "internal":
        return "Internal"
    if not any(leg.dn_kind == "extension" for leg in call.legs):
        return "FromExternal"
    return "Inbound"


def _connection(leg: Leg) -> dict[str, Any]:
    """One legacy connection entry {dnNum, dnType, externalParty, status}."""
    return {
        "dnNum": leg.dn,
        "dnType": leg.dn_kind,
        "externalParty": leg.party_number or leg.party_dn,
        "status": _STATUS.get(leg.status, leg.status.title()),
    }


@command("pbx.calls.get")
def pbx_calls_get(ctx: Services) -> dict[str, Any]:
    """The number of calls in progress: the live model's count when live, else SystemStatus.CallsActive.

    Difference on v20: while the event stream is up, only calls that touch a monitored DN count.
    """
    if ctx.live.is_live:
        return answers.result(len(ctx.live.calls()))
    status = ctx.xapi.get("/SystemStatus") or {}
    return answers.result(int(status.get("CallsActive") or 0))


@command("pbx.ac.get")
def pbx_ac_get(ctx: Services) -> dict[str, Any]:
    """Active connections grouped by call: callID, direction, DID and each monitored leg's connection.

    Difference on v20: only monitored DNs appear; dnType is extension, queue, ringgroup, ivr or
    external; direction "External" and "FromInternal" are never produced.
    """
    calls = ctx.live.calls()
    return {
        "count": len(calls),
        "AConnByCallID": [
            {"callID": int(call.v20_call_id), "direction": legacy_direction(call), "did": call.did,
             "AConnList": [_connection(leg) for leg in call.legs]}
            for call in calls
        ],
    }


def _state(call: Call) -> str:
    """Legacy call state: Talking (an extension talks), Transferring, Routing or Unknown.

    A call an IVR or a queue holds while phones ring is still being routed, not talking.
    """
    if any(leg.referred_by_dn and leg.status != "talking" for leg in call.legs):
        return "Transferring"
    if any(leg.status == "talking" and leg.dn_kind == "extension" for leg in call.legs):
        return "Talking"
    return "Routing" if call.legs else "Unknown"


def _owner_first(legs: Iterable[Leg]) -> list[Leg]:
    """Talking extensions first, then other talking legs, each by first appearance: the head owns the call."""
    return sorted(legs, key=lambda leg: (not (leg.status == "talking" and leg.dn_kind == "extension"),
                                         leg.status != "talking", leg.seen_at))


def _call_info(call: Call) -> dict[str, Any]:
    legs = _owner_first(call.legs)
    owner = legs[0] if legs else None
    others = legs[1:]
    talk_to = [_connection(leg) for leg in others if leg.status == "talking"]
    if owner is not None and owner.status == "talking" and not talk_to:
        # The owner talks to a party the gateway does not monitor (an outside caller, say):
        # describe that party from the owner's leg.
        talk_to.append({"dnNum": owner.party_dn or owner.party_number, "dnType": owner.party_kind,
                        "externalParty": owner.dn, "status": "Connected"})
    return {
        "callID": int(call.v20_call_id),
        "state": _state(call),
        "startedAt": _iso(call.arrived_at),
        "answeredAt": _iso(call.answered_at),
        "did": call.did,
        "owner": _connection(owner) if owner is not None else None,
        "talkTo": talk_to,
        "routingTo": [_connection(leg) for leg in others if leg.status != "talking"],
    }


@command("pbx.callsinfo.get")
def pbx_callsinfo_get(ctx: Services) -> dict[str, Any]:
    """Calls in progress with state, start/answer times (UTC), DID, owner, talkTo and routingTo.

    Difference on v20: only calls that touch a monitored DN appear (see pbx.ac.get for dnType).
    """
    calls = ctx.live.calls()
    return {"count": len(calls), "callsInfo": [_call_info(call) for call in calls]}
