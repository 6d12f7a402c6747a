"""The simulator's call history (`ReportCallLogData/Pbx.GetCallLogData`): V20's rows of finished calls."""
from __future__ import annotations

import re
from datetime import datetime, timedelta, timezone

import pytest

from gateway.sim.scenarios import inbound, outbound
from tests.support.simulator import Xapi, assert_error
from tests.support.wait import wait_until

CALLER = "+420774852529"
ISO_DURATION = re.compile(r"^PT(\d+H)?(\d+M)?(\d+(\.\d+)?S)?$")


def call_log_path(since: datetime, until: datetime, *, since_text: str | None = None) -> str:
    def utc(moment: datetime) -> str:
        return moment.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.000Z")
    return (f"/ReportCallLogData/Pbx.GetCallLogData(periodFrom={since_text or utc(since)},periodTo={utc(until)},"
            "sourceType=0,sourceFilter='',destinationType=0,destinationFilter='',callsType=0,"
            "callTimeFilterType=0,callTimeFilterFrom='0:00:0',callTimeFilterTo='0:00:0',hidePcalls=true)")


@pytest.fixture
def xapi(sim) -> Xapi:
    return Xapi.login(sim.url, sim.client_id, sim.client_secret)


def rows_of(xapi: Xapi, **query: str) -> list[dict]:
    now = datetime.now(timezone.utc)
    return xapi.values(call_log_path(now - timedelta(hours=1), now + timedelta(minutes=1)),
                       **{"$orderby": "StartTime asc", **query})


def calls(rows: list[dict]) -> dict[str, list[dict]]:
    grouped: dict[str, list[dict]] = {}
    for row in rows:
        grouped.setdefault(row["MainCallHistoryId"], []).append(row)
    return grouped


def test_answered_call_is_one_row_with_v20_constants_durations_and_recording(sim, xapi):
    played = sim.play(inbound(CALLER).to_extension("101").answered_by("101").talk(10).caller_hangs_up())

    [row] = rows_of(xapi)

    assert (row["CallId"], row["SegmentId"], row["Indent"]) == (1, 1, 1)
    assert (row["SourceCallerId"], row["SourceType"], row["DestinationDn"], row["DestinationType"]) == \
        (CALLER, 1, "101", 0)
    assert row["Answered"] is True and row["Direction"] == "Inbound"
    assert ISO_DURATION.match(row["TalkingDuration"]) and ISO_DURATION.match(row["RingingDuration"])
    assert row["DstRecId"] == played.recording_ids[0] and row["SrcRecId"] is None
    recordings = xapi.values("/Recordings")
    assert [r["Id"] for r in recordings] == [row["DstRecId"]]


def test_queue_call_main_row_names_the_queue_and_the_agent_has_its_own_row(sim, xapi):
    sim.play(inbound(CALLER).to_queue("800", rings=["101", "102"]).rings(5).answered_by("102").talk(5)
             .caller_hangs_up())

    [rows] = calls(rows_of(xapi)).values()

    assert rows[0]["DestinationDn"] == "800" and rows[0]["DestinationType"] == 4
    answered = [r["DestinationDn"] for r in rows if r["Answered"] and r["DestinationType"] == 0]
    assert answered == ["102"]
    assert {r["DestinationDn"] for r in rows} == {"800", "101", "102"}


def test_abandoned_queue_call_is_not_answered_on_any_row(sim, xapi):
    sim.play(inbound(CALLER).to_queue("800", rings=["101"]).rings(5).caller_abandons())

    rows = rows_of(xapi)

    assert rows and not any(r["Answered"] for r in rows)
    assert rows[0]["DestinationDn"] == "800"


def test_outbound_call_row_goes_from_the_extension_to_the_number(sim, xapi):
    sim.play(outbound("101", CALLER).answered().talk(5).hangs_up(by="101"))

    [row] = rows_of(xapi)

    assert (row["SourceDn"], row["DestinationCallerId"], row["Direction"], row["Answered"]) == \
        ("101", CALLER, "Outbound", True)
    assert row["SrcRecId"] is not None


def test_a_call_is_listed_only_once_it_has_ended(sim, xapi):
    played = sim.play(inbound(CALLER).to_extension("101").answered_by("101").talk(100).caller_hangs_up(),
                      wait=False)
    wait_until(lambda: sim.engine.participants("101") and
               sim.engine.participants("101")[0]["status"] == "Connected")

    assert rows_of(xapi) == []
    sim.engine.hang_up(played.call_id)
    wait_until(lambda: rows_of(xapi), timeout_s=5)


def test_period_selects_calls_by_start_and_paging_walks_the_rows(sim, xapi):
    for _ in range(3):
        sim.play(inbound(CALLER).to_queue("800", rings=["101"]).rings(1).caller_abandons())
    every = rows_of(xapi)

    pages = [rows_of(xapi, **{"$top": "2", "$skip": str(skip)}) for skip in range(0, len(every), 2)]
    later = xapi.values(call_log_path(datetime.now(timezone.utc) + timedelta(minutes=1),
                                      datetime.now(timezone.utc) + timedelta(hours=1)))

    assert len(every) == 6 and [row for page in pages for row in page] == every
    assert [r["StartTime"] for r in every] == sorted(r["StartTime"] for r in every)
    assert later == []
    counted = xapi.get(call_log_path(datetime.now(timezone.utc) - timedelta(hours=1),
                                     datetime.now(timezone.utc) + timedelta(minutes=1)),
                       **{"$count": "true", "$top": "1"}).json()
    assert counted["@odata.count"] == 6 and len(counted["value"]) == 1


def test_period_must_be_utc_with_z(xapi):
    now = datetime.now(timezone.utc)

    answer = xapi.get(call_log_path(now, now, since_text="2026-01-01T10:00:00+01:00"))

    assert_error(answer, 400, "periodFrom")


def test_missing_parameters_are_refused(xapi):
    assert_error(xapi.get("/ReportCallLogData/Pbx.GetCallLogData(periodFrom=2026-01-01T00:00:00Z)"), 400)
    assert_error(xapi.get("/ReportCallLogData"), 404)


def test_call_history_needs_the_system_owner_role(sim, xapi):
    sim.api_client.role = "system_admins"

    answer = xapi.get(call_log_path(datetime.now(timezone.utc), datetime.now(timezone.utc)))

    assert_error(answer, 403, "System Owner")
