"""Webhook targets end to end: the real watcher, router, outbox and one delivery per target send
calls played on the simulator to several real local receivers, each getting what its filters select."""
from __future__ import annotations

import pytest

from gateway.config import from_dict
from gateway.sim.scenarios import inbound, internal, outbound
from gateway.webhooks.outbox import OutboxCounts
from tests.support.config import ACCESS_KEY
from tests.support.receiver import Receiver
from tests.support.wait import wait_until

CALLER = "+420774852529"
OTHER_CALLER = "+420603111222"
NEW_CALLER = "+420777123456"     # in no contact of the simulator's default phonebook


@pytest.fixture
def receivers():
    """Three more real local receivers, by target name."""
    servers = {name: Receiver() for name in ("helpdesk", "crm", "sales")}
    yield servers
    for server in servers.values():
        server.stop()


def targets_config(sim, receiver, tmp_path, webhooks=None, **targets: dict[str, str]):
    """The test configuration with [webhooks] at `receiver` and a [webhook:NAME] section per keyword."""
    return from_dict({
        "pbx": {"url": sim.url, "client_id": sim.client_id, "client_secret": sim.client_secret,
                "verify_tls": "false", "timezone": "Europe/Prague", "timeout_s": "5"},
        "webapi": {"key": ACCESS_KEY},
        "webhooks": {"url": receiver.url, "end_grace_s": "0.5", **(webhooks or {})},
        "recordings": {"enabled": "false", "mp3_dir": str(tmp_path / "mp3")},
        "storage": {"state_dir": str(tmp_path / "state")},
        **{f"webhook:{name}": keys for name, keys in targets.items()},
    }, source="test", environ={})


@pytest.fixture
def running():
    """`running(config)` -> started Services against the simulator, stopped after the test."""
    from gateway.services import Services

    started = []

    def start(config, clock=None):
        services = Services(config, clock=clock)
        services.runtime.start()
        started.append(services)
        wait_until(lambda: services.live.is_live, timeout_s=10)
        return services

    yield start
    for services in started:
        services.runtime.stop(timeout_s=10)
        services.http.close()


def summary(receiver) -> list[tuple[str, str]]:
    """(event, user) of every webhook received, in order."""
    return [(r.params["event"], r.params["user"]) for r in receiver.received]


def settled(services) -> bool:
    return len(services.table) == 0 and services.outbox.tally().pending == 0


def test_each_target_receives_exactly_the_events_its_filters_select(sim, receiver, receivers, tmp_path, running):
    config = targets_config(
        sim, receiver, tmp_path, webhooks={"internal_calls": "true"},
        helpdesk={"url": receivers["helpdesk"].url, "queues": "800"},
        crm={"url": receivers["crm"].url, "extensions": "101", "method": "POST"},
        sales={"url": receivers["sales"].url, "dids": "+420 233 000 112", "directions": "inbound",
               "events": "ringing,end"})
    services = running(config)

    for scenario in (
            inbound(CALLER, did="PragueDID").to_queue("800", rings=["101", "102"]).rings(10)
            .answered_by("102").talk(5).caller_hangs_up(),
            inbound(OTHER_CALLER, did="BrnoDID").to_extension("103").answered_by("103").talk(5).caller_hangs_up(),
            outbound("101", CALLER).answered().talk(5).hangs_up(by="101"),
            internal("101", "102").answered_by("102").talk(5).hangs_up(by="101")):
        sim.play(scenario)
        wait_until(lambda: settled(services), timeout_s=20)

    assert summary(receivers["helpdesk"]) == [
        ("ringing", "101"), ("ringing", "102"), ("hangupincoming", "102"), ("incoming", "102")]
    assert summary(receivers["crm"]) == [
        ("ringing", "101"),                                   # the queue call rang 101
        ("hangupoutgoing", "101"), ("outgoing", "101"),       # 101's outbound call
        ("hangupoutgoing", "101"), ("outgoing", "101")]       # 101's side of the internal call
    assert summary(receivers["sales"]) == [("ringing", "103"), ("incoming", "103")]
    monitor = summary(receiver)   # [webhooks]: no filters, a copy of everything
    assert monitor[:9] == [
        ("ringing", "101"), ("ringing", "102"), ("hangupincoming", "102"), ("incoming", "102"),
        ("ringing", "103"), ("hangupincoming", "103"), ("incoming", "103"),
        ("hangupoutgoing", "101"), ("outgoing", "101")]
    assert sorted(monitor[9:]) == sorted([   # both sides of the internal call, which answer at once
        ("ringing", "102"), ("hangupoutgoing", "101"), ("hangupincoming", "102"), ("outgoing", "101"),
        ("incoming", "102")])
    assert {r.method for r in receivers["crm"].received} == {"POST"}


