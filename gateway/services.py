"""Services: every long-lived object, built once from the config, kept in app.extensions["gateway"].

Building Services does no I/O and starts no thread; `services.runtime.start()` does that.
Tests build Services pointed at the simulator and pass them to `create_app`.
"""
from __future__ import annotations

import requests

from gateway.cache import TtlCache
from gateway.clock import Clock
from gateway.capture.control import ControlServer
from gateway.config import Config
from gateway.live.gaps import GapStore, gaps_path
from gateway.live.history import CallHistory
from gateway.live.model import CallTable
from gateway.live.recorder import Recorder
from gateway.live.recovery import Recovery
from gateway.live.store import CallStore
from gateway.live.phonebook import Phonebook
from gateway.live.view import LiveView
from gateway.live.watcher import Watcher
from gateway.metrics import Metrics
from gateway.pbx.auth import TokenSource
from gateway.pbx.clock import PbxClock
from gateway.pbx.callcontrol import CallControlClient
from gateway.pbx.stream import EventStream
from gateway.pbx.http import new_session
from gateway.pbx.xapi import XapiClient
from gateway.recordings.history_link import HistoryRecordingLink
from gateway.recordings.pipeline import RecordingPipeline
from gateway.webhooks.delivery import Deliveries
from gateway.webhooks.outbox import Outbox, outbox_path
from gateway.webhooks.routing import Router


class Services:
    """The gateway's object graph for one process; attributes are its public parts."""

    def __init__(self, config: Config, *, clock: Clock | None = None,
                 session: requests.Session | None = None) -> None:
        pbx = config.pbx
        self.config = config
        self.clock = clock or Clock()
        self.http = session or new_session(verify_tls=pbx.verify_tls, url=pbx.url)
        self.cache = TtlCache(config.webapi.cache_s)
        self.metrics = Metrics(self)
        self.metrics.watch_session(self.http)
        self.pbx_clock = PbxClock(clock=self.clock)
        self.pbx_clock.watch_session(self.http)
        self.tokens = TokenSource(self.http, pbx.url, pbx.client_id, pbx.client_secret,
                                  timeout_s=pbx.timeout_s, clock=self.clock)
        self.xapi = XapiClient(self.http, pbx.url, self.tokens, timeout_s=pbx.timeout_s)
        self.callcontrol = CallControlClient(self.http, pbx.url, self.tokens, timeout_s=pbx.timeout_s)
        self.stream = EventStream(pbx.url, self.tokens, verify_tls=pbx.verify_tls)
        self.table = CallTable()
        self.outbox = Outbox(outbox_path(config.storage.state_dir), clock=self.clock,
                             enabled=bool(config.targets))
        self.delivery = Deliveries(self.outbox, config.targets, clock=self.clock)
        self.phonebook = Phonebook(self.xapi, clock=self.clock)
        self.webhooks = Router(self.outbox, config.targets, phonebook=self.phonebook.name_of)
        self.recordings = RecordingPipeline(config, self.xapi, self.webhooks, clock=self.clock,
                                            pbx_clock=self.pbx_clock,
                                            history=HistoryRecordingLink(CallHistory(self.xapi), self.pbx_clock))
        self.recovery = Recovery(CallHistory(self.xapi), GapStore(gaps_path(config.storage.state_dir)),
                                 self.webhooks, self.table, config, clock=self.clock,
                                 monitored=lambda: self.watcher.monitored_dns(),
                                 on_call_ended=self.recordings.call_ended,
                                 applied_until=lambda: self.watcher.applied_until())
        self.recorder = Recorder(self.clock)    # copies the watcher's traffic to `3cx-gateway capture`
        self.watcher = Watcher(self.stream, self.recorder.reads("callcontrol", self.callcontrol),
                               self.recorder.reads("xapi", self.xapi), self.table, self.webhooks,
                               config, clock=self.clock, on_call_ended=self.recordings.call_ended,
                               recorder=self.recorder, store=CallStore(self.webhooks), recovery=self.recovery)
        self.live = LiveView(self.table, self.watcher, self.callcontrol)
        self.control = ControlServer(self)      # local socket: capture and doctor ask the service
        from gateway.runtime import Runtime  # runtime wires threads around the parts above
        self.runtime = Runtime(self)
