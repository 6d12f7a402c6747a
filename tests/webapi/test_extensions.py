"""ext.* commands against the simulated PBX; set commands are checked by reading the PBX back."""
from __future__ import annotations

import pytest

from tests.support.wait import wait_until


def user(sim, number: str):
    with sim.directory.lock:
        return sim.directory.users.get(number)


def profile(sim, number: str, name: str):
    return next(p for p in user(sim, number).profiles if p.name == name)


# --- ext.info.get ---------------------------------------------------------------------------------

def test_info_shows_the_extension(sim, webapi):
    petra = user(sim, "102")

    status, answer = webapi("ext.info.get", num="102")

    assert status == 200
    assert answer == {"num": "102", "name": petra.first_name, "lastname": petra.last_name,
                      "email": petra.email, "mobile": petra.mobile, "enabled": True,
                      "externalCalls": True, "recordType": "All"}


@pytest.mark.parametrize("number, record_calls, external_only, record_type", [
    ("110", False, False, "Disabled"),
    ("110", True, True, "External"),
    ("110", True, False, "All"),
], ids=["recording off", "external calls only", "all calls"])
def test_info_record_type(sim, webapi, number, record_calls, external_only, record_type):
    with sim.directory.lock:
        user(sim, number).record_calls = record_calls
        user(sim, number).record_external_only = external_only

    status, answer = webapi("ext.info.get", num=number)

    assert answer["recordType"] == record_type


def test_info_of_internal_only_extension_denies_external_calls(sim, webapi):
    with sim.directory.lock:
        user(sim, "111").internal_only = True
        user(sim, "111").enabled = False

    status, answer = webapi("ext.info.get", num="111")

    assert (answer["externalCalls"], answer["enabled"]) == (False, False)


# --- ext.state.get --------------------------------------------------------------------------------

def test_state_of_idle_extension(sim, webapi):
    status, answer = webapi("ext.state.get", num="102")

    assert status == 200
    assert answer == {"num": "102", "registered": True, "status": "Free", "fwdName": "Available",
                      "qGlobalStatus": True, "qStatus": [{"num": "800", "status": True}]}


def test_state_reports_the_global_queue_status_for_every_queue_of_the_agent(sim, webapi):
    with sim.directory.lock:
        user(sim, "104").queue_status = "LoggedOut"
        user(sim, "104").current_profile = "Away"

    status, answer = webapi("ext.state.get", num="104")

    assert answer["fwdName"] == "Away"
    assert answer["qGlobalStatus"] is False
    assert answer["qStatus"] == [{"num": "801", "status": False}, {"num": "802", "status": False}]


def test_state_of_unregistered_extension(sim, webapi):
    status, answer = webapi("ext.state.get", num="125")

    assert (answer["registered"], answer["status"], answer["qStatus"]) == (False, "Free", [])


def test_state_is_busy_during_a_call(sim, webapi):
    from gateway.sim.scenarios import internal
    sim.play(internal("101", "102").rings(600).no_answer(), wait=False)

    wait_until(lambda: webapi("ext.state.get", num="102")[1]["status"] == "Busy")


# --- ext.fwd.set ----------------------------------------------------------------------------------

@pytest.mark.parametrize("status, profile_name", [
    ("Away", "Away"),
    ("out of office", "Out of office"),
    ("OutOfOffice", "Out of office"),
    ("Custom 2", "Custom 2"),
    ("DND", "Out of office"),
    ("Lunch", "Custom 1"),
    ("Business trip", "Custom 2"),
], ids=["v20 name", "lower case", "v20 enum spelling", "custom profile", "legacy DND",
        "legacy Lunch", "legacy Business trip"])
def test_fwd_set_switches_the_profile(sim, webapi, status, profile_name):
    answer = webapi("ext.fwd.set", num="102", status=status)

    assert answer == (200, {"result": True})
    assert user(sim, "102").current_profile == profile_name


