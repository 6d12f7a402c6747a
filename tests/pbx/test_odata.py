"""OData literal quoting and filter building: no value can break or widen a query."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from gateway.pbx import odata


@pytest.mark.parametrize("value, expected", [
    ("101", "'101'"),
    ("O'Brien", "'O''Brien'"),
    ("''", "''''''"),
    ("101' or Number ne '", "'101'' or Number ne '''"),
    ("", "''"),
    ("Müller & Söhne", "'Müller & Söhne'"),
    (42, "42"),
    (True, "true"),
    (False, "false"),
    (None, "null"),
    (1.5, "1.5"),
    (datetime(2025, 3, 1, tzinfo=timezone.utc), "2025-03-01T00:00:00Z"),
    (datetime(2025, 3, 1, 1, 30, tzinfo=timezone(timedelta(hours=1))), "2025-03-01T00:30:00Z"),
    (datetime(2025, 3, 1, 12, 0, 5), "2025-03-01T12:00:05Z"),
], ids=[
    "plain number string is quoted",
    "apostrophe is doubled",
    "only apostrophes are all doubled",
    "injection attempt stays one literal",
    "empty string is two quotes",
    "non-ascii and ampersand pass unchanged",
    "int is bare",
    "true is lowercase",
    "false is lowercase",
    "none is null",
    "float is bare",
    "utc datetime is a Z literal",
    "offset datetime is converted to utc",
    "naive datetime is taken as utc",
])
def test_quote_writes_an_odata_literal(value, expected):
    assert odata.quote(value) == expected


@pytest.mark.parametrize("value", [float("nan"), float("inf"), object(), b"101"],
                         ids=["nan", "infinity", "object", "bytes"])
def test_quote_refuses_values_without_a_literal(value):
    with pytest.raises((TypeError, ValueError)):
        odata.quote(value)


def _unquoted_tokens(clause: str) -> list[str]:
    """The clause's words outside string literals (what the OData parser sees as syntax)."""
    inside, i = False, 0
    text = []
    while i < len(clause):
        char = clause[i]
        if char == "'":
            if inside and clause[i + 1:i + 2] == "'":
                i += 2
                continue
            inside = not inside
            text.append(" ")
        elif not inside:
            text.append(char)
        i += 1
    return "".join(text).split()


@pytest.mark.parametrize("value", [
    "101' or Number ne '",
    "x') or (1 eq 1",
    "O'Brien",
    "'",
    "a'' or ''b",
], ids=["or injection", "parenthesis injection", "name with apostrophe", "lone apostrophe",
        "pre-doubled quotes"])
def test_eq_keeps_a_hostile_value_inside_one_literal(value):
    clause = odata.eq("Number", value)

    assert _unquoted_tokens(clause) == ["Number", "eq"]


@pytest.mark.parametrize("build, expected", [
    (lambda: odata.eq("Number", "101"), "Number eq '101'"),
    (lambda: odata.ne("Type", "Queue"), "Type ne 'Queue'"),
    (lambda: odata.eq("IsRegistered", True), "IsRegistered eq true"),
    (lambda: odata.eq("Id", 7), "Id eq 7"),
    (lambda: odata.contains("PhoneNumber", "0612"), "contains(PhoneNumber,'0612')"),
    (lambda: odata.contains("LastName", "O'B"), "contains(LastName,'O''B')"),
    (lambda: odata.ge("StartTime", datetime(2025, 3, 1, tzinfo=timezone.utc)),
     "StartTime ge 2025-03-01T00:00:00Z"),
    (lambda: odata.lt("StartTime", datetime(2025, 3, 2, tzinfo=timezone.utc)),
     "StartTime lt 2025-03-02T00:00:00Z"),
    (lambda: odata.eq("Gateway/Host", "sip.example.com"), "Gateway/Host eq 'sip.example.com'"),
    (lambda: odata.any_of(odata.eq("FromDn", "101"), odata.eq("ToDn", "101")),
     "(FromDn eq '101' or ToDn eq '101')"),
    (lambda: odata.all_of("A eq 1", odata.any_of("B eq 2", "C eq 3")), "(A eq 1 and (B eq 2 or C eq 3))"),
    (lambda: odata.any_of("A eq 1"), "(A eq 1)"),
    (lambda: odata.any_of("A eq 1", "", "B eq 2"), "(A eq 1 or B eq 2)"),
], ids=[
    "eq on a string", "ne on a string", "eq on a boolean", "eq on an integer", "contains",
    "contains with apostrophe", "ge on a datetime", "lt on a datetime", "navigation path field",
    "any_of parenthesises an or", "all_of nests any_of", "single clause is still parenthesised",
    "empty clauses are skipped",
])
def test_filter_builders_write_the_expected_clause(build, expected):
    assert build() == expected


@pytest.mark.parametrize("name", ["Number eq '1' or Id", "Number)", "", "1Number", "Num'ber", "A//B"],
                         ids=["expression", "parenthesis", "empty", "leading digit", "quote", "empty segment"])
def test_field_names_outside_the_pattern_are_refused(name):
    with pytest.raises(ValueError):
        odata.eq(name, "101")


def test_combining_no_clauses_is_refused():
    with pytest.raises(ValueError):
        odata.any_of()
