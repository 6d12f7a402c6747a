"""The simulator's OData evaluator: $filter grammar, escaping, paging, ordering, shaping and errors."""
from __future__ import annotations

import pytest

from gateway.sim.odata import EntityType, Navigation, ODataError, apply, parse_filter, parse_query

ROWS = [
    {"Id": 1, "Number": "101", "FirstName": "Petra", "LastName": "Svobodová", "IsRegistered": True,
     "Type": "Extension", "Mobile": "+420611107203", "StartTime": "2025-03-01T10:00:00.000Z", "Score": 5},
    {"Id": 2, "Number": "102", "FirstName": "Tomáš", "LastName": "Dvořák", "IsRegistered": False,
     "Type": "Extension", "Mobile": None, "StartTime": "2025-03-02T10:00:00.000Z", "Score": 7},
    {"Id": 3, "Number": "800", "FirstName": "John", "LastName": "O'Brien", "IsRegistered": True,
     "Type": "Queue", "Mobile": "", "StartTime": "2025-03-03T10:00:00.000Z", "Score": 7},
]
PEER = EntityType("Pbx.Peer", tuple(ROWS[0]))


def numbers(filter_text: str) -> list[str]:
    page, _ = apply(parse_query({"$filter": filter_text}), PEER, ROWS)
    return [row["Number"] for row in page]


@pytest.mark.parametrize("filter_text, expected", [
    ("Number eq '101'", ["101"]),
    ("Number ne '101'", ["102", "800"]),
    ("Id gt 1", ["102", "800"]),
    ("Id ge 2 and Id le 2", ["102"]),
    ("Id lt 2 or Number eq '800'", ["101", "800"]),
    ("not (Number eq '101')", ["102", "800"]),
    ("(Number eq '101' or Number eq '102') and IsRegistered eq true", ["101"]),
    ("IsRegistered", ["101", "800"]),
    ("not IsRegistered", ["102"]),
    ("IsRegistered eq false", ["102"]),
    ("Mobile eq null", ["102"]),
    ("Mobile ne null", ["101", "800"]),
    ("contains(Mobile,'1107')", ["101"]),
    ("startswith(Number,'10')", ["101", "102"]),
    ("endswith(Number, '00')", ["800"]),
    ("contains(tolower(LastName), 'dvoř')", ["102"]),
    ("toupper(FirstName) eq 'JOHN'", ["800"]),
    ("LastName eq 'O''Brien'", ["800"]),
    ("contains(LastName,'''')", ["800"]),
    ("Type eq 'Queue'", ["800"]),
    ("Type eq Pbx.PeerType'Queue'", ["800"]),
    ("Number eq'101'", ["101"]),
    ("StartTime ge 2025-03-02T00:00:00Z", ["102", "800"]),
    ("StartTime ge 2025-03-01T00:00:00Z and StartTime lt 2025-03-02T00:00:00Z", ["101"]),
    ("Score eq 7 and Id ne 3", ["102"]),
    ("length(Number) eq 3 and Score gt 6.5", ["102", "800"]),
], ids=lambda value: value if isinstance(value, str) else None)
def test_filter_selects_matching_rows(filter_text, expected):
    assert numbers(filter_text) == expected


@pytest.mark.parametrize("filter_text", [
    "Number eq '101'' or Number ne '''",        # the quoted form of "101' or Number ne '"
    "Number eq '101'' or ''1''=''1'",
    "LastName eq 'O''Brien'' or Id gt ''0'",
], ids=["quoted or-clause", "quoted tautology", "quoted trailing clause"])
def test_filter_keeps_injected_text_inside_the_literal(filter_text):
    assert numbers(filter_text) == []


def test_filter_without_quoting_is_parsed_as_an_expression():
    assert numbers("Number eq '101' or Number ne ''") == ["101", "102", "800"]


@pytest.mark.parametrize("filter_text, message", [
    ("Number eq '101", "Syntax error"),
    ("Number eq", "Syntax error"),
    ("Number eq '101' and", "Syntax error"),
    ("(Number eq '101'", "Syntax error"),
    ("Number eq '101')", "Syntax error"),
    ("Number eq eq '101'", "Syntax error"),
    ("Number == '101'", "Syntax error"),
    ("Number eq 101", "incompatible types"),
    ("Id eq '1'", "incompatible types"),
    ("IsRegistered eq 'true'", "incompatible types"),
    ("Nope eq '1'", "Could not find a property named 'Nope' on type 'Pbx.Peer'"),
    ("frobnicate(Number)", "Unknown function"),
    ("contains(Number)", "No function signature"),
    ("contains(Id, '1')", "No function signature"),
    ("Number", "single boolean value"),
], ids=lambda value: value)
def test_filter_rejects_malformed_expressions(filter_text, message):
    with pytest.raises(ODataError, match=message):
        numbers(filter_text)


