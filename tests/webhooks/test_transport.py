"""How webhook requests reach the CRM: kept connections, a CRM closing them, a proxy from the
environment, HTTPS checked against the configured CA bundle. Real sockets on loopback throughout."""
from __future__ import annotations


import pytest

from gateway.webhooks.delivery import Delivery
from gateway.webhooks.outbox import Outbox
from tests.support.rawhttp import RawHttpServer
from tests.support.wait import wait_until
from tests.support.webhooks import webhooks_config

RINGING = {"event": "ringing", "callerid": "+420777000111", "user": "101"}


@pytest.fixture
def outbox(tmp_path, clock):
    return Outbox(tmp_path / "outbox.sqlite3", clock=clock)


@pytest.fixture
def crm():
    server = RawHttpServer()
    yield server
    server.stop()


def test_webhooks_to_one_crm_share_one_kept_connection(crm, outbox, clock):
    ids = [outbox.add(f"call-{n}", {**RINGING, "n": str(n)}) for n in range(5)]

    assert Delivery(outbox, webhooks_config(url=crm.url + "/hook"), clock=clock).run_due() == 5

    assert [r.line.split("n=")[1].split(" ")[0] for r in crm.requests] == ["0", "1", "2", "3", "4"]
    assert crm.connections == 1
    assert all(outbox.get(event_id).state == "delivered" for event_id in ids)


def test_a_connection_the_crm_closed_is_replaced_and_each_webhook_is_sent_once(outbox, clock):
    crm = RawHttpServer(close_after_answer=True)      # every kept connection is dead when next used
    try:
        ids = [outbox.add(f"call-{n}", {**RINGING, "n": str(n)}) for n in range(3)]

        assert Delivery(outbox, webhooks_config(url=crm.url + "/hook"), clock=clock).run_due() == 3

        assert len(crm.requests) == 3 and crm.connections == 3
        for event_id in ids:
            event = outbox.get(event_id)
            assert (event.state, event.attempts, event.last_error) == ("delivered", 1, None)
    finally:
        crm.stop()


def test_the_request_carries_what_requests_would_send(crm, outbox, clock):
    url = crm.url.replace("http://", "http://crm-user:p%40ss@") + "/hook?tenant=7"
    event_id = outbox.add("call-1", RINGING, method="POST")

    Delivery(outbox, webhooks_config(url=url, secret="sh4red"), clock=clock).run_due()

    [request] = crm.requests
    assert request.line == "POST /hook?tenant=7 HTTP/1.1"
    assert request.headers["host"] == f"127.0.0.1:{crm.port}"
    assert request.headers["authorization"] == "Basic Y3JtLXVzZXI6cEBzcw=="     # crm-user:p@ss
    assert (request.headers["accept-encoding"], request.headers["accept"]) == ("gzip, deflate", "*/*")
    assert request.headers["content-type"] == "application/json"
    assert request.headers["x-webhook-id"] == event_id and request.headers["x-webhook-signature"]
    assert request.body == b'{"event":"ringing","callerid":"+420777000111","user":"101"}'


def test_a_proxy_named_by_the_environment_carries_the_webhooks(outbox, clock, monkeypatch):
    proxy = RawHttpServer()
    try:
        monkeypatch.setenv("HTTP_PROXY", proxy.url)
        monkeypatch.delenv("NO_PROXY", raising=False)
        monkeypatch.delenv("no_proxy", raising=False)
        outbox.add("call-1", RINGING)

        Delivery(outbox, webhooks_config(url="http://crm.example/hook"), clock=clock).run_due()

        [request] = proxy.requests
        assert request.line.startswith("GET http://crm.example/hook?event=ringing&")
    finally:
        proxy.stop()



def test_https_is_checked_against_the_ca_bundle_of_the_environment(outbox, clock, certificate, monkeypatch):
    crm = RawHttpServer(tls=certificate)
    try:
        for name in ("REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE"):
            monkeypatch.delenv(name, raising=False)
        untrusted = outbox.add("call-1", RINGING)
        Delivery(outbox, webhooks_config(url=crm.url + "/hook"), clock=clock).run_due()
        event = outbox.get(untrusted)
        assert event.state == "pending" and event.last_error.startswith("ConnectionError")
        assert crm.requests == []

        monkeypatch.setenv("REQUESTS_CA_BUNDLE", certificate[0])
        clock.advance(3600)
        Delivery(outbox, webhooks_config(url=crm.url + "/hook"), clock=clock).run_due()

        assert outbox.get(untrusted).state == "delivered"
        assert [r.line.split("?")[0] for r in crm.requests] == ["GET /hook"]
    finally:
        crm.stop()


def test_stopping_finishes_the_requests_under_way_and_leaves_the_queued_ones_pending(outbox, clock):
    crm = RawHttpServer(delay_s=0.5)
    try:
        ids = [outbox.add(f"call-{n}", {**RINGING, "n": str(n)}) for n in range(40)]
        delivery = Delivery(outbox, webhooks_config(url=crm.url + "/hook"), clock=clock, senders=2)
        delivery.start()
        wait_until(lambda: len(crm.requests) >= 2, timeout_s=5)

        delivery.stop(10)

        sent = [r.headers["x-webhook-id"] for r in crm.requests]
        assert 2 <= len(sent) <= 4                    # two senders; eight were handed out to them
        assert [outbox.get(event_id).state for event_id in ids].count("delivered") == len(sent)
        crm.delay_s = 0.0
        assert Delivery(outbox, webhooks_config(url=crm.url + "/hook"), clock=clock).run_due() == 40 - len(sent)
        assert sorted(r.headers["x-webhook-id"] for r in crm.requests) == sorted(ids)    # each once
    finally:
        crm.stop()