def by_call(receiver) -> dict[str, list[dict]]:
    """The params received, grouped by call (chain id), each call's in the order received."""
    calls: dict[str, list[dict]] = {}
    for item in receiver.received:
        calls.setdefault(item.params["id"].rsplit("-", 1)[0], []).append(item.params)
    return calls


def test_a_target_that_is_down_delays_no_other_and_then_catches_up_in_order(sim, receiver, receivers, tmp_path,
                                                                            running):
    crm = receivers["crm"]
    crm.status = 503
    services = running(targets_config(sim, receiver, tmp_path, crm={"url": crm.url}))

    sim.play(inbound(CALLER, did="PragueDID").to_queue("800", rings=["101", "102"]).rings(10)
             .answered_by("102").talk(5).caller_hangs_up())
    sim.play(outbound("101", CALLER).answered().talk(5).hangs_up(by="101"))
    receiver.wait_for(6)
    wait_until(lambda: services.outbox.tally_by_target()["crm"].pending == 6)   # all written, none sent
    down = services.outbox.tally_by_target()["crm"]
    crm.status = 200
    crm.wait_for(6, timeout_s=15)
    wait_until(lambda: settled(services), timeout_s=15)

    assert crm.refused >= 1 and down.pending == 6 and down.delivered == 0
    assert by_call(crm) == by_call(receiver)
    assert len({r.headers["X-Webhook-Id"] for r in crm.received}) == 6
    assert services.outbox.tally_by_target() == {"default": OutboxCounts(pending=0, delivered=6, failed=0),
                                                  "crm": OutboxCounts(pending=0, delivered=6, failed=0)}


@pytest.fixture
def app_for():
    """`app_for(services)` -> a `webapi(command, **params)` caller of create_app over those services."""
    from gateway.app import create_app

    def make(services):
        client = create_app(services.config, services).test_client()

        def call(command: str, **params: str) -> tuple[int, dict]:
            response = client.get(f"/webapi/{ACCESS_KEY}/{command}", query_string=params)
            return response.status_code, response.get_json(silent=True)
        return call
    return make


def test_makecall_answers_the_id_the_calls_webhooks_carry(sim, receiver, tmp_path, running, app_for):
    services = running(targets_config(sim, receiver, tmp_path))
    webapi = app_for(services)

    status, answer = webapi("makecall", first="103", second=CALLER)
    receiver.wait_for(1)                                  # the far end answered: the call started
    sim.engine.hang_up(sim.engine.participants("103")[0]["callid"])
    receiver.wait_for(2)

    assert status == 200 and list(answer) == ["first", "second", "id"]
    assert [(r.params["event"], r.params["id"]) for r in receiver.received] == [
        ("hangupoutgoing", answer["id"]), ("outgoing", answer["id"])]


def test_makecall_id_holds_when_the_watcher_sees_the_call_only_after_an_event_stream_gap(
        sim, receiver, tmp_path, running, app_for):
    from gateway.clock import FakeClock
    clock = FakeClock()
    services = running(targets_config(sim, receiver, tmp_path), clock=clock)
    webapi = app_for(services)
    sim.faults.refuse_websockets(True)
    sim.faults.drop_websockets()
    wait_until(lambda: not services.live.is_live)

    status, answer = webapi("makecall", first="103", second=CALLER)
    wait_until(lambda: [p["status"] for p in sim.engine.participants("103")] == ["Connected"])
    clock.advance(5)                 # the watcher first sees the call 5 s after makecall answered
    sim.faults.refuse_websockets(False)
    wait_until(lambda: services.live.is_live, timeout_s=10)
    sim.engine.hang_up(sim.engine.participants("103")[0]["callid"])
    receiver.wait_for(2)

    assert status == 200
    assert [(r.params["event"], r.params["id"]) for r in receiver.received] == [
        ("hangupoutgoing", answer["id"]), ("outgoing", answer["id"])]


