"""`3cx-gateway doctor`: finds what makes integrations silently do nothing on v20, and says how to fix it.

Each check prints one line, `OK`, `WARN` or `FAIL`, with what it found and, when not OK, what to
change. FAIL is a blocking problem (the exit status is then 1); WARN degrades part of the service.
The checks only read: no webhook is sent, no PBX setting is changed. No line shows a secret.
The one side effect: v20 keeps one token per API client, so the doctor's token replaces a running
service's; the service gets a new one on its next request and its event stream reconnects and
resynchronises (V20-API-NOTES §a).
"""
from __future__ import annotations

import logging
import os
import shutil
import sqlite3
import sys
import tempfile
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Callable, TextIO
from urllib.parse import urlsplit, urlunsplit

import requests

from gateway.clock import Clock
from gateway.config import Config, WebhookTarget
from gateway.live.gaps import GapStore, gaps_path
from gateway.logs import redact
from gateway.pbx.auth import TokenSource
from gateway.pbx.callcontrol import CallControlClient
from gateway.pbx.errors import PbxAuthFailed, PbxError, PbxRejected, PbxUnreachable
from gateway.pbx.http import new_session
from gateway.pbx.xapi import XapiClient
from gateway.webhooks.routing import unknown_filter_values

logger = logging.getLogger(__name__)

OK, WARN, FAIL = "OK", "WARN", "FAIL"
MAX_LISTED = 20                    # unmonitored numbers named per kind before "and N more"
API_SETTINGS = "3CX Admin > Integrations > API"
GAP_DAYS = 7                       # uncovered gaps this recent are reported

# XAPI entity set -> how the admin calls those numbers, in the order they are reported.
DIRECTORY_SETS = (("Users", "extensions"), ("Queues", "queues"), ("RingGroups", "ring groups"))


@dataclass(frozen=True)
class Finding:
    """One check's result: `status` is OK, WARN or FAIL; `message` says what and how to fix it."""

    status: str
    check: str
    message: str


class _Pbx:
    """The PBX clients the checks use, built like the service builds them."""

    def __init__(self, config: Config, session: requests.Session) -> None:
        pbx = config.pbx
        self.tokens = TokenSource(session, pbx.url, pbx.client_id, pbx.client_secret,
                                  timeout_s=pbx.timeout_s, clock=Clock())
        self.xapi = XapiClient(session, pbx.url, self.tokens, timeout_s=pbx.timeout_s)
        self.callcontrol = CallControlClient(session, pbx.url, self.tokens, timeout_s=pbx.timeout_s)


def run_doctor(config: Config, *, out: TextIO | None = None,
               session: requests.Session | None = None, watch_minutes: float = 0) -> int:
    """Run every check, print one line each to `out` (stdout); 1 when any check FAILed, else 0.

    With `watch_minutes`, then watch that long of live traffic (read-only) and name what the
    gateway could not read in it.
    """
    out = out or sys.stdout
    findings = diagnose(config, session=session)
    if watch_minutes:
        findings.append(check_watch(config, watch_minutes, out))
    secrets = config.secrets()
    for finding in findings:
        print(redact(f"{finding.status:<4} {finding.check}: {finding.message}", secrets), file=out)
    failed = sum(1 for f in findings if f.status == FAIL)
    warned = sum(1 for f in findings if f.status == WARN)
    print(f"doctor: {failed} problem(s), {warned} warning(s)", file=out)
    return 1 if failed else 0


def diagnose(config: Config, *, session: requests.Session | None = None) -> list[Finding]:
    """Every check's Finding, PBX checks first; checks that need an answer earlier ones lack are left out."""
    own_session = session is None
    session = session or new_session(verify_tls=config.pbx.verify_tls, url=config.pbx.url)
    try:
        findings = check_pbx(config, _Pbx(config, session))
    finally:
        if own_session:
            session.close()
    findings.append(check_readings(config))
    findings.append(check_webhook_url(config))
    findings.extend(check_target_url(target) for target in config.extra_targets)
    findings.extend(check_folders(config))
    findings.append(check_gaps(config))
    findings.extend(check_ffmpeg(config))
    return findings


# --- the PBX ---------------------------------------------------------------------------------

