"""Webhook senders: per target, a dispatcher thread feeds due outbox events to a small pool of senders.

One `Delivery` serves one target ([webhooks] = "default", or a [webhook:NAME] section) with its
own threads and its own outbox queue, so a target that is slow or down only delays itself;
`Deliveries` starts and stops them together.

The request for one event:
  - GET (the default method): the event's fields are appended as a query string to the target's
    url, after any query the url already has. List values repeat the key.
  - POST (the configured method, or an event added with method="POST", like FILES whose value is
    a list): the same fields as a compact JSON object, Content-Type application/json. The url's own
    query is kept.
  - Headers: User-Agent 3cx-gateway/<version>, X-Webhook-Id (the event id, the same on every
    retry: delivery is at-least-once), and X-Webhook-Signature when the target's secret is set
    (see signing.py for exactly what is signed). Redirects are not followed.

Ordering comes from `Outbox.due()` (one head event per call). The dispatcher also never hands
out a call whose head is already being sent, so two events of one call are never in flight at
once. `Outbox.add` wakes the dispatcher, so a new event leaves within milliseconds.

Senders do not write to the outbox: each hands its outcome to the dispatcher, which records all
the outcomes handed in since it last looked in one transaction (one disk sync per round, not per
webhook, and no sender waits for another's write) and only then frees their calls for their next
event. A kill between a CRM's answer and that write leaves the event pending: it is sent again
after the restart with the same X-Webhook-Id (delivery is at-least-once).

What an answer means and when to retry is `policy.py`. With [webhooks] url empty, delivery is
off: no thread starts and the outbox records nothing (see outbox.py).

Logs never contain the secret or the url's query (it may hold credentials): only
scheme://host[:port]/path, the event id and the call key. A failed attempt is a warning, a
webhook given up an error; a delivered one is a DEBUG line (thousands an hour in a busy call
centre: `3cx-gateway outbox list --state delivered` and /metrics count them).
"""
from __future__ import annotations

import base64
import json
import logging
import queue
import random
import re
import threading
import time
from collections import deque
from dataclasses import dataclass
from typing import Any, Callable, Iterable
from urllib.parse import quote_plus, urlsplit

import requests
from requests.utils import get_auth_from_url

import gateway
from gateway.clock import Clock
from gateway.config import WebhooksConfig, WebhookTarget
from gateway.webhooks import policy
from gateway.webhooks.outbox import DEFAULT_TARGET, Attempt, Outbox, OutboxCounts, OutboxEvent
from gateway.webhooks.signing import sign
from gateway.webhooks.transport import CLIENT_HEADERS, WireRequest, transport_for

logger = logging.getLogger(__name__)

SENDERS = 8
QUEUED_PER_SENDER = 4   # events handed out ahead, so senders never wait for the dispatcher's round
BACKLOG_ROUNDS_S = 0.05  # rounds at least this far apart while every pending event waits for its retry
ROUND_COST_S = 0.002     # a round whose outbox read took more CPU than this ...
ROUND_PAUSE_FACTOR = 4.0  # ... is followed by a pause this many times as long
READ_AHEAD = 512         # due events read at once after a costly round
READ_AHEAD_KEEP_S = 1.0  # and handed out for this long at most (then the outbox is read again)
IDLE_POLL_S = 5.0    # re-reads the outbox when idle: picks up a requeue made by the CLI's process
WAITING_POLL_S = 1.0  # longest nap while events wait for their retry time
ERROR_PAUSE_S = 1.0  # after the outbox itself failed, before the event may be tried again


@dataclass(frozen=True)
class DeliveryStatus:
    """Whether delivery is on and running, what is in flight, and the outbox counts."""

    enabled: bool
    running: bool
    in_flight: int
    pending: int
    failed: int
    delivered: int


