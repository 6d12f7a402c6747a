"""The watcher driven synchronously through `handle()` and `resync()`, against a small stand-in PBX."""
from __future__ import annotations

import logging
import threading
from datetime import timedelta

import pytest

from gateway.clock import FakeClock
from gateway.config import from_dict
from gateway.live.model import CallTable
from gateway.live.reads import ReadPoolStatus
from gateway.live.store import CallStore
from gateway.live.webhooks import CallEnded
from gateway.live.watcher import DidNames, Watcher, WatcherStatus
from gateway.pbx.errors import PbxNotFound, PbxUnreachable
from gateway.webhooks.outbox import Outbox
from tests.support.wait import wait_until
from tests.support.live import CALLER, DID, T0, participant

RULES = [{"Id": 1, "RuleName": "PragueDID", "Data": DID, "Condition": "BasedOnDID"}]


class StandInPbx:
    """Call Control reads over an in-memory set of participants; `dn_types` says what each DN is."""

    def __init__(self) -> None:
        self.legs: dict[tuple[str, int], dict] = {}
        self.dn_types = {"101": "Wextension", "102": "Wextension", "103": "Wextension", "800": "Wqueue"}
        self.is_down = False

    def put(self, body: dict) -> dict:
        self.legs[(body["dn"], body["id"])] = body
        return body

    def drop(self, dn: str, participant_id: int) -> None:
        self.legs.pop((dn, participant_id), None)

    def participant(self, dn: str, participant_id: int) -> dict:
        if (dn, participant_id) not in self.legs:
            raise PbxNotFound(f"/callcontrol/{dn}/participants/{participant_id}")
        return self.legs[(dn, participant_id)]

    def listed_participants(self, dn: str, participant_ids) -> list[dict]:
        return [p for (pdn, pid), p in self.legs.items() if pdn == dn and pid in set(participant_ids)]

    def dn_state(self, dn: str) -> dict:
        return {"dn": dn, "type": self.dn_types.get(dn, "Wextension"), "devices": [], "participants": []}

    def all_states(self) -> list[dict]:
        if self.is_down:
            raise PbxUnreachable("stand-in PBX is down")
        return [{"dn": dn, "type": kind, "devices": [],
                 "participants": [p for (pdn, _), p in self.legs.items() if pdn == dn]}
                for dn, kind in self.dn_types.items()]


class StandInXapi:
    """`/InboundRules` (reads counted) and `/ActiveCalls` (rows in `active_calls`)."""

    def __init__(self, rules: list[dict]) -> None:
        self.rules = rules
        self.reads = 0
        self.active_calls: list[dict] = []

    def list(self, entity_set: str, **_options: object) -> list[dict]:
        if entity_set == "ActiveCalls":
            return list(self.active_calls)
        assert entity_set == "InboundRules"
        self.reads += 1
        return list(self.rules)


class StandInStream:
    """Records the handlers the watcher registers."""

    def __init__(self) -> None:
        self.handlers = None
        self.is_started = False

    def set_handlers(self, on_message, on_connect, on_disconnect, *, on_tick=None) -> None:
        self.handlers = (on_message, on_connect, on_disconnect)

    def start(self) -> None:
        self.is_started = True

    def stop(self, timeout_s: float) -> None:
        self.is_started = False


def upsert(dn: str, participant_id: int) -> dict:
    return {"sequence": 1, "event": {"event_type": 0, "entity": f"/callcontrol/{dn}/participants/{participant_id}",
                                     "attached_data": None}}


def read_as(parts: Parts, dn: str, participant_id: int, status: str) -> None:
    """The stand-in PBX's participant takes `status`, and the watcher handles its Upsert."""
    parts.pbx.put(participant(dn, participant_id, status))
    parts.watcher.handle(upsert(dn, participant_id))


def remove(dn: str, participant_id: int) -> dict:
    return {"sequence": 2, "event": {"event_type": 1, "entity": f"/callcontrol/{dn}/participants/{participant_id}",
                                     "attached_data": None}}


