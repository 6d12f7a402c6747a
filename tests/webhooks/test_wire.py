"""With no new settings the webhooks on the wire are byte for byte what they were.

`data/wire-baseline.json` was recorded by `python -m tests.support.wire` from the code as it was
before webhook targets existed (commit e5c5e82); every later version must send the same requests:
same method, path, query string, body and signature for the same calls.
"""
from __future__ import annotations

import json

import pytest

from tests.support.wire import BASELINE, RUNS, record


@pytest.mark.parametrize("name, webhooks", RUNS, ids=[name for name, _ in RUNS])
def test_wire_output_without_new_settings_equals_the_recorded_baseline(sim, receiver, tmp_path, name, webhooks):
    expected = json.loads(BASELINE.read_text(encoding="utf-8"))[name]

    sent = record(sim, receiver, tmp_path, webhooks)

    assert sent == expected
