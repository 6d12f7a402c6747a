"""Builders of v20 call history rows (`Pbx.CallLogData`) for the history and recovery tests."""
from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

HISTORY_CALLER = "+420774852529"
T0 = datetime(2026, 11, 24, 9, 0, 0, tzinfo=timezone.utc)


def row(main: str = "m1", *, start: str = "2026-11-24T09:00:00Z",
        src: tuple[str, int, str] = ("10000", 1, HISTORY_CALLER), dst: tuple[str, int, str] = ("101", 0, "101"),
        answered: bool = True, ringing: str = "PT5S", talking: str = "PT1M3.5S", **fields: Any) -> dict[str, Any]:
    """One row as V20 answers it: `src`/`dst` are (DN, DN type code, caller id)."""
    body: dict[str, Any] = {
        "CallId": 1, "SegmentId": 1, "Indent": 1, "MainCallHistoryId": main, "CallHistoryId": f"{main}-{dst[0]}",
        "StartTime": start, "SourceDn": src[0], "SourceType": src[1], "SourceCallerId": src[2],
        "SourceDisplayName": "", "DestinationDn": dst[0], "DestinationType": dst[1],
        "DestinationCallerId": dst[2], "DestinationDisplayName": "", "Answered": answered,
        "RingingDuration": ringing, "TalkingDuration": talking, "SrcRecId": None, "DstRecId": None,
        "Recordings": [], "Direction": "Inbound", "Status": "", "Reason": ""}
    body.update(fields)
    return body
