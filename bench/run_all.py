"""Run every benchmark with short defaults and print their output (`make bench`).

Each benchmark is its own process (its figures printed as they come); a failing one is reported
and the others still run. The exit status is 1 when any benchmark failed to run.

    .venv/bin/python bench/run_all.py [--only webapi,webhook,delivery,convert]
"""
from __future__ import annotations

import argparse
import logging
import subprocess
import sys
import time
from pathlib import Path

logger = logging.getLogger(__name__)

HERE = Path(__file__).resolve().parent

# name -> (script, short arguments: each run finishes within about two minutes)
BENCHMARKS = {
    "webapi": ("webapi_bench.py", ["--duration", "6", "--slices", "2", "--warmup", "1"]),
    "webhook": ("webhook_bench.py", ["--calls", "100,1000", "--rate", "50"]),
    "delivery": ("delivery_bench.py", ["--events", "2000"]),
    "convert": ("convert_bench.py", []),
    "recovery": ("recovery_bench.py", ["--calls", "20,100", "--outage", "10"]),
}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", default="", help="comma-separated subset of: " + ", ".join(BENCHMARKS))
    args = parser.parse_args()
    names = [n.strip() for n in args.only.split(",") if n.strip()] or list(BENCHMARKS)
    unknown = [n for n in names if n not in BENCHMARKS]
    if unknown:
        parser.error(f"unknown benchmark(s) {', '.join(unknown)}; choose from {', '.join(BENCHMARKS)}")

    failed = []
    for name in names:
        script, extra = BENCHMARKS[name]
        path = HERE / script
        if not path.exists():
            print(f"=== {name}: {script} is not there, skipped\n", flush=True)
            continue
        print(f"=== {name}: python bench/{script} {' '.join(extra)}", flush=True)
        began = time.monotonic()
        code = subprocess.call([sys.executable, str(path), *extra], cwd=str(HERE.parent))
        print(f"=== {name}: {'done' if code == 0 else f'FAILED (exit {code})'} in "
              f"{time.monotonic() - began:.0f} s\n", flush=True)
        if code != 0:
            failed.append(name)
    if failed:
        print(f"failed: {', '.join(failed)}")
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