def check_pbx(config: Config, pbx: _Pbx) -> list[Finding]:
    """Token, API access, version, role and monitored numbers, in the order each depends on the last."""
    url, client_id = config.pbx.url, config.pbx.client_id
    try:
        pbx.tokens.token()
    except PbxUnreachable as exc:
        return [Finding(FAIL, "pbx", f"cannot reach the PBX at {url}: {exc}. Check [pbx] url and the network; "
                                     "with a self-signed certificate set [pbx] verify_tls = false")]
    except PbxAuthFailed as exc:
        return [Finding(OK, "pbx", f"the PBX at {url} answers"),
                Finding(FAIL, "token", f"{exc}. Re-copy the client id and API key from {API_SETTINGS} "
                                       "into [pbx] client_id and client_secret")]
    except PbxError as exc:
        return [Finding(FAIL, "token", f"the PBX at {url} gave no token: {exc}")]
    token = Finding(OK, "token", f"the PBX accepted API client {client_id!r}")

    xapi = _probe(pbx.xapi.version, "xapi", "3CX Configuration API access")
    if isinstance(xapi, Finding):
        findings = [Finding(OK, "pbx", f"the PBX at {url} answers"), token, xapi]
    else:
        findings = [_version_finding(url, xapi), token,
                    Finding(OK, "xapi", "Configuration API access is enabled")]
    states = _probe(pbx.callcontrol.all_states, "callcontrol", "3CX Call Control API access")
    if isinstance(states, Finding):
        findings.append(states)
    else:
        findings.append(Finding(OK, "callcontrol", "Call Control API access is enabled"))
    if isinstance(xapi, Finding):
        return findings

    findings.append(check_role(config, pbx.xapi))
    findings.append(check_call_history(config, pbx.xapi))
    if not isinstance(states, Finding):
        findings.append(check_monitored(pbx.xapi, states))
    return findings


def _probe(call: Callable[[], object], check: str, tick: str) -> object:
    """`call()`'s answer, or the FAIL Finding that explains why the API refused or failed."""
    try:
        return call()
    except PbxRejected as exc:
        if exc.status == 403:
            return Finding(FAIL, check, f"the API client may not use this API (403). Tick \"{tick}\" "
                                        f"for the client in {API_SETTINGS}")
        return Finding(FAIL, check, f"the PBX refused the request: {exc}")
    except PbxError as exc:
        return Finding(FAIL, check, str(exc))


def _version_finding(url: str, version: object) -> Finding:
    if not version:
        return Finding(OK, "pbx", f"the PBX at {url} answers (it did not say its version)")
    major = str(version).split(".", 1)[0]
    if major.isdigit() and int(major) < 20:
        return Finding(FAIL, "pbx", f"the PBX at {url} runs 3CX {version}; the gateway needs 3CX v20")
    return Finding(OK, "pbx", f"the PBX at {url} answers; 3CX version {version}")


def check_role(config: Config, xapi: XapiClient) -> Finding:
    """Recordings and call history need the System Owner role; a lower role answers 403."""
    try:
        xapi.list("Recordings", select="Id", top=1)
    except PbxRejected as exc:
        if exc.status != 403:
            return Finding(WARN, "role", f"cannot list recordings: {exc}")
        # Without recordings the FILES webhook never comes: blocking when recordings are on.
        status = FAIL if config.recordings.enabled else WARN
        return Finding(status, "role", "the API client's role is below System Owner (403 on Recordings): "
                                       "no recordings and no call history. Give it the System Owner role "
                                       f"in {API_SETTINGS}")
    except PbxError as exc:
        return Finding(WARN, "role", f"cannot list recordings: {exc}")
    return Finding(OK, "role", "the API client may read recordings (System Owner)")


def check_call_history(config: Config, xapi: XapiClient) -> Finding:
    """Calls missed during an outage or restart are recovered from the call history (System Owner)."""
    if not config.webhooks.recover_calls:
        return Finding(OK, "history", "recovery from the call history is off ([webhooks] recover_calls)")
    now = datetime.now(timezone.utc)
    try:
        xapi.call_log(now - timedelta(minutes=1), now)
    except PbxRejected as exc:
        if exc.status == 403:
            return Finding(WARN, "history", "the call history answers 403: calls made while the gateway is down or "
                                            "disconnected will not be reported. Give the API client the System "
                                            f"Owner role in {API_SETTINGS}")
        return Finding(WARN, "history", f"the call history cannot be read: {exc}")
    except PbxError as exc:
        return Finding(WARN, "history", f"the call history cannot be read: {exc}")
    return Finding(OK, "history", "the call history can be read: gaps in the event stream are recovered")


