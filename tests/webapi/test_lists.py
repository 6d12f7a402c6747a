"""Directory lists: all.* and extgroup.members.get against the simulated PBX's directory."""
from __future__ import annotations

import pytest


@pytest.mark.parametrize("command, table", [
    ("all.ext.get", "users"),
    ("all.group.get", "ring_groups"),
    ("all.queue.get", "queues"),
    ("all.ivr.get", "ivrs"),
    ("all.line.get", "trunks"),
], ids=["extensions", "ring groups", "queues", "IVRs", "external lines"])
def test_list_names_every_number_in_pbx_order(sim, webapi, command, table):
    status, answer = webapi(command)

    assert status == 200
    assert answer == {"nums": list(getattr(sim.directory, table))}


def test_registered_lists_extensions_with_a_device(sim, webapi):
    registered = [n for n, user in sim.directory.users.items() if user.devices]

    status, answer = webapi("all.registered.get")

    assert status == 200
    assert answer == {"nums": registered}
    assert "125" not in answer["nums"]


def test_registered_follows_a_device_going_away(sim, webapi):
    with sim.directory.lock:
        sim.directory.users["103"].devices.clear()

    status, answer = webapi("all.registered.get")

    assert "103" not in answer["nums"] and "102" in answer["nums"]


def test_extension_groups_show_the_default_department_by_its_legacy_name(sim, webapi):
    status, answer = webapi("all.extgroup.get")

    assert status == 200
    assert answer == {"extGroups": ["__DEFAULT__", "Sales", "Support"]}


@pytest.mark.parametrize("name, members", [
    ("Sales", ["101", "102", "106"]),
    ("Support", ["103", "104", "105"]),
], ids=["sales", "support"])
def test_extension_group_members(sim, webapi, name, members):
    status, answer = webapi("extgroup.members.get", name=name)

    assert status == 200
    assert answer == {"count": len(members), "members": members}


def test_default_extension_group_holds_every_extension(sim, webapi):
    status, answer = webapi("extgroup.members.get", name="__DEFAULT__")

    assert status == 200
    assert answer == {"count": len(sim.directory.users), "members": list(sim.directory.users)}


def test_unknown_extension_group_returns_404(sim, webapi):
    status, answer = webapi("extgroup.members.get", name="Marketing")

    assert status == 404
    assert answer == {"error": "extension group 'Marketing' does not exist", "command": "extgroup.members.get"}
