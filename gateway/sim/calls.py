"""The simulated PBX's call state: calls, participants, routes and what they show.

`Engine` (gateway/sim/engine.py) changes these objects under its one lock; the views read them
through the engine. Nothing here takes a lock or starts a timer.
"""
from __future__ import annotations

import itertools
import threading
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Callable, Protocol

from gateway.sim.model import User
from gateway.sim.timing import Timer

UPSERT, REMOVE, DTMF, RESPONSE = 0, 1, 2, 4

DIALING, RINGING, CONNECTED = "Dialing", "Ringing", "Connected"

# `*_type` names (docs/v20-call-flows.md "Type names"; Wringgroup is inferred).
TYPE_NAMES = {"extension": "Wextension", "queue": "Wqueue", "ringgroup": "Wringgroup",
              "ivr": "Wivr", "trunk": "Wexternalline"}
# Integer DN types of recordings (V20-API-NOTES §f, third-party map).
RECORDING_DN_TYPES = {"Wextension": 0, "Wexternalline": 1, "Wqueue": 4, "Wivr": 6, "Wringgroup": 16}

RING_ALL_STRATEGIES = frozenset({"RingAll", "Paging"})


class ActionRefused(Exception):
    """A Call Control request the PBX refuses: `status` is the HTTP status, `reason` a short code."""

    def __init__(self, status: int, reason: str, text: str) -> None:
        super().__init__(text)
        self.status = status
        self.reason = reason
        self.text = text


class Subscriber(Protocol):
    """Who receives participant events (a WebSocket connection)."""

    def wants(self, dn: str) -> bool: ...

    def push(self, event_type: int, entity: str) -> None: ...


# --- state ------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Identity:
    """How one side of a call appears in the other side's `party_*` fields."""

    dn: str
    dn_type: str
    caller_id: str
    name: str
    did: str = ""


@dataclass(eq=False)
class External:
    """An outside party behind a trunk."""

    number: str
    name: str
    trunk_dn: str
    did: str = ""
    is_answered: bool = True

    @property
    def identity(self) -> Identity:
        return Identity(self.trunk_dn, TYPE_NAMES["trunk"], self.number, self.name, self.did)


@dataclass(eq=False)
class Participant:
    """One DN's leg in a call, as `/callcontrol/{dn}/participants/{id}` shows it."""

    id: int
    dn: str
    dn_type: str
    call: "Call"
    legid: int
    status: str
    party: Identity
    device_id: str = ""
    direct_control: bool = False
    originated_by_dn: str = ""
    originated_by_type: str = ""
    referred_by_dn: str = ""
    referred_by_type: str = ""
    on_behalf_of_dn: str = ""
    on_behalf_of_type: str = ""
    attached_data: dict[str, str] = field(default_factory=dict)
    connected_sim: float | None = None      # simulated time it became Connected
    connected_at: datetime | None = None    # PBX wall time it became Connected
    segment_sim: float | None = None        # simulated time its current recorded segment began
    segment_at: datetime | None = None      # PBX wall time of the same (None: recording paused)
    is_removed: bool = False
    created_at: datetime = field(default_factory=lambda: datetime.now(timezone.utc))  # PBX wall time
    removed_at: datetime | None = None      # PBX wall time it was removed

    @property
    def entity(self) -> str:
        return f"/callcontrol/{self.dn}/participants/{self.id}"

    def view(self) -> dict[str, Any]:
        """The CallParticipant JSON (docs/v20-call-flows.md "Wire basics"); unused strings are ""."""
        return {
            "id": self.id, "status": self.status, "dn": self.dn,
            "party_caller_name": self.party.name, "party_dn": self.party.dn,
            "party_caller_id": self.party.caller_id, "party_did": self.party.did,
            "device_id": self.device_id, "party_dn_type": self.party.dn_type,
            "direct_control": self.direct_control,
            "originated_by_dn": self.originated_by_dn, "originated_by_type": self.originated_by_type,
            "referred_by_dn": self.referred_by_dn, "referred_by_type": self.referred_by_type,
            "on_behalf_of_dn": self.on_behalf_of_dn, "on_behalf_of_type": self.on_behalf_of_type,
            "callid": self.call.callid, "legid": self.legid,
        }


@dataclass(eq=False)
class Route:
    """A destination the call is being offered to: an extension, queue, ring group or IVR."""

    kind: str
    dn: str
    members: list[str] = field(default_factory=list)
    is_ring_all: bool = True
    ring_s: float = 20.0
    index: int = 0
    holder: Participant | None = None       # the queue's / IVR's own Connected participant
    offers: list[Participant] = field(default_factory=list)
    ring_timer: Timer | None = None         # this ring (extension no-answer, queue ring, IVR timeout)
    master_timer: Timer | None = None       # queue master timeout
    via: tuple[str, str] = ("", "")
    referred_by: tuple[str, str] = ("", "")

    def cancel_ring(self) -> None:
        if self.ring_timer is not None:
            self.ring_timer.cancel()
            self.ring_timer = None

    def cancel_timers(self) -> None:
        self.cancel_ring()
        if self.master_timer is not None:
            self.master_timer.cancel()
            self.master_timer = None


@dataclass(eq=False)
class PendingRecording:
    """A finished Connected period of a recorded extension's leg, waiting to become a WAV."""

    participant: Participant
    party: Identity
    is_originator: bool
    started_at: datetime
    ended_at: datetime
    talk_s: float


class Call:
    """One v20 call (`callid`): a caller side, a callee side and the routes still ringing."""

    def __init__(self, callid: int, direction: str) -> None:
        self.callid = callid
        self.direction = direction               # inbound | outbound | internal
        self.caller: Participant | External | None = None
        self.callee: Participant | External | None = None
        self.routes: list[Route] = []
        self.participants: list[Participant] = []   # every participant ever, in creation order
        self.destination = ""                    # makecall: what the caller's device will dial
        self.created_at = datetime.now(timezone.utc)
        self.last_change = self.created_at
        self.is_ended = False
        self.consult_for: tuple[Call, Participant] | None = None
        self.timers: list[Timer] = []
        self.recordings: list[PendingRecording] = []
        self.recording_ids: list[int] = []
        self.watchers: list[Callable[[Call], bool]] = []
        self.finished = threading.Event()        # set once ended and its recordings are stored
        self._legids = itertools.count(1)

    def next_legid(self) -> int:
        return next(self._legids)

    def live_participants(self) -> list[Participant]:
        return [p for p in self.participants if not p.is_removed]

    def offers(self) -> list[Participant]:
        return [p for route in self.routes for p in route.offers]

    @property
    def is_established(self) -> bool:
        return is_up(self.caller) and is_up(self.callee)


def is_up(side: Participant | External | None) -> bool:
    if isinstance(side, External):
        return side.is_answered
    return side is not None and side.status == CONNECTED


@dataclass(frozen=True)
class ActiveCallInfo:
    """One row of XAPI `/ActiveCalls` (display strings as v20 shows them)."""

    id: int
    caller: str
    callee: str
    status: str               # Routing | Dialing | Talking
    established_at: datetime  # PBX wall time the call started
    last_change: datetime     # PBX wall time of its last status change
    server_now: datetime      # the PBX's clock when the row was made


def failure(refused: ActionRefused) -> dict[str, Any]:
    """The CallControlResultResponse body of a refused request."""
    return {"finalstatus": "Failed", "reason": refused.reason, "result": None, "reasontext": refused.text}


def display_name(user: User) -> str:
    return f"{user.first_name} {user.last_name}".strip()