def test_fwd_set_with_message_sets_the_profile_message(sim, webapi):
    answer = webapi("ext.fwd.set", num="102", status="Away", message="Back at 14:00")

    assert answer == (200, {"result": True})
    assert user(sim, "102").current_profile == "Away"
    assert profile(sim, "102", "Away").custom_message == "Back at 14:00"
    assert [p.name for p in user(sim, "102").profiles] == ["Available", "Away", "Out of office",
                                                          "Custom 1", "Custom 2"]


def test_fwd_set_without_status_sets_the_current_profile_message(sim, webapi):
    answer = webapi("ext.fwd.set", num="102", status="", message="Custom message")

    assert answer == (200, {"result": True})
    assert user(sim, "102").current_profile == "Available"
    assert profile(sim, "102", "Available").custom_message == "Custom message"


def test_fwd_set_unknown_status_returns_400_listing_the_valid_ones(sim, webapi):
    status, answer = webapi("ext.fwd.set", num="102", status="Holiday")

    assert status == 400
    assert answer["error"].startswith("parameter 'status': expected one of Available, Away, Out of office")
    assert user(sim, "102").current_profile == "Available"


def test_fwd_set_without_status_or_message_returns_400(sim, webapi):
    status, answer = webapi("ext.fwd.set", num="102")

    assert status == 400 and "'status'" in answer["error"]


# --- queue login ----------------------------------------------------------------------------------

@pytest.mark.parametrize("log, queue_status", [("off", "LoggedOut"), ("on", "LoggedIn")])
def test_queueglobal_set_changes_the_queue_status(sim, webapi, log, queue_status):
    with sim.directory.lock:
        user(sim, "104").queue_status = "LoggedIn" if log == "off" else "LoggedOut"

    answer = webapi("ext.queueglobal.set", num="104", log=log)

    assert answer == (200, {"result": True})
    assert user(sim, "104").queue_status == queue_status


def test_queue_set_is_not_possible_on_v20(sim, webapi):
    status, answer = webapi("ext.queue.set", num="104", queue="801", log="off")

    assert status == 501
    assert "ext.queueglobal.set" in answer["error"]
    assert user(sim, "104").queue_status == "LoggedIn"


# --- ext.options.set ------------------------------------------------------------------------------

def test_options_set_changes_all_three(sim, webapi):
    answer = webapi("ext.options.set", num="110", enabled="off", external="off", recording="external")

    assert answer == (200, {"result": True})
    ext = user(sim, "110")
    assert (ext.enabled, ext.internal_only, ext.record_calls, ext.record_external_only) == \
        (False, True, True, True)


@pytest.mark.parametrize("recording, flags", [
    ("off", (False, False)), ("all", (True, False)), ("external", (True, True)),
])
def test_options_set_recording_only_leaves_the_rest(sim, webapi, recording, flags):
    answer = webapi("ext.options.set", num="103", recording=recording)

    ext = user(sim, "103")
    assert answer == (200, {"result": True})
    assert (ext.record_calls, ext.record_external_only) == flags
    assert (ext.enabled, ext.internal_only) == (True, False)


def test_options_set_without_options_returns_400(sim, webapi):
    status, answer = webapi("ext.options.set", num="103")

    assert status == 400


# --- ext.devices.get ------------------------------------------------------------------------------

def test_devices_lists_user_agent_and_contact(sim, webapi):
    devices = user(sim, "101").devices

    status, answer = webapi("ext.devices.get", num="101")

    assert status == 200
    assert answer == {"count": len(devices),
                      "devices": [{"userAgent": d.user_agent, "contact": d.device_id} for d in devices]}


def test_devices_of_unknown_extension_returns_404(sim, webapi):
    status, answer = webapi("ext.devices.get", num="999")

    assert (status, answer["error"]) == (404, "extension 999 does not exist")


def test_devices_of_unmonitored_extension_says_so(sim, webapi):
    with sim.directory.lock:
        sim.directory.api_clients["900"].monitored.remove("110")

    status, answer = webapi("ext.devices.get", num="110")

    assert status == 502 and "monitored" in answer["error"]


