"""contact.*: the phonebook over HTTP against the simulator (v20 `/Contacts`)."""
from __future__ import annotations

import pytest

from gateway.webapi.commands.contacts import is_match
from tests.support.shape import examples, same_shape

EXAMPLES = examples()
# The legacy fields with 004's example values ("Mobile", "Mobile2", ... "Pager").
EXAMPLE_FIELDS = EXAMPLES["contact.new"]["params"]


def contact_id(sim, first_name: str) -> int:
    """The id of the default phonebook's contact with that first name."""
    return next(c.id for c in sim.directory.contacts.values() if c.first_name == first_name)


@pytest.mark.parametrize("number, wanted, min_len, expected", [
    ("+420774852529", "+420774852529", 20, True),
    ("+420774852529", "774852529", 9, True),
    ("+420774852529", "774852529", 10, False),
    ("+420774852529", "77485252", 3, False),
    ("12345", "12345", 9, True),
    ("+420 603 555 666", "603555666", 9, True),
    ("+420 603 555 666", "603 555 666", 0, True),
    ("(020) 7946-0000", "02079460000", 5, True),
    ("", "997", 0, False),
    ("997", "--", 0, False),
], ids=["exact", "suffix long enough", "suffix shorter than min_len", "not a suffix",
        "exact below min_len", "formatted stored number", "formatted query", "brackets and dashes",
        "empty field", "query of formatting only"])
def test_is_match_follows_the_legacy_rule(number, wanted, min_len, expected):
    assert is_match(number, wanted, min_len) is expected


def test_contact_find_has_the_example_shape(sim, webapi):
    status, answer = webapi("contact.find", num="774852529", min_len="9")

    assert status == 200
    assert same_shape(answer, EXAMPLES["contact.find"]["answer"])
    assert answer == {"id": [contact_id(sim, "Alice")]}


@pytest.mark.parametrize("num, min_len, first_names", [
    ("+420774852529", "20", ["Alice"]),
    ("4852529", "9", []),
    ("12345", "9", ["Piotr"]),
    ("603 555 666", "9", ["Marie"]),
    ("+420", "3", []),
    ("0000", "4", ["Emma"]),
], ids=["exact match", "suffix shorter than min_len", "exact pager number", "formatted mobile2",
        "prefix is no match", "suffix of a formatted number"])
def test_contact_find_applies_min_len_and_suffix(sim, webapi, num, min_len, first_names):
    status, answer = webapi("contact.find", num=num, min_len=min_len)

    assert status == 200
    assert answer == {"id": sorted(contact_id(sim, name) for name in first_names)}


@pytest.mark.parametrize("num", ["12' or 1 eq 1 or '", "O'Brien", "123\n", "\u0661\u0662\u0663", "+-()"],
                         ids=["OData injection", "letters", "trailing newline", "Arabic-Indic digits",
                              "no digit at all"])
def test_contact_find_with_a_non_phone_character_returns_400_without_asking_the_pbx(sim, webapi, num):
    status, answer = webapi("contact.find", num=num, min_len="1")

    assert status == 400
    assert answer["error"].startswith("parameter 'num'")
    assert sim.requests == []


def test_contact_find_without_num_returns_400_naming_it(sim, webapi):
    status, answer = webapi("contact.find", min_len="3")

    assert status == 400
    assert "num" in answer["error"]


def test_contact_new_creates_the_contact_with_v20_fields(sim, webapi):
    status, answer = webapi("contact.new", **EXAMPLE_FIELDS)

    assert status == 200
    assert same_shape(answer, EXAMPLES["contact.new"]["answer"])
    contact = sim.directory.contacts[answer["id"]]
    assert (contact.first_name, contact.last_name, contact.company) == ("FirstName", "LastName", "Company")
    assert (contact.phone, contact.mobile2, contact.home, contact.business, contact.business2) == (
        "Mobile", "Mobile2", "Home", "Business", "Business2")
    assert (contact.email, contact.other, contact.business_fax, contact.pager) == (
        "Email", "Other", "Businessfax", "Pager")


def test_contact_get_answers_004s_keys_with_home2_and_homefax_empty(sim, webapi):
    _, created = webapi("contact.new", **EXAMPLE_FIELDS)

    status, answer = webapi("contact.get", id=str(created["id"]))

    assert status == 200
    assert same_shape(answer, EXAMPLES["contact.get"]["answer"])
    assert answer == {**EXAMPLES["contact.get"]["answer"], "data2": "", "data8": ""}


def test_contact_get_shows_the_tag(sim, webapi):
    status, answer = webapi("contact.get", id=str(contact_id(sim, "Lars")))

    assert status == 200
    assert (answer["name"], answer["phone"], answer["tag"]) == ("Lars", "+4520123456", "VIP")


def test_contact_update_changes_only_the_given_fields(sim, webapi):
    number = contact_id(sim, "Alice")

    status, answer = webapi("contact.update", id=str(number), lastname="Cooper", data3="+420222999000",
                            data8="ignored")

    assert status == 200
    assert same_shape(answer, EXAMPLES["contact.update"]["answer"])
    assert answer == {"result": "Update contact"}
    contact = sim.directory.contacts[number]
    assert (contact.first_name, contact.last_name, contact.business) == ("Alice", "Cooper", "+420222999000")
    assert contact.phone == "+420774852529"


def test_contact_del_removes_the_contact(sim, webapi):
    number = contact_id(sim, "Alice")

    status, answer = webapi("contact.del", id=str(number))

    assert status == 200
    assert same_shape(answer, EXAMPLES["contact.del"]["answer"])
    assert answer == {"result": "Delete contact"}
    assert number not in sim.directory.contacts


@pytest.mark.parametrize("name, params", [
    ("contact.get", {}),
    ("contact.del", {}),
    ("contact.update", {"lastname": "X"}),
    ("contact.update", {}),
], ids=["get", "del", "update", "update with nothing to change"])
def test_contact_command_with_unknown_id_returns_404(sim, webapi, name, params):
    status, answer = webapi(name, id="999999", **params)

    assert status == 404
    assert "999999" in answer["error"]


@pytest.mark.parametrize("name", ["contact.get", "contact.del", "contact.update"])
def test_contact_command_with_bad_id_returns_400_naming_it(sim, webapi, name):
    status, answer = webapi(name, id="five")

    assert status == 400
    assert "'id'" in answer["error"]
