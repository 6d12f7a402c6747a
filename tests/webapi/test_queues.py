"""queue.*: agents and their state, agents/managers, create/update/delete, against the simulator."""
from __future__ import annotations

import pytest

from gateway.sim.scenarios import inbound, internal
from tests.support.wait import wait_until
from tests.support.shape import examples, same_shape

EXAMPLES = examples()
JAN = {"num": "101", "name": "Jan", "lastname": "Novák", "loggedIn": True}
PETRA = {"num": "102", "name": "Petra", "lastname": "Svobodová", "loggedIn": True}
# queue.new / queue.update with 004's example values
NEW_QUEUE = {"num": "813", "name": "API Queue", "pollingstrategy": "3", "mastertimeout": "300",
             "ringtimeout": "30", "enableintro": "0", "introfile": "onhold.wav",
             "announcequeueposition": "0", "announcementinterval": "30"}


def log_out(sim, number: str) -> None:
    with sim.directory.lock:
        sim.directory.users[number].queue_status = "LoggedOut"


def members(webapi, name: str, num: str) -> list[dict]:
    status, answer = webapi(name, num=num)
    assert status == 200, answer
    return answer["members"]


@pytest.mark.parametrize("name", ["queue.members.get", "queue.free.get"])
def test_queue_member_lists_have_the_example_shape(sim, webapi, name):
    status, answer = webapi(name, num="800")

    assert status == 200
    assert same_shape(answer, EXAMPLES[name]["answer"])
    assert answer == {"count": 2, "members": [JAN, PETRA]}


def test_queue_members_get_shows_a_logged_out_agent(sim, webapi):
    log_out(sim, "102")

    assert members(webapi, "queue.members.get", "800") == [JAN, {**PETRA, "loggedIn": False}]


def test_queue_free_get_leaves_out_logged_out_agents(sim, webapi):
    log_out(sim, "102")

    assert members(webapi, "queue.free.get", "800") == [JAN]


def test_queue_free_and_isfree_leave_out_an_agent_on_a_call(sim, live_gateway, webapi):
    wait_until(lambda: live_gateway.live.is_live)  # act on the watcher's model, not the fallback
    log_out(sim, "102")
    assert webapi("queue.isfree.get", num="800") == (200, {"result": True})

    sim.play(internal("101", "103").rings(1).answered_by("103").talk(600), wait=False)
    wait_until(lambda: members(webapi, "queue.free.get", "800") == [])

    status, answer = webapi("queue.isfree.get", num="800")
    assert status == 200
    assert same_shape(answer, EXAMPLES["queue.isfree.get"]["answer"])
    assert answer == {"result": False}


def test_queue_talk_get_lists_the_agent_talking(sim, live_gateway, webapi):
    wait_until(lambda: live_gateway.live.is_live)  # act on the watcher's model, not the fallback
    assert members(webapi, "queue.talk.get", "800") == []

    sim.play(inbound("+420774852529").to_queue("800", rings=["101", "102"]).answered_by("102").talk(600),
             wait=False)
    wait_until(lambda: members(webapi, "queue.talk.get", "800") == [PETRA])

    status, answer = webapi("queue.talk.get", num="800")
    assert status == 200
    assert same_shape(answer, EXAMPLES["queue.talk.get"]["answer"])


def test_queue_agents_set_replaces_the_agents(sim, webapi):
    status, answer = webapi("queue.agents.set", num="801", members="105,101")

    assert status == 200
    assert same_shape(answer, EXAMPLES["queue.agents.set"]["answer"])
    assert answer == {"result": True}
    assert sim.directory.queues["801"].agents == ["105", "101"]


def test_queue_managers_set_replaces_the_managers(sim, webapi):
    status, answer = webapi("queue.managers.set", num="801", managers="102,105")

    assert status == 200
    assert same_shape(answer, EXAMPLES["queue.managers.set"]["answer"])
    assert sim.directory.queues["801"].managers == ["102", "105"]


