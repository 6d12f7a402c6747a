"""Recording names: only `<leg id>-<n>.mp3` passes, whatever the encoding trick."""
from __future__ import annotations

import pytest

from gateway.recordings.names import is_valid_leg_id, is_valid_name, leg_id_of, mp3_name


@pytest.mark.parametrize("name", [
    "211230102738_669-1-1.mp3",
    "211230102738_669-1-2.mp3",
    "220106205945_755-12-3.mp3",
    "260101000000_1-0-1.mp3",
    "210701165649_4294967295-99999-9999.mp3",
], ids=lambda n: n)
def test_is_valid_name_accepts_leg_id_and_number(name):
    assert is_valid_name(name)


@pytest.mark.parametrize("name", [
    "",
    "..",
    "../211230102738_669-1-1.mp3",
    "..%2f211230102738_669-1-1.mp3",
    "%2e%2e/211230102738_669-1-1.mp3",
    "211230102738_669-1-1.mp3/..",
    "/etc/passwd",
    "mp3/211230102738_669-1-1.mp3",
    "..\\211230102738_669-1-1.mp3",
    "211230102738_669-1-1.mp3\x00.wav",
    "211230102738_669-1-1.mp3\n",
    " 211230102738_669-1-1.mp3",
    "211230102738_669-1-1.MP3",
    "211230102738_669-1-1.mp3.wav",
    "211230102738_669-1-1.wav",
    ".211230102738_669-1-1.mp3.1a2b3c4d.part",
    "211230102738_669-1-0.mp3",
    "211230102738_669-1.mp3",
    "21123010273_669-1-1.mp3",
    "211230102738-669-1-1.mp3",
    "211230102738_669-1-1%2emp3",
    "２１１２３０１０２７３８_669-1-1.mp3",           # fullwidth digits
    "211230102738_٦٦٩-1-1.mp3",                       # Arabic-Indic digits
    "211230102738_669\u20111-1.mp3",                  # non-breaking hyphen
    "211230102738_669-1-1\u2024mp3",                  # one dot leader instead of "."
    "211230102738_669-1-1.mp3\u200b",                 # zero-width space
    "2" * 12 + "_" + "6" * 40 + "-1-1.mp3",           # overlong call number
    "211230102738_669-1-1" + ".mp3" * 20,
], ids=repr)
def test_is_valid_name_refuses_traversal_and_lookalikes(name):
    assert not is_valid_name(name)


@pytest.mark.parametrize("value", [None, 7, b"211230102738_669-1-1.mp3", ["211230102738_669-1-1.mp3"]],
                         ids=repr)
def test_is_valid_name_refuses_non_strings(value):
    assert not is_valid_name(value)


def test_mp3_name_builds_the_legacy_form():
    assert mp3_name("211230102738_669-1", 1) == "211230102738_669-1-1.mp3"


@pytest.mark.parametrize("leg_id, n", [("../x", 1), ("211230102738_669-1", 0), ("211230102738_669", 1)],
                         ids=repr)
def test_mp3_name_refuses_what_could_not_be_served(leg_id, n):
    with pytest.raises(ValueError):
        mp3_name(leg_id, n)


def test_leg_id_of_returns_the_leg_part():
    assert leg_id_of("211230102738_669-2-3.mp3") == "211230102738_669-2"


def test_is_valid_leg_id_accepts_call_link_ids_only():
    assert is_valid_leg_id("210701165649_698-2")
    assert not is_valid_leg_id("210701165649_698")
    assert not is_valid_leg_id("210701165649_698-2\n")
