"""The simulator's XAPI (v20 Configuration API, OData v4) under /xapi/v1, rendered from the Directory.

Field names, types and enum names follow 3CX's official OpenAPI document for 20.0.10; the
conformance tests validate every answer against schemas extracted from it (tests/data/). Navigation
properties appear only when `$expand`ed; lists answer `{"@odata.context": ..., "value": [...]}`;
errors answer `{"error": {"code": "", "message": ..., "details": [...]}}`. Authentication, fault
injection and request logging happen in server.py before a request reaches this blueprint.
"""
from __future__ import annotations

import json
import logging
import re
from dataclasses import dataclass, field
from datetime import datetime
from types import SimpleNamespace
from typing import Any, Callable

from flask import Blueprint, Response, g, request

from gateway.sim.defaults import default_profiles
from gateway.sim.model import Contact, Department, Directory, InboundRule, Ivr, Queue, RingGroup, Trunk, User
from gateway.sim.odata import EntityType, Navigation, ODataError, apply, parse_query, shape
from gateway.sim.xapi_render import (
    CONTACT_ATTRS, peers, render_active_call, render_call_log, render_contact, render_department,
    render_inbound_rule, render_ivr, render_member, render_membership, render_peer, render_profile, render_queue,
    render_recording, render_rights, render_ring_group, render_trunk, render_user, sample_call_log,
    sample_recording,
)

logger = logging.getLogger(__name__)

# Every (method, spec path) served here; tools/extract_specs.py reads this list.
SERVED_PATHS: tuple[tuple[str, str], ...] = (
    ("GET", "/Defs"), ("GET", "/SystemStatus"), ("GET", "/DialCodeSettings"),
    ("GET", "/Users"), ("POST", "/Users"), ("GET", "/Users({Id})"), ("PATCH", "/Users({Id})"),
    ("DELETE", "/Users({Id})"), ("GET", "/Users(Number={Number})"), ("GET", "/Users({Id})/ForwardingProfiles"),
    ("GET", "/Users({Id})/Groups"), ("POST", "/Users/Pbx.BatchDelete"),
    ("GET", "/Users/Pbx.GetFirstAvailableExtensionNumber()"), ("POST", "/Users/Pbx.MakeCall"),
    ("GET", "/Queues"), ("POST", "/Queues"), ("GET", "/Queues({Id})"), ("PATCH", "/Queues({Id})"),
    ("DELETE", "/Queues({Id})"), ("GET", "/Queues(Number={Number})"), ("GET", "/Queues({Id})/Agents"),
    ("GET", "/Queues({Id})/Managers"), ("GET", "/Queues/Pbx.GetFirstAvailableQueueNumber()"),
    ("GET", "/RingGroups"), ("POST", "/RingGroups"), ("GET", "/RingGroups({Id})"), ("PATCH", "/RingGroups({Id})"),
    ("DELETE", "/RingGroups({Id})"), ("GET", "/RingGroups(Number={Number})"), ("GET", "/RingGroups({Id})/Members"),
    ("GET", "/RingGroups/Pbx.GetFirstAvailableRingGroupNumber()"),
    ("GET", "/Receptionists"), ("GET", "/Receptionists({Id})"), ("GET", "/Receptionists(Number={Number})"),
    ("GET", "/Receptionists({Id})/Forwards"),
    ("GET", "/Trunks"), ("GET", "/Trunks({Id})"), ("GET", "/Trunks(Number={Number})"),
    ("GET", "/InboundRules"), ("GET", "/InboundRules({Id})"),
    ("GET", "/Groups"), ("GET", "/Groups({Id})"), ("PATCH", "/Groups({Id})"), ("GET", "/Groups({Id})/Members"),
    ("GET", "/Peers"), ("GET", "/Peers(Number={Number})"),
    ("GET", "/Contacts"), ("POST", "/Contacts"), ("GET", "/Contacts({Id})"), ("PATCH", "/Contacts({Id})"),
    ("DELETE", "/Contacts({Id})"), ("GET", "/Contacts/Pbx.GetContactsByNumber(number={number})"),
    ("GET", "/ActiveCalls"), ("POST", "/ActiveCalls({Id})/Pbx.DropCall"),
    ("GET", "/Recordings"), ("GET", "/Recordings/Pbx.DownloadRecording(recId={recId})"),
    ("GET", "/ReportCallLogData/Pbx.GetCallLogData(periodFrom={periodFrom},periodTo={periodTo},"
            "sourceType={sourceType},sourceFilter={sourceFilter},destinationType={destinationType},"
            "destinationFilter={destinationFilter},callsType={callsType},callTimeFilterType={callTimeFilterType},"
            "callTimeFilterFrom={callTimeFilterFrom},callTimeFilterTo={callTimeFilterTo},hidePcalls={hidePcalls})"),
)

PROFILE_FIELDS = ("Id", "Name", "CustomName", "CustomMessage", "NoAnswerTimeout", "AcceptMultipleCalls",
                  "BlockPushCalls", "DisableRingGroupCalls", "OfficeHoursAutoQueueLogOut", "RingMyMobile")
ROLES = ("system_owners", "system_admins", "group_owners", "managers", "group_admins", "receptionists", "users")
READ_ONLY = frozenset({"Id", "IsRegistered", "DisplayName", "HasMembers"})
_ALREADY_IN_USE = "WARNINGS.XAPI.ALREADY_IN_USE"
_KEY = re.compile(r"^(?P<set>[A-Za-z]+)(?:\((?P<key>(?:[^()']|'(?:[^']|'')*')*)\))?(?:/(?P<rest>.+))?$")
_CALL = re.compile(r"^(?P<name>Pbx\.[A-Za-z]+)(?:\((?P<args>(?:[^()']|'(?:[^']|'')*')*)\))?$")


class XapiError(Exception):
    """An XAPI failure answered in v20's error shape."""

    def __init__(self, status: int, message: str, target: str | None = None, detail: str | None = None) -> None:
        super().__init__(message)
        self.status, self.message = status, message
        self.details = [{"code": "", "target": target, "message": detail or message}] if target else []


