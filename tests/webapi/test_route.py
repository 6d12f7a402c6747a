"""The /webapi routes: access key, unknown commands, parameters, error mapping, cache, listeners, logs."""
from __future__ import annotations

import logging
import re
from types import SimpleNamespace

import pytest

from gateway.app import create_app
from gateway.cache import TtlCache
from gateway.config import from_dict
from gateway.live.errors import NoSuchLeg
from gateway.logs import ACCESS_LOG_FORMAT, escape_controls, redact
from gateway.webapi import route
from gateway.sim.scenarios import inbound
from tests.support.config import ACCESS_KEY
from tests.support.wait import wait_until
from tests.support.shape import examples

JWT = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiI5MDAiLCJleHAiOjE5OTk5OTk5OTl9.c2lnbmF0dXJlLXNpZ25hdHVyZQ"


def xapi_requests(sim) -> list:
    return [r for r in sim.requests if r.path.startswith("/xapi/")]


# --- access key -----------------------------------------------------------------------------------

@pytest.mark.parametrize("path", [
    "/webapi/wrong-key/ext.info.get?num=101",
    "/webapi/wrong-key/",
    f"/webapi/{ACCESS_KEY}x/all.ext.get",
    f"/webapi/{ACCESS_KEY[:-1]}/all.ext.get",
    "/webapi/wrong-key/no.such.command",
], ids=["wrong key", "wrong key on info", "key with a suffix", "key prefix", "wrong key, unknown command"])
def test_wrong_key_returns_401_without_asking_the_pbx(sim, client, path):
    response = client.get(path)

    assert response.status_code == 401
    assert response.get_json() == {"error": "invalid access key", "command": response.get_json()["command"]}
    assert sim.requests == []


def test_missing_key_is_not_served(sim, client):
    # Werkzeug merges the slashes and redirects; the command name then stands where the key goes.
    response = client.get("/webapi//all.ext.get", follow_redirects=True)

    assert response.status_code == 401
    assert sim.requests == []


def test_right_key_reaches_the_command(sim, webapi):
    status, answer = webapi("all.ext.get")

    assert status == 200
    assert answer["nums"][:3] == ["100", "101", "102"]


# --- commands and parameters ----------------------------------------------------------------------

def test_unknown_command_returns_404_naming_it(sim, webapi):
    status, answer = webapi("ext.nothing.get", num="101")

    assert status == 404
    assert answer == {"error": "unknown command 'ext.nothing.get'", "command": "ext.nothing.get"}
    assert sim.requests == []


def test_very_long_unknown_command_is_cut_in_the_answer(sim, client):
    response = client.get(f"/webapi/{ACCESS_KEY}/{'x' * 5000}")

    assert response.status_code == 404
    assert len(response.get_data()) < 400


@pytest.mark.parametrize("command, params, name", [
    ("ext.info.get", {"num": "10'2"}, "num"),
    ("ext.info.get", {"num": "1" * 10_240}, "num"),
    ("ext.fwd.set", {"num": "101", "status": "Away", "message": "x" * 10_240}, "message"),
    ("extgroup.members.get", {"name": "Sales'" + "y" * 10_240}, "name"),
    ("ext.queueglobal.set", {"num": "101", "log": "maybe"}, "log"),
    ("ext.info.get", {}, "num"),
    ("ext.info.get", {"num": ""}, "num"),
], ids=["quote in a number", "10 kB number", "10 kB message", "10 kB name with a quote",
        "on/off that is neither", "missing parameter", "empty parameter"])
def test_bad_parameter_returns_400_naming_it(sim, webapi, command, params, name):
    status, answer = webapi(command, **params)

    assert status == 400
    assert answer["command"] == command
    assert answer["error"].startswith(f"parameter '{name}'")
    assert len(answer["error"]) < 300
    assert sim.requests == []


def test_post_form_parameters_are_accepted(sim, client):
    response = client.post(f"/webapi/{ACCESS_KEY}/ext.info.get", data={"num": "102"})

    assert response.status_code == 200
    assert response.get_json()["num"] == "102"


