"""The call engine plays flows 1-9 of docs/v20-call-flows.md exactly: messages, order and fields.

Each flow test subscribes a recorder to the engine, which keeps every (event_type, entity) a
monitored DN would get plus the participant as `GET entity` answered at that moment.
"""
from __future__ import annotations

import io
import threading
import wave
from datetime import datetime, timezone

import pytest

from gateway.sim.engine import REMOVE, UPSERT, ActionRefused, Engine
from gateway.sim.scenarios import Scenario, ScenarioError, inbound, internal, load_file, outbound
from tests.support.simulator import slow_timeouts
from tests.support.wait import wait_until

CALLER = "+420774852529"
DID = "+420233000111"
NUMBER = "+420602111222"


class Recorder:
    """A subscriber keeping (event_type, entity, participant snapshot or None) per message."""

    def __init__(self, engine: Engine, monitored: list[str]) -> None:
        self.engine = engine
        self.monitored = monitored
        self.events: list[tuple[int, str, dict | None]] = []
        self._lock = threading.Lock()

    def wants(self, dn: str) -> bool:
        return dn in self.monitored

    def push(self, event_type: int, entity: str) -> None:
        _, _, dn, _, participant_id = entity.split("/")
        # Taken with the engine's lock held: exactly what a GET right after this message shows.
        snapshot = self.engine.participant(dn, int(participant_id)) if event_type == UPSERT else None
        with self._lock:
            self.events.append((event_type, entity, snapshot))

    def take(self, count: int | None = None) -> list[tuple[int, str, dict | None]]:
        """The messages so far (waiting for `count` of them), forgetting them."""
        if count is not None:
            wait_until(lambda: len(self.events) >= count, timeout_s=5)
        with self._lock:
            taken, self.events = self.events, []
        return taken


@pytest.fixture
def pbx(sim):
    """The simulator's engine with slow timeouts and a recorder on every monitored DN."""
    slow_timeouts(sim.directory)
    recorder = Recorder(sim.engine, sim.api_client.monitored)
    sim.engine.subscribe(recorder)
    yield sim.engine, recorder
    sim.engine.unsubscribe(recorder)


def entity(dn: str, participant: dict) -> str:
    return f"/callcontrol/{dn}/participants/{participant['id']}"


def has(participant: dict | None, **expected) -> bool:
    assert participant is not None
    actual = {key: participant[key] for key in expected}
    assert actual == expected
    return True


def kinds(events) -> list[tuple[int, str]]:
    return [(event_type, path) for event_type, path, _ in events]


# --- flow 1 -------------------------------------------------------------------------------------

@pytest.mark.parametrize("hangs_up", [None, "101"], ids=["caller hangs up", "agent hangs up"])
def test_flow1_inbound_to_extension_rings_connects_and_is_removed(pbx, hangs_up):
    engine, recorder = pbx

    call = engine.inbound(CALLER, "PragueDID", "101")
    [(kind, path, ringing)] = recorder.take()
    engine.answer_offer(call.callid, "101")
    [(kind2, path2, connected)] = recorder.take()
    engine.hang_up(call.callid, hangs_up)
    ended = recorder.take()

    assert (kind, path) == (UPSERT, entity("101", ringing))
    assert has(ringing, status="Ringing", dn="101", party_dn="10000", party_dn_type="Wexternalline",
               party_caller_id=CALLER, party_did=DID, on_behalf_of_dn="", on_behalf_of_type="",
               referred_by_dn="", callid=call.callid, legid=1)
    assert (kind2, path2) == (UPSERT, path)
    assert has(connected, id=ringing["id"], status="Connected", party_caller_id=CALLER)
    assert kinds(ended) == [(REMOVE, path)]
    assert engine.participant("101", ringing["id"]) is None


# --- flow 2 -------------------------------------------------------------------------------------

