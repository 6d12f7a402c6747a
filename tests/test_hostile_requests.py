"""Hostile request lines over real gunicorn (`3cx-gateway run`): JSON answers, one escaped log line each.

gunicorn refuses some requests before the app sees them (over-long request lines and headers,
control characters or spaces in the request line, a bad HTTP version); the gateway's worker answers
those in the WebAPI's JSON error shape too, and nothing of the raw request reaches the log.
"""
from __future__ import annotations

import json
import random
import re
import signal
import socket
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests

from gateway.server import MAX_REQUEST_LINE_BYTES
from tests.support.wait import wait_until

KEY = "hostile-test-key-3e8d1f07"
SIG = "5f" * 32
FORGED = "2026-11-30 02:00:00,000 CRITICAL gateway.FAKE: injected"
# The three kinds of line on the service's stdout: ours, gunicorn's error log, the access log.
LOG_LINE = re.compile(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} [A-Z]+ [\w.]+: "
                      r"|\[\d{4}-\d\d-\d\d [\d:]+ [+-]\d{4}\] \[\d+\] \[[A-Z]+\] "
                      r"|[\d.:a-f]+ \"")


@dataclass
class Served:
    """A running `3cx-gateway run` child: its port and the file its stdout goes to."""

    port: int
    log_path: Path

    def log(self) -> str:
        return self.log_path.read_text(encoding="utf-8", errors="replace")


@dataclass(frozen=True)
class Answer:
    """A raw HTTP answer, split."""

    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> object:
        try:
            return json.loads(self.body)
        except ValueError:
            return None


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture(scope="module")
def served(sim_server, tmp_path_factory):
    """`3cx-gateway run` under real gunicorn against the simulator, for the whole module."""
    sim_server.reset()
    folder = tmp_path_factory.mktemp("hostile")
    port = _free_port()
    config = folder / "config.ini"
    config.write_text(
        f"[pbx]\nurl = {sim_server.url}\nclient_id = {sim_server.client_id}\n"
        f"client_secret = {sim_server.client_secret}\n"
        f"[webapi]\nkey = {KEY}\nlisten = 127.0.0.1:{port}\n"
        f"[recordings]\nmp3_dir = {folder / 'mp3'}\n[storage]\nstate_dir = {folder / 'state'}\n"
        "[logging]\nlevel = DEBUG\n", encoding="utf-8")
    log_path = folder / "stdout.log"
    with log_path.open("w", encoding="utf-8") as out:
        child = subprocess.Popen([sys.executable, "-m", "gateway.cli", "run", "--config", str(config)],
                                 stdout=out, stderr=subprocess.STDOUT,
                                 env={"PYTHONUNBUFFERED": "1", "PATH": "/usr/bin:/bin"})
    try:
        wait_until(lambda: _is_up(port), timeout_s=30, interval_s=0.2)
        yield Served(port, log_path)
    finally:
        child.send_signal(signal.SIGTERM)
        child.wait(timeout=30)


def _is_up(port: int) -> bool:
    try:
        return requests.get(f"http://127.0.0.1:{port}/healthz", timeout=2).status_code in (200, 503)
    except requests.RequestException:
        return False


def exchange(port: int, request_line: bytes, headers: bytes = b"") -> Answer:
    """Send one raw request (the line as given) and read the whole answer; the connection closes."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as connection:
        connection.sendall(request_line + b"\r\nHost: gw\r\nConnection: close\r\n" + headers + b"\r\n")
        received = b""
        while chunk := connection.recv(65536):
            received += chunk
    head, _, body = received.partition(b"\r\n\r\n")
    status_line, *header_lines = head.decode("latin-1").split("\r\n")
    fields = dict(line.split(": ", 1) for line in header_lines if ": " in line)
    return Answer(int(status_line.split()[1]), {k.lower(): v for k, v in fields.items()}, body)


def is_error_shape(answer: Answer) -> bool:
    body = answer.json()
    return (answer.headers.get("content-type", "").startswith("application/json") and isinstance(body, dict)
            and list(body) == ["error", "command"] and all(isinstance(v, str) for v in body.values()))


def log_breaches(text: str) -> list[str]:
    """Lines that are not one of the service's own kinds of line, forged lines, and secrets."""
    lines = text.splitlines()
    breaches = [f"foreign line {line[:100]!r}" for line in lines if not LOG_LINE.match(line)]
    breaches += [f"forged line {line[:100]!r}" for line in lines if line.startswith(FORGED[:23])]
    breaches += [f"{name} in the log" for name, secret in (("key", KEY), ("sig", SIG)) if secret in text]
    if re.search("[\x00-\x09\x0b-\x1f\x7f]", text):
        breaches.append("raw control character in the log")
    return breaches


# --- over-long requests ----------------------------------------------------------------------------

def test_ten_kilobyte_parameter_is_414_in_the_json_shape(served):
    answer = exchange(served.port, f"GET /webapi/{KEY}/ext.info.get?num={'1' * 10_240} HTTP/1.1".encode())

    assert answer.status == 414
    assert is_error_shape(answer)
    assert str(MAX_REQUEST_LINE_BYTES) in answer.json()["error"]


def test_request_line_just_under_the_limit_reaches_the_app(served):
    path = f"/webapi/{KEY}/ext.info.get?num="
    line = f"GET {path}{'1' * (MAX_REQUEST_LINE_BYTES - len(path) - len('GET  HTTP/1.1'))} HTTP/1.1".encode()

    answer = exchange(served.port, line)

    assert len(line) == MAX_REQUEST_LINE_BYTES
    assert answer.status == 400
    assert answer.json()["error"].startswith("parameter 'num'")