def create_xapi_blueprint(sim: Any) -> Blueprint:
    """The /xapi/v1 blueprint over `sim.directory` (configuration) and `sim.engine` (live calls)."""
    api = _Xapi(sim)
    blueprint = Blueprint("xapi", __name__, url_prefix="/xapi/v1")
    blueprint.add_url_rule("/<path:path>", "resource", api.dispatch, methods=["GET", "POST", "PATCH", "DELETE"])
    blueprint.after_request(api.add_version)
    return blueprint


# Function parameters of Pbx.GetCallLogData: a date-time must be UTC with `Z` (another offset was
# reported refused, V20-API-NOTES §i).
_UTC_PERIOD = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,7})?Z$")
_CALL_LOG_ARGS = ("periodFrom", "periodTo", "sourceType", "sourceFilter", "destinationType", "destinationFilter",
                  "callsType", "callTimeFilterType", "callTimeFilterFrom", "callTimeFilterTo", "hidePcalls")
CALL_LOG_MAX_TOP = 1000   # above 100 is accepted on this function (V20-API-NOTES §i); the real cap is unknown


# ---------------------------------------------------------------- entity sets

@dataclass
class _EntitySet:
    """How one OData entity set maps onto the Directory."""

    name: str
    type: EntityType
    items: Callable[[Directory], list]
    render: Callable[[Directory, Any], dict]
    by_number: bool = False
    attrs: dict[str, str] = field(default_factory=dict)        # writable field -> model attribute
    enums: dict[str, tuple[str, ...]] = field(default_factory=dict)
    special: dict[str, Callable] = field(default_factory=dict)  # field -> validate(d, obj, value) -> apply()
    create: Callable[[Directory, str | None], Any] | None = None
    insert: Callable[[Directory, Any], None] | None = None
    delete: Callable[[Directory, Any], None] | None = None
    first_number: int | None = None
    functions: dict[str, Callable] = field(default_factory=dict)   # collection-bound Pbx.* name -> handler
    needs_owner: bool = False
    is_listable: bool = True                                    # GET on the set itself lists it


_POLLING = ("Hunt", "RingAll", "HuntRandomStart", "NextAgent", "LongestWaiting", "LeastTalkTime",
            "FewestAnswered", "HuntBy3s", "First3Available", "SkillBasedRouting_RingAll",
            "SkillBasedRouting_HuntRandomStart", "SkillBasedRouting_RoundRobin", "SkillBasedRouting_FewestAnswered")
_USER_ATTRS = {"FirstName": "first_name", "LastName": "last_name", "EmailAddress": "email", "Mobile": "mobile",
               "Enabled": "enabled", "QueueStatus": "queue_status", "RecordCalls": "record_calls",
               "RecordExternalCallsOnly": "record_external_only", "Internal": "internal_only",
               "OutboundCallerID": "outbound_caller_id", "AuthID": "auth_id", "AuthPassword": "auth_password",
               "SIPID": "sip_id", "PbxDeliversAudio": "pbx_delivers_audio", "VMEnabled": "vm_enabled",
               "VMPIN": "vm_pin", "VMPlayCallerID": "vm_play_caller_id",
               "VMPlayMsgDateTime": "vm_play_msg_datetime", "VMEmailOptions": "vm_email_options"}
_USER_ENUMS = {"QueueStatus": ("LoggedOut", "LoggedIn"), "VMPlayMsgDateTime": ("None", "Play12Hr", "Play24Hr"),
               "VMEmailOptions": ("None", "Notification", "Attachment", "AttachmentAndDelete", "VmailToMembers",
                                  "EmailToExtrasOnly"),
               "TranscriptionMode": ("Nothing", "Voicemail", "Recordings", "Both", "Inherit")}
_QUEUE_ATTRS = {"Name": "name", "PollingStrategy": "polling_strategy", "RingTimeout": "ring_timeout_s",
                "MasterTimeout": "master_timeout_s", "EnableIntro": "enable_intro", "IntroFile": "intro_file",
                "AnnounceQueuePosition": "announce_queue_position",
                "AnnouncementInterval": "announcement_interval_s"}


