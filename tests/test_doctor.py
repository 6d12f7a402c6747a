"""`3cx-gateway doctor` against the simulated PBX: a healthy setup, and each fault it must name."""
from __future__ import annotations

import socket
from dataclasses import replace

import pytest

from gateway.config import Config
from gateway.doctor import run_doctor


def doctor(config: Config, capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    """Run the doctor; (exit status, printed text)."""
    status = run_doctor(config)
    return status, capsys.readouterr().out


def line_of(out: str, check: str) -> str:
    """The one printed line of `check`."""
    found = [line for line in out.splitlines() if line.split()[1:2] == [f"{check}:"]]
    assert len(found) == 1, f"no single line for {check!r} in:\n{out}"
    return found[0]


def closed_port_url(path: str = "/") -> str:
    """An http URL on 127.0.0.1 where nothing listens."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    return f"http://127.0.0.1:{port}{path}"


def with_section(config: Config, section: str, **values: object) -> Config:
    return replace(config, **{section: replace(getattr(config, section), **values)})


def test_doctor_healthy_setup_exits_0_with_every_check_ok(sim, receiver, config, capsys):
    status, out = doctor(config, capsys)

    assert status == 0, out
    for check in ("pbx", "token", "xapi", "callcontrol", "role", "monitored", "webhooks", "state_dir", "mp3_dir",
                  "ffmpeg", "ffprobe"):
        assert line_of(out, check).startswith("OK "), out
    assert sim.directory.version in line_of(out, "pbx")
    assert sim.client_secret not in out and config.webapi.key not in out


def test_doctor_probes_the_webhook_url_without_sending_an_event(receiver, config, capsys):
    doctor(config, capsys)

    assert receiver.received == []


def test_doctor_wrong_secret_fails_without_printing_it(config, capsys):
    config = with_section(config, "pbx", client_secret="wrong-secret-4711")

    status, out = doctor(config, capsys)

    assert status == 1
    assert line_of(out, "token").startswith("FAIL ")
    assert "client_secret" in line_of(out, "token")
    assert "wrong-secret-4711" not in out


def test_doctor_unreachable_pbx_fails_and_still_checks_the_host(config, capsys):
    config = with_section(config, "pbx", url=closed_port_url().rstrip("/"), timeout_s=2.0)

    status, out = doctor(config, capsys)

    assert status == 1
    assert line_of(out, "pbx").startswith("FAIL ")
    assert line_of(out, "mp3_dir").startswith("OK ")


def test_doctor_names_numbers_the_api_client_does_not_monitor(sim, config, capsys):
    client = sim.directory.api_clients[sim.client_id]
    client.monitored = [dn for dn in client.monitored if dn not in ("105", "107", "801", "701")]

    status, out = doctor(config, capsys)

    line = line_of(out, "monitored")
    assert status == 0
    assert line.startswith("WARN ")
    assert "extensions 105, 107" in line and "queues 801" in line and "ring groups 701" in line
    assert "Extensions to monitor" in line


@pytest.mark.parametrize("recordings_enabled, expected", [
    pytest.param("true", ("FAIL ", 1), id="blocking-when-recordings-are-on"),
    pytest.param("false", ("WARN ", 0), id="a-warning-when-recordings-are-off"),
])
def test_doctor_role_below_system_owner(sim, config, capsys, recordings_enabled, expected):
    sim.directory.api_clients[sim.client_id].role = "users"
    config = with_section(config, "recordings", enabled=recordings_enabled == "true")

    status, out = doctor(config, capsys)

    line = line_of(out, "role")
    assert (line[:5], status) == expected
    assert "System Owner" in line


def test_doctor_call_control_access_off_says_which_box_to_tick(sim, config, capsys):
    sim.directory.api_clients[sim.client_id].callcontrol_access = False

    status, out = doctor(config, capsys)

    assert status == 1
    assert line_of(out, "callcontrol").startswith("FAIL ")
    assert "3CX Call Control API access" in line_of(out, "callcontrol")


def test_doctor_configuration_api_access_off_says_which_box_to_tick(sim, config, capsys):
    sim.directory.api_clients[sim.client_id].xapi_access = False

    status, out = doctor(config, capsys)

    assert status == 1
    assert line_of(out, "pbx").startswith("OK ")
    assert "3CX Configuration API access" in line_of(out, "xapi")


def test_doctor_unreachable_webhook_url_warns(config, capsys):
    config = with_section(config, "webhooks", url=closed_port_url("/hook?token=t0p-s3cret"))

    status, out = doctor(config, capsys)

    assert status == 0
    assert line_of(out, "webhooks").startswith("WARN ")
    assert "t0p-s3cret" not in out


def test_doctor_empty_webhook_url_warns(config, capsys):
    config = with_section(config, "webhooks", url="")

    status, out = doctor(config, capsys)

    assert status == 0
    assert line_of(out, "webhooks").startswith("WARN ")


@pytest.mark.parametrize("where", [
    pytest.param("file", id="mp3-dir-is-a-file"),
    pytest.param("under-file", id="mp3-dir-cannot-be-created"),
])
def test_doctor_unwritable_mp3_dir_fails(config, capsys, tmp_path, where):
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("")
    mp3_dir = blocker if where == "file" else blocker / "mp3"
    config = with_section(config, "recordings", mp3_dir=str(mp3_dir))

    status, out = doctor(config, capsys)

    assert status == 1
    assert line_of(out, "mp3_dir").startswith("FAIL ")


def test_doctor_read_only_mp3_dir_fails(config, capsys, tmp_path):
    mp3_dir = tmp_path / "read-only"
    mp3_dir.mkdir(mode=0o500)
    try:
        (mp3_dir / "probe").touch()
    except PermissionError:
        pass
    else:
        pytest.skip("running as root: permissions do not stop writes")
    config = with_section(config, "recordings", mp3_dir=str(mp3_dir))

    status, out = doctor(config, capsys)

    assert status == 1
    assert "cannot write" in line_of(out, "mp3_dir")


def test_doctor_missing_ffmpeg_fails(config, capsys, monkeypatch, tmp_path):
    monkeypatch.setenv("PATH", str(tmp_path))

    status, out = doctor(config, capsys)

    assert status == 1
    assert line_of(out, "ffmpeg").startswith("FAIL ")
    assert line_of(out, "ffprobe").startswith("FAIL ")


def test_doctor_checks_each_named_webhook_target(receiver, config, capsys):
    from gateway.config import WebhookTarget
    config = replace(config, extra_targets=(WebhookTarget("crm", closed_port_url("/crm?key=t0p-s3cret")),
                                            WebhookTarget("helpdesk", receiver.url)))

    status, out = doctor(config, capsys)

    assert status == 0
    assert line_of(out, "webhook:crm").startswith("WARN ") and "other targets are not delayed" in out
    assert line_of(out, "webhook:helpdesk").startswith("OK ")
    assert "t0p-s3cret" not in out and receiver.received == []


def test_doctor_call_history_without_system_owner_warns(sim, config, capsys):
    sim.directory.api_clients[sim.client_id].role = "system_admins"

    _, out = doctor(config, capsys)

    line = line_of(out, "history")
    assert line.startswith("WARN ") and "System Owner" in line


def test_doctor_names_outages_the_call_history_did_not_cover(config, capsys):
    from datetime import datetime, timedelta, timezone

    from gateway.live.gaps import GapStore, gaps_path

    store = GapStore(gaps_path(config.storage.state_dir))
    until = datetime.now(timezone.utc).replace(microsecond=0)
    store.note_uncovered(until - timedelta(hours=30), until, "the gap is longer than 24 h")
    store.close()

    _, out = doctor(config, capsys)

    line = line_of(out, "gaps")
    assert line.startswith("WARN ") and "the gap is longer than 24 h" in line
    assert f"{until - timedelta(hours=30):%Y-%m-%d %H:%M:%S}" in line