@pytest.mark.parametrize("name, key", [("queue.agents.set", "members"), ("queue.managers.set", "managers")])
def test_queue_list_set_with_an_unknown_extension_returns_404_naming_it(sim, webapi, name, key):
    status, answer = webapi(name, num="801", **{key: "101,998"})

    assert status == 404
    assert "998" in answer["error"]
    assert (sim.directory.queues["801"].agents, sim.directory.queues["801"].managers) == (
        ["103", "104", "105"], ["101"])


def test_queue_new_creates_the_queue_with_v20_fields(sim, webapi):
    status, answer = webapi("queue.new", **NEW_QUEUE)

    assert status == 200
    assert same_shape(answer, EXAMPLES["queue.new"]["answer"])
    assert answer == {"result": "Create queue"}
    queue = sim.directory.queues["813"]
    assert (queue.name, queue.polling_strategy, queue.master_timeout_s, queue.ring_timeout_s) == (
        "API Queue", "HuntRandomStart", 300, 30)
    assert (queue.enable_intro, queue.intro_file, queue.announce_queue_position,
            queue.announcement_interval_s) == (False, "onhold.wav", False, 30)


@pytest.mark.parametrize("number", ["800", "101", "700"], ids=["a queue", "an extension", "a ring group"])
def test_queue_new_with_a_number_in_use_returns_400_naming_num(sim, webapi, number):
    status, answer = webapi("queue.new", **{**NEW_QUEUE, "num": number})

    assert status == 400
    assert "'num'" in answer["error"] and number in answer["error"]


@pytest.mark.parametrize("strategy, v20_name", [
    ("0", "Hunt"), ("1", "RingAll"), ("13", "SkillBasedRouting_FewestAnswered"),
])
def test_queue_update_changes_only_the_given_fields(sim, webapi, strategy, v20_name):
    status, answer = webapi("queue.update", num="802", pollingstrategy=strategy, enableintro="1",
                            ringtimeout="15")

    assert status == 200
    assert same_shape(answer, EXAMPLES["queue.update"]["answer"])
    assert answer == {"result": "Update queue"}
    queue = sim.directory.queues["802"]
    assert (queue.polling_strategy, queue.enable_intro, queue.ring_timeout_s) == (v20_name, True, 15)
    assert (queue.name, queue.master_timeout_s, queue.agents) == ("Billing", 300, ["104", "106"])


def test_queue_del_deletes_the_queue(sim, webapi):
    status, answer = webapi("queue.del", num="802")

    assert status == 200
    assert same_shape(answer, EXAMPLES["queue.del"]["answer"])
    assert answer == {"result": "Delete queue"}
    assert "802" not in sim.directory.queues


@pytest.mark.parametrize("name, params", [
    ("queue.members.get", {}), ("queue.free.get", {}), ("queue.talk.get", {}), ("queue.isfree.get", {}),
    ("queue.agents.set", {"members": "101"}), ("queue.managers.set", {"managers": "101"}),
    ("queue.update", {"name": "X"}), ("queue.del", {}),
])
def test_queue_command_with_an_unknown_queue_returns_404(sim, webapi, name, params):
    status, answer = webapi(name, num="899", **params)

    assert status == 404
    assert "899" in answer["error"]


@pytest.mark.parametrize("name, params, bad", [
    ("queue.members.get", {"num": "80a"}, "num"),
    ("queue.new", {**NEW_QUEUE, "pollingstrategy": "2"}, "pollingstrategy"),
    ("queue.new", {**NEW_QUEUE, "enableintro": "maybe"}, "enableintro"),
    ("queue.new", {**NEW_QUEUE, "mastertimeout": "-5"}, "mastertimeout"),
    ("queue.update", {"num": "800", "ringtimeout": "soon"}, "ringtimeout"),
    ("queue.agents.set", {"num": "800", "members": "101;102"}, "members"),
], ids=["num not digits", "strategy 2 does not exist", "enableintro not 0/1", "negative timeout",
        "ringtimeout not a number", "members with semicolons"])
def test_queue_command_with_a_bad_parameter_returns_400_naming_it(sim, webapi, name, params, bad):
    status, answer = webapi(name, **params)

    assert status == 400
    assert f"'{bad}'" in answer["error"]