class _Xapi:
    """Request handling for the blueprint; reads `sim.directory` afresh on every request."""

    def __init__(self, sim: Any) -> None:
        self._sim = sim
        self._extras: dict[tuple[str, int], dict[str, Any]] = {}   # written fields the model does not keep
        self._extras_of: Directory | None = None
        self._sets = self._build_sets()

    # ------------------------------------------------------------ entity types and sets

    def _build_sets(self) -> dict[str, _EntitySet]:
        empty = Directory()

        def fields(render: Callable, sample: Any) -> tuple[str, ...]:
            return tuple(render(empty, sample))

        rights = EntityType("Pbx.Rights", tuple(render_rights("users")))
        membership = EntityType("Pbx.UserGroup", tuple(render_membership(empty, Department(id=0, number="", name=""),
                                                                          "")))
        membership.navigation["Rights"] = Navigation(rights, self._membership_rights)
        membership.navigation["GroupRights"] = Navigation(rights, self._membership_rights)
        profile = EntityType("Pbx.ForwardingProfile", PROFILE_FIELDS)
        agent = EntityType("Pbx.QueueAgent", ("Id", "Number", "Name", "SkillGroup", "Tags"))
        manager = EntityType("Pbx.QueueManager", ("Id", "Number", "Name", "Tags"))
        member = EntityType("Pbx.RingGroupMember", ("Id", "Number", "Name", "Tags"))
        forward = EntityType("Pbx.ReceptionistForward", ("Id", "Input", "ForwardType", "ForwardDN", "PeerType",
                                                         "CustomData"))
        peer_group = EntityType("Pbx.PeerGroup", ("GroupID", "Name", "Number", "RoleName", "IsPrimary"))
        nothing = EntityType("Pbx.Entity", ())

        user = EntityType("Pbx.User", fields(render_user, User(id=0, number="")))
        user.navigation.update({
            "Groups": Navigation(membership, lambda row: self._memberships_of(row["Number"])),
            "ForwardingProfiles": Navigation(profile, lambda row: [
                render_profile(p) for p in self._directory().users[row["Number"]].profiles]),
            "ForwardingExceptions": Navigation(nothing, lambda row: []),
            "Greetings": Navigation(nothing, lambda row: []),
            "Phones": Navigation(nothing, lambda row: []),
        })
        queue = EntityType("Pbx.Queue", fields(render_queue, Queue(id=0, number="", name="")))
        queue.navigation.update({
            "Agents": Navigation(agent, lambda row: [render_member(self._directory(), n, skill_group=True)
                                                     for n in self._directory().queues[row["Number"]].agents]),
            "Managers": Navigation(manager, lambda row: [render_member(self._directory(), n)
                                                         for n in self._directory().queues[row["Number"]].managers]),
            "Groups": Navigation(membership, lambda row: []),
        })
        ring_group = EntityType("Pbx.RingGroup", fields(render_ring_group, RingGroup(id=0, number="", name="")))
        ring_group.navigation.update({
            "Members": Navigation(member, lambda row: [render_member(self._directory(), n)
                                                       for n in self._directory().ring_groups[row["Number"]].members]),
            "Groups": Navigation(membership, lambda row: []),
        })
        ivr = EntityType("Pbx.Receptionist", fields(render_ivr, Ivr(id=0, number="", name="")))
        ivr.navigation.update({"Forwards": Navigation(forward, lambda row: []),
                               "Groups": Navigation(membership, lambda row: [])})
        trunk = EntityType("Pbx.Trunk", fields(render_trunk, Trunk(id=0, number="", name="")))
        peer = EntityType("Pbx.Peer", fields(render_peer, (User(id=0, number=""), "Extension")))
        peer.navigation["MemberOf"] = Navigation(peer_group, self._peer_member_of)
        sample_rule = InboundRule(id=0, name="", did="", trunk_number="", destination="")
        rule = EntityType("Pbx.InboundRule", fields(render_inbound_rule, sample_rule))
        rule.navigation["TrunkDN"] = Navigation(peer, self._rule_trunk)
        group = EntityType("Pbx.Group", fields(render_department, Department(id=0, number="", name="")))
        group.navigation.update({
            "Members": Navigation(membership, lambda row: self._members_of(row["Id"])),
            "Rights": Navigation(rights, lambda row: [render_rights(role) for role in ROLES]),
        })
        contact = EntityType("Pbx.Contact", fields(render_contact, Contact(id=0)))
        call = EntityType("Pbx.ActiveCall", fields(render_active_call, SimpleNamespace(
            id=0, caller="", callee="", status="", established_at=None, last_change=None, server_now=None)))
        recording = EntityType("Pbx.Recording", fields(render_recording, sample_recording()))
        call_log = EntityType("Pbx.CallLogData", fields(render_call_log, sample_call_log()))

        sets = [
            _EntitySet("Users", user, lambda d: list(d.users.values()), render_user, by_number=True,
                       attrs=_USER_ATTRS, enums=_USER_ENUMS,
                       special={"CurrentProfileName": self._set_profile, "ForwardingProfiles": self._set_profiles,
                                "Groups": self._set_memberships},
                       create=lambda d, n: User(id=d.new_id(), number=n, profiles=default_profiles(d)),
                       insert=self._insert_user,
                       delete=self._delete_user, first_number=100,
                       functions={"Pbx.BatchDelete": self._batch_delete, "Pbx.MakeCall": self._make_call}),
            _EntitySet("Queues", queue, lambda d: list(d.queues.values()), render_queue, by_number=True,
                       attrs=_QUEUE_ATTRS, enums={"PollingStrategy": _POLLING},
                       special={"Agents": self._set_list("agents"), "Managers": self._set_list("managers")},
                       create=lambda d, n: Queue(id=d.new_id(), number=n, name=f"Queue {n}"),
                       insert=lambda d, q: d.queues.__setitem__(q.number, q),
                       delete=lambda d, q: d.queues.pop(q.number, None), first_number=800),
            _EntitySet("RingGroups", ring_group, lambda d: list(d.ring_groups.values()), render_ring_group,
                       by_number=True,
                       attrs={"Name": "name", "RingStrategy": "ring_strategy", "RingTime": "ring_time_s"},
                       enums={"RingStrategy": ("Hunt", "RingAll", "Paging")},
                       special={"Members": self._set_list("members")},
                       create=lambda d, n: RingGroup(id=d.new_id(), number=n, name=f"Ring group {n}"),
                       insert=lambda d, r: d.ring_groups.__setitem__(r.number, r),
                       delete=lambda d, r: d.ring_groups.pop(r.number, None), first_number=700),
            _EntitySet("Receptionists", ivr, lambda d: list(d.ivrs.values()), render_ivr, by_number=True),
            _EntitySet("Trunks", trunk, lambda d: list(d.trunks.values()), render_trunk, by_number=True),
            _EntitySet("InboundRules", rule, lambda d: list(d.inbound_rules), render_inbound_rule),
            _EntitySet("Groups", group, lambda d: list(d.departments.values()), render_department,
                       attrs={"Name": "name"}, special={"Members": self._set_group_members}),
            _EntitySet("Peers", peer, peers, render_peer, by_number=True),
            _EntitySet("Contacts", contact, lambda d: list(d.contacts.values()), render_contact,
                       attrs=CONTACT_ATTRS, enums={"ContactType": ("3CX", "CRM", "Google", "M365")},
                       create=lambda d, n: Contact(id=d.new_id()),
                       insert=lambda d, c: d.contacts.__setitem__(c.id, c),
                       delete=lambda d, c: d.contacts.pop(c.id, None),
                       functions={"Pbx.GetContactsByNumber": self._contacts_by_number}),
            _EntitySet("Recordings", recording, lambda d: sorted(d.recordings.values(), key=lambda r: r.id),
                       render_recording, needs_owner=True,
                       functions={"Pbx.DownloadRecording": self._download_recording}),
            _EntitySet("ReportCallLogData", call_log, lambda d: list(d.call_log), render_call_log,
                       needs_owner=True, is_listable=False, functions={"Pbx.GetCallLogData": self._call_log}),
        ]
        result = {s.name: s for s in sets}
        result["ActiveCalls"] = _EntitySet("ActiveCalls", call, lambda d: [], render_active_call)
        for entity_set in result.values():
            if entity_set.first_number is not None:
                suffix = {"Users": "Extension", "Queues": "Queue", "RingGroups": "RingGroup"}[entity_set.name]
                entity_set.functions[f"Pbx.GetFirstAvailable{suffix}Number"] = self._first_available(entity_set)
        return result

    def _directory(self) -> Directory:
        return self._sim.directory

    def add_version(self, response: Response) -> Response:
        """Every XAPI answer names the PBX build, as `GET /Defs` does on v20."""
        response.headers["X-3CX-Version"] = self._directory().version
        return response

    # ------------------------------------------------------------ dispatch

    def dispatch(self, path: str) -> Response:
        """Route one /xapi/v1 request; every failure is answered in v20's error shape."""
        try:
            return self._route(path)
        except XapiError as exc:
            return _error(exc.status, exc.message, exc.details)
        except ODataError as exc:
            return _error(400, str(exc))
        except Exception:  # noqa: BLE001 - never a traceback to the client
            logger.exception("xapi: %s %s failed", request.method, request.path)
            return _error(500, "An error has occurred.")

    def _route(self, path: str) -> Response:
        method = request.method
        if path == "Defs" and method == "GET":
            return self._singleton("Defs", {"Id": 0})
        if path == "SystemStatus" and method == "GET":
            return self._singleton("SystemStatus", self._system_status())
        if path == "DialCodeSettings" and method == "GET":
            return self._singleton("DialCodeSettings", _DIAL_CODES)
        match = _KEY.match(path)
        if not match or match.group("set") not in self._sets:
            raise XapiError(404, f"No HTTP resource was found that matches the request URI '{request.url}'.")
        entity_set = self._sets[match.group("set")]
        if entity_set.needs_owner:
            self._require_owner()
        key, rest = match.group("key"), match.group("rest")
        if entity_set.name == "Recordings" and key is not None:
            # GET /Recordings(123) answered 404 on 20.0.8 (V20-API-NOTES §c); the spec has no such path.
            raise XapiError(404, f"No HTTP resource was found that matches the request URI '{request.url}'.")
        if entity_set.name == "ActiveCalls":
            return self._active_calls(entity_set, key, rest, method)
        if key is None:
            return self._collection(entity_set, rest, method)
        return self._entity(entity_set, key, rest, method)

    def _collection(self, entity_set: _EntitySet, rest: str | None, method: str) -> Response:
        if rest is None and method == "GET" and entity_set.is_listable:
            return self._list(entity_set, None, entity_set.type,
                              lambda d: [entity_set.render(d, item) for item in entity_set.items(d)])
        if rest is None and method == "POST" and entity_set.create is not None:
            return self._create(entity_set)
        if rest == "$count" and method == "GET":
            with self._directory().lock:
                return Response(str(len(entity_set.items(self._directory()))), mimetype="text/plain")
        call = _CALL.match(rest or "")
        if call and call.group("name") in entity_set.functions:
            is_function = call.group("args") is not None
            if is_function != (method == "GET"):
                raise XapiError(405, "The requested resource does not support the HTTP method.")
            return entity_set.functions[call.group("name")](entity_set, _parse_args(call.group("args") or ""))
        raise XapiError(404, f"No HTTP resource was found that matches the request URI '{request.url}'.")

    def _entity(self, entity_set: _EntitySet, key: str, rest: str | None, method: str) -> Response:
        directory = self._directory()
        with directory.lock:
            item = self._find(entity_set, directory, key)
            if rest is None and method == "GET":
                query = parse_query(request.args)
                row = shape(query, entity_set.type, self._render(entity_set, directory, item))
                return _json({"@odata.context": self._context(f"{entity_set.name}/$entity"), **row})
            if rest is None and method == "PATCH" and entity_set.attrs:
                for change in self._changes(entity_set, directory, item, _body(), creating=False):
                    change()
                return Response(status=204)
            if rest is None and method == "DELETE" and entity_set.delete is not None:
                entity_set.delete(directory, item)
                return Response(status=204)
            if rest in entity_set.type.navigation and method == "GET":
                navigation = entity_set.type.navigation[rest]
                row = self._render(entity_set, directory, item)
                return self._list(entity_set, f"{entity_set.name}({row['Id']})/{rest}", navigation.target,
                                  lambda d: navigation.load(row))
        raise XapiError(404, f"No HTTP resource was found that matches the request URI '{request.url}'.")

    def _find(self, entity_set: _EntitySet, directory: Directory, key: str) -> Any:
        key = key.strip()
        number = re.fullmatch(r"Number='((?:[^']|'')*)'", key)
        items = entity_set.items(directory)
        if number and entity_set.by_number:
            wanted = number.group(1).replace("''", "'")
            found = [i for i in items if getattr(i[0] if isinstance(i, tuple) else i, "number", None) == wanted]
        elif re.fullmatch(r"-?\d+", key):
            found = [i for i in items if (i[0] if isinstance(i, tuple) else i).id == int(key)]
        else:
            raise XapiError(400, f"The key value '{key}' was not recognized for entity set '{entity_set.name}'.")
        if not found:
            raise XapiError(404, f"{entity_set.type.name.split('.')[-1]} with key '{key}' was not found.")
        return found[0]

    def _list(self, entity_set: _EntitySet, context: str | None, entity_type: EntityType,
              rows: Callable[[Directory], list[dict]]) -> Response:
        query = parse_query(request.args)
        directory = self._directory()
        with directory.lock:
            page, count = apply(query, entity_type, rows(directory))
        body: dict[str, Any] = {"@odata.context": self._context(context or entity_set.name)}
        if query.count:
            body["@odata.count"] = count
        body["value"] = page
        return _json(body)

    def _render(self, entity_set: _EntitySet, directory: Directory, item: Any) -> dict:
        row = entity_set.render(directory, item)
        row.update(self._extras_for(directory).get((entity_set.name, row.get("Id", 0)), {}))
        return row

    def _extras_for(self, directory: Directory) -> dict[tuple[str, int], dict[str, Any]]:
        if self._extras_of is not directory:   # a reset PBX starts without old extras
            self._extras, self._extras_of = {}, directory
        return self._extras

    def _singleton(self, name: str, body: dict) -> Response:
        query = parse_query(request.args)
        row = shape(query, EntityType(f"Pbx.{name}", tuple(body)), body)
        return _json({"@odata.context": self._context(name), **row})

    @staticmethod
    def _context(fragment: str) -> str:
        return f"{request.host_url}xapi/v1/$metadata#{fragment}"

    def _require_owner(self) -> None:
        client = g.get("sim_client")
        if client is None or client.role != "system_owners":
            raise XapiError(403, "Forbidden: the System Owner role is required.")

    # ------------------------------------------------------------ writes

    def _create(self, entity_set: _EntitySet) -> Response:
        body = _body()
        directory = self._directory()
        with directory.lock:
            number = None
            if entity_set.first_number is not None:
                number = body.get("Number")
                if number is None or number == "":
                    number = self._first_free(directory, entity_set.first_number)
                elif not isinstance(number, str) or not number.isdigit():
                    raise XapiError(400, "Number:\nWARNINGS.XAPI.INVALID", "Number", "WARNINGS.XAPI.INVALID")
                elif directory.is_number_taken(number):
                    raise XapiError(400, f"Number:\n{_ALREADY_IN_USE}", "Number", _ALREADY_IN_USE)
            item = entity_set.create(directory, number)
            for change in self._changes(entity_set, directory, item, body, creating=True):
                change()
            entity_set.insert(directory, item)
            row = self._render(entity_set, directory, item)
        response = _json({"@odata.context": self._context(f"{entity_set.name}/$entity"), **row}, status=201)
        response.headers["Location"] = f"{request.host_url}xapi/v1/{entity_set.name}({row['Id']})"
        return response

    def _changes(self, entity_set: _EntitySet, directory: Directory, item: Any, body: dict,
                 *, creating: bool) -> list[Callable[[], None]]:
        """Validate a whole PATCH/POST body first; return the changes to apply (all or nothing)."""
        current = self._render(entity_set, directory, item)
        changes: list[Callable[[], None]] = []
        for name, value in body.items():
            if name.startswith("@odata") or name in READ_ONLY:
                continue
            if name == "Number" and entity_set.first_number is not None:
                if not creating and value != item.number:
                    raise XapiError(400, "Number:\nWARNINGS.XAPI.CANNOT_CHANGE_NUMBER", "Number",
                                    "WARNINGS.XAPI.CANNOT_CHANGE_NUMBER")
                continue
            if name in entity_set.special:
                changes.append(entity_set.special[name](directory, item, value))
            elif name in entity_set.attrs:
                _check_value(entity_set, name, value, getattr(item, entity_set.attrs[name]))
                changes.append(lambda attr=entity_set.attrs[name], value=value: setattr(item, attr, value))
            elif name in entity_set.type.fields:
                _check_value(entity_set, name, value, current.get(name))
                extras = self._extras_for(directory)
                changes.append(lambda name=name, value=value: extras.setdefault(
                    (entity_set.name, item.id), {}).__setitem__(name, value))
            else:
                raise XapiError(400, f"The property '{name}' does not exist on type '{entity_set.type.name}'. "
                                     "Make sure to only use property names that are defined by the type.", name)
        return changes

    def _set_profile(self, directory: Directory, user: User, value: Any) -> Callable[[], None]:
        names = [p.name for p in user.profiles]
        if not isinstance(value, str) or value not in names:
            raise XapiError(400, "CurrentProfileName:\nWARNINGS.XAPI.NOT_FOUND", "CurrentProfileName",
                            "WARNINGS.XAPI.NOT_FOUND")
        return lambda: setattr(user, "current_profile", value)

    def _set_profiles(self, directory: Directory, user: User, value: Any) -> Callable[[], None]:
        if not isinstance(value, list) or not all(isinstance(v, dict) for v in value):
            raise XapiError(400, "ForwardingProfiles: an array of ForwardingProfile objects is expected.",
                            "ForwardingProfiles")
        updates = []
        for patch in value:
            profile = next((p for p in user.profiles if p.id == patch.get("Id") or p.name == patch.get("Name")), None)
            if profile is None:
                raise XapiError(400, "ForwardingProfiles:\nWARNINGS.XAPI.NOT_FOUND", "ForwardingProfiles",
                                "WARNINGS.XAPI.NOT_FOUND")
            unknown = set(patch) - set(PROFILE_FIELDS)
            if unknown:
                raise XapiError(400, f"The property '{sorted(unknown)[0]}' does not exist on type "
                                     "'Pbx.ForwardingProfile'.", sorted(unknown)[0])
            message, timeout = patch.get("CustomMessage"), patch.get("NoAnswerTimeout")
            if (message is not None and not isinstance(message, str)) or \
                    (timeout is not None and (not isinstance(timeout, int) or isinstance(timeout, bool))):
                raise XapiError(400, "ForwardingProfiles: CustomMessage must be a string and NoAnswerTimeout "
                                     "a whole number.", "ForwardingProfiles")
            updates.append((profile, message, timeout))

        def apply_updates() -> None:
            for profile, message, timeout in updates:
                if message is not None:
                    profile.custom_message = message
                if timeout is not None:
                    profile.no_answer_timeout_s = timeout
        return apply_updates

    def _set_memberships(self, directory: Directory, user: User, value: Any) -> Callable[[], None]:
        wanted = self._parse_memberships(directory, value, key="GroupId", target="Groups")

        def replace() -> None:
            for department in directory.departments.values():
                department.members.pop(user.number, None)
            for department_id, role in wanted:
                directory.departments[department_id].members[user.number] = role
            user.department_ids = [department_id for department_id, _ in wanted]
        return replace

    def _parse_memberships(self, directory: Directory, value: Any, *, key: str, target: str) -> list[tuple[Any, str]]:
        if not isinstance(value, list) or not all(isinstance(v, dict) for v in value):
            raise XapiError(400, f"{target}: an array of UserGroup objects is expected.", target)
        wanted = []
        for entry in value:
            rights = entry.get("Rights") or {}
            role = rights.get("RoleName", "users") if isinstance(rights, dict) else None
            if role not in ROLES:
                raise XapiError(400, f"{target}:\nWARNINGS.XAPI.INVALID_ROLE", target, "WARNINGS.XAPI.INVALID_ROLE")
            ident = entry.get(key)
            valid = ident in directory.departments if key == "GroupId" else ident in directory.users
            if not valid:
                raise XapiError(400, f"{target}:\nWARNINGS.XAPI.NOT_FOUND", target, "WARNINGS.XAPI.NOT_FOUND")
            wanted.append((ident, role))
        return wanted

    def _set_group_members(self, directory: Directory, department: Department, value: Any) -> Callable[[], None]:
        wanted = self._parse_memberships(directory, value, key="Number", target="Members")

        def replace() -> None:
            for number in department.members:
                user = directory.users.get(number)
                if user and department.id in user.department_ids:
                    user.department_ids.remove(department.id)
            department.members = dict(wanted)
            for number, _ in wanted:
                if department.id not in directory.users[number].department_ids:
                    directory.users[number].department_ids.append(department.id)
        return replace

    @staticmethod
    def _set_list(attr: str) -> Callable:
        """Special field whose array of {"Number": ...} replaces a list of extension numbers."""
        def validate(directory: Directory, item: Any, value: Any) -> Callable[[], None]:
            target = {"agents": "Agents", "managers": "Managers", "members": "Members"}[attr]
            if not isinstance(value, list) or not all(isinstance(v, dict) and isinstance(v.get("Number"), str)
                                                      for v in value):
                raise XapiError(400, f"{target}: an array of objects with a Number is expected.", target)
            numbers = [v["Number"] for v in value]
            missing = [n for n in numbers if n not in directory.users]
            if missing:
                raise XapiError(400, f"{target}:\nWARNINGS.XAPI.NOT_FOUND", target, "WARNINGS.XAPI.NOT_FOUND")
            return lambda: setattr(item, attr, list(dict.fromkeys(numbers)))
        return validate

    def _insert_user(self, directory: Directory, user: User) -> None:
        if not user.profiles:
            user.profiles = default_profiles(directory)
        if not user.department_ids:
            default = next((d for d in directory.departments.values() if d.is_default), None)
            if default is not None:
                default.members[user.number] = "users"
                user.department_ids = [default.id]
        directory.users[user.number] = user

    @staticmethod
    def _delete_user(directory: Directory, user: User) -> None:
        directory.users.pop(user.number, None)
        for department in directory.departments.values():
            department.members.pop(user.number, None)
        for queue in directory.queues.values():
            queue.agents = [n for n in queue.agents if n != user.number]
            queue.managers = [n for n in queue.managers if n != user.number]
        for group in directory.ring_groups.values():
            group.members = [n for n in group.members if n != user.number]

    # ------------------------------------------------------------ navigation loaders

    def _memberships_of(self, number: str) -> list[dict]:
        directory = self._directory()
        return [render_membership(directory, d, number) for d in directory.departments.values()
                if number in d.members]

    def _members_of(self, department_id: int) -> list[dict]:
        directory = self._directory()
        department = directory.departments[department_id]
        return [render_membership(directory, department, n) for n in department.members]

    def _membership_rights(self, row: dict) -> dict:
        directory = self._directory()
        department = directory.departments.get(row["GroupId"])
        return render_rights(department.members.get(row["Number"], "users") if department else "users")

    def _peer_member_of(self, row: dict) -> list[dict]:
        directory = self._directory()
        return [{"GroupID": d.id, "Name": d.name, "Number": d.number, "RoleName": role,
                 "IsPrimary": index == 0}
                for index, (d, role) in enumerate((d, d.members[row["Number"]]) for d in directory.departments.values()
                                                  if row["Number"] in d.members)]

    def _rule_trunk(self, row: dict) -> dict | None:
        directory = self._directory()
        rule = next((r for r in directory.inbound_rules if r.id == row["Id"]), None)
        trunk = directory.trunks.get(rule.trunk_number) if rule else None
        return render_peer(directory, (trunk, "ExternalLine")) if trunk else None

    # ------------------------------------------------------------ functions and actions

    def _first_available(self, entity_set: _EntitySet) -> Callable:
        def handler(_: _EntitySet, args: dict) -> Response:
            directory = self._directory()
            with directory.lock:
                number = self._first_free(directory, entity_set.first_number)
            return _json({"@odata.context": self._context("Pbx.FirstAvailableNumber"), "Number": number})
        return handler

    @staticmethod
    def _first_free(directory: Directory, start: int) -> str:
        number = start
        while directory.is_number_taken(str(number)):
            number += 1
        return str(number)

    def _batch_delete(self, entity_set: _EntitySet, args: dict) -> Response:
        body = _body()
        ids = body.get("ids", body.get("Ids"))
        if not isinstance(ids, list) or not all(isinstance(i, int) and not isinstance(i, bool) for i in ids):
            raise XapiError(400, "ids: an array of whole numbers is expected.", "ids")
        directory = self._directory()
        errors = []
        with directory.lock:
            for user_id in ids:
                user = next((u for u in directory.users.values() if u.id == user_id), None)
                if user is None:
                    errors.append({"ExtensionNumber": str(user_id), "Error": "WARNINGS.XAPI.NOT_FOUND"})
                else:
                    self._delete_user(directory, user)
        return _json({"@odata.context": self._context("Collection(Pbx.UserDeleteError)"), "value": errors})

    def _make_call(self, entity_set: _EntitySet, args: dict) -> Response:
        body = _body()
        dn, destination = body.get("dn"), body.get("destination")
        if not isinstance(destination, str) or not destination:
            raise XapiError(400, "destination:\nWARNINGS.XAPI.REQUIRED", "destination", "WARNINGS.XAPI.REQUIRED")
        with self._directory().lock:
            known = isinstance(dn, str) and dn in self._directory().users
        if not known:
            raise XapiError(400, "dn:\nWARNINGS.XAPI.NOT_FOUND", "dn", "WARNINGS.XAPI.NOT_FOUND")
        result = self._sim.engine.make_call(dn, destination)   # outside the directory lock: the engine locks it
        return _json(_pascal_result(result))

    def _contacts_by_number(self, entity_set: _EntitySet, args: dict) -> Response:
        number = args.get("number")
        if not isinstance(number, str):
            raise XapiError(400, "number: a quoted string is expected.", "number")
        wanted = re.sub(r"\D", "", number)

        def matching(directory: Directory) -> list[dict]:
            return [render_contact(directory, c) for c in directory.contacts.values()
                    if wanted and any(_same_number(wanted, getattr(c, attr)) for attr in CONTACT_ATTRS.values()
                                      if attr not in ("first_name", "last_name", "company", "title", "department",
                                                      "email", "tag"))]
        return self._list(entity_set, "Contacts", entity_set.type, matching)

    def _download_recording(self, entity_set: _EntitySet, args: dict) -> Response:
        rec_id = args.get("recId")
        if not isinstance(rec_id, int):
            raise XapiError(400, "recId: a whole number is expected.", "recId")
        directory = self._directory()
        with directory.lock:
            recording = directory.recordings.get(rec_id)
            wav = recording.wav if recording else None
        if wav is None:
            raise XapiError(404, f"Recording with key '{rec_id}' was not found.")
        # The spec declares a JSON IActionResult; real PBXs answer the WAV itself (V20-API-NOTES §c).
        return Response(wav, mimetype="audio/x-wav",
                        headers={"Content-Disposition": f'attachment; filename="recording-{rec_id}.wav"'})

    def _call_log(self, entity_set: _EntitySet, args: dict) -> Response:
        """`GetCallLogData`: the rows of every finished call that started within the period.

        All rows of a call come together (selected by the call's first row); $orderby, $skip, $top,
        $filter and $count apply to the rows, as OData does. The source/destination/type filters
        are accepted and not applied (the gateway asks for everything).
        """
        missing = [name for name in _CALL_LOG_ARGS if name not in args]
        if missing:
            raise XapiError(400, f"The function parameters {', '.join(missing)} are missing.")
        period = []
        for name in ("periodFrom", "periodTo"):
            value = args[name]
            if not isinstance(value, str) or not _UTC_PERIOD.match(value):
                raise XapiError(400, f"The value '{value}' of {name} is not a UTC date-time ending in Z.", name)
            period.append(datetime.fromisoformat(value.replace("Z", "+00:00")))
        since, until = period
        query = parse_query(request.args, max_top=CALL_LOG_MAX_TOP)
        directory = self._directory()
        with directory.call_log_lock:
            log = list(directory.call_log)
        starts: dict[str, datetime] = {}
        for row in log:
            starts[row.main_id] = min(starts.get(row.main_id, row.start_time), row.start_time)
        rows = [render_call_log(directory, row) for row in log if since <= starts[row.main_id] <= until]
        page, count = apply(query, entity_set.type, rows)
        body: dict[str, Any] = {"@odata.context": self._context("Collection(Pbx.CallLogData)")}
        if query.count:
            body["@odata.count"] = count
        body["value"] = page
        return _json(body)

    def _active_calls(self, entity_set: _EntitySet, key: str | None, rest: str | None, method: str) -> Response:
        engine = self._sim.engine
        if key is None and rest is None and method == "GET":
            calls = engine.active_calls()   # outside the directory lock: the engine takes its own locks
            return self._list(entity_set, None, entity_set.type,
                              lambda d: [render_active_call(d, c) for c in calls])
        if key is not None and rest == "Pbx.DropCall" and method == "POST":
            if not re.fullmatch(r"\d+", key.strip()):
                raise XapiError(400, f"The key value '{key}' was not recognized for entity set 'ActiveCalls'.")
            if not engine.drop_call(int(key)):
                raise XapiError(404, f"ActiveCall with key '{key}' was not found.")
            return _json({})
        if key is not None and rest is None and method == "GET":
            calls = [c for c in engine.active_calls() if str(c.id) == key.strip()]
            if not calls:
                raise XapiError(404, f"ActiveCall with key '{key}' was not found.")
            row = render_active_call(self._directory(), calls[0])
            return _json({"@odata.context": self._context("ActiveCalls/$entity"), **row})
        raise XapiError(404, f"No HTTP resource was found that matches the request URI '{request.url}'.")

    def _system_status(self) -> dict:
        calls_active = self._sim.engine.calls_active()
        directory = self._directory()
        with directory.lock:
            users = list(directory.users.values())
            return {
                "Id": 0, "FQDN": directory.fqdn, "Version": directory.version, "Activated": True,
                "LicenseActive": True, "ProductCode": "3CXPSENT16", "ExpirationDate": "2030-12-31T00:00:00Z",
                "MaintenanceExpiresAt": "2030-12-31T00:00:00Z", "MaxSimCalls": directory.max_sim_calls,
                "CallsActive": calls_active, "ExtensionsRegistered": sum(u.is_registered for u in users),
                "ExtensionsTotal": len(users), "UserExtensions": len(users), "MaxUserExtensions": 0,
                "TrunksRegistered": sum(t.is_online for t in directory.trunks.values()),
                "TrunksTotal": len(directory.trunks), "OutboundRules": 1, "OS": "Linux", "Support": True,
                "AutoUpdateEnabled": False, "HasNotRunningServices": False, "DBMaintenanceInProgress": False,
                "DiskUsage": 12, "FreeDiskSpace": 40_000_000_000, "TotalDiskSpace": 50_000_000_000,
                "RecordingUsedSpace": sum(len(r.wav) for r in directory.recordings.values()),
                "RecordingQuota": 10_000_000_000, "RecordingQuotaReached": False, "RecordingStopped": False,
                "Ip": "127.0.0.1", "IpV4": "127.0.0.1", "IpV6": "", "LocalIpValid": True,
                "IsRecordingArchiveEnabled": False, "IsAuditLogEnabled": True, "IsChatLogEnabled": False,
                "VoicemailQuotaReached": False, "VoicemailStopped": False, "ResellerName": "",
            }


