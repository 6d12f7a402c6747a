"""Call Control REST views (`/callcontrol...`), shared by HTTP and by WebSocket requests.

`handle()` answers one request as (status, JSON body) from the engine and the directory; the
blueprint and `ws.py` only adapt their transports to it. Keys are snake_case as in
callcontrol-v20.openapi.yaml; DNs the API client does not monitor answer 403.
"""
from __future__ import annotations

import logging
from typing import Any, Iterator
from urllib.parse import unquote

import flask

from gateway.sim.calls import TYPE_NAMES, ActionRefused, failure
from gateway.sim.wav import pcm_chunk
from gateway.sim.model import ApiClient

logger = logging.getLogger(__name__)

ACTIONS = frozenset({"drop", "answer", "divert", "routeto", "transferto",
                     "attach_participant_data", "attach_party_data"})


def split_path(path: str) -> list[str]:
    """The segments after `/callcontrol`, each percent-decoded (device ids are encoded SIP URIs)."""
    path = path.split("?", 1)[0]
    parts = [p for p in path.split("/") if p]
    if not parts or parts[0] != "callcontrol":
        return ["\0"]   # not a Call Control path
    return [unquote(p) for p in parts[1:]]


def is_post(segments: list[str]) -> bool:
    """Whether a WebSocket request for these segments is an action (a POST over HTTP)."""
    return bool(segments) and (segments[-1] == "makecall" or segments[-1] in ACTIONS)


def handle(sim: Any, client: ApiClient, method: str, segments: list[str], body: Any) -> tuple[int, Any]:
    """Answer one Call Control request: (HTTP status, JSON-able body); `faults.rename_words` applies."""
    status, answer = _handle(sim, client, method, segments, body)
    return status, sim.faults.renamed(answer)


def _handle(sim: Any, client: ApiClient, method: str, segments: list[str], body: Any) -> tuple[int, Any]:
    if segments == ["\0"]:
        return 404, _error("not_found", "not a Call Control path")
    try:
        if not segments:
            return _all_states(sim, client) if method == "GET" else _not_allowed()
        dn, rest = segments[0], segments[1:]
        if dn not in client.monitored or not sim.directory.dn_kind(dn):
            return 403, _error("forbidden", f"DN {dn} is not monitored by this API client")
        return _dn_request(sim, dn, method, rest, body if isinstance(body, dict) else {})
    except ActionRefused as refused:
        return refused.status, failure(refused)


def _dn_request(sim: Any, dn: str, method: str, rest: list[str], body: dict) -> tuple[int, Any]:
    engine = sim.engine
    if method == "GET":
        if not rest:
            return 200, dn_info(sim, dn)
        if rest == ["devices"]:
            return 200, devices(sim, dn)
        if len(rest) == 2 and rest[0] == "devices":
            device = next((d for d in devices(sim, dn) if d["device_id"] == rest[1]), None)
            return (200, device) if device else (404, _error("not_found", "no such device"))
        if rest == ["participants"]:
            return 200, engine.participants(dn)
        if len(rest) == 2 and rest[0] == "participants":
            found = engine.participant(dn, _int(rest[1]))
            return (200, found) if found else (404, _error("not_found", "no such participant"))
        return 404, _error("not_found", "unknown path")
    if method != "POST":
        return _not_allowed()
    if rest == ["makecall"]:
        _, result = engine.make_call_checked(dn, _destination(body), timeout_s=_timeout(body))
        return 200, result
    if len(rest) == 3 and rest[0] == "devices" and rest[2] == "makecall":
        _, result = engine.make_call_checked(dn, _destination(body), device_id=rest[1],
                                             timeout_s=_timeout(body))
        return 200, result
    if len(rest) == 3 and rest[0] == "participants" and rest[2] in ACTIONS:
        return 200, engine.act(dn, _int(rest[1]), rest[2], body)
    if len(rest) == 3 and rest[0] == "participants":
        return 400, _error("bad_request", f"unknown action {rest[2]!r}")
    return 404, _error("not_found", "unknown path")


def dn_info(sim: Any, dn: str) -> dict[str, Any]:
    """DNInfo {dn, type, devices, participants}."""
    kind = sim.directory.dn_kind(dn) or ""
    return {"dn": dn, "type": TYPE_NAMES.get(kind, "None"), "devices": devices(sim, dn),
            "participants": sim.engine.participants(dn)}


def devices(sim: Any, dn: str) -> list[dict[str, Any]]:
    """[DNDevice {dn, device_id, user_agent}] of an extension (other DNs have none)."""
    with sim.directory.lock:
        user = sim.directory.users.get(dn)
        return [{"dn": dn, "device_id": d.device_id, "user_agent": d.user_agent}
                for d in (user.devices if user else [])]


def _all_states(sim: Any, client: ApiClient) -> tuple[int, Any]:
    return 200, [dn_info(sim, dn) for dn in list(client.monitored) if sim.directory.dn_kind(dn)]


def _destination(body: dict) -> str:
    destination = body.get("destination")
    if not isinstance(destination, str) or not destination.strip():
        raise ActionRefused(422, "InvalidDestination", "destination is required")
    return destination


def _timeout(body: dict) -> float | None:
    """MakeCallRequest `timeout` in seconds, None when absent or not a positive number."""
    value = body.get("timeout") if isinstance(body, dict) else None
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) and value > 0 else None


def _int(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise ActionRefused(404, "ParticipantNotFound", f"no participant {text!r}") from None


def _error(code: str, description: str) -> dict[str, str]:
    return {"error": code, "error_description": description}


def _not_allowed() -> tuple[int, Any]:
    return 405, _error("method_not_allowed", "method not allowed")


def create_callcontrol_blueprint(sim: Any) -> flask.Blueprint:
    """The REST views; `flask.g.sim_client` (set by the server) is the authenticated API client."""
    blueprint = flask.Blueprint("sim_callcontrol", __name__)

    @blueprint.route("/callcontrol", methods=["GET", "POST"])
    @blueprint.route("/callcontrol/<path:rest>", methods=["GET", "POST"])
    def callcontrol(rest: str = "") -> Any:
        raw = flask.request.environ.get("RAW_URI") or flask.request.environ.get("REQUEST_URI") \
            or flask.request.path
        segments = split_path(raw)
        if len(segments) == 4 and segments[1] == "participants" and segments[3] == "stream":
            return _stream(sim, segments[0], segments[2])
        body = flask.request.get_json(silent=True) if flask.request.method == "POST" else None
        status, answer = handle(sim, flask.g.sim_client, flask.request.method, segments, body)
        return flask.jsonify(answer), status

    def _stream(sim: Any, dn: str, participant_id: str) -> Any:
        client = flask.g.sim_client
        if dn not in client.monitored:
            return flask.jsonify(_error("forbidden", f"DN {dn} is not monitored")), 403
        try:
            found = sim.engine.participant(dn, int(participant_id))
        except ValueError:
            found = None
        if found is None:
            return flask.jsonify(_error("not_found", "no such participant")), 404
        if flask.request.method == "POST":
            while flask.request.stream.read(65536):
                pass   # audio sent to the party is accepted and discarded
            return "", 200

        def chunks() -> Iterator[bytes]:
            audio = pcm_chunk(0.5)
            for start in range(0, len(audio), 1600):
                yield audio[start:start + 1600]

        return flask.Response(chunks(), mimetype="application/octet-stream")

    return blueprint
