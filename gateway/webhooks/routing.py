"""Webhook targets: which events each target receives, and the outbox rows written for them.

`[webhooks]` is the target named "default"; every `[webhook:NAME]` section is another. An event goes
to a target when every filter the target sets matches it (`matches`); an empty filter matches all.
`Router.publish(event)` writes one outbox row per selected target, so each target has its own
queue: a slow or dead CRM delays nothing bound for another.

A target with `extra_fields = true` gets four more fields after the legacy ones, in this order:
  chid         the call's chain id: the call-link id before "-<link>" (the outbox's call key)
  inbound_did  the DID number an inbound call came in on ("" otherwise); `did` keeps the rule name
  callername   the outside party's display name as the PBX shows it (v20 `party_caller_name`)
  phonebook    the name of the PBX phonebook contact with the outside number ("" when none)
"""
from __future__ import annotations

import logging
import re
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Protocol

from gateway.config import WebhookTarget
from gateway.webhooks.outbox import EventAdder

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Facts:
    """What target filters and the opt-in fields need to know about one webhook event's call.

    `extension` is the extension the event is about (its `user`; "" for a call missed at a queue
    or ring group); `queues` / `ringgroups` every queue / ring group the call went through;
    `direction` "inbound" | "outbound" | "internal".
    """

    direction: str = ""
    extension: str = ""
    queues: tuple[str, ...] = ()
    ringgroups: tuple[str, ...] = ()
    did_name: str = ""
    did_number: str = ""
    caller_name: str = ""
    external_number: str = ""


class RoutedEvent(Protocol):
    """A webhook event as the router sees it (see gateway.live.webhooks)."""

    @property
    def call_key(self) -> str: ...

    @property
    def kind(self) -> str: ...              # ringing | start | end | files

    @property
    def method(self) -> str | None: ...     # None: the target's method; "POST": always JSON

    @property
    def facts(self) -> Facts | None: ...

    def params(self) -> dict[str, Any]: ...


class Sink(EventAdder, Protocol):
    """Where the router writes: the outbox, with its transactions."""

    def transaction(self) -> AbstractContextManager[Any]: ...


def _digits(number: str) -> str:
    return re.sub(r"\D", "", number)


def _is_did(wanted: Iterable[str], facts: Facts) -> bool:
    numbers = {_digits(facts.did_number)} - {""}
    return any(item == facts.did_name or item == facts.did_number or (_digits(item) and _digits(item) in numbers)
               for item in wanted)


def matches(target: WebhookTarget, kind: str, facts: Facts | None) -> bool:
    """Whether an event of `kind` with `facts` goes to `target`: every filter that is set matches.

    A queue call's events match `queues` whether they concern the queue or an agent it rang; `dids`
    matches the DID rule name or the number (digits compared, so "+420 233 000 111" works).
    An event without facts passes only a target without call filters.
    """
    if target.events and kind not in target.events:
        return False
    if facts is None:
        return not (target.extensions or target.queues or target.ringgroups or target.dids or target.directions)
    if target.directions and facts.direction not in target.directions:
        return False
    if target.extensions and facts.extension not in target.extensions:
        return False
    if target.queues and target.queues.isdisjoint(facts.queues):
        return False
    if target.ringgroups and target.ringgroups.isdisjoint(facts.ringgroups):
        return False
    if target.dids and not _is_did(target.dids, facts):
        return False
    return True


def extra_fields(call_key: str, facts: Facts | None, phonebook: Callable[[str], str] | None) -> dict[str, str]:
    """The opt-in fields of one event (see the module docstring)."""
    facts = facts or Facts()
    name = phonebook(facts.external_number) if phonebook and facts.external_number else ""
    return {"chid": call_key,
            "inbound_did": facts.did_number if facts.direction == "inbound" else "",
            "callername": facts.caller_name,
            "phonebook": name}


class Router:
    """Writes each webhook event to the outbox once per target that selects it; returns the ids.

    Called by the watcher thread (call events) and the recordings threads (FILES). `phonebook`
    maps an outside number to a contact name; it is asked only for targets with extra_fields.
    """

    def __init__(self, sink: Sink, targets: Iterable[WebhookTarget], *,
                 phonebook: Callable[[str], str] | None = None) -> None:
        self._sink = sink
        self.targets = tuple(targets)
        self._phonebook = phonebook

    def transaction(self) -> AbstractContextManager[Any]:
        """The outbox's transaction (see Outbox.transaction): publish(event, writer) inside it."""
        return self._sink.transaction()

    def publish(self, event: RoutedEvent, writer: EventAdder | None = None) -> list[str]:
        """Add `event` once per target that selects it, through `writer` when given; the ids."""
        adder = writer or self._sink
        ids = []
        params = event.params()
        extras: dict[str, str] | None = None
        for target in self.targets:
            if not matches(target, event.kind, event.facts):
                continue
            body = params
            if target.extra_fields:
                if extras is None:
                    extras = extra_fields(event.call_key, event.facts, self._phonebook)
                body = {**params, **{k: v for k, v in extras.items() if k not in params}}
            ids.append(adder.add(event.call_key, body, method=event.method, target=target.name))
        if not ids:
            logger.debug("call %s: %s selected by no webhook target", event.call_key, event.kind)
        return ids


def unknown_filter_values(targets: Iterable[WebhookTarget], known: dict[str, set[str]]) -> list[str]:
    """One line per filter value the PBX does not have (a warning: it may be created later).

    `known` maps "extensions", "queues", "ringgroups" to the PBX's numbers and "dids" to its DID
    rule names and numbers.
    """
    lines = []
    dids = {_digits(value) for value in known.get("dids", set())} - {""}
    for target in targets:
        for key in ("extensions", "queues", "ringgroups", "dids"):
            values = getattr(target, key)
            have = known.get(key, set())
            missing = sorted(v for v in values if v not in have and not (key == "dids" and _digits(v) in dids))
            if missing:
                lines.append(f"[webhook:{target.name}] {key}: the PBX has no {', '.join(missing)} (yet); "
                             "events for it are selected once it exists")
    return lines
