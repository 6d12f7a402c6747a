"""What the PBX sent that the gateway has no reading for: `Unknowns`, filled by `live/v20.py`.

Each distinct (kind, raw value) is logged once, as a warning naming the raw value and how the
gateway read it instead, and counted after that; `/metrics`, `doctor`, `capture` and `replay` show
the list. Any thread may call `note`; readers get snapshots.
"""
from __future__ import annotations

import logging
import threading
from dataclasses import dataclass

logger = logging.getLogger(__name__)

# kind -> how a report names it
KINDS = {
    "status": "status word",
    "type": "type name",
    "field": "unexpected field",
    "missing": "missing field",
    "unplaced": "participant not placed in a call",
    "event": "event the gateway does not handle",
}
MAX_VALUES = 200          # distinct values kept; later ones are counted under "(more)"
MAX_VALUE_CHARS = 80


@dataclass(frozen=True)
class Unknown:
    """One value the gateway did not understand: `kind` (a KINDS key), the raw `value`, where it was
    first seen (`where`, e.g. the participant's entity), how it was read instead, and how often."""

    kind: str
    value: str
    where: str
    reading: str
    count: int

    def describe(self) -> str:
        """One line for a person: `status word 'Parked' (3x, first on /callcontrol/101/...): read as ...`."""
        where = f", first at {self.where}" if self.where else ""
        return f"{KINDS.get(self.kind, self.kind)} {self.value!r} ({self.count}x{where}): {self.reading}"


class Unknowns:
    """The set of unknown values seen since start (or since this object was made)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._seen: dict[tuple[str, str], Unknown] = {}

    def note(self, kind: str, value: object, *, reading: str, where: str = "") -> None:
        """Record one sighting of `value`; the first of each (kind, value) is logged as a warning."""
        text = str(value)[:MAX_VALUE_CHARS]
        key = (kind, text)
        with self._lock:
            known = self._seen.get(key)
            if known is None and len(self._seen) >= MAX_VALUES:
                key = (kind, "(more)")
                known = self._seen.get(key)
                text = "(more)"
            if known is not None:
                self._seen[key] = Unknown(kind, known.value, known.where, known.reading, known.count + 1)
                return
            self._seen[key] = Unknown(kind, text, where, reading, 1)
        logger.warning("not understood from the PBX: %s %r (at %s); %s",
                       KINDS.get(kind, kind), text, where or "?", reading)

    def items(self) -> list[Unknown]:
        """Every unknown value, in the order first seen."""
        with self._lock:
            return list(self._seen.values())

    def __len__(self) -> int:
        with self._lock:
            return len(self._seen)

    def report(self) -> list[str]:
        """One line per unknown value (empty when everything was understood)."""
        return [unknown.describe() for unknown in self.items()]