def test_answer_keeps_the_documented_key_order(sim, client):
    response = client.get(f"/webapi/{ACCESS_KEY}/ext.info.get?num=102")

    keys = re.findall(r'"(\w+)":', response.get_data(as_text=True))
    assert keys == list(examples()["ext.info.get"]["answer"])


# --- error mapping --------------------------------------------------------------------------------

def test_pbx_refusal_returns_502(sim, webapi):
    sim.faults.fail(500, path_prefix="/xapi/v1/Users", times=None)  # the client retries GETs

    status, answer = webapi("ext.info.get", num="101")

    assert status == 502
    assert answer["command"] == "ext.info.get"
    assert "PBX" in answer["error"]


def test_unreachable_pbx_returns_503(sim, config, tmp_path):
    values = {"pbx": {"url": "http://127.0.0.1:9", "client_id": "900", "client_secret": "s",
                      "timeout_s": "1"},
              "webapi": {"key": ACCESS_KEY},
              "recordings": {"mp3_dir": str(tmp_path / "mp3")},
              "storage": {"state_dir": str(tmp_path / "state")}}
    client = create_app(from_dict(values, environ={})).test_client()

    response = client.get(f"/webapi/{ACCESS_KEY}/ext.info.get?num=101")

    assert response.status_code == 503
    assert response.get_json()["command"] == "ext.info.get"


def test_unknown_extension_returns_404(sim, webapi):
    status, answer = webapi("ext.info.get", num="999")

    assert status == 404
    assert answer == {"error": "extension 999 does not exist", "command": "ext.info.get"}


class _Failing:
    """Stands in for one collaborator of Services: every call raises `error`."""

    def __init__(self, error: Exception) -> None:
        self._error = error

    def __getattr__(self, name: str):
        def fail(*args, **kwargs):
            raise self._error
        return fail


def test_unexpected_exception_returns_500_and_is_logged_once(config, gateway, caplog):
    gateway.xapi = _Failing(RuntimeError("boom"))
    client = create_app(config, gateway).test_client()

    with caplog.at_level(logging.ERROR, logger="gateway.webapi.route"):
        response = client.get(f"/webapi/{ACCESS_KEY}/all.ext.get")

    assert response.status_code == 500
    assert response.get_json() == {"error": "internal error; see the gateway's log", "command": "all.ext.get"}
    assert "boom" not in response.get_data(as_text=True)
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(errors) == 1 and errors[0].exc_info is not None


def test_no_such_leg_returns_404(config, gateway):
    gateway.live = SimpleNamespace(is_live=True, calls=_Failing(NoSuchLeg("extension 101 has no call")).calls)
    client = create_app(config, gateway).test_client()

    response = client.get(f"/webapi/{ACCESS_KEY}/pbx.ac.get")

    assert response.status_code == 404
    assert response.get_json() == {"error": "extension 101 has no call", "command": "pbx.ac.get"}


# --- directory cache ------------------------------------------------------------------------------

def test_directory_answer_is_cached(sim, webapi):
    webapi("all.queue.get")
    before = len(xapi_requests(sim))

    status, answer = webapi("all.queue.get")

    assert status == 200 and answer == {"nums": ["800", "801", "802"]}
    assert len(xapi_requests(sim)) == before


def test_write_command_clears_the_cache(sim, webapi):
    webapi("all.ext.get")

    webapi("ext.new", num="150")
    status, answer = webapi("all.ext.get")

    assert "150" in answer["nums"]


def test_extension_state_is_reused_for_state_cache_s_only(sim, gateway, webapi):
    now = _Now()
    gateway.cache = TtlCache(gateway.config.webapi.cache_s, now=now)
    webapi("ext.state.get", num="102")
    first = len(xapi_requests(sim))

    webapi("ext.state.get", num="102")
    reused = len(xapi_requests(sim))
    now.value += gateway.config.webapi.state_cache_s
    webapi("ext.state.get", num="102")

    assert reused == first
    assert len(xapi_requests(sim)) > reused