def test_flow2_queue_call_answered_by_second_agent(pbx):
    engine, recorder = pbx

    call = engine.inbound(CALLER, "PragueDID")          # PragueDID routes to queue 800 (RingAll 101, 102)
    arrived = recorder.take()
    engine.answer_offer(call.callid, "102")
    answered = recorder.take()
    engine.hang_up(call.callid)
    ended = recorder.take()

    (_, _, queue), (_, _, agent1), (_, _, agent2) = arrived
    assert kinds(arrived) == [(UPSERT, entity("800", queue)), (UPSERT, entity("101", agent1)),
                              (UPSERT, entity("102", agent2))]
    assert has(queue, status="Connected", dn="800", party_dn="10000", party_caller_id=CALLER,
               party_did=DID, on_behalf_of_dn="")
    for agent in (agent1, agent2):
        assert has(agent, status="Ringing", on_behalf_of_dn="800", on_behalf_of_type="Wqueue",
                   party_dn="10000", party_dn_type="Wexternalline", party_caller_id=CALLER,
                   callid=call.callid)
    assert len({queue["legid"], agent1["legid"], agent2["legid"]}) == 3
    assert kinds(answered) == [(UPSERT, entity("102", agent2)), (REMOVE, entity("101", agent1)),
                               (REMOVE, entity("800", queue))]
    assert has(answered[0][2], status="Connected", on_behalf_of_dn="800")
    assert kinds(ended) == [(REMOVE, entity("102", agent2))]


def test_flow2_caller_abandons_queue_removes_agents_then_queue(pbx):
    engine, recorder = pbx
    call = engine.inbound(CALLER, "PragueDID")
    (_, _, queue), (_, _, agent1), (_, _, agent2) = recorder.take()

    engine.hang_up(call.callid)

    assert kinds(recorder.take()) == [(REMOVE, entity("101", agent1)), (REMOVE, entity("102", agent2)),
                                      (REMOVE, entity("800", queue))]


def test_flow2_hunt_agent_ring_timeout_removes_only_that_agent(sim, pbx):
    engine, recorder = pbx
    sim.directory.queues["801"].ring_timeout_s = 5        # Hunt over 103, 104, 105

    call = engine.inbound(CALLER, destination="801")
    events = recorder.take(4)
    engine.hang_up(call.callid)

    (_, _, queue), (_, _, first), (kind, path, _), (_, _, second) = events[:4]
    assert has(queue, dn="801", status="Connected")
    assert has(first, dn="103", status="Ringing", on_behalf_of_dn="801")
    assert (kind, path) == (REMOVE, entity("103", first))
    assert has(second, dn="104", status="Ringing", on_behalf_of_dn="801", callid=call.callid)


def test_flow2b_hunt_queue_not_monitored_shows_nothing_of_the_call_between_two_agents(sim):
    slow_timeouts(sim.directory)
    sim.directory.queues["801"].ring_timeout_s = 5        # Hunt over 103, 104, 105
    recorder = Recorder(sim.engine, [dn for dn in sim.api_client.monitored if dn != "801"])
    sim.engine.subscribe(recorder)
    try:
        call = sim.engine.inbound(CALLER, destination="801")
        events = recorder.take(3)
        sim.engine.hang_up(call.callid)
    finally:
        sim.engine.unsubscribe(recorder)

    (kind1, _, first), (kind2, path2, _), (kind3, _, second) = events[:3]
    assert kind1 == UPSERT and has(first, dn="103", status="Ringing", on_behalf_of_dn="801")
    assert (kind2, path2) == (REMOVE, entity("103", first))
    assert kind3 == UPSERT and has(second, dn="104", status="Ringing", on_behalf_of_dn="801", callid=call.callid)


def test_flow2_queue_master_timeout_ends_call(sim, pbx):
    engine, recorder = pbx
    sim.directory.queues["800"].master_timeout_s = 5

    call = engine.inbound(CALLER, "PragueDID")

    events = recorder.take(6)
    assert [e[0] for e in events] == [UPSERT, UPSERT, UPSERT, REMOVE, REMOVE, REMOVE]
    assert events[-1][1] == entity("800", events[0][2])
    assert call.is_ended


