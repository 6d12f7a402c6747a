"""Plays a fixed set of calls through the real watcher, outbox and delivery and records the wire.

`record(sim, receiver, state_dir, webhooks)` returns every request the receiver got, as the exact
method, path, query string, body and signing headers, grouped by call in the order the calls were
played. The clock is fake, so call-link ids and durations do not depend on when the test runs.

`python -m tests.support.wire` writes `tests/webhooks/data/wire-baseline.json` (see
tests/webhooks/test_wire.py for its use).
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from gateway.clock import FakeClock
from gateway.config import from_dict
from gateway.live.model import CallTable
from gateway.live.view import LiveView
from gateway.live.watcher import Watcher
from gateway.pbx.auth import TokenSource
from gateway.pbx.callcontrol import CallControlClient
from gateway.pbx.http import new_session
from gateway.pbx.stream import EventStream
from gateway.pbx.xapi import XapiClient
from gateway.sim.scenarios import inbound, outbound
from gateway.webhooks.delivery import Delivery
from gateway.webhooks.outbox import Outbox
from tests.support.wait import wait_until

BASELINE = Path(__file__).parents[1] / "webhooks" / "data" / "wire-baseline.json"
CALLER = "+420774852529"
SECRET = "wire-secret"

# (name, webhooks settings besides url) of each recorded run; the url gets "?token=abc" so the
# kept query is part of what is compared.
RUNS = [("get-signed", {"secret": SECRET}), ("post-signed", {"method": "POST", "secret": SECRET})]


def scenarios() -> list[Any]:
    """The fixed calls: a DID call through a queue, a blind transfer, a missed queue call, an outbound call."""
    return [
        inbound(CALLER, did="PragueDID").to_queue("800", rings=["101", "102"]).rings(5)
        .answered_by("102").talk(10).caller_hangs_up(),
        inbound(CALLER, did="PragueDID").to_extension("101").answered_by("101").talk(5)
        .blind_transfer(by="101", to="103").answered_by("103").talk(5).caller_hangs_up(),
        inbound(CALLER, did="PragueDID").to_queue("800", rings=["101", "102"]).rings(5).caller_abandons(),
        outbound("101", CALLER).answered().talk(10).hangs_up(by="101"),
    ]


def _config(sim: Any, url: str, state_dir: Path, webhooks: dict[str, str]) -> Any:
    return from_dict({
        "pbx": {"url": sim.url, "client_id": sim.client_id, "client_secret": sim.client_secret,
                "verify_tls": "false", "timezone": "Europe/Prague", "timeout_s": "5"},
        "webapi": {"key": "k3y-for-tests-0123456789"},
        # The fake clock stands still, so a call's end cannot wait for [webhooks] end_grace_s (which
        # came after the baseline): 0 ends calls at once, as the recorded version did.
        "webhooks": {"url": url, "end_grace_s": "0", **webhooks},
        "recordings": {"enabled": "false", "mp3_dir": str(state_dir / "mp3")},
        "storage": {"state_dir": str(state_dir)},
    }, source="test", environ={})


def record(sim: Any, receiver: Any, state_dir: Path, webhooks: dict[str, str]) -> list[dict[str, Any]]:
    """Play `scenarios()` one after the other; return the requests received, in call order."""
    config = _config(sim, receiver.url + "?token=abc", state_dir, webhooks)
    clock = FakeClock()
    session = new_session(verify_tls=False)
    tokens = TokenSource(session, sim.url, sim.client_id, sim.client_secret, timeout_s=5, clock=clock)
    callcontrol = CallControlClient(session, sim.url, tokens, timeout_s=5)
    xapi = XapiClient(session, sim.url, tokens, timeout_s=5)
    stream = EventStream(sim.url, tokens, verify_tls=False, ping_interval_s=0.5,
                         min_backoff_s=0.05, max_backoff_s=0.2)
    table = CallTable()
    outbox = Outbox(state_dir / "outbox.sqlite3", clock=clock)
    delivery = Delivery(outbox, config.webhooks, clock=clock, senders=2)
    watcher = Watcher(stream, callcontrol, xapi, table, outbox, config, clock=clock)
    view = LiveView(table, watcher, callcontrol)
    sim.engine.restart_call_numbers(1)
    delivery.start()
    watcher.start()
    try:
        wait_until(lambda: view.is_live, timeout_s=10)
        for scenario in scenarios():
            sim.play(scenario)
            wait_until(lambda: len(table) == 0 and outbox.tally().pending == 0, timeout_s=20)
    finally:
        watcher.stop(5)
        delivery.stop(5)
        session.close()
    return [_wire(item) for item in receiver.received]


def _wire(item: Any) -> dict[str, Any]:
    headers = {key.lower(): value for key, value in item.headers.items()}
    return {"method": item.method, "path": item.path, "query": item.raw_query,
            "body": item.body.decode("utf-8"),
            "content_type": headers.get("content-type", ""),
            "signature": headers.get("x-webhook-signature", ""),
            "user_agent": headers.get("user-agent", ""),
            "has_webhook_id": bool(headers.get("x-webhook-id"))}


def main() -> None:
    import tempfile

    from gateway.sim.server import SimServer
    from tests.support.receiver import Receiver

    sim = SimServer(time_scale=50.0)
    sim.start()
    out: dict[str, Any] = {}
    try:
        for name, webhooks in RUNS:
            sim.reset()
            receiver = Receiver()
            with tempfile.TemporaryDirectory() as folder:
                out[name] = record(sim, receiver, Path(folder), webhooks)
            receiver.stop()
    finally:
        sim.stop()
    BASELINE.write_text(json.dumps(out, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    print(f"wrote {BASELINE}: " + ", ".join(f"{k} {len(v)}" for k, v in out.items()))


if __name__ == "__main__":
    main()
