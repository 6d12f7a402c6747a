"""Every capture under tests/data/captures/ replays to the webhooks it records (its expected webhooks).

`sim-*.jsonl` were recorded from the simulator by tools/capture_sim_flows.py (one per call flow it
plays); `public-*.jsonl` are written by hand from v20 participants and events published by others,
each naming its source, what is real and what was added in the header's `sample` field; `case-*.jsonl`
are hand-made variants of another capture for one reading (the header's `case` says which). A correction of a reading in
gateway/live/v20.py shows up here as a difference; update the expected webhooks only on purpose.
"""
from __future__ import annotations

from pathlib import Path

import pytest

from gateway.capture.records import read_records
from gateway.capture.replay import replay

CAPTURES = sorted((Path(__file__).parents[1] / "data" / "captures").glob("*.jsonl"))
END_EVENTS = ("incoming", "outgoing")


def test_there_is_a_capture_for_every_simulator_flow_and_some_public_samples():
    import importlib.util
    spec = importlib.util.spec_from_file_location("flows", Path(__file__).parents[2] / "tools" / "capture_sim_flows.py")
    flows = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(flows)

    names = {path.stem for path in CAPTURES}

    assert {f"sim-{name}" for name in flows.FLOWS} <= names
    assert len([name for name in names if name.startswith("public-")]) >= 3


@pytest.mark.parametrize("path", CAPTURES, ids=[path.stem for path in CAPTURES])
def test_capture_replays_to_its_recorded_webhooks(path):
    records = read_records(path)

    result = replay(records)

    assert result.difference() == [], "\n".join(result.difference())
    assert result.misses == []


@pytest.mark.parametrize("path", CAPTURES, ids=[path.stem for path in CAPTURES])
def test_capture_names_how_it_was_made(path):
    header = read_records(path)[0]

    assert header["type"] == "capture"
    if path.stem.startswith("sim-"):
        assert header["made_by"] == "tools/capture_sim_flows.py" and header["flow"]
    elif path.stem.startswith("public-"):
        assert header["sample"]["source"] and header["sample"]["real"] and header["sample"]["added"]
    else:
        assert path.stem.startswith("case-") and header["made_by"] and header["case"]


@pytest.mark.parametrize("path", CAPTURES, ids=[path.stem for path in CAPTURES])
def test_every_call_that_made_webhooks_ends_with_an_end_event(path):
    result = replay(read_records(path))
    last: dict[str, str] = {}

    for webhook in result.webhooks:
        last[webhook.call_key] = webhook.params["event"]

    assert all(event in END_EVENTS for event in last.values()), last


@pytest.mark.parametrize("path", CAPTURES, ids=[path.stem for path in CAPTURES])
def test_capture_has_exactly_the_unknown_values_it_declares(path):
    header = read_records(path)[0]

    result = replay(read_records(path))

    found = sorted([u.kind, u.value] for u in result.unknowns.items())
    assert found == sorted(header.get("expect_unknowns", []))