class Parts:
    """A watcher over a stand-in PBX with a real outbox in `state_dir`; `ended` collects
    on_call_ended calls. `restarted()` is a new watcher (a new process) on the same PBX and files."""

    def __init__(self, state_dir, *, grace_s: float = 0, clock: FakeClock | None = None,
                 pbx: StandInPbx | None = None, xapi: StandInXapi | None = None) -> None:
        self.state_dir = state_dir
        self.grace_s = grace_s
        self.clock = clock or FakeClock(T0)
        self.pbx = pbx or StandInPbx()
        self.xapi = xapi or StandInXapi(RULES)
        self.stream = StandInStream()
        self.table = CallTable()
        self.outbox = Outbox(state_dir / "outbox.sqlite3", clock=self.clock)
        self.ended: list = []
        config = from_dict({"pbx": {"url": "http://pbx.test", "client_id": "900", "client_secret": "x",
                                    "timezone": "Europe/Prague"},
                            "webapi": {"key": "k"},
                            "webhooks": {"url": "http://crm.test/hook", "end_grace_s": str(grace_s)},
                            "storage": {"state_dir": str(state_dir)}}, environ={})
        self.watcher = Watcher(self.stream, self.pbx, self.xapi, self.table, self.outbox, config, clock=self.clock,
                               on_call_ended=lambda call, ends: self.ended.append((call, ends)),
                               store=CallStore(self.outbox))
        self.watcher.start()

    def sent(self) -> list[tuple[str, dict]]:
        return [(e.call_key, e.params) for e in self.outbox.events()]

    def restarted(self) -> Parts:
        return Parts(self.state_dir, grace_s=self.grace_s, clock=self.clock, pbx=self.pbx, xapi=self.xapi)


@pytest.fixture
def parts(tmp_path):
    """A watcher over a stand-in PBX with a real outbox, no grace period for call ends."""
    return Parts(tmp_path)


def test_upserts_and_remove_write_webhooks_in_order(parts):
    read_as(parts, "101", 1, "Ringing")
    parts.clock.advance(5)
    read_as(parts, "101", 1, "Connected")
    parts.clock.advance(60)
    parts.pbx.drop("101", 1)

    parts.watcher.handle(remove("101", 1))

    sent = parts.sent()
    assert [params["event"] for _key, params in sent] == ["ringing", "hangupincoming", "incoming"]
    assert {key for key, _params in sent} == {"261124100000_698"}
    assert [params["id"] for _key, params in sent] == ["261124100000_698-0", "261124100000_698-1",
                                                       "261124100000_698-1"]
    assert sent[0][1]["did"] == "PragueDID" and sent[0][1]["callerid"] == CALLER
    assert parts.table.calls() == []


def test_each_call_is_one_info_line_at_its_end_and_each_step_a_debug_line(parts, caplog):
    caplog.set_level(logging.DEBUG, logger="gateway.live")
    read_as(parts, "101", 1, "Ringing")
    read_as(parts, "101", 1, "Connected")
    infos_while_in_progress = [r for r in caplog.records if r.levelno == logging.INFO and "call 698" in r.getMessage()]
    parts.pbx.drop("101", 1)

    parts.watcher.handle(remove("101", 1))

    infos = [r.getMessage() for r in caplog.records if r.levelno == logging.INFO and "call 698" in r.getMessage()]
    steps = [r.getMessage() for r in caplog.records if r.levelno == logging.DEBUG and r.name == "gateway.live.machine"]
    assert infos_while_in_progress == []
    assert infos == ["call 698 ended: inbound, answered, link 1, 1 answered legs; webhooks "
                     "ringing:261124100000_698-0 hangupincoming:261124100000_698-1 incoming:261124100000_698-1"]
    assert len(steps) == 3 and "+hangupincoming:261124100000_698-1" in steps[1]


def test_call_end_calls_back_with_the_answered_legs(parts):
    read_as(parts, "101", 1, "Connected")
    parts.clock.advance(30)
    parts.pbx.drop("101", 1)

    parts.watcher.handle(remove("101", 1))

    [(call, ends)] = parts.ended
    assert call.v20_call_id == 698 and call.is_ended
    assert [(e.dn, e.participant_id, e.finishtype, e.id) for e in ends] == [("101", 1, "Ok", "261124100000_698-1")]


