"""config.ini schema -> frozen dataclasses; `load(path)` raises ConfigError.

The schema below is the single source of truth: `config.ini.example`, `check-config`
and the README's configuration table all follow it, and a test keeps them equal.
"""
from __future__ import annotations

import configparser
import os
import re
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Callable, Mapping, NamedTuple
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError


class ConfigError(Exception):
    """A configuration problem, worded for an administrator (file, section, key, what is expected)."""


# --- value types: plain functions that raise ValueError("expected ...") -------------------------

def text(raw: str) -> str:
    return raw.strip()


def secret(raw: str) -> str:
    return raw.strip()


def url(raw: str) -> str:
    raw = raw.strip()
    parts = urlsplit(raw)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ValueError("expected an http:// or https:// URL")
    return raw.rstrip("/")


def optional_url(raw: str) -> str:
    return url(raw) if raw.strip() else ""


def host_port(raw: str) -> str:
    host, sep, port = raw.strip().rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError("expected host:port, for example 127.0.0.1:8080")
    return raw.strip()


def positive_int(raw: str) -> int:
    if not raw.strip().isdigit() or int(raw) < 1:
        raise ValueError("expected a whole number of 1 or more")
    return int(raw)


def days(raw: str) -> int:
    if not raw.strip().isdigit() or int(raw) < 1:
        raise ValueError("expected a whole number of days")
    return int(raw)


def seconds(raw: str) -> float:
    try:
        value = float(raw)
    except ValueError:
        raise ValueError("expected a number of seconds") from None
    if value <= 0:
        raise ValueError("expected a number of seconds above 0")
    return value


def seconds_or_zero(raw: str) -> float:
    try:
        value = float(raw)
    except ValueError:
        raise ValueError("expected a number of seconds") from None
    if value < 0:
        raise ValueError("expected a number of seconds, 0 or more")
    return value


def switch(raw: str, expected: str) -> bool:
    """true/false, on/off, yes/no or 1/0 (any case) as a bool; else ValueError(`expected`).

    One reading of a switch for config.ini and for legacy command parameters (webapi OnOff).
    """
    value = raw.strip().lower()
    if value in ("1", "true", "yes", "on"):
        return True
    if value in ("0", "false", "no", "off"):
        return False
    raise ValueError(expected)


def on_off(raw: str) -> bool:
    return switch(raw, "expected true or false")


def hhmm(raw: str) -> str:
    match = re.fullmatch(r"([01]?\d|2[0-3]):([0-5]\d)", raw.strip())
    if not match:
        raise ValueError("expected a time of day as HH:MM, for example 03:00")
    return f"{int(match.group(1)):02d}:{match.group(2)}"


def iana_zone(raw: str) -> str:
    try:
        ZoneInfo(raw.strip())
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError("expected an IANA time zone name, for example Europe/Prague") from None
    return raw.strip()


def bitrate(raw: str) -> str:
    if not re.fullmatch(r"\d{1,3}k", raw.strip()) or not 8 <= int(raw.strip()[:-1]) <= 320:
        raise ValueError("expected an MP3 bitrate from 8k to 320k, for example 32k")
    return raw.strip()


def http_method(raw: str) -> str:
    value = raw.strip().upper()
    if value not in ("GET", "POST"):
        raise ValueError("expected GET or POST")
    return value


def answer_event(raw: str) -> str:
    value = raw.strip().lower()
    if value not in ("hangup", "pickup"):
        raise ValueError("expected hangup or pickup")
    return value


def log_level(raw: str) -> str:
    value = raw.strip().upper()
    if value not in ("DEBUG", "INFO", "WARNING", "ERROR"):
        raise ValueError("expected DEBUG, INFO, WARNING or ERROR")
    return value


def directory(raw: str) -> str:
    if not raw.strip():
        raise ValueError("expected a directory path")
    return raw.strip()


def optional_path(raw: str) -> str:
    return raw.strip()


def patterns(raw: str) -> tuple[str, ...]:
    """A comma-separated list of shell-style patterns (`*`, `?`), in order."""
    items = tuple(item.strip() for item in raw.split(","))
    if any(not item for item in items) and raw.strip():
        raise ValueError("expected comma-separated patterns such as *Yealink*, *, *Web*")
    return tuple(item for item in items if item)


# Desk phones first, then anything unrecognised, then 3CX's own apps, web clients last.
MAKECALL_DEVICES = ("*Yealink*, *Fanvil*, *snom*, *Grandstream*, *Poly*, *Cisco*, *Htek*, *, "
                    "*3CX*App*, *3CX*Mobile*, *Web*")


