"""The webhook benchmark's child processes: the receiver and the simulator stamp on the benchmark's clock."""
from __future__ import annotations

import os
import time

import pytest
import requests

from bench.common import place
from bench.processes import ReceiverProcess, SimProcess, SimResults, check_shared_clock
from tests.support.wait import wait_until


@pytest.mark.parametrize("theirs, is_shared", [
    (1.5, True),
    (1.0, True),
    (0.5, False),
    (2.5, False),
], ids=["inside the round trip", "at its start", "before it", "after it"])
def test_shared_clock_check_stops_on_a_reading_outside_the_round_trip(theirs, is_shared):
    if is_shared:
        check_shared_clock("child", 1.0, theirs, 2.0)
    else:
        with pytest.raises(SystemExit, match="not one clock"):
            check_shared_clock("child", 1.0, theirs, 2.0)


@pytest.mark.parametrize("since, first", [
    (0.5, 1.0),
    (1.5, 2.0),
    (2.5, 3.0),
    (3.5, None),
], ids=["its own read first", "the list read first", "its own read after the list's", "no read after"])
def test_first_read_of_a_participant_is_alone_or_in_its_dns_list(since, first):
    results = SimResults(emitted={}, participant_of={}, reads={("100", 7): [1.0, 3.0], ("100", 8): [1.6]},
                         list_reads={"100": [2.0], "101": [1.2]}, peak_calls=0)

    assert results.first_read("100", 7, since) == first


def test_receiver_process_stamps_arrivals_between_send_and_answer():
    receiver = ReceiverProcess()
    try:
        sent = time.perf_counter()
        requests.get(receiver.url, params={"event": "probe", "tag": "p1"}, timeout=10).raise_for_status()
        answered = time.perf_counter()

        arrivals = wait_until(receiver.collect)
    finally:
        receiver.stop()

    assert [a.params for a in arrivals] == [{"event": "probe", "tag": "p1"}]
    assert sent <= arrivals[0].at <= answered
    assert not receiver.process.is_alive()


def test_simulator_process_plays_a_phase_and_hands_back_each_calls_events():
    sim = SimProcess(time_scale=20.0)

    def is_in_history(call_ids: list[int]) -> bool:
        sim.progress()
        return set(sim.history.values()) == set(call_ids)

    try:
        began = time.perf_counter()
        sim.play(2, 100.0, did="+420233000111", extensions=["100", "101"], ring_sim_s=1.0, talk_sim_s=1.0)

        progress = wait_until(lambda: (p := sim.progress()).is_done and p)
        wait_until(lambda: is_in_history(progress.call_ids))
        results = sim.results(progress.call_ids)
        ended = time.perf_counter()
    finally:
        sim.stop()

    legs = list(zip(progress.call_ids, ["100", "101"], strict=True))
    assert progress.started == 2 and progress.failed == 0
    assert set(results.emitted) == {(*leg, kind) for leg in legs for kind in ("ringing", "start", "end")}
    assert all(began <= at <= ended for at in results.emitted.values())
    assert set(results.participant_of) == set(legs)


@pytest.mark.skipif(len(os.sched_getaffinity(0)) < 2, reason="needs 2 cores to move a process between them")
def test_place_moves_every_thread_of_a_process_and_the_threads_it_starts_later():
    cpus = sorted(os.sched_getaffinity(0))
    receiver = ReceiverProcess()
    try:
        place([receiver.pid], {cpus[-1]})

        tids = [int(tid) for tid in os.listdir(f"/proc/{receiver.pid}/task")]
        assert len(tids) > 1 and all(os.sched_getaffinity(tid) == {cpus[-1]} for tid in tids)
        # A kept connection holds a thread of the receiver started after the placement: it inherits it.
        with requests.Session() as session:
            session.get(receiver.url + "?event=probe", timeout=5)
            started = [int(tid) for tid in os.listdir(f"/proc/{receiver.pid}/task") if int(tid) not in tids]
            assert started and all(os.sched_getaffinity(tid) == {cpus[-1]} for tid in started)

        place([receiver.pid], set(cpus))

        assert all(os.sched_getaffinity(int(tid)) == set(cpus) for tid in os.listdir(f"/proc/{receiver.pid}/task"))
    finally:
        receiver.stop()