def test_upsert_answered_404_is_taken_as_a_remove(parts):
    read_as(parts, "101", 1, "Ringing")
    parts.pbx.drop("101", 1)

    parts.watcher.handle(upsert("101", 1))

    sent = [(p["event"], p.get("finishtype")) for _key, p in parts.sent()]
    assert sent == [("ringing", None), ("incoming", "Missed")]
    assert parts.table.calls() == []


def test_upsert_of_a_participant_never_seen_and_already_gone_is_ignored(parts):
    parts.watcher.handle(upsert("101", 9))

    assert parts.sent() == [] and parts.table.calls() == []


@pytest.mark.parametrize("message", [
    pytest.param({}, id="an empty message"),
    pytest.param({"event": "nonsense"}, id="an event that is not an object"),
    pytest.param({"event": {"event_type": 0, "entity": "/callcontrol/101"}}, id="an entity without id"),
    pytest.param({"event": {"event_type": 2, "entity": "/callcontrol/101/participants/1"}}, id="a DTMF event"),
    pytest.param({"event": {"event_type": 0, "entity": "/callcontrol/101/devices/sip:101@x"}}, id="a device event"),
])
def test_messages_without_a_handler_change_nothing(parts, message):
    parts.watcher.handle(message)

    assert parts.sent() == [] and parts.table.calls() == []


def test_a_failing_message_is_logged_and_the_next_one_handled(parts, caplog):
    parts.pbx.legs[("101", 1)] = {"id": "not a number", "dn": "101", "callid": "x"}
    parts.pbx.put(participant("102", 2, "Ringing"))

    with caplog.at_level(logging.ERROR, logger="gateway.live.watcher"):
        parts.watcher.handle(upsert("101", 1))
        parts.watcher.handle(upsert("102", 2))

    assert "carrying on" in caplog.text
    assert [params["user"] for _key, params in parts.sent()] == ["102"]


def test_resync_sends_the_end_of_a_call_that_ended_while_disconnected(parts):
    read_as(parts, "101", 1, "Ringing")
    read_as(parts, "101", 1, "Connected")
    parts.stream.handlers[2]("connection lost")
    parts.pbx.drop("101", 1)
    parts.clock.advance(20)

    parts.stream.handlers[1]()

    sent = [params for _key, params in parts.sent()]
    assert [(p["event"], p["id"]) for p in sent] == [("ringing", "261124100000_698-0"),
                                                     ("hangupincoming", "261124100000_698-1"),
                                                     ("incoming", "261124100000_698-1")]
    assert "after reconnecting" in sent[-1]["title"]
    assert parts.watcher.status().synced is True


def test_resync_picks_up_calls_that_started_while_disconnected(parts):
    parts.pbx.put(participant("800", 10, "Connected"))
    parts.pbx.put(participant("102", 12, "Connected", on_behalf_of_dn="800", on_behalf_of_type="Wqueue"))

    parts.watcher.resync()

    assert [(p["event"], p["user"], p["id"]) for _k, p in parts.sent()] == [
        ("hangupincoming", "102", "261124100000_698-1")]
    [call] = parts.table.calls()
    assert sorted(leg.dn for leg in call.legs) == ["102", "800"]


def test_resync_failure_leaves_the_watcher_unsynced(parts):
    parts.pbx.is_down = True

    with pytest.raises(PbxUnreachable):
        parts.stream.handlers[1]()

    assert parts.watcher.status().synced is False


def test_start_registers_with_the_stream_and_status_reports(parts):
    parts.stream.handlers[1]()
    read_as(parts, "101", 1, "Ringing")
    parts.clock.advance(3)

    status = parts.watcher.status()

    assert parts.stream.is_started
    assert status == WatcherStatus(connected=True, synced=True, last_event_age_s=3.0, calls=1, events_total=1,
                                   lag_s=0.0, backlog=0, reads=ReadPoolStatus(queued=0, running=0, workers=8))
    parts.watcher.stop(1)
    assert parts.watcher.status().connected is False


