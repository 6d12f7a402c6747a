"""End to end: calls played on the simulator become the legacy webhooks a CRM receives over HTTP.

The real TokenSource, Call Control client, XAPI client, WebSocket event stream, watcher, SQLite
outbox and delivery run against the simulator; the receiver is a real local HTTP server.

A ring or talk whose state a webhook reports lasts 10 simulated seconds or more (0.2 s at the
test simulator's 50x), so that a loaded machine still reads each state before the next step
replaces it; rings stay under the simulator's 20 s queue ring and no-answer timeouts.
"""
from __future__ import annotations

import re
from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest

from gateway.clock import Clock
from gateway.live.model import CallTable
from gateway.live.view import LiveView
from gateway.live.watcher import Watcher
from gateway.pbx.auth import TokenSource
from gateway.pbx.callcontrol import CallControlClient
from gateway.pbx.stream import EventStream
from gateway.pbx.http import new_session
from gateway.pbx.xapi import XapiClient
from gateway.sim.scenarios import inbound, internal, outbound
from gateway.webhooks.delivery import Delivery
from gateway.webhooks.outbox import Outbox
from tests.support.live import CALLER, DID, ended, ringing, started
from tests.support.wait import wait_until


class Live:
    """The gateway's live parts wired against the simulator; `ends` collects on_call_ended calls."""

    def __init__(self, sim, config, state_dir) -> None:
        clock = Clock()
        session = new_session(verify_tls=False)
        tokens = TokenSource(session, sim.url, sim.client_id, sim.client_secret, timeout_s=5, clock=clock)
        self.callcontrol = CallControlClient(session, sim.url, tokens, timeout_s=5)
        xapi = XapiClient(session, sim.url, tokens, timeout_s=5)
        self.stream = EventStream(sim.url, tokens, verify_tls=False, ping_interval_s=0.5,
                                  min_backoff_s=0.05, max_backoff_s=0.2)
        self.table = CallTable()
        self.outbox = Outbox(state_dir / "outbox.sqlite3", clock=clock)
        self.delivery = Delivery(self.outbox, config.webhooks, clock=clock, senders=2)
        self.ends: list = []
        self.watcher = Watcher(self.stream, self.callcontrol, xapi, self.table, self.outbox, config,
                               clock=clock, on_call_ended=lambda call, ends: self.ends.append((call, ends)))
        self.view = LiveView(self.table, self.watcher, self.callcontrol)

    def start(self) -> None:
        self.delivery.start()
        self.watcher.start()
        wait_until(lambda: self.view.is_live, timeout_s=10)

    def stop(self) -> None:
        self.watcher.stop(5)
        self.delivery.stop(5)

    def settled(self) -> bool:
        """No call in progress and nothing left to send."""
        return self.watcher.status().calls == 0 and self.outbox.tally().pending == 0


@pytest.fixture
def live(sim, config, tmp_path):
    """Watcher, outbox and delivery running against the simulator, in step with it."""
    parts = Live(sim, config, tmp_path)
    parts.start()
    yield parts
    parts.stop()


def received(receiver, live, count: int, call_id: int) -> list[dict]:
    """The webhooks of call `call_id` once `count` have arrived and nothing more is due; ids are
    checked (yymmddHHMMSS_<call>-<link>, arrival now in Prague, one prefix) and cut to "-<link>"."""
    receiver.wait_for(count)
    wait_until(live.settled)
    prefixes = set()
    out = []
    for item in receiver.received:
        params = dict(item.params)
        match = re.fullmatch(rf"(\d{{12}})_{call_id}-(\d+)", params["id"])
        assert match, f"unexpected id {params['id']!r}"
        prefixes.add(match.group(1))
        params["id"] = f"-{match.group(2)}"
        out.append(params)
    assert len(prefixes) == 1, prefixes
    arrived = datetime.strptime(prefixes.pop(), "%y%m%d%H%M%S").replace(tzinfo=ZoneInfo("Europe/Prague"))
    assert abs(datetime.now(timezone.utc) - arrived) < timedelta(minutes=2)
    return out


def expect(*params: dict) -> list[dict]:
    """Expected webhooks with ids cut to "-<link>" and titles left out."""
    return [{**p, "id": "-" + p["id"].rsplit("-", 1)[1]} for p in params]


def untitled(params: list[dict]) -> list[dict]:
    return [{**p, "title": None} if "title" in p else p for p in params]


def test_external_call_answered_by_extension_then_caller_hangs_up(sim, receiver, live):
    played = sim.play(inbound(CALLER, did=DID).to_extension("101").answered_by("101").talk(10).caller_hangs_up())

    webhooks = received(receiver, live, 3, played.call_id)

    assert untitled(webhooks) == expect(
        ringing("101", "ext", 0),
        started("hangupincoming", "101", "NotDef", 1),
        ended("incoming", "101", "Ok", False, 1))
    assert webhooks[2]["title"].startswith("Incoming call from +420774852529 on DID PragueDID, answered by 101")


