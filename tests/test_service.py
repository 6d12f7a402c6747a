"""`3cx-gateway run` as production runs it: gunicorn in a child process, stopped with SIGTERM."""
from __future__ import annotations

import signal
import socket
import subprocess
import sys

import requests

from gateway.config import from_dict
from gateway.service import settings
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
    assert options["worker_class"] == "gthread"
    assert options["preload_app"] is False
    assert options["bind"] == config.webapi.listen


def test_settings_serve_tls_when_configured(config, tmp_path):
    values = {"pbx": {"url": "https://pbx", "client_id": "900", "client_secret": "s"},
              "webapi": {"key": "k", "tls_cert": "/etc/ssl/gw.pem", "tls_key": "/etc/ssl/gw.key"}}

    options = settings(from_dict(values, environ={}))

    assert options["certfile"] == "/etc/ssl/gw.pem" and options["keyfile"] == "/etc/ssl/gw.key"


def test_run_serves_sends_webhooks_and_stops_cleanly_on_sigterm(sim, receiver, tmp_path):
    port = _free_port()
    config_path = _write_config(tmp_path, sim, receiver, port)
    child = subprocess.Popen([sys.executable, "-m", "gateway.cli", "run", "--config", str(config_path)],
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    base = f"http://127.0.0.1:{port}"
    try:
        def healthy() -> bool:
            try:
                return requests.get(f"{base}/healthz", timeout=2).status_code == 200
            except requests.RequestException:
                return False

        wait_until(healthy, timeout_s=30, interval_s=0.2)
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
