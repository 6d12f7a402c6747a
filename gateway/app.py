"""create_app(config, services=None) -> Flask: wiring only; no I/O and no threads start here."""
from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from flask import Flask

from gateway.config import Config
from gateway.health import create_health_blueprint
from gateway.metrics import create_metrics_blueprint
from gateway.recordings.serve import create_recordings_blueprint
from gateway.webapi import route

if TYPE_CHECKING:
    from gateway.services import Services

logger = logging.getLogger(__name__)


def create_app(config: Config, services: Services | None = None) -> Flask:
    """The gateway's Flask app for `config`; `services` defaults to a fresh `Services(config)`.

    The services are kept in app.extensions["gateway"]; `services.runtime.start()` is called by
    the server hooks (gateway/server.py) or by tests, never here.
    """
    if services is None:
        from gateway.services import Services  # imported here: it pulls in every component
        services = Services(config)
    app = Flask("gateway")
    # 004_…txt's JSON is a contract down to key order.
    app.json.sort_keys = False  # type: ignore[attr-defined]
    app.extensions["gateway"] = services
    route.register(app, services)
    route.subscribe(app, services.metrics.observe_request)
    app.register_blueprint(create_recordings_blueprint(
        services.recordings.mp3_dir, services.recordings.links, clock=services.clock))
    app.register_blueprint(create_health_blueprint(services))
    app.register_blueprint(create_metrics_blueprint(services.metrics))
    return app
