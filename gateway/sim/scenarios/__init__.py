"""Scenarios: calls described in telephony words, saved as JSON, played against the call engine.

    inbound("+420774852529", did="PragueDID").to_queue("800", rings=["101", "102"])
        .answered_by("102").talk(60).caller_hangs_up()

Durations are simulated seconds. `.rings(s)` is how long the call rings before the next
ringing-phase step (answer, abandon, busy, no answer; default 2). A scenario whose steps end
while its call is still up leaves the call running.
JSON form: `{"kind": "inbound", "caller": ..., "did": ..., "to": {...}, "steps": [{"step": ...}]}`;
a file may hold one scenario, a list, or `{"calls": [{"at": seconds, ...scenario}, ...]}`.
"""
from __future__ import annotations

import json
import logging
import threading
from pathlib import Path
from typing import Any, Callable

from gateway.sim.calls import ActionRefused, Call, Participant
from gateway.sim.engine import Engine

logger = logging.getLogger(__name__)

DEFAULT_RING_S = 2.0
CONSULT_TALK_S = 1.0
IVR_PRESS_S = 1.0


class ScenarioError(Exception):
    """A scenario that is malformed or cannot be played (the message says which step)."""


class Scenario:
    """A call to play: its start (inbound / outbound / internal) and its steps, in order."""

    def __init__(self, kind: str, **start: Any) -> None:
        self.kind = kind
        self.start = start
        self.to: dict[str, Any] | None = None
        self.steps: list[dict[str, Any]] = []

    # -- destinations (inbound) ---------------------------------------------------------------
    def to_extension(self, number: str) -> Scenario:
        return self._to({"type": "extension", "dn": str(number)})

    def to_queue(self, number: str, rings: list[str] | None = None) -> Scenario:
        return self._to({"type": "queue", "dn": str(number), "rings": _dns(rings)})

    def to_ring_group(self, number: str, rings: list[str] | None = None) -> Scenario:
        return self._to({"type": "ringgroup", "dn": str(number), "rings": _dns(rings)})

    def to_ivr(self, number: str, press: str | None = None) -> Scenario:
        return self._to({"type": "ivr", "dn": str(number), "press": str(press) if press else None})

    def _to(self, to: dict[str, Any]) -> Scenario:
        if self.kind != "inbound":
            raise ScenarioError("only inbound calls take a destination")
        self.to = to
        return self

    # -- steps ----------------------------------------------------------------------------------
    def rings(self, seconds: float) -> Scenario:
        return self._step("rings", seconds=float(seconds))

    def answered_by(self, ext: str) -> Scenario:
        return self._step("answered_by", ext=str(ext))

    def answered(self) -> Scenario:
        return self._step("answered")

    def not_answered(self, after_s: float = 30) -> Scenario:
        return self._step("not_answered", after_s=float(after_s))

    def busy(self) -> Scenario:
        return self._step("busy")

    def talk(self, seconds: float) -> Scenario:
        return self._step("talk", seconds=float(seconds))

    def blind_transfer(self, by: str, to: str) -> Scenario:
        return self._step("blind_transfer", by=str(by), to=str(to))

    def attended_transfer(self, by: str, to: str) -> Scenario:
        return self._step("attended_transfer", by=str(by), to=str(to))

    def pauses_recording(self, by: str, seconds: float) -> Scenario:
        """`by` stops recording for `seconds` while the call goes on: its leg gets one more file."""
        return self._step("pauses_recording", by=str(by), seconds=float(seconds))

    def caller_hangs_up(self) -> Scenario:
        return self._step("caller_hangs_up")

    def agent_hangs_up(self, ext: str) -> Scenario:
        return self._step("hangs_up", by=str(ext))

    def hangs_up(self, by: str) -> Scenario:
        return self._step("hangs_up", by=str(by))

    def caller_abandons(self) -> Scenario:
        return self._step("caller_abandons")

    def no_answer(self) -> Scenario:
        return self._step("no_answer")

    def _step(self, name: str, **fields: Any) -> Scenario:
        self.steps.append({"step": name, **fields})
        return self

    # -- JSON -----------------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {"kind": self.kind, **self.start}
        if self.to is not None:
            data["to"] = dict(self.to)
        data["steps"] = [dict(step) for step in self.steps]
        return data

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2)

    @classmethod
    def from_json(cls, data: str | dict[str, Any]) -> Scenario:
        """The scenario a `to_json()` text (or its parsed dict) describes; ScenarioError if malformed."""
        if isinstance(data, str):
            try:
                data = json.loads(data)
            except ValueError as error:
                raise ScenarioError(f"scenario is not JSON: {error}") from None
        if not isinstance(data, dict):
            raise ScenarioError("a scenario is a JSON object")
        kind = data.get("kind")
        starts = {"inbound": ("caller", "did"), "outbound": ("ext", "number"), "internal": ("ext", "other")}
        optional = {"inbound": ("name",)}
        if kind not in starts:
            raise ScenarioError(f"scenario kind must be one of {sorted(starts)}, got {kind!r}")
        fields = starts[kind]
        if not data.get(fields[0]) or (kind != "inbound" and not data.get(fields[1])):
            raise ScenarioError(f"a {kind} scenario needs {' and '.join(fields)}")
        scenario = cls(kind, **{f: str(data.get(f) or "") for f in fields},
                       **{f: str(data[f]) for f in optional.get(kind, ()) if data.get(f)})
        to = data.get("to")
        if to is not None:
            if not isinstance(to, dict) or to.get("type") not in ("extension", "queue", "ringgroup", "ivr"):
                raise ScenarioError("'to' must be {type: extension|queue|ringgroup|ivr, dn: ...}")
            scenario.to = dict(to)
        for step in data.get("steps") or []:
            if not isinstance(step, dict) or step.get("step") not in _STEPS:
                raise ScenarioError(f"unknown step {step!r}")
            scenario.steps.append(dict(step))
        return scenario

    def __repr__(self) -> str:
        return f"Scenario({self.to_dict()!r})"


