"""Delivery against a real local receiver: request shapes, signing, retries, order, threads."""
from __future__ import annotations

import hashlib
import hmac
import json
import logging
import socket
from collections import defaultdict

import pytest

import gateway
from gateway.clock import Clock
from gateway.webhooks.delivery import Delivery
from gateway.webhooks.outbox import Outbox, OutboxCounts
from gateway.webhooks.policy import BACKOFF_CAP_S, CLIENT_ERROR_ATTEMPTS
from tests.support.wait import wait_until
from tests.support.webhooks import webhooks_config as webhooks

RINGING = {"event": "ringing", "callerid": "420774852629", "user": "106", "usertype": "other",
           "did": "PragueDID", "id": "211230100614_665-0"}


@pytest.fixture
def outbox(tmp_path, clock):
    """An empty outbox under tmp_path, on the fake clock."""
    return Outbox(tmp_path / "state" / "outbox.sqlite3", clock=clock)


def no_jitter() -> float:
    return 0.0


def deliver_all(delivery: Delivery, clock, outbox: Outbox, rounds: int = 50) -> None:
    """Run due events, moving the fake clock past each retry, until nothing is pending."""
    for _ in range(rounds):
        delivery.run_due()
        next_at = outbox.next_due_at()
        if next_at is None:
            return
        clock.advance(max(next_at - clock.time(), 0))
    raise AssertionError(f"still pending after {rounds} rounds: {outbox.tally()}")


def test_get_appends_params_as_query_keeping_the_urls_own_query(receiver, outbox, clock):
    delivery = Delivery(outbox, webhooks(url=receiver.url + "?crm=acme&token=t0k"), clock=clock)
    event_id = outbox.add("call-1", RINGING)

    sent = delivery.run_due()

    [got] = receiver.wait_for(1)
    assert sent == 1
    assert got.method == "GET" and got.path == "/hook"
    assert got.raw_query == ("crm=acme&token=t0k&event=ringing&callerid=420774852629&user=106"
                             "&usertype=other&did=PragueDID&id=211230100614_665-0")
    assert got.params == {"crm": "acme", "token": "t0k", **RINGING}
    assert got.headers["User-Agent"] == f"3cx-gateway/{gateway.__version__}"
    assert got.headers["X-Webhook-Id"] == event_id
    assert "X-Webhook-Signature" not in got.headers
    assert outbox.tally() == OutboxCounts(pending=0, failed=0, delivered=1)


def test_get_encodes_special_characters(receiver, outbox, clock):
    delivery = Delivery(outbox, webhooks(url=receiver.url), clock=clock)
    outbox.add("call-1", {"title": "Příchozí & hotovo = 100%", "transfer": False})

    delivery.run_due()

    [got] = receiver.wait_for(1)
    assert got.params == {"title": "Příchozí & hotovo = 100%", "transfer": "false"}


def test_post_sends_the_same_fields_as_json(receiver, outbox, clock):
    delivery = Delivery(outbox, webhooks(url=receiver.url + "?crm=acme", method="POST"), clock=clock)
    event_id = outbox.add("call-1", RINGING)

    delivery.run_due()

    [got] = receiver.wait_for(1)
    assert got.method == "POST" and got.raw_query == "crm=acme"
    assert got.headers["Content-Type"] == "application/json"
    assert got.json == RINGING and list(got.json) == list(RINGING)
    assert got.headers["X-Webhook-Id"] == event_id


def test_event_method_post_forces_json_under_a_get_config(receiver, outbox, clock):
    delivery = Delivery(outbox, webhooks(url=receiver.url), clock=clock)
    files = {"FILES": ["http://gw.test:8080/webapi/recording/211230102738_669-1-1.mp3"],
             "id": "211230102738_669-1"}
    outbox.add("call-1", files, method="POST")

    delivery.run_due()

    [got] = receiver.wait_for(1)
    assert got.method == "POST" and got.raw_query == ""
    assert got.body == json.dumps(files, separators=(",", ":")).encode()


def test_get_signature_is_hmac_of_the_query_string_as_received(receiver, outbox, clock):
    delivery = Delivery(outbox, webhooks(url=receiver.url + "?a=1", secret="sh4red"), clock=clock)
    outbox.add("call-1", {**RINGING, "title": "Žádost č. 5"})

    delivery.run_due()

    [got] = receiver.wait_for(1)
    expected = hmac.new(b"sh4red", got.raw_query.encode("utf-8"), hashlib.sha256).hexdigest()
    assert got.headers["X-Webhook-Signature"] == f"sha256={expected}"


