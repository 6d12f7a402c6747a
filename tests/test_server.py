"""`3cx-gateway run` as production runs it: gunicorn in a child process, stopped with SIGTERM."""
from __future__ import annotations

import os
import re
import signal
import time

import pytest
import requests

from gunicorn.workers.gthread import ThreadWorker

from gateway.config import from_dict
from gateway.server import settings
from gateway.sim.scenarios import inbound
from tests.support.service import KEY, free_port, start, write_config
from tests.support.wait import wait_until

def test_settings_run_one_threaded_worker_without_preload(config):
    options = settings(config)

    assert options["workers"] == 1
    assert issubclass(options["worker_class"], ThreadWorker)
    assert options["preload_app"] is False
    assert options["bind"] == config.webapi.listen
    assert options.get("control_socket_disable", True) is True


def test_settings_serve_tls_when_configured(config, tmp_path):
    values = {"pbx": {"url": "https://pbx", "client_id": "900", "client_secret": "s"},
              "webapi": {"key": "k", "tls_cert": "/etc/ssl/gw.pem", "tls_key": "/etc/ssl/gw.key"}}

    options = settings(from_dict(values, environ={}))

    assert options["certfile"] == "/etc/ssl/gw.pem" and options["keyfile"] == "/etc/ssl/gw.key"


def _healthy(base: str) -> bool:
    try:
        return requests.get(f"{base}/healthz", timeout=2).status_code == 200
    except requests.RequestException:
        return False


def test_webhooks_pending_when_the_service_is_killed_are_sent_after_restart(sim, receiver, tmp_path):
    port = free_port()
    config_path = write_config(tmp_path, sim, receiver, port)
    receiver.status = 503                       # the CRM is down: every event stays pending
    first = start(config_path, start_new_session=True)
    try:
        wait_until(lambda: _healthy(f"http://127.0.0.1:{port}"), timeout_s=30, interval_s=0.2)
        sim.play(inbound("+420774852529").to_extension("101").answered_by("101").talk(20).caller_hangs_up())
        wait_until(lambda: receiver.refused >= 3, timeout_s=15)
    finally:
        os.killpg(first.pid, signal.SIGKILL)    # master and worker, no chance to clean up
        first.communicate(timeout=10)

    receiver.status = 200
    second = start(config_path)
    try:
        webhooks = receiver.wait_for(3, timeout_s=30)
    finally:
        second.send_signal(signal.SIGTERM)
        second.communicate(timeout=30)

    assert [w.params["event"] for w in webhooks] == ["ringing", "hangupincoming", "incoming"]
    assert len({w.headers["X-Webhook-Id"] for w in webhooks}) == 3


def test_run_serves_sends_webhooks_and_stops_cleanly_on_sigterm(sim, receiver, tmp_path):
    port = free_port()
    config_path = write_config(tmp_path, sim, receiver, port)
    child = start(config_path)
    base = f"http://127.0.0.1:{port}"
    try:
        wait_until(lambda: _healthy(base), timeout_s=30, interval_s=0.2)
        answer = requests.get(f"{base}/webapi/{KEY}/all.queue.get", timeout=5)
        refused = requests.get(f"{base}/webapi/wrong/all.queue.get", timeout=5)
        # 30 simulated seconds (0.6 s at the tests' time scale): the gateway reads the answered leg
        # before it is gone even on a loaded machine.
        sim.play(inbound("+420774852529").to_extension("101").answered_by("101").talk(30).caller_hangs_up())
        webhooks = receiver.wait_for(3, timeout_s=30)
        metrics = requests.get(f"{base}/metrics", timeout=5).text
    finally:
        child.send_signal(signal.SIGTERM)
        output, _ = child.communicate(timeout=30)

    assert answer.status_code == 200 and answer.json() == {"nums": ["800", "801", "802"]}
    # The worker froze what it made at start (left out of garbage collections) and counts collections.
    frozen = re.search(r"^gateway_gc_frozen_objects (\S+)$", metrics, re.M)
    assert frozen and float(frozen.group(1)) > 10_000
    assert re.search(r'^python_gc_collections_total\{generation="0"\} ', metrics, re.M)
    assert refused.status_code == 401
    assert [w.params["event"] for w in webhooks] == ["ringing", "hangupincoming", "incoming"]
    assert child.returncode == 0
    assert "runtime stopped" in output
    assert KEY not in output and sim.client_secret not in output
    assert "/webapi/***/all.queue.get" in output