@pytest.mark.parametrize("options, expected", [
    ({"$orderby": "Number desc"}, ["800", "102", "101"]),
    ({"$orderby": "Score desc,Number asc"}, ["102", "800", "101"]),
    ({"$orderby": "Score, Number desc"}, ["101", "800", "102"]),
    ({"$orderby": "Mobile"}, ["102", "800", "101"]),
    ({"$top": "2"}, ["101", "102"]),
    ({"$skip": "1"}, ["102", "800"]),
    ({"$skip": "1", "$top": "1"}, ["102"]),
    ({"$top": "0"}, []),
    ({"$search": "o'brien"}, ["800"]),
    ({"$filter": "IsRegistered", "$orderby": "Id desc", "$top": "1"}, ["800"]),
], ids=str)
def test_paging_and_ordering(options, expected):
    page, _ = apply(parse_query(options), PEER, ROWS)

    assert [row["Number"] for row in page] == expected


def test_count_is_taken_before_paging():
    page, count = apply(parse_query({"$filter": "IsRegistered", "$top": "1", "$count": "true"}), PEER, ROWS)

    assert (len(page), count) == (1, 2)


@pytest.mark.parametrize("options, message", [
    ({"$top": "101"}, "The limit of '100' for Top query has been exceeded"),
    ({"$top": "-1"}, "non-negative integer"),
    ({"$skip": "x"}, "non-negative integer"),
    ({"$count": "yes"}, "not a valid count option"),
    ({"$frobnicate": "1"}, "is not supported"),
    ({"$orderby": "Number sideways"}, "Syntax error in \\$orderby"),
    ({"$expand": "Groups(($select=Id)"}, "unbalanced"),
], ids=str)
def test_query_options_reject_bad_values(options, message):
    with pytest.raises(ODataError, match=message):
        parse_query(options)


@pytest.mark.parametrize("options, message", [
    ({"$select": "Id,Nope"}, "Could not find a property named 'Nope'"),
    ({"$orderby": "Nope"}, "Could not find a property named 'Nope'"),
    ({"$expand": "Number"}, "is not a navigation property"),
], ids=str)
def test_query_rejects_unknown_properties(options, message):
    with pytest.raises(ODataError, match=message):
        apply(parse_query(options), PEER, ROWS)


def test_select_keeps_only_the_named_fields():
    page, _ = apply(parse_query({"$select": "Id, Number"}), PEER, ROWS)

    assert page[0] == {"Id": 1, "Number": "101"}


def test_expand_adds_navigation_rows_with_nested_options():
    rights = EntityType("Pbx.Rights", ("RoleName",))
    group = EntityType("Pbx.UserGroup", ("GroupId", "Name"),
                       {"Rights": Navigation(rights, lambda row: {"RoleName": f"role{row['GroupId']}"})})
    user = EntityType("Pbx.User", ("Id", "Number"), {
        "Groups": Navigation(group, lambda row: [{"GroupId": row["Id"], "Name": "DEFAULT"},
                                                 {"GroupId": 9, "Name": "Sales"}])})
    query = parse_query({"$select": "Number", "$expand": "Groups($expand=Rights;$filter=GroupId ne 9)"})

    page, _ = apply(query, user, [{"Id": 1, "Number": "101"}])

    assert page == [{"Number": "101", "Groups": [{"GroupId": 1, "Name": "DEFAULT",
                                                  "Rights": {"RoleName": "role1"}}]}]


def test_navigation_is_absent_unless_expanded():
    user = EntityType("Pbx.User", ("Id",), {"Groups": Navigation(PEER, lambda row: [])})

    page, _ = apply(parse_query({}), user, [{"Id": 1}])

    assert page == [{"Id": 1}]


def test_enum_literal_and_plain_literal_parse_alike():
    assert parse_filter("Type eq Pbx.PeerType'Queue'") == parse_filter("Type eq 'Queue'")
