"""Clients of the simulator for its own tests (plain requests and websocket, no gateway code), and seeding."""
from __future__ import annotations

import json
import threading
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Iterator

import requests
import websocket

from gateway.sim.model import Recording
from tests.support.wait import wait_until


@dataclass
class Xapi:
    """A logged-in client of the simulator's /xapi/v1 (requests, no gateway code)."""

    base_url: str
    session: requests.Session

    @classmethod
    def login(cls, sim_url: str, client_id: str, client_secret: str) -> "Xapi":
        """Obtain a token from /connect/token and keep it on a session."""
        answer = requests.post(f"{sim_url}/connect/token", data={
            "client_id": client_id, "client_secret": client_secret, "grant_type": "client_credentials"},
            timeout=5)
        answer.raise_for_status()
        session = requests.Session()
        session.headers["Authorization"] = f"Bearer {answer.json()['access_token']}"
        return cls(f"{sim_url}/xapi/v1", session)

    def get(self, path: str, **params: str) -> requests.Response:
        return self.session.get(self.base_url + path, params=params, timeout=5)

    def post(self, path: str, body: dict | None = None) -> requests.Response:
        return self.session.post(self.base_url + path, json=body, timeout=5)

    def patch(self, path: str, body: dict) -> requests.Response:
        return self.session.patch(self.base_url + path, json=body, timeout=5)

    def delete(self, path: str) -> requests.Response:
        return self.session.delete(self.base_url + path, timeout=5)

    def values(self, path: str, **params: str) -> list[dict]:
        answer = self.get(path, **params)
        assert answer.status_code == 200, answer.text
        return answer.json()["value"]

    def user(self, number: str) -> dict:
        answer = self.get(f"/Users(Number='{number}')")
        assert answer.status_code == 200, answer.text
        return answer.json()


def add_recording(sim, rec_id: int = 501, from_dn: str = "101", start: datetime | None = None) -> Recording:
    """Put a finished recording (a short silent WAV) into the simulated PBX."""
    start = start or datetime(2025, 3, 1, 10, 0, tzinfo=timezone.utc)
    recording = Recording(id=rec_id, start_time=start, end_time=start + timedelta(seconds=30), from_dn=from_dn,
                          from_dn_type=0, from_caller_number=from_dn, from_display_name="Jan Novák",
                          to_dn="10000", to_dn_type=1, to_caller_number="+420774852529",
                          to_display_name="+420774852529", call_type="OutboundExternal",
                          wav=b"RIFF\x24\x00\x00\x00WAVEfmt " + bytes(28))
    with sim.directory.lock:
        sim.directory.recordings[rec_id] = recording
    return recording


def assert_error(answer: requests.Response, status: int, text: str = "") -> dict:
    """The answer is v20's error shape with `status` and a message containing `text`."""
    assert answer.status_code == status, answer.text
    error = answer.json()["error"]
    assert error["code"] == "" and text in error["message"]
    assert isinstance(error["details"], list)
    return error


def slow_timeouts(directory) -> None:
    """No ring timeout fires during a test unless the test shortens it."""
    for user in directory.users.values():
        for profile in user.profiles:
            profile.no_answer_timeout_s = 3600
    for queue in directory.queues.values():
        queue.ring_timeout_s, queue.master_timeout_s = 3600, 36000
    for group in directory.ring_groups.values():
        group.ring_time_s = 3600
    for ivr in directory.ivrs.values():
        ivr.timeout_s = 3600


def fetch_token(sim, session: requests.Session | None = None) -> str:
    """A fresh access token for the simulator's API client."""
    response = (session or requests).post(f"{sim.url}/connect/token", data={
        "client_id": sim.client_id, "client_secret": sim.client_secret, "grant_type": "client_credentials"})
    response.raise_for_status()
    return response.json()["access_token"]


class Api:
    """A bearer-authenticated client of the simulator's HTTP API."""

    def __init__(self, sim) -> None:
        self.sim = sim
        self.session = requests.Session()
        self.token = fetch_token(sim, self.session)
        self.session.headers["Authorization"] = f"Bearer {self.token}"

    def get(self, path: str) -> requests.Response:
        return self.session.get(self.sim.url + path, timeout=5)

    def post(self, path: str, body: dict | None = None) -> requests.Response:
        return self.session.post(self.sim.url + path, json=body if body is not None else {}, timeout=5)

    def close(self) -> None:
        self.session.close()


def connected(sim, client_class: type[Api] | type[Events]) -> Iterator[Api | Events]:
    """Body of a fixture: a client of the simulator, timeouts slowed so nothing rings out, closed after."""
    slow_timeouts(sim.directory)
    client = client_class(sim)
    yield client
    client.close()


class Events:
    """A real WebSocket client collecting every message the simulator sends."""

    def __init__(self, sim, token: str | None = None) -> None:
        self.token = token or fetch_token(sim)
        self.socket = websocket.create_connection(sim.ws_url, header=[f"Authorization: Bearer {self.token}"],
                                                  timeout=5)
        self.messages: list[dict] = []
        self.is_closed = False
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self) -> None:
        try:
            while True:
                text = self.socket.recv()
                if not text:
                    break
                self.messages.append(json.loads(text))
        except (websocket.WebSocketException, OSError):
            pass
        self.is_closed = True

    def wait_for(self, count: int, timeout_s: float = 5) -> list[dict]:
        wait_until(lambda: len(self.messages) >= count, timeout_s=timeout_s)
        return self.messages[:count]

    def request(self, request_id: str, path: str, data=""):
        before = len(self.messages)
        self.socket.send(json.dumps({"RequestID": request_id, "Path": path, "RequestData": data}))
        return wait_until(lambda: next((m for m in self.messages[before:] if m["event"]["event_type"] == 4
                                        and m["event"]["attached_data"]["RequestID"] == request_id), None))

    def close(self) -> None:
        self.socket.close()
