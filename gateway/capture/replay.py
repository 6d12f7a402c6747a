"""Replay: a capture played through the real watcher with no PBX, and the webhooks it makes now.

The watcher gets stand-ins that answer each read from the capture (in recorded order per read),
a clock set to each record's time, and an outbox that keeps what it is given. Calls already in
progress when the capture began are loaded silently from its `state` record; their webhooks
depend on what happened before the capture and are left out of `--check` comparisons.
"""
from __future__ import annotations

import difflib
import json
import logging
import re
from collections import deque
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Callable, Iterable

from gateway.clock import Clock
from gateway.config import Config, from_dict
from gateway.capture.records import Record
from gateway.live.unknowns import Unknowns
from gateway.live.watcher import Watcher
from gateway.live.model import CallTable
from gateway.pbx import errors as pbx_errors
from gateway.webhooks.routing import RoutedEvent

logger = logging.getLogger(__name__)

# end_grace_s 0 for captures made before the grace period existed: their ends went out at once.
DEFAULT_RULES = {"timezone": "UTC", "answer_event": "hangup", "ringing_cancelled": False,
                 "internal_calls": False, "end_grace_s": 0}


@dataclass(frozen=True)
class Webhook:
    """One webhook as the CRM would receive it (`params`), with the call it belongs to."""

    call_key: str
    params: dict[str, str]

    @property
    def v20_call_id(self) -> int:
        match = re.search(r"_(\d+)$", self.call_key)
        return int(match.group(1)) if match else 0

    def line(self) -> str:
        return json.dumps(self.params, ensure_ascii=False)


@dataclass
class Replayed:
    """What a replay produced: the webhooks now, those recorded, and what was not understood."""

    webhooks: list[Webhook]
    recorded: list[Webhook]
    unknowns: Unknowns
    calls_before: set[int] = field(default_factory=set)   # v20 call ids in progress at the start
    misses: list[str] = field(default_factory=list)      # reads the replay could not answer

    def compared(self, webhooks: list[Webhook]) -> list[str]:
        return [w.line() for w in webhooks if w.v20_call_id not in self.calls_before]

    def difference(self) -> list[str]:
        """A unified diff of recorded vs replayed webhooks (empty when they agree)."""
        return list(difflib.unified_diff(self.compared(self.recorded), self.compared(self.webhooks),
                                         "recorded", "replayed", lineterm="", n=2))


class ReplayClock(Clock):
    """The time of the record being replayed."""

    def __init__(self) -> None:
        self._now = datetime.fromtimestamp(0, timezone.utc)

    def set(self, epoch_s: Any) -> None:
        if isinstance(epoch_s, (int, float)):
            self._now = datetime.fromtimestamp(float(epoch_s), timezone.utc)

    def now(self) -> datetime:
        return self._now

    def time(self) -> float:
        return self._now.timestamp()


class _Answers:
    """Recorded reads per (api, call, args, kwargs), each answered once, in recorded order."""

    def __init__(self, records: list[Record], clock: ReplayClock, misses: list[str]) -> None:
        self._clock = clock
        self._misses = misses
        self._queues: dict[str, deque[Record]] = {}
        self.state: list[dict[str, Any]] = []
        self.did_rules: list[dict[str, Any]] | None = None
        self.is_loading_state = False        # GET /callcontrol answers the snapshot
        # (DN, participant id) -> the list reads that read it together with others of its DN, in order
        self._listed: dict[tuple[str, str], deque[Record]] = {}
        for record in records:
            args = record.get("args")
            if (record.get("type") == "read" and record.get("call") == "listed_participants"
                    and isinstance(args, list) and len(args) == 2 and isinstance(args[1], list)):
                for participant_id in args[1]:
                    self._listed.setdefault((str(args[0]), str(participant_id)), deque()).append(record)
            if record.get("type") == "read":
                self._queues.setdefault(_key(record.get("api"), record.get("call"), record.get("args") or [],
                                             record.get("kwargs") or {}), deque()).append(record)
            elif record.get("type") == "state" and not self.state:
                self.state = [info for info in record.get("body") or [] if isinstance(info, dict)]
            elif record.get("type") == "did_rules" and self.did_rules is None:
                self.did_rules = [rule for rule in record.get("body") or [] if isinstance(rule, dict)]

    def answer(self, api: str, call: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        if self.is_loading_state and api == "callcontrol" and call == "all_states":
            return self.state
        waiting = self._queues.get(_key(api, call, list(args), kwargs))
        if api == "xapi" and call == "list" and args[:1] == ("InboundRules",) and self.did_rules is not None \
                and not waiting:
            # The rules as the capture began, unless the service read them again during it: then
            # that read answers, and the time it ended (the watcher waited for it) is replayed too.
            return list(self.did_rules)
        listed = self._listed.get((str(args[0]), str(args[1]))) if api == "callcontrol" and call == "participant" \
            and len(args) == 2 else None
        if listed and (not waiting or _time(listed[0]) <= _time(waiting[0])):
            # Read together with other participants of its DN (live/reads.py): the earlier answer first.
            return self._from_list(listed.popleft(), args[0], args[1])
        if waiting:
            record = waiting.popleft()
            self._clock.set(record.get("t"))
            error = record.get("error")
            if error:
                raise _error(error)
            return record.get("body")
        if api == "callcontrol" and call == "dn_state":
            # Read before the capture began (the watcher caches what each DN is): the snapshot says.
            info = next((i for i in self.state if str(i.get("dn")) == str(args[0])), None)
            if info is not None:
                return {**info, "participants": []}
        if api == "xapi" and call == "list" and args[:1] == ("ActiveCalls",):
            # Not recorded (a capture from before resyncs read arrival times, or the calls in progress
            # when it began): no arrival times, so those calls are stamped with the resync's time.
            return []
        self._misses.append(f"{api}.{call}{tuple(args)}")
        raise pbx_errors.PbxUnreachable(f"{api}.{call}{tuple(args)} is not in the capture")


    def _from_list(self, record: Record, dn: Any, participant_id: Any) -> dict[str, Any]:
        """The participant as `record` (a list read) shows it; PbxNotFound when it is not listed."""
        self._clock.set(record.get("t"))
        error = record.get("error")
        if error:
            raise _error(error)
        found = next((p for p in record.get("body") or []
                      if isinstance(p, dict) and str(p.get("id")) == str(participant_id)), None)
        if found is None:
            raise pbx_errors.PbxNotFound(f"participant {dn}/{participant_id} is not in its DN's list")
        return found


class _Client:
    """Answers any method call of one PBX client from the capture."""

    def __init__(self, api: str, answers: _Answers) -> None:
        self._api = api
        self._answers = answers

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):
            raise AttributeError(name)
        return lambda *args, **kwargs: self._answers.answer(self._api, name, args, kwargs)