def test_header_over_the_limit_is_431_in_the_json_shape(served):
    big_header = b"X-Big: " + b"a" * 9000 + b"\r\n"

    answer = exchange(served.port, f"GET /webapi/{KEY}/all.ext.get HTTP/1.1".encode(), big_header)

    assert answer.status == 431
    assert is_error_shape(answer)


# --- malformed request lines -----------------------------------------------------------------------

@pytest.mark.parametrize("line", [
    f"GET /webapi/{KEY}/ext.info.get?num=1\x00 HTTP/1.1",
    f"GET /webapi/{KEY}/ext.info.get?num=1\r2 HTTP/1.1",
    f"GET /webapi/{KEY}/ext.info.get?num=1 2 HTTP/1.1",
    f"GET /webapi/{KEY}/ext.info.get?num=\t1 HTTP/1.1",
    f"GET /webapi/recording/a.mp3?exp=1798596263&sig={SIG} HTTP/9.9x",
    f"GET /webapi/recording/a.mp3?exp=1798596263&sig={SIG}\x7f HTTP/1.1",
    f"G\x00T /webapi/{KEY}/all.ext.get HTTP/1.1",
    f"GET /webapi/{KEY}/all.ext.get HTTP/1.1 trailing",
], ids=["NUL", "CR", "space", "tab", "bad version with a sig", "DEL after a sig", "NUL in the method",
        "extra token"])
def test_malformed_request_line_is_400_in_the_json_shape_and_logged_without_it(served, line):
    answer = exchange(served.port, line.encode("latin-1"))

    assert answer.status == 400
    assert is_error_shape(answer)
    wait_until(lambda: "refused a request" in served.log())
    assert log_breaches(served.log()) == []


# --- the access log --------------------------------------------------------------------------------

@pytest.mark.parametrize("path", [
    "/webapi/recording/x%0a" + FORGED.replace(" ", "%20"),
    "/webapi/recording/x%0d%0a" + FORGED.replace(" ", "%20") + "%00",
    f"/webapi/{KEY}/x%0a" + FORGED.replace(" ", "%20"),
    f"/webapi/recording/a%00b.mp3?exp=1798596263&sig={SIG}",
], ids=["LF in a recording path", "CRLF and NUL", "LF in a command name", "NUL in a signed link"])
def test_access_log_line_cannot_be_forged_and_carries_no_key_or_sig(served, path):
    answer = exchange(served.port, f"GET {path} HTTP/1.1".encode())

    assert answer.status in (401, 404)
    wait_until(lambda: "injected" in served.log() or "a\\x00b" in served.log())
    assert log_breaches(served.log()) == []
    assert "x\\n2026-11-30" in served.log() or "a\\x00b" in served.log()


# --- a seeded fuzz of raw request lines ------------------------------------------------------------

RAW_BYTES = [b"\x00", b"\r", b"\n", b" ", b"\t", b"\x7f", b"\x80", b"\xff", b"%0a", b"%00", b"%2f", b"//", b"..",
             b"\xd9\xa1", b"'", b'"', b"<", b"?", b"#", b"&sig=" + SIG.encode()]
METHODS = [b"GET", b"HEAD", b"POST", b"PUT", b"DELETE", b"OPTIONS", b"PATCH", b"get", b"G\x00T", b"", b"GET GET"]
VERSIONS = [b"HTTP/1.1", b"HTTP/1.0", b"HTTP/9.9", b"HTTP/1.1x", b"http/1.1", b"", b"HTTP/1.1 x"]
# What the documented contract allows for a refused request under /webapi/ (200 for a read that worked).
DOCUMENTED = {200, 400, 401, 404, 405, 411, 413, 414, 431, 501}


def raw_lines(seed: int, count: int) -> list[bytes]:
    rng = random.Random(seed)
    lines = []
    for _ in range(count):
        key = rng.choice([KEY.encode(), b"wrong", b"recording", b""])
        target = b"/webapi/" + key + b"/" + rng.choice([b"ext.info.get?num=101", b"ext.new?num=4242", b"x.mp3", b""])
        for _ in range(rng.randint(0, 3)):
            at = rng.randrange(len(target) + 1)
            target = target[:at] + rng.choice(RAW_BYTES) + target[at:]
        if rng.random() < 0.05:
            target += b"9" * rng.choice([8_000, 9_000, 20_000])
        lines.append(rng.choice(METHODS) + b" " + target + b" " + rng.choice(VERSIONS))
    return lines


def test_fuzzed_request_lines_get_documented_json_answers_and_clean_log_lines(served, sim_server):
    answers = [(line, exchange(served.port, line)) for line in raw_lines(20261130, 150)]

    # A byte inserted before the prefix's last slash takes the request out of /webapi/: only "no 5xx" there.
    wrong = [(line[:80], a.status, a.body[:80]) for line, a in answers
             if a.status >= 500
             or (b" /webapi/" in line and a.status not in DOCUMENTED)
             or (b" /webapi/" in line and a.status >= 400 and not line.startswith(b"HEAD ")
                 and not is_error_shape(a) and a.json() != {"error": "not found"})]
    assert wrong == []
    assert log_breaches(served.log()) == []
    assert all(r.method in ("GET", "HEAD") or r.path == "/connect/token" for r in sim_server.requests)
