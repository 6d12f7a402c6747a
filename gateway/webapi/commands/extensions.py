"""Extension commands (legacy `ext.*`): information, state, forwarding, queue login, options,
devices, and creating, deleting and updating extensions (v20 `/Users`, V20-API-NOTES §b).
"""
from __future__ import annotations

import logging
import re
from typing import TYPE_CHECKING, Any

from gateway.webapi import answers, lookup
from gateway.webapi.errors import BadParameter, NotPossibleOnV20
from gateway.webapi.params import Choice, Extension, Integer, OnOff, Text
from gateway.webapi.registry import command

if TYPE_CHECKING:
    from gateway.services import Services

logger = logging.getLogger(__name__)

# Legacy recording modes (ext.options.set recording=, ext.info.get recordType) <-> v20 flags
# (RecordCalls, RecordExternalCallsOnly). 003 names them "disabled / external calls only / all calls".
RECORDING_FLAGS = {"off": (False, False), "external": (True, True), "all": (True, False)}
RECORD_TYPES = {"off": "Disabled", "external": "External", "all": "All"}

# Older spellings of the five forwarding profiles: v18 called them internally Available, Away,
# DND, Lunch and BusinessTrip, shown as "Out of office", "Custom 1" and "Custom 2" for the last three.
# Compared after lower-casing and dropping spaces, "-" and "_" ("OutOfOffice" matches too).
PROFILE_ALIASES = {
    "dnd": "Out of office", "donotdisturb": "Out of office",
    "lunch": "Custom 1", "businesstrip": "Custom 2",
}

# ext.update: legacy parameter -> v20 User field, for the ones that map one to one.
UPDATE_FIELDS = {
    "enabled": "Enabled", "firstname": "FirstName", "lastname": "LastName", "email": "EmailAddress",
    "mobile": "Mobile", "authid": "AuthID", "authpass": "AuthPassword", "callerid": "OutboundCallerID",
    "deliveraudio": "PbxDeliversAudio", "sipid": "SIPID", "vmenabled": "VMEnabled", "vmpin": "VMPIN",
    "vmplaycallerid": "VMPlayCallerID", "internal": "Internal",
}
# Legacy numeric codes -> v20 enum names (order of the v18 enums, V20-API-NOTES §b).
RECORD_CALLS_CODES = {0: "off", 1: "all", 2: "external"}
VM_EMAIL_OPTIONS = {0: "None", 1: "Notification", 2: "Attachment", 3: "AttachmentAndDelete"}
VM_PLAY_DATETIME = {0: "None", 1: "Play12Hr", 2: "Play24Hr"}
# Legacy SIP options with no v20 User field; accepted and ignored (see the README's command table).
IGNORED_UPDATE_PARAMS = ("reinvite", "replaces")


def _profile_key(name: str) -> str:
    return re.sub(r"[\s_-]+", "", name).lower()


def _recording_mode(user: dict[str, Any]) -> str:
    if not user.get("RecordCalls"):
        return "off"
    return "external" if user.get("RecordExternalCallsOnly") else "all"


def _recording_fields(mode: str) -> dict[str, Any]:
    record, external_only = RECORDING_FLAGS[mode]
    return {"RecordCalls": record, "RecordExternalCallsOnly": external_only}


def _find_profile(profiles: list[dict[str, Any]], status: str) -> dict[str, Any]:
    """The forwarding profile `status` names (its name, custom name or a legacy alias)."""
    wanted = _profile_key(status)
    wanted = _profile_key(PROFILE_ALIASES.get(wanted, wanted))
    for profile in profiles:
        names = (profile.get("Name") or "", profile.get("CustomName") or "")
        if wanted in (_profile_key(n) for n in names if n):
            return profile
    valid = [p.get("Name") for p in profiles] + ["DND", "Lunch", "Business trip"]
    raise BadParameter("status", "expected one of " + ", ".join(str(v) for v in valid))


@command("ext.info.get", num=Extension())
def ext_info_get(ctx: Services, num: str) -> dict[str, Any]:
    """Extension `num`'s names, email, mobile, enabled, external calls allowed and recording mode."""
    user = lookup.user(ctx, num, select="Number,FirstName,LastName,EmailAddress,Mobile,Enabled,"
                                        "Internal,RecordCalls,RecordExternalCallsOnly")
    return {
        "num": str(user["Number"]),
        "name": user.get("FirstName") or "",
        "lastname": user.get("LastName") or "",
        "email": user.get("EmailAddress") or "",
        "mobile": user.get("Mobile") or "",
        "enabled": bool(user.get("Enabled")),
        "externalCalls": not user.get("Internal"),
        "recordType": RECORD_TYPES[_recording_mode(user)],
    }


