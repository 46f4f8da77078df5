"""hydra-profiler collect db: Hydra's finished steps and builds, and live step phases, read-only.

Exports BuildSteps/Builds rows incrementally into the run's db_steps and db_builds tables
(resuming from the run's own cursor when restarted), and reconstructs per-step phase
timelines (busy 1, 10, 20, 30, 35, 40, 50), which Hydra never stores, into db_phases by
polling the busy steps and listening to the runner's notifications.
"""

from __future__ import annotations

import argparse
import sys
import time
from typing import Any

from profiler.commands.argtypes import (
    add_duration_or_once,
    add_generation,
    add_interval,
    add_run_out,
    add_timeout,
    parse_time,
    positive_int,
    seconds,
)

HELP = """\
Everything runs in read-only transactions with a statement timeout (the history stream's own
transaction has none; Ctrl-C cancels it), on Hydra's own indexes.
A lost connection, a server restart or a timeout is reported in one line (and as an `error`
event in the run); the collector reconnects with backoff and resumes: nothing lost, nothing
duplicated. Run it again with the same --out to continue where it stopped.

time semantics (stored with every row): C++ runner: stop - start is the build only and
overhead is the copy time in ms; Rust runner: stop - start is the whole step and overhead is
the builder's import + upload time. --generation sets it; otherwise it is detected from the
step machines (ssh://... = C++, bare host names = Rust) and the SystemStatus row (C++ only).

history (--since reaching further back than --backfill-after, 6h): the first pass streams
the steps in one read-only snapshot through a server-side cursor, in stopTime order (Hydra's
IndexBuildStepsOnStopTime), into Parquet parts of --batch-rows rows, each build with its last
step, with a progress line every 2 s (rows/s, stopTime reached, ETA from the planner's
estimate). A lost connection resumes it after the last whole part (reconnecting as above);
Ctrl-C or SIGTERM stop it there: run it again with the same --out and it resumes, nothing
lost or written twice. Then the incremental export goes on from where the history ended
(--once: one pass, then exit).

examples:
  hydra-profiler collect db --pg 'postgresql:///hydra?host=/run/postgresql' --out run1
  hydra-profiler collect db --pg 'host=db user=hydra dbname=hydra' --since 2h --once \\
      --out run1                                  # export the last two hours, then exit
  hydra-profiler collect db --pg "$DSN" --since 5y --once --out history
                                                  # years of steps and builds, then exit
  hydra-profiler collect db --pg "$DSN" --since 2020-01-01 --out run1
                                                  # the history, then follow live
  hydra-profiler collect db --pg "$DSN" --interval 500ms --duration 1h --out run1
  hydra-profiler collect db --pg "$DSN" --no-track --export-every 5m --out run1
Stop with Ctrl-C (or SIGTERM): a last export pass runs (unless the history is still being
streamed), and the run stays readable.
"""


def add_parser(what: argparse._SubParsersAction) -> None:
    """Add ``db`` to ``collect``'s sub-commands."""
    q = what.add_parser(
        "db",
        help="Hydra's PostgreSQL: finished steps and builds, live step phases",
        description=__doc__,
        epilog=HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    q.add_argument("--pg", required=True, metavar="DSN", help="Hydra's database (libpq DSN/URL)")
    add_run_out(q)
    q.add_argument(
        "--since",
        metavar="TIME",
        help="export steps whose stopTime is at or after TIME: epoch seconds, ISO 8601 "
        "(UTC unless it has an offset) or a duration ago like 2h, 30d, 5y (365 days) "
        "(default: now; ignored when the run already has a cursor)",
    )
    add_interval(q, default="1s", help="phase-tracker poll interval (1s)")
    q.add_argument(
        "--export-every",
        type=seconds("--export-every"),
        default="30s",
        help="time between export passes (30s)",
    )
    q.add_argument(
        "--overlap",
        type=seconds("--overlap", positive=False),
        default="1h",
        help="re-read window below the cursor, for steps committed late with an older "
        "stopTime (C++: after their outputs were copied) (1h)",
    )
    q.add_argument(
        "--backfill-after",
        type=seconds("--backfill-after"),
        default="6h",
        help="a pass reaching further back than this streams the history (6h)",
    )
    q.add_argument(
        "--batch-rows",
        type=positive_int(10_000_000),
        default=50_000,
        help="steps per Parquet part when streaming the history (50000)",
    )
    add_duration_or_once(q, once_help="one export pass (no phase tracking), then exit")
    add_timeout(q, help="connect and statement timeout (10s)")
    q.add_argument("--no-track", action="store_true", help="export only: no phase tracking")
    add_generation(q, help="the runner generation that wrote the rows (default: detect)")
    q.set_defaults(run=run, kind="db")


def options_from(args: argparse.Namespace) -> Any:
    """The :class:`~profiler.collect.database.common.DbOptions` of parsed arguments."""
    from profiler.collect.database.common import DbOptions

    return DbOptions(
        interval_seconds=args.interval,
        export_every_seconds=args.export_every,
        duration_seconds=args.duration,
        once=args.once,
        track=not args.no_track and not args.once,
        timeout_seconds=args.timeout,
        since=parse_time(args.since, time.time()) if args.since else None,
        overlap_seconds=args.overlap,
        generation=args.generation,
        backfill_after_seconds=args.backfill_after,
        backfill_rows=args.batch_rows,
    )


def run(args: argparse.Namespace) -> int:
    from profiler.collect.control import install_signal_handlers
    from profiler.collect.database.collector import DbCollector
    from profiler.store import Run, compact, redact

    options = options_from(args)
    run_dir = Run.open(args.out, command=redact(" ".join(sys.argv)))

    def log(message: str) -> None:
        print(redact(message), file=sys.stderr, flush=True)

    try:
        collector = DbCollector(run_dir, args.pg, options, log=log)
    except BaseException:
        run_dir.close()
        raise
    install_signal_handlers(collector.stop)
    state = collector.exporter.state
    start = f"resuming after stopTime {state.cursor}" if state.resumed else f"since {state.since}"
    if state.resumed and options.since is not None:
        log("collect db: --since ignored: the run has a cursor, the export resumes from it")
    track = "" if collector.tracker is None else f"; phases every {options.interval_seconds:g} s"
    every = "once" if options.once else f"every {options.export_every_seconds:g} s"
    log(
        f"collect db: {collector.target}: steps {start}, {every}{track}, into {args.out}"
        f"{'' if options.once else ' (Ctrl-C to stop)'}"
    )
    try:
        collector.run_loop()
    finally:
        run_dir.close()
    compacted = compact(args.out)
    if any(compacted.values()):
        log(f"collect db: compacted {sum(compacted.values())} records to Parquet")
    ex, tr = collector.exporter, collector.tracker
    phases = "" if tr is None else f", {tr.phases_written} phase intervals"
    log(
        f"collect db: {ex.steps_written} steps, {ex.builds_written} builds{phases}, "
        f"{collector.errors} error(s); run {args.out}"
    )
    return 1 if ex.passes == 0 and collector.errors else 0