def test_post_signature_is_hmac_of_the_body_as_received(receiver, outbox, clock):
    delivery = Delivery(outbox, webhooks(url=receiver.url, method="POST", secret="sh4red"),
                        clock=clock)
    outbox.add("call-1", RINGING)

    delivery.run_due()

    [got] = receiver.wait_for(1)
    expected = hmac.new(b"sh4red", got.body, hashlib.sha256).hexdigest()
    assert got.headers["X-Webhook-Signature"] == f"sha256={expected}"


def test_receiver_down_then_up_delivers_everything_in_call_order(receiver, outbox, clock):
    delivery = Delivery(outbox, webhooks(url=receiver.url), clock=clock, rand=no_jitter)
    ids = {key: [outbox.add(key, {"call": key, "n": str(n)}) for n in range(3)]
           for key in ("call-a", "call-b")}
    receiver.status = 503
    for _ in range(4):
        delivery.run_due()
        clock.advance(BACKOFF_CAP_S * 2)

    pending_while_down = outbox.tally()
    receiver.status = 200
    deliver_all(delivery, clock, outbox)

    assert pending_while_down == OutboxCounts(pending=6, failed=0, delivered=0)
    assert receiver.refused == 8  # only the head of each call was tried, four times each
    got = receiver.wait_for(6)
    for key, key_ids in ids.items():
        assert [r.headers["X-Webhook-Id"] for r in got if r.params["call"] == key] == key_ids
    assert outbox.tally() == OutboxCounts(pending=0, failed=0, delivered=6)


def test_retry_waits_for_the_backoff(receiver, outbox, clock):
    delivery = Delivery(outbox, webhooks(url=receiver.url), clock=clock, rand=no_jitter)
    event_id = outbox.add("call-1", RINGING)
    receiver.status = 500
    delivery.run_due()
    receiver.status = 200

    too_early = delivery.run_due()
    clock.advance(2)
    on_time = delivery.run_due()

    assert (too_early, on_time) == (0, 1)
    assert outbox.get(event_id).state == "delivered" and outbox.get(event_id).attempts == 2


def test_client_error_fails_after_a_few_tries_then_requeue_delivers(receiver, outbox, clock):
    delivery = Delivery(outbox, webhooks(url=receiver.url), clock=clock, rand=no_jitter)
    first = outbox.add("call-1", {"n": "0"})
    second = outbox.add("call-1", {"n": "1"})
    receiver.status = 404
    for _ in range(CLIENT_ERROR_ATTEMPTS):
        delivery.run_due()
        clock.advance(BACKOFF_CAP_S * 2)

    counts_after_404s = outbox.tally()
    [failed] = outbox.failed()
    receiver.status = 200
    delivery.run_due()
    requeued = outbox.requeue()
    delivery.run_due()

    assert counts_after_404s == OutboxCounts(pending=1, failed=1, delivered=0)
    assert (failed["id"], failed["attempts"], failed["last_error"]) == \
        (first, CLIENT_ERROR_ATTEMPTS, "HTTP 404")
    assert requeued == 1
    assert [r.headers["X-Webhook-Id"] for r in receiver.wait_for(2)] == [second, first]
    assert outbox.tally() == OutboxCounts(pending=0, failed=0, delivered=2)


def test_retrying_stops_after_retry_hours(receiver, outbox, clock):
    delivery = Delivery(outbox, webhooks(url=receiver.url, retry_hours="1"), clock=clock)
    event_id = outbox.add("call-1", RINGING)
    receiver.status = 503

    for _ in range(40):
        delivery.run_due()
        clock.advance(BACKOFF_CAP_S * 2)

    event = outbox.get(event_id)
    assert event.state == "failed" and event.last_error == "HTTP 503"
    assert 3600 <= (event.attempts - 1) * BACKOFF_CAP_S * 2 <= 3600 + BACKOFF_CAP_S * 2


