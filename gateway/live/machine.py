"""The call state machine: `advance(call, event) -> (call, webhook events)`, pure.

Inputs are `LegSeen` (a leg's current reading, after an Upsert or found by a resync), `LegGone`
(a leg removed) and `GraceOver` (a call's end becomes final). No I/O, no clock (timestamps come in
the events), no globals; every transition is logged here and only here, at DEBUG (the watcher
logs one INFO line per call, when it ends). Webhook rules follow 003
("Webhook Generator"):

- ringing: for each extension leg offered the call (not the one placing it); every leg rung at one
  stage shares the call link; nothing when one stops ringing while the call goes on (unless
  `ringing_cancelled`).
- start: when an extension leg is answered; the link goes 0 → 1 at the first answer and +1 per
  transfer; a transferred leg carries trtype Blind (rang first) or Accomp (connected first).
- end: when an answered leg hangs up or transfers the call on (transfer=true), and one Missed end
  when the whole call ends with nobody answering at the current link.
- internal (extension-to-extension) calls make no webhooks unless `internal_calls`.

Grace period (`Rules.end_grace_s` > 0): when a call's last leg goes, the call is not over yet. It
waits (`Call.last_gone`) until a `GraceOver` makes its end final, and a new leg of the same call
meanwhile continues it under the same id. A hunt queue v20 does not monitor shows nothing of the
call between one agent's ring and the next (docs/v20-call-flows.md flow 2b); without the grace
the one call would be reported as a missed call and a second call. Only what depends on the call
being over waits: the Missed end (which the split would make wrong) and the call's removal. The
end of an answered leg is produced when the leg goes, as without a grace period, because no later
leg can change it.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any, Union

from gateway.live import v20
from gateway.live.webhooks import (CallEnded, CallStarted, Ringing, RingingCancelled, WebhookEvent,
                                 end_title, trtype_for, usertype_for)
from gateway.live.ids import call_link_id, call_prefix
from gateway.live.model import Call, LastLegGone, Leg, evolve
from gateway.webhooks.routing import Facts

if TYPE_CHECKING:
    from gateway.config import Config

logger = logging.getLogger(__name__)

# How a title names the place a missed call ended at.
_GROUP_WORDS = {"queue": "queue", "ringgroup": "ring group", "ivr": "IVR"}


@dataclass(frozen=True)
class Rules:
    """The [webhooks] and [pbx] settings the machine follows."""

    answer_event: str = "hangup"        # "hangup" → hangupincoming; "pickup" → pickupincoming
    ringing_cancelled: bool = False
    internal_calls: bool = False
    timezone: str = "UTC"               # the PBX's zone, for call-link ids
    end_grace_s: float = 0.0            # how long a call with no leg left waits before its end is final

    @classmethod
    def from_config(cls, config: Config) -> Rules:
        return cls(answer_event=config.webhooks.answer_event,
                   ringing_cancelled=config.webhooks.ringing_cancelled,
                   internal_calls=config.webhooks.internal_calls,
                   timezone=config.pbx.timezone,
                   end_grace_s=config.webhooks.end_grace_s)


@dataclass(frozen=True)
class LegSeen:
    """A leg's current reading (`leg` from v20.py); `did_name` is the DID rule name of `leg.did`.

    `arrived_at` is the call's arrival at the PBX when known from elsewhere (XAPI, for a call first
    seen by a resync); a new call without it arrived `at`.
    """

    leg: Leg
    at: datetime
    did_name: str = ""
    is_resync: bool = False
    arrived_at: datetime | None = None


@dataclass(frozen=True)
class LegGone:
    """The leg `/callcontrol/{dn}/participants/{participant_id}` no longer exists."""

    dn: str
    participant_id: int
    at: datetime
    is_resync: bool = False


@dataclass(frozen=True)
class GraceOver:
    """The grace period of a call whose last leg went is over: its end is final."""

    at: datetime
    is_resync: bool = False


MachineEvent = Union[LegSeen, LegGone, GraceOver]


def advance(call: Call | None, event: MachineEvent, rules: Rules = Rules()) -> tuple[Call | None, list[WebhookEvent]]:
    """The call after `event` (None when there is no such call) and the webhooks it produces.

    `call` is None for the first event of a call. The returned call has `ended_at` set when its
    end is final: when its last leg is gone, or at `GraceOver` with a grace period.
    """
    after: Call | None
    if isinstance(event, LegSeen):
        after, webhooks = _on_seen(call, event, rules)
        call_id = str(event.leg.v20_call_id)
    elif isinstance(event, LegGone):
        after, webhooks = _on_gone(call, event, rules)
        call_id = str(call.v20_call_id) if call else "?"
    elif isinstance(event, GraceOver):
        after, webhooks = _on_grace_over(call, rules)
        call_id = str(call.v20_call_id) if call else "?"
    else:
        raise TypeError(f"not a machine event: {event!r}")
    if logger.isEnabledFor(logging.DEBUG):
        was, becomes = _summary(call), _summary(after)
        if was != becomes or webhooks:
            logger.debug("call %s: %s -[%s]-> %s%s", call_id, was, _describe(event), becomes,
                         "".join(f" +{w.event}:{w.id}" for w in webhooks))
    return after, webhooks


# --- transitions -------------------------------------------------------------------------------

def _on_seen(call: Call | None, event: LegSeen, rules: Rules) -> tuple[Call, list[WebhookEvent]]:
    reading = event.leg
    if call is None:
        call = Call(v20_call_id=reading.v20_call_id, arrived_at=event.arrived_at or event.at, answered_at=None,
                    direction="", did="", link=0, legs=())
    elif call.last_gone is not None:
        call = evolve(call, last_gone=None)   # a new leg within the grace period: the call goes on
    old = call.leg(reading.dn, reading.participant_id)
    if old is None:
        leg = evolve(reading, seen_at=event.at, first_status=reading.status,
                      answered_at=event.at if reading.status == "talking" else None)
    else:
        leg = evolve(reading, seen_at=old.seen_at, first_status=old.first_status, link=old.link,
                      transfer_kind=old.transfer_kind, is_finished=old.is_finished,
                      answered_at=old.answered_at or (event.at if reading.status == "talking" else None))
    call = _learn(call, leg, event.did_name)
    out: list[WebhookEvent] = []
    if old is None:
        if leg.referred_by_dn:
            call, leg, out = _transferred_to(call, leg, event.at, rules)
        else:
            leg = evolve(leg, link=call.link)
        call = _staged(call, leg)
    if leg.dn_kind != "extension":
        # A queue's / IVR's own participant (docs/v20-call-flows.md flows 2, 4) is never answered
        # by a person: it makes no webhooks of its own.
        return _with_leg(call, leg), out
    if old is None and _has_rung(leg, event) and _is_reported(call, rules):
        out.append(_ringing(Ringing, call, leg, rules))
    if leg.status == "talking" and (old is None or old.status != "talking"):
        call, leg, started = _answered(call, leg, event.at, rules)
        out += started
    return _with_leg(call, leg), out


def _transferred_to(call: Call, leg: Leg, at: datetime, rules: Rules) -> tuple[Call, Leg, list[WebhookEvent]]:
    """A new leg referred by another: a new link when the previous one was answered, and the
    referrer's end (transfer=true) before anything of the new leg, as the legacy order has it."""
    out: list[WebhookEvent] = []
    if call.is_link_answered:
        call = evolve(call, link=call.link + 1, is_link_answered=False, stage_user="", stage_kind="")
        for referrer in call.legs:
            if referrer.dn == leg.referred_by_dn and referrer.answered_at and not referrer.is_finished:
                ended = _ended(call, referrer, at, rules, transfer_to=leg.dn)
                if ended:
                    out.append(ended)
                call = _with_leg(call, evolve(referrer, is_finished=True))
    leg = evolve(leg, link=call.link, transfer_kind=v20.transfer_kind(leg))
    return call, leg, out