def test_makecall_rings_the_device_named_by_contact(sim, receiver, tmp_path, running, app_for):
    webapi = app_for(running(targets_config(sim, receiver, tmp_path)))
    devices = [d["contact"] for d in webapi("ext.devices.get", num="104")[1]["devices"]]

    status, answer = webapi("makecall", first="104", second=CALLER, contact=devices[-1])
    missing = webapi("makecall", first="104", second=CALLER, contact="sip:nobody@")

    assert status == 200 and len(devices) == 2      # without contact, makecall rings the first
    assert sim.engine.participants("104")[0]["device_id"] == devices[-1]
    assert missing[0] == 404 and "sip:nobody@" in missing[1]["error"]


def test_makecall_timeout_gives_up_when_first_does_not_answer_in_time(sim, receiver, tmp_path, running, app_for):
    webapi = app_for(running(targets_config(sim, receiver, tmp_path)))
    pickup_after_s, sim.engine.pickup_after_s = sim.engine.pickup_after_s, 30.0   # picked up only after 30 s
    try:
        timed = webapi("makecall", first="103", second=CALLER, timeout="2")
        untimed = webapi("makecall", first="105", second=CALLER)
        wait_until(lambda: not sim.engine.participants("103"), timeout_s=5)

        assert timed[0] == untimed[0] == 200
        assert [p["status"] for p in sim.engine.participants("105")] == ["Ringing"]   # no timeout: rings on
    finally:
        sim.engine.pickup_after_s = pickup_after_s


def test_extra_fields_name_the_phonebook_contact_created_with_contact_new(sim, receiver, receivers, tmp_path,
                                                                        running, app_for):
    crm = receivers["crm"]
    services = running(targets_config(sim, receiver, tmp_path,
                                      crm={"url": crm.url, "extra_fields": "true", "events": "ringing"}))
    webapi = app_for(services)
    status, _ = webapi("contact.new", firstname="Jana", lastname="Novakova", phone="777 123 456")

    sim.play(inbound(NEW_CALLER, did="PragueDID", name="Jana N.").to_extension("101").answered_by("101")
             .talk(5).caller_hangs_up())
    sim.play(inbound(OTHER_CALLER, did="BrnoDID").to_extension("101").answered_by("101").talk(5).caller_hangs_up())
    crm.wait_for(2)
    wait_until(lambda: settled(services), timeout_s=15)

    known, unknown = (r.params for r in crm.received)
    assert status == 200
    assert list(known) == ["event", "callerid", "user", "usertype", "did", "id",
                           "chid", "inbound_did", "callername", "phonebook"]
    assert known["chid"] == known["id"].rsplit("-", 1)[0]
    assert (known["did"], known["inbound_did"], known["callername"], known["phonebook"]) == (
        "PragueDID", "+420233000111", "Jana N.", "Jana Novakova")
    assert (unknown["did"], unknown["inbound_did"], unknown["phonebook"]) == ("BrnoDID", "+420233000112", "")
    assert all("chid" not in r.params for r in receiver.received)   # [webhooks] did not opt in


