"""Which recording ids of a call-history row are a leg's (the history link's reading of a row)."""
from __future__ import annotations

import pytest

from gateway.live.history import read_segment
from gateway.recordings.history_link import leg_recording_ids


def history_row(source=("10000", 1, "+420774852529"), destination=("101", 0, "101"), src_rec=None,
                dst_rec=None, listed=()):
    """One Pbx.CallLogData row with the fields the reading needs."""
    return {"MainCallHistoryId": "m1", "CallHistoryId": "r1", "StartTime": "2026-11-24T09:00:00Z",
            "SourceDn": source[0], "SourceType": source[1], "SourceCallerId": source[2],
            "DestinationDn": destination[0], "DestinationType": destination[1],
            "DestinationCallerId": destination[2], "Answered": True, "RingingDuration": "PT2S",
            "TalkingDuration": "PT30S", "SrcRecId": src_rec, "DstRecId": dst_rec,
            "Recordings": [{"Id": i} for i in listed]}


@pytest.mark.parametrize("row, dn, expected", [
    (history_row(dst_rec=7, listed=[7]), "101", (7,)),
    (history_row(dst_rec=7, listed=[7, 9]), "101", (7, 9)),
    (history_row(source=("101", 0, "101"), destination=("10000", 1, "+420602111222"), src_rec=5, listed=[5]),
     "101", (5,)),
    (history_row(source=("101", 0, "101"), destination=("103", 0, "103"), src_rec=5, dst_rec=6, listed=[5, 6]),
     "103", (6,)),
    (history_row(source=("101", 0, "101"), destination=("103", 0, "103"), src_rec=5, dst_rec=6, listed=[5, 6]),
     "101", (5,)),
    (history_row(), "101", ()),
], ids=["inbound, one recording", "inbound, recorded in two segments", "outbound from the extension",
        "internal: the callee's side only", "internal: the caller's side only", "not recorded"])
def test_a_leg_takes_its_own_sides_recordings_of_its_row(row, dn, expected):
    assert leg_recording_ids(read_segment(row), dn) == expected