def test_live_call_state_is_never_cached(sim, live_gateway, webapi):
    wait_until(lambda: live_gateway.live.is_live)
    _, before = webapi("ext.state.get", num="102")

    sim.play(inbound("+420774852529").to_extension("102").talk(30), wait=False)
    wait_until(lambda: webapi("ext.state.get", num="102")[1]["status"] == "Busy")

    assert before["status"] == "Free"


class _Now:
    """A settable monotonic clock for TtlCache."""

    def __init__(self) -> None:
        self.value = 100.0

    def __call__(self) -> float:
        return self.value


# --- request listeners ----------------------------------------------------------------------------

def test_listeners_hear_command_status_and_duration(sim, config, gateway):
    app = create_app(config, gateway)
    heard: list[tuple[str, int, float]] = []
    route.subscribe(app, lambda *args: heard.append(args))
    client = app.test_client()

    client.get(f"/webapi/{ACCESS_KEY}/all.ivr.get")
    client.get(f"/webapi/{ACCESS_KEY}/no.such.thing")
    client.get("/webapi/wrong/all.ivr.get")
    client.get(f"/webapi/{ACCESS_KEY}/")

    assert [(c, s) for c, s, _ in heard] == [("all.ivr.get", 200), ("unknown", 404),
                                            ("all.ivr.get", 401), ("info", 200)]
    assert all(isinstance(d, float) and d >= 0 for _, _, d in heard)


def test_failing_listener_does_not_change_the_answer(sim, config, gateway):
    app = create_app(config, gateway)
    route.subscribe(app, lambda *args: 1 / 0)

    response = app.test_client().get(f"/webapi/{ACCESS_KEY}/all.ivr.get")

    assert response.status_code == 200


# --- logs never show the key, a secret or a token ------------------------------------------------

@pytest.mark.parametrize("text, expected", [
    (f"GET /webapi/{ACCESS_KEY}/ext.info.get?num=101", "GET /webapi/***/ext.info.get?num=101"),
    ("GET /webapi/anything-else/", "GET /webapi/***/"),
    ("GET /webapi/recording/211230102738_669-1-1.mp3", "GET /webapi/recording/211230102738_669-1-1.mp3"),
    (f"Authorization: Bearer {JWT}", "Authorization: Bearer ***"),
    (f"token {JWT} expired", "token *** expired"),
    ("Bearer abcdefgh12345678", "Bearer ***"),
    ("client secret sim-secret-900 refused", "client secret *** refused"),
    ('File "/opt/gateway/webapi/commands/pbx.py", line 3', 'File "/opt/gateway/webapi/commands/pbx.py", line 3'),
    ('File "/opt/gateway/webapi/route.py", line 9', 'File "/opt/gateway/webapi/route.py", line 9'),
    ("GET /webapi/s3cr3t?x=1", "GET /webapi/***?x=1"),
    ("GET /webapi/recording/a.mp3?exp=1767225600&sig=" + "ab" * 32 + " HTTP/9.9",
     "GET /webapi/recording/a.mp3?exp=1767225600&sig=*** HTTP/9.9"),
    ("Invalid HTTP Version 'sig=0f0f0f0f&x=1'", "Invalid HTTP Version 'sig=***&x=1'"),
], ids=["key in a command path", "key in the info path", "recording path kept", "bearer JWT",
        "bare JWT", "opaque bearer token", "configured secret", "source path of a command module",
        "source path of the route module", "info path without its slash", "recording link's sig",
        "sig in a quoted request tail"])
def test_redact_hides_secrets(text, expected):
    assert redact(text, ["sim-secret-900", ACCESS_KEY]) == expected