def test_did_names_reload_at_most_once_a_minute():
    clock = FakeClock(T0)
    xapi = StandInXapi(RULES)
    names = DidNames(xapi, clock=clock)

    assert names.name_of(DID) == "PragueDID"
    assert names.name_of("420233000111") == "PragueDID"
    assert names.name_of("+420999") == "+420999"
    xapi.rules = RULES + [{"Id": 2, "RuleName": "BrnoDID", "Data": "+420999", "Condition": "BasedOnDID"}]
    assert names.name_of("+420999") == "+420999"
    clock.advance(60)
    assert names.name_of("+420999") == "BrnoDID"
    assert xapi.reads == 2


def test_did_names_come_only_from_did_rules_never_from_caller_id_rules():
    caller_rule = {"Id": 3, "RuleName": "VIP caller", "Data": DID, "Condition": "BasedOnCallerID"}
    xapi = StandInXapi([caller_rule, *RULES, {"Id": 4, "RuleName": "Other VIP", "Data": "+420777",
                                              "Condition": "BasedOnCallerID"}])
    names = DidNames(xapi, clock=FakeClock(T0))

    assert names.name_of(DID) == "PragueDID"
    assert names.name_of("+420777") == "+420777"


def test_unknown_status_on_a_connected_leg_keeps_it_connected_until_it_ends(parts, caplog):
    caplog.set_level(logging.WARNING, logger="gateway.live.unknowns")
    read_as(parts, "101", 1, "Ringing")
    read_as(parts, "101", 1, "Connected")
    read_as(parts, "101", 1, "Recording")
    parts.watcher.handle(upsert("101", 1))
    assert [leg.status for leg in parts.table.legs_of("101")] == ["talking"]
    parts.clock.advance(30)
    parts.pbx.drop("101", 1)

    parts.watcher.handle(remove("101", 1))

    sent = [params for _key, params in parts.sent()]
    assert [(p["event"], p.get("finishtype")) for p in sent] == [("ringing", None), ("hangupincoming", None),
                                                                 ("incoming", "Ok")]
    assert [(u.kind, u.value, u.count) for u in parts.watcher.unknowns.items()] == [("status", "Recording", 2)]
    assert caplog.text.count("'Recording'") == 1


def test_an_upsert_on_another_collection_is_reported_not_handled(parts):
    parts.watcher.handle({"sequence": 3, "event": {"event_type": 0, "entity": "/callcontrol/101/devices/7"}})

    assert [(u.kind, u.value) for u in parts.watcher.unknowns.items()] == [("event", "event_type 0 on devices")]
    assert parts.sent() == []


# --- calls in progress across a restart ------------------------------------------------------------

def test_call_talking_across_a_restart_keeps_its_id_and_ends_once(parts):
    read_as(parts, "101", 1, "Ringing")
    parts.clock.advance(5)
    read_as(parts, "101", 1, "Connected")
    parts.clock.advance(30)

    after = parts.restarted()
    after.stream.handlers[1]()                   # the new process connects: resync
    after.clock.advance(25)
    after.pbx.drop("101", 1)
    after.watcher.handle(remove("101", 1))

    sent = [params for _key, params in after.sent()]
    assert [(p["event"], p["id"]) for p in sent] == [("ringing", "261124100000_698-0"),
                                                     ("hangupincoming", "261124100000_698-1"),
                                                     ("incoming", "261124100000_698-1")]
    assert sent[-1]["title"].endswith("duration 00:00:55")
    [(call, ends)] = after.ended
    assert call.arrived_at == T0 and [e.id for e in ends] == ["261124100000_698-1"]
    assert after.restarted().table.calls() == []


