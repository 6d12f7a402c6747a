"""3cx-gateway run | simulate | check-config | demo | outbox | cleanup | doctor | capture | replay: thin argparse."""
from __future__ import annotations

import argparse
import sys
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable

from gateway import __version__
from gateway.config import Config, ConfigError, load

DEFAULT_CONFIG = "/etc/3cx-gateway/config.ini"


def _load_or_exit(path: str) -> Config:
    try:
        return load(path)
    except ConfigError as exc:
        print(f"configuration problem:\n{exc}", file=sys.stderr)
        raise SystemExit(1) from None


def cmd_run(args: argparse.Namespace) -> int:
    """Serve the WebAPI and run the watcher, webhooks and recordings (until SIGTERM)."""
    from gateway.server import serve
    serve(_load_or_exit(args.config))
    return 0


def cmd_check_config(args: argparse.Namespace) -> int:
    """Validate the config file; print every problem; exit 1 on any."""
    from gateway import config as settings
    config = _load_or_exit(args.config)
    targets = ", ".join(t.name for t in config.targets) or "none"
    print(f"{config.source}: OK (PBX {config.pbx.url}, listening on {config.webapi.listen}, "
          f"webhook targets: {targets})")
    for warning in settings.warnings(config) + _filter_warnings(config):
        print(f"warning: {warning}")
    return 0


def _filter_warnings(config: Config) -> list[str]:
    """Target filter values the PBX does not know (asked only when a target filters by number)."""
    if not any(t.extensions or t.queues or t.ringgroups or t.dids for t in config.extra_targets):
        return []
    from gateway.clock import Clock
    from gateway.doctor import target_filter_warnings
    from gateway.logs import redact
    from gateway.pbx.auth import TokenSource
    from gateway.pbx.http import new_session
    from gateway.pbx.xapi import XapiClient
    pbx = config.pbx
    with new_session(verify_tls=pbx.verify_tls, url=pbx.url) as session:
        tokens = TokenSource(session, pbx.url, pbx.client_id, pbx.client_secret, timeout_s=pbx.timeout_s,
                             clock=Clock())
        xapi = XapiClient(session, pbx.url, tokens, timeout_s=pbx.timeout_s)
        return [redact(line, config.secrets()) for line in target_filter_warnings(config, xapi)]


def cmd_simulate(args: argparse.Namespace) -> int:
    """Serve the v20 simulator (default PBX, optionally playing a scenario file)."""
    from gateway.sim.server import serve
    serve(args.host, args.port, scenario_path=args.scenario, time_scale=args.time_scale, loop=args.loop)
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    """Simulator + gateway + a printing webhook receiver, playing calls in a loop."""
    from gateway.demo import run_demo
    return run_demo(port=args.port, sim_port=args.sim_port, state_dir=args.state_dir)


def cmd_outbox(args: argparse.Namespace) -> int:
    """List failed webhooks (per target), or put them back in the queue."""
    from gateway.clock import Clock
    from gateway.webhooks.outbox import Outbox, list_lines, outbox_path, requeue_ids
    config = _load_or_exit(args.config)
    outbox = Outbox(outbox_path(config.storage.state_dir), clock=Clock())
    if args.action == "requeue":
        print(f"requeued {requeue_ids(outbox, args.ids or None, target=args.target)} webhook(s)")
        return 0
    for line in list_lines(outbox, state=args.state, limit=args.limit, target=args.target):
        print(line)
    return 0


def cmd_cleanup(args: argparse.Namespace) -> int:
    """Delete MP3 files older than [recordings] keep_days now (the nightly job, by hand)."""
    from gateway.recordings.retention import delete_expired
    config = _load_or_exit(args.config)
    removed = delete_expired(Path(config.recordings.mp3_dir), config.recordings.keep_days,
                             datetime.now(timezone.utc))
    print(f"removed {len(removed)} file(s)")
    return 0


def cmd_doctor(args: argparse.Namespace) -> int:
    """Check what makes integrations silently do nothing on v20, and say how to fix it."""
    from gateway.doctor import run_doctor
    return run_doctor(_load_or_exit(args.config), watch_minutes=args.watch)


def cmd_capture(args: argparse.Namespace) -> int:
    """Record N seconds of PBX traffic and the webhooks made from it to a JSON Lines file (for bug reports)."""
    from gateway.capture.commands import run_capture
    return run_capture(_load_or_exit(args.config), args.seconds, args.out, anonymize=not args.no_anonymize)


def cmd_replay(args: argparse.Namespace) -> int:
    """Play a capture through the live model with no PBX; print its webhooks, or --check them."""
    from gateway.capture.commands import run_replay
    return run_replay(args.file, check=args.check)


def _positive(value: str) -> float:
    number = float(value)
    if number <= 0:
        raise argparse.ArgumentTypeError(f"expected a positive number, got {value!r}")
    return number


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="3cx-gateway", description=__doc__)
    parser.add_argument("--version", action="version", version=f"3cx-gateway {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def add(name: str, handler: Callable[[argparse.Namespace], int],
            with_config: bool = True) -> argparse.ArgumentParser:
        command = sub.add_parser(name, help=handler.__doc__, description=handler.__doc__)
        if with_config:
            command.add_argument("--config", default=DEFAULT_CONFIG, help=f"config file (default {DEFAULT_CONFIG})")
        command.set_defaults(handler=handler)
        return command

    add("run", cmd_run)
    add("check-config", cmd_check_config)
    simulate = add("simulate", cmd_simulate, with_config=False)
    simulate.add_argument("--host", default="127.0.0.1")
    simulate.add_argument("--port", type=int, default=5001)
    simulate.add_argument("--scenario", help="JSON scenario file to play")
    simulate.add_argument("--loop", action="store_true", help="play the scenario again and again")
    simulate.add_argument("--time-scale", type=float, default=1.0, help="simulated seconds per real second")
    demo = add("demo", cmd_demo, with_config=False)
    demo.add_argument("--port", type=int, default=8080, help="the gateway's port")
    demo.add_argument("--sim-port", type=int, default=5001, help="the simulated PBX's port")
    demo.add_argument("--state-dir", default="./demo-state", help="where the demo keeps its state")
    outbox = add("outbox", cmd_outbox)
    outbox.add_argument("action", choices=["list", "requeue"])
    outbox.add_argument("ids", nargs="*", help="event ids to requeue (default: all failed)")
    outbox.add_argument("--limit", type=int, default=100)
    outbox.add_argument("--state", default="failed", choices=["failed", "pending", "delivered"],
                        help="which webhooks to list (default failed)")
    outbox.add_argument("--target", help="only this webhook target ('default' is [webhooks])")
    add("cleanup", cmd_cleanup)
    doctor = add("doctor", cmd_doctor)
    doctor.add_argument("--watch", type=_positive, default=0, metavar="N",
                        help="also watch N minutes of live traffic (read-only) and name what could not be read")
    capture = add("capture", cmd_capture)
    capture.add_argument("--seconds", type=_positive, required=True, metavar="N", help="how long to record")
    capture.add_argument("--out", required=True, metavar="FILE", help="the JSON Lines file to write")
    capture.add_argument("--no-anonymize", action="store_true",
                         help="keep phone numbers and names (default: pseudonymised)")
    replay = add("replay", cmd_replay, with_config=False)
    replay.add_argument("file", help="a file written by `capture`")
    replay.add_argument("--check", action="store_true",
                        help="compare with the recorded webhooks; exit 1 and print the difference")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    status: int = args.handler(args)
    return status


if __name__ == "__main__":
    raise SystemExit(main())
