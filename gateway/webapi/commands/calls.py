"""Call control commands: makecall, drop, answer, transfer, join (ext.devices.get lives in extensions.py)."""
from __future__ import annotations

import logging
from contextlib import contextmanager
from fnmatch import fnmatchcase
from typing import TYPE_CHECKING, Any, Iterator

from gateway.pbx import odata
from gateway.pbx.errors import PbxNotFound, PbxRejected
from gateway.webapi import answers
from gateway.webapi.errors import NoSuchNumber, NotPossibleOnV20
from gateway.webapi.params import Extension, Integer, Number, Text
from gateway.webapi.registry import command

if TYPE_CHECKING:
    from gateway.services import Services

logger = logging.getLogger(__name__)


def _is_dn(ctx: Services, number: str) -> bool:
    """Whether any DN (extension, queue, IVR, ...) on the PBX has this number."""
    return bool(ctx.xapi.list("Peers", filter=odata.eq("Number", number), select="Number"))


@contextmanager
def _known_dn(ctx: Services, number: str) -> Iterator[None]:
    """Answer NoSuchNumber when Call Control refuses `number` because the PBX has no such DN."""
    try:
        yield
    except PbxNotFound:
        raise NoSuchNumber(f"{number} does not exist on the PBX") from None
    except PbxRejected as exc:
        # Call Control answers 403 for every DN off the API client's monitored list, unknown ones too.
        if exc.status == 403 and not _is_dn(ctx, number):
            raise NoSuchNumber(f"{number} does not exist on the PBX") from None
        raise


def _pick_device(devices: list[dict[str, Any]], preference: tuple[str, ...]) -> dict[str, Any] | None:
    """The device to call from: the one whose user agent matches the earliest pattern of `preference`
    ([webapi] makecall_devices; a lone * ranks every agent no other pattern matches), the first
    listed among equals; None if none. v20's DNDevice is {dn, device_id, user_agent} (V20-API-NOTES §d):
    the user agent is all it says about a device."""
    def rank(device: dict[str, Any]) -> int:
        agent = str(device.get("user_agent") or "").lower()
        matched = (i for i, pattern in enumerate(preference) if pattern != "*" and fnmatchcase(agent, pattern.lower()))
        return next(matched, preference.index("*") if "*" in preference else len(preference))

    return min(devices, key=rank, default=None)


@command("makecall", first=Extension(), second=Number(), contact=Text(required=False, max_len=200),
         timeout=Integer(required=False, minimum=1, maximum=600))
def makecall(ctx: Services, first: str, second: str, contact: str | None, timeout: int | None) -> dict[str, Any]:
    """Ring `first` (an extension, or a queue/IVR/CFD number) on device `contact` if given (as
    ext.devices.get lists it) for up to `timeout` seconds, then dial `second` when it answers.
    Answers 004's `first`, `second` plus the added `id`: the call-link id the call's start and end
    webhooks carry.

    `id` ends in `-1`; webhooks sent before anyone answers (a ringing, or the missed end of a call
    nobody picked up) carry the same id with `-0`, and every event of the call starts with the same
    `<date>_<call>` (the `chid` field). `id` is "" when the PBX did not say which call it placed.

    Difference on v20: an extension with devices rings one device, chosen by [webapi]
    makecall_devices (desk phones first by default), where v18 rang the extension.
    """
    # MakeCallRequest `timeout` is documented only as "Seconds"; that it bounds how long `first`
    # rings, as the legacy dialer's timeout did, is (inferred) (callcontrol-v20.openapi.yaml).
    with _known_dn(ctx, first):
        devices = ctx.callcontrol.devices(first)
        device = (_device_named(first, devices, contact) if contact
                  else _pick_device(devices, ctx.config.webapi.makecall_devices))
        if device:  # 3CX's own dialer prefers the device form (V20-API-NOTES §d)
            started = ctx.callcontrol.makecall_from_device(first, device["device_id"], second, timeout_s=timeout)
        else:  # queues, IVRs, CFD apps and unregistered extensions: the DN form (004's note)
            started = ctx.callcontrol.makecall(first, second, timeout_s=timeout)
    logger.info("makecall %s -> %s via %s", first, second, device["device_id"] if device else "DN")
    return {"first": first, "second": second, "id": _call_link_id(ctx, first, started)}


