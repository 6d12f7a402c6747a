"""Phonebook names for the opt-in `phonebook` webhook field: outside number → PBX contact name.

Looked up through XAPI `/Contacts/Pbx.GetContactsByNumber` (from 20.0.9, V20-API-NOTES §c; it
matches numbers however they are formatted), or on older builds `/Contacts` with `contains()` on
every number field (numbers stored with spaces are then not found). Either answer is matched here
by digits: equal, or one ends with the other over at least MIN_MATCH_DIGITS digits. Answers, "not
found" included, are cached for `ttl_s`; after a failed lookup no lookup is made for `ttl_s`, so an
unreachable PBX costs one timeout, not one per event.
"""
from __future__ import annotations

import logging
import re
import threading
from typing import Any

from gateway.clock import Clock
from gateway.pbx import odata
from gateway.pbx.errors import PbxError, PbxNotFound, PbxRejected

logger = logging.getLogger(__name__)

NUMBER_FIELDS = ("PhoneNumber", "Mobile2", "Home", "Business", "Business2", "BusinessFax", "Pager", "Other")
MIN_MATCH_DIGITS = 7
SEARCH_DIGITS = 9        # the PBX is asked for numbers containing the last this-many digits
TTL_S = 60.0
MAX_ENTRIES = 2000


def _digits(number: str) -> str:
    return re.sub(r"\D", "", number)


def is_same_number(a: str, b: str) -> bool:
    """Equal digits, or one ends with the other over at least MIN_MATCH_DIGITS digits."""
    a, b = _digits(a), _digits(b)
    if not a or not b:
        return False
    short, long = sorted((a, b), key=len)
    return a == b or (len(short) >= MIN_MATCH_DIGITS and long.endswith(short))


def contact_name(row: dict[str, Any]) -> str:
    """"First Last", else the company name."""
    name = " ".join(str(row.get(key) or "").strip() for key in ("FirstName", "LastName")).strip()
    return name or str(row.get("CompanyName") or "").strip()


class Phonebook:
    """`name_of(number)`: the phonebook contact name for an outside number, "" when none; any thread."""

    def __init__(self, xapi: Any, *, clock: Clock, ttl_s: float = TTL_S) -> None:
        self._xapi = xapi
        self._clock = clock
        self._ttl_s = ttl_s
        self._lock = threading.Lock()
        self._names: dict[str, tuple[str, float]] = {}
        self._paused_until = 0.0
        self._has_function = True

    def name_of(self, number: str) -> str:
        digits = _digits(number)
        if len(digits) < 3:
            return ""
        now = self._clock.time()
        with self._lock:
            cached = self._names.get(digits)
            if cached is not None and now - cached[1] < self._ttl_s:
                return cached[0]
            if now < self._paused_until:
                return ""
        try:
            name = self._lookup(number.strip(), digits)
        except PbxError as exc:
            logger.warning("phonebook lookup of a number failed (%s); phonebook fields stay empty for %.0fs",
                           exc, self._ttl_s)
            with self._lock:
                self._paused_until = now + self._ttl_s
            return ""
        with self._lock:
            if len(self._names) >= MAX_ENTRIES:
                self._names.clear()
            self._names[digits] = (name, now)
        return name

    def _lookup(self, number: str, digits: str) -> str:
        select = ",".join(("Id", "FirstName", "LastName", "CompanyName", *NUMBER_FIELDS))
        if self._has_function:
            try:
                # ≥ 20.0.9: the PBX's own number match, which sees through spaces and dashes.
                body = self._xapi.get(f"/Contacts/Pbx.GetContactsByNumber(number={odata.quote(number)})",
                                      {"$select": select, "$top": 50})
                return self._best(body.get("value") if isinstance(body, dict) else None, digits)
            except (PbxNotFound, PbxRejected) as exc:
                logger.info("phonebook: Pbx.GetContactsByNumber not available (%s); using contains()", exc)
                self._has_function = False
        tail = digits[-SEARCH_DIGITS:]
        rows = self._xapi.list("Contacts", filter=odata.any_of(*(odata.contains(f, tail) for f in NUMBER_FIELDS)),
                               select=select, top=50)
        return self._best(rows, digits)

    @staticmethod
    def _best(rows: Any, digits: str) -> str:
        """The name of the oldest contact with a number that is the same as `digits`."""
        for row in sorted(rows if isinstance(rows, list) else [], key=lambda r: int(r.get("Id") or 0)):
            if any(is_same_number(str(row.get(f) or ""), digits) for f in NUMBER_FIELDS):
                return contact_name(row)
        return ""
