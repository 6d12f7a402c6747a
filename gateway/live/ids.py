"""Legacy call-link ids: `yymmddHHMMSS_<call>-<link>`, e.g. `210701165649_698-2` (003, "call ID")."""
from __future__ import annotations

from datetime import datetime, timezone, tzinfo
from functools import lru_cache
from zoneinfo import ZoneInfo


@lru_cache(maxsize=64)
def _zone(tz: str | tzinfo) -> tzinfo:
    return ZoneInfo(tz) if isinstance(tz, str) else tz


@lru_cache(maxsize=4096)
def call_prefix(arrived_at: datetime, v20_call_id: int, tz: str | tzinfo) -> str:
    """`yymmddHHMMSS_<call>`: the part every link of one transfer chain shares (cached: every step
    of a call asks for it)."""
    if arrived_at.tzinfo is None:
        arrived_at = arrived_at.replace(tzinfo=timezone.utc)
    local = arrived_at.astimezone(_zone(tz))
    return f"{local:%y%m%d%H%M%S}_{v20_call_id}"


def call_link_id(arrived_at: datetime, v20_call_id: int, link: int, tz: str | tzinfo) -> str:
    """The id of one call link: arrival time at the PBX in the PBX's zone `tz`, call number, link.

    A naive `arrived_at` is taken as UTC. Link 0 = not answered yet, 1 = first answer, +1 per transfer.
    """
    if link < 0:
        raise ValueError(f"call link must be 0 or more, got {link}")
    return f"{call_prefix(arrived_at, v20_call_id, tz)}-{link}"
