"""Errors of the live call model."""
from __future__ import annotations


class NoSuchLeg(LookupError):
    """No live call leg matches the request (an extension with no call, or no matching device/party)."""
