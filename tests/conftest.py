"""Shared fixtures: a real simulated PBX, a real webhook receiver, configuration and time."""
from __future__ import annotations

import shutil
import subprocess

import pytest

from gateway.clock import FakeClock
from gateway.app import create_app
from gateway.config import Config, from_dict
from gateway.sim.server import SimServer
from tests.support.config import ACCESS_KEY
from tests.support.receiver import Receiver


@pytest.fixture(scope="session")
def sim_server():
    """One simulator process-wide (HTTP + WebSocket on 127.0.0.1:<free port>), time compressed 50x."""
    server = SimServer(time_scale=50.0)
    server.start()
    yield server
    server.stop()


@pytest.fixture
def sim(sim_server):
    """A clean simulated PBX with its default content, reset for each test."""
    sim_server.reset()
    yield sim_server
    sim_server.reset()


@pytest.fixture
def receiver():
    """A real local HTTP server that records the webhooks it receives."""
    server = Receiver()
    yield server
    server.stop()


@pytest.fixture
def clock():
    """A clock that only moves when the test calls `clock.advance(seconds)`."""
    return FakeClock()


@pytest.fixture
def config(sim, receiver, tmp_path) -> Config:
    """A valid configuration pointing at the simulator, the receiver and a temporary state folder."""
    return from_dict({
        "pbx": {"url": sim.url, "client_id": sim.client_id, "client_secret": sim.client_secret,
                "verify_tls": "false", "timezone": "Europe/Prague", "timeout_s": "5"},
        "webapi": {"key": ACCESS_KEY, "public_url": "http://gateway.test:8080", "cache_s": "5"},
        "webhooks": {"url": receiver.url, "end_grace_s": "0.5"},
        "recordings": {"mp3_dir": str(tmp_path / "mp3"), "wait_s": "5"},
        "storage": {"state_dir": str(tmp_path / "state")},
    }, source="test", environ={})


@pytest.fixture
def gateway(config):
    """Services against the simulator, background threads not started (use `live_gateway` for those)."""
    from gateway.services import Services  # imported here: it pulls in every component

    services = Services(config)
    yield services
    services.http.close()


@pytest.fixture
def live_gateway(gateway):
    """`gateway` with its runtime started (watcher, webhook senders, ...), stopped after the test."""
    gateway.runtime.start()
    yield gateway
    gateway.runtime.stop(timeout_s=10)


@pytest.fixture
def client(config, gateway):
    """A Flask test client of create_app(config, gateway)."""
    return create_app(config, gateway).test_client()


@pytest.fixture
def webapi(client):
    """`webapi("ext.info.get", num="102")` -> (status, parsed JSON) via /webapi/<ACCESS_KEY>/<command>."""

    def call(command: str, **params: str) -> tuple[int, object]:
        response = client.get(f"/webapi/{ACCESS_KEY}/{command}", query_string=params)
        return response.status_code, response.get_json(silent=True)

    return call


@pytest.fixture
def certificate(tmp_path):
    """(certfile, keyfile) of a self-signed certificate for 127.0.0.1 (made with openssl)."""
    if shutil.which("openssl") is None:
        pytest.skip("openssl is not installed")
    cert, key = tmp_path / "server.pem", tmp_path / "server.key"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=127.0.0.1",
                    "-addext", "subjectAltName=IP:127.0.0.1", "-keyout", str(key), "-out", str(cert)],
                   check=True, capture_output=True)
    return str(cert), str(key)
