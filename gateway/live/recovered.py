"""Webhook events for calls read from the call history, pure: no I/O, no clock.

- `recovered_events(history_call, rules, monitored)`: a call the gateway never saw. An answered
  leg gets its call-start and call-end, a missed call its call-end only (no `ringing` after the
  fact: it would pop a stale screen). Ids keep the legacy format; their call-number part is
  `HistoryCall.number` (Call Control's `callid` is unknown), their time the call's StartTime.
- `completed_events(call, history_call, rules)`: a call the live model saw in part (e.g. ringing)
  whose legs vanished during a gap: reported as it happened (answered, by whom, how long) under
  the ids it already has.
Every event these make says in its `title` that it was recovered from the call history.
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime

from gateway.live.history import GROUP_KINDS, HistoryCall, HistorySegment
from gateway.live.ids import call_link_id, call_prefix
from gateway.live.machine import Rules
from gateway.live.model import Call
from gateway.live.webhooks import CallEnded, CallStarted, WebhookEvent, end_title
from gateway.webhooks.routing import Facts

RECOVERED_NOTE = " (recovered from call history)"
RECOVERED_START_TITLE = "Call start recovered from call history"
_GROUP_WORDS = {"queue": "queue", "ringgroup": "ring group", "ivr": "IVR"}


@dataclass(frozen=True)
class Recovered:
    """Events for one call and the `Call` the recordings pipeline is told about (its answered ends)."""

    call: Call
    events: tuple[WebhookEvent, ...]

    @property
    def answered_ends(self) -> list[CallEnded]:
        return [e for e in self.events if isinstance(e, CallEnded) and e.is_answered]


def recovered_events(history: HistoryCall, rules: Rules, monitored: frozenset[str]) -> Recovered:
    """Events for a history call nobody reported; none for an internal call (unless
    `internal_calls`) or a call that touches no monitored DN."""
    direction = history.direction
    number, arrived = history.number, history.started_at
    call = Call(v20_call_id=number, arrived_at=arrived, answered_at=None, direction=direction, did="", link=0,
                legs=(), external_number=history.external_number, ended_at=history.ended_at)
    if not history.dns & monitored or (direction == "internal" and not rules.internal_calls):
        return Recovered(call, ())
    key = call_prefix(arrived, number, rules.timezone)
    answered = [s for s in history.answered if s.answering_extension in monitored]
    if history.is_answered and not answered:
        return Recovered(call, ())          # answered by a DN the live model would not have seen either
    events: list[WebhookEvent] = []
    for link, segment in enumerate(answered, start=1):
        following = answered[link].answering_extension if link < len(answered) else ""
        events += _answered_leg(key, call_link_id(arrived, number, link, rules.timezone), segment, direction,
                                history.external_number, rules, transfer_to=following,
                                trtype="NotDef" if link == 1 else "Blind", v20_call_id=number)
    if not answered:
        events.append(_missed(key, call_link_id(arrived, number, 0, rules.timezone), history, direction,
                              rules, user=_missed_user(history, direction), started_at=arrived, v20_call_id=number))
    if answered:
        call = replace(call, answered_at=answered[0].answered_at, link=len(answered), is_link_answered=True)
    return Recovered(call, _with_facts(events, history, direction, history.external_number))


def completed_events(call: Call, history: HistoryCall, rules: Rules, *,
                     reported: frozenset[str] = frozenset()) -> Recovered:
    """Events that finish `call` (seen live, its legs gone across a gap or never read) as `history`
    tells it. `reported`: extensions whose answered leg the live model already reported (start and
    end): their rows add nothing."""
    ended = replace(call, legs=(), ended_at=history.ended_at)
    if not call.direction or (call.direction == "internal" and not rules.internal_calls):
        return Recovered(ended, ())
    key = call_prefix(call.arrived_at, call.v20_call_id, rules.timezone)
    external = call.external_number or history.external_number
    answered = list(history.answered)
    talking = {leg.dn: leg for leg in call.legs
               if leg.dn_kind == "extension" and leg.answered_at is not None and not leg.is_finished}
    direction = "outbound" if call.direction == "outbound" else call.direction
    events: list[WebhookEvent] = []
    for dn, leg in talking.items():
        own = [s for s in answered if s.answering_extension == dn]
        ended_at = own[-1].ended_at if own else history.ended_at
        since = own[-1].started_at if own else (leg.answered_at or call.arrived_at)
        later = [s for s in answered if s.answering_extension != dn and s.started_at >= since]
        duration = (ended_at - (leg.answered_at or ended_at)).total_seconds()
        word = _word(direction, is_source=bool(own) and own[-1].source.dn == dn)
        events.append(_end(key, call_link_id(call.arrived_at, call.v20_call_id, leg.link, rules.timezone), word,
                           external, dn, transfer_to=later[0].answering_extension if later else "",
                           duration_s=duration, did=call.did, answered_at=leg.answered_at, ended_at=ended_at,
                           v20_call_id=call.v20_call_id, participant_id=leg.participant_id))
    link, is_answered = call.link, call.is_link_answered
    fresh = [s for s in answered if s.answering_extension not in talking and s.answering_extension not in reported]
    for index, segment in enumerate(fresh):
        link = link + 1 if is_answered else max(link, 1)
        trtype = "Blind" if is_answered else "NotDef"
        is_answered = True
        following = fresh[index + 1].answering_extension if index + 1 < len(fresh) else ""
        events += _answered_leg(key, call_link_id(call.arrived_at, call.v20_call_id, link, rules.timezone), segment,
                                direction, external, rules, transfer_to=following, trtype=trtype, did=call.did,
                                v20_call_id=call.v20_call_id)
    if not answered and not talking and not call.is_link_answered:
        last = call.legs[-1].dn if call.legs else _missed_user(history, direction)
        events.append(_missed(key, call_link_id(call.arrived_at, call.v20_call_id, call.link, rules.timezone),
                              history, direction, rules, user=call.stage_user or last, started_at=call.arrived_at,
                              stage_kind=call.stage_kind, did=call.did, external=external,
                              v20_call_id=call.v20_call_id))
    first = next((e.answered_at for e in events if isinstance(e, CallEnded) and e.answered_at), None)
    return Recovered(replace(ended, link=link, is_link_answered=is_answered, answered_at=call.answered_at or first),
                     _with_facts(events, history, direction, external, call=call))


def with_unavailable_note(events: list[WebhookEvent], reason: str) -> list[WebhookEvent]:
    """Ends made the old way (legs gone across a gap) because the history could not be read."""
    return [replace(e, title=f"{e.title} (call history unavailable: {reason})") if isinstance(e, CallEnded) else e
            for e in events]


# --- builders -------------------------------------------------------------------------------------

def _with_facts(events: list[WebhookEvent], history: HistoryCall, direction: str, external: str, *,
                call: Call | None = None) -> tuple[WebhookEvent, ...]:
    """`events` with the facts webhook-target filters route by (see webhooks/routing.py): the queues
    and ring groups of the history rows (and of the live call, when it was seen in part)."""
    groups = {p.dn: p.kind for s in history.segments for p in (s.source, s.destination)
              if p.dn and p.kind in ("queue", "ringgroup")}
    queues = tuple(dict.fromkeys((*(call.queues if call else ()), *(dn for dn, k in groups.items() if k == "queue"))))
    ringgroups = tuple(dict.fromkeys((*(call.ringgroups if call else ()),
                                      *(dn for dn, k in groups.items() if k == "ringgroup"))))
    caller_name = next((p.name for s in history.segments for p in (s.source, s.destination)
                        if p.is_external and p.name), "")
    facts = Facts(direction=direction, queues=queues, ringgroups=ringgroups,
                  did_name=call.did if call else "", did_number=call.did_number if call else "",
                  caller_name=(call.external_name if call else "") or caller_name,
                  external_number=external if direction != "internal" else "")
    return tuple(replace(event, facts=replace(facts, extension="" if event.user in groups or event.user in queues
                                              + ringgroups else event.user)) for event in events)


def _word(direction: str, *, is_source: bool) -> str:
    """The legacy direction word of one leg: outgoing for an outbound call or an internal call's caller."""
    if direction == "outbound" or (direction == "internal" and is_source):
        return "outgoing"
    return "incoming"