def test_connection_refused_stays_pending_without_leaking_the_query(outbox, clock, caplog):
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    delivery = Delivery(outbox, webhooks(url=f"http://127.0.0.1:{port}/hook?apikey=Q-S3CRET"),
                        clock=clock)
    event_id = outbox.add("call-1", RINGING)

    with caplog.at_level(logging.DEBUG, logger="gateway.webhooks"):
        delivery.run_due()

    event = outbox.get(event_id)
    assert event.state == "pending" and event.attempts == 1
    assert event.last_error.startswith("ConnectionError")
    assert "Q-S3CRET" not in event.last_error and "Q-S3CRET" not in caplog.text
    assert "PragueDID" not in event.last_error
    assert event_id in caplog.text and f"http://127.0.0.1:{port}/hook" in caplog.text


def test_logs_name_event_and_call_but_never_secret_or_credentials(receiver, outbox, clock, caplog):
    url = receiver.url.replace("http://", "http://user:pa55w0rd@") + "?apikey=Q-S3CRET"
    delivery = Delivery(outbox, webhooks(url=url, secret="sh4red-S3CRET"), clock=clock)
    event_id = outbox.add("call-7", RINGING)

    with caplog.at_level(logging.DEBUG, logger="gateway"):
        delivery.run_due()

    assert receiver.wait_for(1)[0].headers["Authorization"].startswith("Basic ")
    line = next(r.getMessage() for r in caplog.records if event_id in r.getMessage())
    assert "call-7" in line and receiver.url in line and "delivered" in line
    for secret in ("S3CRET", "pa55w0rd"):
        assert secret not in caplog.text


def test_threads_deliver_promptly_in_call_order_across_calls(receiver, outbox):
    clock = Clock()
    outbox = Outbox(outbox.path, clock=clock)
    delivery = Delivery(outbox, webhooks(url=receiver.url), clock=clock)
    delivery.start()
    try:
        ids = defaultdict(list)
        for n in range(10):
            for key in ("call-a", "call-b", "call-c", "call-d", "call-e"):
                ids[key].append(outbox.add(key, {"call": key, "n": str(n)}))

        got = receiver.wait_for(50)
    finally:
        delivery.stop(timeout_s=5)

    assert not delivery.is_running
    for key, key_ids in ids.items():
        assert [r.headers["X-Webhook-Id"] for r in got if r.params["call"] == key] == key_ids
    wait_until(lambda: outbox.tally().delivered == 50)


def test_threads_retry_after_the_receiver_recovers(receiver, outbox, clock):
    delivery = Delivery(outbox, webhooks(url=receiver.url), clock=clock, rand=no_jitter)
    receiver.status = 503
    delivery.start()
    try:
        event_id = outbox.add("call-1", RINGING)
        wait_until(lambda: receiver.refused >= 1)
        wait_until(lambda: outbox.get(event_id).attempts == 1)

        receiver.status = 200
        clock.advance(2)
        delivery.wake()
        got = receiver.wait_for(1)
    finally:
        delivery.stop(timeout_s=5)

    assert got[0].headers["X-Webhook-Id"] == event_id
    assert not delivery.is_running


def test_empty_url_turns_delivery_off(outbox, clock):
    delivery = Delivery(outbox, webhooks(url=""), clock=clock)

    delivery.start()

    assert not delivery.is_enabled and not delivery.is_running
    assert delivery.run_due() == 0
    delivery.stop(timeout_s=1)


def test_a_crm_back_after_an_outage_gets_the_whole_backlog_in_order_each_event_once(receiver, outbox, clock):
    firsts = []
    with outbox.transaction() as writer:
        for k in range(400):
            firsts.append(writer.add(f"call-{k}", {"call": str(k), "n": "0"}))
            writer.add(f"call-{k}", {"call": str(k), "n": "1"})
    for event_id in firsts:                      # every call's first event failed while the CRM was down
        outbox.mark_retry(event_id, "HTTP 503", clock.time() + 300)
    delivery = Delivery(outbox, webhooks(url=receiver.url), clock=clock)
    delivery.start()
    try:
        wait_until(lambda: delivery.status().in_flight == 0, timeout_s=5)
        assert receiver.received == []           # 800 pending, none due
        clock.advance(300)
        delivery.wake()

        arrived = receiver.wait_for(800, timeout_s=60)
    finally:
        delivery.stop(5)

    by_call = defaultdict(list)
    for hook in arrived:
        by_call[hook.params["call"]].append(hook.params["n"])
    assert len(by_call) == 400 and all(ns == ["0", "1"] for ns in by_call.values())
    assert len({hook.headers["X-Webhook-Id"] for hook in arrived}) == 800
    assert outbox.tally() == OutboxCounts(delivered=800)
