"""For the webhook tests: a [webhooks] config builder and the code of a child process.

CHILD_CODE fills an outbox, then waits to be killed:
    python -c CHILD_CODE <outbox path> <events per call> <calls> [<webhook url to try once>]
It prints each event id as soon as add() returned, then "ready" (after one attempt per call when
a url is given), then blocks forever.
"""
from __future__ import annotations

from typing import Any

from gateway.config import from_dict


def webhooks_config(**values: str) -> Any:
    """The [webhooks] section of a valid configuration with `values` set."""
    return from_dict({
        "pbx": {"url": "https://pbx.test:5001", "client_id": "gw", "client_secret": "x"},
        "webapi": {"key": "k3y-for-tests-0123456789"},
        "webhooks": values,
    }, source="test", environ={}).webhooks


CHILD_CODE = """
import signal, sys
from gateway.clock import Clock
from gateway.config import from_dict
from gateway.webhooks.delivery import Delivery
from gateway.webhooks.outbox import Outbox

path, per_call, calls = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
url = sys.argv[4] if len(sys.argv) > 4 else ""
outbox = Outbox(path, clock=Clock())
for n in range(per_call):
    for k in range(calls):
        print(outbox.add(f"call-{k}", {"call": f"call-{k}", "n": str(n)}), flush=True)
if url:
    config = from_dict({"pbx": {"url": "https://pbx.test", "client_id": "gw", "client_secret": "x"},
                        "webapi": {"key": "k"}, "webhooks": {"url": url}}, environ={})
    Delivery(outbox, config.webhooks, clock=Clock()).run_due()
print("ready", flush=True)
signal.pause()
"""
