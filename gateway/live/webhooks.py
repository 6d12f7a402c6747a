"""Webhook events in the legacy product's words: `Ringing`, `RingingCancelled`, `CallStarted`, `CallEnded`,
`FilesReady`.

Each carries the legacy field names and values (003, "Description of the data that is transmitted
via webhooks"); `params()` is exactly what the CRM receives, in the legacy examples' key order, and
`call_key` keeps delivery in order within one call (all links of a transfer chain share it).
`kind` is the event's name in target filters (ringing | start | end | files) and `facts` what
the filters and the opt-in fields read (gateway.webhooks.routing); neither is sent as such.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Union

from gateway.webhooks.routing import Facts

logger = logging.getLogger(__name__)

# 003: "usertype = ext/queue/other" — a direct ring, a ring for a queue, anything else
# (ring group, IVR, ...). Keys are the live model's `via_kind`.
_USERTYPES = {"": "ext", "queue": "queue"}

# 003: "trtype = NotDef / Blind / Accomp"; keys are the live model's `transfer_kind`.
_TRTYPES = {"": "NotDef", "blind": "Blind", "attended": "Accomp"}


def usertype_for(via_kind: str) -> str:
    """The legacy `usertype` of a ringing leg from what it rings for."""
    return _USERTYPES.get(via_kind, "other")


def trtype_for(transfer_kind: str) -> str:
    """The legacy `trtype` from how a leg received the call."""
    return _TRTYPES.get(transfer_kind, "NotDef")


def hhmmss(seconds: float) -> str:
    """A duration as hh:mm:ss (negative durations read as 0)."""
    total = max(0, int(round(seconds)))
    return f"{total // 3600:02d}:{total % 3600 // 60:02d}:{total % 60:02d}"


def end_title(*, direction: str, external: str, did: str, user: str, is_answered: bool,
              missed_at: str, transfer_to: str, duration_s: float, is_found_by_resync: bool) -> str:
    """The `title` of a call end: a readable phrase (003: DID rule, queue level, duration).

    `direction` "incoming" | "outgoing"; `missed_at` names the queue / ring group a miss ended at.
    """
    if direction == "incoming":
        phrase = f"Incoming call from {external or 'unknown'}"
        if did:
            phrase += f" on DID {did}"
    else:
        phrase = f"Outgoing call from {user} to {external or 'unknown'}"
    if is_answered:
        phrase += f", answered by {user}" if direction == "incoming" else ", answered"
        if transfer_to:
            phrase += f", transferred to {transfer_to}"
    elif missed_at:
        phrase += f", not answered in {missed_at}"
    elif direction == "incoming":
        phrase += f", not answered by {user}"
    else:
        phrase += ", not answered"
    phrase += f", duration {hhmmss(duration_s)}"
    if is_found_by_resync:
        phrase += " (end detected after reconnecting to the PBX)"
    return phrase


@dataclass(frozen=True)
class Ringing:
    """An extension's phone rings.

    Payload: event=ringing, callerid (the caller), user (the extension), usertype (ext | queue |
    other), did (the DID rule name, "" when none), id (call-link id; every extension rung at the
    same stage shares it).
    """

    call_key: str
    id: str
    callerid: str
    user: str
    usertype: str
    did: str
    facts: Facts | None = field(default=None, compare=False)

    event = "ringing"
    kind = "ringing"
    method = None

    def params(self) -> dict[str, str]:
        # Key order of 003's example: event, callerid, user, usertype, did, id.
        return {"event": self.event, "callerid": self.callerid, "user": self.user,
                "usertype": self.usertype, "did": self.did, "id": self.id}


@dataclass(frozen=True)
class RingingCancelled(Ringing):
    """An extension stopped ringing while the call goes on ([webhooks] ringing_cancelled = true).

    Payload: the same fields as `Ringing`, with event=ringingcancelled.
    """

    event = "ringingcancelled"


@dataclass(frozen=True)
class CallStarted:
    """An extension answered: the conversation starts.

    Payload: event (hangupincoming | hangupoutgoing, or pickupincoming | pickupoutgoing with
    [webhooks] answer_event = pickup), callerid (the outside number), user (the extension),
    did (incoming calls only: the DID rule name), trtype (NotDef | Blind | Accomp), id; and
    title only on a start recovered from the PBX's call history (a live start has none).
    """

    call_key: str
    id: str
    event: str
    callerid: str
    user: str
    did: str | None
    trtype: str
    title: str | None = None
    facts: Facts | None = field(default=None, compare=False)

    kind = "start"
    method = None

    def params(self) -> dict[str, str]:
        # Key order of 003's example: callerid, event, user, did, trtype, id.
        params = {"callerid": self.callerid, "event": self.event, "user": self.user}
        if self.did is not None:
            params["did"] = self.did
        params.update({"trtype": self.trtype, "id": self.id})
        if self.title is not None:
            params["title"] = self.title
        return params


@dataclass(frozen=True)
class CallEnded:
    """A call link ended (its extension hung up, transferred the call away, or nobody answered).

    Payload: event (incoming | outgoing), callerid (the outside number), user (the extension; for
    a call missed at queue level the queue number), finishtype (Ok | Missed), transfer ("true" when
    the extension transferred the call on, else "false"), title (a readable phrase), id.
    The other fields (dn, participant_id, answered_at, ended_at) are for the recordings pipeline.
    """

    call_key: str
    id: str
    event: str
    callerid: str
    user: str
    finishtype: str
    is_transferred: bool
    title: str
    v20_call_id: int = 0
    dn: str = ""
    participant_id: int = 0
    answered_at: datetime | None = None
    ended_at: datetime | None = None
    facts: Facts | None = field(default=None, compare=False)

    kind = "end"
    method = None

    @property
    def is_answered(self) -> bool:
        return self.finishtype == "Ok"

    def params(self) -> dict[str, str]:
        return {"event": self.event, "callerid": self.callerid, "user": self.user,
                "finishtype": self.finishtype, "transfer": "true" if self.is_transferred else "false",
                "title": self.title, "id": self.id}


@dataclass(frozen=True)
class FilesReady:
    """A leg's recordings are converted to MP3 (always a JSON POST, 003's FILES example).

    Payload: {"FILES": [<mp3 link>, ...], "id": <leg id>}, with [webhooks] recording_full_info
    followed by the call-end fields of that leg. `facts` are those of the leg's CallEnded.
    """

    call_key: str
    body: dict[str, Any]
    facts: Facts | None = field(default=None, compare=False)

    kind = "files"
    method = "POST"

    def params(self) -> dict[str, Any]:
        return dict(self.body)


WebhookEvent = Union[Ringing, RingingCancelled, CallStarted, CallEnded]