def _device_named(first: str, devices: list[dict[str, Any]], contact: str) -> dict[str, Any]:
    """The device `contact` names (its whole id, or a part of it such as "sip:102@…;rinstance=…")."""
    found = next((d for d in devices if d.get("device_id") == contact), None)
    found = found or next((d for d in devices if contact in str(d.get("device_id") or "")), None)
    if found is None:
        raise NoSuchNumber(f"extension {first} has no registered device {contact!r} (see ext.devices.get)")
    return found


def _call_link_id(ctx: Services, first: str, started: dict[str, Any]) -> str:
    """The link-1 id of the call makecall placed; "" when the PBX did not say which call it is."""
    result = started.get("result") if isinstance(started, dict) else None
    v20_call_id = result.get("callid") if isinstance(result, dict) else None
    if v20_call_id is None:
        # The DN form names no participant when the DN has several devices (V20-API-NOTES §d):
        # the call is the newest one `first` itself originated.
        own = [p for p in ctx.callcontrol.participants(first) if p.get("originated_by_dn") == first]
        v20_call_id = max(own, key=lambda p: int(p.get("id") or 0)).get("callid") if own else None
    if v20_call_id is None:
        logger.warning("makecall %s: the PBX did not name the new call; answering without an id", first)
        return ""
    return ctx.watcher.link_id(int(v20_call_id), 1)


@command("drop", num=Extension(), contact=Text(required=False, max_len=200), external=Number(required=False))
def drop(ctx: Services, num: str, contact: str | None, external: str | None) -> dict[str, Any]:
    """Hang up extension `num`'s call, narrowed by device `contact` and far end `external`."""
    leg = ctx.live.find_leg(num, contact=contact, external=external)
    ctx.callcontrol.drop(leg.dn, leg.participant_id)
    logger.info("drop: %s participant %s (call %s)", leg.dn, leg.participant_id, leg.v20_call_id)
    return answers.result("Drop")


@command("answer", num=Extension(), contact=Text(required=False, max_len=200))
def answer(ctx: Services, num: str, contact: str | None) -> dict[str, Any]:
    """Answer the call ringing on extension `num`.

    Difference on v20: only devices with remote control (uaCSTA) can be answered; others answer
    501 saying so.
    """
    leg = ctx.live.find_leg(num, contact=contact, statuses=("ringing",))
    if not leg.is_remote_controllable:
        # Call Control answers only participants with direct_control (uaCSTA) (V20-API-NOTES §d).
        raise NotPossibleOnV20(f"the device ringing on {num} does not support remote control (uaCSTA); "
                               "v20 can answer a call only on such devices")
    ctx.callcontrol.answer(leg.dn, leg.participant_id)
    logger.info("answer: %s participant %s (call %s)", leg.dn, leg.participant_id, leg.v20_call_id)
    return answers.result("Answer")


@command("transfer", num=Extension(), contact=Text(required=False, max_len=200), dest=Number())
def transfer(ctx: Services, num: str, contact: str | None, dest: str) -> dict[str, Any]:
    """Blind-transfer extension `num`'s call to `dest` (a ringing call is diverted instead)."""
    leg = ctx.live.find_leg(num, contact=contact, statuses=("talking", "ringing"))
    # transferto works only on a connected participant, divert only on a ringing one (V20-API-NOTES §d).
    if leg.status == "talking":
        ctx.callcontrol.transferto(leg.dn, leg.participant_id, dest)
    else:
        ctx.callcontrol.divert(leg.dn, leg.participant_id, dest)
    logger.info("transfer: %s participant %s (%s) -> %s", leg.dn, leg.participant_id, leg.status, dest)
    return answers.result("Transfer")


@command("join", num=Extension())
def join(ctx: Services, num: str) -> dict[str, Any]:
    """Join extension `num`'s calls into a conference.

    Not possible on v20: Call Control has no conference or join primitive.
    """
    raise NotPossibleOnV20("v20 Call Control has no join or conference action; "
                           "calls cannot be merged through the API")
