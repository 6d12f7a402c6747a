"""The ledger of announced recordings: one recording, one leg, across restarts."""
from __future__ import annotations

import threading

from gateway.clock import FakeClock
from gateway.recordings.ledger import RecordingLedger, ledger_path


def test_a_claimed_recording_is_refused_to_another_leg(tmp_path):
    ledger = RecordingLedger(ledger_path(tmp_path), clock=FakeClock())

    assert ledger.claim(["rec:5"], "261124100000_7-1") is True
    assert ledger.claim(["rec:5"], "261124100000_7-1") is True      # the same leg again: still its
    assert ledger.claim(["rec:5"], "261124100025_8-1") is False
    assert ledger.claimed_by(["rec:5", "rec:6"]) == {"rec:5": "261124100000_7-1"}


def test_a_claim_covers_every_name_of_the_recording(tmp_path):
    ledger = RecordingLedger(ledger_path(tmp_path), clock=FakeClock())
    ledger.claim(["rec:5", "file:/pbx/Recordings/101/a(5).wav"], "261124100000_7-1")

    assert ledger.claim(["file:/pbx/Recordings/101/a(5).wav"], "261124100025_8-1") is False


def test_claims_survive_a_restart(tmp_path):
    RecordingLedger(ledger_path(tmp_path), clock=FakeClock()).claim(["rec:5"], "261124100000_7-1")

    reopened = RecordingLedger(ledger_path(tmp_path), clock=FakeClock())

    assert reopened.claim(["rec:5"], "261124100025_8-1") is False


def test_racing_claims_for_two_legs_give_the_recording_to_one(tmp_path):
    ledger = RecordingLedger(ledger_path(tmp_path), clock=FakeClock())
    results: list[bool] = []
    start = threading.Barrier(8)

    def claim(n: int) -> None:
        start.wait()
        results.append(ledger.claim(["rec:9"], f"261124100000_{n}-1"))

    threads = [threading.Thread(target=claim, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert sorted(results) == [False] * 7 + [True]


def test_prune_forgets_only_old_claims(tmp_path):
    clock = FakeClock()
    ledger = RecordingLedger(ledger_path(tmp_path), clock=clock)
    ledger.claim(["rec:1"], "261124100000_7-1")
    clock.advance(15 * 86400)
    ledger.claim(["rec:2"], "261209100000_9-1")

    assert ledger.prune(keep_days=14) == 1
    assert ledger.claimed_by(["rec:1", "rec:2"]) == {"rec:2": "261209100000_9-1"}
