"""`capture` against the simulator (through the running service, and directly), then `replay --check`."""
from __future__ import annotations

import json
import threading

import pytest

from gateway.capture.commands import run_capture, run_replay
from gateway.capture.records import read_records
from gateway.sim.scenarios import inbound
from tests.support.live import CALLER, DID
from tests.support.simulator import slow_timeouts
from tests.support.wait import wait_until


def capture_while(config, path, seconds, action, *, anonymize=True, is_started=lambda: True):
    """Run `capture` in a thread for `seconds`; run `action()` once it records; (exit status, printed)."""
    import io
    out = io.StringIO()
    result = {}
    thread = threading.Thread(target=lambda: result.setdefault(
        "status", run_capture(config, seconds, str(path), anonymize=anonymize, out=out)))
    thread.start()
    wait_until(is_started, timeout_s=10)
    action()
    thread.join(seconds + 30)
    return result["status"], out.getvalue()


def test_capture_from_the_running_service_replays_to_the_same_webhooks(sim, config, live_gateway, receiver,
                                                                         tmp_path, capsys):
    wait_until(lambda: live_gateway.live.is_live, timeout_s=10)
    path = tmp_path / "capture.jsonl"

    def calls():
        sim.play(inbound(CALLER, did=DID).to_queue("800", rings=["101", "102"]).rings(5)
                 .answered_by("102").talk(10).caller_hangs_up())
        receiver.wait_for(4)

    status, printed = capture_while(config, path, 2.5, calls, is_started=lambda: live_gateway.recorder.is_recording)

    assert status == 0, printed
    assert "the running service records" in printed
    records = read_records(path)
    assert records[0]["type"] == "capture" and records[0]["source"] == "service"
    assert [r["params"]["event"] for r in records if r["type"] == "webhook"] == \
        ["ringing", "ringing", "hangupincoming", "incoming"]
    assert run_replay(str(path), check=True) == 0, capsys.readouterr().out
    assert "replay --check: 4 webhooks, same as recorded" in capsys.readouterr().out


def test_capture_of_a_missed_call_replays_its_end_after_the_grace_period(sim, config, live_gateway, receiver,
                                                                          tmp_path, capsys):
    wait_until(lambda: live_gateway.live.is_live, timeout_s=10)
    path = tmp_path / "capture.jsonl"

    def calls():
        sim.play(inbound(CALLER, did=DID).to_queue("800", rings=["101", "102"]).rings(5).caller_abandons())
        receiver.wait_for(3)

    status, printed = capture_while(config, path, 2.5, calls, is_started=lambda: live_gateway.recorder.is_recording)

    assert status == 0, printed
    records = read_records(path)
    assert records[0]["rules"]["end_grace_s"] == config.webhooks.end_grace_s > 0
    assert [(r["params"]["event"], r["params"].get("finishtype")) for r in records if r["type"] == "webhook"] == \
        [("ringing", None), ("ringing", None), ("incoming", "Missed")]
    assert run_replay(str(path), check=True) == 0, capsys.readouterr().out


def test_capture_pseudonymises_numbers_and_names_consistently(sim, config, live_gateway, receiver, tmp_path, capsys):
    wait_until(lambda: live_gateway.live.is_live, timeout_s=10)
    path = tmp_path / "capture.jsonl"

    def call():
        sim.play(inbound(CALLER, did=DID).to_extension("101").answered_by("101").talk(5).caller_hangs_up())
        receiver.wait_for(3)

    status, printed = capture_while(config, path, 2.0, call, is_started=lambda: live_gateway.recorder.is_recording)

    text = path.read_text()
    assert status == 0, printed
    assert "pseudonymised" in printed
    for secret in ("774852529", "233000111", "PragueDID", sim.client_secret, config.webapi.key,
                   live_gateway.tokens.token()):
        assert secret not in text
    records = read_records(path)
    reads = [r["body"] for r in records if r["type"] == "read" and r["call"] == "participant"]
    webhooks = [r["params"] for r in records if r["type"] == "webhook"]
    assert {body["party_caller_id"] for body in reads} == {webhooks[0]["callerid"]}
    assert webhooks[0]["callerid"].startswith("+") and len(webhooks[0]["callerid"]) == len(CALLER)
    assert webhooks[0]["did"].startswith("DID rule ")
    assert run_replay(str(path), check=True) == 0, capsys.readouterr().out


def test_capture_without_a_service_connects_directly_and_sends_nothing(sim, config, receiver, tmp_path, capsys):
    path = tmp_path / "capture.jsonl"
    played = []

    def call():
        played.append(sim.play(inbound(CALLER, did=DID).to_extension("101").answered_by("101").talk(5)
                               .caller_hangs_up()))

    # Started: the snapshot and, once the WebSocket is open, the resync have read GET /callcontrol.
    synced = lambda: sim.sockets.count() > 0 and \
        [r.path for r in sim.requests if r.method == "GET"].count("/callcontrol") >= 2  # noqa: E731
    status, printed = capture_while(config, path, 2.5, call, anonymize=False, is_started=synced)

    assert status == 0, printed
    assert "connecting to the PBX directly" in printed
    records = read_records(path)
    assert records[0]["source"] == "direct"
    assert [r["params"]["event"] for r in records if r["type"] == "webhook"] == \
        ["ringing", "hangupincoming", "incoming"]
    assert receiver.received == []
    assert run_replay(str(path), check=True) == 0