def _items(raw: str) -> list[str]:
    return [item.strip() for item in raw.split(",") if item.strip()]


def number_list(raw: str) -> frozenset[str]:
    """Comma-separated DN numbers (extensions, queues, ring groups); empty = no filter."""
    items = _items(raw)
    bad = [item for item in items if not item.isdigit() or len(item) > 10]
    if bad:
        raise ValueError(f"expected comma-separated numbers such as 101, 102 ({bad[0]!r} is not one)")
    return frozenset(items)


def did_list(raw: str) -> frozenset[str]:
    """Comma-separated DID rule names or DID numbers; empty = no filter."""
    items = _items(raw)
    if any(len(item) > 100 for item in items):
        raise ValueError("expected comma-separated DID rule names or numbers of at most 100 characters")
    return frozenset(items)


def _choice_list(*choices: str) -> Callable[[str], frozenset[str]]:
    def parse(raw: str) -> frozenset[str]:
        items = [item.lower() for item in _items(raw)]
        bad = [item for item in items if item not in choices]
        if bad:
            raise ValueError(f"expected a comma-separated list of {', '.join(choices)} ({bad[0]!r} is not one)")
        return frozenset(items)
    return parse


DIRECTIONS = ("inbound", "outbound", "internal")
EVENT_KINDS = ("ringing", "start", "end", "files")
directions = _choice_list(*DIRECTIONS)
event_kinds = _choice_list(*EVENT_KINDS)


# --- the schema: one frozen dataclass per section; each field's metadata holds its value type,
# --- default (as written in config.ini; None = required), help text and environment variable.

def setting(kind: Callable[[str], Any], default: str | None, help_text: str, *, env: str = "") -> Any:
    """Declare one config key: its value type, default (None = required), help and env variable."""
    return field(metadata={"kind": kind, "default": default, "help": help_text, "env": env})


@dataclass(frozen=True)
class PbxConfig:
    """[pbx]: the 3CX v20 PBX and the gateway's API client on it."""

    url: str = setting(url, None, "Base URL of the 3CX v20 PBX, e.g. https://pbx.example.com:5001")
    client_id: str = setting(text, None, "Client ID of the API client (Admin > Integrations > API)")
    client_secret: str = setting(secret, None, "API key of that client; or set GATEWAY_PBX_CLIENT_SECRET",
                                 env="GATEWAY_PBX_CLIENT_SECRET")
    verify_tls: bool = setting(on_off, "true", "Verify the PBX's TLS certificate")
    timezone: str = setting(iana_zone, "UTC", "The PBX's time zone (IANA name); call ids use it")
    timeout_s: float = setting(seconds, "10", "Timeout of one request to the PBX, in seconds")
    read_workers: int = setting(positive_int, "8", "Call Control participant reads of different DNs run in "
                                "parallel, at most this many at once (a burst of new calls)")
    event_lag_warn_s: float = setting(seconds, "2", "/healthz warns when the oldest call event not yet "
                                      "applied is older than this, in seconds")


@dataclass(frozen=True)
class WebApiConfig:
    """[webapi]: the legacy HTTP surface."""

    key: str = setting(secret, None, "Access key in /webapi/<key>/...; or set GATEWAY_WEBAPI_KEY",
                       env="GATEWAY_WEBAPI_KEY")
    listen: str = setting(host_port, "127.0.0.1:8080", "Address the HTTP server listens on")
    public_url: str = setting(optional_url, "", "URL under which CRMs reach this service (for recording links)")
    tls_cert: str = setting(optional_path, "", "PEM certificate to serve HTTPS directly (optional)")
    tls_key: str = setting(optional_path, "", "PEM private key for tls_cert")
    threads: int = setting(positive_int, "16", "Request threads of the single worker process")
    cache_s: float = setting(seconds, "5", "How long directory answers (lists, members) may be cached")
    state_cache_s: float = setting(
        seconds, "1", "How long extension state read from the PBX (registration, status) may be reused")
    makecall_devices: tuple[str, ...] = setting(
        patterns, MAKECALL_DEVICES, "Which registered device makecall rings: user-agent patterns, preferred "
        "first; * stands for any agent no other pattern matches")


