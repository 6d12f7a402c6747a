"""The simulator's token endpoint and bearer checks (V20-API-NOTES §a)."""
from __future__ import annotations

import base64
import json

import pytest
import requests

from gateway.sim.server import SimServer
from tests.support.simulator import fetch_token
from tests.support.wait import wait_until


def token_request(sim, **fields) -> requests.Response:
    data = {"client_id": sim.client_id, "client_secret": sim.client_secret, "grant_type": "client_credentials"}
    data.update(fields)
    return requests.post(f"{sim.url}/connect/token", data=data, timeout=5)


def payload(token: str) -> dict:
    part = token.split(".")[1]
    return json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)))


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def test_token_answer_has_documented_shape(sim):
    response = token_request(sim)

    body = response.json()
    assert response.status_code == 200
    assert list(body) == ["token_type", "expires_in", "access_token", "refresh_token"]
    assert (body["token_type"], body["expires_in"], body["refresh_token"]) == ("Bearer", 3600, None)
    claims = payload(body["access_token"])
    assert claims["client_id"] == sim.client_id and claims["exp"] - claims["iat"] == 3600


def test_multipart_token_request_is_accepted(sim):
    fields = {"client_id": (None, sim.client_id), "client_secret": (None, sim.client_secret),
              "grant_type": (None, "client_credentials")}

    response = requests.post(f"{sim.url}/connect/token", files=fields, timeout=5)

    assert response.status_code == 200


@pytest.mark.parametrize("fields", [{"client_secret": "wrong"}, {"client_id": "nobody"}],
                         ids=["bad secret", "unknown client"])
def test_bad_credentials_are_401_without_echoing_the_secret(sim, fields):
    response = token_request(sim, **fields)

    assert response.status_code == 401
    assert response.json()["error"] == "unauthorized"
    assert "wrong" not in response.text


def test_wrong_grant_type_is_refused(sim):
    assert token_request(sim, grant_type="password").status_code == 400


def test_requests_need_a_valid_bearer_token(sim):
    token = fetch_token(sim)
    forged = token[:-4] + ("AAAA" if not token.endswith("AAAA") else "BBBB")

    assert requests.get(f"{sim.url}/callcontrol").status_code == 401
    assert requests.get(f"{sim.url}/callcontrol", headers=bearer(forged)).status_code == 401
    assert requests.get(f"{sim.url}/callcontrol", headers=bearer("abc")).status_code == 401
    assert requests.get(f"{sim.url}/callcontrol", headers=bearer(token)).status_code == 200


def test_new_token_invalidates_the_previous_one(sim):
    first = fetch_token(sim)
    second = fetch_token(sim)

    old = requests.get(f"{sim.url}/callcontrol", headers=bearer(first))

    assert old.status_code == 401 and "superseded" in old.json()["error_description"]
    assert requests.get(f"{sim.url}/callcontrol", headers=bearer(second)).status_code == 200


def test_missing_access_rights_are_403(sim):
    token = fetch_token(sim)
    sim.api_client.callcontrol_access = False
    sim.api_client.xapi_access = False

    assert requests.get(f"{sim.url}/callcontrol", headers=bearer(token)).status_code == 403
    assert requests.get(f"{sim.url}/xapi/v1/Defs", headers=bearer(token)).status_code == 403


def test_short_lived_token_expires_and_minutes_unit():
    sim = SimServer(token_lifetime_s=1, expires_in_unit="minutes")
    sim.start()
    try:
        body = token_request(sim).json()

        assert body["expires_in"] == 1
        assert payload(body["access_token"])["exp"] - payload(body["access_token"])["iat"] == 1
        wait_until(lambda: requests.get(f"{sim.url}/callcontrol",
                                        headers=bearer(body["access_token"])).status_code == 401, timeout_s=5)
    finally:
        sim.stop()


def test_reset_revokes_tokens(sim):
    token = fetch_token(sim)

    sim.reset()

    assert requests.get(f"{sim.url}/callcontrol", headers=bearer(token)).status_code == 401