def inbound(caller: str, did: str = "", name: str = "") -> Scenario:
    """An outside caller dials in (on the trunk and DID of `did`, a rule name or number), showing
    display name `name` (default: the number)."""
    if name:
        return Scenario("inbound", caller=str(caller), did=str(did), name=str(name))
    return Scenario("inbound", caller=str(caller), did=str(did))


def outbound(ext: str, number: str) -> Scenario:
    """Extension `ext` dials an outside `number`."""
    return Scenario("outbound", ext=str(ext), number=str(number))


def internal(ext: str, other: str) -> Scenario:
    """Extension `ext` dials extension (or queue, ring group, IVR) `other`."""
    return Scenario("internal", ext=str(ext), other=str(other))


def load_file(path: str | Path) -> list[tuple[float, Scenario]]:
    """The (start offset in simulated seconds, scenario) pairs of a scenario file."""
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        raise ScenarioError(f"cannot read scenario file {path}: {error}") from None
    if isinstance(data, dict) and "calls" in data:
        data = data["calls"]
    items = data if isinstance(data, list) else [data]
    return [(float(item.get("at", 0)) if isinstance(item, dict) else 0.0, Scenario.from_json(item))
            for item in items]


def _dns(values: list[str] | None) -> list[str] | None:
    return [str(v) for v in values] if values is not None else None


class PlayedCall:
    """What a played scenario did: its v20 `call_id`, the legs it made and its recordings."""

    def __init__(self, scenario: Scenario) -> None:
        self.scenario = scenario
        self.call_id = 0
        self.error: str | None = None
        self.done = threading.Event()
        self._calls: list[Call] = []

    @property
    def legs(self) -> list[tuple[str, int]]:
        """(dn, participant id) of every participant of its calls, in creation order."""
        return [(p.dn, p.id) for call in self._calls for p in list(call.participants)]

    @property
    def recording_ids(self) -> list[int]:
        return [rid for call in self._calls for rid in list(call.recording_ids)]

    def wait(self, timeout_s: float = 60.0) -> PlayedCall:
        """Block until the scenario's steps are done (and, if it ended the call, its recordings)."""
        if not self.done.wait(timeout_s):
            raise ScenarioError(f"scenario did not finish within {timeout_s}s: {self.scenario!r}")
        if self.error:
            raise ScenarioError(self.error)
        return self

    def __repr__(self) -> str:
        return f"PlayedCall(call_id={self.call_id}, legs={self.legs}, recording_ids={self.recording_ids})"


