"""systemd/3cx-gateway.service: systemd accepts it, and it runs confined, as its own user."""
from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path, PurePosixPath

import pytest

from gateway.config import SCHEMA

UNIT = Path(__file__).resolve().parents[1] / "systemd" / "3cx-gateway.service"
INSTALLED_BINARY = "/opt/venvs/3cx-gateway/bin/3cx-gateway"
MAX_EXPOSURE = 2.0


def unit_entries() -> dict[str, dict[str, list[str]]]:
    """section -> key -> every value of that key (systemd keys may repeat)."""
    sections: dict[str, dict[str, list[str]]] = {}
    current: dict[str, list[str]] = {}
    for raw in UNIT.read_text(encoding="utf-8").splitlines():
        line = raw.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("[") and line.endswith("]"):
            current = sections.setdefault(line[1:-1], {})
            continue
        key, _, value = line.partition("=")
        current.setdefault(key.strip(), []).append(value.strip())
    return sections


def service(key: str) -> list[str]:
    return unit_entries()["Service"].get(key, [])


def test_unit_passes_systemd_analyze_verify(tmp_path):
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        pytest.skip("systemd-analyze is not installed")
    # verify insists that ExecStart's program exists; the package installs it only under /opt/venvs,
    # so the check runs on a copy of the unit whose commands point at a stand-in executable.
    stand_in = tmp_path / "3cx-gateway"
    stand_in.write_text("#!/bin/sh\nexit 0\n")
    stand_in.chmod(0o755)
    copy = tmp_path / UNIT.name
    copy.write_text(UNIT.read_text(encoding="utf-8").replace(INSTALLED_BINARY, str(stand_in)))

    result = subprocess.run([analyze, "verify", str(copy)], capture_output=True, text=True, timeout=60)

    assert result.returncode == 0, result.stdout + result.stderr
    problems = [line for line in result.stderr.splitlines() if "user/group name" not in line]
    assert problems == []


def test_unit_runs_the_installed_gateway_with_the_packaged_config():
    config = "--config /etc/3cx-gateway/config.ini"

    assert service("ExecStart") == [f"{INSTALLED_BINARY} run {config}"]
    assert service("ExecStartPre") == [f"{INSTALLED_BINARY} check-config {config}"]


def test_unit_runs_as_its_own_user():
    assert service("User") == ["3cx-gateway"]
    assert service("Group") == ["3cx-gateway"]


def test_unit_restarts_on_failure():
    assert service("Restart") == ["on-failure"]


@pytest.mark.parametrize("key, value", [
    ("NoNewPrivileges", "yes"),
    ("ProtectSystem", "strict"),
    ("ProtectHome", "yes"),
    ("PrivateTmp", "yes"),
    ("ProtectProc", "invisible"),
    ("ProcSubset", "pid"),
    ("RemoveIPC", "yes"),
    ("PrivateMounts", "yes"),
    ("PrivateUsers", "yes"),
    ("DevicePolicy", "closed"),
    ("UMask", "0077"),
])
def test_unit_is_hardened(key, value):
    assert service(key) == [value]


def test_unit_filters_system_calls_to_those_of_a_service():
    assert service("SystemCallFilter") == ["@system-service", "~@privileged"]


def test_unit_exposure_is_at_most_two(tmp_path):
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        pytest.skip("systemd-analyze is not installed")
    copy = tmp_path / UNIT.name
    copy.write_text(UNIT.read_text(encoding="utf-8"))

    result = subprocess.run([analyze, "security", "--offline=yes", "--no-pager", str(copy)],
                            capture_output=True, text=True, timeout=60)

    match = re.search(r"Overall exposure level for \S+: ([0-9.]+)", result.stdout)
    assert match, result.stdout + result.stderr
    assert float(match.group(1)) <= MAX_EXPOSURE, result.stdout


def test_unit_lets_the_service_write_every_default_writable_path():
    writable = [PurePosixPath(p) for value in service("ReadWritePaths") for p in value.split()]
    defaults = [PurePosixPath(SCHEMA["storage"]["state_dir"][1]), PurePosixPath(SCHEMA["recordings"]["mp3_dir"][1])]

    assert PurePosixPath("/var/lib/3cx-gateway") in writable
    for path in defaults:
        assert any(path == w or w in path.parents for w in writable), f"{path} is not under ReadWritePaths"