@command("ext.state.get", num=Extension())
def ext_state_get(ctx: Services, num: str) -> dict[str, Any]:
    """Extension `num`'s registration, Free/Busy, forwarding profile and queue login status.

    Difference on v20: v20 keeps one login status for all queues, so each qStatus entry reports it.
    """
    user = lookup.cached(ctx, ("user-state", num), lambda: lookup.user(
        ctx, num, select="Number,IsRegistered,CurrentProfileName,QueueStatus"), is_state=True)
    logged_in = user.get("QueueStatus") == "LoggedIn"
    queues = lookup.cached(ctx, ("queues-agents",), lambda: ctx.xapi.list(
        "Queues", select="Id,Number", expand="Agents"))
    return {
        "num": str(user["Number"]),
        "registered": bool(user.get("IsRegistered")),
        "status": "Busy" if ctx.live.is_busy(num) else "Free",
        "fwdName": user.get("CurrentProfileName") or "",
        "qGlobalStatus": logged_in,
        "qStatus": [{"num": str(q["Number"]), "status": logged_in} for q in queues
                    if any(str(a.get("Number")) == num for a in q.get("Agents") or [])],
    }


@command("ext.fwd.set", write=True, num=Extension(), status=Text(required=False, max_len=40),
         message=Text(required=False, max_len=500))
def ext_fwd_set(ctx: Services, num: str, status: str | None, message: str | None) -> dict[str, Any]:
    """Switch extension `num` to forwarding profile `status`; `message` sets that profile's status text.

    Without `status`, `message` goes to the current profile (004's example leaves status empty).
    """
    if status is None and message is None:
        raise BadParameter("status", "required; expected a forwarding profile name such as Available")
    user = lookup.user(ctx, num, select="Id,Number,CurrentProfileName", expand="ForwardingProfiles")
    profiles = user.get("ForwardingProfiles") or []
    profile = _find_profile(profiles, status or user.get("CurrentProfileName") or "")
    change: dict[str, Any] = {"CurrentProfileName": profile["Name"]}
    if message is not None:
        profile["CustomMessage"] = message
        # A collection in a PATCH replaces the whole collection (V20-API-NOTES §0): send them all.
        change["ForwardingProfiles"] = profiles
    ctx.xapi.patch(f"/Users({user['Id']})", change)
    logger.info("extension %s: forwarding profile set to %s", num, profile["Name"])
    return answers.result(True)


@command("ext.queueglobal.set", write=True, num=Extension(), log=OnOff())
def ext_queueglobal_set(ctx: Services, num: str, log: bool) -> dict[str, Any]:
    """Log extension `num` in to (log=on) or out of (log=off) all its queues."""
    user = lookup.user(ctx, num, select="Id,Number")
    ctx.xapi.patch(f"/Users({user['Id']})", {"QueueStatus": "LoggedIn" if log else "LoggedOut"})
    logger.info("extension %s: queue status %s", num, "LoggedIn" if log else "LoggedOut")
    return answers.result(True)


@command("ext.queue.set", write=True, num=Extension(), queue=Extension(), log=OnOff())
def ext_queue_set(ctx: Services, num: str, queue: str, log: bool) -> dict[str, Any]:
    """Not possible on v20: an agent logs in to all queues or none (use ext.queueglobal.set)."""
    raise NotPossibleOnV20("3CX v20 has no per-queue agent login; ext.queueglobal.set logs an "
                           "extension in or out of all its queues")


@command("ext.options.set", write=True, num=Extension(), enabled=OnOff(required=False),
         external=OnOff(required=False), recording=Choice("off", "external", "all", required=False))
def ext_options_set(ctx: Services, num: str, enabled: bool | None, external: bool | None,
                    recording: str | None) -> dict[str, Any]:
    """Set extension `num`'s enabled, external calls allowed and recording mode; only those given."""
    change: dict[str, Any] = {}
    if enabled is not None:
        change["Enabled"] = enabled
    if external is not None:
        change["Internal"] = not external
    if recording is not None:
        change.update(_recording_fields(recording))
    if not change:
        raise BadParameter("enabled", "give at least one of enabled, external or recording")
    user = lookup.user(ctx, num, select="Id,Number")
    ctx.xapi.patch(f"/Users({user['Id']})", change)
    logger.info("extension %s: options %s changed", num, ",".join(change))
    return answers.result(True)


@command("ext.devices.get", num=Extension())
def ext_devices_get(ctx: Services, num: str) -> dict[str, Any]:
    """Extension `num`'s registered phones and apps: user agent and SIP contact (the device id).

    Difference on v20: Call Control shows devices only of DNs the API client monitors; others
    answer 502 saying so.
    """
    lookup.user(ctx, num, select="Id,Number")  # an unknown number answers 404, not the PBX's 403
    devices = ctx.callcontrol.devices(num)
    return {"count": len(devices),
            "devices": [{"userAgent": d.get("user_agent") or "", "contact": d.get("device_id") or ""}
                        for d in devices]}