@pytest.mark.parametrize("text, expected", [
    ("x\n2026-11-30 02:00:00,000 CRITICAL gateway.FAKE: injected",
     "x\\n2026-11-30 02:00:00,000 CRITICAL gateway.FAKE: injected"),
    ("a\r\nb", "a\\r\\nb"),
    ("a\x00b\x1bc\x7f", "a\\x00b\\x1bc\\x7f"),
    ("a\x85b\u2028c", "a\\x85b\\u2028c"),
    ("tab\there", "tab\\there"),
    ("Jürgen ١٢٣ C:\\path", "Jürgen ١٢٣ C:\\path"),
], ids=["forged line", "CRLF", "NUL, ESC and DEL", "NEL and line separator", "tab", "printable text unchanged"])
def test_escape_controls_keeps_every_record_on_one_line(text, expected):
    assert escape_controls(text) == expected
    assert escape_controls(expected) == expected


def test_access_log_format_has_no_query_string():
    assert "%(U)s" in ACCESS_LOG_FORMAT
    assert "%(q)s" not in ACCESS_LOG_FORMAT and "%(r)s" not in ACCESS_LOG_FORMAT


def test_logs_never_show_key_secret_or_token(sim, config, gateway, caplog, capsys, logging_setup):
    caplog.set_level(logging.DEBUG)  # before setup_logging, so caplog restores the original level
    logging_setup(config.secrets())
    client = create_app(config, gateway).test_client()

    client.get(f"/webapi/{ACCESS_KEY}/ext.info.get?num=102")
    client.get(f"/webapi/{ACCESS_KEY}/ext.info.get?num=999")
    client.get("/webapi/not-the-key/all.ext.get")
    sim.faults.fail(500, path_prefix="/xapi/v1/Users", times=None)
    client.get(f"/webapi/{ACCESS_KEY}/all.ext.get")
    token = gateway.tokens.token()
    logging.getLogger("gateway.pbx.auth").info("token %s for %s", token, config.pbx.client_secret)
    logging.getLogger("werkzeug").info('127.0.0.1 "GET /webapi/%s/all.ext.get HTTP/1.1" 200', ACCESS_KEY)
    try:
        raise RuntimeError(f"request with Bearer {token} and key {ACCESS_KEY} failed")
    except RuntimeError:
        logging.getLogger("gateway.test").exception("failure")

    logged = caplog.text + capsys.readouterr().out
    assert "/webapi/***/" in logged and "Bearer ***" in logged
    for secret in (ACCESS_KEY, config.pbx.client_secret, token):
        assert secret not in logged
        assert all(secret not in record.getMessage() for record in caplog.records)


def test_setup_logging_writes_one_line_per_event_and_filters_foreign_loggers(capsys, logging_setup):
    redactor = logging_setup(["hunter2-secret"])

    try:
        raise ValueError("hunter2-secret leaked\nsecond line")
    except ValueError:
        logging.getLogger("gateway.test").exception("it failed")
    out = capsys.readouterr().out

    assert len([line for line in out.splitlines() if "it failed" in line]) == 1
    assert "it failed" in out.splitlines()[-1]
    assert "ValueError: *** leaked | second line" in out
    for name in ("werkzeug", "gunicorn.error", "gunicorn.access"):
        assert redactor in logging.getLogger(name).filters


def test_forged_line_in_a_logged_value_stays_on_its_own_line(sim, config, gateway, capsys, logging_setup):
    logging_setup(config.secrets())
    client = create_app(config, gateway).test_client()
    forged = "2026-11-30 02:00:00,000 CRITICAL gateway.FAKE: injected"

    client.get(f"/webapi/{ACCESS_KEY}/x%0a{forged.replace(' ', '%20')}")
    client.get("/webapi/recording/x%00y%0d%0a" + forged.replace(" ", "%20"))
    logging.getLogger("gunicorn.access").info('127.0.0.1 "GET %s" 404', f"/webapi/{ACCESS_KEY}/x\n{forged}\x00")
    out = capsys.readouterr().out

    assert "injected" in out
    assert not any(line.startswith(forged[:20]) for line in out.splitlines())
    assert "\x00" not in out and "\r" not in out
    assert ACCESS_KEY not in out
