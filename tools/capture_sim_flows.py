"""Record one capture per call flow the simulator plays: tests/data/captures/sim-<flow>.jsonl.

How they are made: a simulator (gateway.sim, time compressed 10x) and the gateway's own Services
against it, with the runtime started as in production; for each flow a capture is opened on the
running watcher exactly as `3cx-gateway capture` does through the control socket (snapshot, then
every message, read and webhook), the flow is played, and the capture is closed once the call has
ended. Each file's header names this script (`made_by`) and the flow (`flow`: the scenario JSON,
or the makecall steps). Numbers are the simulator's own, so the files are not pseudonymised.

The files are regression tests (tests/capture/test_captures.py replays each with --check); re-run
this script only when a flow or a reading changes on purpose, and review the webhooks it records.
Run from the repository root: `.venv/bin/python tools/capture_sim_flows.py`.
"""
from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable, Iterable

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from gateway.capture.commands import write_records  # noqa: E402
from gateway.capture.sources import drain, header, snapshot  # noqa: E402
from gateway.config import from_dict  # noqa: E402
from gateway.services import Services  # noqa: E402
from gateway.sim.scenarios import Scenario, inbound, internal, outbound  # noqa: E402
from gateway.sim.server import SimServer  # noqa: E402

OUT = ROOT / "tests" / "data" / "captures"
CALLER = "+420774852529"
DID = "+420233000111"


def _makecall(sim: SimServer) -> dict[str, Any]:
    """makecall first=101 second=CALLER (flow 9): 101's device rings, picks up, the far end answers."""
    call, _body = sim.engine.make_call_checked("101", CALLER)
    _wait(lambda: any(p["status"] == "Connected" for p in sim.engine.participants("101")), 20)
    time.sleep(0.2)
    sim.engine.hang_up(call.callid, "101")
    return {"kind": "makecall", "first": "101", "second": CALLER, "steps": ["device rings", "picked up",
                                                                             "far end answers", "101 hangs up"]}


# A PBX speaking words the gateway does not know (a newer build, say): status Connected renamed,
# the outside line's and the queue's type names renamed. Every call must still end.
RENAMED = {"Connected": "Bridged", "Wexternalline": "Wpstnline", "Wqueue": "Wcallqueue"}
UNKNOWN_WORDS = inbound(CALLER, did=DID).to_queue("800", rings=["101", "102"]).rings(3).answered_by("101") \
    .talk(5).caller_hangs_up()


def _unknown_words(sim: SimServer) -> dict[str, Any]:
    sim.faults.rename_words(RENAMED)
    try:
        sim.play(UNKNOWN_WORDS)
    finally:
        sim.faults.clear()
    return {**UNKNOWN_WORDS.to_dict(), "renamed_by_the_simulator": RENAMED}


