"""The HTTP/1.1 exchange of kept connections (gateway/keepalive.py) against answers framed every way
a server may frame them, over real sockets on loopback: by length, by chunks, to the end of the
connection, after an interim 100, from an HTTP/1.0 server; cut at the size limit; malformed."""
from __future__ import annotations

import http.client

import pytest

from gateway.keepalive import Answer, KeptConnections
from tests.support.rawhttp import RawHttpServer

HEADERS = (("Accept", "*/*"), ("X-Webhook-Id", "abc"))


def _answers(server: RawHttpServer, *max_bodies: int, target: str = "/", headers=()) -> list[Answer]:
    """One GET per entry of `max_bodies` (each read at most that long), in turn on one KeptConnections."""
    connections = KeptConnections(server.url)
    try:
        return [connections.exchange("GET", target, headers, b"", timeout_s=5, max_body=max_body)
                for max_body in max_bodies]
    finally:
        connections.close()


def _exchange(server: RawHttpServer) -> Answer:
    [answer] = _answers(server, 1024, target="/hook?n=1", headers=HEADERS)
    return answer


@pytest.fixture
def served():
    servers: list[RawHttpServer] = []

    def serve(raw: bytes, **options) -> RawHttpServer:
        server = RawHttpServer(raw=raw, **options)
        servers.append(server)
        return server

    yield serve
    for server in servers:
        server.stop()


def test_the_request_is_the_request_line_host_and_the_headers_given(served):
    server = served(b"HTTP/1.1 204 No Content\r\n\r\n")

    answer = _exchange(server)

    [request] = server.requests
    assert request.line == "GET /hook?n=1 HTTP/1.1"
    assert request.headers == {"host": f"127.0.0.1:{server.port}", "accept": "*/*", "x-webhook-id": "abc"}
    assert (answer.status, answer.reason, answer.body) == (204, "No Content", b"")


def test_an_answer_by_length_keeps_the_connection_for_the_next_request(served):
    server = served(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nX-Folded: one\r\n two\r\n\r\nhello")
    answers = _answers(server, 1024, 1024, 1024)

    assert [a.body for a in answers] == [b"hello"] * 3 and server.connections == 1
    assert ("X-Folded", "one two") in answers[0].headers


def test_a_chunked_answer_is_joined_and_its_trailers_read(served):
    server = served(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
                    b"5;ext=1\r\nhello\r\n6\r\n world\r\n0\r\nX-Trailer: t\r\n\r\n")
    first, second = _answers(server, 1024, 1024)

    assert first.body == second.body == b"hello world" and not first.is_cut
    assert server.connections == 1


def test_an_answer_without_length_runs_to_the_end_of_the_connection(served):
    server = served(b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\nall of it", close_after_answer=True)

    answer = _exchange(server)

    assert (answer.status, answer.body, answer.is_cut) == (200, b"all of it", False)


def test_an_interim_100_is_skipped(served):
    server = served(b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 201 Created\r\nContent-Length: 2\r\n\r\nok")

    answer = _exchange(server)

    assert (answer.status, answer.reason, answer.body) == (201, "Created", b"ok")


@pytest.mark.parametrize("raw, framing", [
    (b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n0123456789", "length"),
    (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n6\r\n012345\r\n4\r\n6789\r\n0\r\n\r\n", "chunks"),
    (b"HTTP/1.1 200 OK\r\n\r\n0123456789", "end of connection"),
])
def test_a_body_longer_than_the_limit_is_cut_and_its_connection_closed(served, raw, framing):
    server = served(raw, close_after_answer=framing == "end of connection")
    cut, whole = _answers(server, 8, 1024)

    assert (cut.body, cut.is_cut) == (b"01234567", True)
    assert (whole.body, whole.is_cut) == (b"0123456789", False)
    assert server.connections == 2          # the cut answer's connection was not used again


@pytest.mark.parametrize("connection_header, connections", [(b"", 2), (b"Connection: keep-alive\r\n", 1)])
def test_an_http_1_0_server_keeps_the_connection_only_when_it_says_so(served, connection_header, connections):
    server = served(b"HTTP/1.0 200 OK\r\nContent-Length: 2\r\n" + connection_header + b"\r\nok")
    assert [answer.body for answer in _answers(server, 1024, 1024)] == [b"ok", b"ok"]

    assert server.connections == connections


def test_connection_close_is_honoured(served):
    server = served(b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n\r\nok")
    assert [answer.body for answer in _answers(server, 1024, 1024)] == [b"ok", b"ok"]

    assert server.connections == 2


@pytest.mark.parametrize("raw, error", [
    (b"SMTP ready\r\n\r\n", http.client.BadStatusLine),
    (b"HTTP/1.1 2x0 OK\r\n\r\n", http.client.BadStatusLine),
    (b"HTTP/1.1 200 OK\r\nno colon here\r\n\r\n", http.client.HTTPException),
    (b"HTTP/1.1 200 OK\r\nContent-Length: ten\r\n\r\n", http.client.HTTPException),
    (b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nshort", http.client.IncompleteRead),
    (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", http.client.HTTPException),
])
def test_a_malformed_answer_raises_an_http_error(served, raw, error):
    server = served(raw, close_after_answer=True)

    with pytest.raises(error):
        _exchange(server)


def test_a_header_with_a_line_break_is_refused_before_anything_is_sent(served):
    server = served(b"HTTP/1.1 204 No Content\r\n\r\n")
    kept = KeptConnections(server.url)
    try:
        with pytest.raises(ValueError):
            kept.exchange("GET", "/", (("X-Evil", "a\r\nInjected: 1"),), b"", timeout_s=5, max_body=1024)
    finally:
        kept.close()

    assert server.requests == []