def _answered(call: Call, leg: Leg, at: datetime, rules: Rules) -> tuple[Call, Leg, list[WebhookEvent]]:
    link = call.link or 1
    call = evolve(call, link=link, is_link_answered=True, answered_at=call.answered_at or at)
    leg = evolve(leg, link=link, answered_at=leg.answered_at or at)
    if not _is_reported(call, rules):
        return call, leg, []
    direction = _leg_direction(call, leg)
    started = CallStarted(
        call_key=_key(call, rules), id=call_link_id(call.arrived_at, call.v20_call_id, link, rules.timezone),
        event=f"{rules.answer_event}{direction}", callerid=_callerid(call, leg), user=leg.dn,
        did=call.did if direction == "incoming" else None, trtype=trtype_for(leg.transfer_kind),
        facts=_facts(call, leg, leg.dn))
    return call, leg, [started]


def _on_gone(call: Call | None, event: LegGone, rules: Rules) -> tuple[Call | None, list[WebhookEvent]]:
    if call is None:
        return None, []
    old = call.leg(event.dn, event.participant_id)
    if old is None:
        return call, []
    call = evolve(call, legs=tuple(leg for leg in call.legs if leg.key != old.key))
    out: list[WebhookEvent] = []
    if old.dn_kind == "extension" and not old.is_finished:
        if old.answered_at is not None:
            successor = next((leg.dn for leg in call.legs if leg.referred_by_dn == old.dn), "")
            ended = _ended(call, old, event.at, rules, transfer_to=successor, is_resync=event.is_resync)
            if ended:
                out.append(ended)
        elif (call.legs and rules.ringing_cancelled and old.status == "ringing"
              and not v20.is_originator(old) and _is_reported(call, rules)):
            out.append(_ringing(RingingCancelled, call, old, rules))
    if not call.legs:
        last = LastLegGone(old, event.at, event.is_resync)
        if rules.end_grace_s > 0:
            return evolve(call, last_gone=last), out
        call, final = _final(call, last, rules)
        out += final
    return call, out


