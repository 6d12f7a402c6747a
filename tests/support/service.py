"""Running `3cx-gateway run` as production does (gunicorn in a child process) against the simulator."""
from __future__ import annotations

import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

KEY = "service-test-key-5f1c0b9e"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def write_config(tmp_path: Path, sim: Any, receiver: Any, port: int) -> Path:
    """A config.ini for the simulator `sim` and the webhook receiver `receiver`, state under tmp_path;
    calls end 0.5 s after their last leg, as in the test config (the production default is 3 s)."""
    path = tmp_path / "config.ini"
    path.write_text(
        f"[pbx]\nurl = {sim.url}\nclient_id = {sim.client_id}\nclient_secret = {sim.client_secret}\n"
        f"[webapi]\nkey = {KEY}\nlisten = 127.0.0.1:{port}\n"
        f"[webhooks]\nurl = {receiver.url}\nend_grace_s = 0.5\n"
        f"[recordings]\nmp3_dir = {tmp_path / 'mp3'}\n"
        f"[storage]\nstate_dir = {tmp_path / 'state'}\n", encoding="utf-8")
    return path


def start(config_path: Path, **options: Any) -> subprocess.Popen[str]:
    """`3cx-gateway run --config config_path` in a child process; output on its stdout pipe."""
    return subprocess.Popen([sys.executable, "-m", "gateway.cli", "run", "--config", str(config_path)],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, **options)
