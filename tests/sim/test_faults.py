"""Fault injection on the simulator: failures, delays, refused tokens and sockets, expiry."""
from __future__ import annotations

import time

import pytest
import requests
import websocket

from gateway.sim.scenarios import inbound
from tests.support.simulator import Api, fetch_token
from tests.support.simulator import Events
from tests.support.wait import wait_until


def test_fail_answers_the_status_the_given_number_of_times(sim):
    api = Api(sim)
    sim.faults.fail(503, "/callcontrol/101", times=2)

    statuses = [api.get("/callcontrol/101").status_code for _ in range(3)]

    assert statuses == [503, 503, 200]
    assert [r.status for r in sim.requests[-3:]] == [503, 503, 200]


def test_fail_only_matches_its_prefix_and_clear_removes_it(sim):
    api = Api(sim)
    sim.faults.fail(500, "/xapi/", times=None)

    assert api.get("/callcontrol").status_code == 200
    assert api.get("/xapi/v1/Defs").status_code == 500
    sim.faults.clear()
    assert api.get("/xapi/v1/Defs").status_code != 500


def test_delay_holds_requests(sim):
    api = Api(sim)
    sim.faults.delay(0.3, "/callcontrol", times=1)

    started = time.monotonic()
    api.get("/callcontrol")
    slow = time.monotonic() - started
    api.get("/callcontrol")

    assert slow >= 0.3


def test_refuse_tokens(sim):
    sim.faults.refuse_tokens(True)

    with pytest.raises(requests.HTTPError):
        fetch_token(sim)
    sim.faults.refuse_tokens(False)
    assert fetch_token(sim)


def test_expire_tokens_makes_the_live_token_401(sim):
    api = Api(sim)

    sim.faults.expire_tokens()

    response = api.get("/callcontrol")
    assert response.status_code == 401 and "expired" in response.json()["error_description"]
    assert Api(sim).get("/callcontrol").status_code == 200


def test_drop_websockets_closes_them_and_clients_can_reconnect(sim):
    events = Events(sim)

    sim.faults.drop_websockets()

    wait_until(lambda: events.is_closed)
    again = Events(sim, token=events.token)
    assert not again.is_closed
    again.close()


def test_refuse_websockets_answers_503(sim):
    token = fetch_token(sim)
    sim.faults.refuse_websockets(True)

    with pytest.raises(websocket.WebSocketBadStatusException) as refused:
        websocket.create_connection(sim.ws_url, header=[f"Authorization: Bearer {token}"], timeout=5)

    assert refused.value.status_code == 503
    sim.faults.refuse_websockets(False)
    Events(sim, token=token).close()


@pytest.mark.parametrize("refuse", ["websockets", "tokens"])
def test_outage_keeps_clients_off_for_the_chosen_time_then_ends_by_itself(sim, refuse):
    events = Events(sim)
    token = events.token

    sim.faults.outage(0.5, refuse=refuse)

    wait_until(lambda: events.is_closed)
    assert sim.faults.is_in_outage
    with pytest.raises((websocket.WebSocketBadStatusException, requests.HTTPError)):
        if refuse == "tokens":
            fetch_token(sim)
        else:
            websocket.create_connection(sim.ws_url, header=[f"Authorization: Bearer {token}"], timeout=5)
    wait_until(lambda: not sim.faults.is_in_outage, timeout_s=5)
    Events(sim).close()


def test_calls_go_on_during_an_outage(sim):
    sim.faults.outage(5)

    played = sim.play(inbound("+420774852529").to_extension("101").answered_by("101").talk(2).caller_hangs_up())

    assert played.call_id and sim.faults.is_in_outage
    sim.faults.end_outage()
    assert not sim.faults.is_in_outage
