"""cfd.reset and csv.reread: v20 has neither, so both answer 501 in the error shape with a reason."""
from __future__ import annotations

import pytest

from tests.support.shape import same_shape


@pytest.mark.parametrize("name, params, reason", [
    ("cfd.reset", {"names": "900,901"}, "Call Flow Designer"),
    ("cfd.reset", {}, "Call Flow Designer"),
    ("csv.reread", {}, "CSV"),
], ids=["cfd reset with names", "cfd reset without names", "csv reread"])
def test_maintenance_command_answers_501_with_a_reason(sim, webapi, name, params, reason):
    status, answer = webapi(name, **params)

    assert status == 501
    assert same_shape(answer, {"error": "", "command": ""})
    assert answer["command"] == name
    assert reason in answer["error"]


def test_maintenance_commands_make_no_pbx_request(sim, webapi):
    before = len(sim.requests)

    webapi("cfd.reset", names="900")
    webapi("csv.reread")

    assert sim.requests[before:] == []