FLOWS: dict[str, Scenario | Callable[[SimServer], dict[str, Any]]] = {
    "extension-answered": inbound(CALLER, did=DID).to_extension("101").answered_by("101").talk(10)
    .caller_hangs_up(),
    "extension-not-answered": inbound(CALLER, did=DID).to_extension("101").rings(5).caller_abandons(),
    "queue-answered-by-second-agent": inbound(CALLER, did=DID).to_queue("800", rings=["101", "102"]).rings(5)
    .answered_by("102").talk(10).caller_hangs_up(),
    "queue-abandoned": inbound(CALLER, did=DID).to_queue("800", rings=["101", "102"]).rings(5).caller_abandons(),
    "hunt-queue-rotating": inbound(CALLER, did=DID).to_queue("801", rings=["103", "104"]).answered_by("104")
    .talk(5).caller_hangs_up(),
    "ring-group-answered": inbound(CALLER, did=DID).to_ring_group("700", rings=["101", "102"]).rings(5)
    .answered_by("102").talk(5).caller_hangs_up(),
    "ring-group-abandoned": inbound(CALLER, did=DID).to_ring_group("700", rings=["101", "102"]).rings(5)
    .caller_abandons(),
    "ivr-forwarded": inbound(CALLER, did=DID).to_ivr("600", press="101").answered_by("101").talk(5)
    .caller_hangs_up(),
    "blind-transfer-answered": inbound(CALLER, did=DID).to_extension("101").answered_by("101").talk(5)
    .blind_transfer(by="101", to="103").answered_by("103").talk(5).caller_hangs_up(),
    "blind-transfer-not-answered": inbound(CALLER, did=DID).to_extension("101").answered_by("101").talk(5)
    .blind_transfer(by="101", to="103").rings(5).no_answer(),
    "attended-transfer": inbound(CALLER, did=DID).to_extension("101").answered_by("101").talk(5)
    .attended_transfer(by="101", to="103").talk(5).caller_hangs_up(),
    "transfer-to-queue": inbound(CALLER, did=DID).to_extension("103").answered_by("103").talk(5)
    .blind_transfer(by="103", to="800").rings(3).answered_by("102").talk(5).caller_hangs_up(),
    "outbound-answered": outbound("101", CALLER).answered().talk(10).hangs_up(by="101"),
    "outbound-not-answered": outbound("101", CALLER).not_answered(after_s=30),
    "outbound-busy": outbound("101", CALLER).busy(),
    "agent-hangs-up": inbound(CALLER, did=DID).to_extension("102").answered_by("102").talk(10).hangs_up(by="102"),
    "internal-silent": internal("101", "102").answered_by("102").talk(5).hangs_up(by="101"),
    "internal-attended-transfer": internal("101", "103").rings(3).answered_by("103").talk(5)
    .attended_transfer(by="103", to="104").talk(5).hangs_up(by="104"),
    "makecall": _makecall,
    "unknown-words": _unknown_words,
}
# Flows recorded a second time with [webhooks] internal_calls = true (file sim-<flow>-reported.jsonl).
INTERNAL_REPORTED = ("internal-silent", "internal-attended-transfer")

# What a flow's capture must report as not understood (tests/capture/test_captures.py checks it).
EXPECTED_UNKNOWNS = {"unknown-words": [["status", "Bridged"], ["type", "Wcallqueue"], ["type", "Wpstnline"]]}


def _wait(predicate: Callable[[], bool], timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError("the flow did not settle")
        time.sleep(0.05)


def record_flow(sim: SimServer, services: Services, name: str) -> list[dict]:
    flow = FLOWS[name]
    capture = services.watcher.capture(snapshot(services.recorder, services.callcontrol, services.xapi))
    if isinstance(flow, Scenario):
        sim.play(flow)
        described: dict[str, Any] = flow.to_dict()
    else:
        described = flow(sim)
    _wait(lambda: len(services.table) == 0 and not sim.engine.calls_active(), 30)
    time.sleep(0.5)   # let the last messages and reads come through
    first = {**header(services.config, "simulator"), "made_by": "tools/capture_sim_flows.py", "flow": described,
             "expect_unknowns": EXPECTED_UNKNOWNS.get(name, [])}
    return [first, *drain(services.recorder, capture, 0)]


def record_all(sim: SimServer, names: Iterable[str], *, internal_calls: bool, suffix: str) -> None:
    """Record `names` with one gateway whose [webhooks] internal_calls is `internal_calls`."""
    with tempfile.TemporaryDirectory() as state:
        config = from_dict({
            "pbx": {"url": sim.url, "client_id": sim.client_id, "client_secret": sim.client_secret,
                    "verify_tls": "false", "timezone": "Europe/Prague"},
            "webapi": {"key": "capture-flows-key-0123456789"},
            "webhooks": {"internal_calls": "true" if internal_calls else "false"},
            "recordings": {"enabled": "false", "mp3_dir": f"{state}/mp3"},
            "storage": {"state_dir": state},
        }, source="capture_sim_flows", environ={})
        services = Services(config)
        services.runtime.start()
        try:
            _wait(lambda: services.live.is_live, 10)
            for name in names:
                records = record_flow(sim, services, name)
                path = OUT / f"sim-{name}{suffix}.jsonl"
                write_records(path, records)
                webhooks = [r["params"]["event"] for r in records if r["type"] == "webhook"]
                print(f"{path.relative_to(ROOT)}: {len(records)} records, webhooks {webhooks}")
        finally:
            services.runtime.stop(5)


def main() -> int:
    OUT.mkdir(parents=True, exist_ok=True)
    sim = SimServer(time_scale=10.0)
    sim.start()
    try:
        record_all(sim, FLOWS, internal_calls=False, suffix="")
        record_all(sim, INTERNAL_REPORTED, internal_calls=True, suffix="-reported")
    finally:
        sim.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