class Delivery:
    """Sends one target's outbox events to its url; `start()`/`stop()` run it, `run_due()` is synchronous.

    `webhooks_config` is a `gateway.config.WebhookTarget`, or the [webhooks] section itself
    (anything with url, method, secret, timeout_s and retry_hours; without a `name` it is "default").
    """

    def __init__(self, outbox: Outbox, webhooks_config: WebhooksConfig | WebhookTarget, *, clock: Clock,
                 senders: int = SENDERS, rand: Callable[[], float] = random.random) -> None:
        self._outbox = outbox
        self._config = webhooks_config
        self.name: str = getattr(webhooks_config, "name", DEFAULT_TARGET)
        self._clock = clock
        url = webhooks_config.url or "http://localhost/"
        self._transport = transport_for(url)
        base = urlsplit(requests.Request("GET", url).prepare().url or url)   # as requests would quote it
        self._base_path, self._base_query = base.path or "/", base.query    # events' fields follow its query
        user, password = get_auth_from_url(url)      # user:password@ in the url: HTTP Basic, as requests does
        self._authorization = _basic_auth(user, password) if user or password else ""
        self._senders = senders
        self._rand = rand
        self.is_enabled = bool(webhooks_config.url)
        self.target = _safe_target(webhooks_config.url) if self.is_enabled else ""
        self._retry_s = webhooks_config.retry_hours * 3600.0
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._lock = threading.Lock()
        self._in_flight: set[str] = set()      # call keys whose head event is being sent (or its outcome recorded)
        self._outcomes: list[tuple[str, Attempt]] = []   # (call key, outcome) sent, not recorded yet
        self._pause_s = 0.0                    # the least time before the next round (see _dispatch_loop)
        self._is_round_costly = False          # the last outbox read took long: read ahead
        self._ready: deque[OutboxEvent] = deque()   # due events read ahead, not handed out yet
        self._ready_at = 0.0
        self._jobs: queue.Queue[OutboxEvent | None] = queue.Queue()
        self._threads: list[threading.Thread] = []
        outbox.on_add(self.wake)

    # --- lifecycle -----------------------------------------------------------------------------

    def start(self) -> None:
        """Start the dispatcher and the sender threads (nothing when webhooks are off)."""
        if not self.is_enabled:
            logger.info("webhooks are off ([webhooks] url is empty)")
            return
        if self._threads:
            return
        self._stop.clear()
        suffix = "" if self.name == DEFAULT_TARGET else f"-{self.name}"
        self._threads = [threading.Thread(target=self._dispatch_loop, name=f"webhook-dispatcher{suffix}",
                                          daemon=True)]
        self._threads += [threading.Thread(target=self._send_loop, name=f"webhook-sender{suffix}-{n}",
                                           daemon=True) for n in range(self._senders)]
        for thread in self._threads:
            thread.start()
        logger.info("webhooks of target %s go to %s with %d senders", self.name, self.target, self._senders)

    def stop(self, timeout_s: float) -> None:
        """Stop dispatching, let the senders finish the requests in flight, join all threads."""
        if not self._threads:
            return
        deadline = time.monotonic() + timeout_s
        self._stop.set()
        self._wake.set()
        dispatcher, senders = self._threads[0], self._threads[1:]
        dispatcher.join(max(deadline - time.monotonic(), 0))
        self._ready.clear()       # read ahead, never handed out: still pending in the outbox
        while True:               # events handed out but not started stay pending: sent after the restart
            try:
                waiting = self._jobs.get_nowait()
            except queue.Empty:
                break
            if waiting is not None:
                with self._lock:
                    self._in_flight.discard(waiting.call_key)
        for _ in senders:
            self._jobs.put(None)  # the requests under way finish first
        for thread in senders:
            thread.join(max(deadline - time.monotonic(), 0))
        self._record_outcomes()
        self._transport.close()
        if any(thread.is_alive() for thread in self._threads):
            logger.warning("webhook senders still busy after %.1fs; their events stay pending",
                           timeout_s)
        self._threads = []

    @property
    def is_running(self) -> bool:
        return any(thread.is_alive() for thread in self._threads)

    def wake(self) -> None:
        """Make the dispatcher look at the outbox now (called by Outbox.add and requeue)."""
        self._wake.set()

    def status(self) -> DeliveryStatus:
        """For health checks: whether delivery is on and running, what is in flight, the counts."""
        with self._lock:
            in_flight = len(self._in_flight)
        counts = self._outbox.tally_by_target().get(self.name, OutboxCounts())
        return DeliveryStatus(enabled=self.is_enabled, running=self.is_running, in_flight=in_flight,
                              pending=counts.pending, failed=counts.failed, delivered=counts.delivered)

    # --- synchronous ---------------------------------------------------------------------------

    def run_due(self) -> int:
        """Send everything due now, one event at a time, in order; returns the attempts made.

        After an event is delivered the next one of its call is due at once and is sent in the
        same run; each event is tried at most once per run. For tests and tools, not while started.
        """
        if not self.is_enabled:
            return 0
        tried: set[str] = set()
        while True:
            events = [e for e in self._outbox.due(self._senders, self._clock.time(), target=self.name)
                      if e.id not in tried]
            if not events:
                return len(tried)
            for event in events:
                tried.add(event.id)
                self._outbox.record([self._attempt(event)])

    # --- threads -------------------------------------------------------------------------------

    def _dispatch_loop(self) -> None:
        while not self._stop.is_set():
            self._wake.clear()
            try:
                wait_s = self._dispatch()
            except Exception:
                logger.exception("webhook dispatcher: reading the outbox failed")
                wait_s = ERROR_PAUSE_S
            if self._pause_s:
                # A long backlog (the CRM down, or catching up): rounds cost more, so they are spaced
                # out (new events wake the dispatcher once per pause, not once each).
                self._stop.wait(self._pause_s)
                wait_s = max(0.0, wait_s - self._pause_s)
            self._wake.wait(wait_s)

    def _dispatch(self) -> float:
        """Record the senders' outcomes, hand due events to free senders; return how long to wait
        before looking again."""
        self._pause_s = 0.0
        if not self._record_outcomes():
            return ERROR_PAUSE_S
        with self._lock:
            busy = set(self._in_flight)
        capacity = self._senders * QUEUED_PER_SENDER
        free = capacity - len(busy)
        if self._ready and time.monotonic() - self._ready_at > READ_AHEAD_KEEP_S:
            self._ready.clear()                  # read again: a requeued older event goes first
        while free > 0 and self._ready:          # read ahead by an earlier round: no outbox read
            event = self._ready.popleft()
            self._hand_out(event)
            busy.add(event.call_key)
            free -= 1
        if free <= 0:
            return IDLE_POLL_S  # a sender finishing wakes us
        now = self._clock.time()
        began = time.thread_time()       # this thread's CPU: a busy process must not look like a long backlog
        limit = max(free, READ_AHEAD) if self._is_round_costly else free
        events, next_at = self._outbox.due_and_next(limit, now, skip_calls=busy, target=self.name)
        spent_s = time.thread_time() - began
        # A long backlog (the CRM down, or catching up) makes a round cost more: read further ahead,
        # and pause after it, so rounds take about a fifth of a core at most; while every pending
        # event waits for its retry, no round comes sooner than BACKLOG_ROUNDS_S after the last.
        self._is_round_costly = spent_s > ROUND_COST_S
        is_backlog_waiting = not events and next_at is not None and next_at > now
        self._pause_s = max(ROUND_PAUSE_FACTOR * spent_s if self._is_round_costly else 0.0,
                            BACKLOG_ROUNDS_S if is_backlog_waiting else 0.0)
        for event in events[:free]:
            self._hand_out(event)
        self._ready.extend(events[free:])
        self._ready_at = time.monotonic()
        if len(busy) + len(events) >= capacity:
            return IDLE_POLL_S  # a sender finishing wakes us
        if next_at is None:
            return IDLE_POLL_S
        return min(max(next_at - self._clock.time(), 0.0), WAITING_POLL_S)

    def _hand_out(self, event: OutboxEvent) -> None:
        with self._lock:
            self._in_flight.add(event.call_key)
        self._jobs.put(event)

    def _record_outcomes(self) -> bool:
        """Write the outcomes the senders handed in, in one transaction, and free their calls
        (dispatcher thread, and `stop` at the end); False when the outbox could not be written
        (the outcomes are kept and their calls stay busy, so nothing is sent twice meanwhile)."""
        with self._lock:
            outcomes, self._outcomes = self._outcomes, []
        if not outcomes:
            return True
        try:
            self._outbox.record(attempt for _call_key, attempt in outcomes)
        except Exception:
            logger.exception("webhooks of target %s: recording %d delivery outcomes failed; trying again",
                             self.name, len(outcomes))
            with self._lock:
                self._outcomes = outcomes + self._outcomes
            return False
        with self._lock:
            for call_key, _attempt in outcomes:
                self._in_flight.discard(call_key)
        return True

    def _send_loop(self) -> None:
        while True:
            event = self._jobs.get()
            if event is None:
                return
            try:
                attempt = self._attempt(event)
            except Exception:
                logger.exception("webhook %s (call %s, target %s): the attempt failed unexpectedly; it stays due",
                                 event.id, event.call_key, self.name)
                self._stop.wait(ERROR_PAUSE_S)
                with self._lock:
                    self._in_flight.discard(event.call_key)
            else:
                with self._lock:
                    self._outcomes.append((event.call_key, attempt))   # the dispatcher records them together
            if self._jobs.qsize() < self._senders:
                # The senders are running short of work: the dispatcher records the outcomes and hands
                # out more. While enough is queued it is left alone, so that a burst's outcomes are
                # recorded a few dozen at a time rather than in a transaction each.
                self._wake.set()

    # --- one attempt ---------------------------------------------------------------------------

    def _attempt(self, event: OutboxEvent) -> Attempt:
        """Send one event once and log the outcome; returns it, for the caller to record."""
        try:
            response = self._transport.send(self._prepare(event), self._config.timeout_s)
            result: object = response
            error = f"HTTP {response.status_code}"
            if 300 <= response.status_code < 400:
                error += " (redirects are not followed; set [webhooks] url to the final address)"
        except requests.RequestException as exc:
            result = exc
            error = _describe(exc)
        attempts = event.attempts + 1
        now = self._clock.time()
        verdict = policy.classify(result, attempts, age_s=now - event.retry_since,
                                  retry_s=self._retry_s)
        if verdict == policy.DELIVERED:
            outcome = Attempt(event.id, "delivered")
            logger.debug("webhook %s (call %s) delivered to %s %s, attempt %d",
                         event.id, event.call_key, self.name, self.target, attempts)
        elif verdict == policy.RETRY:
            delay_s = policy.backoff_s(attempts, self._rand)
            outcome = Attempt(event.id, "pending", error, now + delay_s)
            log = logger.warning if attempts == 1 else logger.debug
            log("webhook %s (call %s) to %s %s: %s; retrying in %.0fs (attempt %d)",
                event.id, event.call_key, self.name, self.target, error, delay_s, attempts)
        else:
            outcome = Attempt(event.id, "failed", error)
            logger.error("webhook %s (call %s) to %s failed for good after %d attempts: %s "
                         "(requeue with: 3cx-gateway outbox requeue %s)",
                         event.id, event.call_key, self.name, attempts, error, event.id)
        return outcome

    def _prepare(self, event: OutboxEvent) -> WireRequest:
        """The exact request for `event`, signed over what goes on the wire."""
        method = event.method or self._config.method
        headers = [("User-Agent", f"3cx-gateway/{gateway.__version__}"), *CLIENT_HEADERS, ("X-Webhook-Id", event.id)]
        body = b""
        if method == "POST":
            body = json.dumps(event.params, ensure_ascii=False, separators=(",", ":")).encode()
            headers += [("Content-Type", "application/json"), ("Content-Length", str(len(body)))]
            query = self._base_query
        else:
            query = "&".join(part for part in (self._base_query, form_query(event.params)) if part)
        if self._authorization:
            headers.append(("Authorization", self._authorization))
        if self._config.secret:
            signed = body if method == "POST" else query.encode()
            headers.append(("X-Webhook-Signature", sign(self._config.secret, signed)))
        target = self._base_path + (f"?{query}" if query else "")
        return WireRequest(method, target, tuple(headers), body)


