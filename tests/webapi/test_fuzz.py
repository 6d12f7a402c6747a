"""A seeded fuzz of the WebAPI through the app: hostile parameters, methods and paths keep the contract.

Every request is built so that it must not change the PBX (hostile value, HEAD, wrong method or
wrong key), so the PBX is compared once before and once after the whole run. Each answer is
checked against what the README documents for its kind of request.
"""
from __future__ import annotations

import random
import re
from dataclasses import dataclass
from urllib.parse import quote

import pytest

import gateway.webapi.commands  # noqa: F401  (fills REGISTRY)
from gateway.app import create_app
from gateway.webapi.params import Extension, Integer, Number, NumberList, OnOff, Param, PhoneSearch, Strategy
from gateway.webapi.registry import REGISTRY, Command
from tests.support.config import ACCESS_KEY
from tests.support.hostile import changing_requests, is_error_shape, pbx_state

SEED = 20261130
REQUESTS = 3000
FORGED = "2026-11-30 02:00:00,000 CRITICAL gateway.FAKE: injected"

CONTROLS = ["\x00", "\n", "\r", "\r\n", "\t", "\x0b", "\x0c", "\x1b", "\x1c", "\x7f", "\x85", "\u2028", "\n" + FORGED]
FOREIGN_DIGITS = ["\u0661\u0662\u0663", "\u0967\u0968", "\uff11\uff10\uff11", "\u00b9", "\u2460"]
NUMBER_TYPES = (Extension, Integer, Number, NumberList, Strategy, PhoneSearch)
OTHER_METHODS = ["PUT", "PATCH", "DELETE", "OPTIONS", "TRACE", "PROPFIND", "MKCOL", "LOCK"]
JUNK_SEGMENTS = ["%00", "%0a", "%0d%0a", "%2f", "%2e%2e", "..", "%ff", "%c0%af", "\u0661", "%25", "x" * 300,
                 "a%20b", "%5c", "recording", "", ";", "ext.info.get;x", "%0a" + quote(FORGED)]
LINE = re.compile(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} (DEBUG|INFO|WARNING|ERROR|CRITICAL) [\w.]+: ")


@dataclass(frozen=True)
class Probe:
    """One request and what the documented contract says about its answer."""

    method: str
    path: str
    params: dict[str, str]
    expected: int | None          # None: any status but a 500
    bad_param: str | None = None  # the parameter a 400 must name
    allow: str | None = None      # the Allow header a 405 must carry


def valid_value(param: Param) -> str:
    """A value `param` accepts."""
    if isinstance(param, Integer):
        return str(max(param.minimum, 1))
    if isinstance(param, Strategy):
        return "1"
    if isinstance(param, OnOff):
        return "on"
    if isinstance(param, (Extension, Number, NumberList, PhoneSearch)):
        return "101"
    choices = getattr(param, "choices", None)
    if choices:
        return choices[0]
    return "x"


def hostile_value(rng: random.Random, param: Param) -> str:
    """A value `param` must refuse: control characters for every type, other scripts' digits for numbers."""
    base = valid_value(param)
    kinds = ["control"] + (["digits"] if isinstance(param, NUMBER_TYPES) else [])
    if rng.choice(kinds) == "digits":
        return rng.choice(FOREIGN_DIGITS)
    position = rng.randrange(len(base) + 1)
    return base[:position] + rng.choice(CONTROLS) + base[position:]


def valid_params(command: Command) -> dict[str, str]:
    return {name: valid_value(param) for name, param in command.params.items()}


def hostile_parameter(rng: random.Random, commands: list[Command]) -> Probe:
    command = rng.choice([c for c in commands if c.params])
    params = valid_params(command)
    name = rng.choice(list(params))
    params[name] = hostile_value(rng, command.params[name])
    method = rng.choice(["GET", "POST", "HEAD"])
    if method == "HEAD" and not command.is_safe:
        return Probe(method, f"/webapi/{ACCESS_KEY}/{command.name}", params, 405, allow="GET, POST")
    return Probe(method, f"/webapi/{ACCESS_KEY}/{command.name}", params, 400, bad_param=name)


def head_of_an_action(rng: random.Random, commands: list[Command]) -> Probe:
    command = rng.choice([c for c in commands if not c.is_safe])
    return Probe("HEAD", f"/webapi/{ACCESS_KEY}/{command.name}", valid_params(command), 405, allow="GET, POST")


