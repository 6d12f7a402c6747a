"""What a finished call leaves behind on the simulated PBX: recordings and call-history rows.

Pure functions over the call state (gateway/sim/calls.py); `Engine` calls them when a call ends.
"""
from __future__ import annotations

import uuid
from datetime import datetime
from typing import Callable

from gateway.sim.calls import RECORDING_DN_TYPES, TYPE_NAMES, Call, External, Identity, PendingRecording, display_name
from gateway.sim.model import CallLogRow, Directory, Recording
from gateway.sim.wav import tone_hz, tone_wav


def make_recording(directory: Directory, pending: PendingRecording) -> Recording:
    """The WAV and XAPI Recording of one recorded segment (the directory gives it an id)."""
    leg = pending.participant
    user = directory.users.get(leg.dn)
    mine = Identity(leg.dn, TYPE_NAMES["extension"], leg.dn, display_name(user) if user else "")
    other = pending.party
    source, target = (mine, other) if pending.is_originator else (other, mine)
    is_external = other.dn_type == TYPE_NAMES["trunk"]
    call_type = ("OutboundExternal" if pending.is_originator else "InboundExternal") if is_external else "Local"
    recording_id = directory.new_id()
    return Recording(
        id=recording_id, start_time=pending.started_at, end_time=pending.ended_at,
        from_dn=source.dn, from_dn_type=RECORDING_DN_TYPES.get(source.dn_type, 0),
        from_caller_number=source.caller_id, from_display_name=source.name,
        to_dn=target.dn, to_dn_type=RECORDING_DN_TYPES.get(target.dn_type, 0),
        to_caller_number=target.caller_id, to_display_name=target.name, call_type=call_type,
        from_did_number=source.did, to_did_number=other.did if not pending.is_originator else "",
        wav=tone_wav(pending.talk_s, tone_hz(recording_id)),
        call_id=leg.call.callid, participant_id=leg.id, dn=leg.dn)


# -- call history (XAPI ReportCallLogData) ------------------------------------------------------

def call_log_rows(call: Call, identity_of: Callable[[str], Identity],
                  now: Callable[[], datetime]) -> list[CallLogRow]:
    """The history rows of an ended call, one per party that took part (V20-API-NOTES §i).

    A leg offered the call gets a row from its party (the caller) to its DN; a leg that placed
    an outside call gets a row from its DN to the number dialled. A queue's / IVR's own row
    comes first (it is the main row of a queue call) and counts as answered when an agent
    answered for it; the agent who answered is on a row of its own.
    """
    main_id = str(uuid.uuid4())
    rows: list[CallLogRow] = []
    answered_for = {p.on_behalf_of_dn for p in call.participants if p.connected_at and p.on_behalf_of_dn}
    direction = {"inbound": "Inbound", "outbound": "Outbound"}.get(call.direction, "Internal")
    for p in call.participants:
        is_originator = p.originated_by_dn == p.dn and p is call.caller
        if is_originator and not isinstance(call.callee, External):
            continue        # the callee's own row names this extension as its source
        ended = p.removed_at or now()
        mine = identity_of(p.dn)
        if is_originator:
            callee = call.callee
            assert isinstance(callee, External)
            source, target = mine, callee.identity
            answered = callee.is_answered and p.connected_at is not None
        else:
            source, target = p.party, mine
            answered = p.connected_at is not None
            if p.dn_type in (TYPE_NAMES["queue"], TYPE_NAMES["ivr"]):
                answered = p.dn in answered_for
        connected = p.connected_at if answered and p.connected_at else None
        holder = p.dn_type in (TYPE_NAMES["queue"], TYPE_NAMES["ivr"])
        ringing_s = ((connected or ended) - p.created_at).total_seconds() if not holder else \
            (ended - p.created_at).total_seconds()
        talking_s = (ended - connected).total_seconds() if connected and not holder else 0.0
        rows.append(CallLogRow(
            main_id=main_id, row_id=str(uuid.uuid4()), start_time=p.created_at,
            source_dn=source.dn, source_type=RECORDING_DN_TYPES.get(source.dn_type, 0),
            source_caller_id=source.caller_id, source_name=source.name,
            destination_dn=target.dn, destination_type=RECORDING_DN_TYPES.get(target.dn_type, 0),
            destination_caller_id=target.caller_id, destination_name=target.name,
            answered=answered, ringing_s=max(0.0, ringing_s), talking_s=max(0.0, talking_s),
            direction=direction, status="Answered" if answered else "Unanswered",
            reason="" if answered else ("Abandoned" if not holder else "NoAnswer"),
            src_participant=p.id if is_originator else 0, dst_participant=0 if is_originator else p.id))
    rows.sort(key=lambda row: (row.destination_type not in (4, 6), row.start_time))
    return rows

def publish_call_log(directory: Directory, rows: list[CallLogRow]) -> None:
    with directory.call_log_lock:
        directory.call_log.extend(rows)