# --- flow 3 -------------------------------------------------------------------------------------

def test_flow3_ring_group_has_no_participant_of_its_own(pbx):
    engine, recorder = pbx

    call = engine.inbound(CALLER, "PragueDID", "700")   # RingAll 101, 102
    arrived = recorder.take()
    engine.answer_offer(call.callid, "101")
    answered = recorder.take()

    (_, _, agent1), (_, _, agent2) = arrived
    assert [p["dn"] for _, _, p in arrived] == ["101", "102"]
    for agent in (agent1, agent2):
        assert has(agent, status="Ringing", on_behalf_of_dn="700", on_behalf_of_type="Wringgroup")
    assert kinds(answered) == [(UPSERT, entity("101", agent1)), (REMOVE, entity("102", agent2))]


def test_flow3_ring_group_nobody_answers_ends_call(sim, pbx):
    engine, recorder = pbx
    sim.directory.ring_groups["700"].ring_time_s = 5

    call = engine.inbound(CALLER, "PragueDID", "700")

    events = recorder.take(4)
    assert [e[0] for e in events] == [UPSERT, UPSERT, REMOVE, REMOVE]
    wait_until(lambda: call.is_ended)


# --- flow 4 -------------------------------------------------------------------------------------

def test_flow4_ivr_key_press_forwards_then_ivr_leaves(pbx):
    engine, recorder = pbx

    call = engine.inbound(CALLER, "PragueDID", "600")
    [(_, _, ivr)] = recorder.take()
    engine.press(call.callid, "101")
    pressed = recorder.take()

    assert has(ivr, dn="600", status="Connected", party_caller_id=CALLER, party_dn_type="Wexternalline")
    (_, _, target), (kind, path, _) = pressed
    assert has(target, dn="101", status="Ringing", on_behalf_of_dn="600", on_behalf_of_type="Wivr",
               callid=call.callid)
    assert (kind, path) == (REMOVE, entity("600", ivr))


def test_flow4_ivr_timeout_forwards_to_its_queue(sim, pbx):
    engine, recorder = pbx
    sim.directory.ivrs["600"].timeout_s = 5                # forwards to queue 800

    engine.inbound(CALLER, "PragueDID", "600")

    events = recorder.take(5)
    assert [(e[0], e[1].split("/")[2]) for e in events[:5]] == [
        (UPSERT, "600"), (UPSERT, "800"), (UPSERT, "101"), (UPSERT, "102"), (REMOVE, "600")]
    assert has(events[1][2], on_behalf_of_dn="600", on_behalf_of_type="Wivr")
    assert has(events[2][2], on_behalf_of_dn="800", on_behalf_of_type="Wqueue")


# --- flow 5 -------------------------------------------------------------------------------------

def answered_inbound(engine: Engine, recorder: Recorder, ext: str = "101"):
    call = engine.inbound(CALLER, "PragueDID", ext)
    engine.answer_offer(call.callid, ext)
    [_, (_, _, leg)] = recorder.take()
    return call, leg


def test_flow5_blind_transfer_new_leg_before_old_is_released(pbx):
    engine, recorder = pbx
    call, leg = answered_inbound(engine, recorder)

    result = engine.act("101", leg["id"], "transferto", {"destination": "103"})
    transferred = recorder.take()
    engine.answer_offer(call.callid, "103")
    answered = recorder.take()

    assert result["finalstatus"] == "Success" and result["result"]["id"] == leg["id"]
    (_, _, target), (kind, path, _) = transferred
    assert has(target, dn="103", status="Ringing", referred_by_dn="101", referred_by_type="Wextension",
               callid=call.callid, legid=2, party_caller_id=CALLER, party_dn="10000")
    assert (kind, path) == (REMOVE, entity("101", leg))
    assert kinds(answered) == [(UPSERT, entity("103", target))]
    assert has(answered[0][2], status="Connected", referred_by_dn="101")


