"""`3cx-gateway run` as production runs it: gunicorn in a child process, stopped with SIGTERM."""
from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys

import requests

from gunicorn.workers.gthread import ThreadWorker

from gateway.config import from_dict
from gateway.server import settings
from gateway.sim.scenarios import inbound
from tests.support.wait import wait_until

KEY = "service-test-key-5f1c0b9e"


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _write_config(tmp_path, sim, receiver, port: int):
    path = tmp_path / "config.ini"
    path.write_text(
        f"[pbx]\nurl = {sim.url}\nclient_id = {sim.client_id}\nclient_secret = {sim.client_secret}\n"
        f"[webapi]\nkey = {KEY}\nlisten = 127.0.0.1:{port}\n"
        f"[webhooks]\nurl = {receiver.url}\n"
        f"[recordings]\nmp3_dir = {tmp_path / 'mp3'}\n"
        f"[storage]\nstate_dir = {tmp_path / 'state'}\n", encoding="utf-8")
    return path


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


def _start(config_path, **options) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "gateway.cli", "run", "--config", str(config_path)],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, **options)


def _healthy(base: str) -> bool:
    try:
        return requests.get(f"{base}/healthz", timeout=2).status_code == 200
    except requests.RequestException:
        return False


def test_webhooks_pending_when_the_service_is_killed_are_sent_after_restart(sim, receiver, tmp_path):
    port = _free_port()
    config_path = _write_config(tmp_path, sim, receiver, port)
    receiver.status = 503                       # the CRM is down: every event stays pending
    first = _start(config_path, start_new_session=True)
    try:
        wait_until(lambda: _healthy(f"http://127.0.0.1:{port}"), timeout_s=30, interval_s=0.2)
        sim.play(inbound("+420774852529").to_extension("101").answered_by("101").talk(1).caller_hangs_up())
        wait_until(lambda: receiver.refused >= 3, timeout_s=15)
    finally:
        os.killpg(first.pid, signal.SIGKILL)    # master and worker, no chance to clean up
        first.communicate(timeout=10)

    receiver.status = 200
    second = _start(config_path)
    try:
        webhooks = receiver.wait_for(3, timeout_s=30)
    finally:
        second.send_signal(signal.SIGTERM)
        second.communicate(timeout=30)

    assert [w.params["event"] for w in webhooks] == ["ringing", "hangupincoming", "incoming"]
    assert len({w.headers["X-Webhook-Id"] for w in webhooks}) == 3


def test_run_serves_sends_webhooks_and_stops_cleanly_on_sigterm(sim, receiver, tmp_path):
    port = _free_port()
    config_path = _write_config(tmp_path, sim, receiver, port)
    child = _start(config_path)
    base = f"http://127.0.0.1:{port}"
    try:
        wait_until(lambda: _healthy(base), timeout_s=30, interval_s=0.2)
        answer = requests.get(f"{base}/webapi/{KEY}/all.queue.get", timeout=5)
        refused = requests.get(f"{base}/webapi/wrong/all.queue.get", timeout=5)
        sim.play(inbound("+420774852529").to_extension("101").answered_by("101").talk(1).caller_hangs_up())
        webhooks = receiver.wait_for(3)
    finally:
        child.send_signal(signal.SIGTERM)
        output, _ = child.communicate(timeout=30)

    assert answer.status_code == 200 and answer.json() == {"nums": ["800", "801", "802"]}
    assert refused.status_code == 401
    assert [w.params["event"] for w in webhooks] == ["ringing", "hangupincoming", "incoming"]
    assert child.returncode == 0
    assert "runtime stopped" in output
    assert KEY not in output and sim.client_secret not in output
    assert "/webapi/***/all.queue.get" in output
