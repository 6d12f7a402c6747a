"""Every recording goes to its own call, and only to it: identity tests on the simulated PBX.

Each simulated recording plays its own tone (`gateway.sim.wav.tone_hz(recording id)`), so these
tests listen to each MP3 a FILES webhook links and compare it with the recordings the simulator
made of that very leg (its call id and DN), in order. The PBX's clock runs 41.6 s ahead of ours,
so the spans only line up if the gateway measured the offset.

Calls are kept close on purpose: a second call starts one simulated second after the first ended,
and the PBX publishes recordings only after both calls ended, so the searches of both calls run
while both recordings are listed.

Every scenario runs twice: with the call history (recordings linked by id) and with the history
refused (403), where the search by extension, number and span must get the same answer.
"""
from __future__ import annotations

import array
import dataclasses
import math
import subprocess
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from gateway.sim.scenarios import Scenario, inbound, play
from gateway.sim.wav import SAMPLE_RATE, TONE_COUNT, TONE_STEP_HZ, tone_hz
from tests.support.wait import wait_until

ALICE, BOB = "+420774852529", "+420602111222"
PBX_CLOCK_AHEAD_S = 41.6
TALK_S = 80.0            # simulated seconds: 1.6 s at the test simulator's 50x, longer than the tolerance
GAP_S = 1.0


@pytest.fixture(params=["history", "search"], ids=["by call history", "history refused"])
def path(request, sim) -> str:
    """How recordings are linked: "history" (the call history answers) or "search" (it is refused)."""
    if request.param == "search":
        sim.faults.fail(403, "/xapi/v1/ReportCallLogData", times=None)
    return str(request.param)


@pytest.fixture
def config(sim, path, config):
    """The default test config with a tight match tolerance, on a PBX whose clock is off."""
    sim.set_clock_offset(PBX_CLOCK_AHEAD_S)
    recordings = dataclasses.replace(config.recordings, match_tolerance_s=0.5, wait_s=20.0)
    return dataclasses.replace(config, recordings=recordings)


def assert_linked_by(sim, path: str) -> None:
    """The recordings were found the way `path` says: by id from the history, or by search."""
    searches = [r for r in sim.requests if r.path == "/xapi/v1/Recordings" and "StartTime" in r.query]
    history = [r for r in sim.requests if r.path.startswith("/xapi/v1/ReportCallLogData")]
    assert history, "the call history was never asked"
    assert bool(searches) is (path == "search")


def play_back_to_back(sim, first: Scenario, second: Scenario, *, first_call_s: float,
                      second_call_s: float) -> None:
    """Play `first`, and `second` GAP_S after `first` ends (the calls last `first_call_s` and
    `second_call_s` simulated seconds); the PBX publishes both calls' recordings at once, one
    simulated second after the second call ended."""
    sim.engine.recording_delay_s = GAP_S + second_call_s + 1.0
    played = [play(sim.engine, first, wait=False)]

    def start_second() -> None:
        sim.engine.recording_delay_s = 1.0
        played.append(play(sim.engine, second, wait=False))

    sim.engine.later(first_call_s + GAP_S, start_second)
    wait_until(lambda: len(played) == 2, timeout_s=20)
    for call in played:
        call.wait(30)


def files_by_leg(receiver, count: int) -> dict[str, list[str]]:
    """Wait for `count` FILES webhooks: leg id -> its MP3 names in order (no leg twice)."""
    hooks = wait_until(lambda: (found := [r for r in receiver.received if "FILES" in r.params])
                       and len(found) >= count and found, timeout_s=30)
    ids = [hook.params["id"] for hook in hooks]
    assert len(ids) == len(set(ids)), f"a leg got two FILES webhooks: {ids}"
    return {hook.params["id"]: [urlsplit(link).path.rsplit("/", 1)[1] for link in hook.params["FILES"]]
            for hook in hooks}


def answered_legs(receiver) -> list[tuple[str, str]]:
    """(leg id, extension) of every answered leg's end webhook, in the order they arrived."""
    return [(r.params["id"], r.params["user"]) for r in receiver.received
            if r.params.get("event") in ("incoming", "outgoing") and r.params.get("finishtype") == "Ok"]


def recordings_of(sim, leg_id: str, dn: str) -> list[int]:
    """The simulator's recordings of extension `dn` in the call of `leg_id`, by start time."""
    call_id = int(leg_id.rsplit("_", 1)[1].split("-")[0])
    with sim.directory.lock:
        made = [r for r in sim.directory.recordings.values() if r.call_id == call_id and r.dn == dn]
    return [r.id for r in sorted(made, key=lambda r: r.start_time)]


