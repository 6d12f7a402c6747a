"""Fixtures of the client tests: one HTTP session and token source logged in to the simulator."""
from __future__ import annotations

import pytest

from gateway.clock import Clock
from gateway.pbx.auth import TokenSource
from gateway.pbx.http import new_session


@pytest.fixture
def session():
    """A pooled HTTP session as the gateway builds it (TLS checks off: the simulator is plain HTTP)."""
    http = new_session(verify_tls=False)
    yield http
    http.close()


@pytest.fixture
def tokens(sim, session) -> TokenSource:
    """The API client's token source against the simulator."""
    return TokenSource(session, sim.url, sim.client_id, sim.client_secret, timeout_s=5, clock=Clock())
