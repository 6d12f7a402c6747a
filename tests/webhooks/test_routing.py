"""Target filters as a table, the opt-in fields, and the router's one row per selected target."""
from __future__ import annotations

import pytest

from gateway.config import WebhookTarget
from gateway.live.webhooks import CallEnded, FilesReady, Ringing
from gateway.webhooks.routing import Facts, Router, extra_fields, matches, unknown_filter_values

QUEUE_AGENT = Facts(direction="inbound", extension="102", queues=("800",), did_name="PragueDID",
                    did_number="+420233000111", caller_name="Alice", external_number="+420774852529")
OUTBOUND = Facts(direction="outbound", extension="101", external_number="+420774852529")


def target(**filters) -> WebhookTarget:
    return WebhookTarget("t", "http://crm.test/hook", **{k: frozenset(v) for k, v in filters.items()})


@pytest.mark.parametrize("filters, kind, facts, expected", [
    ({}, "ringing", QUEUE_AGENT, True),
    ({"queues": {"800"}}, "ringing", QUEUE_AGENT, True),
    ({"queues": {"801"}}, "ringing", QUEUE_AGENT, False),
    ({"queues": {"800"}}, "start", OUTBOUND, False),
    ({"extensions": {"102"}}, "end", QUEUE_AGENT, True),
    ({"extensions": {"101"}}, "end", QUEUE_AGENT, False),
    ({"dids": {"PragueDID"}}, "ringing", QUEUE_AGENT, True),
    ({"dids": {"+420 233 000 111"}}, "ringing", QUEUE_AGENT, True),
    ({"dids": {"BrnoDID"}}, "ringing", QUEUE_AGENT, False),
    ({"dids": {"PragueDID"}}, "start", OUTBOUND, False),
    ({"directions": {"outbound", "internal"}}, "start", OUTBOUND, True),
    ({"directions": {"outbound"}}, "ringing", QUEUE_AGENT, False),
    ({"events": {"ringing", "files"}}, "files", QUEUE_AGENT, True),
    ({"events": {"ringing"}}, "end", QUEUE_AGENT, False),
    ({"queues": {"800"}, "extensions": {"101"}}, "ringing", QUEUE_AGENT, False),
    ({"queues": {"800"}, "extensions": {"102"}, "events": {"ringing"}}, "ringing", QUEUE_AGENT, True),
    ({}, "files", None, True),
    ({"extensions": {"102"}}, "files", None, False),
], ids=["no filter passes everything", "queue of the call passes", "another queue does not",
        "a queue filter drops calls without a queue", "extension of the event passes",
        "another extension does not", "DID rule name passes", "DID number however written passes",
        "another DID does not", "a DID filter drops outbound calls", "direction in the list passes",
        "direction not in the list does not", "event kind in the list passes",
        "event kind not in the list does not", "every set filter must match",
        "all three set and matching pass", "an event without facts passes an unfiltered target",
        "an event without facts fails a call filter"])
def test_matches(filters, kind, facts, expected):
    assert matches(target(**filters), kind, facts) is expected


def test_extra_fields_come_from_the_facts_and_the_phonebook():
    asked = []

    fields = extra_fields("261124100000_698", QUEUE_AGENT, lambda number: asked.append(number) or "Alice Walker")

    assert fields == {"chid": "261124100000_698", "inbound_did": "+420233000111", "callername": "Alice",
                      "phonebook": "Alice Walker"}
    assert asked == ["+420774852529"]
    assert extra_fields("k", OUTBOUND, None)["inbound_did"] == ""


class Sink:
    """Collects what the router adds."""

    def __init__(self) -> None:
        self.rows: list[tuple[str, dict, str | None, str]] = []

    def add(self, call_key, params, *, method=None, target="default") -> str:
        self.rows.append((call_key, params, method, target))
        return f"id{len(self.rows)}"


def test_router_writes_one_row_per_selected_target_with_its_fields():
    sink = Sink()
    router = Router(sink, [WebhookTarget("default", "http://a"),
                           WebhookTarget("helpdesk", "http://b", queues=frozenset({"800"}), extra_fields=True),
                           WebhookTarget("sales", "http://c", dids=frozenset({"BrnoDID"}))],
                    phonebook=lambda number: "")
    ringing = Ringing("261124100000_698", "261124100000_698-0", "+420774852529", "102", "queue", "PragueDID",
                      facts=QUEUE_AGENT)

    ids = router.publish(ringing)

    assert ids == ["id1", "id2"]
    assert [(target, method) for _, _, method, target in sink.rows] == [("default", None), ("helpdesk", None)]
    assert sink.rows[0][1] == ringing.params()
    assert sink.rows[1][1] == {**ringing.params(), "chid": "261124100000_698", "inbound_did": "+420233000111",
                               "callername": "Alice", "phonebook": ""}


def test_files_go_as_post_to_targets_that_take_files():
    sink = Sink()
    router = Router(sink, [WebhookTarget("default", "http://a", events=frozenset({"end"})),
                           WebhookTarget("crm", "http://b", events=frozenset({"files"}))])
    ended = CallEnded("k", "k-1", "incoming", "+420774852529", "102", "Ok", False, "t", facts=QUEUE_AGENT)

    router.publish(FilesReady("k", {"FILES": ["https://gw/x.mp3"], "id": "k-1"}, ended.facts))

    assert sink.rows == [("k", {"FILES": ["https://gw/x.mp3"], "id": "k-1"}, "POST", "crm")]


def test_unknown_filter_values_are_named_per_target():
    targets = [WebhookTarget("crm", "http://b", extensions=frozenset({"101", "199"}),
                             dids=frozenset({"+420 233 000 111"})),
               WebhookTarget("helpdesk", "http://c", queues=frozenset({"800"}), dids=frozenset({"NewDID"}))]
    known = {"extensions": {"101", "102"}, "queues": {"800"}, "ringgroups": set(),
             "dids": {"PragueDID", "+420233000111"}}

    lines = unknown_filter_values(targets, known)

    assert lines == ["[webhook:crm] extensions: the PBX has no 199 (yet); events for it are selected once it exists",
                     "[webhook:helpdesk] dids: the PBX has no NewDID (yet); events for it are selected once it exists"]