def other_method(rng: random.Random, commands: list[Command]) -> Probe:
    method = rng.choice(OTHER_METHODS)
    command = rng.choice(commands)
    path = rng.choice([f"/webapi/{ACCESS_KEY}/{command.name}", f"/webapi/{ACCESS_KEY}/", "/webapi/nope/x",
                       "/webapi/recording/211230102738_669-1-1.mp3", "/webapi/recording/%2fetc%2fpasswd"])
    allow = "GET, HEAD" if path.startswith("/webapi/recording/") else "GET, HEAD, POST"
    return Probe(method, path, valid_params(command), 405, allow=allow)


def wrong_key(rng: random.Random, commands: list[Command]) -> Probe:
    command = rng.choice(commands)
    key = rng.choice([ACCESS_KEY[:-1], ACCESS_KEY + "x", ACCESS_KEY.upper(), "%00" + ACCESS_KEY, ACCESS_KEY + "%0a",
                      quote(ACCESS_KEY.replace("0", "\u0660"))])
    return Probe(rng.choice(["GET", "POST"]), f"/webapi/{key}/{command.name}", valid_params(command), 401)


def hostile_path(rng: random.Random, commands: list[Command]) -> Probe:
    segments = [rng.choice(JUNK_SEGMENTS) for _ in range(rng.randint(1, 3))]
    key = rng.choice([ACCESS_KEY, "recording", "", "wrong"])
    return Probe(rng.choice(["GET", "HEAD", "POST"]), f"/webapi/{key}/" + "/".join(segments), {}, None)


KINDS = [(hostile_parameter, 45), (head_of_an_action, 15), (other_method, 15), (wrong_key, 10), (hostile_path, 15)]


def probes(seed: int, count: int) -> list[Probe]:
    rng = random.Random(seed)
    commands = sorted(REGISTRY.values(), key=lambda c: c.name)
    makers, weights = zip(*KINDS, strict=True)
    return [rng.choices(makers, weights)[0](rng, commands) for _ in range(count)]


def send(client, probe: Probe):
    if probe.method == "POST" and probe.params:
        return client.post(probe.path, data=probe.params)
    return client.open(probe.path, method=probe.method, query_string=probe.params)


def contract_breaches(probe: Probe, response) -> list[str]:
    """What is wrong with `response` as the answer to `probe` (empty when nothing)."""
    status = response.status_code
    breaches = []
    if status >= 500 or (probe.expected is not None and status != probe.expected):
        breaches.append(f"status {status}, expected {probe.expected or 'no 5xx'}")
    if probe.allow is not None and response.headers.get("Allow") != probe.allow:
        breaches.append(f"Allow {response.headers.get('Allow')!r}, expected {probe.allow!r}")
    if status >= 400 and probe.method != "HEAD":
        body = response.get_json(silent=True)
        is_recording_404 = status == 404 and body == {"error": "not found"}
        if not (is_error_shape(body) or is_recording_404):
            breaches.append(f"body {response.get_data()[:120]!r} is not the error shape")
        elif probe.bad_param is not None and not body["error"].startswith(f"parameter '{probe.bad_param}'"):
            breaches.append(f"error {body['error']!r} does not name {probe.bad_param!r}")
    if response.mimetype != "application/json" and status >= 400:
        breaches.append(f"content type {response.mimetype}")
    return breaches


def test_probes_are_seeded_and_cover_every_kind():
    first, again = probes(SEED, 300), probes(SEED, 300)

    assert first == again
    assert {p.expected for p in first} >= {400, 401, 405, None}


@pytest.mark.timeout(300)
def test_fuzzed_requests_keep_the_documented_contract(sim, config, gateway, capsys, logging_setup):
    logging_setup(config.secrets())
    client = create_app(config, gateway).test_client()
    before = pbx_state(sim)

    breaches = []
    for probe in probes(SEED, REQUESTS):
        problems = contract_breaches(probe, send(client, probe))
        if problems:
            breaches.append((probe, problems))
    out = capsys.readouterr().out

    assert breaches[:5] == []
    assert pbx_state(sim) == before
    assert changing_requests(sim) == []
    lines = out.splitlines()
    assert lines and all(LINE.match(line) for line in lines), [l for l in lines if not LINE.match(l)][:3]
    assert not any(line.startswith(FORGED[:23]) for line in lines)
    assert not re.search("[\x00-\x09\x0b-\x1f\x7f-\x9f\u2028\u2029]", out)   # every control escaped
    assert ACCESS_KEY not in out