class Deliveries:
    """One `Delivery` per webhook target, started and stopped together; `by_name` finds one."""

    def __init__(self, outbox: Outbox, targets: Iterable[WebhookTarget], *, clock: Clock,
                 senders: int = SENDERS) -> None:
        self.all = [Delivery(outbox, target, clock=clock, senders=senders) for target in targets]
        self.by_name = {delivery.name: delivery for delivery in self.all}
        self.is_enabled = any(delivery.is_enabled for delivery in self.all)

    def start(self) -> None:
        if not self.all:
            logger.info("webhooks are off (no [webhooks] url and no [webhook:NAME] section)")
        for delivery in self.all:
            delivery.start()

    def stop(self, timeout_s: float) -> None:
        """Stop every target's delivery, sharing the `timeout_s` budget."""
        deadline = time.monotonic() + timeout_s
        for delivery in self.all:
            delivery.stop(max(deadline - time.monotonic(), 0.1))

    @property
    def is_running(self) -> bool:
        return any(delivery.is_running for delivery in self.all)

    def run_due(self) -> int:
        """`Delivery.run_due` of every target, one after the other; returns the attempts made."""
        return sum(delivery.run_due() for delivery in self.all)

    def status(self) -> dict[str, DeliveryStatus]:
        """Each target's `Delivery.status()` by name."""
        return {delivery.name: delivery.status() for delivery in self.all}


