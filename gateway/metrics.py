"""/metrics in Prometheus text format: requests by command and status, PBX latency, events,
webhooks, recordings and the interpreter's garbage collections. One registry per Services (no
module-level collectors)."""
from __future__ import annotations

import gc
import logging
from typing import TYPE_CHECKING, Any, Iterator
from urllib.parse import urlsplit

import requests
from flask import Blueprint, Response
from prometheus_client import CollectorRegistry, Counter, GCCollector, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from gateway.webhooks.outbox import STATES, OutboxCounts

if TYPE_CHECKING:
    from gateway.services import Services

logger = logging.getLogger(__name__)


def _api_of(url: str) -> str:
    path = urlsplit(url).path
    for prefix, api in (("/xapi/", "xapi"), ("/callcontrol", "callcontrol"), ("/connect/token", "token")):
        if path.startswith(prefix):
            return api
    return "other"


class _StateCollector:
    """Reads the outbox, watcher, recordings and recovery state at scrape time."""

    def __init__(self, services: Services) -> None:
        self._services = services

    def collect(self) -> Iterator[Metric]:
        webhooks = GaugeMetricFamily("gateway_webhooks", "Webhooks in the outbox by state", labels=["state"])
        by_target = self._services.outbox.tally_by_target()
        total = OutboxCounts.total(by_target.values())
        for state in STATES:
            webhooks.add_metric([state], total.of(state))
        yield webhooks
        targets = GaugeMetricFamily("gateway_webhook_target", "Webhooks in the outbox by target and state",
                                    labels=["target", "state"])
        for name in sorted({*by_target, *(t.name for t in self._services.config.targets)}):
            for state in STATES:
                targets.add_metric([name, state], by_target.get(name, OutboxCounts()).of(state))
        yield targets
        events = self._services.watcher.status()
        yield GaugeMetricFamily("gateway_event_stream_connected", "1 when the Call Control event stream is up",
                                value=1 if events.connected else 0)
        yield GaugeMetricFamily("gateway_live_calls", "Calls in the live call model", value=events.calls)
        yield CounterMetricFamily("gateway_pbx_events", "Call Control events handled since start",
                                  value=events.events_total)
        yield GaugeMetricFamily("gateway_event_lag_seconds", "Age of the oldest call event taken in and not "
                                "yet applied (0 when none waits)", value=events.lag_s)
        yield GaugeMetricFamily("gateway_event_backlog", "Call events taken in and not yet applied",
                                value=events.backlog)
        if events.reads is not None:
            yield GaugeMetricFamily("gateway_participant_reads_queued", "Participants waiting for a read",
                                    value=events.reads.queued)
            yield GaugeMetricFamily("gateway_participant_reads_running", "Participant reads under way",
                                    value=events.reads.running)
            yield CounterMetricFamily("gateway_participant_reads_listed", "Participants read together with others "
                                      "of their DN in one list read, since start", value=events.reads.listed)
        yield CounterMetricFamily("gateway_unread_legs", "Participants gone before they could be read (their "
                                  "calls are reconciled from the call history)", value=events.unread_legs)
        unknowns = CounterMetricFamily("gateway_pbx_unknown_values", "Values from the PBX the gateway has no "
                                       "reading for (status words, type names, fields), by kind and raw value",
                                       labels=["kind", "value"])
        for unknown in self._services.watcher.unknowns.items():
            unknowns.add_metric([unknown.kind, unknown.value], unknown.count)
        yield unknowns
        recordings = self._services.recordings.status()
        for key, value in (("converted", recordings.converted), ("failed", recordings.failed),
                           ("pending", recordings.pending), ("ambiguous", recordings.ambiguous)):
            yield GaugeMetricFamily(f"gateway_recordings_{key}", f"Recordings {key} since start", value=value)
        recovery = self._services.recovery.status()
        yield CounterMetricFamily("gateway_recovered_calls", "Calls reported from the call history since start",
                                  value=recovery.recovered_calls + recovery.completed_calls)
        unread = CounterMetricFamily("gateway_unread_legs_looked_up", "Legs of no known call gone before their "
                                     "read, by whether the call history showed their call", labels=["found"])
        unread.add_metric(["yes"], recovery.unread_legs_found)
        unread.add_metric(["no"], recovery.unread_legs_not_found)
        yield unread
        yield GaugeMetricFamily("gateway_uncovered_gaps", "Recent gaps the call history could not cover",
                                value=len(recovery.uncovered))
        yield GaugeMetricFamily("gateway_gc_frozen_objects", "Objects made at start that the garbage "
                                "collector leaves out (gc.freeze in the service's worker)",
                                value=gc.get_freeze_count())


class Metrics:
    """The gateway's collectors; `observe_request` is fed by the WebAPI route."""

    def __init__(self, services: Services) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter("gateway_requests", "WebAPI requests by command and HTTP status",
                                ["command", "status"], registry=self.registry)
        self.request_seconds = Histogram("gateway_request_seconds", "WebAPI request duration",
                                         ["command"], registry=self.registry)
        self.pbx_seconds = Histogram("gateway_pbx_request_seconds", "PBX request duration by API",
                                     ["api"], registry=self.registry)
        self.registry.register(_StateCollector(services))
        GCCollector(registry=self.registry)      # python_gc_*: collections by generation

    def observe_request(self, command: str, status: int, duration_s: float) -> None:
        self.requests.labels(command=command, status=str(status)).inc()
        self.request_seconds.labels(command=command).observe(duration_s)

    def watch_session(self, session: requests.Session) -> None:
        """Time every PBX request made through `session`."""

        def hook(response: requests.Response, *args: Any, **kwargs: Any) -> None:
            self.pbx_seconds.labels(api=_api_of(response.url)).observe(response.elapsed.total_seconds())

        session.hooks.setdefault("response", []).append(hook)

    def render(self) -> bytes:
        return generate_latest(self.registry)


def create_metrics_blueprint(metrics: Metrics) -> Blueprint:
    """GET /metrics."""
    blueprint = Blueprint("metrics", __name__)

    @blueprint.get("/metrics")
    def scrape() -> Response:
        return Response(metrics.render(), mimetype=CONTENT_TYPE_LATEST)

    return blueprint
