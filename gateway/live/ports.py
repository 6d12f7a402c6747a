"""What the live model needs from its neighbours, as Protocols.

The real parts are `pbx.callcontrol.CallControlClient`, `pbx.xapi.XapiClient`, `pbx.stream.EventStream`
and `webhooks.routing.Router` (or `webhooks.outbox.Outbox`); tests hand in small stand-ins that answer the same methods.
"""
from __future__ import annotations

import logging
import sqlite3
from contextlib import AbstractContextManager
from datetime import datetime
from typing import TYPE_CHECKING, Any, Callable, Iterable, Protocol

from gateway.clock import Clock
from gateway.webhooks.routing import RoutedEvent

if TYPE_CHECKING:
    from gateway.live.model import Call
    from gateway.live.watcher import WatcherStatus
    from gateway.live.webhooks import CallEnded, WebhookEvent

logger = logging.getLogger(__name__)

CallEndedHook = Callable[["Call", "list[CallEnded]"], None]
"""Told once a call has completely ended, with the CallEnded events of its answered legs (the
recordings pipeline's `call_ended`)."""


def tell_call_ended(hook: CallEndedHook | None, call: Call, ends: list[CallEnded]) -> None:
    """Run `hook` for `call`; a failure is logged and goes no further (the caller's loop carries on)."""
    if hook is None:
        return
    try:
        hook(call, ends)
    except Exception:
        logger.exception("call %s: the call-ended callback failed", call.v20_call_id)


class AllCallStates(Protocol):
    """`GET /callcontrol`: every DN's state with its participants (v20 JSON objects)."""

    def all_states(self) -> list[dict[str, Any]]: ...


class CallStates(AllCallStates, Protocol):
    """Call Control reads: every DN's state, one DN's state, one DN's participants, one participant
    (v20 JSON objects)."""

    def dn_state(self, dn: str) -> dict[str, Any]: ...

    def listed_participants(self, dn: str, participant_ids: Iterable[int]) -> list[dict[str, Any]]: ...

    def participant(self, dn: str, participant_id: int) -> dict[str, Any]: ...


class EntityLister(Protocol):
    """XAPI collection reads (`/InboundRules`, `/Recordings`, ...)."""

    def list(self, entity_set: str, *, filter: str | None = None) -> list[dict[str, Any]]: ...


class EventSource(Protocol):
    """The Call Control WebSocket: handlers run in its own thread between start() and stop()."""

    def set_handlers(self, on_message: Callable[[dict[str, Any]], None], on_connect: Callable[[], None],
                     on_disconnect: Callable[[str], None], *, on_tick: Callable[[], None] = ...) -> None: ...

    def start(self) -> None: ...

    def stop(self, timeout_s: float) -> None: ...


class WebhookWriter(Protocol):
    """Adds events inside one transaction of the webhook sink; `db` is that transaction's connection."""

    db: sqlite3.Connection

    def add(self, call_key: str, params: dict[str, Any], *, method: str | None = None,
            target: str = ...) -> str: ...


class WebhookSink(Protocol):
    """Where webhook events are written before anything else happens: the router (one outbox row per
    target that selects the event) or the outbox itself (the default target only); through `writer`
    inside a transaction when given; returns the ids."""

    def publish(self, event: RoutedEvent, writer: WebhookWriter | None = None) -> list[str]: ...


class WebhookTransactions(WebhookSink, Protocol):
    """The outbox's transactions: events committed together with other rows of the same SQLite
    file (the live call table's, gateway/live/store.py)."""

    def transaction(self) -> AbstractContextManager[WebhookWriter]: ...


class LiveState(Protocol):
    """What LiveView asks the watcher: is the model in step, and what time it is."""

    clock: Clock

    def status(self) -> WatcherStatus: ...


class GapWatch(Protocol):
    """What the watcher tells gap recovery (`live.recovery.Recovery`): what it reported, calls that
    vanished across a gap or lost a reading (their end waits for the call history), legs of no known
    call gone before their read, and the stream's state."""

    def reported(self, call: Call, webhooks: list[WebhookEvent], state: str | None = None) -> None: ...

    def defer(self, call: Call, ends: list[CallEnded], *, fallback: list[WebhookEvent] | None = None) -> None: ...

    def unread(self, dn: str, at: datetime) -> None: ...

    def synced(self) -> None: ...

    def lost(self) -> None: ...
