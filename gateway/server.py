"""gunicorn settings and hooks: the only module that knows gunicorn.

One worker process with threads: the watcher thread, the live call model and the webhook outbox
senders must exist exactly once, and requests read the live model in memory. `preload_app` stays
False because threads started in the master before the fork would not exist in the worker; the
runtime starts in `post_worker_init`, inside the worker, and stops in `worker_exit` (gunicorn's
SIGTERM handling ends there), so a stop finishes in-flight deliveries and conversions.
"""
from __future__ import annotations

import logging
from typing import Any

from gunicorn.app.base import BaseApplication

from gateway.config import Config

logger = logging.getLogger(__name__)


def post_worker_init(worker: Any) -> None:
    """In the worker, after create_app(): start the watcher, senders and scheduler."""
    worker.wsgi.extensions["gateway"].runtime.start()


def worker_exit(server: Any, worker: Any) -> None:
    """On SIGTERM/SIGINT: stop taking events, finish deliveries, flush state."""
    services = getattr(worker, "wsgi", None) and worker.wsgi.extensions.get("gateway")
    if services is not None:
        services.runtime.stop(timeout_s=10)


def settings(config: Config) -> dict[str, Any]:
    """gunicorn settings for this config (a plain dict, so a test can read them)."""
    from gateway.logs import ACCESS_LOG_FORMAT
    options: dict[str, Any] = {
        "bind": config.webapi.listen,
        "workers": 1,                    # see the module docstring: the runtime must exist once
        "worker_class": "gthread",
        "threads": config.webapi.threads,
        "preload_app": False,
        "timeout": 60,
        "graceful_timeout": 20,
        "keepalive": 5,
        "accesslog": "-",
        "errorlog": "-",
        "access_log_format": ACCESS_LOG_FORMAT,
        "loglevel": config.logging.level.lower(),
        "post_worker_init": post_worker_init,
        "worker_exit": worker_exit,
        "proc_name": "3cx-gateway",
    }
    if config.webapi.tls_cert:
        options["certfile"] = config.webapi.tls_cert
        options["keyfile"] = config.webapi.tls_key
    return options


class GatewayApplication(BaseApplication):
    """Runs create_app(config) under gunicorn with `settings(config)`."""

    def __init__(self, config: Config) -> None:
        self._config = config
        super().__init__()

    def load_config(self) -> None:
        for key, value in settings(self._config).items():
            self.cfg.set(key, value)

    def load(self) -> Any:
        from gateway.app import create_app
        from gateway.logs import setup_logging
        setup_logging(self._config.logging.level, self._config.secrets())
        return create_app(self._config)


def serve(config: Config) -> None:
    """Serve until SIGTERM; returns when gunicorn has shut down."""
    GatewayApplication(config).run()