def test_queue_call_answered_by_second_agent_says_nothing_for_the_first(sim, receiver, live):
    played = sim.play(inbound(CALLER, did=DID).to_queue("800", rings=["101", "102"]).rings(10)
                      .answered_by("102").talk(10).caller_hangs_up())

    webhooks = received(receiver, live, 4, played.call_id)

    assert untitled(webhooks) == expect(
        ringing("101", "queue", 0), ringing("102", "queue", 0),
        started("hangupincoming", "102", "NotDef", 1),
        ended("incoming", "102", "Ok", False, 1))


def test_queue_call_abandoned_is_missed_at_the_queue(sim, receiver, live):
    # 15 simulated seconds of ringing (0.3 s here), under the queue's 20 s ring timeout: long
    # enough for both ringing legs to be read on a loaded machine.
    played = sim.play(inbound(CALLER, did=DID).to_queue("800", rings=["101", "102"]).rings(15).caller_abandons())

    webhooks = received(receiver, live, 3, played.call_id)

    assert untitled(webhooks) == expect(
        ringing("101", "queue", 0), ringing("102", "queue", 0),
        ended("incoming", "800", "Missed", False, 0))
    assert "not answered in queue 800" in webhooks[2]["title"]


def test_blind_transfer_answered_by_the_target(sim, receiver, live):
    played = sim.play(inbound(CALLER, did=DID).to_extension("101").answered_by("101").talk(5)
                      .blind_transfer(by="101", to="103").rings(12).answered_by("103").talk(20)
                      .caller_hangs_up())

    webhooks = received(receiver, live, 6, played.call_id)

    assert untitled(webhooks) == expect(
        ringing("101", "ext", 0), started("hangupincoming", "101", "NotDef", 1),
        ended("incoming", "101", "Ok", True, 1),
        ringing("103", "ext", 2), started("hangupincoming", "103", "Blind", 2),
        ended("incoming", "103", "Ok", False, 2))
    [(call, ends)] = live.ends
    assert call.v20_call_id == played.call_id
    assert [(end.dn, end.finishtype, end.id[-2:]) for end in ends] == [("101", "Ok", "-1"), ("103", "Ok", "-2")]


def test_attended_transfer_starts_the_target_as_accomp(sim, receiver, live):
    played = sim.play(inbound(CALLER, did=DID).to_extension("101").answered_by("101").talk(5)
                      .attended_transfer(by="101", to="103").talk(20).caller_hangs_up())

    webhooks = received(receiver, live, 5, played.call_id)

    assert untitled(webhooks) == expect(
        ringing("101", "ext", 0), started("hangupincoming", "101", "NotDef", 1),
        ended("incoming", "101", "Ok", True, 1),
        started("hangupincoming", "103", "Accomp", 2),
        ended("incoming", "103", "Ok", False, 2))


def test_blind_transfer_not_answered_ends_missed_on_the_new_link(sim, receiver, live):
    played = sim.play(inbound(CALLER, did=DID).to_extension("101").answered_by("101").talk(5)
                      .blind_transfer(by="101", to="103").rings(5).no_answer())

    webhooks = received(receiver, live, 5, played.call_id)

    assert untitled(webhooks) == expect(
        ringing("101", "ext", 0), started("hangupincoming", "101", "NotDef", 1),
        ended("incoming", "101", "Ok", True, 1),
        ringing("103", "ext", 2),
        ended("incoming", "103", "Missed", False, 2))


def test_outbound_call_answered_has_no_ringing(sim, receiver, live):
    played = sim.play(outbound("101", CALLER).answered().talk(10).hangs_up(by="101"))

    webhooks = received(receiver, live, 2, played.call_id)

    assert untitled(webhooks) == expect(
        started("hangupoutgoing", "101", "NotDef", 1),
        ended("outgoing", "101", "Ok", False, 1))


def test_outbound_call_not_answered_is_missed(sim, receiver, live):
    played = sim.play(outbound("101", CALLER).not_answered(after_s=30))

    webhooks = received(receiver, live, 1, played.call_id)

    assert untitled(webhooks) == expect(ended("outgoing", "101", "Missed", False, 0))


def test_ring_group_call_rings_as_other_with_one_id(sim, receiver, live):
    played = sim.play(inbound(CALLER, did=DID).to_ring_group("700", rings=["101", "102"]).rings(10)
                      .answered_by("102").talk(20).caller_hangs_up())

    webhooks = received(receiver, live, 4, played.call_id)

    assert untitled(webhooks) == expect(
        ringing("101", "other", 0), ringing("102", "other", 0),
        started("hangupincoming", "102", "NotDef", 1),
        ended("incoming", "102", "Ok", False, 1))


