"""A PBX that speaks words the gateway does not know: calls still end, and the words are named."""
from __future__ import annotations

import io
import logging

from gateway.app import create_app
from gateway.doctor import check_readings
from gateway.sim.scenarios import inbound, outbound
from tests.support.live import CALLER, DID
from tests.support.wait import wait_until

RENAMED = {"Connected": "Bridged", "Wexternalline": "Wpstnline"}


def test_unknown_status_and_type_still_end_every_call_and_are_named(sim, config, live_gateway, receiver, caplog):
    caplog.set_level(logging.WARNING, logger="gateway.live.unknowns")
    wait_until(lambda: live_gateway.live.is_live, timeout_s=10)
    sim.faults.rename_words(RENAMED)

    first = sim.play(inbound(CALLER, did=DID).to_extension("101").answered_by("101").talk(5).caller_hangs_up())
    second = sim.play(outbound("102", CALLER).answered().talk(5).hangs_up(by="102"))

    wait_until(lambda: {p.params["id"].split("_")[1] for p in receiver.received
                        if p.params["event"] in ("incoming", "outgoing")}
               >= {f"{first.call_id}-0", f"{second.call_id}-0"}, timeout_s=20)
    ends = [p.params for p in receiver.received if p.params["event"] in ("incoming", "outgoing")]
    assert {(e["user"], e["event"]) for e in ends} == {("101", "incoming"), ("102", "outgoing")}
    assert all(e["callerid"] == CALLER for e in ends)
    assert live_gateway.table.calls() == []

    logged = caplog.text
    assert "'Bridged'" in logged and "'Wpstnline'" in logged
    assert logged.count("'Bridged'") == 1
    metrics = create_app(config, live_gateway).test_client().get("/metrics").get_data(as_text=True)
    assert 'gateway_pbx_unknown_values_total{kind="status",value="Bridged"}' in metrics
    assert 'gateway_pbx_unknown_values_total{kind="type",value="Wpstnline"}' in metrics
    finding = check_readings(config)
    assert finding.status == "WARN" and "'Bridged'" in finding.message and "'Wpstnline'" in finding.message


def test_doctor_readings_ok_when_the_service_understood_everything(config, live_gateway):
    wait_until(lambda: live_gateway.live.is_live, timeout_s=10)

    finding = check_readings(config)

    assert (finding.status, finding.message) == ("OK", "the running service understood everything the PBX sent")


def test_doctor_readings_without_a_service_points_to_watch(config):
    finding = check_readings(config)

    assert finding.status == "OK" and "doctor --watch" in finding.message


def test_doctor_watch_names_what_it_could_not_read(sim, config, live_gateway, receiver):
    from gateway.doctor import check_watch
    import threading
    wait_until(lambda: live_gateway.live.is_live, timeout_s=10)
    sim.faults.rename_words({"Ringing": "Alerting"})
    out = io.StringIO()
    result = {}
    thread = threading.Thread(target=lambda: result.setdefault("finding", check_watch(config, 0.04, out)))
    thread.start()
    wait_until(lambda: live_gateway.recorder.is_recording, timeout_s=10)

    sim.play(inbound(CALLER, did=DID).to_extension("101").rings(3).caller_abandons())
    thread.join(30)

    finding = result["finding"]
    assert finding.status == "WARN" and "status word 'Alerting'" in finding.message, finding
