"""Call Control GETs over kept connections (gateway/pbx/lean.py), against real sockets on loopback:
the answer is an ordinary requests.Response with the session's hooks run, a connection the PBX
closed is replaced, TLS follows the session's verify setting, a proxy keeps the general client."""
from __future__ import annotations

import json
import socket

import pytest
import requests

from gateway.pbx.lean import LeanGets
from tests.support.rawhttp import RawHttpServer

PARTICIPANT = {"id": 7, "dn": "101", "status": "Ringing", "callid": 698}
BODY = json.dumps(PARTICIPANT).encode()


def _pbx(**options) -> RawHttpServer:
    return RawHttpServer(answer=BODY, content_type="application/json", **options)


def test_reads_share_one_kept_connection_and_answer_responses_with_the_session_hooks_run():
    pbx = _pbx()
    seen = []
    session = requests.Session()
    session.headers["User-Agent"] = "3cx-gateway/test"
    session.hooks["response"].append(lambda response, *args, **kwargs: seen.append(response))
    try:
        lean = LeanGets.for_pbx(session, pbx.url)
        answers = [lean.get(f"{pbx.url}/callcontrol/101/participants/{n}", {"Authorization": "Bearer t0k",
                                                                             "Accept": "application/json"}, 5)
                   for n in range(3)]

        assert [a.json() for a in answers] == [PARTICIPANT] * 3 and answers[0].status_code == 200
        assert pbx.connections == 1
        assert [r.line for r in pbx.requests] == [f"GET /callcontrol/101/participants/{n} HTTP/1.1" for n in range(3)]
        assert pbx.requests[0].headers["authorization"] == "Bearer t0k"
        assert pbx.requests[0].headers["user-agent"] == "3cx-gateway/test"
        assert seen == answers and answers[0].headers["Date"] == "Mon, 30 Nov 2026 08:00:00 GMT"
        assert answers[0].url.endswith("/participants/0") and answers[0].elapsed.total_seconds() > 0
    finally:
        pbx.stop()


def test_a_connection_the_pbx_closed_is_replaced_without_an_error():
    pbx = _pbx(close_after_answer=True)
    try:
        lean = LeanGets.for_pbx(requests.Session(), pbx.url)
        for n in range(3):
            assert lean.get(f"{pbx.url}/callcontrol/101/participants/{n}", {}, 5).json() == PARTICIPANT

        assert pbx.connections == 3 and len(pbx.requests) == 3
    finally:
        pbx.stop()


def test_a_pbx_that_refuses_the_connection_raises_connection_error():
    with socket.socket() as probe:              # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{probe.getsockname()[1]}"
    with pytest.raises(requests.ConnectionError):
        LeanGets.for_pbx(requests.Session(), url).get(f"{url}/callcontrol", {}, 2)


def test_a_proxy_for_the_pbx_keeps_the_general_client(monkeypatch):
    monkeypatch.setenv("HTTPS_PROXY", "http://127.0.0.1:9")
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)

    assert LeanGets.for_pbx(requests.Session(), "https://pbx.example:5001") is None
    monkeypatch.setenv("NO_PROXY", "pbx.example")
    assert LeanGets.for_pbx(requests.Session(), "https://pbx.example:5001") is not None



def test_tls_follows_the_sessions_verify_setting(certificate):
    pbx = _pbx(tls=certificate)
    try:
        url = f"{pbx.url}/callcontrol/101/participants/7"
        with pytest.raises(requests.exceptions.SSLError):
            LeanGets.for_pbx(requests.Session(), pbx.url).get(url, {}, 5)      # not in the default bundle
        trusting = requests.Session()
        trusting.verify = certificate[0]
        assert LeanGets.for_pbx(trusting, pbx.url).get(url, {}, 5).json() == PARTICIPANT
        unchecked = requests.Session()
        unchecked.verify = False
        assert LeanGets.for_pbx(unchecked, pbx.url).get(url, {}, 5).json() == PARTICIPANT
    finally:
        pbx.stop()