def test_healthz_and_metrics_show_each_target_by_name(sim, receiver, receivers, tmp_path):
    from gateway.app import create_app
    from gateway.services import Services

    config = targets_config(sim, receiver, tmp_path, crm={"url": receivers["crm"].url})
    services = Services(config)
    client = create_app(config, services).test_client()
    failed = services.outbox.add("261124100000_1", {"event": "ringing"}, target="crm")
    services.outbox.mark_failed(failed, "HTTP 404")
    services.outbox.add("261124100000_1", {"event": "ringing"})
    services.outbox.add("261124100000_1", {"event": "ringing"}, target="removed")   # from an earlier config

    report = client.get("/healthz").get_json()
    metrics = client.get("/metrics").get_data(as_text=True)
    services.http.close()

    assert set(report["webhook_targets"]) == {"default", "crm"}
    assert report["webhook_targets"]["crm"]["failed"] == 1 and report["webhook_targets"]["default"]["pending"] == 1
    assert "1 webhook(s) to target crm failed; see `3cx-gateway outbox list --target crm`" in report["warnings"]
    assert any("wait for target removed, which is no longer configured" in w for w in report["warnings"])
    assert 'gateway_webhook_target{state="failed",target="crm"} 1.0' in metrics
    assert 'gateway_webhook_target{state="pending",target="default"} 1.0' in metrics
    assert 'gateway_webhooks{state="pending"} 2.0' in metrics and 'gateway_webhooks{state="failed"} 1.0' in metrics


def write_config(path, sim, tmp_path, **targets: dict[str, str]) -> str:
    lines = ["[pbx]", f"url = {sim.url}", f"client_id = {sim.client_id}", f"client_secret = {sim.client_secret}",
             "verify_tls = false", "[webapi]", f"key = {ACCESS_KEY}", "[webhooks]", "url = http://127.0.0.1:9/hook",
             "[storage]", f"state_dir = {tmp_path / 'state'}"]
    for name, keys in targets.items():
        lines += [f"[webhook:{name}]", *(f"{key} = {value}" for key, value in keys.items())]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return str(path)


def test_check_config_warns_about_filter_values_the_pbx_does_not_have(sim, tmp_path, capsys):
    from gateway.cli import main
    path = write_config(tmp_path / "config.ini", sim, tmp_path,
                        crm={"url": "http://127.0.0.1:9/crm", "extensions": "101, 199", "queues": "800",
                             "dids": "PragueDID", "directions": "internal"})

    code = main(["check-config", "--config", path])
    out = capsys.readouterr().out

    assert code == 0
    assert "webhook targets: default, crm" in out
    assert "warning: [webhook:crm] extensions: the PBX has no 199 (yet)" in out
    warnings = [line for line in out.splitlines() if line.startswith("warning: ")]
    assert not any(" queues:" in line or " dids:" in line for line in warnings)   # 800 and PragueDID exist
    assert "warning: " + path + " [webhook:crm] directions: internal calls make no webhooks" in out
    assert sim.client_secret not in out


def test_check_config_rejects_a_bad_filter(sim, tmp_path, capsys):
    from gateway.cli import main
    path = write_config(tmp_path / "config.ini", sim, tmp_path,
                        crm={"url": "http://127.0.0.1:9/crm", "events": "pickup"})

    with pytest.raises(SystemExit) as exit_:
        main(["check-config", "--config", path])

    assert exit_.value.code == 1
    assert f"{path} [webhook:crm] events: expected a comma-separated list of ringing, start, end, files" in \
        capsys.readouterr().err


def test_outbox_list_and_requeue_by_target(sim, tmp_path, capsys):
    from gateway.cli import main
    from gateway.clock import Clock
    from gateway.webhooks.outbox import Outbox, outbox_path
    path = write_config(tmp_path / "config.ini", sim, tmp_path, crm={"url": "http://127.0.0.1:9/crm"})
    outbox = Outbox(outbox_path(tmp_path / "state"), clock=Clock())
    for target in ("default", "crm"):
        outbox.mark_failed(outbox.add("261124100000_1", {"event": "ringing"}, target=target), "HTTP 404")

    main(["outbox", "list", "--target", "crm", "--config", path])
    listed = capsys.readouterr().out.splitlines()
    main(["outbox", "requeue", "--target", "crm", "--config", path])
    requeued = capsys.readouterr().out

    assert listed[:2] == ["pending: 0, delivered: 0, failed: 2", "target crm: pending: 0, delivered: 0, failed: 1"]
    assert len(listed) == 3 and "target=crm" in listed[2]
    assert requeued.strip() == "requeued 1 webhook(s)"
    assert outbox.tally_by_target()["default"].failed == 1 and outbox.tally_by_target()["crm"].pending == 1