def form_query(params: dict[str, Any]) -> str:
    """`params` as a query string, the same text as `urlencode(..., doseq=True)` of the values as
    `_query_value` writes them: a list repeats its key, every character but letters, digits and
    `_.-~` is percent-encoded, a space as `+`."""
    pairs: list[str] = []
    for key, value in params.items():
        name = _form(str(key))
        value = _query_value(value)
        if isinstance(value, list):
            pairs.extend(f"{name}={_form(str(item))}" for item in value)
        else:
            pairs.append(f"{name}={_form(value)}")
    return "&".join(pairs)


_UNRESERVED = re.compile(r"[A-Za-z0-9_.~-]*", re.ASCII)


def _form(text: str) -> str:
    """`quote_plus(text)`, without its work when there is nothing to encode (most values)."""
    return text if _UNRESERVED.fullmatch(text) else quote_plus(text)


def _query_value(value: Any) -> Any:
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return ""
    if isinstance(value, (list, tuple)):
        return [_query_value(item) for item in value]
    return str(value)


def _basic_auth(user: str, password: str) -> str:
    """An HTTP Basic Authorization value, encoded as requests encodes it (latin-1)."""
    token = base64.b64encode(f"{user}:{password}".encode("latin-1", errors="replace")).decode("ascii")
    return f"Basic {token}"


def _safe_target(url: str) -> str:
    """scheme://host[:port]/path of `url`: no user info, no query (either may hold credentials)."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    port = f":{parts.port}" if parts.port else ""
    return f"{parts.scheme}://{host}{port}{parts.path}"


def _describe(exc: requests.RequestException) -> str:
    """A short error for logs and `last_error`, with any query string and user info removed."""
    kind = "timeout" if isinstance(exc, requests.Timeout) else type(exc).__name__
    message = re.sub(r"\?[^\s()'\"]*", "?…", str(exc))        # urllib3 quotes "url: /path?query"
    message = re.sub(r"//[^/@\s]+@", "//", message)           # user:password@host
    return f"{kind}: {message}"[:500]