class _Outbox:
    """Keeps the webhooks the watcher writes (none while `is_muted`)."""

    def __init__(self) -> None:
        self.webhooks: list[Webhook] = []
        self.is_muted = False

    def publish(self, event: RoutedEvent, writer: object = None) -> list[str]:
        if not self.is_muted:
            self.webhooks.append(Webhook(event.call_key, {key: str(value) for key, value in event.params().items()}))
        return [f"replay-{len(self.webhooks)}"]


def _no_tick() -> None:
    return None


class _Stream:
    """The watcher's event stream: never started during a replay."""

    def set_handlers(self, on_message: Callable[[dict[str, Any]], None], on_connect: Callable[[], None],
                     on_disconnect: Callable[[str], None], *, on_tick: Callable[[], None] = _no_tick) -> None:
        return None

    def start(self) -> None:
        return None

    def stop(self, timeout_s: float) -> None:
        return None


def _settings(rules: dict[str, Any]) -> Config:
    """The settings the watcher follows, from the capture's header (the PBX fields are placeholders:
    a replay talks to no PBX)."""
    return from_dict({
        "pbx": {"url": "http://replay.invalid", "client_id": "replay", "client_secret": "replay",
                "timezone": str(rules["timezone"])},
        "webapi": {"key": "replay"},
        "webhooks": {"answer_event": str(rules["answer_event"]),
                     "ringing_cancelled": "true" if rules["ringing_cancelled"] else "false",
                     "internal_calls": "true" if rules["internal_calls"] else "false",
                     "end_grace_s": str(rules["end_grace_s"])},
    }, source="capture header", environ={})


def replay(records: Iterable[Record]) -> Replayed:
    """Play `records` (a capture, in order) through a new watcher; nothing leaves this process."""
    records = list(records)
    header = next((r for r in records if r.get("type") == "capture"), {})
    rules = {**DEFAULT_RULES, **(header.get("rules") or {})}
    settings = _settings(rules)
    clock = ReplayClock()
    misses: list[str] = []
    answers = _Answers(records, clock, misses)
    outbox = _Outbox()
    unknowns = Unknowns()
    watcher = Watcher(_Stream(), _Client("callcontrol", answers), _Client("xapi", answers), CallTable(), outbox,
                      settings, clock=clock, unknowns=unknowns)
    recorded: list[Webhook] = []
    calls_before: set[int] = set()
    for record in records:
        kind = record.get("type")
        clock.set(record.get("t"))
        watcher.tick()          # ends whose grace period is over by now, as the service's ticks made them
        if kind == "state":
            calls_before |= {int(p.get("callid") or 0) for info in answers.state
                             for p in info.get("participants") or [] if isinstance(p, dict)}
            _load_state(watcher, answers, outbox)
        elif kind == "connect":
            _resync(watcher)
        elif kind == "message" and isinstance(record.get("body"), dict):
            watcher.handle(record["body"])
        elif kind == "webhook":
            recorded.append(Webhook(str(record.get("call_key") or ""), dict(record.get("params") or {})))
    calls_before.discard(0)
    return Replayed(outbox.webhooks, recorded, unknowns, calls_before, misses)


def _load_state(watcher: Watcher, answers: _Answers, outbox: _Outbox) -> None:
    """The calls in progress when the capture began, loaded without webhooks."""
    answers.is_loading_state = outbox.is_muted = True
    try:
        _resync(watcher)
    finally:
        answers.is_loading_state = outbox.is_muted = False


def _resync(watcher: Watcher) -> None:
    try:
        watcher.resync()
    except pbx_errors.PbxError as exc:
        logger.info("replay: resync could not be replayed: %s", exc)


def _time(record: Record) -> float:
    t = record.get("t")
    return float(t) if isinstance(t, (int, float)) else 0.0


def _key(api: Any, call: Any, args: list[Any], kwargs: dict[str, Any]) -> str:
    return json.dumps([api, call, [str(a) for a in args], {k: str(v) for k, v in sorted(kwargs.items())}])


def _error(error: dict[str, Any]) -> pbx_errors.PbxError:
    name = str(error.get("class") or "")
    message = str(error.get("message") or "")
    if name == "PbxNotFound":
        return pbx_errors.PbxNotFound(message)
    if name == "PbxRejected" and isinstance(error.get("status"), int):
        return pbx_errors.PbxRejected(error["status"], message)
    if name == "PbxAuthFailed":
        return pbx_errors.PbxAuthFailed(message)
    return pbx_errors.PbxUnreachable(message)
