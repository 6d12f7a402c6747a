"""The watcher driven synchronously through `handle()` and `resync()`, against a small stand-in PBX."""
from __future__ import annotations

import logging

import pytest

from gateway.clock import FakeClock
from gateway.config import from_dict
from gateway.live.model import CallTable
from gateway.live.watcher import DidNames, Watcher, WatcherStatus
from gateway.pbx.errors import PbxNotFound, PbxUnreachable
from gateway.webhooks.outbox import Outbox
from tests.support.live import CALLER, DID, T0, participant

RULES = [{"Id": 1, "RuleName": "PragueDID", "Data": DID, "Condition": "BasedOnDID"}]


class StandInPbx:
    """Call Control reads over an in-memory set of participants; `dn_types` says what each DN is."""

    def __init__(self) -> None:
        self.participants: dict[tuple[str, int], dict] = {}
        self.dn_types = {"101": "Wextension", "102": "Wextension", "103": "Wextension", "800": "Wqueue"}
        self.is_down = False

    def put(self, body: dict) -> dict:
        self.participants[(body["dn"], body["id"])] = body
        return body

    def drop(self, dn: str, participant_id: int) -> None:
        self.participants.pop((dn, participant_id), None)

    def participant(self, dn: str, participant_id: int) -> dict:
        if (dn, participant_id) not in self.participants:
            raise PbxNotFound(f"/callcontrol/{dn}/participants/{participant_id}")
        return self.participants[(dn, participant_id)]

    def dn_state(self, dn: str) -> dict:
        return {"dn": dn, "type": self.dn_types.get(dn, "Wextension"), "devices": [], "participants": []}

    def all_states(self) -> list[dict]:
        if self.is_down:
            raise PbxUnreachable("stand-in PBX is down")
        return [{"dn": dn, "type": kind, "devices": [],
                 "participants": [p for (pdn, _), p in self.participants.items() if pdn == dn]}
                for dn, kind in self.dn_types.items()]


class StandInXapi:
    """`/InboundRules` only; counts the reads."""

    def __init__(self, rules: list[dict]) -> None:
        self.rules = rules
        self.reads = 0

    def list(self, entity_set: str, **_options: object) -> list[dict]:
        assert entity_set == "InboundRules"
        self.reads += 1
        return list(self.rules)


class StandInStream:
    """Records the handlers the watcher registers."""

    def __init__(self) -> None:
        self.handlers = None
        self.is_started = False

    def set_handlers(self, on_message, on_connect, on_disconnect) -> None:
        self.handlers = (on_message, on_connect, on_disconnect)

    def start(self) -> None:
        self.is_started = True

    def stop(self, timeout_s: float) -> None:
        self.is_started = False


def upsert(dn: str, participant_id: int) -> dict:
    return {"sequence": 1, "event": {"event_type": 0, "entity": f"/callcontrol/{dn}/participants/{participant_id}",
                                     "attached_data": None}}


def remove(dn: str, participant_id: int) -> dict:
    return {"sequence": 2, "event": {"event_type": 1, "entity": f"/callcontrol/{dn}/participants/{participant_id}",
                                     "attached_data": None}}


@pytest.fixture
def parts(tmp_path):
    """A watcher over a stand-in PBX with a real outbox; `parts.ended` collects on_call_ended calls."""
    class Parts:
        pass
    p = Parts()
    p.clock = FakeClock(T0)
    p.pbx = StandInPbx()
    p.xapi = StandInXapi(RULES)
    p.stream = StandInStream()
    p.table = CallTable()
    p.outbox = Outbox(tmp_path / "outbox.sqlite3", clock=p.clock)
    p.ended = []
    config = from_dict({"pbx": {"url": "http://pbx.test", "client_id": "900", "client_secret": "x",
                                "timezone": "Europe/Prague"},
                        "webapi": {"key": "k"}, "webhooks": {"url": "http://crm.test/hook"},
                        "storage": {"state_dir": str(tmp_path)}}, environ={})
    p.watcher = Watcher(p.stream, p.pbx, p.xapi, p.table, p.outbox, config, clock=p.clock,
                        on_call_ended=lambda call, ends: p.ended.append((call, ends)))
    p.watcher.start()
    p.sent = lambda: [(e.call_key, e.params) for e in p.outbox.events()]
    return p


def test_upserts_and_remove_write_webhooks_in_order(parts):
    parts.pbx.put(participant("101", 1, "Ringing"))
    parts.watcher.handle(upsert("101", 1))
    parts.clock.advance(5)
    parts.pbx.put(participant("101", 1, "Connected"))
    parts.watcher.handle(upsert("101", 1))
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


def test_call_end_calls_back_with_the_answered_legs(parts):
    parts.pbx.put(participant("101", 1, "Connected"))
    parts.watcher.handle(upsert("101", 1))
    parts.clock.advance(30)
    parts.pbx.drop("101", 1)

    parts.watcher.handle(remove("101", 1))

    [(call, ends)] = parts.ended
    assert call.v20_call_id == 698 and call.is_ended
    assert [(e.dn, e.participant_id, e.finishtype, e.id) for e in ends] == [("101", 1, "Ok", "261124100000_698-1")]


def test_upsert_answered_404_is_taken_as_a_remove(parts):
    parts.pbx.put(participant("101", 1, "Ringing"))
    parts.watcher.handle(upsert("101", 1))
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
    parts.pbx.participants[("101", 1)] = {"id": "not a number", "dn": "101", "callid": "x"}
    parts.pbx.put(participant("102", 2, "Ringing"))

    with caplog.at_level(logging.ERROR, logger="gateway.live.watcher"):
        parts.watcher.handle(upsert("101", 1))
        parts.watcher.handle(upsert("102", 2))

    assert "carrying on" in caplog.text
    assert [params["user"] for _key, params in parts.sent()] == ["102"]


def test_resync_sends_the_end_of_a_call_that_ended_while_disconnected(parts):
    parts.pbx.put(participant("101", 1, "Ringing"))
    parts.watcher.handle(upsert("101", 1))
    parts.pbx.put(participant("101", 1, "Connected"))
    parts.watcher.handle(upsert("101", 1))
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
    parts.pbx.put(participant("101", 1, "Ringing"))
    parts.watcher.handle(upsert("101", 1))
    parts.clock.advance(3)

    status = parts.watcher.status()

    assert parts.stream.is_started
    assert status == WatcherStatus(connected=True, synced=True, last_event_age_s=3.0, calls=1, events_total=1)
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
    parts.pbx.put(participant("101", 1, "Ringing"))
    parts.watcher.handle(upsert("101", 1))
    parts.pbx.put(participant("101", 1, "Connected"))
    parts.watcher.handle(upsert("101", 1))
    parts.pbx.put(participant("101", 1, "Recording"))
    parts.watcher.handle(upsert("101", 1))
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
