"""The live call table on disk: one row per call in progress, committed with that call's webhook events.

A call that is ringing or talking when the service stops (SIGTERM, kill -9, power cut) keeps, after
the restart, its call-link id (arrival time, call number), its link number, its answer times and
the record of what was already reported (which legs rang, answered, finished): the watcher loads
the rows at start and the resync that follows diffs them against `GET /callcontrol` as usual.

Rows live in the outbox's SQLite file (table `live_calls`), written in the same transaction as the
webhook events of the step that produced them (`Outbox.transaction`). A crash therefore leaves
either the old row and none of the step's events, or the new row and all of them: the step is
never reported twice, and never lost (the resync after the restart replays it from the PBX's
state). Which steps are written is the watcher's choice (`Watcher._feed`: every step with webhooks,
and the steps that create, end or start the grace period of a call). Only the watcher thread
writes, and the watcher's start before its thread runs.

A row holds the frozen `Call` (with its legs) and the answered legs' `CallEnded` events kept for
the recordings pipeline, as JSON. A row that cannot be read (written by an incompatible version,
damaged) is logged and dropped: the resync then finds its call again as a new call.
"""
from __future__ import annotations

import json
import logging
import sqlite3
import types
import typing
from contextlib import contextmanager
from dataclasses import dataclass, fields, is_dataclass
from datetime import datetime
from typing import Any, Callable, Iterator, Sequence

from gateway.live.model import Call, LastLegGone, Leg
from gateway.live.ports import WebhookTransactions, WebhookWriter
from gateway.live.webhooks import CallEnded, WebhookEvent
from gateway.webhooks.routing import Facts