def check_gaps(config: Config) -> Finding:
    """Outages whose calls could not be recovered, as the service recorded them."""
    path = gaps_path(config.storage.state_dir)
    if not path.exists():
        return Finding(OK, "gaps", "no outage recorded yet")
    store = GapStore(path)
    try:
        gaps = store.uncovered(datetime.now(timezone.utc) - timedelta(days=GAP_DAYS))
    except sqlite3.Error as exc:
        return Finding(WARN, "gaps", f"cannot read {path}: {exc}")
    finally:
        store.close()
    if not gaps:
        return Finding(OK, "gaps", f"every outage of the last {GAP_DAYS} days was recovered from the call history")
    listed = "; ".join(gap.describe() for gap in gaps[:5])
    more = f" (and {len(gaps) - 5} more)" if len(gaps) > 5 else ""
    return Finding(WARN, "gaps", f"{listed}{more}. Those calls never reached the CRM; see 3CX's call history")


def check_monitored(xapi: XapiClient, states: object) -> Finding:
    """Numbers that exist but are not in the API client's "Extensions to monitor" give no events."""
    monitored = {str(state.get("dn")) for state in states if isinstance(state, dict)} \
        if isinstance(states, list) else set()
    missing: list[str] = []
    counts: list[str] = []
    for entity_set, kind in DIRECTORY_SETS:
        try:
            numbers = sorted(str(row.get("Number")) for row in xapi.list(entity_set, select="Number")
                             if row.get("Number"))
        except PbxError as exc:
            return Finding(WARN, "monitored", f"cannot list {kind}: {exc}")
        unmonitored = [n for n in numbers if n not in monitored]
        counts.append(f"{len(numbers) - len(unmonitored)} of {len(numbers)} {kind}")
        if unmonitored:
            shown = ", ".join(unmonitored[:MAX_LISTED])
            more = f" and {len(unmonitored) - MAX_LISTED} more" if len(unmonitored) > MAX_LISTED else ""
            missing.append(f"{kind} {shown}{more}")
    if missing:
        return Finding(WARN, "monitored", f"not monitored, so their calls send no webhooks and show no live "
                                          f"state: {'; '.join(missing)}. Add them to \"Extensions to "
                                          f"monitor\" of the API client in {API_SETTINGS}")
    return Finding(OK, "monitored", f"the API client monitors {', '.join(counts)}")


# --- what the PBX sends ------------------------------------------------------------------------

def check_readings(config: Config) -> Finding:
    """Status words, type names and fields the running service met and has no reading for."""
    from gateway.capture.commands import service_unknowns, unknown_lines
    from gateway.capture.control import ServiceUnreachable
    try:
        unknowns = service_unknowns(config)
    except (ServiceUnreachable, OSError, ValueError) as exc:
        return Finding(WARN, "readings", f"cannot ask the running service: {exc}")
    if unknowns is None:
        return Finding(OK, "readings", "no service is running to ask; `doctor --watch N` reads N minutes of "
                                       "live traffic")
    if unknowns:
        listed = "; ".join(unknown_lines(unknowns))
        return Finding(WARN, "readings", "the PBX sent what the gateway does not know (calls are still "
                                         f"tracked; please report it with a capture): {listed}")
    return Finding(OK, "readings", "the running service understood everything the PBX sent")


def check_watch(config: Config, minutes: float, out: TextIO) -> Finding:
    """`minutes` of live traffic, read-only: what in it the gateway could not read."""
    from gateway.capture.commands import unknown_lines, watch
    from gateway.capture.control import ServiceUnreachable
    print(f"watching {minutes:g} minute(s) of live traffic...", file=out)
    try:
        result = watch(config, minutes, out)
    except (ServiceUnreachable, PbxError) as exc:
        return Finding(WARN, "watch", f"cannot watch live traffic: {exc}")
    lines = unknown_lines(result.unknowns.items())
    calls = len({w.v20_call_id for w in result.webhooks})
    if lines:
        return Finding(WARN, "watch", f"in {minutes:g} minute(s) ({calls} calls with webhooks) the gateway could "
                                      f"not read: {'; '.join(lines)}. Record a capture and report it")
    return Finding(OK, "watch", f"{minutes:g} minute(s) of live traffic ({calls} calls with webhooks): every "
                                "status, type name and field was understood")


def target_filter_warnings(config: Config, xapi: XapiClient) -> list[str]:
    """Filter values of the webhook targets that name nothing on the PBX (check-config prints them)."""
    targets = [t for t in config.extra_targets if t.extensions or t.queues or t.ringgroups or t.dids]
    if not targets:
        return []
    known: dict[str, set[str]] = {}
    try:
        for entity_set, key in (("Users", "extensions"), ("Queues", "queues"), ("RingGroups", "ringgroups")):
            known[key] = {str(row["Number"]) for row in xapi.list(entity_set, select="Number") if row.get("Number")}
        known["dids"] = {str(row.get(field)) for row in xapi.list("InboundRules", select="RuleName,Data")
                         for field in ("RuleName", "Data") if row.get(field)}
    except PbxError as exc:
        return [f"cannot check the webhook target filters against the PBX: {exc}"]
    return unknown_filter_values(targets, known)


