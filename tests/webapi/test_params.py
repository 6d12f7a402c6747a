"""Parameter types: a number is ASCII digits with nothing trimmed; text has no control characters."""
from __future__ import annotations

import pytest

from gateway.webapi.params import Extension, Integer, Number, NumberList, OnOff, PhoneSearch, Strategy, Text

HOSTILE_NUMBERS = {
    "Arabic-Indic digits": "\u0661\u0662\u0663",
    "fullwidth digits": "\uff11\uff10\uff11",
    "trailing newline": "101\n",
    "trailing carriage return": "101\r",
    "leading tab": "\t101",
    "vertical tab": "101\x0b",
    "form feed": "101\x0c",
    "file separator": "101\x1c",
    "NUL": "101\x00",
    "next line (U+0085)": "101\x85",
    "line separator (U+2028)": "101\u2028",
    "sign": "+101",
    "apostrophe": "10'1",
}


@pytest.mark.parametrize("param", [Extension(), Integer(), Strategy(), NumberList()],
                         ids=["Extension", "Integer", "Strategy", "NumberList"])
@pytest.mark.parametrize("raw", HOSTILE_NUMBERS.values(), ids=HOSTILE_NUMBERS.keys())
def test_number_types_refuse_anything_but_ascii_digits(param, raw):
    with pytest.raises(ValueError):
        param.parse(raw)


@pytest.mark.parametrize("param", [Extension(), Integer(), Strategy()], ids=["Extension", "Integer", "Strategy"])
def test_single_numbers_are_not_trimmed_of_spaces(param):
    with pytest.raises(ValueError):
        param.parse(" 10 ")


@pytest.mark.parametrize("raw", [v for k, v in HOSTILE_NUMBERS.items() if k != "sign"],
                         ids=[k for k in HOSTILE_NUMBERS if k != "sign"])
def test_phone_number_refuses_anything_but_ascii_digits_star_hash_and_a_leading_plus(raw):
    with pytest.raises(ValueError):
        Number().parse(raw)


@pytest.mark.parametrize("param, raw, expected", [
    (Extension(), "101", "101"),
    (Extension(), "0012", "0012"),
    (Integer(minimum=1), "7", 7),
    (Integer(minimum=-5), "-5", -5),
    (Strategy(), "13", "SkillBasedRouting_FewestAnswered"),
    (NumberList(), "101, 103,101", ["101", "103"]),
    (Number(), "+420774852529", "+420774852529"),
    (Number(), "*61#", "*61#"),
    (PhoneSearch(), "603 555 666", "603 555 666"),
    (PhoneSearch(), "+420 (774) 852-529", "+420 (774) 852-529"),
    (OnOff(), "On", True),
    (Text(), "  Sales  ", "Sales"),
    (Text(), "Jürgen \u0661", "Jürgen \u0661"),
], ids=["extension", "extension with leading zeros", "integer", "negative integer", "strategy",
        "number list with spaces and a repeat", "international number", "star code", "formatted search",
        "search with brackets and dash", "on/off in any case", "text is trimmed of spaces",
        "text may hold any script"])
def test_valid_values_parse(param, raw, expected):
    assert param.parse(raw) == expected


@pytest.mark.parametrize("raw", ["12' or 1 eq 1 or '", "O'Brien", "abc", "123\n", "\u0661\u0662", "+-()", "1;2"],
                         ids=["OData injection", "name", "letters", "newline", "Arabic-Indic digits",
                              "no digit", "semicolon"])
def test_phone_search_refuses_non_phone_characters(raw):
    with pytest.raises(ValueError):
        PhoneSearch().parse(raw)


@pytest.mark.parametrize("raw", ["a\nb", "a\rb", "a\x00b", "a\x1bb", "a\x7fb", "a\x85b", "a\u2028b", "a\tb"],
                         ids=["LF", "CR", "NUL", "ESC", "DEL", "NEL", "line separator", "tab"])
def test_text_refuses_control_characters(raw):
    with pytest.raises(ValueError):
        Text().parse(raw)


@pytest.mark.parametrize("raw", ["on\n", "\ton", "on\x00"], ids=["trailing newline", "leading tab", "NUL"])
def test_on_off_is_not_trimmed_of_control_characters(raw):
    with pytest.raises(ValueError):
        OnOff().parse(raw)
