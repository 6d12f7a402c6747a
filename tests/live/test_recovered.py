"""Webhook events made from call history (gateway.live.recovered, pure) and the gap limit."""
from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timedelta, timezone

from gateway.live.gaps import GapStore
from gateway.live.history import group_calls
from gateway.live.machine import Rules
from gateway.live.recovered import completed_events, recovered_events
from tests.support.live import ZONE, at, run, seen
from tests.support.history import HISTORY_CALLER as CALLER, row

RULES = Rules(timezone=ZONE)
MONITORED = frozenset({"101", "102", "103", "800"})


def params(result) -> list[tuple]:
    return [(p.get("event"), p.get("user"), p.get("finishtype"), p["id"].rsplit("-", 1)[1])
            for p in (e.params() for e in result.events)]


def test_transferred_call_recovers_one_link_per_answering_extension():
    [call] = group_calls([row("t", dst=("101", 0, "101"), talking="PT10S"),
                          row("t", dst=("103", 0, "103"), start="2026-11-24T09:00:20Z", talking="PT5S")])

    result = recovered_events(call, RULES, MONITORED)

    assert params(result) == [("hangupincoming", "101", None, "1"), ("incoming", "101", "Ok", "1"),
                              ("hangupincoming", "103", None, "2"), ("incoming", "103", "Ok", "2")]
    assert result.events[1].params()["transfer"] == "true" and result.events[2].params()["trtype"] == "Blind"
    assert result.events[0].id.startswith("261124100000_")          # StartTime in the PBX's zone
    assert [e.dn for e in result.answered_ends] == ["101", "103"]


def test_outbound_call_not_answered_is_an_outgoing_miss_for_the_caller():
    [call] = group_calls([row("o", src=("101", 0, "101"), dst=("10000", 1, CALLER), answered=False,
                              talking="PT0S", Direction="Outbound")])

    assert params(recovered_events(call, RULES, MONITORED)) == [("outgoing", "101", "Missed", "0")]


def test_internal_and_unmonitored_calls_are_not_recovered_by_default():
    [internal] = group_calls([row("i", src=("101", 0, "101"), dst=("102", 0, "102"))])
    [elsewhere] = group_calls([row("e", dst=("150", 0, "150"))])

    assert recovered_events(internal, RULES, MONITORED).events == ()
    assert recovered_events(elsewhere, RULES, MONITORED).events == ()
    assert len(recovered_events(internal, replace(RULES, internal_calls=True), MONITORED).events) == 2


def test_call_seen_ringing_and_answered_in_the_gap_completes_under_its_own_ids():
    _, calls = run([seen("800", 1, "Connected", dn_kind="queue"), seen("101", 2,
                    on_behalf_of_dn="800", on_behalf_of_type="Wqueue"),
                    seen("102", 3, on_behalf_of_dn="800", on_behalf_of_type="Wqueue")])
    [live] = calls.values()
    [history] = group_calls([row("q", dst=("800", 4, "800"), talking="PT0S"),
                             row("q", dst=("102", 0, "102"), ringing="PT8S", talking="PT42S")])

    result = completed_events(live, history, RULES)

    assert params(result) == [("hangupincoming", "102", None, "1"), ("incoming", "102", "Ok", "1")]
    assert result.events[0].id == "261124100000_698-1"
    assert "answered by 102, duration 00:00:42" in result.events[1].title
    assert result.call.is_ended and result.call.is_link_answered


def test_call_talking_before_the_gap_ends_with_the_history_duration():
    _, calls = run([seen("101", 1), seen("101", 1, "Connected", 5)])
    [live] = calls.values()
    [history] = group_calls([row("a", ringing="PT5S", talking="PT60S")])

    result = completed_events(live, history, RULES)

    assert params(result) == [("incoming", "101", "Ok", "1")]
    assert "duration 00:01:00" in result.events[0].title and result.events[0].ended_at == at(65)


def test_call_missed_in_the_gap_ends_missed_at_its_queue():
    _, calls = run([seen("800", 1, "Connected", dn_kind="queue"),
                    seen("101", 2, on_behalf_of_dn="800", on_behalf_of_type="Wqueue")])
    [live] = calls.values()
    [history] = group_calls([row("m", dst=("800", 4, "800"), answered=False, talking="PT0S")])

    assert params(completed_events(live, history, RULES)) == [("incoming", "800", "Missed", "0")]


def test_a_gap_longer_than_the_limit_is_noted_not_read(sim, config, tmp_path):
    from gateway.services import Services

    limited = replace(config, webhooks=replace(config.webhooks, recover_max_gap_hours=1))
    services = Services(limited)
    store = GapStore(tmp_path / "state" / "recovery.sqlite3")
    two_hours_ago = datetime.now(timezone.utc) - timedelta(hours=2)
    store.observe(two_hours_ago, two_hours_ago)

    services.recovery.synced()
    services.recovery.recover_now()

    [gap] = services.recovery.status().uncovered
    assert "recover_max_gap_hours" in gap.reason and gap.since.startswith(f"{two_hours_ago:%Y-%m-%dT%H:%M}")
    assert not [r for r in sim.requests if "GetCallLogData" in r.path]
    services.http.close()


def test_recovered_events_carry_the_facts_webhook_targets_route_by():
    [call] = group_calls([row("q", dst=("800", 4, "800"), talking="PT0S", SourceDisplayName="Ann Smith"),
                          row("q", dst=("102", 0, "102"), start="2026-11-24T09:00:04Z")])

    result = recovered_events(call, RULES, MONITORED)

    facts = [e.facts for e in result.events]
    assert [(f.direction, f.extension, f.queues, f.external_number) for f in facts] == \
        [("inbound", "102", ("800",), CALLER)] * 2
    assert facts[0].caller_name == "Ann Smith"