def test_flow5_blind_transfer_not_answered_ends_call(sim, pbx):
    engine, recorder = pbx
    call, leg = answered_inbound(engine, recorder)
    for profile in sim.directory.users["103"].profiles:
        profile.no_answer_timeout_s = 5

    engine.transfer(call.callid, "101", "103")

    events = recorder.take(3)
    assert kinds(events[1:]) == [(REMOVE, entity("101", leg)), (REMOVE, entity("103", events[0][2]))]
    wait_until(lambda: call.is_ended)


# --- flow 6 -------------------------------------------------------------------------------------

def test_flow6_attended_transfer(pbx):
    engine, recorder = pbx
    call, leg = answered_inbound(engine, recorder)

    consult = engine.consult(call.callid, "101", "103")
    consulting = recorder.take()
    engine.answer_offer(consult.callid, "103")
    consulted = recorder.take()
    engine.complete_transfer(consult.callid)
    completed = recorder.take()

    (_, _, dialing), (_, _, ringing) = consulting
    assert consult.callid != call.callid
    assert has(dialing, dn="101", status="Dialing", party_dn="103", party_dn_type="Wextension",
               callid=consult.callid)
    assert has(ringing, dn="103", status="Ringing", party_dn="101", party_dn_type="Wextension",
               callid=consult.callid)
    assert kinds(consulted) == [(UPSERT, entity("103", ringing)), (UPSERT, entity("101", dialing))]
    assert all(p["status"] == "Connected" for _, _, p in consulted)
    (_, _, taken_over), *removed = completed
    assert has(taken_over, dn="103", status="Connected", referred_by_dn="101", callid=call.callid,
               party_caller_id=CALLER, party_dn="10000")
    assert kinds(removed) == [(REMOVE, entity("101", dialing)), (REMOVE, entity("103", ringing)),
                              (REMOVE, entity("101", leg))]
    assert engine.call(consult.callid) is None and engine.call(call.callid) is not None


# --- flow 7 -------------------------------------------------------------------------------------

def test_flow7_outbound_answered(pbx):
    engine, recorder = pbx

    call = engine.outbound("101", NUMBER)
    [(_, path, dialing)] = recorder.take()
    engine.answer_external(call.callid)
    [(_, path2, connected)] = recorder.take()
    engine.hang_up(call.callid, "101")

    assert has(dialing, status="Dialing", party_dn="10000", party_dn_type="Wexternalline",
               party_caller_id=NUMBER, originated_by_dn="101", originated_by_type="Wextension",
               on_behalf_of_dn="", party_did="")
    assert path2 == path and has(connected, status="Connected", party_caller_id=NUMBER)
    assert kinds(recorder.take()) == [(REMOVE, path)]


def test_flow7_outbound_not_answered_is_removed_while_dialing(pbx):
    engine, recorder = pbx

    call = engine.outbound("101", NUMBER)
    [(_, path, _)] = recorder.take()
    engine.give_up(call.callid)

    assert kinds(recorder.take()) == [(REMOVE, path)]


# --- flow 8 -------------------------------------------------------------------------------------

def test_flow8_internal_call(sim, pbx):
    engine, recorder = pbx
    user = sim.directory.users["101"]

    call = engine.outbound("101", "102")
    started = recorder.take()
    engine.answer_offer(call.callid, "102")
    answered = recorder.take()
    engine.hang_up(call.callid, "102")
    ended = recorder.take()

    (_, _, caller), (_, _, callee) = started
    assert has(caller, dn="101", status="Dialing", party_dn="102", party_dn_type="Wextension",
               party_caller_id="102", originated_by_dn="101")
    assert has(callee, dn="102", status="Ringing", party_dn="101", party_dn_type="Wextension",
               party_caller_id="101", party_caller_name=f"{user.first_name} {user.last_name}", callid=caller["callid"])
    assert kinds(answered) == [(UPSERT, entity("102", callee)), (UPSERT, entity("101", caller))]
    assert all(p["status"] == "Connected" for _, _, p in answered)
    assert kinds(ended) == [(REMOVE, entity("102", callee)), (REMOVE, entity("101", caller))]