def tone_of(mp3: Path) -> int:
    """The recording tone an MP3 plays: the strongest of the simulator's tones (Goertzel)."""
    pcm = subprocess.run(["ffmpeg", "-v", "error", "-i", str(mp3), "-f", "s16le", "-ac", "1",
                          "-ar", str(SAMPLE_RATE), "-"], capture_output=True, check=True).stdout
    samples = array.array("h", pcm)[SAMPLE_RATE // 10:SAMPLE_RATE // 10 + SAMPLE_RATE // 2]

    def power(hz: int) -> float:
        k = 2 * math.cos(2 * math.pi * hz / SAMPLE_RATE)
        s1 = s2 = 0.0
        for sample in samples:
            s1, s2 = sample + k * s1 - s2, s1
        return s1 * s1 + s2 * s2 - k * s1 * s2

    return max((tone_hz(n) for n in range(TONE_COUNT)), key=power)


def heard(gateway, files: dict[str, list[str]]) -> dict[str, list[int]]:
    """leg id -> the tones of its files, in FILES order."""
    return {leg_id: [tone_of(gateway.recordings.mp3_dir / name) for name in names]
            for leg_id, names in files.items()}


def expected(sim, receiver) -> dict[str, list[int]]:
    """leg id -> the tones of the recordings the simulator made of that leg, in start order."""
    return {leg_id: [tone_hz(rec_id) for rec_id in recordings_of(sim, leg_id, dn)]
            for leg_id, dn in answered_legs(receiver) if recordings_of(sim, leg_id, dn)}


def test_tones_tell_recordings_apart():
    assert len({tone_hz(n) for n in range(TONE_COUNT)}) == TONE_COUNT and TONE_STEP_HZ >= 50


def test_same_caller_calling_back_gets_each_call_its_own_recording(sim, path, live_gateway, receiver):
    call = inbound(ALICE).to_extension("101").answered_by("101").talk(TALK_S).caller_hangs_up()
    callback = inbound(ALICE).to_extension("101").answered_by("101").talk(TALK_S).caller_hangs_up()

    play_back_to_back(sim, call, callback, first_call_s=2 + TALK_S, second_call_s=2 + TALK_S)
    files = files_by_leg(receiver, 2)

    assert len(answered_legs(receiver)) == 2
    assert heard(live_gateway, files) == expected(sim, receiver)
    assert_linked_by(sim, path)
    assert all(len(names) == 1 for names in files.values())


def test_two_callers_back_to_back_to_one_agent_get_their_own_recordings(sim, path, live_gateway, receiver):
    first = inbound(ALICE).to_queue("800", rings=["101"]).answered_by("101").talk(TALK_S).caller_hangs_up()
    second = inbound(BOB).to_queue("800", rings=["101"]).answered_by("101").talk(TALK_S).caller_hangs_up()

    play_back_to_back(sim, first, second, first_call_s=2 + TALK_S, second_call_s=2 + TALK_S)
    files = files_by_leg(receiver, 2)

    assert heard(live_gateway, files) == expected(sim, receiver)
    assert_linked_by(sim, path)
    assert all(len(names) == 1 for names in files.values())


def test_blind_and_attended_transfers_give_each_leg_only_its_own_recordings(sim, path, live_gateway, receiver):
    blind = (inbound(ALICE).to_extension("101").answered_by("101").talk(TALK_S)
             .blind_transfer(by="101", to="103").answered_by("103").talk(TALK_S).caller_hangs_up())
    attended = (inbound(ALICE).to_extension("101").answered_by("101").talk(TALK_S)
                .attended_transfer(by="101", to="103").talk(TALK_S).caller_hangs_up())

    play_back_to_back(sim, blind, attended, first_call_s=2 + TALK_S + 2 + TALK_S,
                      second_call_s=2 + TALK_S + 3 + TALK_S)
    files = files_by_leg(receiver, 4)

    assert heard(live_gateway, files) == expected(sim, receiver)
    assert_linked_by(sim, path)
    announced = [name for names in files.values() for name in names]
    assert len(announced) == 4 and len(set(announced)) == 4


def test_leg_recorded_in_two_segments_gets_both_in_order(sim, path, live_gateway, receiver):
    paused = (inbound(ALICE).to_extension("101").answered_by("101").talk(TALK_S)
              .pauses_recording(by="101", seconds=20).talk(TALK_S).caller_hangs_up())
    callback = inbound(ALICE).to_extension("101").answered_by("101").talk(TALK_S).caller_hangs_up()

    play_back_to_back(sim, paused, callback, first_call_s=2 + TALK_S + 20 + TALK_S,
                      second_call_s=2 + TALK_S)
    files = files_by_leg(receiver, 2)

    assert heard(live_gateway, files) == expected(sim, receiver)
    assert_linked_by(sim, path)
    assert sorted(len(names) for names in files.values()) == [1, 2]