@dataclass(frozen=True)
class WebhooksConfig:
    """[webhooks]: where call events go and how."""

    url: str = setting(optional_url, "", "Where webhooks go; empty turns webhooks off")
    method: str = setting(http_method, "GET", "GET sends a query string, POST a JSON object")
    secret: str = setting(secret, "", "HMAC-SHA256 key for X-Webhook-Signature; or GATEWAY_WEBHOOKS_SECRET",
                          env="GATEWAY_WEBHOOKS_SECRET")
    internal_calls: bool = setting(on_off, "false", "Also send webhooks for extension-to-extension calls")
    recording_full_info: bool = setting(on_off, "false", "Add the call-end fields to the FILES webhook")
    answer_event: str = setting(answer_event, "hangup",
                                "Answer event names: hangup (hangupincoming) or pickup")
    ringing_cancelled: bool = setting(on_off, "false", "Send event=ringingcancelled when a phone stops ringing")
    timeout_s: float = setting(seconds, "10", "Timeout of one webhook request, in seconds")
    retry_hours: int = setting(positive_int, "24", "How long a webhook is retried before it is marked failed")
    keep_delivered_days: int = setting(days, "7", "Delivered webhooks stay in the outbox this long for inspection")
    purge_time: str = setting(hhmm, "04:30", "Time of day (PBX time zone) of the nightly purge of delivered webhooks")
    end_grace_s: float = setting(seconds_or_zero, "3", "How long a call with no monitored leg left waits "
                                 "before its end is final (0: at once)")
    recover_calls: bool = setting(
        on_off, "true", "After an outage or restart, send the missed calls' webhooks from the PBX call history")
    recover_max_gap_hours: int = setting(
        positive_int, "24", "Longer gaps are reported (log, /healthz, doctor), not recovered")
    extra_fields: bool = setting(on_off, "false", "Add chid, inbound_did, callername and phonebook to every webhook")


@dataclass(frozen=True)
class WebhookTargetConfig:
    """[webhook:NAME]: one more webhook target; any number of such sections. A filter is a
    comma-separated list, empty = all; an event goes to the target when every filter that is set
    matches it (gateway.webhooks.routing). The secret's environment variable is per target:
    GATEWAY_WEBHOOK_<NAME>_SECRET (`target_environment`)."""

    url: str = setting(url, None, "Where this target's webhooks go")
    method: str = setting(http_method, "GET", "GET sends a query string, POST a JSON object")
    secret: str = setting(secret, "", "HMAC-SHA256 key for X-Webhook-Signature; or GATEWAY_WEBHOOK_<NAME>_SECRET")
    timeout_s: float = setting(seconds, "10", "Timeout of one webhook request, in seconds")
    retry_hours: int = setting(positive_int, "24", "How long a webhook is retried before it is marked failed")
    extra_fields: bool = setting(on_off, "false", "Add chid, inbound_did, callername and phonebook to every webhook")
    extensions: frozenset[str] = setting(number_list, "", "Only events whose user is one of these extensions")
    queues: frozenset[str] = setting(number_list, "", "Only calls that went through one of these queues")
    ringgroups: frozenset[str] = setting(number_list, "", "Only calls that went through one of these ring groups")
    dids: frozenset[str] = setting(did_list, "", "Only calls that came in on one of these DIDs (rule names or numbers)")
    directions: frozenset[str] = setting(directions, "", "Only calls of these directions: inbound, outbound, internal")
    events: frozenset[str] = setting(event_kinds, "", "Only these events: ringing, start, end, files")


@dataclass(frozen=True)
class RecordingsConfig:
    """[recordings]: MP3 conversion, links and retention."""

    enabled: bool = setting(on_off, "true", "Convert recordings to MP3 and send the FILES webhook")
    mp3_dir: str = setting(directory, "/var/lib/3cx-gateway/mp3", "Where MP3 files are written and served from")
    keep_days: int = setting(days, "30", "MP3 files older than this are deleted nightly")
    cleanup_time: str = setting(hhmm, "03:00", "Time of day (PBX time zone) of the nightly cleanup")
    bitrate: str = setting(bitrate, "32k", "MP3 bitrate")
    local_dir: str = setting(optional_path, "", "The PBX's own recordings folder, when on the same host")
    signed_links: bool = setting(on_off, "true", "Sign recording links with an expiry (off: plain legacy links)")
    link_ttl_days: int = setting(days, "30", "How long a signed recording link stays valid")
    workers: int = setting(positive_int, "2", "Parallel ffmpeg conversions")
    wait_s: float = setting(seconds, "60", "How long to wait for a recording to appear after hangup")
    match_tolerance_s: float = setting(seconds, "3", "Without call history: how far outside its call's span "
                                                     "a recording may lie")


