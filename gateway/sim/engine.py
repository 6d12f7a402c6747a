"""The simulated PBX's call engine: calls, participants, routing, timers and recordings.

Everything the Call Control views, the WebSocket and the XAPI views show about live calls comes
from here. One lock (`Engine._lock`) guards all state; the engine never holds it while taking
`Directory.lock`, so views may call the engine while holding the directory lock.
What monitored DNs see in each kind of call is fixed by docs/v20-call-flows.md (flows 1-9).
The state it keeps is in gateway/sim/calls.py; what an ended call leaves (recordings, call
history) is made by gateway/sim/history.py.

Time: a virtual clock runs `time_scale` simulated seconds per real second; ring timeouts and
scenario waits are simulated seconds. Timestamps shown to clients (recording start/end, active
call times) are the PBX's wall clock `Engine.wall`: real UTC time, plus `wall.offset_s` when a
test sets the PBX's clock off.
"""
from __future__ import annotations

import itertools
import logging
import threading
from typing import Any, Callable

from gateway.sim.calls import (
    CONNECTED, DIALING, REMOVE, RING_ALL_STRATEGIES, RINGING, TYPE_NAMES, UPSERT, ActionRefused, ActiveCallInfo,
    Call, External, Identity, Participant, PendingRecording, Route, Subscriber, display_name, failure, is_up,
)
from gateway.sim.history import call_log_rows, make_recording, publish_call_log
from gateway.sim.model import CallLogRow, Device, Directory, User
from gateway.sim.timing import Scheduler, Timer, VirtualClock, WallClock

logger = logging.getLogger(__name__)


# --- the engine -------------------------------------------------------------------------------

