"""Hostile requests through the app: HEAD changes nothing, strict numbers, every answer in the JSON shape."""
from __future__ import annotations

import pytest

from tests.support.config import ACCESS_KEY
from tests.support.hostile import changing_requests, is_error_shape, pbx_state

WRITES_BY_HEAD = [
    ("ext.new", {"num": "4242"}),
    ("ext.del", {"num": "101"}),
    ("contact.new", {"firstname": "Mallory", "phone": "+420111222333"}),
    ("contact.del", {"id": "1"}),
    ("queue.del", {"num": "800"}),
    ("group.members.set", {"num": "700", "members": "101"}),
    ("ext.fwd.set", {"num": "101", "status": "Away"}),
    ("makecall", {"first": "101", "second": "102"}),
    ("drop", {"num": "101"}),
]


# --- HEAD never changes anything -------------------------------------------------------------------

@pytest.mark.parametrize("command, params", WRITES_BY_HEAD, ids=[c for c, _ in WRITES_BY_HEAD])
def test_head_of_a_command_that_acts_is_405_and_changes_nothing(sim, client, command, params):
    before = pbx_state(sim)

    response = client.head(f"/webapi/{ACCESS_KEY}/{command}", query_string=params)

    assert response.status_code == 405
    assert response.headers["Allow"] == "GET, POST"
    assert pbx_state(sim) == before
    assert changing_requests(sim) == []


def test_head_of_a_read_command_answers_like_get_without_a_body(sim, client):
    get = client.get(f"/webapi/{ACCESS_KEY}/ext.info.get?num=101")

    head = client.head(f"/webapi/{ACCESS_KEY}/ext.info.get?num=101")

    assert head.status_code == 200 and head.data == b""
    assert head.headers["Content-Length"] == get.headers["Content-Length"]


def test_the_same_write_by_get_does_change_the_pbx(sim, webapi):
    before = pbx_state(sim)

    status, _ = webapi("ext.new", num="4242")

    assert status == 200 and pbx_state(sim) != before


# --- strict numbers --------------------------------------------------------------------------------

@pytest.mark.parametrize("command, params, name", [
    ("ext.new", {"num": "\u0661\u0662\u0663"}, "num"),
    ("contact.get", {"id": "\u0661"}, "id"),
    ("ext.del", {"num": "101\n"}, "num"),
    ("ext.del", {"num": "101\t"}, "num"),
    ("ext.del", {"num": "101\x0b"}, "num"),
    ("ext.del", {"num": "101\x0c"}, "num"),
    ("ext.del", {"num": "101\x1c"}, "num"),
    ("ext.del", {"num": "\n101"}, "num"),
    ("contact.del", {"id": "1\n"}, "id"),
    ("queue.del", {"num": "800\x00"}, "num"),
    ("group.members.set", {"num": "700", "members": "101,\u0661\u0660\u0662"}, "members"),
    ("drop", {"num": "101", "external": "123\n"}, "external"),
], ids=["ext.new with Arabic-Indic digits", "contact.get with an Arabic-Indic id", "ext.del with LF",
        "ext.del with tab", "ext.del with vertical tab", "ext.del with form feed", "ext.del with file separator",
        "ext.del with leading LF", "contact.del with LF", "queue.del with NUL", "members with Arabic-Indic digits",
        "optional number with LF"])
def test_number_that_is_not_plain_ascii_digits_is_400_and_acts_on_nothing(sim, webapi, command, params, name):
    before = pbx_state(sim)

    status, answer = webapi(command, **params)

    assert status == 400
    assert answer == {"error": answer["error"], "command": command}
    assert answer["error"].startswith(f"parameter '{name}'")
    assert pbx_state(sim) == before
    assert sim.requests == []


# --- every answer under /webapi/ is the JSON shape -------------------------------------------------

@pytest.mark.parametrize("method", ["PUT", "PATCH", "DELETE", "OPTIONS", "TRACE", "PROPFIND"])
@pytest.mark.parametrize("path", [f"/webapi/{ACCESS_KEY}/ext.new?num=4242", f"/webapi/{ACCESS_KEY}/",
                                  "/webapi/wrong-key/ext.info.get", "/webapi/"],
                         ids=["write command", "info", "wrong key", "bare prefix"])
def test_other_methods_are_405_in_the_json_shape_with_allow(sim, client, method, path):
    before = pbx_state(sim)

    response = client.open(path, method=method)

    assert response.status_code == 405
    assert response.headers["Allow"] == "GET, HEAD, POST"
    assert is_error_shape(response.get_json())
    assert pbx_state(sim) == before and sim.requests == []


@pytest.mark.parametrize("method", ["POST", "PUT", "DELETE", "OPTIONS"])
def test_recording_path_takes_get_and_head_only(sim, client, method):
    response = client.open("/webapi/recording/211230102738_669-1-1.mp3", method=method)

    assert response.status_code == 405
    assert response.headers["Allow"] == "GET, HEAD"
    assert is_error_shape(response.get_json())
    assert "access key" not in response.get_json()["error"]


@pytest.mark.parametrize("path", ["/webapi/recording/%2fetc%2fpasswd", "/webapi/recording//etc/passwd",
                                  "/webapi/recording/", "/webapi/recording", "/webapi/recording/a/b/c.mp3"],
                         ids=["encoded slash", "double slash", "empty name", "no name", "nested"])
def test_recording_paths_get_the_one_404_never_a_redirect(sim, client, path):
    response = client.get(path)

    assert response.status_code == 404
    assert response.get_json() == {"error": "not found"}
    assert "Location" not in response.headers


@pytest.mark.parametrize("path, status", [
    ("/webapi//all.ext.get", 401),
    ("/webapi///", 401),
    (f"/webapi/{ACCESS_KEY}//all.ext.get", 404),
    (f"/webapi/{ACCESS_KEY}/ext.info.get/extra", 404),
    (f"/webapi/{ACCESS_KEY}", 200),
    ("/webapi", 401),
], ids=["empty key", "only slashes", "double slash after the key", "extra segment", "info without a slash",
        "prefix without a slash"])
def test_paths_of_no_route_are_answered_in_the_json_shape_without_redirect(sim, client, path, status):
    response = client.get(path)

    assert response.status_code == status
    assert "Location" not in response.headers
    assert status == 200 or is_error_shape(response.get_json())


def test_body_over_the_limit_is_413_in_the_json_shape(sim, client):
    response = client.post(f"/webapi/{ACCESS_KEY}/ext.info.get", data={"num": "1" * 70_000})

    assert response.status_code == 413
    assert response.get_json() == {"error": "request body too large: at most 65536 bytes", "command": "ext.info.get"}
    assert sim.requests == []


def test_long_value_sent_as_a_post_form_is_a_400_naming_it(sim, client):
    response = client.post(f"/webapi/{ACCESS_KEY}/ext.info.get", data={"num": "1" * 10_240})

    assert response.status_code == 400
    assert response.get_json()["error"].startswith("parameter 'num'")
