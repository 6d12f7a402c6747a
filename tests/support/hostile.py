"""Checks shared by the hostile-request and fuzz tests of the WebAPI: PBX unchanged, error shape."""
from __future__ import annotations


def pbx_state(sim) -> str:
    """Everything configured on the simulated PBX, as one comparable text."""
    with sim.directory.lock:
        d = sim.directory
        return repr((d.users, d.queues, d.ring_groups, d.ivrs, d.contacts))


def changing_requests(sim) -> list:
    """Requests to the PBX that could change it (a token request changes nothing)."""
    return [r for r in sim.requests if r.method not in ("GET", "HEAD") and r.path != "/connect/token"]


def is_error_shape(body: object) -> bool:
    return (isinstance(body, dict) and list(body) == ["error", "command"]
            and all(isinstance(v, str) for v in body.values()))