@dataclass(frozen=True)
class StorageConfig:
    """[storage]: where state lives."""

    state_dir: str = setting(directory, "/var/lib/3cx-gateway", "Outbox database and other state")


@dataclass(frozen=True)
class LoggingConfig:
    """[logging]."""

    level: str = setting(log_level, "INFO", "DEBUG (also every step of every call), INFO (one line per call, "
                         "when it ends), WARNING or ERROR")


SECTIONS: dict[str, type[Any]] = {
    "pbx": PbxConfig, "webapi": WebApiConfig, "webhooks": WebhooksConfig,
    "recordings": RecordingsConfig, "storage": StorageConfig, "logging": LoggingConfig,
}


class Key(NamedTuple):
    """One key of the schema as read from a section dataclass's field metadata."""

    kind: Callable[[str], Any]
    default: str | None
    help: str


def _keys(section_class: type[Any]) -> dict[str, Key]:
    return {f.name: Key(f.metadata["kind"], f.metadata["default"], f.metadata["help"])
            for f in fields(section_class)}


# section -> key -> (type, default, help); derived from the dataclasses above (README, example, tests).
SCHEMA: dict[str, dict[str, Key]] = {section: _keys(cls) for section, cls in SECTIONS.items()}

# Secrets may come from the environment instead of the file; the environment wins.
ENVIRONMENT: dict[tuple[str, str], str] = {
    (section, f.name): f.metadata["env"]
    for section, cls in SECTIONS.items() for f in fields(cls) if f.metadata["env"]
}

SECRET_KEYS = frozenset(ENVIRONMENT)

TARGET_PREFIX = "webhook:"
DEFAULT_TARGET = "default"   # the name [webhooks] goes by in the outbox, logs, /healthz and /metrics
TARGET_SCHEMA: dict[str, Key] = _keys(WebhookTargetConfig)
_TARGET_NAME = re.compile(r"[A-Za-z0-9_-]{1,40}")


def target_environment(name: str) -> str:
    """The environment variable that may hold target `name`'s secret."""
    return f"GATEWAY_WEBHOOK_{name.upper().replace('-', '_')}_SECRET"


@dataclass(frozen=True)
class WebhookTarget:
    """Where webhooks go and which ones: `[webhooks]` (named "default") or one `[webhook:NAME]`.

    The fields after `name` are WebhookTargetConfig's; an empty filter selects everything.
    """

    name: str
    url: str
    method: str = "GET"
    secret: str = ""
    timeout_s: float = 10.0
    retry_hours: int = 24
    extra_fields: bool = False
    extensions: frozenset[str] = frozenset()
    queues: frozenset[str] = frozenset()
    ringgroups: frozenset[str] = frozenset()
    dids: frozenset[str] = frozenset()
    directions: frozenset[str] = frozenset()
    events: frozenset[str] = frozenset()

    @classmethod
    def default(cls, webhooks: WebhooksConfig) -> WebhookTarget:
        """The default target: `[webhooks]`, unfiltered."""
        return cls(name=DEFAULT_TARGET, url=webhooks.url, method=webhooks.method, secret=webhooks.secret,
                   timeout_s=webhooks.timeout_s, retry_hours=webhooks.retry_hours,
                   extra_fields=webhooks.extra_fields)

    @classmethod
    def named(cls, name: str, section: WebhookTargetConfig) -> WebhookTarget:
        """The target of section [webhook:`name`]."""
        return cls(name=name, **{f.name: getattr(section, f.name) for f in fields(section)})


@dataclass(frozen=True)
class Config:
    """The whole configuration; `config.pbx.url`, `config.recordings.keep_days`, ..."""

    pbx: PbxConfig
    webapi: WebApiConfig
    webhooks: WebhooksConfig
    recordings: RecordingsConfig
    storage: StorageConfig
    logging: LoggingConfig
    source: str = field(default="<dict>", compare=False)
    extra_targets: tuple[WebhookTarget, ...] = ()   # the [webhook:NAME] sections, in file order

    @property
    def targets(self) -> tuple[WebhookTarget, ...]:
        """Every webhook target with a url: [webhooks] (when its url is set) first, then the others."""
        default = (WebhookTarget.default(self.webhooks),) if self.webhooks.url else ()
        return default + self.extra_targets

    def secrets(self) -> list[str]:
        """Every non-empty secret value, for the log redaction filter."""
        values = [str(getattr(getattr(self, s), k)) for s, k in SECRET_KEYS]
        values += [target.secret for target in self.extra_targets]
        return [v for v in values if v]