# --- flow 9 -------------------------------------------------------------------------------------

def test_flow9_makecall_rings_own_device_then_dials_out(pbx):
    engine, recorder = pbx

    body = engine.make_call("101", NUMBER)
    events = recorder.take(3)

    (_, path, ringing), (_, path2, dialing), (_, path3, connected) = events
    assert body["finalstatus"] == "Success"
    assert path == path2 == path3
    assert has(ringing, status="Ringing", party_dn="", party_caller_id=NUMBER, originated_by_dn="101",
               originated_by_type="Wextension")
    assert has(dialing, status="Dialing", party_dn="10000", party_dn_type="Wexternalline",
               party_caller_id=NUMBER)
    assert has(connected, status="Connected")


def test_flow9_makecall_from_direct_control_device_dials_at_once(sim, pbx):
    engine, recorder = pbx
    device = next(d for d in sim.directory.users["101"].devices if d.direct_control)

    body = engine.make_call("101", "103", device_id=device.device_id)
    started = recorder.take()

    (_, _, caller), (_, _, callee) = started
    assert has(body["result"], id=caller["id"], status="Dialing", device_id=device.device_id,
               direct_control=True)
    assert has(caller, status="Dialing", party_dn="103")
    assert has(callee, dn="103", status="Ringing", party_dn="101")


def test_flow9_makecall_dn_form_with_two_devices_names_no_leg(sim):
    assert len(sim.directory.users["101"].devices) == 2

    body = sim.engine.make_call("101", NUMBER)

    assert body == {"finalstatus": "Success", "reason": "", "result": None, "reasontext": ""}


def test_makecall_refusals_are_failure_bodies(sim):
    assert sim.engine.make_call("101", "")["finalstatus"] == "Failed"
    assert sim.engine.make_call("800", "101")["reason"] == "InvalidSource"
    assert sim.engine.make_call("101", "102", device_id="sip:nope")["reason"] == "DeviceNotFound"


# --- actions, XAPI views ------------------------------------------------------------------------

def test_answer_refused_without_direct_control(sim, pbx):
    engine, recorder = pbx
    engine.inbound(CALLER, "PragueDID", "103")
    [(_, _, ringing)] = recorder.take()

    with pytest.raises(ActionRefused) as refused:
        engine.act("103", ringing["id"], "answer")

    assert refused.value.status == 422


def test_answer_works_with_direct_control(pbx):
    engine, recorder = pbx
    engine.inbound(CALLER, "PragueDID", "102")           # 102's first device is uaCSTA
    [(_, _, ringing)] = recorder.take()

    result = engine.act("102", ringing["id"], "answer")

    assert result["result"]["status"] == "Connected"


def test_divert_only_ringing_and_transferto_only_connected(pbx):
    engine, recorder = pbx
    call = engine.inbound(CALLER, "PragueDID", "103")
    [(_, _, ringing)] = recorder.take()

    with pytest.raises(ActionRefused):
        engine.act("103", ringing["id"], "transferto", {"destination": "104"})
    engine.act("103", ringing["id"], "divert", {"destination": "104"})
    diverted = recorder.take()
    engine.answer_offer(call.callid, "104")
    [(_, _, connected)] = recorder.take()
    with pytest.raises(ActionRefused):
        engine.act("104", connected["id"], "divert", {"destination": "105"})

    assert [(e[0], e[1].split("/")[2]) for e in diverted] == [(UPSERT, "104"), (REMOVE, "103")]


