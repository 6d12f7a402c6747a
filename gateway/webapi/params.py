"""Parameter types of legacy commands: each has `parse(raw) -> value` raising ValueError("expected ...").

Numbers are strict, because a destructive command must act on exactly what was asked: a number is
ASCII digits 0-9 only (no other script's digits, no sign unless the type says so) and nothing is
trimmed from it, so `101%0a`, `%09101` or `101 ` is refused with 400, never read as 101. Free text
may carry surrounding spaces (trimmed) but no control characters anywhere.
"""
from __future__ import annotations

import re
from typing import Any

from gateway.config import switch

# re's \d also matches other scripts' digits (Arabic-Indic "١٢٣"); numbers here are ASCII only.
DIGITS = "0-9"
# C0 controls, DEL, C1 controls and the Unicode line and paragraph separators: never in a value.
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")


def has_control(raw: str) -> bool:
    """Whether `raw` holds a control character or a Unicode line break."""
    return _CONTROL.search(raw) is not None


class Param:
    """Base: `required`, `default`; subclasses implement `convert(raw)`.

    An empty value counts as missing unless the type sets `allow_empty` (an empty member list).
    """

    expected = "a value"
    allow_empty = False

    def __init__(self, *, required: bool = True, default: Any = None, max_len: int = 200) -> None:
        self.required = required
        self.default = default
        self.max_len = max_len

    def parse(self, raw: str) -> Any:
        if len(raw) > self.max_len:
            raise ValueError(f"expected {self.expected} of at most {self.max_len} characters")
        return self.convert(raw)

    def convert(self, raw: str) -> Any:
        return raw


class Text(Param):
    """Free text, trimmed; bounded length; no control characters."""

    expected = "text"

    def convert(self, raw: str) -> str:
        if has_control(raw):
            raise ValueError("expected text without control characters")
        return raw.strip()


class Extension(Param):
    """A DN number: ASCII digits only, nothing trimmed (extension, queue, ring group, IVR)."""

    expected = "a number made of digits"

    def __init__(self, *, max_len: int = 10, **kwargs: Any) -> None:
        super().__init__(max_len=max_len, **kwargs)

    def convert(self, raw: str) -> str:
        if not re.fullmatch(f"[{DIGITS}]+", raw):
            raise ValueError(f"expected {self.expected}, up to {self.max_len} digits")
        return raw


class Number(Param):
    """A phone number as dialled: ASCII digits, '*' and '#', an optional leading '+'; nothing trimmed."""

    expected = "a phone number"

    def __init__(self, *, max_len: int = 32, **kwargs: Any) -> None:
        super().__init__(max_len=max_len, **kwargs)

    def convert(self, raw: str) -> str:
        if not re.fullmatch(f"\\+?[{DIGITS}*#]+", raw):
            raise ValueError("expected a phone number: digits, optionally starting with +")
        return raw


class Integer(Param):
    """A whole number within [minimum, maximum]."""

    def __init__(self, *, minimum: int = 0, maximum: int = 10**9, **kwargs: Any) -> None:
        super().__init__(max_len=12, **kwargs)
        self.minimum, self.maximum = minimum, maximum
        self.expected = f"a whole number from {minimum} to {maximum}"

    def convert(self, raw: str) -> int:
        if not re.fullmatch(f"-?[{DIGITS}]+", raw) or not self.minimum <= int(raw) <= self.maximum:
            raise ValueError(f"expected {self.expected}")
        return int(raw)


class OnOff(Param):
    """on/off (also 1/0, true/false, yes/no) -> bool."""

    expected = "on or off"

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(max_len=5, **kwargs)

    def convert(self, raw: str) -> bool:
        if has_control(raw):     # switch() trims whitespace, control characters included
            raise ValueError("expected on or off")
        return switch(raw, "expected on or off")


class Choice(Param):
    """One of a fixed set of words (case-insensitive); returns the canonical spelling."""

    def __init__(self, *choices: str, **kwargs: Any) -> None:
        super().__init__(max_len=max(len(c) for c in choices), **kwargs)
        self.choices = choices
        self.expected = "one of " + ", ".join(choices)

    def convert(self, raw: str) -> str:
        for choice in self.choices:
            if raw.strip(" ").lower() == choice.lower():
                return choice
        raise ValueError(f"expected {self.expected}")


class NumberList(Param):
    """Comma-separated DN numbers, e.g. members=101,103 (an empty value means an empty list).

    Spaces around an item are allowed ("101, 103"); any other character, a control character
    included, refuses the whole list.
    """

    expected = "comma-separated numbers made of digits"
    allow_empty = True

    def __init__(self, *, max_items: int = 500, **kwargs: Any) -> None:
        super().__init__(max_len=max_items * 11, **kwargs)
        self.max_items = max_items

    def convert(self, raw: str) -> list[str]:
        items = [part.strip(" ") for part in raw.split(",") if part.strip(" ")]
        if len(items) > self.max_items or not all(re.fullmatch(f"[{DIGITS}]{{1,10}}", i) for i in items):
            raise ValueError(f"expected {self.expected}, at most {self.max_items}")
        return list(dict.fromkeys(items))


class Strategy(Param):
    """Legacy queue polling strategy number 0-13 -> v20 PollingStrategy name (004's list)."""

    # 004_…txt lists 0, 1, 3-13 (there is no 2); names are the v20 enum (V20-API-NOTES §c).
    NAMES = {
        0: "Hunt", 1: "RingAll", 3: "HuntRandomStart", 4: "NextAgent", 5: "LongestWaiting",
        6: "LeastTalkTime", 7: "FewestAnswered", 8: "HuntBy3s", 9: "First3Available",
        10: "SkillBasedRouting_RingAll", 11: "SkillBasedRouting_HuntRandomStart",
        12: "SkillBasedRouting_RoundRobin", 13: "SkillBasedRouting_FewestAnswered",
    }
    expected = "a polling strategy number: 0, 1 or 3 to 13"

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(max_len=2, **kwargs)

    def convert(self, raw: str) -> str:
        if not re.fullmatch(f"[{DIGITS}]+", raw) or int(raw) not in self.NAMES:
            raise ValueError(f"expected {self.expected}")
        return self.NAMES[int(raw)]


class PhoneSearch(Param):
    """A phone number to search for, as a phonebook may store it: ASCII digits (at least one), spaces
    and + - ( ) . / * #. An apostrophe, a letter or a control character is refused with 400: no
    stored number can contain it, so such a search could only ever find nothing."""

    expected = "a phone number: digits, spaces and + - ( ) . / * #"

    def convert(self, raw: str) -> str:
        value = raw.strip(" ")
        if not re.fullmatch(f"[{DIGITS} +\\-()./*#]+", value) or not re.search(f"[{DIGITS}]", value):
            raise ValueError(f"expected {self.expected}")
        return value