def _on_grace_over(call: Call | None, rules: Rules) -> tuple[Call | None, list[WebhookEvent]]:
    if call is None or call.last_gone is None:
        return call, []
    return _final(call, call.last_gone, rules)


def _final(call: Call, last: LastLegGone, rules: Rules) -> tuple[Call, list[WebhookEvent]]:
    """The call is over: one Missed end when nobody answered at its current link."""
    out: list[WebhookEvent] = []
    if not call.is_link_answered:
        ended = _missed(call, last.leg, last.at, rules, last.is_resync)
        if ended:
            out.append(ended)
    return evolve(call, ended_at=last.at, is_end_found_by_resync=last.is_resync, last_gone=None), out


# --- webhook builders ---------------------------------------------------------------------------

def _ringing(kind: type[Ringing], call: Call, leg: Leg, rules: Rules) -> Ringing:
    return kind(call_key=_key(call, rules),
                id=call_link_id(call.arrived_at, call.v20_call_id, leg.link, rules.timezone),
                callerid=_callerid(call, leg), user=leg.dn,
                usertype=usertype_for(leg.via_kind), did=call.did,
                facts=_facts(call, leg, leg.dn))


def _ended(call: Call, leg: Leg, at: datetime, rules: Rules, *, transfer_to: str,
           is_resync: bool = False) -> CallEnded | None:
    """The Ok end of an answered leg; `transfer_to` names where it sent the call ("" = hung up)."""
    if not _is_reported(call, rules):
        return None
    direction = _leg_direction(call, leg)
    external = _callerid(call, leg)
    return CallEnded(
        call_key=_key(call, rules), id=call_link_id(call.arrived_at, call.v20_call_id, leg.link, rules.timezone),
        event=direction, callerid=external, user=leg.dn, finishtype="Ok", is_transferred=bool(transfer_to),
        title=end_title(direction=direction, external=external, did=call.did, user=leg.dn, is_answered=True,
                        missed_at="", transfer_to=transfer_to,
                        duration_s=(at - (leg.answered_at or at)).total_seconds(), is_found_by_resync=is_resync),
        v20_call_id=call.v20_call_id, dn=leg.dn, participant_id=leg.participant_id,
        answered_at=leg.answered_at, ended_at=at, facts=_facts(call, leg, leg.dn))


def _missed(call: Call, last: Leg, at: datetime, rules: Rules, is_resync: bool) -> CallEnded | None:
    """The one Missed end of a call nobody answered at its current link (003: for a call missed at
    queue level, `user` is the queue number)."""
    if not _is_reported(call, rules):
        return None
    user = call.stage_user or last.dn
    if call.direction == "outbound" or (call.direction == "internal" and not call.stage_user):
        direction = "outgoing"
    else:
        direction = "incoming"
    missed_at = f"{_GROUP_WORDS[call.stage_kind]} {user}" if call.stage_kind in _GROUP_WORDS else ""
    since = call.arrived_at if call.link == 0 else last.seen_at
    external = call.external_number or last.party_number
    return CallEnded(
        call_key=_key(call, rules), id=call_link_id(call.arrived_at, call.v20_call_id, call.link, rules.timezone),
        event=direction, callerid=external, user=user, finishtype="Missed", is_transferred=False,
        title=end_title(direction=direction, external=external, did=call.did, user=user, is_answered=False,
                        missed_at=missed_at if direction == "incoming" else "", transfer_to="",
                        duration_s=(at - since).total_seconds(), is_found_by_resync=is_resync),
        v20_call_id=call.v20_call_id, dn=user, participant_id=last.participant_id, answered_at=None, ended_at=at,
        facts=_facts(call, last, "" if call.stage_kind in _GROUP_WORDS else user))


# --- helpers ------------------------------------------------------------------------------------