def test_replay_prints_one_json_object_per_webhook(tmp_path, capsys):
    path = tmp_path / "c.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in [
        {"type": "capture", "version": 1, "rules": {"timezone": "UTC"}},
        {"type": "message", "t": 1700000000.0,
         "body": {"sequence": 1, "event": {"event_type": 0, "entity": "/callcontrol/101/participants/5"}}},
        {"type": "read", "t": 1700000000.01, "api": "callcontrol", "call": "participant", "args": ["101", 5],
         "body": {"id": 5, "status": "Ringing", "dn": "101", "party_caller_id": "+420774852529",
                  "party_dn": "10000", "party_dn_type": "Wexternalline", "callid": 9, "legid": 1}},
        {"type": "message", "t": 1700000004.0,
         "body": {"sequence": 2, "event": {"event_type": 1, "entity": "/callcontrol/101/participants/5"}}},
    ]) + "\n")

    assert run_replay(str(path)) == 0

    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [line["event"] for line in lines] == ["ringing", "incoming"]
    assert lines[1]["finishtype"] == "Missed" and lines[0]["id"] == "231114221320_9-0"


def test_replay_check_fails_and_prints_the_difference(tmp_path, capsys):
    path = tmp_path / "c.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in [
        {"type": "capture", "version": 1, "rules": {"timezone": "UTC"}},
        {"type": "webhook", "t": 1.0, "call_key": "700101000001_3", "params": {"event": "ringing", "id": "x"}},
    ]) + "\n")

    assert run_replay(str(path), check=True) == 1

    out = capsys.readouterr().out
    assert '-{"event": "ringing", "id": "x"}' in out and "differ" in out


def test_replay_of_a_file_that_is_not_a_capture_says_which_line(tmp_path, capsys):
    path = tmp_path / "c.jsonl"
    path.write_text('{"type": "capture"}\nnot json\n')

    assert run_replay(str(path)) == 2

    assert "c.jsonl:2: not JSON" in capsys.readouterr().out


def test_control_socket_is_only_for_the_service_user(config, live_gateway):
    import os
    import stat
    from gateway.capture.control import socket_path

    mode = os.stat(socket_path(config.storage.state_dir)).st_mode

    assert stat.S_ISSOCK(mode) and stat.S_IMODE(mode) == 0o600


@pytest.mark.parametrize("request_, error", [
    pytest.param({"op": "shell"}, "unknown op 'shell'", id="an unknown op is refused"),
    pytest.param({"op": "capture", "seconds": 0}, "seconds must be between", id="a capture needs a duration"),
    pytest.param({"op": "capture", "seconds": 10 ** 9}, "seconds must be between", id="a capture is bounded"),
])
def test_control_socket_refuses_bad_requests(config, live_gateway, request_, error):
    from gateway.capture.control import ServiceUnreachable, ask

    with pytest.raises(ServiceUnreachable, match=error):
        list(ask(config.storage.state_dir, request_, timeout_s=5))


def test_a_stale_control_socket_means_no_service(config, tmp_path):
    import socket as socket_module
    from gateway.capture.control import NoService, ask, socket_path
    path = socket_path(config.storage.state_dir)
    path.parent.mkdir(parents=True, exist_ok=True)
    stale = socket_module.socket(socket_module.AF_UNIX)
    stale.bind(str(path))
    stale.close()

    with pytest.raises(NoService):
        list(ask(config.storage.state_dir, {"op": "unknowns"}, timeout_s=5))


def test_stopping_the_service_removes_its_control_socket(config, gateway):
    from gateway.capture.control import socket_path
    gateway.runtime.start()
    assert socket_path(config.storage.state_dir).exists()

    gateway.runtime.stop(timeout_s=10)

    assert not socket_path(config.storage.state_dir).exists()


def test_replay_command_line_checks_a_stored_capture(capsys):
    from pathlib import Path
    from gateway.cli import main
    path = Path(__file__).parents[1] / "data" / "captures" / "sim-blind-transfer-answered.jsonl"

    status = main(["replay", "--check", str(path)])

    assert status == 0
    assert "replay --check: 6 webhooks, same as recorded" in capsys.readouterr().out


def test_capture_command_line_needs_seconds_and_out(capsys):
    from gateway.cli import main

    with pytest.raises(SystemExit):
        main(["capture", "--config", "/nonexistent.ini", "--seconds", "0", "--out", "x.jsonl"])

    assert "expected a positive number" in capsys.readouterr().err


def test_capture_of_reads_taken_together_replays_to_the_same_webhooks(sim, config, live_gateway, receiver,
                                                                       tmp_path, capsys):
    wait_until(lambda: live_gateway.live.is_live, timeout_s=10)
    path = tmp_path / "capture.jsonl"

    def calls():
        sim.faults.delay(1.0, "/callcontrol/101/participants/", times=1)    # the next reads of 101 wait together
        for n in range(1, 4):
            sim.play(inbound(f"+42060100000{n}", did=DID).to_extension("101").rings(100).caller_abandons(),
                     wait=False)
        receiver.wait_for(6, timeout_s=20)

    slow_timeouts(sim.directory)
    status, printed = capture_while(config, path, 4.0, calls, is_started=lambda: live_gateway.recorder.is_recording)

    assert status == 0, printed
    records = read_records(path)
    assert any(r["type"] == "read" and r["call"] == "listed_participants" for r in records)
    assert [r["params"]["event"] for r in records if r["type"] == "webhook"].count("ringing") == 3
    assert run_replay(str(path), check=True) == 0, capsys.readouterr().out
    assert "replay --check: 6 webhooks, same as recorded" in capsys.readouterr().out