def _answered_leg(key: str, link_id: str, segment: HistorySegment, direction: str, external: str, rules: Rules, *,
                  transfer_to: str, trtype: str, v20_call_id: int, did: str = "") -> list[WebhookEvent]:
    dn = segment.answering_extension
    word = _word(direction, is_source=segment.source.dn == dn)
    other = segment.destination if segment.source.dn == dn else segment.source
    callerid = external or other.number or other.dn
    start = CallStarted(call_key=key, id=link_id, event=f"{rules.answer_event}{word}", callerid=callerid, user=dn,
                        did=did if word == "incoming" else None, trtype=trtype, title=RECOVERED_START_TITLE)
    end = _end(key, link_id, word, callerid, dn, transfer_to=transfer_to, duration_s=segment.talking_s, did=did,
               answered_at=segment.answered_at, ended_at=segment.ended_at, v20_call_id=v20_call_id)
    return [start, end]


def _end(key: str, link_id: str, word: str, external: str, dn: str, *, transfer_to: str, duration_s: float,
         did: str, answered_at: datetime | None, ended_at: datetime, v20_call_id: int,
         participant_id: int = 0) -> CallEnded:
    title = end_title(direction=word, external=external, did=did, user=dn, is_answered=True, missed_at="",
                      transfer_to=transfer_to, duration_s=duration_s, is_found_by_resync=False)
    return CallEnded(call_key=key, id=link_id, event=word, callerid=external, user=dn, finishtype="Ok",
                     is_transferred=bool(transfer_to), title=title + RECOVERED_NOTE, v20_call_id=v20_call_id,
                     dn=dn, participant_id=participant_id, answered_at=answered_at, ended_at=ended_at)