_DIAL_CODES = {"DialCodeBillingCode": "*44", "DialCodeHideCallerID": "*60", "DialCodeHotdesking": "*66",
               "DialCodeHotelAccess": "*77", "DialCodeIntercom": "*9", "DialCodeLoggedInQueue": "*62",
               "DialCodeLoggedOutQueue": "*63", "DialCodeOutOffice": "*34", "DialCodePark": "*0",
               "DialCodePickup": "*20", "DialCodeProfileStatus": "*30", "DialCodeUnpark": "*1",
               "DialCodeVMail": "999"}


# ---------------------------------------------------------------- small helpers

def _json(body: Any, status: int = 200) -> Response:
    return Response(json.dumps(body, ensure_ascii=False), status=status, mimetype="application/json",
                    headers={"OData-Version": "4.0"})


def _error(status: int, message: str, details: list | None = None) -> Response:
    body = {"error": {"code": "", "message": message, "details": details or []}}
    return Response(json.dumps(body, ensure_ascii=False), status=status, mimetype="application/json")


def _body() -> dict:
    body = request.get_json(silent=True)
    if not isinstance(body, dict):
        raise XapiError(400, "The request body is not a valid JSON object.")
    return body


def _parse_args(text: str) -> dict[str, Any]:
    """Parameters of a function call: number='0612', recId=12."""
    args: dict[str, Any] = {}
    literal = r"'(?:[^']|'')*'|\d{4}-\d\d-\d\dT[0-9:.]+(?:Z|[+-]\d\d:\d\d)|true|false|-?\d+"
    pattern = rf"\s*([A-Za-z]+)\s*=\s*({literal})\s*(?:,|$)"
    for part in re.finditer(pattern, text):
        raw = part.group(2)
        if raw.startswith("'"):
            args[part.group(1)] = raw[1:-1].replace("''", "'")
        elif raw in ("true", "false"):
            args[part.group(1)] = raw == "true"
        elif "T" in raw:
            args[part.group(1)] = raw        # a date-time literal, checked by the function
        else:
            args[part.group(1)] = int(raw)
    if text.strip() and not args:
        raise XapiError(400, f"The function parameters '{text}' are not valid.")
    return args


