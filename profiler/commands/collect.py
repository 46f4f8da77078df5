"""hydra-profiler collect status|metrics|logs: a queue runner's data into a run directory."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from profiler.commands import collect_cpu, collect_db, collect_history, collect_logs
from profiler.commands.argtypes import (
    add_duration_or_once,
    add_generation,
    add_interval,
    add_run_out,
    add_timeout,
)
from profiler.errors import UsageError

# beyond these, waits and socket timeouts overflow (and nobody means them)
_LONGEST_INTERVAL = (3650 * 86400.0, "3650 days")  # --interval and --duration
_LONGEST_TIMEOUT = (86400.0, "1 day")

HELP = """\
sources (give one or more; they are sampled together each interval):
  --url URL          C++ /queue-runner-status (Accept: application/json) or Rust /status;
                     for `collect metrics`, a /metrics URL
  --command CMD      a command printing the status JSON, e.g. 'hydra-queue-runner --status'
                     or 'ssh hydra hydra-queue-runner --status'
  --pg DSN           the C++ runner's SystemStatus row (read-only transaction)
  --file PATH        a file (re-read each time), a directory of captured snapshots, or a
                     journal excerpt with old `status: {...}` lines (file:// URLs too)

examples:
  hydra-profiler collect status --url https://hydra.example.org/queue-runner-status \\
      --interval 30s --duration 1h --out run1
  hydra-profiler collect metrics --url http://[::1]:8080/metrics --interval 10s --out run1
  hydra-profiler collect status --pg 'postgresql:///hydra?host=/run/postgresql' --once \\
      --out run1
  hydra-profiler collect status --file captured/ --out run1     # import snapshots
Several collectors can write into the same RUN. Stop with Ctrl-C (or SIGTERM): what was
collected is kept and the run stays readable.
"""


def add_parser(sub: Any) -> None:
    p = sub.add_parser(
        "collect",
        help="collect queue-runner status, metrics, logs, database rows or CPU samples into a run",
        description=__doc__,
        epilog=HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    what = p.add_subparsers(dest="what", metavar="WHAT", parser_class=type(p))
    what.required = True
    for name, text in (
        ("status", "status JSON of either generation"),
        ("metrics", "Prometheus /metrics of either generation"),
    ):
        q = what.add_parser(
            name,
            help=text,
            description=__doc__,
            epilog=HELP,
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
        q.add_argument("--url", action="append", default=[])
        q.add_argument("--file", action="append", default=[])
        if name == "status":
            q.add_argument("--command", action="append", default=[])
            q.add_argument("--pg", action="append", default=[], metavar="DSN")
        add_run_out(q)
        add_interval(q, default="30s", help="time between samples (30s)", longest=_LONGEST_INTERVAL)
        add_duration_or_once(
            q,
            once_help="take one sample and stop",
            longest=_LONGEST_INTERVAL,
            hint=" (or use --once)",
        )
        add_timeout(
            q,
            help="total time a request may take, however slowly the server answers (10s)",
            longest=_LONGEST_TIMEOUT,
        )
        q.add_argument(
            "--header",
            action="append",
            default=[],
            metavar="'NAME: VALUE'",
            help="an HTTP header sent to every --url, e.g. 'Authorization: Bearer TOKEN' "
            "(stored redacted); user:password@ in a URL is sent as basic authentication",
        )
        add_generation(q, help="force the generation (default: detect from each document)")
        q.set_defaults(run=run, kind=name)
    collect_logs.add_parser(what)
    collect_db.add_parser(what)
    collect_cpu.add_parser(what)
    collect_history.add_parser(what)


def build_sources(args: argparse.Namespace, timeout: float) -> list[Any]:
    from profiler.collect.status import sources as src
    from profiler.collect.status.transfer import parse_header

    headers = dict(parse_header(h) for h in args.header)
    out: list[Any] = [
        src.HttpSource(u, kind=args.kind, timeout_seconds=timeout, headers=headers)
        for u in args.url
    ]
    out += [src.FileSource(f, kind=args.kind) for f in args.file]
    if args.kind == "status":
        out += [src.CommandSource(c, timeout_seconds=timeout) for c in args.command]
        out += [src.PgSource(d, timeout_seconds=timeout) for d in args.pg]
    if not out:
        raise UsageError(
            f"collect {args.kind}: give at least one source (--url, --file"
            f"{', --command, --pg' if args.kind == 'status' else ''})"
        )
    if headers and not args.url:
        raise UsageError("--header: only --url sources send headers")
    return out


def run(args: argparse.Namespace) -> int:
    from profiler.collect.control import install_signal_handlers
    from profiler.collect.status.collector import Collector, CollectorOptions
    from profiler.store import Run, compact, redact, redact_argv

    interval, duration = args.interval, args.duration  # seconds, checked by argparse
    sources = build_sources(args, args.timeout)
    run_dir = Run.open(args.out, command=redact_argv(sys.argv))

    def log(message: str) -> None:
        print(redact(message), file=sys.stderr, flush=True)

    collector = Collector(
        run_dir,
        sources,
        CollectorOptions(
            interval_seconds=interval,
            duration_seconds=duration,
            once=args.once,
            generation=args.generation,
        ),
        log=log,
    )
    install_signal_handlers(collector.stop)
    log(
        f"collect {args.kind}: {len(sources)} source(s) every {interval:g} s into {args.out}"
        f"{'' if args.once else ' (Ctrl-C to stop)'}"
    )
    try:
        collector.run_loop()
    finally:
        run_dir.close()
    compacted = compact(args.out)  # segments of live writers are left for later
    if any(compacted.values()):
        log(f"collect {args.kind}: compacted {sum(compacted.values())} records to Parquet")
    log(
        f"collect {args.kind}: {collector.samples_written} samples, {collector.errors} "
        f"error(s); run {args.out}"
    )
    return 1 if collector.samples_written == 0 and collector.errors else 0
