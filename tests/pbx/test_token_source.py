"""TokenSource against the simulator: one shared token, early renewal, refresh after 401, refusals."""
from __future__ import annotations

import logging
import threading

import pytest

from gateway.clock import FakeClock
from gateway.pbx.auth import TokenSource, TokenStatus
from gateway.pbx.callcontrol import CallControlClient
from gateway.pbx.errors import PbxAuthFailed, PbxUnreachable
from gateway.pbx.http import new_session
from gateway.pbx.xapi import XapiClient


def token_requests(sim) -> int:
    """How many times the gateway asked the simulated PBX for a token since the last reset."""
    return sum(1 for request in sim.requests if request.path == "/connect/token")


@pytest.fixture
def clock():
    """A clock for the token source that moves only when the test says so."""
    return FakeClock()


@pytest.fixture
def tokens(sim, clock):
    """A token source for the simulator's API client."""
    return TokenSource(new_session(verify_tls=False), sim.url, sim.client_id, sim.client_secret,
                       timeout_s=5, clock=clock)


def test_one_token_is_shared_by_xapi_and_call_control(sim, tokens):
    session = new_session(verify_tls=False)
    xapi = XapiClient(session, sim.url, tokens, timeout_s=5)
    callcontrol = CallControlClient(session, sim.url, tokens, timeout_s=5)

    xapi.version()
    xapi.find("Users", "101")
    callcontrol.all_states()
    callcontrol.devices("101")

    assert token_requests(sim) == 1
    assert tokens.status().valid is True


def test_parallel_first_use_fetches_one_token(sim, tokens):
    results: list[str] = []
    threads = [threading.Thread(target=lambda: results.append(tokens.token())) for _ in range(8)]

    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)

    assert len(set(results)) == 1 and len(results) == 8
    assert token_requests(sim) == 1


def test_token_is_renewed_before_it_expires(sim, tokens, clock):
    renewals: list[str] = []
    tokens.on_refresh(lambda: renewals.append("renewed"))
    first = tokens.token()

    clock.advance(3600 - 30)
    second = tokens.token()

    assert second != first
    assert token_requests(sim) == 2
    assert renewals == ["renewed"]


def test_token_is_kept_while_far_from_expiry(sim, tokens, clock):
    first = tokens.token()

    clock.advance(1800)

    assert tokens.token() == first
    assert token_requests(sim) == 1


def test_expired_token_is_refreshed_transparently_mid_run(sim, tokens):
    xapi = XapiClient(new_session(verify_tls=False), sim.url, tokens, timeout_s=5)
    renewals: list[str] = []
    tokens.on_refresh(lambda: renewals.append("renewed"))
    xapi.find("Users", "101")

    sim.faults.expire_tokens()
    user = xapi.find("Users", "102")

    assert user["Number"] == "102"
    assert token_requests(sim) == 2
    assert renewals == ["renewed"]
    assert [request.status for request in sim.requests if request.path == "/xapi/v1/Users"] == [200, 401, 200]


def test_refresh_of_an_already_replaced_token_makes_no_request(sim, tokens):
    stale = tokens.token()
    fresh = tokens.refresh(stale)

    again = tokens.refresh(stale)

    assert again == fresh != stale
    assert token_requests(sim) == 2


def test_refused_secret_raises_auth_failed_without_the_secret(sim, caplog):
    secret = "not-the-right-secret-4711"
    tokens = TokenSource(new_session(verify_tls=False), sim.url, sim.client_id, secret,
                         timeout_s=5, clock=FakeClock())
    caplog.set_level(logging.DEBUG)

    with pytest.raises(PbxAuthFailed) as raised:
        tokens.token()

    assert f"client id {sim.client_id!r}" in str(raised.value)
    assert secret not in str(raised.value)
    assert secret not in caplog.text
    assert tokens.status() == TokenStatus(valid=False, expires_in_s=None, last_error=str(raised.value))


def test_refused_tokens_fault_raises_auth_failed(sim, tokens):
    sim.faults.refuse_tokens(True)

    with pytest.raises(PbxAuthFailed, match="refused client id"):
        tokens.token()


def test_logs_never_show_the_token_or_the_secret(sim, tokens, caplog):
    caplog.set_level(logging.DEBUG)
    xapi = XapiClient(new_session(verify_tls=False), sim.url, tokens, timeout_s=5)

    xapi.find("Users", "101")
    sim.faults.expire_tokens()
    xapi.find("Users", "101")

    assert sim.client_secret not in caplog.text
    assert tokens.token() not in caplog.text
    assert "obtained a token" in caplog.text


def test_unreachable_token_endpoint_raises_unreachable(sim, clock):
    tokens = TokenSource(new_session(verify_tls=False), "http://127.0.0.1:9", sim.client_id,
                         sim.client_secret, timeout_s=2, clock=clock)

    with pytest.raises(PbxUnreachable, match="POST /connect/token"):
        tokens.token()


def test_failed_early_renewal_keeps_the_still_valid_token(sim, tokens, clock):
    first = tokens.token()
    sim.faults.refuse_tokens(True)

    clock.advance(3600 - 30)

    assert tokens.token() == first
    assert tokens.status().last_error is not None
