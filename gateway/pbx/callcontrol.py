"""Client of the v20 Call Control REST API (/callcontrol); answers keep v20's snake_case keys.

Every endpoint of the Call Control docs (see callcontrol-v20.openapi.yaml, reconstructed): DN states,
devices, participants, both makecall forms and the participant actions. Makecall and actions are
POSTs and are never retried (a retry could place a second call).
"""
from __future__ import annotations

import logging
from typing import Any, Iterable, Mapping
from urllib.parse import quote as percent_encode

import requests

from gateway.pbx.auth import TokenSource
from gateway.pbx.errors import PbxRejected
from gateway.pbx.http import AuthorizedHttp, json_body
from gateway.pbx.lean import LeanGets

logger = logging.getLogger(__name__)

ACTIONS = frozenset({"drop", "answer", "divert", "routeto", "transferto",
                     "attach_participant_data", "attach_party_data"})
FAILED_STATUS = 422   # what the PBX itself answers when an action cannot be processed

# `finalstatus` is documented as a string; 3CX's TypeScript types it Failed=-1, Rejected=0, Success=1.
_SUCCESS = frozenset({"success", "1"})
_FAILURE = frozenset({"failed", "rejected", "-1", "0"})


def is_success(response: Mapping[str, Any] | None) -> bool:
    """Whether a CallControlResultResponse reports success.

    `finalstatus` may be a name ("Success", "Failed", "Rejected") or a number (1, -1, 0). An explicit
    failure wins; an explicit success is enough; without either, success means `result.id` is present,
    as in 3CX's own example client.
    """
    if not isinstance(response, Mapping):
        return False
    status = response.get("finalstatus")
    text = str(status).strip().lower() if status is not None and not isinstance(status, bool) else ""
    if text in _FAILURE:
        return False
    if text in _SUCCESS:
        return True
    result = response.get("result")
    return isinstance(result, Mapping) and result.get("id") is not None


def failure_text(response: Mapping[str, Any] | None) -> str:
    """The PBX's explanation of a failed result: reasontext, else reason, else the final status."""
    if not isinstance(response, Mapping):
        return "the PBX answered without a result"
    for key in ("reasontext", "reason"):
        value = response.get(key)
        if isinstance(value, str) and value.strip():
            return value.strip()
    return f"finalstatus {response.get('finalstatus')!r}"


def segment(value: str | int) -> str:
    """One path segment, percent-encoded entirely (a device id is a SIP URI with ':', ';', '@', '/')."""
    return percent_encode(str(value), safe="")


