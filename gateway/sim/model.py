"""The simulated PBX's configuration: every entity the XAPI serves and the call engine routes by.

One `Directory` instance is the single source of truth; the XAPI views, the Call Control views and
the call engine all read and write it, under `Directory.lock`, so every view agrees.
Names here are the simulator's own; the v20 field names appear only where a view renders them.
"""
from __future__ import annotations

import itertools
import threading
from dataclasses import dataclass, field
from datetime import datetime
from typing import Iterator


@dataclass
class Device:
    """A registered SIP contact of an extension (what /callcontrol/{dn}/devices lists)."""

    device_id: str          # a SIP URI such as "sip:101@127.0.0.1:5483;rinstance=5a6cb7ecb40359bf"
    user_agent: str
    direct_control: bool = False   # uaCSTA: only such devices can be answered remotely


@dataclass
class ForwardingProfile:
    """One of an extension's forwarding (status) profiles."""

    id: int
    name: str                 # "Available", "Away", "Out of office", "Custom 1", "Custom 2"
    custom_message: str = ""
    no_answer_timeout_s: int = 20


@dataclass
class User:
    """An extension (v20 `Pbx.User`)."""

    id: int
    number: str
    first_name: str = ""
    last_name: str = ""
    email: str = ""
    mobile: str = ""
    enabled: bool = True
    devices: list[Device] = field(default_factory=list)
    profiles: list[ForwardingProfile] = field(default_factory=list)
    current_profile: str = "Available"
    queue_status: str = "LoggedIn"            # "LoggedIn" | "LoggedOut" (global, all queues)
    record_calls: bool = False
    record_external_only: bool = False
    internal_only: bool = False               # v20 `Internal`: no external calls
    outbound_caller_id: str = ""
    auth_id: str = ""
    auth_password: str = ""
    sip_id: str = ""
    pbx_delivers_audio: bool = False
    vm_enabled: bool = True
    vm_pin: str = ""
    vm_play_caller_id: bool = False
    vm_play_msg_datetime: str = "None"        # None | Play12Hr | Play24Hr
    vm_email_options: str = "None"
    department_ids: list[int] = field(default_factory=list)

    @property
    def is_registered(self) -> bool:
        return bool(self.devices)


@dataclass
class Queue:
    """A call queue (v20 `Pbx.Queue`); agents and managers are extension numbers."""

    id: int
    number: str
    name: str
    polling_strategy: str = "HuntRandomStart"
    ring_timeout_s: int = 20
    master_timeout_s: int = 300
    enable_intro: bool = False
    intro_file: str = ""
    announce_queue_position: bool = False
    announcement_interval_s: int = 60
    agents: list[str] = field(default_factory=list)
    managers: list[str] = field(default_factory=list)


@dataclass
class RingGroup:
    """A ring group (v20 `Pbx.RingGroup`); members are extension numbers."""

    id: int
    number: str
    name: str
    ring_strategy: str = "RingAll"            # Hunt | RingAll | Paging
    ring_time_s: int = 20
    members: list[str] = field(default_factory=list)


@dataclass
class Ivr:
    """A digital receptionist (v20 `Pbx.Receptionist`)."""

    id: int
    number: str
    name: str
    prompt: str = "welcome.wav"
    timeout_s: int = 10
    timeout_forward_dn: str = ""


@dataclass
class Trunk:
    """An external line (v20 `Pbx.Trunk`); `number` is the DN outside parties appear behind."""

    id: int
    number: str
    name: str
    host: str = "sip.provider.example"
    external_number: str = ""
    did_numbers: list[str] = field(default_factory=list)
    simultaneous_calls: int = 8
    is_online: bool = True


@dataclass
class InboundRule:
    """A DID rule (v20 `Pbx.InboundRule`): calls to `did` on `trunk_number` go to `destination`."""

    id: int
    name: str                 # legacy webhooks report this name as `did`
    did: str
    trunk_number: str
    destination: str          # a DN number (extension, queue, ring group, IVR)


@dataclass
class Department:
    """A department (v20 `Pbx.Group`, legacy "extension group"); members are extension numbers."""

    id: int
    number: str               # "GRP0000"
    name: str
    is_default: bool = False
    members: dict[str, str] = field(default_factory=dict)   # extension number -> role name


