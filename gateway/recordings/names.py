"""Recording file names: the only names ever written, served or deleted are `<leg id>-<n>.mp3`.

A leg id is the legacy call-link id `yymmddHHMMSS_<call>-<link>` (003_*.txt), and `n` counts the
files of one leg from 1 by start time: `211230102738_669-1-1.mp3`. Everything else (other
extensions, dots, slashes, percent escapes, non-ASCII digits, NUL, overlong names) is invalid,
so a valid name can never leave the MP3 folder.
"""
from __future__ import annotations

import re

MAX_NAME_LEN = 64

# [0-9] rather than \d: \d would also accept non-ASCII digits such as "٣" or fullwidth "３".
_LEG_ID = r"[0-9]{12}_[0-9]{1,10}-[0-9]{1,5}"
_LEG_ID_RE = re.compile(_LEG_ID)
_NAME_RE = re.compile(rf"(?P<leg_id>{_LEG_ID})-(?P<n>[1-9][0-9]{{0,3}})\.mp3")


def is_valid_leg_id(leg_id: object) -> bool:
    """True for a legacy call-link id such as `211230102738_669-1`."""
    return isinstance(leg_id, str) and _LEG_ID_RE.fullmatch(leg_id) is not None


def is_valid_name(name: object) -> bool:
    """True only for `<leg id>-<n>.mp3` in plain ASCII; the single check before any file access."""
    return (isinstance(name, str) and len(name) <= MAX_NAME_LEN
            and _NAME_RE.fullmatch(name) is not None)


def mp3_name(leg_id: str, n: int) -> str:
    """The file name of the n-th recording (from 1) of a leg; ValueError for anything unservable."""
    name = f"{leg_id}-{n}.mp3"
    if not is_valid_name(name):
        raise ValueError(f"not a valid recording name: {name!r}")
    return name


def leg_id_of(name: str) -> str:
    """The leg id part of a valid recording name; ValueError otherwise."""
    match = _NAME_RE.fullmatch(name) if is_valid_name(name) else None
    if match is None:
        raise ValueError(f"not a valid recording name: {name!r}")
    return match.group("leg_id")
