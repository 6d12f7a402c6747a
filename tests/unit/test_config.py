"""The config schema, config.ini.example and the error messages an administrator sees."""
from __future__ import annotations

import configparser
from pathlib import Path

import pytest

from gateway import config as cfg

ROOT = Path(__file__).resolve().parents[2]

VALID = {
    "pbx": {"url": "https://pbx.example.com:5001", "client_id": "900", "client_secret": "s3cret-value"},
    "webapi": {"key": "access-key-value"},
}


def test_example_lists_exactly_the_schema_keys():
    parser = configparser.ConfigParser(interpolation=None)
    parser.read(ROOT / "config.ini.example")

    listed = {s: set(parser[s]) for s in parser.sections()}

    assert listed == {s: set(keys) for s, keys in cfg.SCHEMA.items()}


def test_example_documents_every_key_in_a_comment():
    lines = (ROOT / "config.ini.example").read_text().splitlines()
    for index, line in enumerate(lines):
        if "=" in line and not line.startswith("#"):
            assert lines[index - 1].startswith("#"), f"undocumented key: {line}"


def test_example_loads(tmp_path):
    config = cfg.load(ROOT / "config.ini.example", environ={})

    assert config.recordings.keep_days == 30
    assert config.webhooks.method == "GET"
    assert config.pbx.verify_tls is True


def test_defaults_fill_missing_keys():
    config = cfg.from_dict(VALID, environ={})

    assert config.webapi.listen == "127.0.0.1:8080"
    assert config.recordings.cleanup_time == "03:00"
    assert config.pbx.timezone == "UTC"


@pytest.mark.parametrize("section, key, value, expected", [
    ("recordings", "keep_days", "ten", "[recordings] keep_days: expected a whole number of days, got 'ten'"),
    ("pbx", "url", "pbx.example.com", "[pbx] url: expected an http:// or https:// URL"),
    ("pbx", "timezone", "Mars/Olympus", "[pbx] timezone: expected an IANA time zone name"),
    ("webapi", "listen", "8080", "[webapi] listen: expected host:port"),
    ("webhooks", "method", "PUT", "[webhooks] method: expected GET or POST"),
    ("recordings", "cleanup_time", "25:00", "[recordings] cleanup_time: expected a time of day"),
    ("recordings", "bitrate", "1000k", "[recordings] bitrate: expected an MP3 bitrate"),
    ("webhooks", "internal_calls", "maybe", "[webhooks] internal_calls: expected true or false"),
], ids=lambda v: str(v))
def test_bad_value_names_file_section_key_and_expectation(section, key, value, expected):
    values = {s: dict(k) for s, k in VALID.items()}
    values.setdefault(section, {})[key] = value

    with pytest.raises(cfg.ConfigError) as error:
        cfg.from_dict(values, source="/etc/3cx-gateway/config.ini", environ={})

    assert f"/etc/3cx-gateway/config.ini {expected}" in str(error.value)


def test_missing_required_key_says_which_and_the_environment_alternative():
    values = {"pbx": {"url": "https://pbx", "client_id": "900"}, "webapi": {"key": "k"}}

    with pytest.raises(cfg.ConfigError, match=r"\[pbx\] client_secret: missing.*GATEWAY_PBX_CLIENT_SECRET"):
        cfg.from_dict(values, environ={})


def test_unknown_key_and_section_are_reported():
    values = {**VALID, "webapi": {"key": "k", "listen_port": "80"}, "extra": {}}

    with pytest.raises(cfg.ConfigError) as error:
        cfg.from_dict(values, environ={})

    assert "[webapi] listen_port: unknown key" in str(error.value)
    assert "[extra]: unknown section" in str(error.value)


def test_secret_from_environment_wins_over_file():
    config = cfg.from_dict(VALID, environ={"GATEWAY_PBX_CLIENT_SECRET": "from-env"})

    assert config.pbx.client_secret == "from-env"


def test_bad_secret_value_is_never_printed():
    values = {s: dict(k) for s, k in VALID.items()}
    values["pbx"]["url"] = "not a url"

    with pytest.raises(cfg.ConfigError) as error:
        cfg.from_dict(values, environ={})

    assert "s3cret-value" not in str(error.value)


def test_missing_file_is_a_config_error(tmp_path):
    with pytest.raises(cfg.ConfigError, match="no such file"):
        cfg.load(tmp_path / "nope.ini")