class Engine:
    """The simulated PBX's calls. Thread-safe; every public method takes the one lock."""

    def __init__(self, directory: Directory, *, time_scale: float = 1.0) -> None:
        self.directory = directory
        self.clock = VirtualClock(time_scale)
        self.wall = WallClock()
        self.scheduler = Scheduler(self.clock)
        self._lock = threading.RLock()
        self._participant_ids = itertools.count(1)
        self._callids = itertools.count(1)
        self._calls: dict[int, Call] = {}
        self._participants: dict[int, Participant] = {}
        self._by_dn: dict[str, dict[int, Participant]] = {}   # dn -> id -> live participant
        self._subscribers: list[Subscriber] = []
        self._generation = 0
        self._set_default_delays()

    def _set_default_delays(self) -> None:
        # How long simulated phones and outside parties take on their own (simulated seconds).
        self.pickup_after_s = 2.0          # makecall: the caller's device is picked up
        self.external_answer_after_s = 3.0  # an outside number dialled by makecall answers
        self.recording_delay_s = 1.0       # a recording appears this long after its call ends

    # -- lifecycle ----------------------------------------------------------------------------
    def start(self) -> None:
        self.scheduler.start()

    def stop(self, timeout_s: float = 2.0) -> None:
        self.scheduler.stop(timeout_s)

    def reset(self, directory: Directory) -> None:
        """Forget every call and pending timer and work on `directory` from now on (no events)."""
        with self._lock:
            self._generation += 1
            self.scheduler.clear()
            self.wall.offset_s = 0.0
            self._set_default_delays()
            calls = list(self._calls.values())
            self._calls.clear()
            self._participants.clear()
            self._by_dn.clear()
            self.directory = directory
        for call in calls:
            call.is_ended = True
            call.finished.set()
            with self._lock:
                self._notify(call)   # releases scenarios waiting on these calls

    def restart_call_numbers(self, first: int = 1) -> None:
        """Number the next calls from `first`, as a PBX does when it restarts (003: call numbers are
        unique "within the current 3CX session")."""
        with self._lock:
            self._callids = itertools.count(first)

    def later(self, sim_delay_s: float, fn: Callable[..., None], *args: Any) -> Timer:
        """Run `fn(*args)` after a simulated delay, unless the engine is reset meanwhile."""
        generation = self._generation

        def run() -> None:
            if generation == self._generation:
                fn(*args)

        return self.scheduler.call_later(sim_delay_s, run)

    # -- subscribers ----------------------------------------------------------------------------
    def subscribe(self, subscriber: Subscriber) -> None:
        with self._lock:
            self._subscribers.append(subscriber)

    def unsubscribe(self, subscriber: Subscriber) -> None:
        with self._lock:
            if subscriber in self._subscribers:
                self._subscribers.remove(subscriber)

    def _publish(self, event_type: int, participant: Participant) -> None:
        # Called with the lock held, so every subscriber sees events in the engine's order.
        participant.call.last_change = self.wall.now()
        for subscriber in self._subscribers:
            if subscriber.wants(participant.dn):
                subscriber.push(event_type, participant.entity)

    def _notify(self, call: Call) -> None:
        if call.watchers:
            pending, call.watchers = call.watchers, []
            kept = [watcher for watcher in pending if not watcher(call)]
            call.watchers = kept + call.watchers   # plus any registered meanwhile

    def watch(self, call: Call, watcher: Callable[[Call], bool]) -> None:
        """Call `watcher(call)` (lock held) after each change of `call` until it returns True."""
        with self._lock:
            if not watcher(call):
                call.watchers.append(watcher)

    # -- reading --------------------------------------------------------------------------------
    def identity_of(self, dn: str) -> Identity:
        """How DN `dn` appears as the other party."""
        directory = self.directory
        user = directory.users.get(dn)
        if user is not None:
            return Identity(dn, TYPE_NAMES["extension"], dn, display_name(user))
        for kind, table in (("queue", directory.queues), ("ringgroup", directory.ring_groups),
                            ("ivr", directory.ivrs)):
            entity = table.get(dn)
            if entity is not None:
                return Identity(dn, TYPE_NAMES[kind], dn, entity.name)
        return Identity(dn, "", dn, "")

    def participants(self, dn: str) -> list[dict[str, Any]]:
        with self._lock:
            return [p.view() for p in self._by_dn.get(dn, {}).values()]

    def participant(self, dn: str, participant_id: int) -> dict[str, Any] | None:
        with self._lock:
            found = self._participants.get(participant_id)
            return found.view() if found is not None and found.dn == dn else None

    def call(self, callid: int) -> Call | None:
        with self._lock:
            return self._calls.get(callid)

    def calls_active(self) -> int:
        with self._lock:
            return len(self._calls)

    def active_calls(self) -> list[ActiveCallInfo]:
        with self._lock:
            return [self._active_call_info(call) for call in self._calls.values()]

    def _active_call_info(self, call: Call) -> ActiveCallInfo:
        if call.is_established:
            status = "Talking"
        elif isinstance(call.callee, External) or (isinstance(call.caller, Participant)
                                                   and call.caller.status == DIALING and not call.routes):
            status = "Dialing"
        else:
            status = "Routing"
        callee: Participant | External | Route | None = call.callee
        if callee is None and call.routes:
            route = call.routes[0]
            callee = route.offers[0] if route.kind != "queue" and route.offers else route
        return ActiveCallInfo(id=call.callid, caller=self._display(call.caller),
                              callee=self._display(callee) if callee is not None else call.destination,
                              status=status, established_at=call.created_at, last_change=call.last_change,
                              server_now=self.wall.now())

    def _display(self, side: Participant | External | Route | None) -> str:
        if side is None:
            return ""
        if isinstance(side, External):
            return side.number
        identity = self.identity_of(side.dn)
        return f"{side.dn} {identity.name}".strip()

    # -- starting calls -----------------------------------------------------------------------
    def inbound(self, caller: str, did: str = "", destination: str | None = None, *,
                caller_name: str = "", members: list[str] | None = None) -> Call:
        """An outside call arrives on a trunk; routed to `destination` or by the DID's inbound rule."""
        with self._lock:
            directory = self.directory
            rule = directory.rule_for_did(did) if did else None
            trunk_dn = rule.trunk_number if rule else self._trunk_for_did(did)
            target = destination or (rule.destination if rule else "")
            if not target:
                raise ActionRefused(422, "NoDestinations", f"no inbound rule for DID {did!r}")
            if not self._is_routable(target):
                raise ActionRefused(424, "InvalidDestination", f"{target!r} is not a routable DN")
            call = self._new_call("inbound")
            call.caller = External(caller, caller_name or caller, trunk_dn, rule.did if rule else did)
            call.destination = target
            self._route(call, target, members=members)
            self._notify(call)
            return call

    def outbound(self, dn: str, number: str) -> Call:
        """Extension `dn` dials `number` from its phone (flows 7 and 8)."""
        with self._lock:
            self._require_extension(dn)
            call = self._new_call("internal" if self._is_routable(number) else "outbound")
            self._start_dialing(call, dn, number)
            self._notify(call)
            return call

    def make_call(self, dn: str, destination: str, device_id: str | None = None) -> dict[str, Any]:
        """Start a call from `dn` (flow 9); a CallControlResultResponse body (failures included)."""
        try:
            _, body = self.make_call_checked(dn, destination, device_id)
            return body
        except ActionRefused as refused:
            return failure(refused)

    def make_call_checked(self, dn: str, destination: str, device_id: str | None = None,
                          timeout_s: float | None = None) -> tuple[Call, dict[str, Any]]:
        """`make_call` that raises ActionRefused; returns the call and the result body.

        `timeout_s` (the request's `timeout`): how long the caller's own device may ring before
        the call is given up.
        """
        destination = (destination or "").strip()
        with self._lock:
            user = self._require_extension(dn)
            if not destination:
                raise ActionRefused(422, "InvalidDestination", "destination is required")
            if destination == dn:
                raise ActionRefused(422, "InvalidDestination", "cannot call itself")
            if device_id is not None:
                device = next((d for d in user.devices if d.device_id == device_id), None)
                if device is None:
                    raise ActionRefused(404, "DeviceNotFound", f"no device {device_id!r} on {dn}")
            else:
                device = user.devices[0] if user.devices else None
            if not self._is_routable(destination) and not self.directory.trunks:
                raise ActionRefused(424, "NoTrunk", "no trunk for outside calls")
            call = self._new_call("internal" if self._is_routable(destination) else "outbound")
            if device is not None and device.direct_control and device_id is not None:
                # A uaCSTA device goes off-hook by itself: no ringing first.
                caller = self._start_dialing(call, dn, destination, device=device, is_auto_answer=True)
            else:
                # The caller's own device rings first; party_dn stays "" until it is picked up.
                call.destination = destination
                caller = self._add(call, dn, RINGING, Identity("", "", destination, ""),
                                   originated_by=(dn, TYPE_NAMES["extension"]), device=device)
                call.caller = caller
                call.timers.append(self.later(self.pickup_after_s, self._pickup_timer, call))
                if timeout_s:
                    call.timers.append(self.later(float(timeout_s), self._caller_timeout, call))
            self._notify(call)
            # The DN form names the new leg only when the DN has exactly one device (V20-API-NOTES §d).
            result = caller.view() if device_id is not None or len(user.devices) == 1 else None
            return call, {"finalstatus": "Success", "reason": "", "result": result, "reasontext": ""}

    def consult(self, callid: int, by_dn: str, to_dn: str) -> Call:
        """Attended transfer, first half (flow 6): `by_dn` calls `to_dn` while its call waits."""
        with self._lock:
            original = self._require_call(callid)
            by = self._connected_leg(original, by_dn)
            consult = self._new_call("internal")
            consult.consult_for = (original, by)
            self._start_dialing(consult, by_dn, to_dn)
            self._notify(consult)
            return consult

    def complete_transfer(self, consult_callid: int) -> None:
        """Attended transfer, second half: the consulted party takes over the original call."""
        with self._lock:
            consult = self._require_call(consult_callid)
            if consult.consult_for is None or not isinstance(consult.callee, Participant) \
                    or consult.callee.status != CONNECTED:
                raise ActionRefused(422, "InvalidState", "the consultation call is not connected")
            original, by = consult.consult_for
            if original.is_ended or by.is_removed:
                raise ActionRefused(422, "InvalidState", "the original call is gone")
            target = consult.callee
            if original.caller is by:
                original.caller, original.callee = original.callee, original.caller
            remaining = original.caller
            new = self._add(original, target.dn, CONNECTED, self._side_identity(remaining),
                            originated_by=(by.originated_by_dn, by.originated_by_type),
                            referred_by=(by.dn, by.dn_type),
                            publish=False)
            self._set_connected(new)
            original.callee = new
            self._publish(UPSERT, new)
            self._end(consult, first=consult.caller)
            self._remove(by)
            self._refresh_party(remaining, new)
            self._notify(original)
            self._notify(consult)

    # -- acting on calls ------------------------------------------------------------------------
    def answer_offer(self, callid: int, dn: str) -> bool:
        """Extension `dn` picks up its ringing leg of call `callid` (what a user does on the phone)."""
        with self._lock:
            call = self._calls.get(callid)
            offer = next((p for p in call.offers() if p.dn == dn), None) if call else None
            if offer is None:
                return False
            self._answer(offer)
            self._notify(call)
            return True

    def answer_external(self, callid: int) -> bool:
        """The outside number dialled by call `callid` answers."""
        with self._lock:
            call = self._calls.get(callid)
            if call is None or not isinstance(call.callee, External) or call.callee.is_answered:
                return False
            self._external_answered(call)
            self._notify(call)
            return True

    def hang_up(self, callid: int, dn: str | None = None) -> bool:
        """End call `callid`; `dn` hangs up first (None: the outside party / whole call)."""
        with self._lock:
            call = self._calls.get(callid)
            if call is None:
                return False
            first = next((p for p in call.live_participants() if p.dn == dn), None) if dn else None
            self._end(call, first=first)
            self._notify(call)
            return True

    def give_up(self, callid: int) -> bool:
        """Nobody answers: the destinations stop ringing and the caller is released."""
        return self.hang_up(callid)

    def press(self, callid: int, destination: str) -> None:
        """The caller presses the key that sends an IVR call to `destination` (flow 4)."""
        with self._lock:
            call = self._require_call(callid)
            route = next((r for r in call.routes if r.kind == "ivr"), None)
            if route is None:
                raise ActionRefused(422, "InvalidState", f"call {callid} is not in an IVR")
            self._leave_ivr(call, route, destination)
            self._notify(call)

    def drop_call(self, call_id: int) -> bool:
        """XAPI `ActiveCalls({Id})/Pbx.DropCall`: end the whole call."""
        return self.hang_up(call_id)

    def act(self, dn: str, participant_id: int, action: str,
            body: dict[str, Any] | None = None) -> dict[str, Any]:
        """A participant action (`drop`, `answer`, ...); the CallControlResultResponse body."""
        body = body or {}
        with self._lock:
            participant = self._participants.get(participant_id)
            if participant is None or participant.dn != dn:
                raise ActionRefused(404, "ParticipantNotFound", f"no participant {participant_id} on {dn}")
            call = participant.call
            handler = {
                "drop": self._act_drop, "answer": self._act_answer, "divert": self._act_divert,
                "routeto": self._act_routeto, "transferto": self._act_transferto,
                "attach_participant_data": self._act_attach, "attach_party_data": self._act_attach_party,
            }.get(action)
            if handler is None:
                raise ActionRefused(400, "UnknownAction", f"unknown action {action!r}")
            result = handler(participant, body)
            self._notify(call)
            return {"finalstatus": "Success", "reason": "", "result": result, "reasontext": ""}

    def pause_recording(self, callid: int, dn: str) -> None:
        """`dn` stops recording its leg of call `callid`: what was recorded so far is one recording.

        A recorded leg that pauses and resumes gives one recording per segment, all of that leg.
        """
        with self._lock:
            leg = self._connected_leg(self._require_call(callid), dn)
            if leg.segment_sim is None:
                raise ActionRefused(422, "InvalidState", f"{dn} is not recording call {callid}")
            self._note_recording(leg)
            leg.segment_sim = leg.segment_at = None

    def resume_recording(self, callid: int, dn: str) -> None:
        """`dn` records its leg of call `callid` again, as a new recording."""
        with self._lock:
            leg = self._connected_leg(self._require_call(callid), dn)
            if leg.segment_sim is None:
                leg.segment_sim, leg.segment_at = self.clock.now(), self.wall.now()

    def transfer(self, callid: int, by_dn: str, destination: str) -> None:
        """Blind transfer by `by_dn`'s connected leg (flow 5), as the `transferto` action does."""
        with self._lock:
            call = self._require_call(callid)
            leg = self._connected_leg(call, by_dn)
            self._act_transferto(leg, {"destination": destination})
            self._notify(call)

    # -- actions ----------------------------------------------------------------------------------
    def _act_drop(self, participant: Participant, body: dict) -> dict:
        view = participant.view()
        call = participant.call
        route = self._route_of(participant)
        if route is not None and participant is not route.holder:
            # A ringing leg that is dropped is a rejection; the call goes on if anything else rings.
            route.offers.remove(participant)
            self._remove(participant)
            if not route.offers:
                if route.kind == "queue" and route.is_ring_all:
                    pass   # the queue rings everyone again when this ring times out
                elif route.kind in ("queue", "ringgroup") and not route.is_ring_all:
                    route.cancel_ring()
                    self._ring_next(call, route)
                else:
                    route.cancel_timers()
                    call.routes.remove(route)
            if not call.routes and not is_up(call.callee):
                self._end(call)
        else:
            self._end(call, first=participant)
        return view

    def _act_answer(self, participant: Participant, body: dict) -> dict:
        if participant.status != RINGING or not participant.direct_control:
            raise ActionRefused(422, "NotSupported",
                                "answer works only on a ringing participant with direct_control")
        call = participant.call
        if participant is call.caller:
            self._pickup(call)
        else:
            self._answer(participant)
        return participant.view()

    def _act_divert(self, participant: Participant, body: dict) -> dict:
        if participant.status != RINGING or participant is participant.call.caller:
            raise ActionRefused(422, "InvalidState", "divert works only on a ringing participant")
        destination = self._destination(body)
        call = participant.call
        old_routes = list(call.routes)
        call.routes = []
        self._route(call, destination)
        for route in old_routes:
            self._drop_route(route)
        return participant.view()

    def _act_routeto(self, participant: Participant, body: dict) -> dict:
        call = participant.call
        destination = self._destination(body)
        if participant.status == RINGING and participant is not call.caller:
            self._route(call, destination)
        elif participant.status == CONNECTED and participant in (call.caller, call.callee):
            # The participant keeps talking until the new destination answers and replaces it.
            if call.caller is participant:
                call.caller, call.callee = call.callee, call.caller
            self._route(call, destination, referred_by=(participant.dn, participant.dn_type))
        else:
            raise ActionRefused(422, "InvalidState", "routeto works on ringing or connected participants")
        return participant.view()

    def _act_transferto(self, participant: Participant, body: dict) -> dict:
        call = participant.call
        if participant.status != CONNECTED or participant not in (call.caller, call.callee):
            raise ActionRefused(422, "InvalidState", "transferto works only on a connected participant")
        destination = self._destination(body)
        view = participant.view()
        if call.caller is participant:
            call.caller, call.callee = call.callee, call.caller
        # The new leg is created before the old one is released (flow 5, inferred).
        self._route(call, destination, referred_by=(participant.dn, participant.dn_type))
        call.callee = None
        self._remove(participant)
        return view

    def _act_attach(self, participant: Participant, body: dict) -> dict:
        participant.attached_data.update(_attached(body))
        self._publish(UPSERT, participant)
        return participant.view()

    def _act_attach_party(self, participant: Participant, body: dict) -> dict:
        call = participant.call
        other = call.callee if participant is call.caller else call.caller
        if isinstance(other, Participant):
            other.attached_data.update(_attached(body))
            self._publish(UPSERT, other)
        return participant.view()

    def _destination(self, body: dict) -> str:
        destination = str(body.get("destination") or "").strip()
        if not destination:
            raise ActionRefused(422, "InvalidDestination", "destination is required")
        if not self._is_routable(destination):
            raise ActionRefused(424, "InvalidDestination",
                                f"{destination!r} is not a DN of this PBX (the simulator routes only to DNs)")
        return destination

    # -- internals (lock held) --------------------------------------------------------------------
    def _new_call(self, direction: str) -> Call:
        call = Call(next(self._callids), direction)
        call.created_at = call.last_change = self.wall.now()
        self._calls[call.callid] = call
        return call

    def _require_call(self, callid: int) -> Call:
        call = self._calls.get(callid)
        if call is None:
            raise ActionRefused(404, "CallNotFound", f"no call {callid}")
        return call

    def _require_extension(self, dn: str) -> User:
        user = self.directory.users.get(dn)
        if user is None:
            raise ActionRefused(404 if not self.directory.dn_kind(dn) else 422, "InvalidSource",
                                f"{dn} is not an extension")
        return user

    def _connected_leg(self, call: Call, dn: str) -> Participant:
        leg = next((p for p in (call.caller, call.callee)
                    if isinstance(p, Participant) and p.dn == dn and p.status == CONNECTED), None)
        if leg is None:
            raise ActionRefused(422, "InvalidState", f"{dn} has no connected leg in call {call.callid}")
        return leg

    def _trunk_for_did(self, did: str) -> str:
        trunks = self.directory.trunks
        for trunk in trunks.values():
            if did and did in trunk.did_numbers:
                return trunk.number
        return next(iter(trunks), "10000")

    def _is_routable(self, number: str) -> bool:
        """Whether calls to `number` stay inside the PBX (an extension, queue, ring group or IVR)."""
        return self.directory.dn_kind(number) in ("extension", "queue", "ringgroup", "ivr")

    def _target_identity(self, number: str) -> Identity:
        if self._is_routable(number):
            return self.identity_of(number)
        return Identity(next(iter(self.directory.trunks), "10000"), TYPE_NAMES["trunk"], number, "")

    def _side_identity(self, side: Participant | External | None) -> Identity:
        if isinstance(side, External):
            return side.identity
        if isinstance(side, Participant):
            return self.identity_of(side.dn)
        return Identity("", "", "", "")

    def _add(self, call: Call, dn: str, status: str, party: Identity, *,
             originated_by: tuple[str, str] = ("", ""), referred_by: tuple[str, str] = ("", ""),
             via: tuple[str, str] = ("", ""), device: Any = None, publish: bool = True) -> Participant:
        kind = self.directory.dn_kind(dn) or "extension"
        if device is None and kind == "extension":
            user = self.directory.users.get(dn)
            device = user.devices[0] if user and user.devices else None
        participant = Participant(
            id=next(self._participant_ids), dn=dn, dn_type=TYPE_NAMES.get(kind, ""), call=call,
            legid=call.next_legid(), status=status, party=party, created_at=self.wall.now(),
            device_id=device.device_id if device else "",
            direct_control=bool(device and device.direct_control),
            originated_by_dn=originated_by[0], originated_by_type=originated_by[1],
            referred_by_dn=referred_by[0], referred_by_type=referred_by[1],
            on_behalf_of_dn=via[0], on_behalf_of_type=via[1])
        call.participants.append(participant)
        self._participants[participant.id] = participant
        self._by_dn.setdefault(dn, {})[participant.id] = participant
        if status == CONNECTED:
            self._set_connected(participant)
        if publish:
            self._publish(UPSERT, participant)
        return participant

    def _set_connected(self, participant: Participant) -> None:
        participant.status = CONNECTED
        participant.connected_sim = self.clock.now()
        participant.connected_at = self.wall.now()
        participant.segment_sim, participant.segment_at = participant.connected_sim, participant.connected_at

    def _remove(self, participant: Participant) -> None:
        if participant.is_removed:
            return
        participant.is_removed = True
        participant.removed_at = self.wall.now()
        self._participants.pop(participant.id, None)
        on_dn = self._by_dn.get(participant.dn)
        if on_dn is not None:
            on_dn.pop(participant.id, None)
            if not on_dn:
                del self._by_dn[participant.dn]
        if participant.status == CONNECTED and participant.segment_sim is not None:
            self._note_recording(participant)
        self._publish(REMOVE, participant)

    def _refresh_party(self, side: Participant | External | None, other: Participant | External) -> None:
        if isinstance(side, Participant) and not side.is_removed:
            identity = self._side_identity(other)
            if side.party != identity:
                side.party = identity
                self._publish(UPSERT, side)

    def _start_dialing(self, call: Call, dn: str, number: str, *, device: Device | None = None,
                       is_auto_answer: bool = False) -> Participant:
        """Extension `dn` goes off-hook on `call` and dials `number`; its leg becomes the caller."""
        call.destination = number
        caller = self._add(call, dn, DIALING, self._target_identity(number),
                           originated_by=(dn, TYPE_NAMES["extension"]), device=device, publish=False)
        call.caller = caller
        self._dial(call, number, announce=caller, is_auto_answer=is_auto_answer)
        return caller

    def _dial(self, call: Call, number: str, *, announce: Participant, is_auto_answer: bool = False) -> None:
        """The caller's leg (Dialing) starts towards `number`: a DN is routed, anything else goes out.

        `is_auto_answer`: an outside number answers by itself after `external_answer_after_s`
        (makecall); otherwise whoever drives the call (a scenario) answers it.
        """
        if self._is_routable(number):
            self._publish(UPSERT, announce)
            self._route(call, number)
            return
        call.callee = External(number, "", announce.party.dn, is_answered=False)
        self._publish(UPSERT, announce)
        if is_auto_answer:
            call.timers.append(self.later(self.external_answer_after_s, self._external_answer_timer, call))

    def _pickup_timer(self, call: Call) -> None:
        with self._lock:
            if not call.is_ended and isinstance(call.caller, Participant) and call.caller.status == RINGING:
                self._pickup(call)
                self._notify(call)

    def _caller_timeout(self, call: Call) -> None:
        with self._lock:
            if not call.is_ended and isinstance(call.caller, Participant) and call.caller.status == RINGING:
                self._end(call)
                self._notify(call)

    def _pickup(self, call: Call) -> None:
        caller = call.caller
        assert isinstance(caller, Participant)
        caller.status = DIALING
        caller.party = self._target_identity(call.destination)
        self._dial(call, call.destination, announce=caller, is_auto_answer=True)

    def _external_answer_timer(self, call: Call) -> None:
        with self._lock:
            if not call.is_ended and isinstance(call.callee, External) and not call.callee.is_answered:
                self._external_answered(call)
                self._notify(call)

    def _external_answered(self, call: Call) -> None:
        assert isinstance(call.callee, External)
        call.callee.is_answered = True
        caller = call.caller
        if isinstance(caller, Participant) and caller.status != CONNECTED:
            self._set_connected(caller)
            self._publish(UPSERT, caller)

    def _route(self, call: Call, dn: str, *, via: tuple[str, str] = ("", ""),
               referred_by: tuple[str, str] = ("", ""), members: list[str] | None = None) -> Route:
        """Offer the call to DN `dn`; its participants appear (Upsert) before this returns."""
        directory = self.directory
        kind = directory.dn_kind(dn)
        party = self._side_identity(call.caller)
        originated = _originated_of(call.caller)
        if kind == "extension":
            user = directory.users[dn]
            route = Route("extension", dn, members=[dn], ring_s=_no_answer_s(user), via=via,
                          referred_by=referred_by)
            call.routes.append(route)
            route.offers.append(self._add(call, dn, RINGING, party, originated_by=originated,
                                          referred_by=referred_by, via=via))
            route.ring_timer = self.later(route.ring_s, self._route_timeout, call, route)
        elif kind == "queue":
            queue = directory.queues[dn]
            agents = members if members is not None else [
                a for a in queue.agents if a in directory.users and directory.users[a].queue_status == "LoggedIn"]
            route = Route("queue", dn, members=list(agents),
                          is_ring_all=queue.polling_strategy in RING_ALL_STRATEGIES,
                          ring_s=float(queue.ring_timeout_s), via=via, referred_by=referred_by)
            call.routes.append(route)
            # The queue answers first and plays music (flow 2, inferred).
            route.holder = self._add(call, dn, CONNECTED, party, originated_by=originated,
                                     referred_by=referred_by, via=via)
            route.master_timer = self.later(float(queue.master_timeout_s), self._route_give_up, call, route)
            self._ring_next(call, route)
        elif kind == "ringgroup":
            group = directory.ring_groups[dn]
            route = Route("ringgroup", dn, members=list(members if members is not None else group.members),
                          is_ring_all=group.ring_strategy in RING_ALL_STRATEGIES,
                          ring_s=float(group.ring_time_s), via=via, referred_by=referred_by)
            call.routes.append(route)
            self._ring_next(call, route)
        elif kind == "ivr":
            ivr = directory.ivrs[dn]
            route = Route("ivr", dn, ring_s=float(ivr.timeout_s), via=via, referred_by=referred_by)
            call.routes.append(route)
            route.holder = self._add(call, dn, CONNECTED, party, originated_by=originated,
                                     referred_by=referred_by, via=via)
            route.ring_timer = self.later(route.ring_s, self._ivr_timeout, call, route)
        else:
            raise ActionRefused(424, "InvalidDestination", f"{dn!r} is not a routable DN")
        return route

    def _ring_next(self, call: Call, route: Route) -> None:
        """Queue / ring group: ring everyone (ring-all) or the next member (hunt) for `ring_s`."""
        if not route.members:
            if route.kind == "ringgroup":
                self._route_give_up(call, route, notify=False)
            return
        if route.kind == "ringgroup" and not route.is_ring_all and route.index >= len(route.members):
            self._route_give_up(call, route, notify=False)
            return
        if route.is_ring_all:
            targets = route.members
        else:
            targets = [route.members[route.index % len(route.members)]]
            route.index += 1
        via = (route.dn, TYPE_NAMES[route.kind])
        party = self._side_identity(call.caller)
        originated = _originated_of(call.caller)
        for dn in targets:
            if dn in self.directory.users:
                route.offers.append(self._add(call, dn, RINGING, party, originated_by=originated,
                                              referred_by=route.referred_by, via=via))
        route.ring_timer = self.later(route.ring_s, self._ring_timeout, call, route)

    def _ring_timeout(self, call: Call, route: Route) -> None:
        with self._lock:
            if call.is_ended or route not in call.routes:
                return
            for offer in list(route.offers):
                route.offers.remove(offer)
                self._remove(offer)
            if route.kind == "ringgroup" and route.is_ring_all:
                self._route_give_up(call, route, notify=False)
            else:
                self._ring_next(call, route)
            self._notify(call)

    def _route_timeout(self, call: Call, route: Route) -> None:
        """An extension did not answer within its no-answer time."""
        self._route_give_up(call, route)

    def _route_give_up(self, call: Call, route: Route, notify: bool = True) -> None:
        with self._lock:
            if call.is_ended or route not in call.routes:
                return
            self._drop_route(route)
            call.routes.remove(route)
            if not call.routes and not is_up(call.callee):
                # v20 would go on to voicemail or a no-answer destination; the simulator ends the call.
                self._end(call)
            if notify:
                self._notify(call)

    def _drop_route(self, route: Route) -> None:
        route.cancel_timers()
        for offer in list(route.offers):
            self._remove(offer)
        route.offers.clear()
        if route.holder is not None:
            self._remove(route.holder)
            route.holder = None

    def _ivr_timeout(self, call: Call, route: Route) -> None:
        with self._lock:
            if call.is_ended or route not in call.routes:
                return
            target = self.directory.ivrs.get(route.dn)
            forward = target.timeout_forward_dn if target else ""
            if forward and self._is_routable(forward):
                self._leave_ivr(call, route, forward)
            else:
                self._route_give_up(call, route, notify=False)
            self._notify(call)

    def _leave_ivr(self, call: Call, route: Route, destination: str) -> None:
        if not self._is_routable(destination):
            raise ActionRefused(424, "InvalidDestination", f"{destination!r} is not a routable DN")
        route.cancel_timers()
        call.routes.remove(route)
        holder, route.holder = route.holder, None
        # The new destination's participants appear before the IVR's is removed (flow 4).
        self._route(call, destination, via=(route.dn, TYPE_NAMES["ivr"]))
        if holder is not None:
            self._remove(holder)

    def _route_of(self, participant: Participant) -> Route | None:
        for route in participant.call.routes:
            if participant is route.holder or participant in route.offers:
                return route
        return None

    def _answer(self, offer: Participant) -> None:
        """A ringing participant picks up: it takes the call; everything else that rang goes."""
        call = offer.call
        self._set_connected(offer)
        self._publish(UPSERT, offer)
        for route in call.routes:
            route.cancel_timers()
            for other in route.offers:
                if other is not offer:
                    self._remove(other)
            route.offers.clear()
        for route in call.routes:
            if route.holder is not None:
                self._remove(route.holder)
                route.holder = None
        call.routes = []
        replaced = call.callee
        call.callee = offer
        if isinstance(replaced, Participant) and replaced is not offer:
            self._remove(replaced)   # routeto on a connected participant: delivery succeeded
        caller = call.caller
        if isinstance(caller, Participant) and not caller.is_removed:
            identity = self.identity_of(offer.dn)
            if caller.status != CONNECTED or caller.party != identity:
                caller.party = identity
                if caller.status != CONNECTED:
                    self._set_connected(caller)
                self._publish(UPSERT, caller)

    def _end(self, call: Call, first: Participant | None = None) -> None:
        """The call is over: `first` goes first, then ringing legs, holders, then the two sides."""
        if call.is_ended:
            return
        call.is_ended = True
        for timer in call.timers:
            timer.cancel()
        if first is not None:
            self._remove(first)
        for route in call.routes:
            route.cancel_timers()
            for offer in route.offers:
                self._remove(offer)
        for route in call.routes:
            if route.holder is not None:
                self._remove(route.holder)
        for side in (call.caller, call.callee):
            if isinstance(side, Participant):
                self._remove(side)
        for participant in call.live_participants():
            self._remove(participant)
        self._calls.pop(call.callid, None)
        logger.debug("call %s ended with %s recordings", call.callid, len(call.recordings))
        rows = call_log_rows(call, self.identity_of, self.wall.now)
        if call.recordings:
            self.later(self.recording_delay_s, self._store_recordings, call, self.directory, rows)
        else:
            publish_call_log(self.directory, rows)
            call.finished.set()

    # -- recordings -------------------------------------------------------------------------------
    def _note_recording(self, participant: Participant) -> None:
        """The segment recorded since `segment_*` ends now (a hang-up, a transfer, a pause)."""
        user = self.directory.users.get(participant.dn)
        if user is None:
            return
        is_external = participant.party.dn_type == TYPE_NAMES["trunk"]
        if not (user.record_calls or (user.record_external_only and is_external)):
            return
        talk_s = max(0.0, self.clock.now() - (participant.segment_sim or 0.0))
        participant.call.recordings.append(PendingRecording(
            participant=participant, party=participant.party,
            is_originator=participant.originated_by_dn == participant.dn,
            started_at=participant.segment_at or self.wall.now(),
            ended_at=self.wall.now(), talk_s=talk_s))

    def _store_recordings(self, call: Call, directory: Directory, rows: list[CallLogRow]) -> None:
        made = [make_recording(directory, pending) for pending in call.recordings]
        by_participant: dict[int, list[int]] = {}
        for pending, rec in zip(call.recordings, made, strict=True):
            by_participant.setdefault(pending.participant.id, []).append(rec.id)
        for row in rows:
            # A leg recorded in segments (paused and resumed) has several recordings: the row names
            # the first as Src/DstRecId and lists them all under `Recordings` (inferred from the
            # field list, V20-API-NOTES §f: CallLogData.Recordings[].Id).
            src_ids, dst_ids = by_participant.get(row.src_participant, []), by_participant.get(row.dst_participant, [])
            row.src_rec_id = src_ids[0] if src_ids else None
            row.dst_rec_id = dst_ids[0] if dst_ids else None
            row.rec_ids = src_ids + dst_ids
        with directory.lock:
            for recording in made:
                directory.recordings[recording.id] = recording
        # The history lists the call with its recording ids (the recordings are stored first).
        publish_call_log(directory, rows)
        with self._lock:
            call.recording_ids.extend(r.id for r in made)
            call.finished.set()
            self._notify(call)
        logger.debug("call %s: stored recordings %s", call.callid, [r.id for r in made])


# --- helpers ----------------------------------------------------------------------------------

def _attached(body: dict) -> dict[str, str]:
    data = body.get("attacheddata") or {}
    return {str(k): str(v) for k, v in data.items()} if isinstance(data, dict) else {}


def _originated_of(side: Participant | External | None) -> tuple[str, str]:
    if isinstance(side, Participant):
        return side.originated_by_dn or side.dn, side.originated_by_type or side.dn_type
    return "", ""


def _no_answer_s(user: User) -> float:
    profile = next((p for p in user.profiles if p.name == user.current_profile), None)
    return float(profile.no_answer_timeout_s if profile else 20)
