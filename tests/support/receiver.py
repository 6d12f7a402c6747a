"""The `receiver` fixture's server: a real local CRM (gateway.webhooks.receiver) that records every webhook."""
from __future__ import annotations

import threading
import time

from gateway.webhooks.receiver import Webhook, WebhookReceiver

Received = Webhook   # one request as the CRM saw it


class Receiver(WebhookReceiver):
    """Records webhooks for `wait_for`; `status` (default 200) is what it answers, so tests can make it fail."""

    def __init__(self) -> None:
        self.received: list[Received] = []
        self._cond = threading.Condition()
        super().__init__(self._record, name="receiver")

    def _record(self, webhook: Webhook) -> None:
        with self._cond:
            self.received.append(webhook)
            self._cond.notify_all()

    def wait_for(self, count: int, timeout_s: float = 10.0) -> list[Received]:
        """Wait until `count` webhooks have arrived; return them all (fails the test on timeout)."""
        deadline = time.monotonic() + timeout_s
        with self._cond:
            while len(self.received) < count:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(
                        f"expected {count} webhooks, got {len(self.received)}: "
                        f"{[r.params for r in self.received]}")
                self._cond.wait(left)
            return list(self.received)
