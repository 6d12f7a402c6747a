"""End to end on the simulated PBX: a recorded call becomes MP3 files and FILES webhooks at the CRM."""
from __future__ import annotations

import io
import wave
from urllib.parse import urlsplit

from flask import Flask

from gateway.recordings.serve import create_recordings_blueprint
from gateway.sim.scenarios import inbound
from tests.support.wait import wait_until

CALLER = "+420774852529"


def files_webhooks(receiver, count: int) -> list:
    """Wait for `count` FILES webhooks; return them ordered by leg id."""
    found = wait_until(lambda: (hooks := [r for r in receiver.received if "FILES" in r.params])
                       and len(hooks) >= count and hooks, timeout_s=20)
    return sorted(found, key=lambda r: r.params["id"])


def end_ids(receiver, user: str) -> list[str]:
    return [r.params["id"] for r in receiver.received
            if r.params.get("event") in ("incoming", "outgoing") and r.params.get("user") == user]


def wav_seconds(sim, dn: str) -> list[float]:
    """Durations of the simulated PBX's WAVs of extension `dn`, by start time."""
    with sim.directory.lock:
        recordings = sorted((r for r in sim.directory.recordings.values() if dn in (r.from_dn, r.to_dn)),
                            key=lambda r: r.start_time)
    durations = []
    for recording in recordings:
        with wave.open(io.BytesIO(recording.wav)) as handle:
            durations.append(handle.getnframes() / handle.getframerate())
    return durations


def download(gateway, link: str) -> bytes:
    app = Flask("test")
    app.register_blueprint(create_recordings_blueprint(gateway.recordings.mp3_dir,
                                                       gateway.recordings.links, clock=gateway.clock))
    parts = urlsplit(link)
    response = app.test_client().get(f"{parts.path}?{parts.query}")
    assert response.status_code == 200
    return response.data


def test_recorded_call_gives_mp3_and_files_webhook(sim, live_gateway, receiver, probe):
    sim.play(inbound(CALLER).to_extension("101").answered_by("101").talk(5).caller_hangs_up())

    [hook] = files_webhooks(receiver, 1)

    assert hook.method == "POST" and list(hook.json) == ["FILES", "id"]
    assert end_ids(receiver, "101") == [hook.params["id"]]
    [link] = hook.params["FILES"]
    name = urlsplit(link).path.rsplit("/", 1)[1]
    assert name == f"{hook.params['id']}-1.mp3"
    mp3 = live_gateway.recordings.mp3_dir / name
    assert abs(probe(mp3)["duration_s"] - wav_seconds(sim, "101")[0]) < 0.1
    assert download(live_gateway, link) == mp3.read_bytes()


def test_blind_transfer_gives_one_files_webhook_per_leg(sim, live_gateway, receiver, probe):
    # The target rings and talks long enough (0.2 s, 0.4 s at 50x) to be read ringing, then answered.
    sim.play(inbound(CALLER).to_extension("101").answered_by("101").talk(3)
             .blind_transfer(by="101", to="103").rings(10).answered_by("103").talk(20).caller_hangs_up())

    first, second = files_webhooks(receiver, 2)

    assert [first.params["id"]] == end_ids(receiver, "101")
    assert [second.params["id"]] == end_ids(receiver, "103")
    assert first.params["id"].endswith("-1") and second.params["id"].endswith("-2")
    durations = [probe(live_gateway.recordings.mp3_dir / f"{hook.params['id']}-1.mp3")["duration_s"]
                 for hook in (first, second)]
    assert abs(durations[0] - wav_seconds(sim, "101")[0]) < 0.1
    assert abs(durations[1] - wav_seconds(sim, "103")[0]) < 0.1


def test_leg_with_two_recordings_gives_two_numbered_files(sim, live_gateway, receiver, probe):
    sim.play(inbound(CALLER).to_extension("101").answered_by("101").talk(3)
             .pauses_recording(by="101", seconds=2).talk(4).caller_hangs_up())

    [hook] = files_webhooks(receiver, 1)

    leg_id = hook.params["id"]
    assert [urlsplit(f).path for f in hook.params["FILES"]] == [
        f"/webapi/recording/{leg_id}-1.mp3", f"/webapi/recording/{leg_id}-2.mp3"]
    expected = wav_seconds(sim, "101")
    assert len(expected) == 2
    for n, seconds in enumerate(expected, start=1):
        assert abs(probe(live_gateway.recordings.mp3_dir / f"{leg_id}-{n}.mp3")["duration_s"] - seconds) < 0.1


def test_recordings_refused_with_403_is_a_health_warning(sim, live_gateway, receiver):
    sim.faults.fail(403, "/xapi/v1/Recordings", times=None)

    # Long enough (0.6 s at the tests' time scale) for the answer to be read live on a loaded machine.
    sim.play(inbound(CALLER).to_extension("101").answered_by("101").talk(30).caller_hangs_up())

    status = wait_until(lambda: (s := live_gateway.recordings.status()).is_forbidden and s, timeout_s=30)
    assert "System Owner" in status.last_error
