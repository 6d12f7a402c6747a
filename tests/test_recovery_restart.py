"""`3cx-gateway run` stopped (SIGTERM) or killed (SIGKILL) while calls happen: after the restart the
calls it missed are reported once from the call history, and the calls it had reported are not
sent again. The real service runs in a child process, as production runs it."""
from __future__ import annotations

import os
import signal

import pytest
import requests

from gateway.sim.scenarios import inbound
from tests.support.wait import wait_until
from tests.support.service import free_port, start, write_config

CALLER = "+420774852529"
OTHER = "+420601000222"


def _observing(base: str) -> bool:
    try:
        return bool(requests.get(f"{base}/healthz", timeout=2).json()["recovery"]["observed_until"])
    except (requests.RequestException, ValueError, KeyError):
        return False


def _delivered(base: str) -> bool:
    """Every webhook is marked delivered (else a kill re-sends it: delivery is at least once)."""
    try:
        return requests.get(f"{base}/healthz", timeout=2).json()["outbox"].get("pending") == 0
    except (requests.RequestException, ValueError, KeyError):
        return False


def _stop(child, how: str) -> None:
    if how == "SIGKILL":
        os.killpg(child.pid, signal.SIGKILL)     # master and worker, no chance to clean up
    else:
        child.send_signal(signal.SIGTERM)
    child.communicate(timeout=30)


@pytest.mark.parametrize("how", ["SIGTERM", "SIGKILL"])
def test_calls_while_the_service_is_down_are_recovered_after_restart(sim, receiver, tmp_path, how):
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    config_path = write_config(tmp_path, sim, receiver, port)
    first = start(config_path, start_new_session=True)
    try:
        wait_until(lambda: _observing(base), timeout_s=30, interval_s=0.2)
        sim.play(inbound(CALLER).to_extension("102").rings(5).answered_by("102").talk(20).caller_hangs_up())
        before = [h.params for h in receiver.wait_for(4, timeout_s=20)]   # ringing, start, end, FILES
        wait_until(lambda: _delivered(base), timeout_s=10)
    finally:
        _stop(first, how)

    sim.play(inbound(CALLER).to_extension("101").answered_by("101").talk(10).caller_hangs_up())
    sim.play(inbound(OTHER).to_queue("800", rings=["103"]).rings(5).caller_abandons())

    second = start(config_path)
    try:
        receiver.wait_for(8, timeout_s=40)
        wait_until(lambda: _observing(base), timeout_s=10)
        report = requests.get(f"{base}/healthz", timeout=5).json()
    finally:
        second.send_signal(signal.SIGTERM)
        second.communicate(timeout=30)

    after = [h.params for h in receiver.received[4:]]
    assert [p.get("event", "FILES") for p in before] == ["ringing", "hangupincoming", "incoming", "FILES"]
    assert sorted(p.get("event", "FILES") for p in after) == ["FILES", "hangupincoming", "incoming", "incoming"]
    answered = [p for p in after if p.get("user") == "101" or "FILES" in p]
    assert len(answered) == 3 and len({p["id"] for p in answered}) == 1
    [missed] = [p for p in after if p.get("user") == "800"]
    assert (missed["finishtype"], missed["callerid"]) == ("Missed", OTHER)
    assert all("recovered from call history" in p["title"] for p in after if "title" in p)
    assert report["recovery"]["recovered_calls"] == 2 and not report["recovery"]["uncovered"]