def test_restart_remembers_legs_already_finished_in_a_transfer(parts):
    read_as(parts, "101", 1, "Connected")
    parts.clock.advance(10)
    parts.pbx.put(participant("103", 2, "Ringing", referred_by_dn="101", referred_by_type="Wextension"))
    parts.watcher.handle(upsert("103", 2))
    parts.pbx.drop("101", 1)
    parts.watcher.handle(remove("101", 1))

    after = parts.restarted()
    after.stream.handlers[1]()
    after.pbx.put(participant("103", 2, "Connected", referred_by_dn="101", referred_by_type="Wextension"))
    after.watcher.handle(upsert("103", 2))
    after.pbx.drop("103", 2)
    after.watcher.handle(remove("103", 2))

    assert [(p["event"], p["user"], p["id"]) for _k, p in after.sent()] == [
        ("ringing", "101", "261124100000_698-0"), ("hangupincoming", "101", "261124100000_698-1"),
        ("incoming", "101", "261124100000_698-1"),
        ("ringing", "103", "261124100000_698-2"), ("hangupincoming", "103", "261124100000_698-2"),
        ("incoming", "103", "261124100000_698-2")]
    [(_call, ends)] = after.ended
    assert [e.user for e in ends] == ["101", "103"]


def test_call_that_ended_while_the_service_was_stopped_ends_under_its_id(parts):
    read_as(parts, "101", 1, "Connected")
    parts.pbx.drop("101", 1)
    parts.clock.advance(40)

    after = parts.restarted()
    after.stream.handlers[1]()

    assert [(p["event"], p["id"]) for _k, p in after.sent()] == [("ringing", "261124100000_698-0"),
                                                                 ("hangupincoming", "261124100000_698-1"),
                                                                 ("incoming", "261124100000_698-1")]
    assert after.table.calls() == []


def test_unreadable_stored_call_is_dropped_and_found_again_by_the_resync(parts, caplog):
    read_as(parts, "101", 1, "Connected")
    with parts.outbox.transaction() as writer:
        writer.db.execute("UPDATE live_calls SET call = '{\"legs\": 5}'")

    with caplog.at_level(logging.WARNING, logger="gateway.live.store"):
        after = parts.restarted()
        after.stream.handlers[1]()

    assert "unreadable" in caplog.text
    [call] = after.table.calls()
    assert call.v20_call_id == 698 and [leg.dn for leg in call.legs] == ["101"]


# --- arrival times of calls first seen by a resync ------------------------------------------------------

def _active(caller: str, callee: str, established_s: float, server_now_s: float, call_id: int = 77) -> dict:
    """An /ActiveCalls row with times on the PBX's clock (T0 + seconds)."""
    def stamp(seconds: float) -> str:
        return (T0 + timedelta(seconds=seconds)).isoformat().replace("+00:00", "Z")

    return {"Id": call_id, "Caller": caller, "Callee": callee, "Status": "Talking",
            "EstablishedAt": stamp(established_s), "LastChangeStatus": stamp(server_now_s),
            "ServerNow": stamp(server_now_s)}


def test_resync_stamps_a_call_it_first_sees_with_its_arrival_from_active_calls(parts):
    parts.clock.advance(100)
    parts.xapi.active_calls = [_active(CALLER, "800 Sales", 150, 220),          # the PBX clock runs 120 s ahead
                               _active("+420600111222", "101 Alice", 10, 220, call_id=78)]
    parts.pbx.put(participant("800", 10, "Connected"))
    parts.pbx.put(participant("102", 12, "Connected", on_behalf_of_dn="800", on_behalf_of_type="Wqueue"))

    parts.watcher.resync()

    assert [p["id"] for _k, p in parts.sent()] == ["261124100030_698-1"]   # 70 s before the resync
    [call] = parts.table.calls()
    assert call.arrived_at == T0 + timedelta(seconds=30)


@pytest.mark.parametrize("rows", [
    pytest.param([], id="no active call"),
    pytest.param([_active("+420600111222", "800 Sales", 0, 50)], id="another caller only"),
    pytest.param([_active(CALLER, "800 Sales", 0, 100), _active(CALLER, "800 Sales", 60, 100, call_id=78)],
                 id="two calls of the same numbers that arrived at different times"),
])
def test_resync_without_one_matching_active_call_stamps_the_resync_time(parts, rows):
    parts.xapi.active_calls = rows
    parts.pbx.put(participant("102", 12, "Connected", on_behalf_of_dn="800", on_behalf_of_type="Wqueue"))

    parts.watcher.resync()

    assert [p["id"] for _k, p in parts.sent()] == ["261124100000_698-1"]


# --- grace period ------------------------------------------------------------------------------------------