def _learn(call: Call, leg: Leg, did_name: str) -> Call:
    """What a reading tells about the whole call: direction, DID, the outside number."""
    changes: dict[str, Any] = {}
    if not call.direction:
        direction = v20.direction_of(leg)
        if direction:
            changes["direction"] = direction
    if not call.did and leg.did:
        changes["did"] = did_name or leg.did
    if not call.did_number and leg.did:
        changes["did_number"] = leg.did
    if not call.external_number and leg.party_kind == "external" and leg.party_number:
        changes["external_number"] = leg.party_number
    if not call.external_name and leg.party_kind == "external" and leg.party_name:
        changes["external_name"] = leg.party_name
    for kind, field_name in (("queue", "queues"), ("ringgroup", "ringgroups")):
        known: tuple[str, ...] = getattr(call, field_name)
        new = [dn for dn, dn_kind in ((leg.dn, leg.dn_kind), (leg.via_dn, leg.via_kind))
               if dn and dn_kind == kind and dn not in known]
        if new:
            changes[field_name] = known + tuple(dict.fromkeys(new))
    return evolve(call, **changes) if changes else call


def _facts(call: Call, leg: Leg, extension: str) -> Facts:
    """What target filters and the opt-in fields know of an event about `leg` (see routing.py)."""
    external = _callerid(call, leg) if call.direction != "internal" else ""
    if leg.party_kind == "external" and leg.party_name:
        name = leg.party_name
    else:
        name = call.external_name or leg.party_name
    return Facts(direction=call.direction, extension=extension, queues=call.queues, ringgroups=call.ringgroups,
                 did_name=call.did, did_number=call.did_number, caller_name=name, external_number=external)


def _with_leg(call: Call, leg: Leg) -> Call:
    legs = [other for other in call.legs if other.key != leg.key]
    index = next((i for i, other in enumerate(call.legs) if other.key == leg.key), len(legs))
    legs.insert(index, leg)
    return evolve(call, legs=tuple(legs))


def _has_rung(leg: Leg, event: LegSeen) -> bool:
    """Whether a new leg's phone rang. A leg first read Connected rang too briefly for the GET
    that follows its Upsert to see it (Upserts carry no state, V20-API-NOTES §e), unless it was
    connected by an attended transfer or is only being discovered by a resync (the ring is over)."""
    if v20.is_originator(leg):
        return False
    if leg.status == "ringing":
        return True
    return leg.status == "talking" and not leg.referred_by_dn and not event.is_resync


def _is_reported(call: Call, rules: Rules) -> bool:
    if not call.direction:
        return False
    return call.direction != "internal" or rules.internal_calls


def _leg_direction(call: Call, leg: Leg) -> str:
    """The legacy direction word of one leg's webhooks: "incoming" | "outgoing"."""
    if call.direction == "outbound":
        return "outgoing"
    if call.direction == "internal" and v20.is_originator(leg):
        return "outgoing"
    return "incoming"


def _callerid(call: Call, leg: Leg) -> str:
    if leg.party_kind == "external" and leg.party_number:
        return leg.party_number
    return call.external_number or leg.party_number


def _staged(call: Call, leg: Leg) -> Call:
    """Note who a miss at the current link would be reported for (003: the queue for a call
    missed at queue level, else the extension that rang)."""
    if leg.dn_kind != "extension":
        if call.stage_user:
            return call
        return evolve(call, stage_user=leg.dn, stage_kind=leg.dn_kind)
    if v20.is_originator(leg):
        return call
    if leg.via_kind in ("queue", "ringgroup"):
        # Also when the call was transferred to the queue: its agents ring on its behalf.
        return evolve(call, stage_user=leg.via_dn, stage_kind=leg.via_kind)
    return evolve(call, stage_user=leg.dn, stage_kind="extension")


def _key(call: Call, rules: Rules) -> str:
    return call_prefix(call.arrived_at, call.v20_call_id, rules.timezone)


def _summary(call: Call | None) -> str:
    if call is None:
        return "none"
    if call.is_ended:
        return f"ended link {call.link}"
    if call.is_ending:
        return f"ending link {call.link}"
    state = "answered" if call.is_link_answered else "unanswered"
    return f"{call.direction or 'new'} link {call.link} {state} [{' '.join(f'{l.dn}:{l.status}' for l in call.legs)}]"


def _describe(event: MachineEvent) -> str:
    source = " resync" if event.is_resync else ""
    if isinstance(event, LegSeen):
        return f"{event.leg.dn}/{event.leg.participant_id} {event.leg.status}{source}"
    if isinstance(event, GraceOver):
        return "grace over"
    return f"{event.dn}/{event.participant_id} gone{source}"
