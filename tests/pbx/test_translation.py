"""Error translation: v20 error bodies and transport failures become the most specific PbxError."""
from __future__ import annotations

import json
import socket

import pytest
import requests

from gateway.pbx.errors import PbxAuthFailed, PbxNotFound, PbxRejected, PbxUnreachable
from gateway.pbx.stream import MAX_BACKOFF_S, MIN_BACKOFF_S, backoff_delay_s, ws_url
from gateway.pbx.http import error_for, message_from_body, new_session, pbx_message, translated

XAPI_ERROR = {"error": {"code": "", "message": "Validation failed",
                        "details": [{"code": "", "target": "Number", "message": "WARNINGS.XAPI.ALREADY_IN_USE"}]}}


def response(status: int, body: object = None, *, content_type: str = "application/json",
             reason: str = "") -> requests.Response:
    """A received-looking requests.Response with that status and body."""
    answer = requests.Response()
    answer.status_code = status
    answer.reason = reason
    if body is not None:
        answer._content = body if isinstance(body, bytes) else json.dumps(body).encode()
        answer.headers["Content-Type"] = content_type
    else:
        answer._content = b""
    return answer


@pytest.mark.parametrize("body, expected", [
    (XAPI_ERROR, "Validation failed; Number: WARNINGS.XAPI.ALREADY_IN_USE"),
    ({"error": {"message": "", "details": [{"message": "WARNINGS.XAPI.NOT_FOUND"}]}}, "WARNINGS.XAPI.NOT_FOUND"),
    ({"error": {"message": "Forbidden"}}, "Forbidden"),
    ({"error": "invalid_client", "error_description": "Client authentication failed"}, "Client authentication failed"),
    ({"error": "unauthorized"}, "unauthorized"),
    ({"finalstatus": "Failed", "reasontext": "Not ringing", "reason": "InvalidState"}, "Not ringing"),
    ({"title": "Unsupported Media Type", "status": 415}, "Unsupported Media Type"),
    ({"something": "else"}, ""),
    ("plain words", "plain words"),
    ([1, 2], ""),
], ids=["xapi message with details", "xapi details only", "xapi message only", "token error description",
        "token error code only", "call control reasontext", "problem details title", "unknown object",
        "json string", "json list"])
def test_message_from_body_finds_the_pbx_explanation(body, expected):
    assert message_from_body(body) == expected


@pytest.mark.parametrize("answer, expected", [
    (response(400, XAPI_ERROR), "Validation failed; Number: WARNINGS.XAPI.ALREADY_IN_USE"),
    (response(500, b"Internal failure\n", content_type="text/plain"), "Internal failure"),
    (response(502, b"<html><body>Bad gateway</body></html>", content_type="text/html", reason="Bad Gateway"),
     "Bad Gateway"),
    (response(503, reason="Service Unavailable"), "Service Unavailable"),
    (response(503), "HTTP 503"),
    (response(400, b"x" * 1000, content_type="text/plain"), "x" * 299 + "…"),
], ids=["xapi json", "plain text", "html page gives the reason phrase", "empty body gives the reason phrase",
        "nothing gives the status", "long text is shortened"])
def test_pbx_message_of_an_answer(answer, expected):
    assert pbx_message(answer) == expected


@pytest.mark.parametrize("status, error_class", [
    (404, PbxNotFound), (401, PbxAuthFailed), (400, PbxRejected), (403, PbxRejected), (422, PbxRejected),
    (424, PbxRejected), (500, PbxRejected), (503, PbxRejected),
], ids=["404 not found", "401 auth failed", "400 rejected", "403 rejected", "422 rejected",
        "424 rejected", "500 rejected", "503 rejected"])
def test_error_for_picks_the_most_specific_class(status, error_class):
    error = error_for(response(status, XAPI_ERROR), "GET /xapi/v1/Users")

    assert type(error) is error_class
    assert "Validation failed" in str(error)


def test_rejected_keeps_status_and_pbx_message():
    error = error_for(response(400, XAPI_ERROR), "POST /xapi/v1/Users")

    assert (error.status, error.message) == (400, "Validation failed; Number: WARNINGS.XAPI.ALREADY_IN_USE")


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_connection_refused_becomes_unreachable():
    session = new_session(verify_tls=True)

    with pytest.raises(PbxUnreachable, match="GET /xapi/v1/Defs: cannot connect"):
        with translated("GET /xapi/v1/Defs"):
            session.get(f"http://127.0.0.1:{_closed_port()}/xapi/v1/Defs", timeout=2)


def test_silent_server_becomes_unreachable_after_the_timeout():
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(1)
        port = silent.getsockname()[1]
        session = new_session(verify_tls=True)

        with pytest.raises(PbxUnreachable, match="did not answer in time"):
            with translated("GET /callcontrol"):
                session.get(f"http://127.0.0.1:{port}/callcontrol", timeout=0.2)


def test_new_session_pools_connections_and_names_itself():
    session = new_session(verify_tls=False)
    adapter = session.get_adapter("https://pbx.example.com")

    assert session.verify is False
    assert session.headers["User-Agent"].startswith("3cx-gateway/")
    assert adapter._pool_maxsize == 32


@pytest.mark.parametrize("base_url, expected", [
    ("https://pbx.example.com:5001", "wss://pbx.example.com:5001/callcontrol/ws"),
    ("https://pbx.example.com/", "wss://pbx.example.com/callcontrol/ws"),
    ("http://127.0.0.1:8080", "ws://127.0.0.1:8080/callcontrol/ws"),
    ("https://example.com/pbx1/", "wss://example.com/pbx1/callcontrol/ws"),
], ids=["https with port", "trailing slash", "plain http", "path prefix"])
def test_ws_url_follows_the_base_url(base_url, expected):
    assert ws_url(base_url) == expected


@pytest.mark.parametrize("failures, rand, expected", [
    (1, 1.0, 0.5), (1, 0.0, 0.25), (2, 1.0, 1.0), (4, 1.0, 4.0), (10, 1.0, 30.0), (10, 0.0, 15.0),
], ids=["first retry at most min", "first retry at least half min", "doubles", "doubles again",
        "capped", "capped and jittered"])
def test_backoff_doubles_caps_and_jitters(failures, rand, expected):
    assert backoff_delay_s(failures, min_s=0.5, max_s=30.0, rand=lambda: rand) == expected


@pytest.mark.parametrize("failures", [1, 3, 5, 8, 50], ids=lambda f: f"after {f} failures")
def test_default_backoff_stays_within_a_few_seconds_and_is_jittered(failures):
    delays = [backoff_delay_s(failures, min_s=MIN_BACKOFF_S, max_s=MAX_BACKOFF_S, rand=lambda r=r: r)
              for r in (0.0, 0.5, 1.0)]

    assert MAX_BACKOFF_S <= 5.0
    assert all(0 < d <= MAX_BACKOFF_S for d in delays)
    assert delays[0] < delays[2]     # jittered: the same failure count waits different times
