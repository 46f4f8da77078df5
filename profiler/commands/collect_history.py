"""hydra-profiler collect history: a queue runner's past metrics from Prometheus into a run.

The runner's raw series (both generations' family names) are read with range queries
(GET /api/v1/query_range) in bounded chunks and stored as the rows live `collect metrics`
writes, so that analyze and report work on weeks of a farm's history. Without access to
the API, Prometheus' storage does: a TSDB snapshot or data directory (--tsdb, read with
`promtool tsdb dump`), or the text that command printed (--promtool-dump).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from typing import Any

from profiler.commands.argtypes import add_generation, add_run_out, add_timeout, parse_time, seconds
from profiler.errors import UsageError

HELP = """\
The query selects every hydraqueuerunner_* series, hydra_queue_runner_running and the Rust
runner's process_* families (of targets that also export a queue-runner family); --match adds
label matchers, e.g. --match 'job="hydra"'. Each evaluation time (every --step) becomes one
sample of each scraped target, its source the URL Prometheus scraped. A range query returns
at most 11,000 points per series: --chunk is capped below that.

With --tsdb or --promtool-dump every scraped point is imported at its scrape time (--step
then only sets the chunks' grid), and the sources are named job/instance: the storage keeps
neither metric types nor scrape URLs. --tsdb needs promtool (Debian: prometheus) and reads
a directory with blocks or a wal/ (a snapshot from POST /api/v1/admin/tsdb/snapshot, or
the server's --storage.tsdb.path). For a dump file, run on the Prometheus host:
  promtool tsdb dump --min-time=<ms> --match='{__name__=~"hydraqueuerunner_.*"}' DIR > dump.txt
(dump the runner targets' process_* series too, or leave --match out).

Progress is one line per chunk on stderr. Ctrl-C (or SIGTERM) stops after the current
evaluation time; what was written stays, and running the same command again with the same
--out continues after the last time imported.

examples:
  hydra-profiler collect history --prometheus http://prometheus:9090 --since 7d --out week
  hydra-profiler collect history --prometheus http://prometheus:9090 --since 2026-11-01 \\
      --until 2026-11-08 --step 1m --match 'job="hydra-queue-runner"' --out november
  hydra-profiler collect history --tsdb /var/lib/prometheus2/snapshots/20261101T000000Z-1a2b \\
      --since 2026-11-01 --until 2026-11-08 --out november
  hydra-profiler collect history --promtool-dump dump.txt --since 7d --out week
"""


def add_parser(what: Any) -> None:
    p = what.add_parser(
        "history",
        help="a runner's past metrics from a Prometheus server (query_range)",
        description=__doc__,
        epilog=HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    source = p.add_mutually_exclusive_group(required=True)
    source.add_argument("--prometheus", metavar="URL", help="the Prometheus server")
    source.add_argument(
        "--tsdb", metavar="DIR", help="a Prometheus TSDB snapshot or data directory (promtool)"
    )
    source.add_argument(
        "--promtool-dump", metavar="FILE", help="what `promtool tsdb dump` printed, in a file"
    )
    p.add_argument("--since", required=True, help="start: a duration back (7d), ISO time, epoch")
    p.add_argument("--until", help="end (default: now)")
    p.add_argument(
        "--step", type=seconds("--step"), default="30s", help="time between samples (30s)"
    )
    p.add_argument(
        "--chunk", type=seconds("--chunk"), default="6h", help="time span per range query (6h)"
    )
    p.add_argument("--match", default="", metavar="MATCHERS", help="extra label matchers")
    add_timeout(p, help="total time one API request may take (60s)")
    p.set_defaults(timeout=60.0)
    add_generation(p, help="force the generation (default: detect at each time)")
    add_run_out(p)
    p.set_defaults(run=run)


def _options(args: argparse.Namespace) -> Any:
    from profiler.collect.history.importer import HistoryOptions

    now = time.time()
    since = parse_time(args.since, now)
    until = parse_time(args.until, now, "--until") if args.until else now
    if until < since:
        raise UsageError("--until: before --since")
    return HistoryOptions(
        since=since,
        until=until,
        step_seconds=args.step,
        chunk_seconds=max(args.chunk, args.step),
        matchers=args.match,
        generation=args.generation,
    )


def _source(args: argparse.Namespace, options: Any) -> Any:
    """The series source the arguments name (a UsageError before any work if unusable)."""
    from profiler.collect.history.api import Prometheus
    from profiler.collect.history.promtool import DumpFile, TsdbDump

    if args.tsdb:
        return TsdbDump(args.tsdb, timeout_seconds=args.timeout)
    if args.promtool_dump:
        if not os.path.isfile(args.promtool_dump):
            raise UsageError(f"--promtool-dump {args.promtool_dump}: no such file")
        return DumpFile(args.promtool_dump, (options.since, options.until + options.step_seconds))
    return Prometheus(args.prometheus, args.timeout)


def run(args: argparse.Namespace) -> int:
    from profiler.collect.control import install_signal_handlers
    from profiler.collect.history.importer import Importer, utc
    from profiler.errors import CollectorError
    from profiler.store import Run, compact, redact, redact_argv

    options = _options(args)

    def log(message: str) -> None:
        print(redact(message), file=sys.stderr, flush=True)

    series = _source(args, options)
    run_dir = Run.open(args.out, command=redact_argv(sys.argv))
    index = run_dir.add_source("history", series.base, args.generation)
    importer = Importer(run_dir, series, options, log)
    install_signal_handlers(importer.stop)
    every = (
        f"every {options.step_seconds:g} s"
        if args.prometheus
        else f"every scraped point (chunks on a {options.step_seconds:g} s grid)"
    )
    log(
        f"collect history: {utc(options.since)} .. {utc(options.until)} {every} from "
        f"{importer.name} into {args.out} (Ctrl-C to stop)"
    )
    failed = False
    try:
        importer.import_all()
    except CollectorError as exc:
        failed = not importer.stop.is_set()
        log(f"collect history: {exc}" if failed else "collect history: stopped")
    finally:
        run_dir.end_source(index)
        run_dir.close()
    compact(args.out)
    log(
        f"collect history: {importer.samples_written} samples in {importer.chunks_done} "
        f"chunk(s); run {args.out}"
    )
    return 1 if failed else 0
