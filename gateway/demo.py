"""`3cx-gateway demo`: the simulated PBX, the real service against it, and a printing webhook receiver.

The service runs exactly as in production (`3cx-gateway run` under gunicorn, in a child process);
the simulator plays realistic calls in a loop so webhooks arrive and commands have something to show.
"""
from __future__ import annotations

import json
import logging
import secrets
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import requests

from gateway.webhooks.receiver import Webhook, WebhookReceiver

logger = logging.getLogger(__name__)

CALLS_PAUSE_S = 4.0


def _write_config(state_dir: Path, sim_url: str, client_id: str, client_secret: str,
                  port: int, hook_url: str) -> tuple[Path, str]:
    key = secrets.token_urlsafe(18)
    path = state_dir / "config.ini"
    path.write_text(
        "[pbx]\n"
        f"url = {sim_url}\nclient_id = {client_id}\nclient_secret = {client_secret}\n"
        "verify_tls = false\ntimezone = Europe/Prague\n\n"
        "[webapi]\n"
        f"key = {key}\nlisten = 127.0.0.1:{port}\npublic_url = http://127.0.0.1:{port}\n\n"
        "[webhooks]\n"
        f"url = {hook_url}\nmethod = GET\n\n"
        "[recordings]\n"
        f"mp3_dir = {state_dir / 'mp3'}\nwait_s = 20\n\n"
        "[storage]\n"
        f"state_dir = {state_dir}\n\n"
        "[logging]\n"
        "level = WARNING\n",
        encoding="utf-8")
    path.chmod(0o600)
    return path, key


def _print_webhook(webhook: Webhook) -> None:
    """Print each webhook on one line, as a CRM would receive it."""
    print(f"  webhook  {json.dumps(webhook.params, ensure_ascii=False)}", flush=True)


def _demo_calls() -> list[Any]:
    from gateway.sim.scenarios import inbound, outbound
    return [
        inbound("+420774852529", did="+420233000111").to_queue("800", rings=["101", "102"])
        .rings(4).answered_by("102").talk(8).caller_hangs_up(),
        inbound("+420602111222", did="+420233000112").to_extension("101")
        .rings(3).answered_by("101").talk(4).blind_transfer(by="101", to="103")
        .rings(3).answered_by("103").talk(5).caller_hangs_up(),
        inbound("+420777000999", did="+420233000111").to_queue("800", rings=["101", "102"])
        .rings(6).caller_abandons(),
        outbound("104", "+420603555444").rings(3).answered().talk(6).hangs_up(by="104"),
    ]


def _wait_healthy(url: str, child: subprocess.Popen[bytes], timeout_s: float = 60.0) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline and child.poll() is None:
        try:
            if requests.get(url, timeout=2).status_code == 200:
                return True
        except requests.RequestException:
            pass
        time.sleep(0.5)
    return False


def run_demo(port: int = 8080, sim_port: int = 5001, state_dir: str = "./demo-state") -> int:
    """Run until Ctrl-C; returns the exit code."""
    from gateway.sim.server import SimServer

    state = Path(state_dir).resolve()
    state.mkdir(parents=True, exist_ok=True)
    sim = SimServer(port=sim_port, time_scale=1.0)
    sim.start()
    receiver = WebhookReceiver(_print_webhook, path="/crm/webhook", name="demo-receiver")
    hook_url = receiver.url
    config_path, key = _write_config(state, sim.url, sim.client_id, sim.client_secret, port, hook_url)
    child = subprocess.Popen([sys.executable, "-m", "gateway.cli", "run", "--config", str(config_path)])
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    try:
        base = f"http://127.0.0.1:{port}"
        if not _wait_healthy(f"{base}/healthz", child):
            print("the gateway did not become healthy; see its log above", file=sys.stderr)
            return 1
        print(f"\n3cx-gateway demo is running against a simulated 3CX v20 PBX at {sim.url}\n"
              f"Try:\n"
              f"  curl {base}/webapi/{key}/\n"
              f"  curl {base}/webapi/{key}/all.ext.get\n"
              f"  curl {base}/webapi/{key}/queue.members.get?num=800\n"
              f"  curl {base}/webapi/{key}/pbx.ac.get\n"
              f"  curl {base}/webapi/{key}/ext.state.get?num=102\n"
              f"  curl {base}/healthz\n"
              f"Webhooks print below as they arrive; recording links arrive as FILES webhooks.\n"
              f"Config: {config_path}   Stop: Ctrl-C\n", flush=True)
        while not stop.is_set() and child.poll() is None:
            for call in _demo_calls():
                if stop.is_set():
                    break
                sim.play(call, wait=True)
                stop.wait(CALLS_PAUSE_S)
    except KeyboardInterrupt:
        pass
    finally:
        if child.poll() is None:
            child.send_signal(signal.SIGTERM)
            try:
                child.wait(timeout=30)
            except subprocess.TimeoutExpired:
                child.kill()
        receiver.stop()
        sim.stop()
    return 0
