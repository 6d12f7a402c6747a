"""How the simulator's XAPI writes each entity: Directory objects as v20's OData JSON.

Field names, types and enum names follow 3CX's official OpenAPI document for 20.0.10 (see xapi.py).
"""
from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

from gateway.sim.calls import display_name
from gateway.sim.model import (CallLogRow, Contact, Department, Directory, ForwardingProfile, InboundRule, Ivr,
                               Queue, Recording, RingGroup, Trunk, User)


def _iso(value: Any) -> str | None:
    """A date-time as v20 writes it (UTC, 'Z'); strings pass through."""
    if value is None or isinstance(value, str):
        return value
    if value.tzinfo is None:
        value = value.replace(tzinfo=timezone.utc)
    return value.astimezone(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _dn_name(directory: Directory, number: str) -> str:
    if number in directory.users:
        return display_name(directory.users[number])
    for table in (directory.queues, directory.ring_groups, directory.ivrs, directory.trunks):
        if number in table:
            return table[number].name
    return ""


_PEER_TYPES = {"extension": "Extension", "queue": "Queue", "ringgroup": "RingGroup", "ivr": "IVR",
               "trunk": "ExternalLine"}
_DESTINATION_TYPES = {"extension": "Extension", "queue": "Queue", "ringgroup": "RingGroup", "ivr": "IVR"}
_IVR_FORWARD_TYPES = {"extension": "Extension", "queue": "Queue", "ringgroup": "RingGroup", "ivr": "IVR"}


def _destination(directory: Directory, number: str) -> dict:
    kind = directory.dn_kind(number)
    return {"To": _DESTINATION_TYPES.get(kind or "", "None"), "Number": number,
            "Name": _dn_name(directory, number), "External": "", "Type": _PEER_TYPES.get(kind or "", "None"),
            "Tags": []}


def render_user(directory: Directory, user: User) -> dict:
    return {
        "Id": user.id, "Number": user.number, "FirstName": user.first_name, "LastName": user.last_name,
        "DisplayName": display_name(user), "EmailAddress": user.email, "Mobile": user.mobile,
        "Enabled": user.enabled, "IsRegistered": user.is_registered, "CurrentProfileName": user.current_profile,
        "QueueStatus": user.queue_status, "RecordCalls": user.record_calls,
        "RecordExternalCallsOnly": user.record_external_only, "RecordEmailNotify": False,
        "AllowOwnRecordings": False, "ForbidRecording": False, "Internal": user.internal_only,
        "OutboundCallerID": user.outbound_caller_id, "AuthID": user.auth_id, "AuthPassword": user.auth_password,
        "SIPID": user.sip_id, "PbxDeliversAudio": user.pbx_delivers_audio, "VMEnabled": user.vm_enabled,
        "VMPIN": user.vm_pin, "VMPlayCallerID": user.vm_play_caller_id,
        "VMPlayMsgDateTime": user.vm_play_msg_datetime, "VMEmailOptions": user.vm_email_options,
        "VMDisablePinAuth": False, "Language": "EN", "PromptSet": "", "Require2FA": False, "Enable2FA": False,
        "SendEmailMissedCalls": False, "AccessPassword": "", "HideInPhonebook": False, "OfficeHoursProps": [],
        "PrimaryGroupId": user.department_ids[0] if user.department_ids else None,
        "ClickToCallId": f"ext{user.number}", "Tags": [], "TranscriptionMode": "Inherit",
    }


def render_profile(profile: ForwardingProfile) -> dict:
    return {"Id": profile.id, "Name": profile.name, "CustomName": "", "CustomMessage": profile.custom_message,
            "NoAnswerTimeout": profile.no_answer_timeout_s, "AcceptMultipleCalls": False,
            "BlockPushCalls": False, "DisableRingGroupCalls": False, "OfficeHoursAutoQueueLogOut": False,
            "RingMyMobile": False}


def render_membership(directory: Directory, department: Department, number: str) -> dict:
    """A Pbx.UserGroup: one DN's membership of one department (its `Rights` is a navigation property)."""
    member_id = directory.users[number].id if number in directory.users else 0
    return {"Id": department.id * 100000 + member_id, "GroupId": department.id, "Name": department.name,
            "Number": number, "MemberName": _dn_name(directory, number), "Type": "Extension",
            "CanDelete": not department.is_default, "Tags": []}


def render_rights(role: str) -> dict:
    elevated = role != "users"
    return {"RoleName": role, "CanSeeGroupMembers": True, "CanSeeGroupCalls": elevated,
            "CanSeeGroupRecordings": elevated, "PerformOperations": elevated, "ShowMyCalls": True,
            "ShowMyPresence": True, "ShowMyPresenceOutside": False, "AllowToChangePresence": elevated,
            "AllowToManageCompanyBook": elevated, "AllowParking": True, "AllowIVR": elevated,
            "CanBargeIn": elevated, "CanIntercom": elevated, "AssignClearOperations": elevated, "Invalid": False}


def render_member(directory: Directory, number: str, skill_group: bool = False) -> dict:
    """A queue agent/manager or ring group member."""
    user = directory.users.get(number)
    row = {"Id": user.id if user else None, "Number": number, "Name": _dn_name(directory, number), "Tags": []}
    if skill_group:
        row["SkillGroup"] = "1"
    return row


def render_queue(directory: Directory, queue: Queue) -> dict:
    return {"Id": queue.id, "Number": queue.number, "Name": queue.name, "PollingStrategy": queue.polling_strategy,
            "RingTimeout": queue.ring_timeout_s, "MasterTimeout": queue.master_timeout_s,
            "EnableIntro": queue.enable_intro, "IntroFile": queue.intro_file,
            "AnnounceQueuePosition": queue.announce_queue_position,
            "AnnouncementInterval": queue.announcement_interval_s, "GreetingFile": "", "OnHoldFile": "",
            "WrapUpTime": 0, "MaxCallersInQueue": 10, "SLATime": 60, "PriorityQueue": False,
            "Recording": "Disabled", "AgentAvailabilityMode": False, "IsRegistered": True,
            "ForwardNoAnswer": {"To": "VoiceMail", "Number": queue.number, "Name": queue.name, "External": "",
                                "Type": "Queue", "Tags": []},
            "ClickToCallId": f"queue{queue.number}", "TranscriptionMode": "Inherit"}


def render_ring_group(directory: Directory, group: RingGroup) -> dict:
    return {"Id": group.id, "Number": group.number, "Name": group.name, "RingStrategy": group.ring_strategy,
            "RingTime": group.ring_time_s, "IsRegistered": True, "GreetingFile": "",
            "ForwardNoAnswer": {"To": "None", "Number": "", "Name": "", "External": "", "Type": "None", "Tags": []},
            "ClickToCallId": f"rg{group.number}", "TranscriptionMode": "Inherit"}


def render_ivr(directory: Directory, ivr: Ivr) -> dict:
    kind = directory.dn_kind(ivr.timeout_forward_dn) if ivr.timeout_forward_dn else None
    return {"Id": ivr.id, "Number": ivr.number, "Name": ivr.name, "IVRType": "Default",
            "PromptFilename": ivr.prompt, "PromptSet": "", "Timeout": ivr.timeout_s,
            "TimeoutForwardDN": ivr.timeout_forward_dn,
            "TimeoutForwardType": _IVR_FORWARD_TYPES.get(kind or "", "EndCall"),
            "TimeoutForwardPeerType": _PEER_TYPES.get(kind or "", "None"), "InvalidKeyForwardDN": "",
            "IsRegistered": True, "TransferEnable": False, "UseMSExchange": False, "ForwardSmsTo": "",
            "TranscriptionMode": "Inherit"}


def render_trunk(directory: Directory, trunk: Trunk) -> dict:
    return {"Id": trunk.id, "Number": trunk.number,
            "Gateway": {"Id": trunk.id, "Name": trunk.name, "Host": trunk.host, "Port": 5060, "Type": "Provider",
                        "Internal": False, "Lines": trunk.simultaneous_calls},
            "IsOnline": trunk.is_online, "ExternalNumber": trunk.external_number,
            "DidNumbers": list(trunk.did_numbers), "Direction": "Both", "SimultaneousCalls": trunk.simultaneous_calls,
            "EnableInboundCalls": True, "EnableOutboundCalls": True, "OutboundCallerID": trunk.external_number,
            "AuthID": "", "E164CountryCode": "420", "Tags": [], "TranscriptionMode": "Inherit"}


def render_inbound_rule(directory: Directory, rule: InboundRule) -> dict:
    destination = _destination(directory, rule.destination)
    return {"Id": rule.id, "RuleName": rule.name, "Data": rule.did, "CallType": "AllCalls",
            "Condition": "BasedOnDID", "CustomData": "", "OfficeHoursDestination": destination,
            "OutOfOfficeHoursDestination": dict(destination), "HolidaysDestination": dict(destination),
            "AlterDestinationDuringHolidays": False, "AlterDestinationDuringOutOfOfficeHours": False}


def render_department(directory: Directory, department: Department) -> dict:
    return {"Id": department.id, "Number": department.number, "Name": department.name,
            "IsDefault": department.is_default, "HasMembers": bool(department.members), "Language": "EN",
            "TimeZoneId": "Europe/Prague", "AllowCallService": True, "GloballyVisible": False,
            "ClickToCallId": "", "TranscriptionMode": "Inherit"}


def peers(directory: Directory) -> list[tuple[Any, str]]:
    return ([(u, "Extension") for u in directory.users.values()] + [(q, "Queue") for q in directory.queues.values()]
            + [(r, "RingGroup") for r in directory.ring_groups.values()]
            + [(i, "IVR") for i in directory.ivrs.values()]
            + [(t, "ExternalLine") for t in directory.trunks.values()]
            + [(d, "Group") for d in directory.departments.values()])


def render_peer(directory: Directory, item: tuple[Any, str]) -> dict:
    entity, peer_type = item
    name = display_name(entity) if isinstance(entity, User) else entity.name
    return {"Id": entity.id, "Number": entity.number, "Name": name, "Type": peer_type, "Hidden": False, "Tags": []}


CONTACT_ATTRS = {"FirstName": "first_name", "LastName": "last_name", "CompanyName": "company", "Title": "title",
                  "Department": "department", "Email": "email", "PhoneNumber": "phone", "Mobile2": "mobile2",
                  "Home": "home", "Business": "business", "Business2": "business2", "BusinessFax": "business_fax",
                  "Pager": "pager", "Other": "other", "Tag": "tag"}


def render_contact(directory: Directory, contact: Contact) -> dict:
    row = {"Id": contact.id}
    row.update({name: getattr(contact, attr) for name, attr in CONTACT_ATTRS.items()})
    row["ContactType"] = "3CX"
    return row


def render_active_call(directory: Directory, call: Any) -> dict:
    return {"Id": int(call.id), "Caller": call.caller, "Callee": call.callee, "Status": call.status,
            "EstablishedAt": _iso(call.established_at), "LastChangeStatus": _iso(call.last_change),
            "ServerNow": _iso(call.server_now)}


def render_recording(directory: Directory, rec: Recording) -> dict:
    stamp = rec.start_time.astimezone(timezone.utc).strftime("%Y%m%d%H%M%S")
    return {"Id": rec.id, "StartTime": _iso(rec.start_time), "EndTime": _iso(rec.end_time),
            "FromDn": rec.from_dn, "FromDnType": rec.from_dn_type, "FromCallerNumber": rec.from_caller_number,
            "FromDisplayName": rec.from_display_name, "FromDidNumber": rec.from_did_number, "FromCrmContact": "",
            "FromIdParticipant": rec.id * 2, "ToDn": rec.to_dn, "ToDnType": rec.to_dn_type,
            "ToCallerNumber": rec.to_caller_number, "ToDisplayName": rec.to_display_name,
            "ToDidNumber": rec.to_did_number, "ToCrmContact": "", "ToIdParticipant": rec.id * 2 + 1,
            "RefParticipantId": rec.id * 2, "CallType": rec.call_type,
            "RecordingUrl": f"{rec.from_dn}/[{rec.from_display_name}]_{rec.from_dn}-{rec.to_caller_number}"
                            f"_{stamp}({rec.id}).wav",
            "ArchivedUrl": "", "IsArchived": False, "IsTranscribed": False, "CanBeTranscribed": False,
            "Transcription": "", "Summary": "", "SentimentScore": 0, "TranscriptionResult": 0}


def sample_recording() -> Recording:
    now = datetime.now(timezone.utc)
    return Recording(id=0, start_time=now, end_time=now, from_dn="", from_dn_type=0, from_caller_number="",
                     from_display_name="", to_dn="", to_dn_type=0, to_caller_number="", to_display_name="",
                     call_type="Local")


def _iso_duration(seconds: float) -> str:
    """Seconds as an ISO-8601 duration the way v20 writes them (`PT1M23.5S`, V20-API-NOTES §i)."""
    total = max(0.0, round(seconds, 3))
    hours, rest = divmod(total, 3600)
    minutes, secs = divmod(rest, 60)
    text = "PT" + (f"{int(hours)}H" if hours else "") + (f"{int(minutes)}M" if minutes else "")
    if secs or text == "PT":
        text += f"{secs:.3f}".rstrip("0").rstrip(".") + "S"
    return text


def render_call_log(directory: Directory, row: CallLogRow) -> dict:
    recordings = [{"Id": rec_id, "SentimentScore": None, "Summary": None, "Transcription": None}
                  for rec_id in row.rec_ids]
    return {"CallId": 1, "Indent": 1, "SegmentId": 1, "MainCallHistoryId": row.main_id,
            "CallHistoryId": row.row_id, "CdrId": row.row_id, "StartTime": _iso(row.start_time),
            "SourceDn": row.source_dn, "SourceType": row.source_type, "SourceCallerId": row.source_caller_id,
            "SourceDisplayName": row.source_name, "DestinationDn": row.destination_dn,
            "DestinationType": row.destination_type, "DestinationCallerId": row.destination_caller_id,
            "DestinationDisplayName": row.destination_name, "ActionType": 0, "ActionDnType": None,
            "actionDnDn": None, "ActionDnCallerId": None, "ActionDnDisplayName": None,
            "RingingDuration": _iso_duration(row.ringing_s), "TalkingDuration": _iso_duration(row.talking_s),
            "Answered": row.answered, "Status": row.status, "Reason": row.reason, "Direction": row.direction,
            "CallType": row.direction, "CallCost": None, "SrcRecId": row.src_rec_id, "DstRecId": row.dst_rec_id,
            "Recordings": recordings, "RecordingUrl": None, "QualityReport": False, "SubrowDescNumber": 0,
            "SentimentScore": None, "Summary": None, "Transcription": None}


def sample_call_log() -> CallLogRow:
    return CallLogRow(main_id="", row_id="", start_time=datetime.now(timezone.utc), source_dn="", source_type=0,
                      source_caller_id="", source_name="", destination_dn="", destination_type=0,
                      destination_caller_id="", destination_name="", answered=False, ringing_s=0.0,
                      talking_s=0.0, direction="", status="")
