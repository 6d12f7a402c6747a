"""The capture file: JSON Lines, one record per line, in the order the gateway saw them.

    {"type": "capture", "version": 1, "gateway": "0.1.0", "source": "service", "started_at": "...",
     "anonymized": true, "rules": {"timezone": "Europe/Prague", "answer_event": "hangup", ...}}
    {"type": "state", "t": ..., "body": [DNInfo, ...]}        GET /callcontrol when the capture began
    {"type": "did_rules", "t": ..., "body": [InboundRule, ...]}   XAPI /InboundRules then
    {"type": "connect", "t": ...}                              the event stream (re)connected; a resync follows
    {"type": "message", "t": ..., "body": {"sequence": .., "event": {...}}}   a WebSocket message
    {"type": "read", "t": ..., "api": "callcontrol", "call": "participant", "args": ["101", 7],
     "body": {...}}   or  "error": {"class": "PbxNotFound", "message": "..."}   a read the watcher made
                      ("call": "listed_participants", "args": ["101", [7, 9]]: one read for several events of a DN)
    {"type": "webhook", "t": ..., "call_key": "...", "params": {...}}   a webhook the gateway produced
    {"type": "end", "t": ..., "dropped": 0}

`t` is epoch seconds. No token is ever part of a record; `write_line` also masks the configured
secrets and anything shaped like a token. `Pseudonyms` replaces phone numbers and names
consistently within one file, so a capture can be attached to a bug report.
"""
from __future__ import annotations

import hashlib
import hmac
import json
import logging
import re
import secrets
from pathlib import Path
from typing import Any, Iterable, Iterator, TextIO

from gateway.logs import redact

logger = logging.getLogger(__name__)

VERSION = 1
Record = dict[str, Any]

# Digit runs this long or longer are phone numbers (outside numbers, DIDs); shorter ones are
# extension, queue and trunk DNs, which stay readable.
NUMBER_DIGITS = 7
_NUMBER = re.compile(r"\d{%d,}" % NUMBER_DIGITS)
_IPV4 = re.compile(r"\b(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})\b")

# Participant fields that hold numbers or names of people and places.
_PARTY_NUMBER_FIELDS = ("party_caller_id", "party_did", "party_dn")
_PARTY_NAME_FIELDS = ("party_caller_name",)


class CaptureFormatError(ValueError):
    """A capture file that cannot be read (the message names the line)."""


def read_records(path: str | Path) -> list[Record]:
    """Every record of a capture file; CaptureFormatError on a line that is not a JSON object."""
    records = []
    try:
        lines = Path(path).read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        raise CaptureFormatError(f"cannot read {path}: {exc.strerror or exc}") from None
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except ValueError as exc:
            raise CaptureFormatError(f"{path}:{number}: not JSON ({exc})") from None
        if not isinstance(record, dict) or "type" not in record:
            raise CaptureFormatError(f"{path}:{number}: not a capture record")
        records.append(record)
    return records


def write_line(out: TextIO, record: Record, secrets_: Iterable[str] = ()) -> None:
    """One record as one line, with secrets and token-shaped strings masked."""
    out.write(redact(json.dumps(record, ensure_ascii=False, separators=(",", ":")), secrets_) + "\n")


class Pseudonyms:
    """Consistent stand-ins for phone numbers, names and IP addresses within one capture.

    A number keeps its length and punctuation (`+420774852529` -> `+555…`), the same digits get
    the same stand-in wherever they appear (participants, DID rules, webhooks and their titles), so
    replaying an anonymised capture gives the anonymised webhooks. Extension numbers (fewer than
    NUMBER_DIGITS digits), ids and type names are kept.
    """

    def __init__(self, key: bytes | None = None) -> None:
        self._key = key or secrets.token_bytes(16)
        self._numbers: dict[str, str] = {}
        self._names: dict[str, str] = {}
        self._hosts: dict[str, str] = {}

    def records(self, records: Iterable[Record]) -> Iterator[Record]:
        for record in records:
            yield self.record(record)

    def record(self, record: Record) -> Record:
        """The record with its numbers and names replaced (a new dict; the input is not changed)."""
        kind = record.get("type")
        record = json.loads(json.dumps(record))
        if kind in ("state", "read"):
            record["body"] = self._pbx_body(record.get("body"))
        elif kind == "did_rules":
            record["body"] = [self._rule(rule) for rule in record.get("body") or [] if isinstance(rule, dict)]
        elif kind == "webhook":
            record["params"] = {key: self._text(value) if key in ("callerid", "did", "title") else value
                                for key, value in (record.get("params") or {}).items()}
        return record

    # --- PBX answers -------------------------------------------------------------------------------

    def _pbx_body(self, body: Any) -> Any:
        if isinstance(body, list):
            return [self._pbx_body(item) for item in body]
        if not isinstance(body, dict):
            return body
        out = {}
        for key, value in body.items():
            if key in _PARTY_NUMBER_FIELDS and isinstance(value, str):
                out[key] = self.number_text(value)
            elif key in _PARTY_NAME_FIELDS and isinstance(value, str):
                out[key] = self.name(value, "Caller")
            elif key == "device_id" and isinstance(value, str):
                out[key] = self.hosts(value)
            elif key in ("RuleName",) and isinstance(value, str):
                out[key] = self.name(value, "DID rule")
            elif key in ("Data", "ExternalNumber", "Number") and isinstance(value, str):
                out[key] = self.number_text(value)
            elif isinstance(value, (dict, list)):
                out[key] = self._pbx_body(value)
            else:
                out[key] = value
        return out

    def _rule(self, rule: dict[str, Any]) -> Any:
        return self._pbx_body(rule)

    # --- strings ---------------------------------------------------------------------------------

    def number_text(self, text: str) -> str:
        """`text` with every run of NUMBER_DIGITS or more digits replaced by its stand-in."""
        return _NUMBER.sub(lambda m: self._number(m.group(0)), text)

    def name(self, text: str, prefix: str) -> str:
        """A stand-in for a person's or rule's name ("" stays ""; a name that is a number is a number)."""
        if not text or not text.strip():
            return text
        if _NUMBER.search(text) and not re.search(r"[A-Za-z]", text.replace("+", "")):
            return self.number_text(text)
        if text not in self._names:
            self._names[text] = f"{prefix} {len(self._names) + 1}"
        return self._names[text]

    def hosts(self, text: str) -> str:
        """`text` with each IPv4 address replaced by one from the documentation range 192.0.2.0/24."""
        def host(match: re.Match[str]) -> str:
            address = match.group(0)
            if address.startswith("127."):
                return address
            if address not in self._hosts:
                self._hosts[address] = f"192.0.2.{len(self._hosts) % 254 + 1}"
            return self._hosts[address]

        return _IPV4.sub(host, text)

    def _text(self, value: Any) -> Any:
        """A webhook field: known names first (longest first), then numbers."""
        if not isinstance(value, str):
            return value
        for original in sorted(self._names, key=len, reverse=True):
            if len(original) >= 3 and original in value:
                value = value.replace(original, self._names[original])
        return self.number_text(value)

    def _number(self, digits: str) -> str:
        if digits not in self._numbers:
            mac = hmac.new(self._key, digits.encode(), hashlib.sha256).hexdigest()
            body = "".join(str(int(c, 16) % 10) for c in mac)
            self._numbers[digits] = ("555" + body)[:len(digits)]
        return self._numbers[digits]