def test_devices_of_unregistered_extension_is_empty(sim, webapi):
    assert webapi("ext.devices.get", num="125") == (200, {"count": 0, "devices": []})


# --- ext.new / ext.del ----------------------------------------------------------------------------

def test_new_creates_the_extension_in_the_default_department(sim, webapi):
    answer = webapi("ext.new", num="150")

    assert answer == (200, {"result": "Create extension"})
    created = user(sim, "150")
    assert created is not None
    default = next(d for d in sim.directory.departments.values() if d.is_default)
    assert "150" in default.members


def test_new_with_a_number_in_use_is_refused(sim, webapi):
    status, answer = webapi("ext.new", num="101")

    assert status in (400, 502)
    assert answer["command"] == "ext.new"


def test_del_removes_the_extension(sim, webapi):
    answer = webapi("ext.del", num="129")

    assert answer == (200, {"result": "Delete extension"})
    assert user(sim, "129") is None


def test_del_unknown_extension_returns_404(sim, webapi):
    status, _ = webapi("ext.del", num="999")

    assert status == 404


# --- ext.update -----------------------------------------------------------------------------------

def test_update_maps_legacy_fields_to_the_user(sim, webapi):
    answer = webapi("ext.update", num="110", enabled="0", firstname="Ada", lastname="Lovelace",
                    email="ada@example.com", mobile="+420600111222", authid="110x", authpass="S3cret!",
                    callerid="+420233000111", deliveraudio="1", recordcalls="2", sipid="ada",
                    vmemail="2", vmenabled="0", vmpin="4321", vmplaycallerid="1", vmplaydatetime="2",
                    internal="1", noanswertimeout="35")

    assert answer == (200, {"result": "Update extension"})
    ext = user(sim, "110")
    assert (ext.enabled, ext.first_name, ext.last_name, ext.email, ext.mobile) == \
        (False, "Ada", "Lovelace", "ada@example.com", "+420600111222")
    assert (ext.auth_id, ext.auth_password, ext.outbound_caller_id, ext.pbx_delivers_audio, ext.sip_id) == \
        ("110x", "S3cret!", "+420233000111", True, "ada")
    assert (ext.record_calls, ext.record_external_only) == (True, True)
    assert (ext.vm_email_options, ext.vm_enabled, ext.vm_pin, ext.vm_play_caller_id,
            ext.vm_play_msg_datetime) == ("Attachment", False, "4321", True, "Play24Hr")
    assert ext.internal_only is True
    assert [p.no_answer_timeout_s for p in ext.profiles] == [35] * 5


def test_update_changes_only_what_is_given(sim, webapi):
    before = user(sim, "111")
    last_name, email = before.last_name, before.email

    webapi("ext.update", num="111", firstname="Nova")

    ext = user(sim, "111")
    assert (ext.first_name, ext.last_name, ext.email) == ("Nova", last_name, email)


def test_update_ignores_reinvite_and_replaces_next_to_other_fields(sim, webapi):
    answer = webapi("ext.update", num="111", firstname="Nova", reinvite="1", replaces="0")

    assert answer == (200, {"result": "Update extension"})
    assert user(sim, "111").first_name == "Nova"


def test_update_with_only_reinvite_is_not_possible_on_v20(sim, webapi):
    status, answer = webapi("ext.update", num="111", reinvite="1")

    assert status == 501


@pytest.mark.parametrize("params, name", [
    ({"recordcalls": "3"}, "recordcalls"),
    ({"vmemail": "9"}, "vmemail"),
    ({"vmpin": "12a4"}, "vmpin"),
    ({"enabled": "{0/1}"}, "enabled"),
], ids=["recordcalls out of range", "vmemail out of range", "vmpin with a letter", "placeholder"])
def test_update_bad_value_returns_400(sim, webapi, params, name):
    status, answer = webapi("ext.update", num="111", **params)

    assert status == 400
    assert answer["error"].startswith(f"parameter '{name}'")


def test_update_unknown_extension_returns_404(sim, webapi):
    status, _ = webapi("ext.update", num="999", firstname="X")

    assert status == 404
