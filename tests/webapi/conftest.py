"""Fixtures of the WebAPI tests."""
from __future__ import annotations

import logging

import pytest

from gateway.logs import RedactingFilter, setup_logging


@pytest.fixture
def logging_setup():
    """Runs setup_logging for a test and takes its handler and filters away afterwards."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    installed: list[RedactingFilter] = []

    def setup(secrets: list[str]) -> RedactingFilter:
        redactor = setup_logging("DEBUG", secrets)
        installed.append(redactor)
        return redactor

    yield setup
    for handler in list(root.handlers):
        if handler not in handlers:
            root.removeHandler(handler)
    root.setLevel(level)
    for redactor in installed:
        for target in [*root.handlers, *(logging.getLogger(n) for n in ("werkzeug", "gunicorn.error",
                                                                        "gunicorn.access"))]:
            target.removeFilter(redactor)