def test_missed_end_waits_for_the_grace_period_then_goes_once(tmp_path):
    parts = Parts(tmp_path, grace_s=3)
    parts.stream.handlers[1]()
    read_as(parts, "101", 1, "Ringing")
    parts.clock.advance(20)
    parts.pbx.drop("101", 1)
    parts.watcher.handle(remove("101", 1))
    parts.clock.advance(2)
    parts.watcher.tick()

    before = [p["event"] for _k, p in parts.sent()]
    parts.clock.advance(1)
    parts.watcher.tick()
    parts.watcher.tick()

    assert before == ["ringing"]
    sent = [p for _k, p in parts.sent()]
    assert [(p["event"], p.get("finishtype")) for p in sent] == [("ringing", None), ("incoming", "Missed")]
    assert sent[-1]["title"].endswith("duration 00:00:20")
    assert len(parts.ended) == 1 and len(parts.table) == 0


def test_answered_end_goes_at_once_and_only_the_call_waits_for_the_grace_period(tmp_path):
    parts = Parts(tmp_path, grace_s=3)
    parts.stream.handlers[1]()
    read_as(parts, "101", 1, "Connected")
    parts.clock.advance(30)
    parts.pbx.drop("101", 1)

    parts.watcher.handle(remove("101", 1))

    assert [p["event"] for _k, p in parts.sent()] == ["ringing", "hangupincoming", "incoming"]
    assert parts.ended == [] and parts.table.calls() == [] and len(parts.table) == 1
    parts.clock.advance(3)
    parts.watcher.tick()
    assert len(parts.ended) == 1 and len(parts.table) == 0


def test_grace_period_is_not_over_while_disconnected(tmp_path):
    parts = Parts(tmp_path, grace_s=3)
    parts.stream.handlers[1]()
    read_as(parts, "101", 1, "Ringing")
    parts.pbx.drop("101", 1)
    parts.watcher.handle(remove("101", 1))
    parts.stream.handlers[2]("connection lost")
    parts.clock.advance(60)

    parts.watcher.tick()
    unsynced = [p["event"] for _k, p in parts.sent()]
    parts.stream.handlers[1]()

    assert unsynced == ["ringing"]
    assert [p["event"] for _k, p in parts.sent()] == ["ringing", "incoming"]


def test_call_ending_when_the_service_stops_gets_its_missed_end_after_the_restart(tmp_path):
    parts = Parts(tmp_path, grace_s=3)
    parts.stream.handlers[1]()
    read_as(parts, "101", 1, "Ringing")
    parts.pbx.drop("101", 1)
    parts.watcher.handle(remove("101", 1))
    parts.clock.advance(10)

    after = parts.restarted()
    after.stream.handlers[1]()

    assert [(p["event"], p["id"]) for _k, p in after.sent()] == [("ringing", "261124100000_698-0"),
                                                                 ("incoming", "261124100000_698-0")]


# --- bursts: reads in parallel, events applied in arrival order ------------------------------------

class GatedPbx(StandInPbx):
    """A stand-in PBX whose participant reads wait until the test opens that participant's gate;
    `answered` lists the reads in the order they were answered."""

    def __init__(self) -> None:
        super().__init__()
        self.gates: dict[tuple[str, int], threading.Event] = {}
        self.answered: list[tuple[str, int]] = []
        self._lock = threading.Lock()

    def gate(self, dn: str, participant_id: int) -> threading.Event:
        with self._lock:
            return self.gates.setdefault((dn, participant_id), threading.Event())

    def participant(self, dn: str, participant_id: int) -> dict:
        assert self.gate(dn, participant_id).wait(10), f"gate {dn}/{participant_id} never opened"
        try:
            return super().participant(dn, participant_id)
        finally:
            with self._lock:
                self.answered.append((dn, participant_id))


class GapWatchStandIn:
    """Records what the watcher hands to gap recovery."""

    def __init__(self) -> None:
        self.deferred: list[tuple[int, list, list | None]] = []
        self.unread_legs: list[tuple[str, object]] = []

    def reported(self, call, webhooks, state=None) -> None:
        return None

    def defer(self, call, ends, *, fallback=None) -> None:
        self.deferred.append((call.v20_call_id, ends, fallback))

    def unread(self, dn, at) -> None:
        self.unread_legs.append((dn, at))

    def synced(self) -> None:
        return None

    def lost(self) -> None:
        return None