class CallControlClient:
    """Call Control REST requests through the shared token; raises only gateway.pbx.errors."""

    def __init__(self, session: requests.Session, base_url: str, tokens: TokenSource, *,
                 timeout_s: float) -> None:
        # Participant reads come by the hundred in a burst: Call Control GETs take the lean path.
        self._http = AuthorizedHttp(session, base_url, "/callcontrol", tokens, timeout_s=timeout_s,
                                    lean=LeanGets.for_pbx(session, base_url))

    # --- state -----------------------------------------------------------------------------------

    def all_states(self) -> list[dict[str, Any]]:
        """DNInfo of every DN this API client sees: its route point and the monitored DNs."""
        return self._get("") or []

    def dn_state(self, dn: str) -> dict[str, Any]:
        """DNInfo {dn, type, devices, participants} of one DN."""
        state: dict[str, Any] = self._get(f"/{segment(dn)}")
        return state

    def devices(self, dn: str) -> list[dict[str, Any]]:
        """Registered devices [{dn, device_id, user_agent}] of the DN."""
        return self._get(f"/{segment(dn)}/devices") or []

    def device(self, dn: str, device_id: str) -> dict[str, Any]:
        """One device of the DN; PbxNotFound when it is not registered."""
        device: dict[str, Any] = self._get(f"/{segment(dn)}/devices/{segment(device_id)}")
        return device

    def participants(self, dn: str) -> list[dict[str, Any]]:
        """The DN's current participants (call legs)."""
        return self._get(f"/{segment(dn)}/participants") or []

    def listed_participants(self, dn: str, participant_ids: Iterable[int]) -> list[dict[str, Any]]:
        """Those of the DN's current participants whose ids are in `participant_ids`, read with one
        GET of the DN's list (a participant not listed is gone)."""
        wanted = {str(int(participant_id)) for participant_id in participant_ids}
        return [p for p in self.participants(dn) if isinstance(p, dict) and str(p.get("id")) in wanted]

    def participant(self, dn: str, participant_id: int) -> dict[str, Any]:
        """One participant's current state; PbxNotFound when it is gone."""
        participant: dict[str, Any] = self._get(f"/{segment(dn)}/participants/{segment(int(participant_id))}")
        return participant

    # --- calls -----------------------------------------------------------------------------------

    def makecall(self, dn: str, destination: str, *, timeout_s: int | None = None,
                 attached_data: Mapping[str, str] | None = None) -> dict[str, Any]:
        """Start a call from the DN (the legacy form: with several devices the result may lack the leg)."""
        return self._post(f"/{segment(dn)}/makecall", _body(destination, None, timeout_s, attached_data))

    def makecall_from_device(self, dn: str, device_id: str, destination: str, *, timeout_s: int | None = None,
                             attached_data: Mapping[str, str] | None = None) -> dict[str, Any]:
        """Start a call from one registered device of the DN; the result names the new participant."""
        return self._post(f"/{segment(dn)}/devices/{segment(device_id)}/makecall",
                          _body(destination, None, timeout_s, attached_data))

    def action(self, dn: str, participant_id: int, action: str, *, destination: str | None = None,
               reason: str | None = None, timeout_s: int | None = None,
               attached_data: Mapping[str, str] | None = None) -> dict[str, Any]:
        """POST participant action `action` (one of ACTIONS); PbxRejected when the result reports failure."""
        if action not in ACTIONS:
            raise ValueError(f"unknown participant action {action!r}")
        path = f"/{segment(dn)}/participants/{segment(int(participant_id))}/{action}"
        return self._post(path, _body(destination, reason, timeout_s, attached_data))

    def drop(self, dn: str, participant_id: int) -> dict[str, Any]:
        """End this participant's part of the call."""
        return self.action(dn, participant_id, "drop")

    def answer(self, dn: str, participant_id: int) -> dict[str, Any]:
        """Answer a ringing participant (only direct_control devices or route points)."""
        return self.action(dn, participant_id, "answer")

    def divert(self, dn: str, participant_id: int, destination: str, reason: str | None = None) -> dict[str, Any]:
        """Send a ringing participant's call to `destination` instead."""
        return self.action(dn, participant_id, "divert", destination=destination, reason=reason)

    def routeto(self, dn: str, participant_id: int, destination: str) -> dict[str, Any]:
        """Offer a ringing or connected participant's call to `destination` as well."""
        return self.action(dn, participant_id, "routeto", destination=destination)

    def transferto(self, dn: str, participant_id: int, destination: str) -> dict[str, Any]:
        """Blind-transfer a connected participant's call to `destination`."""
        return self.action(dn, participant_id, "transferto", destination=destination)

    def attach_participant_data(self, dn: str, participant_id: int, data: Mapping[str, str]) -> dict[str, Any]:
        """Attach key/value data to this participant's leg."""
        return self.action(dn, participant_id, "attach_participant_data", attached_data=data)

    def attach_party_data(self, dn: str, participant_id: int, data: Mapping[str, str]) -> dict[str, Any]:
        """Attach key/value data to the other party's leg."""
        return self.action(dn, participant_id, "attach_party_data", attached_data=data)

    # --- plumbing --------------------------------------------------------------------------------

    def _get(self, path: str) -> Any:   # the parsed JSON: a v20 object or list of them
        return json_body(self._http.send("GET", path), f"GET /callcontrol{path}")

    def _post(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        what = f"POST /callcontrol{path}"
        result: dict[str, Any] | None = json_body(self._http.send("POST", path, body=body), what)
        if result is None:
            return {}   # a 2xx without a body: the status is all the PBX said
        if not is_success(result):
            message = failure_text(result)
            logger.info("%s failed: %s", what, message)
            raise PbxRejected(FAILED_STATUS, message)
        return result


def _body(destination: str | None, reason: str | None, timeout_s: int | None,
          attached_data: Mapping[str, str] | None) -> dict[str, Any]:
    body: dict[str, Any] = {}
    if destination is not None:
        body["destination"] = str(destination)
    if reason is not None:
        body["reason"] = reason
    if timeout_s is not None:
        body["timeout"] = int(timeout_s)
    if attached_data is not None:
        body["attacheddata"] = {str(key): str(value) for key, value in attached_data.items()}
    return body
