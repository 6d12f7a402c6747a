"""The Debian package: its sources agree with the code, its scripts parse, and (on request) it installs.

The full install/run/purge smoke test builds and installs a real package as root, so it runs only
with GATEWAY_DEB_TEST=1.
"""
from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from gateway import __version__

ROOT = Path(__file__).resolve().parents[1]
DEBIAN = ROOT / "debian"
NGINX_SNIPPET = ROOT / "contrib" / "nginx" / "3cx-gateway.conf"
MAINTAINER_SCRIPTS = ("3cx-gateway.postinst", "3cx-gateway.prerm", "3cx-gateway.postrm")


def control_field(name: str) -> str:
    """A field of the binary package's stanza in debian/control, continuation lines joined."""
    stanza = (DEBIAN / "control").read_text(encoding="utf-8").split("\nPackage:", 1)[1]
    match = re.search(rf"^{name}:(.*(?:\n[ \t].*)*)", stanza, re.MULTILINE)
    assert match, f"debian/control has no {name}"
    return " ".join(match.group(1).split())


def placeholders(config_text: str, tmp_path: Path) -> list[str]:
    """What postinst's placeholder check reports for a config with this text."""
    config = tmp_path / "config.ini"
    config.write_text(config_text, encoding="utf-8")
    postinst = (DEBIAN / "3cx-gateway.postinst").read_text(encoding="utf-8")
    function = re.search(r"^placeholders\(\) \{.*?^\}", postinst, re.MULTILINE | re.DOTALL)
    assert function, "postinst has no placeholders() function"
    script = f'CONFIG="{config}"\n{function.group(0)}\nplaceholders\n'
    result = subprocess.run(["sh", "-c", script], capture_output=True, text=True, check=True, timeout=30)
    return result.stdout.splitlines()


def test_changelog_version_is_the_code_version():
    first_line = (DEBIAN / "changelog").read_text(encoding="utf-8").splitlines()[0]

    assert re.match(r"^3cx-gateway \((?P<version>[^)]+)\)", first_line).group("version") == __version__


def test_package_depends_on_ffmpeg_python_and_substvars():
    depends = [d.strip() for d in control_field("Depends").split(",")]

    assert {"ffmpeg", "${misc:Depends}", "${shlibs:Depends}", "${venv:Python}"} <= set(depends)
    assert 'python3 (>= $(PY_MAJOR_MINOR))' in (DEBIAN / "rules").read_text(encoding="utf-8")


def test_rules_bundle_a_virtualenv_made_by_the_system_python():
    rules = (DEBIAN / "rules").read_text(encoding="utf-8")

    assert "dh $@ --with python-virtualenv" in rules
    assert "PYTHON := /usr/bin/python3" in rules and "--python $(PYTHON)" in rules


def test_packaged_unit_is_the_repository_unit():
    assert (DEBIAN / "3cx-gateway.service").read_bytes() == (ROOT / "systemd" / "3cx-gateway.service").read_bytes()


def test_command_is_linked_into_usr_bin():
    links = (DEBIAN / "3cx-gateway.links").read_text(encoding="utf-8").split()

    assert links == ["opt/venvs/3cx-gateway/bin/3cx-gateway", "usr/bin/3cx-gateway"]


@pytest.mark.parametrize("script", MAINTAINER_SCRIPTS)
def test_maintainer_script_is_valid_sh(script):
    result = subprocess.run(["sh", "-n", str(DEBIAN / script)], capture_output=True, text=True, timeout=30)

    assert result.returncode == 0, result.stderr


def test_postinst_names_every_placeholder_of_the_example(tmp_path):
    example = (ROOT / "config.ini.example").read_text(encoding="utf-8")

    assert placeholders(example, tmp_path) == ["[pbx] url", "[pbx] client_secret", "[webapi] key"]


def test_postinst_finds_no_placeholder_in_an_edited_config(tmp_path):
    edited = ((ROOT / "config.ini.example").read_text(encoding="utf-8")
              .replace("https://pbx.example.com:5001", "https://pbx.acme.cz:5001")
              .replace("client_secret = change-me", "client_secret = Zq81xv")
              .replace("key = change-me-to-a-long-random-string", "key = 9f3a0c1d2e4b5a6978"))

    assert placeholders(edited, tmp_path) == []


def test_nginx_snippet_publishes_webapi_and_recordings_only():
    snippet = NGINX_SNIPPET.read_text(encoding="utf-8")
    code = "\n".join(line.split("#", 1)[0] for line in snippet.splitlines())

    assert re.search(r"location /webapi/ \{", code) and re.search(r"location /webapi/recording/ \{", code)
    assert set(re.findall(r"proxy_pass (\S+);", code)) == {"http://127.0.0.1:8080"}
    for header in ("X-Forwarded-For", "X-Forwarded-Proto", "X-Forwarded-Host"):
        assert f"proxy_set_header {header}" in code
    assert "location = /healthz { return 404; }" in code and "location = /metrics { return 404; }" in code


def test_nginx_snippet_logs_no_uri():
    snippet = NGINX_SNIPPET.read_text(encoding="utf-8")
    log_format = re.search(r"log_format gateway_nouri (.*?);", snippet, re.DOTALL)
    code = "\n".join(line.split("#", 1)[0] for line in snippet.splitlines())

    assert log_format
    assert not re.search(r"\$(request_uri|uri|request|args|query_string|document_uri)\b", log_format.group(1))
    assert all(line.strip().endswith("gateway_nouri;") for line in code.splitlines() if "access_log" in line)


def test_nginx_snippet_is_accepted_by_nginx(tmp_path):
    nginx = shutil.which("nginx")
    if nginx is None:
        pytest.skip("nginx is not installed")
    snippet = NGINX_SNIPPET.read_text(encoding="utf-8")
    log_format = re.search(r"^#\s+(log_format gateway_nouri .*?;)", snippet, re.MULTILINE | re.DOTALL).group(1)
    (tmp_path / "logs").mkdir()
    included = tmp_path / "3cx-gateway.conf"
    included.write_text(snippet.replace("/var/log/nginx/", f"{tmp_path}/logs/"), encoding="utf-8")
    conf = tmp_path / "nginx.conf"
    conf.write_text(
        f"pid nginx.pid; error_log stderr;\nevents {{}}\nhttp {{\naccess_log {tmp_path}/logs/access.log;\n"
        + "".join(f"{kind}_temp_path {tmp_path}/{kind};\n"
                  for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"))
        + re.sub(r"\n#\s+", " ", log_format) + "\n"
        + f"server {{ listen 127.0.0.1:8443; server_name pbx.example.com;\ninclude {included};\n}}\n}}\n")

    result = subprocess.run([nginx, "-t", "-p", str(tmp_path), "-c", str(conf)], capture_output=True, text=True,
                            timeout=60)

    assert result.returncode == 0, result.stderr


@pytest.mark.timeout(1800)
def test_package_installs_runs_and_purges_cleanly():
    if os.environ.get("GATEWAY_DEB_TEST") != "1":
        pytest.skip("set GATEWAY_DEB_TEST=1 to build, install, run and purge the Debian package (needs root)")

    result = subprocess.run([str(ROOT / "scripts" / "deb-smoke-test")], capture_output=True, text=True,
                            timeout=1700, cwd=ROOT)

    assert result.returncode == 0, (result.stdout + result.stderr)[-6000:]