def _missed(key: str, link_id: str, history: HistoryCall, direction: str, rules: Rules, *, user: str,
            started_at: datetime, v20_call_id: int, stage_kind: str = "", did: str = "",
            external: str = "") -> CallEnded:
    """The one Missed end (003: for a call missed at queue level, `user` is the queue number)."""
    word = "outgoing" if direction in ("outbound", "internal") and not _is_offered(history, user) else "incoming"
    kind = stage_kind or next((p.kind for s in history.segments for p in (s.destination,) if p.dn == user), "")
    missed_at = f"{_GROUP_WORDS[kind]} {user}" if kind in _GROUP_WORDS and word == "incoming" else ""
    external = external or history.external_number
    title = end_title(direction=word, external=external, did=did, user=user, is_answered=False, missed_at=missed_at,
                      transfer_to="", duration_s=(history.ended_at - started_at).total_seconds(),
                      is_found_by_resync=False)
    return CallEnded(call_key=key, id=link_id, event=word, callerid=external, user=user, finishtype="Missed",
                     is_transferred=False, title=title + RECOVERED_NOTE, v20_call_id=v20_call_id, dn=user,
                     answered_at=None, ended_at=history.ended_at)


def _is_offered(history: HistoryCall, dn: str) -> bool:
    return any(s.destination.dn == dn for s in history.segments)


def _missed_user(history: HistoryCall, direction: str) -> str:
    """Who a missed history call is reported for: the queue / ring group / IVR of the main row, else
    the first extension it rang; for a call placed by an extension, that extension."""
    main = history.main
    if direction == "outbound" or (direction == "internal" and main.source.is_extension
                                   and not main.destination.is_extension):
        return main.source.dn
    if main.destination.kind in GROUP_KINDS:
        return main.destination.dn
    first = next((s.destination.dn for s in history.segments if s.destination.is_extension), "")
    return first or main.destination.dn
