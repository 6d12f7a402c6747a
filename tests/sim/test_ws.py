"""The Call Control WebSocket: event envelopes, sequence numbers, requests over the socket."""
from __future__ import annotations

import json

import pytest
import websocket

from tests.support.simulator import Events, connected, fetch_token
from tests.support.wait import wait_until

CALLER = "+420774852529"


@pytest.fixture
def events(sim):
    """A WebSocket connected as the simulator's API client, timeouts slowed so nothing rings out."""
    yield from connected(sim, Events)


def pairs(messages: list[dict]) -> list[tuple[int, str]]:
    return [(m["event"]["event_type"], m["event"]["entity"]) for m in messages]


def test_queue_call_messages_in_order_with_increasing_sequence(sim, events):
    played = sim.play(sim_scenario())

    messages = events.wait_for(7)

    queue, agent1, agent2 = [f"/callcontrol/{dn}/participants/{pid}" for dn, pid in played.legs]
    assert pairs(messages) == [(0, queue), (0, agent1), (0, agent2), (0, agent2), (1, agent1), (1, queue),
                               (1, agent2)]
    assert [m["sequence"] for m in messages] == list(range(1, 8))
    assert all(m["event"]["attached_data"] is None for m in messages)


def sim_scenario():
    from gateway.sim.scenarios import inbound

    return inbound(CALLER, did="PragueDID").to_queue("800", rings=["101", "102"]).answered_by("102") \
        .caller_hangs_up()


def test_only_monitored_dns_produce_events(sim, events):
    sim.api_client.monitored.remove("800")

    sim.engine.inbound(CALLER, "PragueDID")

    messages = events.wait_for(2)
    assert [m["event"]["entity"].split("/")[2] for m in messages] == ["101", "102"]


def test_request_over_socket_answers_like_rest(sim, events):
    sim.engine.inbound(CALLER, "PragueDID", "101")
    events.wait_for(1)

    answer = events.request("7", "/callcontrol/101/participants")
    forbidden = events.request("8", "/callcontrol/nope")

    data = answer["event"]["attached_data"]
    assert answer["event"]["entity"] == "/callcontrol/101/participants"
    assert (data["RequestID"], data["Path"], data["StatusCode"]) == ("7", "/callcontrol/101/participants", 200)
    [participant] = json.loads(data["Response"])
    assert participant["status"] == "Ringing"
    assert forbidden["event"]["attached_data"]["StatusCode"] == 403


def test_action_over_socket(sim, events):
    call = sim.engine.inbound(CALLER, "PragueDID", "101")
    [message] = events.wait_for(1)
    path = message["event"]["entity"]

    answer = events.request("a1", f"{path}/drop", {})

    assert answer["event"]["attached_data"]["StatusCode"] == 200
    assert json.loads(answer["event"]["attached_data"]["Response"])["finalstatus"] == "Success"
    wait_until(lambda: sim.engine.call(call.callid) is None)


def test_ping_is_answered_with_pong(sim):
    socket = websocket.create_connection(sim.ws_url, timeout=5,
                                         header=[f"Authorization: Bearer {fetch_token(sim)}"])

    socket.ping("hello")
    opcode, frame = socket.recv_data_frame(True)

    assert (opcode, frame.data) == (websocket.ABNF.OPCODE_PONG, b"hello")
    socket.close()


def test_upgrade_without_token_is_refused(sim):
    with pytest.raises(websocket.WebSocketBadStatusException) as refused:
        websocket.create_connection(sim.ws_url, timeout=5)

    assert refused.value.status_code == 401


def test_new_token_closes_sockets_of_the_old_one(sim, events):
    fetch_token(sim)

    wait_until(lambda: events.is_closed)


def test_reset_closes_sockets(sim, events):
    sim.reset()

    wait_until(lambda: events.is_closed)
