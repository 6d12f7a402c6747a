"""Call Control results: one rule decides success, whatever type `finalstatus` has on the wire."""
from __future__ import annotations

import pytest

from gateway.pbx.callcontrol import failure_text, is_success, segment


def result(finalstatus=None, *, participant_id=None, reasontext=None, reason=None) -> dict:
    """A CallControlResultResponse body with defaults for what a test does not care about."""
    return {"finalstatus": finalstatus, "reason": reason, "reasontext": reasontext,
            "result": None if participant_id is None else {"id": participant_id, "status": "Dialing"}}


@pytest.mark.parametrize("response, expected", [
    (result("Success"), True),
    (result("success"), True),
    (result(1), True),
    (result("1"), True),
    (result("Failed"), False),
    (result("Rejected"), False),
    (result(-1), False),
    (result(0), False),
    (result("Failed", participant_id=7), False),
    (result(None, participant_id=7), True),
    (result("Pending", participant_id=7), True),
    (result(None), False),
    (result("Pending"), False),
    (result(True), False),
    ({"finalstatus": "Success"}, True),
    ({"result": {"id": 0}}, True),
    ({}, False),
    (None, False),
    ([], False),
], ids=[
    "string Success", "lowercase success", "number 1", "string 1", "string Failed", "string Rejected",
    "number -1", "number 0", "explicit failure wins over a result", "no status but a result id",
    "unknown status with a result id", "nothing at all", "unknown status without result",
    "boolean is not a status", "success without result key", "participant id zero counts",
    "empty body", "none", "not an object",
])
def test_is_success_reads_finalstatus_then_result_id(response, expected):
    assert is_success(response) is expected


@pytest.mark.parametrize("response, expected", [
    (result("Failed", reasontext="Participant is not ringing", reason="InvalidState"), "Participant is not ringing"),
    (result("Failed", reason="InvalidState"), "InvalidState"),
    (result("Failed", reasontext="  "), "finalstatus 'Failed'"),
    (result(-1), "finalstatus -1"),
    (None, "the PBX answered without a result"),
], ids=["reasontext first", "reason when no text", "blank text is ignored", "numeric status named",
        "no body"])
def test_failure_text_prefers_the_pbx_explanation(response, expected):
    assert failure_text(response) == expected


@pytest.mark.parametrize("value, expected", [
    ("sip:102@127.0.0.1:5483;rinstance=5a6cb7ecb40359bf",
     "sip%3A102%40127.0.0.1%3A5483%3Brinstance%3D5a6cb7ecb40359bf"),
    ("a/b?c#d e", "a%2Fb%3Fc%23d%20e"),
    ("101", "101"),
    (42, "42"),
], ids=["sip uri device id", "slash query fragment and space", "plain dn", "integer id"])
def test_segment_encodes_everything_that_could_leave_the_segment(value, expected):
    assert segment(value) == expected