def test_secrets_lists_the_values_to_redact():
    config = cfg.from_dict(VALID, environ={})

    assert set(config.secrets()) == {"s3cret-value", "access-key-value"}


def test_example_documents_exactly_the_target_keys_in_its_commented_section():
    lines = (ROOT / "config.ini.example").read_text().splitlines()
    start = lines.index("# [webhook:helpdesk]")
    key_lines = [(index, line[2:].split("=")[0].strip()) for index, line in enumerate(lines) if index > start
                 and line.startswith("# ") and not line.startswith("# #") and "=" in line]

    assert [key for _, key in key_lines] == list(cfg.TARGET_SCHEMA)
    assert all(lines[index - 1].startswith("# # ") for index, _ in key_lines)


def with_target(**keys: str) -> dict:
    return {**VALID, "webhooks": {"url": "https://crm.example.com/hook"}, "webhook:helpdesk": keys}


def test_target_section_becomes_a_filtered_target_after_the_default():
    config = cfg.from_dict(with_target(url="https://helpdesk.example.com/3cx", queues="800, 801",
                                       directions="Inbound", events="ringing,end", extra_fields="true"), environ={})

    default, helpdesk = config.targets

    assert (default.name, default.url, default.queues) == ("default", "https://crm.example.com/hook", frozenset())
    assert (helpdesk.name, helpdesk.url, helpdesk.method) == ("helpdesk", "https://helpdesk.example.com/3cx", "GET")
    assert (helpdesk.queues, helpdesk.directions) == ({"800", "801"}, {"inbound"})
    assert helpdesk.events == {"ringing", "end"} and helpdesk.extra_fields is True


def test_without_a_default_url_only_the_named_targets_remain():
    values = with_target(url="https://helpdesk.example.com/3cx")
    values["webhooks"] = {}

    assert [t.name for t in cfg.from_dict(values, environ={}).targets] == ["helpdesk"]


@pytest.mark.parametrize("keys, expected", [
    ({}, "[webhook:helpdesk] url: missing"),
    ({"url": "https://h", "queues": "sales"}, "[webhook:helpdesk] queues: expected comma-separated numbers"),
    ({"url": "https://h", "directions": "inbound,sideways"},
     "[webhook:helpdesk] directions: expected a comma-separated list of inbound, outbound, internal ('sideways'"),
    ({"url": "https://h", "events": "hangup"},
     "[webhook:helpdesk] events: expected a comma-separated list of ringing, start, end, files"),
    ({"url": "https://h", "colour": "red"}, "[webhook:helpdesk] colour: unknown key"),
    ({"url": "https://h", "method": "PUT"}, "[webhook:helpdesk] method: expected GET or POST"),
], ids=["no url", "queue not a number", "unknown direction", "unknown event", "unknown key", "bad method"])
def test_bad_target_section_names_file_section_key_and_expectation(keys, expected):
    with pytest.raises(cfg.ConfigError) as error:
        cfg.from_dict(with_target(**keys), source="/etc/3cx-gateway/config.ini", environ={})

    assert f"/etc/3cx-gateway/config.ini {expected}" in str(error.value)


@pytest.mark.parametrize("section", ["webhook:default", "webhook:", "webhook:a b"], ids=["reserved", "empty", "space"])
def test_bad_target_name_is_reported(section):
    values = {**VALID, section: {"url": "https://h"}}

    with pytest.raises(cfg.ConfigError, match=r"expected \[webhook:NAME\]"):
        cfg.from_dict(values, environ={})


def test_target_secret_from_environment_is_redacted_and_never_printed():
    values = with_target(url="https://h", secret="file-secret", queues="x")

    config = cfg.from_dict(with_target(url="https://h"), environ={"GATEWAY_WEBHOOK_HELPDESK_SECRET": "env-s3cret"})
    with pytest.raises(cfg.ConfigError) as error:
        cfg.from_dict(values, environ={})

    assert config.targets[1].secret == "env-s3cret" and "env-s3cret" in config.secrets()
    assert "file-secret" not in str(error.value)


def test_internal_direction_without_internal_calls_is_a_warning_not_an_error():
    config = cfg.from_dict(with_target(url="https://h", directions="internal"), source="c.ini", environ={})

    assert cfg.warnings(config) == ["c.ini [webhook:helpdesk] directions: internal calls make no webhooks"
                                    " unless [webhooks] internal_calls = true"]
