"""EventStream against the simulator's WebSocket: delivery, requests, reconnects, token refresh, stop."""
from __future__ import annotations

import logging
import threading

import pytest

from gateway.pbx.callcontrol import CallControlClient
from gateway.pbx.errors import PbxUnreachable
from gateway.pbx.stream import EventStream
from tests.support.wait import wait_until


class Recorder:
    """The three stream handlers, recording what they were called with, in order."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.log: list[tuple] = []

    def on_message(self, message: dict) -> None:
        with self._lock:
            self.log.append(("message", message))

    def on_connect(self) -> None:
        with self._lock:
            self.log.append(("connect",))

    def on_disconnect(self, reason: str) -> None:
        with self._lock:
            self.log.append(("disconnect", reason))

    def count(self, kind: str) -> int:
        with self._lock:
            return sum(1 for entry in self.log if entry[0] == kind)

    def entities_since_connect(self, number: int) -> list[str]:
        """Entities of the messages delivered after the `number`-th on_connect (1-based)."""
        with self._lock:
            seen, entities = 0, []
            for entry in self.log:
                if entry[0] == "connect":
                    seen += 1
                elif entry[0] == "message" and seen == number:
                    entities.append(entry[1]["event"]["entity"])
            return entities


class Pbx:
    """Clients of one simulated PBX sharing one token: tokens, callcontrol and a (not started) stream."""

    def __init__(self, sim, session, tokens) -> None:
        self.tokens = tokens
        self.callcontrol = CallControlClient(session, sim.url, self.tokens, timeout_s=5)
        self.stream = EventStream(sim.url, self.tokens, verify_tls=False, ping_interval_s=0.5,
                                  min_backoff_s=0.05, max_backoff_s=0.2)
        self.recorder = Recorder()
        self.stream.set_handlers(self.recorder.on_message, self.recorder.on_connect, self.recorder.on_disconnect)


@pytest.fixture
def pbx(sim, session, tokens):
    """Token, Call Control client and event stream against the simulator; the stream is stopped after."""
    clients = Pbx(sim, session, tokens)
    yield clients
    clients.stream.stop(timeout_s=5)


def start_connected(pbx) -> None:
    pbx.stream.start()
    wait_until(lambda: pbx.stream.is_connected)


def call_103_to_104(pbx) -> None:
    """Make 103 call 104 through Call Control, so both DNs produce events."""
    pbx.callcontrol.makecall("103", "104")


def test_events_are_delivered_after_on_connect(pbx):
    start_connected(pbx)

    call_103_to_104(pbx)

    entities = wait_until(lambda: pbx.recorder.entities_since_connect(1))
    assert pbx.recorder.log[0] == ("connect",)
    assert entities[0].startswith("/callcontrol/10")
    assert pbx.stream.connects == 1
    assert pbx.stream.last_message_at is not None


def test_request_over_the_socket_gets_its_answer_and_is_not_delivered(pbx):
    start_connected(pbx)

    answer = pbx.stream.request("/callcontrol/101")

    assert answer["StatusCode"] == 200
    assert answer["Path"] == "/callcontrol/101"
    assert pbx.recorder.count("message") == 0


def test_request_when_not_connected_raises_unreachable(pbx):
    with pytest.raises(PbxUnreachable, match="not connected"):
        pbx.stream.request("/callcontrol/101")


def test_dropped_socket_reconnects_and_delivers_again(sim, pbx):
    start_connected(pbx)

    sim.faults.drop_websockets()
    wait_until(lambda: pbx.recorder.count("disconnect") == 1 and pbx.recorder.count("connect") == 2)
    wait_until(lambda: pbx.stream.is_connected)
    call_103_to_104(pbx)

    assert wait_until(lambda: pbx.recorder.entities_since_connect(2))
    assert pbx.stream.connects == 2
    kinds = [entry[0] for entry in pbx.recorder.log]
    assert kinds[:3] == ["connect", "disconnect", "connect"]


def test_refused_upgrades_are_retried_until_accepted(sim, pbx):
    sim.faults.refuse_websockets(True)
    pbx.stream.start()
    wait_until(lambda: sum(1 for request in sim.requests if request.path == "/callcontrol/ws") >= 2)

    sim.faults.refuse_websockets(False)

    wait_until(lambda: pbx.stream.is_connected)
    assert pbx.recorder.count("connect") == 1


def test_token_refresh_reconnects_the_stream(sim, pbx):
    start_connected(pbx)

    pbx.tokens.refresh()

    wait_until(lambda: pbx.stream.connects == 2 and pbx.stream.is_connected)
    # Either the PBX closes the socket of the replaced token first, or the stream does.
    assert pbx.recorder.log[1][0] == "disconnect"
    assert pbx.recorder.log[2] == ("connect",)
    assert pbx.stream.request("/callcontrol/101")["StatusCode"] == 200


def _slow_backoff_stream(sim, pbx, **options) -> EventStream:
    """A stream whose backoff (30 s) would outlast the test: it reconnects only when told to at once."""
    stream = EventStream(sim.url, pbx.tokens, verify_tls=False, min_backoff_s=30.0, max_backoff_s=30.0,
                         **options)
    stream.set_handlers(pbx.recorder.on_message, pbx.recorder.on_connect, pbx.recorder.on_disconnect)
    return stream


def test_socket_closed_after_a_token_refresh_reconnects_without_backoff(sim, pbx):
    stream = _slow_backoff_stream(sim, pbx)
    stream.start()
    try:
        wait_until(lambda: stream.is_connected)

        pbx.tokens.refresh()

        wait_until(lambda: stream.connects == 2 and stream.is_connected, timeout_s=10)
    finally:
        stream.stop(timeout_s=5)


def test_token_obtained_after_a_refusal_ends_the_backoff_at_once(sim, pbx):
    stream = _slow_backoff_stream(sim, pbx)
    sim.faults.refuse_tokens(True)
    stream.start()
    try:
        wait_until(lambda: pbx.tokens.status().last_error is not None)   # refused: waiting 30 s

        sim.faults.refuse_tokens(False)
        pbx.tokens.token()          # another thread (a WebAPI request) gets a token: the PBX is back

        wait_until(lambda: stream.is_connected, timeout_s=5)
    finally:
        stream.stop(timeout_s=5)


def test_stop_ends_a_backoff_wait_at_once(sim, pbx):
    stream = _slow_backoff_stream(sim, pbx)
    sim.faults.refuse_tokens(True)
    stream.start()
    wait_until(lambda: pbx.tokens.status().last_error is not None)

    stream.stop(timeout_s=5)

    assert not stream._thread.is_alive()


def test_long_lived_socket_dropped_by_the_pbx_reconnects_without_backoff(sim, pbx):
    stream = _slow_backoff_stream(sim, pbx, healthy_after_s=0.0)
    stream.start()
    try:
        wait_until(lambda: stream.is_connected)

        sim.faults.drop_websockets()

        wait_until(lambda: stream.connects == 2 and stream.is_connected, timeout_s=10)
    finally:
        stream.stop(timeout_s=5)


def test_expired_token_on_upgrade_is_refreshed(sim, pbx):
    start_connected(pbx)
    sim.faults.expire_tokens()

    pbx.stream.close_current()

    wait_until(lambda: pbx.stream.connects == 2 and pbx.stream.is_connected)
    assert sum(1 for request in sim.requests if request.path == "/connect/token") == 2


def test_handler_failure_does_not_stop_delivery(pbx):
    delivered: list[dict] = []

    def flaky(message: dict) -> None:
        delivered.append(message)
        if len(delivered) == 1:
            raise RuntimeError("handler bug")

    pbx.stream.set_handlers(flaky, lambda: None, lambda reason: None)
    start_connected(pbx)
    call_103_to_104(pbx)

    wait_until(lambda: len(delivered) >= 2)
    assert pbx.stream.connects == 1


def test_stop_ends_the_thread_promptly(pbx):
    start_connected(pbx)
    readers = [thread for thread in threading.enumerate() if thread.name == "events"]

    pbx.stream.stop(timeout_s=5)

    assert readers and not any(thread.is_alive() for thread in readers)
    assert pbx.stream.is_connected is False
    assert pbx.recorder.log[-1] == ("disconnect", "stopping")


def test_stop_while_the_pbx_refuses_ends_the_thread(sim, pbx):
    sim.faults.refuse_websockets(True)
    pbx.stream.start()
    wait_until(lambda: any(request.path == "/callcontrol/ws" for request in sim.requests))

    pbx.stream.stop(timeout_s=5)

    assert pbx.recorder.count("connect") == 0


def test_logs_name_connects_and_disconnects_but_not_the_token(sim, pbx, caplog):
    caplog.set_level(logging.DEBUG, logger="gateway.pbx")
    start_connected(pbx)

    sim.faults.drop_websockets()
    wait_until(lambda: pbx.stream.connects == 2 and pbx.stream.is_connected)

    assert "event stream connected" in caplog.text
    assert "event stream disconnected" in caplog.text
    assert pbx.tokens.token() not in caplog.text


def test_events_during_on_connect_are_delivered_after_it_returns(pbx):
    during: list[int] = []

    def resync() -> None:
        pbx.recorder.on_connect()
        call_103_to_104(pbx)
        wait_until(lambda: pbx.callcontrol.participants("104"))
        during.append(pbx.recorder.count("message"))

    pbx.stream.set_handlers(pbx.recorder.on_message, resync, pbx.recorder.on_disconnect)
    pbx.stream.start()

    wait_until(lambda: pbx.recorder.count("message") >= 2)
    assert during == [0]
    assert pbx.recorder.log[0] == ("connect",)


def test_on_tick_runs_in_the_events_thread_while_connected(sim, pbx):
    ticks: list[tuple[str, bool]] = []
    pbx.stream.set_handlers(pbx.recorder.on_message, pbx.recorder.on_connect, pbx.recorder.on_disconnect,
                            on_tick=lambda: ticks.append((threading.current_thread().name, pbx.stream.is_connected)))
    start_connected(pbx)
    wait_until(lambda: len(ticks) >= 2, timeout_s=5)

    sim.faults.drop_websockets()
    wait_until(lambda: pbx.stream.connects == 2 and pbx.stream.is_connected, timeout_s=5)
    count = len(ticks)

    wait_until(lambda: len(ticks) >= count + 2, timeout_s=5)
    assert set(ticks) == {("events", True)}