def _health(base: str) -> dict:
    return requests.get(f"{base}/healthz", timeout=2).json()


def _is_settled(base: str) -> bool:
    """Nothing left to send and no call in progress, as /healthz reports it."""
    try:
        report = _health(base)
    except requests.RequestException:
        return False
    return report["outbox"]["pending"] == 0 and report["events"]["calls"] == 0 and report["events"]["synced"]


def _duration_s(title: str) -> int:
    hours, minutes, seconds = re.search(r"duration (\d\d):(\d\d):(\d\d)", title).groups()
    return int(hours) * 3600 + int(minutes) * 60 + int(seconds)


@pytest.mark.parametrize("stop", [signal.SIGTERM, signal.SIGKILL], ids=["stopped with SIGTERM", "killed with SIGKILL"])
def test_call_talking_across_a_restart_keeps_its_id_and_ends_once(sim, receiver, tmp_path, stop):
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    config_path = write_config(tmp_path, sim, receiver, port)
    first = start(config_path, start_new_session=True)
    try:
        wait_until(lambda: _healthy(base), timeout_s=30, interval_s=0.2)
        done = sim.play(inbound("+420602111222").to_extension("102").answered_by("102").talk(25).caller_hangs_up())
        talking = sim.play(inbound("+420774852529").to_extension("101").answered_by("101").talk(100_000)
                           .caller_hangs_up(), wait=False)
        receiver.wait_for(6)                    # the first call's 3 events and FILES, the second's ringing and start
        answered_by = time.time()
        wait_until(lambda: _health(base)["outbox"]["delivered"] == 6, timeout_s=10)
        # The call goes on for a while before the service stops, so a duration counted from the
        # restart would be visibly shorter than the real one.
        wait_until(lambda: time.time() - answered_by >= 2, timeout_s=5)
    finally:
        os.killpg(first.pid, stop)
        first.communicate(timeout=30)

    second = start(config_path)
    try:
        wait_until(lambda: _healthy(base), timeout_s=30, interval_s=0.2)
        sim.engine.hang_up(talking.call_id)
        hung_up_at = time.time()
        # The end, then the FILES webhook of a call recorded for minutes of simulated time: its
        # recording is waited for, downloaded and converted by a service that just started.
        receiver.wait_for(8, timeout_s=30)
        wait_until(lambda: _is_settled(base), timeout_s=15)
    finally:
        second.send_signal(signal.SIGTERM)
        second.communicate(timeout=30)

    webhooks = list(receiver.received)
    assert len(webhooks) == 8, [(w.params.get("event"), w.params.get("id")) for w in webhooks]
    assert len({w.headers["X-Webhook-Id"] for w in webhooks}) == 8
    calls: dict[str, list[tuple[str, str]]] = {}
    for webhook in webhooks:
        prefix, link = webhook.params["id"].rsplit("-", 1)
        calls.setdefault(prefix, []).append((webhook.params.get("event", "FILES"), link))
    assert len(calls) == 2
    [ongoing] = [prefix for prefix in calls if prefix.endswith(f"_{talking.call_id}")]
    assert all(events == [("ringing", "0"), ("hangupincoming", "1"), ("incoming", "1"), ("FILES", "1")]
               for events in calls.values())
    [end] = [w.params for w in webhooks if w.params.get("event") == "incoming" and w.params["id"] == f"{ongoing}-1"]
    assert _duration_s(end["title"]) >= int(hung_up_at - answered_by) - 1
    assert done.call_id != talking.call_id