@dataclass
class Contact:
    """A company phonebook entry (v20 `Pbx.Contact`)."""

    id: int
    first_name: str = ""
    last_name: str = ""
    company: str = ""
    title: str = ""
    department: str = ""
    email: str = ""
    phone: str = ""            # v20 PhoneNumber (legacy "phone", the mobile)
    mobile2: str = ""
    home: str = ""
    business: str = ""
    business2: str = ""
    business_fax: str = ""
    pager: str = ""
    other: str = ""
    tag: str = ""


@dataclass
class Recording:
    """A finished call recording (v20 `Pbx.Recording`) with its WAV bytes."""

    id: int
    start_time: datetime      # aware, UTC
    end_time: datetime
    from_dn: str
    from_dn_type: int         # 0 extension, 1 external line, 4 queue ... (V20-API-NOTES §f)
    from_caller_number: str
    from_display_name: str
    to_dn: str
    to_dn_type: int
    to_caller_number: str
    to_display_name: str
    call_type: str            # Local | InboundExternal | OutboundExternal
    from_did_number: str = ""
    to_did_number: str = ""
    wav: bytes = b""
    # Whose recording it is, for tests (XAPI does not show these): the call, participant and DN.
    call_id: int = 0
    participant_id: int = 0
    dn: str = ""


@dataclass
class CallLogRow:
    """One row of v20's call history report (`Pbx.CallLogData`): one party's part in a finished call.

    V20 behaviour (V20-API-NOTES §i): the rows of one call share `main_id`; CallId, SegmentId and
    Indent are 1 on every row. Times are aware UTC; durations are seconds.
    """

    main_id: str              # MainCallHistoryId: the same on every row of one call
    row_id: str               # CallHistoryId / CdrId of this row
    start_time: datetime
    source_dn: str
    source_type: int          # DN type codes as in recordings (0 extension, 1 external line, 4 queue ...)
    source_caller_id: str
    source_name: str
    destination_dn: str
    destination_type: int
    destination_caller_id: str
    destination_name: str
    answered: bool
    ringing_s: float
    talking_s: float
    direction: str            # Inbound | Outbound | Internal
    status: str               # Answered | Unanswered
    reason: str = ""
    src_participant: int = 0  # simulator participant ids, to attach recording ids once they exist
    dst_participant: int = 0
    src_rec_id: int | None = None
    dst_rec_id: int | None = None
    rec_ids: list[int] = field(default_factory=list)   # every recording of the row, source's first


@dataclass
class ApiClient:
    """The API client ("service principal") the gateway logs in as."""

    client_id: str
    secret: str
    monitored: list[str] = field(default_factory=list)   # DNs whose participants are visible
    role: str = "system_owners"
    xapi_access: bool = True
    callcontrol_access: bool = True


class Directory:
    """Everything configured on the simulated PBX. Guard reads and writes with `lock`."""

    def __init__(self) -> None:
        self.lock = threading.RLock()
        self.version = "20.0.10.925"
        self.fqdn = "pbx.sim.local"
        self.max_sim_calls = 16
        self.users: dict[str, User] = {}
        self.queues: dict[str, Queue] = {}
        self.ring_groups: dict[str, RingGroup] = {}
        self.ivrs: dict[str, Ivr] = {}
        self.trunks: dict[str, Trunk] = {}
        self.inbound_rules: list[InboundRule] = []
        self.departments: dict[int, Department] = {}
        self.contacts: dict[int, Contact] = {}
        self.recordings: dict[int, Recording] = {}
        self.call_log: list[CallLogRow] = []          # finished calls, oldest first; guarded by call_log_lock
        self.call_log_lock = threading.Lock()         # taken alone, never while taking another lock
        self.api_clients: dict[str, ApiClient] = {}
        self._ids: Iterator[int] = itertools.count(1)

    def new_id(self) -> int:
        """A fresh entity id, unique across all entity sets of this PBX."""
        with self.lock:
            return next(self._ids)

    def dn_kind(self, number: str) -> str | None:
        """'extension' | 'queue' | 'ringgroup' | 'ivr' | 'trunk', or None when nothing has that number."""
        with self.lock:
            for kind, table in (("extension", self.users), ("queue", self.queues),
                                ("ringgroup", self.ring_groups), ("ivr", self.ivrs),
                                ("trunk", self.trunks)):
                if number in table:
                    return kind
            return None

    def is_number_taken(self, number: str) -> bool:
        return self.dn_kind(number) is not None

    def rule_for_did(self, did: str) -> InboundRule | None:
        with self.lock:
            return next((r for r in self.inbound_rules if r.did == did or r.name == did), None)
