"""hydra-profiler collect logs: queue-runner journals into a run (events per step)."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from profiler.commands.argtypes import add_run_out
from profiler.errors import UsageError
from profiler.hydra import facts

HELP = """\
inputs (one kind per command):
  --file PATH     a journal export or stderr log: journalctl short/short-iso/short-precise
                  text (with or without <N> priorities), journalctl -o json, or raw
                  stderr; plain, gzip, xz or zstd; several --file are read in order
  --journal       run journalctl -o json here (exact times, PIDs and priorities)
  --stdin         read standard input, e.g. from `journalctl -f -u hydra-queue-runner`

examples:
  hydra-profiler collect logs --file queue-runner.log.zst --out run1
  hydra-profiler collect logs --journal --since '2026-11-28 00:00' --out run1
  hydra-profiler collect logs --journal --follow --duration 1h --out run1
  ssh hydra journalctl -f -o json -u hydra-queue-runner | \\
      hydra-profiler collect logs --stdin --out run1
Events go to the run's log_events table, a summary per input to log_summary. Year-less
timestamps (journalctl short) take the year of the file's last change (or now), one less
if the log starts in a later month than that; --year overrides.
"""


def add_parser(what: Any) -> None:
    """Add ``collect logs`` to the ``collect`` sub-commands."""
    q = what.add_parser(
        "logs",
        help="queue-runner journal lines of either generation",
        description=__doc__,
        epilog=HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    src = q.add_mutually_exclusive_group(required=True)
    src.add_argument("--file", action="append", metavar="PATH")
    src.add_argument("--journal", action="store_true")
    src.add_argument("--stdin", action="store_true")
    q.add_argument(
        "--unit",
        action="append",
        metavar="UNIT",
        help="journal unit (repeatable; default: both generations' NixOS units, "
        "hydra-queue-runner.service (C++), hydra-queue-runner-dev.service and "
        "hydra-queue-builder-dev.service (Rust))",
    )
    q.add_argument("--since", help="with --journal: journalctl --since (e.g. '2026-11-28')")
    q.add_argument("--follow", action="store_true", help="keep reading as the log grows")
    q.add_argument("--duration", help="stop following after this long, e.g. 1h")
    q.add_argument("--year", type=int, help="year of year-less timestamps")
    q.add_argument("--strict", action="store_true", help="stop at the first malformed line")
    q.add_argument("--poll", default="0.5s", help="how often a followed file is checked (0.5s)")
    add_run_out(q)
    q.set_defaults(run=run, kind="logs")


def _check(args: argparse.Namespace) -> tuple[float | None, float]:
    from profiler.units import parse_seconds

    if (args.unit or args.since) and not args.journal:
        raise UsageError("--unit and --since go with --journal")
    if args.follow and args.file and len(args.file) > 1:
        raise UsageError("--follow takes one --file")
    if args.duration and not args.follow:
        raise UsageError("--duration goes with --follow")
    try:
        duration = parse_seconds(args.duration) if args.duration else None
        poll = parse_seconds(args.poll)
    except ValueError as exc:
        raise UsageError(f"{exc}") from None
    if poll <= 0:
        raise UsageError("--poll must be positive")
    return duration, poll


def run(args: argparse.Namespace) -> int:
    from profiler.collect.control import install_signal_handlers
    from profiler.collect.journal.collector import LogCollector
    from profiler.store import Run, compact, redact

    duration, poll = _check(args)
    run_dir = Run.open(args.out, command=redact(" ".join(sys.argv)))

    def log(message: str) -> None:
        print(redact(message), file=sys.stderr, flush=True)

    collector = LogCollector(
        run_dir,
        strict=args.strict,
        year=args.year,
        poll_seconds=poll,
        duration_seconds=duration,
        log=log,
    )
    install_signal_handlers(collector.stop)
    try:
        if args.file:
            for path in args.file:
                collector.collect_file(path, follow=args.follow)
                if collector.stop.is_set():
                    break
        elif args.journal:
            units = args.unit or [u for gen in facts.GENERATIONS for u in facts.UNITS[gen]]
            collector.collect_journal(units, since=args.since, follow=args.follow)
        else:
            collector.collect_stream(sys.stdin.buffer, "stdin")
    finally:
        run_dir.close()
    compact(args.out)
    log(
        f"collect logs: {collector.events_written} events from {len(collector.inputs)} "
        f"input(s), {collector.errors} error(s); run {args.out}"
    )
    return 1 if collector.errors and not collector.events_written else 0