class Player:
    """Plays one scenario: each step runs on the engine's scheduler, so no thread per call."""

    def __init__(self, engine: Engine, scenario: Scenario) -> None:
        self.engine = engine
        self.scenario = scenario
        self.played = PlayedCall(scenario)
        self._steps = list(scenario.steps)
        self._ring_s = DEFAULT_RING_S
        self._call: Call | None = None

    def start(self) -> PlayedCall:
        """Start the call now (so `call_id` is known on return) and schedule the steps."""
        try:
            self._call = self._begin()
        except ActionRefused as refused:
            raise ScenarioError(f"cannot start {self.scenario!r}: {refused.text}") from None
        self.played.call_id = self._call.callid
        self.played._calls.append(self._call)
        press = (self.scenario.to or {}).get("press")
        if press:
            self._after(IVR_PRESS_S, lambda: self._press(press))
        else:
            self._guard(self._next)
        return self.played

    def _begin(self) -> Call:
        scenario, engine = self.scenario, self.engine
        if scenario.kind == "inbound":
            to = scenario.to or {}
            return engine.inbound(scenario.start["caller"], scenario.start.get("did", ""),
                                  to.get("dn"), members=to.get("rings"),
                                  caller_name=scenario.start.get("name", ""))
        if scenario.kind == "outbound":
            return engine.outbound(scenario.start["ext"], scenario.start["number"])
        return engine.outbound(scenario.start["ext"], scenario.start["other"])

    def _press(self, destination: str) -> None:
        self.engine.press(self._call.callid, destination)
        self._next()

    # -- stepping -------------------------------------------------------------------------------
    def _next(self) -> None:
        if not self._steps:
            self._finish()
            return
        step = self._steps.pop(0)
        name = step["step"]
        if self._call.is_ended and name not in ("rings", "talk"):
            self._finish()
            return
        action: Callable[[dict[str, Any]], None] = getattr(self, f"_do_{name}")
        action(step)

    def _after(self, sim_s: float, fn: Callable[[], None]) -> None:
        self.engine.later(sim_s, self._guard, fn)

    def _guard(self, fn: Callable[[], None]) -> None:
        try:
            fn()
        except (ActionRefused, ScenarioError) as error:
            self._fail(str(error))
        except Exception as error:   # a broken step ends this scenario, not the scheduler
            logger.exception("scenario step failed: %r", self.scenario)
            self._fail(f"{type(error).__name__}: {error}")

    def _fail(self, message: str) -> None:
        self.played.error = f"{message} (in {self.scenario!r})"
        logger.warning("scenario failed: %s", self.played.error)
        self.played.done.set()

    def _finish(self) -> None:
        call = self._call
        if call is None or not call.is_ended:
            self.played.done.set()
            return

        # Recordings appear shortly after a call ends; the played call is done after all of them.
        ended = [c for c in self.played._calls if c.is_ended]

        def when_finished(watched: Call) -> bool:
            if not watched.finished.is_set():
                return False
            if all(c.finished.is_set() for c in ended):
                self.played.done.set()
            return True

        for each in ended:
            self.engine.watch(each, when_finished)

    def _when_ringing(self, ext: str, fn: Callable[[Participant], None]) -> None:
        """Run `fn(offer)` `ring_s` after `ext` starts ringing in this call (now, if it rings)."""
        ring_s = self._ring_s

        def check(call: Call) -> bool:
            if call.is_ended:
                self._finish()
                return True
            offer = next((p for p in call.offers() if p.dn == ext), None)
            if offer is None:
                return False
            self._after(ring_s, lambda: self._answer_when_still_ringing(ext, fn))
            return True

        self.engine.watch(self._call, check)

    def _answer_when_still_ringing(self, ext: str, fn: Callable[[Participant], None]) -> None:
        call = self._call
        offer = next((p for p in call.offers() if p.dn == ext), None)
        if offer is None or offer.is_removed:
            if call.is_ended:
                self._finish()
            else:
                self._when_ringing(ext, fn)   # moved on (hunt): wait for the next ring
            return
        fn(offer)

    # -- the steps -------------------------------------------------------------------------------
    def _do_rings(self, step: dict[str, Any]) -> None:
        self._ring_s = float(step.get("seconds", DEFAULT_RING_S))
        self._next()

    def _do_talk(self, step: dict[str, Any]) -> None:
        self._after(float(step.get("seconds", 0)), self._next)

    def _do_answered_by(self, step: dict[str, Any]) -> None:
        ext = str(step["ext"])

        def answer(offer: Participant) -> None:
            if self.engine.answer_offer(offer.call.callid, ext):
                self._next()
            elif not offer.call.is_ended:
                self._when_ringing(ext, answer)   # stopped ringing just now: wait for the next ring
            else:
                self._finish()

        self._when_ringing(ext, answer)

    def _do_answered(self, step: dict[str, Any]) -> None:
        call = self._call
        if self.scenario.kind == "outbound":
            self._after(self._ring_s, lambda: (self.engine.answer_external(call.callid), self._next()))
            return

        def answer_first() -> None:
            offers = call.offers()
            if not offers:
                raise ScenarioError("answered(): nothing rings")
            self.engine.answer_offer(call.callid, offers[0].dn)
            self._next()

        self._after(self._ring_s, answer_first)

    def _do_not_answered(self, step: dict[str, Any]) -> None:
        call = self._call
        self._after(float(step.get("after_s", 30)), lambda: (self.engine.give_up(call.callid), self._next()))

    def _do_busy(self, step: dict[str, Any]) -> None:
        call = self._call
        self._after(self._ring_s, lambda: (self.engine.give_up(call.callid), self._next()))

    def _do_no_answer(self, step: dict[str, Any]) -> None:
        self._do_busy(step)

    def _do_caller_abandons(self, step: dict[str, Any]) -> None:
        self._do_busy(step)

    def _do_caller_hangs_up(self, step: dict[str, Any]) -> None:
        call = self._call
        caller = call.caller
        self.engine.hang_up(call.callid, caller.dn if isinstance(caller, Participant) else None)
        self._next()

    def _do_hangs_up(self, step: dict[str, Any]) -> None:
        call = self._call
        by = str(step["by"])
        if not any(p.dn == by for p in call.live_participants()):
            raise ScenarioError(f"hangs_up(by={by!r}): {by} is not in call {call.callid}")
        self.engine.hang_up(call.callid, by)
        self._next()

    def _do_pauses_recording(self, step: dict[str, Any]) -> None:
        call, by = self._call, str(step["by"])
        self.engine.pause_recording(call.callid, by)
        self._after(float(step.get("seconds", 0)),
                    lambda: (self.engine.resume_recording(call.callid, by), self._next()))

    def _do_blind_transfer(self, step: dict[str, Any]) -> None:
        self.engine.transfer(self._call.callid, str(step["by"]), str(step["to"]))
        self._next()

    def _do_attended_transfer(self, step: dict[str, Any]) -> None:
        by, to = str(step["by"]), str(step["to"])
        consult = self.engine.consult(self._call.callid, by, to)
        self.played._calls.append(consult)
        ring_s = self._ring_s

        def complete() -> None:
            self.engine.complete_transfer(consult.callid)
            self._next()

        def answer() -> None:
            if not self.engine.answer_offer(consult.callid, to):
                raise ScenarioError(f"attended_transfer: {to} did not ring")
            self._after(CONSULT_TALK_S, complete)

        self._after(ring_s, answer)


_STEPS = frozenset(name[4:] for name in dir(Player) if name.startswith("_do_"))


def play(engine: Engine, scenario: Scenario | dict[str, Any] | str, *, wait: bool = True,
         timeout_s: float = 120.0) -> PlayedCall:
    """Play `scenario`; with `wait`, return once its steps (and recordings) are done."""
    if not isinstance(scenario, Scenario):
        scenario = Scenario.from_json(scenario)
    player = Player(engine, scenario)
    played = player.start()
    if wait:
        played.wait(timeout_s)
    return played