def test_drop_of_ringing_agent_keeps_queue_call(pbx):
    engine, recorder = pbx
    call = engine.inbound(CALLER, "PragueDID")
    _, (_, _, agent1), _ = recorder.take()

    engine.act("101", agent1["id"], "drop")

    assert kinds(recorder.take()) == [(REMOVE, entity("101", agent1))]
    assert engine.call(call.callid) is not None


def test_routeto_on_connected_replaces_it_when_answered(pbx):
    engine, recorder = pbx
    call, leg = answered_inbound(engine, recorder)

    engine.act("101", leg["id"], "routeto", {"destination": "104"})
    [(_, _, target)] = recorder.take()
    engine.answer_offer(call.callid, "104")

    assert kinds(recorder.take()) == [(UPSERT, entity("104", target)), (REMOVE, entity("101", leg))]


def test_attach_data_upserts_the_participant(pbx):
    engine, recorder = pbx
    call, leg = answered_inbound(engine, recorder)

    engine.act("101", leg["id"], "attach_participant_data", {"attacheddata": {"crm": "42"}})

    assert kinds(recorder.take()) == [(UPSERT, entity("101", leg))]


def test_active_calls_and_drop_call(pbx):
    engine, recorder = pbx
    before = datetime.now(timezone.utc)
    ringing = engine.inbound(CALLER, "PragueDID", "103")
    recorder.take()
    talking, _ = answered_inbound(engine, recorder, "104")

    rows = {row.id: row for row in engine.active_calls()}
    dropped = engine.drop_call(ringing.callid)

    assert rows[ringing.callid].status == "Routing"
    assert rows[ringing.callid].callee.startswith("103 ")
    assert rows[talking.callid].status == "Talking" and rows[talking.callid].caller == CALLER
    assert rows[talking.callid].established_at >= before
    assert dropped and engine.calls_active() == 1
    assert not engine.drop_call(ringing.callid)


# --- recordings, scenarios ----------------------------------------------------------------------

def test_recording_is_a_wav_as_long_as_the_talk(sim):
    before = datetime.now(timezone.utc)

    played = sim.play(inbound(CALLER, "PragueDID").to_extension("101").answered_by("101").talk(30)
                      .caller_hangs_up())

    [recording_id] = played.recording_ids
    recording = sim.directory.recordings[recording_id]
    with wave.open(io.BytesIO(recording.wav)) as wav:
        assert (wav.getframerate(), wav.getnchannels(), wav.getsampwidth()) == (8000, 1, 2)
        wav_s = wav.getnframes() / 8000
    # The talk lasts at least the scripted 30 s; on a loaded machine the hang-up may come late, so
    # the WAV is compared with the span the PBX recorded (its wall clock runs at real speed).
    talk_s = (recording.end_time - recording.start_time).total_seconds() * sim.engine.clock.time_scale
    assert 29.0 <= wav_s and abs(wav_s - talk_s) <= 1.0
    assert before <= recording.start_time <= recording.end_time <= datetime.now(timezone.utc)
    assert (recording.from_dn, recording.to_dn, recording.call_type) == ("10000", "101", "InboundExternal")
    assert recording.from_caller_number == CALLER and recording.to_did_number == DID


def test_external_only_recording_skips_internal_calls(sim):
    played = sim.play(internal("106", "110").answered_by("110").talk(5).hangs_up(by="106"))
    outside = sim.play(outbound("106", NUMBER).answered().talk(5).hangs_up(by="106"))

    assert played.recording_ids == []
    [recording_id] = outside.recording_ids
    assert sim.directory.recordings[recording_id].call_type == "OutboundExternal"


def test_scenario_queue_call_legs(sim):
    played = sim.play(inbound(CALLER, did="PragueDID").to_queue("800", rings=["101", "102"])
                      .answered_by("102").talk(10).caller_hangs_up())

    assert [dn for dn, _ in played.legs] == ["800", "101", "102"]
    assert played.call_id > 0 and len(played.recording_ids) == 1   # 102 records, 101 never talked
    assert sim.engine.calls_active() == 0