def _check_value(entity_set: _EntitySet, name: str, value: Any, sample: Any) -> None:
    """Reject a written value whose JSON type (or enum name) does not fit the field."""
    if name in entity_set.enums:
        if value not in entity_set.enums[name]:
            raise XapiError(400, f"The value '{value}' is not valid for {name}.", name)
        return
    expected = (bool if isinstance(sample, bool) else int if isinstance(sample, int) else
                str if isinstance(sample, str) else list if isinstance(sample, list) else
                dict if isinstance(sample, dict) else None)
    if expected is None:
        return
    if not isinstance(value, expected) or (expected is int and isinstance(value, bool)):
        edm = {bool: "Edm.Boolean", int: "Edm.Int32", str: "Edm.String", list: "Collection", dict: "Object"}
        raise XapiError(400, f"Cannot convert the literal '{value}' to the expected type '{edm[expected]}'.", name)


def _same_number(wanted_digits: str, stored: str) -> bool:
    """The simulator's phone match: equal digits, or one ends with the other and shares 7+ digits."""
    digits = re.sub(r"\D", "", stored or "")
    if not digits:
        return False
    shorter = min(len(digits), len(wanted_digits))
    return digits == wanted_digits or (shorter >= 7 and (digits.endswith(wanted_digits)
                                                         or wanted_digits.endswith(digits)))


_FINAL_STATUS = {-1: "Failed", 0: "Rejected", 1: "Success"}
_PARTICIPANT_KEYS = {"id": "Id", "status": "Status", "dn": "DN", "party_caller_name": "PartyCallerName",
                     "party_dn": "PartyDn", "party_caller_id": "PartyCallerId", "party_dn_type": "PartyDnType",
                     "device_id": "DeviceId", "direct_control": "DirectControl", "callid": "CallId",
                     "legid": "LegId"}


def _pascal_result(result: dict) -> dict:
    """A Call Control CallControlResultResponse in XAPI spelling (Pbx.CallControlResultResponse)."""
    status = result.get("finalstatus")
    participant = result.get("result")
    return {
        "@odata.context": f"{request.host_url}xapi/v1/$metadata#Pbx.CallControlResultResponse",
        "FinalStatus": _FINAL_STATUS.get(status, str(status)) if isinstance(status, int) else str(status or ""),
        "Reason": str(result.get("reason") or ""), "ReasonText": str(result.get("reasontext") or ""),
        "Result": ({pascal: participant.get(snake) for snake, pascal in _PARTICIPANT_KEYS.items()}
                   if isinstance(participant, dict) else None),
        "VttId": None,
    }
