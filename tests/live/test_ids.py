"""Call-link ids: `yymmddHHMMSS_<call>-<link>` in the PBX's time zone."""
from __future__ import annotations

from datetime import datetime, timezone
from zoneinfo import ZoneInfo

import pytest

from gateway.live.ids import call_link_id, call_prefix

UTC = timezone.utc


@pytest.mark.parametrize("arrived_at, call, link, zone, expected", [
    pytest.param(datetime(2021, 7, 1, 14, 56, 49, tzinfo=UTC), 698, 2, "Europe/Prague", "210701165649_698-2",
                 id="summer time in Prague is two hours ahead of UTC"),
    pytest.param(datetime(2021, 12, 30, 9, 6, 14, tzinfo=UTC), 665, 0, "Europe/Prague", "211230100614_665-0",
                 id="winter time in Prague is one hour ahead of UTC"),
    pytest.param(datetime(2022, 1, 6, 20, 59, 45, tzinfo=UTC), 755, 1, "UTC", "220106205945_755-1",
                 id="a UTC PBX keeps the time as it is"),
    pytest.param(datetime(2025, 12, 31, 23, 30, 0, tzinfo=UTC), 7, 1, "Europe/Prague", "260101003000_7-1",
                 id="the local date rolls over at local midnight"),
    pytest.param(datetime(2025, 3, 1, 8, 0, 0), 12, 3, "America/New_York", "250301030000_12-3",
                 id="a naive arrival time is read as UTC"),
    pytest.param(datetime(2025, 3, 1, 8, 0, 0, tzinfo=UTC), 12, 0, ZoneInfo("Asia/Tokyo"), "250301170000_12-0",
                 id="a zone object works like its name"),
])
def test_call_link_id_formats_arrival_call_and_link(arrived_at, call, link, zone, expected):
    assert call_link_id(arrived_at, call, link, zone) == expected


def test_call_prefix_is_the_id_without_its_link():
    arrived_at = datetime(2021, 7, 1, 14, 56, 49, tzinfo=UTC)

    assert call_prefix(arrived_at, 698, "Europe/Prague") == "210701165649_698"


def test_call_link_id_refuses_a_negative_link():
    with pytest.raises(ValueError, match="0 or more"):
        call_link_id(datetime(2021, 7, 1, tzinfo=UTC), 1, -1, "UTC")