def test_scenario_transfers(sim):
    blind = sim.play(inbound(CALLER, "PragueDID").to_extension("101").answered_by("101").talk(5)
                     .blind_transfer(by="101", to="103").answered_by("103").talk(5).caller_hangs_up())
    attended = sim.play(inbound(CALLER, "PragueDID").to_extension("101").answered_by("101").talk(5)
                        .attended_transfer(by="101", to="103").talk(5).hangs_up(by="103"))

    assert [dn for dn, _ in blind.legs] == ["101", "103"]
    assert [dn for dn, _ in attended.legs] == ["101", "103", "101", "103"]
    assert len(blind.recording_ids) == 2 and len(attended.recording_ids) == 4


def test_scenario_hunt_answer_waits_for_the_agent_to_ring(sim):
    sim.directory.queues["801"].ring_timeout_s = 4

    played = sim.play(inbound(CALLER).to_queue("801", rings=["103", "104"]).rings(1).answered_by("104")
                      .caller_hangs_up())

    assert [dn for dn, _ in played.legs][:3] == ["801", "103", "104"]


def test_scenario_ivr_press_and_outbound_busy(sim):
    ivr = sim.play(inbound(CALLER, "PragueDID").to_ivr("600", press="101").answered_by("101")
                   .caller_hangs_up())
    busy = sim.play(outbound("101", NUMBER).busy())

    assert [dn for dn, _ in ivr.legs] == ["600", "101"]
    assert [dn for dn, _ in busy.legs] == ["101"] and sim.engine.calls_active() == 0


def test_scenario_json_round_trip():
    scenario = (inbound(CALLER, "PragueDID").to_queue("800", rings=["101"]).rings(3).answered_by("101")
                .talk(60).blind_transfer(by="101", to="103").no_answer())

    again = Scenario.from_json(scenario.to_json())

    assert again.to_dict() == scenario.to_dict()
    assert Scenario.from_json(outbound("101", NUMBER).not_answered(after_s=5).to_dict()).to_dict() == \
        outbound("101", NUMBER).not_answered(after_s=5).to_dict()


@pytest.mark.parametrize("bad", ['{"kind": "sideways"}', '{"kind": "outbound", "ext": "101"}',
                                 '{"kind": "internal", "ext": "1", "other": "2", "steps": [{"step": "x"}]}',
                                 "not json"],
                         ids=["unknown kind", "missing number", "unknown step", "not JSON"])
def test_scenario_from_bad_json_is_a_clear_error(bad):
    with pytest.raises(ScenarioError):
        Scenario.from_json(bad)


def test_demo_scenarios_load_and_play(sim):
    from pathlib import Path

    import gateway.sim.scenarios as package

    plays = load_file(Path(package.__file__).parent / "demo.json")
    played = [sim.play(scenario, wait=False) for _, scenario in plays]

    assert len(plays) >= 4
    assert all(each.call_id and not each.error for each in played)
    assert sim.engine.calls_active() == len(plays)


def test_many_concurrent_plays(sim):
    played = [sim.play(internal(str(110 + n % 10), str(120 + n % 10)).answered_by(str(120 + n % 10))
                       .talk(3).hangs_up(by=str(110 + n % 10)), wait=False) for n in range(300)]

    for each in played:
        each.wait(30)

    assert len({p.call_id for p in played}) == 300
    assert sim.engine.calls_active() == 0


def test_scenario_errors_are_clear(sim):
    with pytest.raises(ScenarioError, match="not a routable DN"):
        sim.play(inbound(CALLER).to_extension("999"))
    with pytest.raises(ScenarioError, match="hangs_up"):
        sim.play(inbound(CALLER, "PragueDID").to_extension("101").answered_by("101").hangs_up(by="104"))
