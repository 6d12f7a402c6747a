"""`3cx-gateway capture`, `replay` and the doctor's reading checks, over records.py, replay.py and sources.py."""
from __future__ import annotations

import logging
import sys
from collections import Counter
from pathlib import Path
from typing import Iterable, Iterator, TextIO

from gateway.capture.control import NoService, ServiceUnreachable, ask
from gateway.capture.records import CaptureFormatError, Pseudonyms, Record, read_records, write_line
from gateway.capture.replay import Replayed, replay
from gateway.capture.sources import capture_direct
from gateway.config import Config
from gateway.live.unknowns import KINDS, Unknown

logger = logging.getLogger(__name__)

ASK_MARGIN_S = 30.0


def records_from_pbx(config: Config, seconds: float, out: TextIO) -> Iterator[Record]:
    """Capture records: from the running service when there is one, else from the PBX directly.

    Raises ServiceUnreachable when a service seems to run but cannot be asked: connecting directly
    would revoke its token (v20 keeps one per API client).
    """
    try:
        source = ask(config.storage.state_dir, {"op": "capture", "seconds": seconds},
                     timeout_s=seconds + ASK_MARGIN_S)
        first = next(source)
    except NoService:
        print("no running service found: connecting to the PBX directly (read-only)", file=out)
        yield from capture_direct(config, seconds)
        return
    except StopIteration:
        return
    print("the running service records (no second connection to the PBX)", file=out)
    yield first
    yield from source


def run_capture(config: Config, seconds: float, out_path: str, *, anonymize: bool = True,
                out: TextIO | None = None) -> int:
    """Record `seconds` of traffic to `out_path`, then say what the gateway did not understand."""
    out = out or sys.stdout
    pseudonyms = Pseudonyms() if anonymize else None
    counts: Counter[str] = Counter()
    written: list[Record] = []
    try:
        with open(out_path, "w", encoding="utf-8") as file:
            for record in records_from_pbx(config, seconds, out):
                if record.get("type") == "capture":
                    record = {**record, "anonymized": anonymize}
                if pseudonyms is not None:
                    record = pseudonyms.record(record)
                write_line(file, record, config.secrets())
                counts[str(record.get("type"))] += 1
                written.append(record)
    except ServiceUnreachable as exc:
        print(f"capture: {exc}", file=out)
        return 1
    except OSError as exc:
        print(f"capture: cannot write {out_path}: {exc.strerror or exc}", file=out)
        return 1
    what = ", ".join(f"{counts[k]} {k}" for k in ("message", "read", "webhook") if counts[k])
    print(f"capture: {sum(counts.values())} records ({what or 'no traffic'}) written to {out_path}"
          + ("; numbers and names pseudonymised" if anonymize else "; numbers and names kept"), file=out)
    result = replay(written)
    print_report(result, out)
    return 0


def print_report(result: Replayed, out: TextIO) -> None:
    """What the gateway did not understand, and whether replaying gives the recorded webhooks."""
    lines = unknown_lines(result.unknowns.items())
    if lines:
        print("not understood:", file=out)
        for line in lines:
            print(f"  {line}", file=out)
    else:
        print("not understood: nothing (every status, type name and field was known)", file=out)
    compared = result.compared(result.recorded)
    if compared:
        verdict = "agrees with" if not result.difference() else "differs from (see replay --check)"
        skipped = f"; {len(result.calls_before)} calls in progress at the start not compared" \
            if result.calls_before else ""
        print(f"replay: {verdict} the {len(compared)} webhooks recorded{skipped}", file=out)


def unknown_lines(unknowns: Iterable[Unknown]) -> list[str]:
    order = list(KINDS)
    return [u.describe() for u in sorted(unknowns, key=lambda u: order.index(u.kind) if u.kind in order else 99)]


def run_replay(path: str, *, check: bool = False, out: TextIO | None = None) -> int:
    """Print the webhooks the capture gives now (one JSON object per line), or compare with the recorded."""
    out = out or sys.stdout
    try:
        records = read_records(path)
    except CaptureFormatError as exc:
        print(f"replay: {exc}", file=out)
        return 2
    quiet = logging.getLogger("gateway")
    level = quiet.level
    quiet.setLevel(logging.ERROR)   # the report below names what is not understood, once
    try:
        result = replay(records)
    finally:
        quiet.setLevel(level)
    for line in unknown_lines(result.unknowns.items()):
        print(f"not understood: {line}", file=sys.stderr)
    if not check:
        for webhook in result.webhooks:
            print(webhook.line(), file=out)
        return 0
    difference = result.difference()
    skipped = f" ({len(result.calls_before)} calls already in progress at the start not compared)" \
        if result.calls_before else ""
    if difference:
        print("\n".join(difference), file=out)
        print(f"replay --check: the webhooks differ from those recorded{skipped}", file=out)
        return 1
    print(f"replay --check: {len(result.compared(result.webhooks))} webhooks, same as recorded{skipped}", file=out)
    return 0


def service_unknowns(config: Config) -> list[Unknown] | None:
    """What the running service did not understand since it started; None when no service runs."""
    try:
        answers = list(ask(config.storage.state_dir, {"op": "unknowns"}, timeout_s=10))
    except NoService:
        return None
    items = answers[0].get("unknowns") if answers else []
    return [Unknown(**item) for item in items or []]


def watch(config: Config, minutes: float, out: TextIO) -> Replayed:
    """`minutes` of live traffic replayed in memory (from the service, or read-only directly)."""
    return replay(list(records_from_pbx(config, minutes * 60, out)))


def write_records(path: str | Path, records: Iterable[Record]) -> None:
    """Write records as a capture file (tests and tools build captures with it)."""
    with open(path, "w", encoding="utf-8") as file:
        for record in records:
            write_line(file, record)
