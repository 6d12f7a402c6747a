"""group.*: ring group members, free members and replacing members, over HTTP against the simulator."""
from __future__ import annotations

import pytest

from gateway.sim.scenarios import internal
from tests.support.wait import wait_until
from tests.support.shape import examples, same_shape

EXAMPLES = examples()


def test_group_members_get_lists_the_members_in_the_example_shape(sim, webapi):
    status, answer = webapi("group.members.get", num="700")

    assert status == 200
    assert same_shape(answer, EXAMPLES["group.members.get"]["answer"])
    assert answer == {"count": 2, "members": ["101", "102"]}


def test_group_free_get_lists_every_member_when_nobody_has_a_call(sim, webapi):
    status, answer = webapi("group.free.get", num="701")

    assert status == 200
    assert same_shape(answer, EXAMPLES["group.free.get"]["answer"])
    assert answer == {"count": 2, "members": ["103", "104"]}


def test_group_free_get_leaves_out_a_member_on_a_call(sim, live_gateway, webapi):
    wait_until(lambda: live_gateway.live.is_live)  # act on the watcher's model, not the fallback
    sim.play(internal("101", "103").rings(1).answered_by("103").talk(600), wait=False)

    wait_until(lambda: webapi("group.free.get", num="701")[1]["members"] == ["104"])

    assert webapi("group.free.get", num="701") == (200, {"count": 1, "members": ["104"]})


def test_group_members_set_replaces_the_members(sim, webapi):
    status, answer = webapi("group.members.set", num="700", members="103,105")

    assert status == 200
    assert same_shape(answer, EXAMPLES["group.members.set"]["answer"])
    assert answer == {"result": True}
    assert sim.directory.ring_groups["700"].members == ["103", "105"]
    assert webapi("group.members.get", num="700")[1]["members"] == ["103", "105"]


def test_group_members_set_with_an_empty_list_empties_the_group(sim, webapi):
    status, answer = webapi("group.members.set", num="700", members="")

    assert (status, answer) == (200, {"result": True})
    assert sim.directory.ring_groups["700"].members == []


def test_group_members_set_with_an_unknown_member_returns_404_naming_it(sim, webapi):
    status, answer = webapi("group.members.set", num="700", members="103,999")

    assert status == 404
    assert "999" in answer["error"]
    assert sim.directory.ring_groups["700"].members == ["101", "102"]


@pytest.mark.parametrize("name, params", [
    ("group.members.get", {}),
    ("group.free.get", {}),
    ("group.members.set", {"members": "101"}),
])
def test_group_command_with_an_unknown_group_returns_404(sim, webapi, name, params):
    status, answer = webapi(name, num="799", **params)

    assert status == 404
    assert "799" in answer["error"]


@pytest.mark.parametrize("name, params, bad", [
    ("group.members.get", {"num": "seven"}, "num"),
    ("group.free.get", {}, "num"),
    ("group.members.set", {"num": "700", "members": "101,abc"}, "members"),
    ("group.members.set", {"num": "700"}, "members"),
], ids=["num not digits", "num missing", "member not digits", "members missing"])
def test_group_command_with_a_bad_parameter_returns_400_naming_it(sim, webapi, name, params, bad):
    status, answer = webapi(name, **params)

    assert status == 400
    assert f"'{bad}'" in answer["error"]
