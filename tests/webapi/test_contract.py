"""The 004 contract: every documented command is registered, and answers have the examples' shape.

Examples come from tests/webapi/data/004-examples.json (written by tools/extract_examples.py).
Commands of the other modules get their shape tests next to their own tests, with `same_shape`.
"""
from __future__ import annotations

import pytest

import gateway.webapi.commands  # noqa: F401  (registers every command)
from gateway.sim.scenarios import internal
from gateway.webapi.registry import REGISTRY
from tests.support.config import ACCESS_KEY
from tests.support.wait import wait_until
from tests.support.shape import examples, same_shape, shape_differences

EXAMPLES = examples()
DOCUMENTED = [name for name in EXAMPLES if name]
# The GET commands 003_…txt lists (all of them also have an example in 004).
DESCRIBED_IN_003 = (
    "pbx.calls.get", "pbx.ac.get", "pbx.callsinfo.get", "all.ext.get", "all.registered.get",
    "all.group.get", "all.queue.get", "all.ivr.get", "all.line.get", "ext.info.get", "ext.state.get",
    "queue.members.get", "queue.free.get", "queue.talk.get", "queue.isfree.get", "group.members.get",
    "group.free.get", "makecall", "ext.fwd.set", "ext.queueglobal.set", "ext.queue.set", "ext.options.set",
)

# The parameters each command of lists/extensions/pbx is called with against the default PBX
# (the examples' own numbers do not exist there).
OWN_COMMANDS: dict[str, dict[str, str]] = {
    "pbx.calls.get": {},
    "pbx.ac.get": {},
    "pbx.callsinfo.get": {},
    "all.line.get": {},
    "all.ext.get": {},
    "all.registered.get": {},
    "all.group.get": {},
    "all.ivr.get": {},
    "all.extgroup.get": {},
    "extgroup.members.get": {"name": "__DEFAULT__"},
    "all.queue.get": {},
    "ext.info.get": {"num": "102"},
    "ext.state.get": {"num": "104"},
    "ext.fwd.set": {"num": "102", "status": "Away", "message": "Custom message"},
    "ext.queueglobal.set": {"num": "102", "log": "on"},
    "ext.options.set": {"num": "102", "enabled": "on", "external": "on", "recording": "external"},
    "ext.devices.get": {"num": "102"},
    "ext.new": {"num": "150"},
    "ext.del": {"num": "129"},
    "ext.update": {"num": "110", "firstname": "Firstname", "lastname": "Lastname", "email": "api@api.com",
                   "recordcalls": "1", "vmemail": "1", "noanswertimeout": "20"},
}
# Documented, but v20 cannot do it: answered 501 in the error shape (see the README's table).
NOT_POSSIBLE = {"ext.queue.set": {"num": "102", "queue": "800", "log": "off"}}
NULLABLE = frozenset({"$.callsInfo[].answeredAt"})
CALL_COMMANDS = {"pbx.ac.get", "pbx.callsinfo.get", "pbx.calls.get"}


@pytest.mark.parametrize("name", sorted(set(DOCUMENTED) | set(DESCRIBED_IN_003)))
def test_documented_command_is_registered_with_help(name):
    assert name in REGISTRY, f"{name} is documented in 004 but not registered"
    assert REGISTRY[name].help.strip()


def test_own_command_table_covers_every_command_of_the_three_modules():
    modules = {"gateway.webapi.commands.lists", "gateway.webapi.commands.extensions",
               "gateway.webapi.commands.pbx"}
    own = {name for name, cmd in REGISTRY.items() if cmd.function.__module__ in modules}

    assert own == set(OWN_COMMANDS) | set(NOT_POSSIBLE)


def test_info_has_the_example_shape(sim, client):
    answer = client.get(f"/webapi/{ACCESS_KEY}/").get_json()

    assert shape_differences(answer, EXAMPLES[""]["answer"]) == []


@pytest.mark.parametrize("name", list(OWN_COMMANDS))
def test_own_command_answer_has_the_example_shape(sim, webapi, name):
    if name in CALL_COMMANDS:
        sim.play(internal("101", "102").rings(1).answered_by("102").talk(600).caller_hangs_up(), wait=False)
        wait_until(lambda: webapi("pbx.ac.get")[1]["count"] == 1 and all(
            c["status"] == "Connected" for c in webapi("pbx.ac.get")[1]["AConnByCallID"][0]["AConnList"]))

    status, answer = webapi(name, **OWN_COMMANDS[name])

    assert status == 200, answer
    assert shape_differences(answer, EXAMPLES[name]["answer"], nullable=NULLABLE) == []


@pytest.mark.parametrize("name", list(NOT_POSSIBLE))
def test_impossible_command_answers_501_in_the_error_shape(sim, webapi, name):
    status, answer = webapi(name, **NOT_POSSIBLE[name])

    assert status == 501
    assert same_shape(answer, {"error": "", "command": ""})


@pytest.mark.parametrize("answer, example, differences", [
    ({"a": 1, "b": "x"}, {"a": 2, "b": "y"}, []),
    ({"b": "x", "a": 1}, {"a": 2, "b": "y"}, ["$: keys ['b', 'a'], expected ['a', 'b']"]),
    ({"a": True}, {"a": 1}, ["$.a: boolean, expected integer"]),
    ({"a": [{"n": "1"}, {"n": 2}]}, {"a": [{"n": "0"}]}, ["$.a[].n: integer, expected string"]),
    ({"a": [1, 2]}, {"a": []}, []),
    ({"a": None}, {"a": "2022-12-29T08:37:16Z"}, ["$.a: null, expected string"]),
], ids=["same", "key order", "bool is not int", "list items", "empty example list", "null"])
def test_shape_differences(answer, example, differences):
    assert shape_differences(answer, example) == differences


def test_directory_commands_are_the_cached_ones():
    cached = {name for name, command in REGISTRY.items() if command.is_cached}

    assert cached == {"all.ext.get", "all.group.get", "all.queue.get", "all.ivr.get", "all.line.get",
                      "all.extgroup.get", "extgroup.members.get", "group.members.get"}
    assert not [name for name in cached if REGISTRY[name].is_write]