# --- webhooks, folders, ffmpeg ----------------------------------------------------------------

def check_webhook_url(config: Config) -> Finding:
    """A HEAD request (no event is sent); any HTTP answer, even 404 or 405, counts as reachable."""
    url = config.webhooks.url
    if not url:
        return Finding(WARN, "webhooks", "[webhooks] url is empty: no webhooks are sent")
    shown = _without_query(url)
    try:
        response = requests.head(url, timeout=config.webhooks.timeout_s, allow_redirects=False,
                                 headers={"User-Agent": "3cx-gateway doctor"})
    except requests.RequestException as exc:
        return Finding(WARN, "webhooks", f"cannot reach {shown} ({type(exc).__name__}): webhooks wait in the "
                                         f"outbox and are retried for {config.webhooks.retry_hours} h. Check "
                                         "[webhooks] url, DNS and the firewall")
    return Finding(OK, "webhooks", f"{shown} answers (HTTP {response.status_code} to HEAD)")


def check_target_url(target: WebhookTarget) -> Finding:
    """check_webhook_url for one [webhook:NAME] target."""
    check, shown = f"webhook:{target.name}", _without_query(target.url)
    try:
        response = requests.head(target.url, timeout=target.timeout_s, allow_redirects=False,
                                 headers={"User-Agent": "3cx-gateway doctor"})
    except requests.RequestException as exc:
        return Finding(WARN, check, f"cannot reach {shown} ({type(exc).__name__}): its webhooks wait in the "
                                    f"outbox and are retried for {target.retry_hours} h; other targets are "
                                    f"not delayed. Check [webhook:{target.name}] url, DNS and the firewall")
    return Finding(OK, check, f"{shown} answers (HTTP {response.status_code} to HEAD)")


def _without_query(url: str) -> str:
    """The URL without query and fragment, which may hold a receiver's token."""
    parts = urlsplit(url)
    netloc = parts.hostname or ""
    if parts.port:
        netloc = f"{netloc}:{parts.port}"
    return urlunsplit((parts.scheme, netloc, parts.path, "", ""))


def check_folders(config: Config) -> list[Finding]:
    """The state folder (webhook outbox) and, with recordings on, the MP3 folder must be writable."""
    findings = [_writable("state_dir", Path(config.storage.state_dir), "[storage] state_dir")]
    if config.recordings.enabled:
        findings.append(_writable("mp3_dir", Path(config.recordings.mp3_dir), "[recordings] mp3_dir"))
    return findings


def _writable(check: str, path: Path, key: str) -> Finding:
    user = _user_name()
    # root may write anywhere; only the service user's own run says whether the service can.
    as_root = " (checked as root: run `sudo -u 3cx-gateway 3cx-gateway doctor` for the service's view)" \
        if os.geteuid() == 0 else ""
    if path.exists() and not path.is_dir():
        return Finding(FAIL, check, f"{key} {path} is not a folder")
    if not path.exists():
        parent = next((p for p in path.parents if p.exists()), None)
        if parent is None or not parent.is_dir() or not os.access(parent, os.W_OK | os.X_OK):
            return Finding(FAIL, check, f"{key} {path} does not exist and {user} cannot create it")
        return Finding(OK, check, f"{key} {path} does not exist yet; {user} can create it{as_root}")
    try:
        with tempfile.TemporaryFile(dir=path):
            pass
    except OSError as exc:
        return Finding(FAIL, check, f"{user} cannot write to {key} {path} ({exc.strerror}). Make it "
                                    "writable by the service user (3cx-gateway)")
    return Finding(OK, check, f"{key} {path} is writable by {user}{as_root}")


def _user_name() -> str:
    try:
        import pwd
        return f"user {pwd.getpwuid(os.geteuid()).pw_name}"
    except (ImportError, KeyError):
        return "this user"


def check_ffmpeg(config: Config) -> list[Finding]:
    """ffmpeg converts recordings to MP3 and ffprobe reads their length."""
    findings = []
    for program in ("ffmpeg", "ffprobe"):
        path = shutil.which(program)
        if path:
            findings.append(Finding(OK, program, f"found at {path}"))
        elif config.recordings.enabled:
            findings.append(Finding(FAIL, program, f"{program} is not installed: recordings cannot be "
                                                   "converted. Install it: apt-get install ffmpeg"))
        else:
            findings.append(Finding(WARN, program, f"{program} is not installed (recordings are off)"))
    return findings