def test_events_of_interleaved_calls_apply_in_arrival_order_while_reads_finish_out_of_order(tmp_path):
    pbx = GatedPbx()
    parts = Parts(tmp_path, pbx=pbx)
    for n, dn in enumerate(["101", "102", "103"], start=1):
        pbx.put(participant(dn, n, "Ringing", call=700 + n))
    for n, dn in enumerate(["101", "102", "103"], start=1):
        parts.watcher.submit(upsert(dn, n))

    pbx.gate("103", 3).set()
    wait_until(lambda: len(pbx.answered) == 1, timeout_s=5)
    pbx.gate("102", 2).set()
    wait_until(lambda: len(pbx.answered) == 2, timeout_s=5)
    assert parts.watcher.status().backlog == 3            # nothing applied before the first read is back
    pbx.gate("101", 1).set()
    wait_until(lambda: len(parts.sent()) == 3, timeout_s=5)
    for n, dn in enumerate(["101", "102", "103"], start=1):
        pbx.put(participant(dn, n, "Connected", call=700 + n))
    for n, dn in reversed(list(enumerate(["101", "102", "103"], start=1))):
        parts.watcher.submit(upsert(dn, n))
    wait_until(lambda: len(parts.sent()) == 6, timeout_s=5)
    for n, dn in enumerate(["101", "102", "103"], start=1):
        pbx.drop(dn, n)
        parts.watcher.submit(remove(dn, n))
    wait_until(lambda: len(parts.sent()) == 9, timeout_s=5)

    assert pbx.answered[:3] == [("103", 3), ("102", 2), ("101", 1)]
    sent = [(params["user"], params["event"]) for _key, params in parts.sent()]
    assert sent[:3] == [("101", "ringing"), ("102", "ringing"), ("103", "ringing")]
    for dn in ("101", "102", "103"):
        assert [event for user, event in sent if user == dn] == ["ringing", "hangupincoming", "incoming"]
    parts.watcher.stop(5)


def test_lag_and_read_queue_show_while_a_read_is_slow(tmp_path):
    pbx = GatedPbx()
    parts = Parts(tmp_path, pbx=pbx)
    pbx.put(participant("101", 1, "Ringing"))
    parts.watcher.submit(upsert("101", 1))
    parts.clock.advance(4)

    status = parts.watcher.status()
    pbx.gate("101", 1).set()
    wait_until(lambda: parts.watcher.status().backlog == 0, timeout_s=5)

    assert (status.lag_s, status.backlog) == (4.0, 1)
    assert status.reads is not None and status.reads.queued + status.reads.running == 1
    assert parts.watcher.status().lag_s == 0.0
    parts.watcher.stop(5)


def test_a_call_that_lost_its_answer_reading_waits_for_the_call_history_instead_of_ending_missed(tmp_path):
    parts = Parts(tmp_path)
    recovery = GapWatchStandIn()
    parts.watcher._recovery = recovery
    read_as(parts, "101", 1, "Ringing")
    parts.pbx.drop("101", 1)                    # answered and hung up before the gateway read it

    parts.watcher.handle(upsert("101", 1))
    parts.watcher.handle(remove("101", 1))

    assert [p["event"] for _key, p in parts.sent()] == ["ringing"]
    [(call_id, ends, fallback)] = recovery.deferred
    assert call_id == 698 and ends == []
    assert [(e.finishtype, e.user) for e in fallback if isinstance(e, CallEnded)] == [("Missed", "101")]
    assert parts.watcher.status().unread_legs == 1 and parts.table.calls() == []


def test_a_participant_gone_before_its_first_read_is_looked_up_in_the_call_history(tmp_path):
    parts = Parts(tmp_path)
    recovery = GapWatchStandIn()
    parts.watcher._recovery = recovery

    parts.watcher.handle(upsert("101", 9))

    assert [dn for dn, _at in recovery.unread_legs] == ["101"]
    assert parts.watcher.status().unread_legs == 1 and parts.sent() == []
