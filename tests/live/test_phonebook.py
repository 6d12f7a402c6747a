"""Phonebook names: the PBX's number function or contains(), digit matching, the cache, a PBX that fails."""
from __future__ import annotations

import pytest

from gateway.clock import FakeClock
from gateway.live.phonebook import Phonebook, is_same_number
from gateway.pbx.errors import PbxNotFound, PbxUnreachable

JANA = {"Id": 7, "FirstName": "Jana", "LastName": "Novakova", "CompanyName": "", "PhoneNumber": "777 123 456"}
PIZZA = {"Id": 9, "FirstName": "", "LastName": "", "CompanyName": "Pizza Roma", "Business": "+420222333444"}


class StandInXapi:
    """Answers the number function (or 404 as builds before 20.0.9 do) and /Contacts lists; counts reads."""

    def __init__(self, rows: list[dict], *, has_function: bool = True) -> None:
        self.rows = rows
        self.has_function = has_function
        self.reads: list[str] = []
        self.error: Exception | None = None

    def get(self, path: str, params: dict) -> dict:
        self.reads.append(path)
        if self.error:
            raise self.error
        if not self.has_function:
            raise PbxNotFound(path)
        return {"value": list(self.rows)}

    def list(self, entity_set: str, **options: object) -> list[dict]:
        self.reads.append(f"{entity_set}?{options['filter']}")
        if self.error:
            raise self.error
        return list(self.rows)


@pytest.mark.parametrize("a, b, expected", [
    ("+420777123456", "777 123 456", True), ("+420777123456", "+420777123456", True),
    ("+420777123456", "123456", False), ("+420777123456", "+420777123457", False), ("", "1", False),
], ids=["national form of the number", "the same", "too short a tail", "another number", "empty"])
def test_is_same_number(a, b, expected):
    assert is_same_number(a, b) is expected


def test_a_number_names_its_contact_and_the_answer_is_cached():
    xapi = StandInXapi([PIZZA, JANA])
    phonebook = Phonebook(xapi, clock=FakeClock())

    names = [phonebook.name_of("+420777123456"), phonebook.name_of("+420 777 123 456"),
             phonebook.name_of("+420222333444")]

    assert names == ["Jana Novakova", "Jana Novakova", "Pizza Roma"]
    assert xapi.reads == ["/Contacts/Pbx.GetContactsByNumber(number='+420777123456')",
                          "/Contacts/Pbx.GetContactsByNumber(number='+420222333444')"]


def test_a_build_without_the_number_function_is_asked_with_contains_from_then_on():
    xapi = StandInXapi([JANA], has_function=False)
    phonebook = Phonebook(xapi, clock=FakeClock())

    first, second = phonebook.name_of("777123456"), phonebook.name_of("+420602000000")

    assert (first, second) == ("Jana Novakova", "")
    assert [read.split("?")[0] for read in xapi.reads] == [
        "/Contacts/Pbx.GetContactsByNumber(number='777123456')", "Contacts", "Contacts"]
    assert "contains(PhoneNumber,'777123456')" in xapi.reads[1]


def test_an_unreachable_pbx_gives_empty_names_and_is_not_asked_again_for_a_while():
    clock = FakeClock()
    xapi = StandInXapi([JANA])
    xapi.error = PbxUnreachable("down")
    phonebook = Phonebook(xapi, clock=clock, ttl_s=60)

    during = [phonebook.name_of("+420777123456"), phonebook.name_of("+420603000000")]
    xapi.error = None
    clock.advance(61)
    after = phonebook.name_of("+420777123456")

    assert during == ["", ""] and after == "Jana Novakova"
    assert len(xapi.reads) == 2