logger = logging.getLogger(__name__)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS live_calls (
    v20_call_id INTEGER PRIMARY KEY,
    call        TEXT NOT NULL,
    ends        TEXT NOT NULL
);
"""


@dataclass(frozen=True)
class StoredCall:
    """One call in progress as stored: the call and the end events of its legs answered so far."""

    call: Call
    answered_ends: tuple[CallEnded, ...] = ()


class CallStore:
    """Reads and writes the `live_calls` table through an `Outbox` (see the module docstring)."""

    def __init__(self, outbox: WebhookTransactions) -> None:
        self._outbox = outbox
        self._has_schema = False

    def load(self) -> list[StoredCall]:
        """Every stored call in progress; unreadable rows are logged and deleted."""
        with self._outbox.transaction() as writer:
            self._schema(writer.db)
            rows = writer.db.execute("SELECT v20_call_id, call, ends FROM live_calls").fetchall()
            stored: list[StoredCall] = []
            for v20_call_id, call_json, ends_json in rows:
                try:
                    call = _decode(Call, json.loads(call_json))
                    ends = tuple(_decode(CallEnded, item) for item in json.loads(ends_json))
                except (ValueError, TypeError, KeyError) as exc:
                    logger.warning("call %s: stored state unreadable (%s); dropped, the resync finds the call again",
                                   v20_call_id, exc)
                    writer.db.execute("DELETE FROM live_calls WHERE v20_call_id = ?", (v20_call_id,))
                    continue
                stored.append(StoredCall(call, ends))
        return stored

    def commit(self, v20_call_id: int, call: Call | None, webhooks: Sequence[WebhookEvent],
               answered_ends: Sequence[CallEnded], *, state: str | None = None) -> None:
        """In one transaction: add `webhooks` to the outbox and store `call` (delete its row when it
        has ended or is None). Watcher thread only."""
        with self.batch() as steps:
            steps.step(v20_call_id, call, webhooks, answered_ends, state=state)

    @contextmanager
    def batch(self) -> Iterator[StoreBatch]:
        """One transaction for several steps (a burst of events): every `step()` inside the block
        commits together at its end, or none does when the block raises. Watcher thread only."""
        had_schema = self._has_schema
        try:
            with self._outbox.transaction() as writer:
                self._schema(writer.db)
                yield StoreBatch(self._outbox, writer)
        except BaseException:
            self._has_schema = had_schema       # a rolled back CREATE TABLE is gone too
            raise

    def _schema(self, db: sqlite3.Connection) -> None:
        if not self._has_schema:
            db.execute(_SCHEMA)
            self._has_schema = True


class StoreBatch:
    """The steps of one `CallStore.batch()` transaction."""

    def __init__(self, outbox: WebhookTransactions, writer: WebhookWriter) -> None:
        self._outbox = outbox
        self._writer = writer

    def step(self, v20_call_id: int, call: Call | None, webhooks: Sequence[WebhookEvent],
             answered_ends: Sequence[CallEnded], *, state: str | None = None) -> None:
        """Add `webhooks` to the outbox and store `call` (delete its row when ended or None);
        `state`, when given, is `call_json(call)` made already."""
        for webhook in webhooks:
            self._outbox.publish(webhook, self._writer)
        if call is None or call.is_ended:
            self._writer.db.execute("DELETE FROM live_calls WHERE v20_call_id = ?", (v20_call_id,))
        else:
            self._writer.db.execute(
                "INSERT OR REPLACE INTO live_calls (v20_call_id, call, ends) VALUES (?, ?, ?)",
                (v20_call_id, state or call_json(call), json.dumps([_encode(e) for e in answered_ends])))


# --- JSON: frozen dataclasses with datetimes, tuples and nested dataclasses --------------------------

def _encode(value: Any) -> Any:
    """A JSON-able copy of `value`: a dataclass becomes an object of its fields, a datetime its ISO
    text, a tuple a list."""
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, tuple):
        return [_encode(item) for item in value]
    if is_dataclass(value) and not isinstance(value, type):
        return _encoder(type(value))(value)
    return value


_Convert = Callable[[Any], Any]
_ENCODERS: dict[type, _Convert] = {}


def _encoder(cls: type) -> _Convert:
    """`_encode` for instances of dataclass `cls`, made once per class from its field types: fields
    of plain values are copied as they are, the others converted by a function chosen for their
    type (the watcher stores a call at every step of a burst: the generic walk cost a third of
    its time)."""
    encoder = _ENCODERS.get(cls)
    if encoder is not None:
        return encoder
    hints = typing.get_type_hints(cls)
    names = tuple(f.name for f in fields(cls))
    converters = tuple((name, convert) for name in names if (convert := _converter(hints[name])) is not None)

    def encode(value: Any) -> dict[str, Any]:
        state = value.__dict__
        # A frozen dataclass's __dict__ holds its fields and nothing else (model.evolve keeps it so):
        # copied whole, at C speed; anything else there, and only the fields are taken.
        data = dict(state) if len(state) == len(names) else {name: state[name] for name in names}
        for name, convert in converters:
            item = data[name]
            if item is not None:
                data[name] = convert(item)
        return data

    _ENCODERS[cls] = encode
    return encode


def _converter(hint: Any) -> _Convert | None:
    """How a field of type `hint` is stored (None: as it is); None values are never converted."""
    if isinstance(hint, types.UnionType) or typing.get_origin(hint) is typing.Union:
        kinds = [arg for arg in typing.get_args(hint) if arg is not type(None)]
        return _converter(kinds[0]) if len(kinds) == 1 else _encode
    kind = typing.get_origin(hint) or hint
    if kind in (str, int, float, bool):
        return None
    if kind is datetime:
        return datetime.isoformat
    if kind is tuple:
        args = typing.get_args(hint)
        item = _converter(args[0]) if args else _encode
        if item is None:
            return list
        return lambda value: [item(each) for each in value]
    if isinstance(kind, type) and is_dataclass(kind):
        return lambda value: _encoder(kind)(value)      # looked up when used: a class may refer to itself
    return _encode


_CLASSES: tuple[type, ...] = (Call, Leg, LastLegGone, CallEnded, Facts)


def _decode(cls: type, data: dict[str, Any]) -> Any:
    """An instance of dataclass `cls` from `_encode`'s output; fields not stored take their defaults."""
    if not isinstance(data, dict):
        raise TypeError(f"expected an object for {cls.__name__}")
    hints = typing.get_type_hints(cls)
    values = {f.name: _value(hints[f.name], data[f.name]) for f in fields(cls) if f.name in data}
    return cls(**values)


def call_json(call: Call) -> str:
    """`call` as JSON text, read back by `call_from_state(json.loads(text))`: what the call store
    keeps, and the recovery's notes (the watcher makes it once per step for both)."""
    return json.dumps(_encode(call))


def call_from_state(state: dict[str, Any]) -> Call:
    """The `Call` a `call_json()` text, once parsed, describes."""
    call: Call = _decode(Call, state)
    return call


def _value(hint: Any, raw: Any) -> Any:
    if raw is None:
        return None
    if isinstance(hint, types.UnionType) or typing.get_origin(hint) is typing.Union:
        hint = next(arg for arg in typing.get_args(hint) if arg is not type(None))
    kind = typing.get_origin(hint) or hint
    if kind is datetime:
        return datetime.fromisoformat(raw)
    if kind is tuple:
        item = typing.get_args(hint)[0]
        return tuple(_value(item, each) for each in raw)
    if kind in _CLASSES:
        return _decode(kind, raw)
    return raw