def test_hunt_queue_rotating_agents_keeps_one_id(sim, receiver, live):
    played = sim.play(inbound(CALLER, did=DID).to_queue("801", rings=["103", "104"])
                      .answered_by("104").talk(5).caller_hangs_up())

    webhooks = received(receiver, live, 4, played.call_id)

    assert untitled(webhooks) == expect(
        ringing("103", "queue", 0), ringing("104", "queue", 0),
        started("hangupincoming", "104", "NotDef", 1),
        ended("incoming", "104", "Ok", False, 1))


def test_ivr_forwarded_call_rings_as_other(sim, receiver, live):
    played = sim.play(inbound(CALLER, did=DID).to_ivr("600", press="101")
                      .answered_by("101").talk(5).caller_hangs_up())

    webhooks = received(receiver, live, 3, played.call_id)

    assert untitled(webhooks) == expect(
        ringing("101", "other", 0),
        started("hangupincoming", "101", "NotDef", 1),
        ended("incoming", "101", "Ok", False, 1))


def test_call_that_ends_while_the_stream_is_down_still_gets_its_end(sim, receiver, live):
    played = sim.play(inbound(CALLER, did=DID).to_extension("101").answered_by("101").talk(100)
                      .caller_hangs_up(), wait=False)
    receiver.wait_for(2)
    sim.faults.refuse_websockets(True)
    sim.faults.drop_websockets()
    wait_until(lambda: not live.view.is_live)
    played.wait()

    sim.faults.refuse_websockets(False)

    webhooks = received(receiver, live, 3, played.call_id)
    assert untitled(webhooks) == expect(
        ringing("101", "ext", 0),
        started("hangupincoming", "101", "NotDef", 1),
        ended("incoming", "101", "Ok", False, 1))
    assert webhooks[2]["title"].endswith("(end detected after reconnecting to the PBX)")


def test_internal_call_makes_no_webhooks_by_default(sim, receiver, live):
    sim.play(internal("101", "102").answered_by("102").talk(5).hangs_up(by="101"))

    wait_until(live.settled)
    assert receiver.received == []


def test_live_view_finds_a_talking_leg_by_contact_and_far_end(sim, receiver, live):
    played = sim.play(inbound(CALLER, did=DID).to_extension("101").answered_by("101").talk(100)
                      .caller_hangs_up(), wait=False)
    receiver.wait_for(2)

    leg = live.view.find_leg("101", contact="101", external="774852529")

    assert (leg.dn, leg.v20_call_id, leg.status, leg.party_number) == ("101", played.call_id, "talking", CALLER)
    assert live.view.busy_dns() == {"101"}
    sim.engine.hang_up(played.call_id)
    receiver.wait_for(3)


def test_hunt_queue_the_api_client_cannot_monitor_is_reported_as_one_call(sim, receiver, live):
    with sim.directory.lock:
        sim.directory.api_clients[sim.client_id].monitored.remove("801")

    played = sim.play(inbound(CALLER, did=DID).to_queue("801", rings=["103", "104"])
                      .answered_by("104").talk(5).caller_hangs_up())

    webhooks = received(receiver, live, 4, played.call_id)
    assert untitled(webhooks) == expect(
        ringing("103", "queue", 0), ringing("104", "queue", 0),
        started("hangupincoming", "104", "NotDef", 1),
        ended("incoming", "104", "Ok", False, 1))


def test_call_first_seen_by_a_resync_keeps_its_arrival_time_in_its_id(sim, receiver, live):
    sim.faults.refuse_websockets(True)
    sim.faults.drop_websockets()
    wait_until(lambda: not live.view.is_live)
    played = sim.play(inbound(CALLER, did=DID).to_extension("101").answered_by("101").talk(1000)
                      .caller_hangs_up(), wait=False)
    arrived = sim.engine.call(played.call_id).created_at
    # The call has been going on for a while when the gateway sees it first.
    wait_until(lambda: datetime.now(timezone.utc) - arrived > timedelta(seconds=1.5), timeout_s=5)

    sim.faults.refuse_websockets(False)
    receiver.wait_for(1)
    sim.engine.hang_up(played.call_id)

    webhooks = receiver.wait_for(2)
    # The PBX's clock is read over a request, so the arrival is known to a fraction of a second: the
    # id's second is the arrival's, or a neighbour when it lies that close to a second's edge. The
    # resync itself came at least 1.5 s later, outside that range.
    ids = {f"{moment.astimezone(ZoneInfo('Europe/Prague')):%y%m%d%H%M%S}_{played.call_id}-1"
           for moment in (arrived - timedelta(seconds=0.4), arrived + timedelta(seconds=0.4))}
    assert [w.params["event"] for w in webhooks] == ["hangupincoming", "incoming"]
    assert webhooks[0].params["id"] == webhooks[1].params["id"] and webhooks[0].params["id"] in ids