def from_dict(values: dict[str, dict[str, str]], source: str = "<dict>",
              environ: dict[str, str] | None = None) -> Config:
    """Build a Config from raw strings (as read from an ini file); raises ConfigError."""
    env: Mapping[str, str] = os.environ if environ is None else environ
    problems: list[str] = []
    for section in values:
        if section not in SCHEMA and not section.startswith(TARGET_PREFIX):
            problems.append(f"{source} [{section}]: unknown section (known: {', '.join(SCHEMA)}, "
                            f"{TARGET_PREFIX}NAME)")
    sections: dict[str, Any] = {}
    for section, keys in SCHEMA.items():
        env_names = {key: name for (where, key), name in ENVIRONMENT.items() if where == section}
        parsed = _parse_keys(f"{source} [{section}]", values.get(section, {}), keys, env, env_names, problems)
        if not problems:
            sections[section] = SECTIONS[section](**parsed)
    targets = [_target(section, raw, source, env, problems)
               for section, raw in values.items() if section.startswith(TARGET_PREFIX)]
    if problems:
        raise ConfigError("\n".join(problems))
    return Config(**sections, source=source, extra_targets=tuple(t for t in targets if t is not None))


def _target(section: str, raw_section: dict[str, str], source: str, env: Mapping[str, str],
            problems: list[str]) -> WebhookTarget | None:
    """One [webhook:NAME] section as a WebhookTarget; appends to `problems` and returns None if bad."""
    name = section[len(TARGET_PREFIX):]
    count = len(problems)
    if not _TARGET_NAME.fullmatch(name) or name == DEFAULT_TARGET:
        problems.append(f"{source} [{section}]: expected [{TARGET_PREFIX}NAME] with NAME of letters, digits,"
                        f" '-' or '_' (not {DEFAULT_TARGET!r}, the name of [webhooks])")
    parsed = _parse_keys(f"{source} [{section}]", raw_section, TARGET_SCHEMA, env,
                         {"secret": target_environment(name)}, problems)
    if len(problems) > count:
        return None
    return WebhookTarget.named(name, WebhookTargetConfig(**parsed))


def _parse_keys(label: str, raw_section: Mapping[str, str], schema: dict[str, Key], env: Mapping[str, str],
                env_names: Mapping[str, str], problems: list[str]) -> dict[str, Any]:
    """Each key of `schema` read from `raw_section`, a variable of `env_names` (key -> name) set in
    `env` taking its place; unknown, missing and bad keys are appended to `problems` ("label key: ..."),
    the value of a key read from the environment (a secret) never shown."""
    for key in raw_section:
        if key not in schema:
            problems.append(f"{label} {key}: unknown key (known: {', '.join(schema)})")
    parsed: dict[str, Any] = {}
    for key, (kind, default, help_text) in schema.items():
        raw = raw_section.get(key)
        env_name = env_names.get(key)
        if env_name and env.get(env_name):
            raw = env[env_name]
        if raw is None or (raw.strip() == "" and default is None):
            if default is None:
                hint = f" (or set {env_name})" if env_name else ""
                problems.append(f"{label} {key}: missing; {help_text}{hint}")
                continue
            raw = default
        try:
            parsed[key] = kind(raw)
        except ValueError as exc:
            shown = "<hidden>" if env_name else repr(raw)
            problems.append(f"{label} {key}: {exc}, got {shown}")
    return parsed


def warnings(config: Config) -> list[str]:
    """Settings that are valid but probably not what the administrator meant (check-config prints them)."""
    found = []
    for target in config.extra_targets:
        if "internal" in target.directions and not config.webhooks.internal_calls:
            found.append(f"{config.source} [{TARGET_PREFIX}{target.name}] directions: internal calls make no"
                         " webhooks unless [webhooks] internal_calls = true")
    return found


def load(path: str | Path, environ: dict[str, str] | None = None) -> Config:
    """Read and validate a config.ini; raises ConfigError listing every problem."""
    path = Path(path)
    parser = configparser.ConfigParser(interpolation=None, default_section="__none__")
    try:
        with path.open(encoding="utf-8") as handle:
            parser.read_file(handle)
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such file") from None
    except (configparser.Error, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: not a valid ini file: {exc}") from None
    values = {s: dict(parser.items(s)) for s in parser.sections()}
    return from_dict(values, source=str(path), environ=environ)


def section_fields(section: str) -> list[str]:
    """The key names of one section, in schema order."""
    return [f.name for f in fields(SECTIONS[section])]
