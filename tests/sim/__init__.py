"""Tests of the simulator (XAPI, OData evaluator) and helpers they share: an XAPI client and seeding."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

import requests

from gateway.sim.model import Recording


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