@command("ext.new", write=True, num=Extension())
def ext_new(ctx: Services, num: str) -> dict[str, Any]:
    """Create extension `num` in the default department (the PBX refuses a number in use)."""
    groups = ctx.xapi.list("Groups", select="Id,IsDefault")
    default = next((g for g in groups if g.get("IsDefault")), None)
    body: dict[str, Any] = {"Number": num}
    if default is not None:
        body["Groups"] = [{"GroupId": default["Id"], "Rights": {"RoleName": "users"}}]
    ctx.xapi.post("/Users", body)
    logger.info("extension %s created", num)
    return answers.result("Create extension")


@command("ext.del", write=True, num=Extension())
def ext_del(ctx: Services, num: str) -> dict[str, Any]:
    """Delete extension `num`."""
    user = lookup.user(ctx, num, select="Id,Number")
    ctx.xapi.delete(f"/Users({user['Id']})")
    logger.info("extension %s deleted", num)
    return answers.result("Delete extension")


def _update_fields(args: dict[str, Any]) -> dict[str, Any]:
    """The v20 User fields for the ext.update parameters that were given."""
    change = {UPDATE_FIELDS[name]: value for name, value in args.items()
              if name in UPDATE_FIELDS and value is not None}
    if args.get("recordcalls") is not None:
        change.update(_recording_fields(RECORD_CALLS_CODES[args["recordcalls"]]))
    if args.get("vmemail") is not None:
        change["VMEmailOptions"] = VM_EMAIL_OPTIONS[args["vmemail"]]
    if args.get("vmplaydatetime") is not None:
        change["VMPlayMsgDateTime"] = VM_PLAY_DATETIME[args["vmplaydatetime"]]
    return change


@command("ext.update", write=True, num=Extension(), enabled=OnOff(required=False),
         firstname=Text(required=False, max_len=100), lastname=Text(required=False, max_len=100),
         email=Text(required=False, max_len=254), mobile=Text(required=False, max_len=40),
         authid=Text(required=False, max_len=64), authpass=Text(required=False, max_len=64),
         callerid=Text(required=False, max_len=40), deliveraudio=OnOff(required=False),
         recordcalls=Integer(required=False, maximum=2), sipid=Text(required=False, max_len=64),
         reinvite=OnOff(required=False), replaces=OnOff(required=False),
         vmemail=Integer(required=False, maximum=3), vmenabled=OnOff(required=False),
         vmpin=Extension(required=False, max_len=10), vmplaycallerid=OnOff(required=False),
         vmplaydatetime=Integer(required=False, maximum=2), internal=OnOff(required=False),
         noanswertimeout=Integer(required=False, minimum=1, maximum=600))
def ext_update(ctx: Services, num: str, enabled: bool | None, firstname: str | None,
               lastname: str | None, email: str | None, mobile: str | None, authid: str | None,
               authpass: str | None, callerid: str | None, deliveraudio: bool | None,
               recordcalls: int | None, sipid: str | None, reinvite: bool | None,
               replaces: bool | None, vmemail: int | None, vmenabled: bool | None,
               vmpin: str | None, vmplaycallerid: bool | None, vmplaydatetime: int | None,
               internal: bool | None, noanswertimeout: int | None) -> dict[str, Any]:
    """Update extension `num`'s fields (names, email, mobile, auth, caller id, recording, voicemail...).

    Difference on v20: recordcalls 0/1/2 = off/all/external; noanswertimeout applies to every
    forwarding profile; reinvite and replaces have no v20 counterpart and are ignored.
    """
    args = {name: value for name, value in locals().items() if name not in ("ctx", "num")}
    change = _update_fields(args)
    timeout_s = args.get("noanswertimeout")
    if not change and timeout_s is None:
        if any(args.get(name) is not None for name in IGNORED_UPDATE_PARAMS):
            raise NotPossibleOnV20("3CX v20 has no reinvite or replaces setting per extension")
        raise BadParameter("firstname", "give at least one field to update")
    user = lookup.user(ctx, num, select="Id,Number", expand="ForwardingProfiles" if timeout_s else None)
    if timeout_s is not None:
        profiles = user.get("ForwardingProfiles") or []
        for profile in profiles:
            profile["NoAnswerTimeout"] = timeout_s
        change["ForwardingProfiles"] = profiles
    ctx.xapi.patch(f"/Users({user['Id']})", change)
    logger.info("extension %s: updated %s", num, ",".join(change))
    return answers.result("Update extension")
