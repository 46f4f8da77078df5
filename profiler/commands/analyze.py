"""hydra-profiler analyze: attribute step time, name the bottleneck, project a change."""

from __future__ import annotations

import argparse
import json
import math
import sys
from typing import Any

from profiler.commands.argtypes import add_generation, codec_spec, integer, when
from profiler.errors import UsageError
from profiler.units import to_jsonable

HELP = """\
RUN is a run directory written by `collect` (any mix of status, metrics, logs, db; status
and metrics alone give a farm-level answer from the gauges). The copy phase Hydra records
(receive + compress + write + upload; the Rust builder's upload) is split with a codec
profile: from --profiles (a `hydra-profiler bench` result on your NARs), else calibrated
here on a sample of --cache's NARs, else on the built-in corpus (cached per machine and
sample); those shares are marked estimated.

Two answers, then the headline: throughput (is the farm saturated: did steps wait for a
machine with every usable slot taken, and what held the slots) and latency (what adds most
to step wall time besides the build). The headline is what held the slots when saturated,
else the largest latency cause (or idle); a close runner-up is named with the data that
would settle it. Shares the run cannot observe are marked partial, never shown as 0%.

what-if (--whatif, repeatable; one change each, compared with a replay of the run):
  codec=zstd:19        compression time and size from the codec profiles
  compress=0.8         compression 20% faster (x0.8 time; Coz-style virtual speed-up)
  workers=8            local worker slots (C++ max_local_worker_threads)
  machines=+2          machines added (or =4 for exactly four; same slots each)
  upload=100MB/s       upload bandwidth (bytes or bits with b, e.g. 1Gbit/s)

history (--since/--until, --engine): a run of any size is analysed over its Parquet by an
embedded engine (DuckDB) with bounded memory: --engine history, or by default (auto) when
the run holds more than 2,000,000 BuildSteps rows (e.g. `collect db --since 5y`). It reads
BuildSteps and Builds only; the totals, shares, percentiles, breakdowns and the verdict equal
the in-memory engine's on the same steps; what-ifs (a replay of every step) are not made.
--since/--until select the steps that stopped in the window (both engines).

examples:
  hydra-profiler analyze run1
  hydra-profiler analyze history --since 2025-01-01 --until 2025-07-01 --window 1d
  hydra-profiler analyze run1 --profiles bench-results --whatif codec=zstd:19
  hydra-profiler analyze run1 --format json | jq .verdict
"""


def add_parser(sub: Any) -> None:
    p = sub.add_parser(
        "analyze",
        help="attribute step time, name the bottleneck, project a change",
        description=__doc__,
        epilog=HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("run_dir", metavar="RUN")
    p.add_argument("--profiles", metavar="BENCH_DIR", help="a hydra-profiler bench result")
    p.add_argument("--codec", type=codec_spec, help=CODEC_HELP)
    add_cache_argument(p)
    add_farm_arguments(p)
    p.add_argument("--whatif", action="append", default=[], metavar="SPEC")
    p.add_argument("--window", default="1h", help="time window of the over-time table (1h)")
    p.add_argument("--format", choices=("table", "json"), default="table")
    add_history_arguments(p)
    p.set_defaults(run=run)


def add_history_arguments(p: argparse.ArgumentParser) -> None:
    """The window and the engine, for `analyze` and `report`."""
    p.add_argument(
        "--since", type=when("--since"), metavar="TIME",
        help="only steps that stopped at or after TIME: epoch seconds, ISO 8601 (UTC unless "
        "it has an offset) or a duration ago like 30d",
    )  # fmt: skip
    p.add_argument(
        "--until", type=when("--until"), metavar="TIME", help="and before TIME (same forms)"
    )
    p.add_argument(
        "--engine", choices=ENGINE_CHOICES, default="auto",
        help="memory, history (out of core, DuckDB), or auto: history above 2,000,000 "
        "BuildSteps rows",
    )  # fmt: skip
    p.add_argument(
        "--scheduler", metavar="ADDRESS",
        help="run the history engine's per-step work on this Dask scheduler's workers "
        "(tcp://host:8786; they must see RUN at the same path)",
    )  # fmt: skip
    p.add_argument(
        "--local-cluster", type=integer(1, 1024), metavar="N",
        help="... or on a Dask LocalCluster of N worker processes on this machine",
    )  # fmt: skip
    p.add_argument(
        "--memory-limit", default="2GB", metavar="BYTES",
        help="the history engine's memory limit (DuckDB spills beyond it to disk; 2GB)",
    )  # fmt: skip


ENGINE_CHOICES = ("auto", "memory", "history")


CODEC_HELP = (
    "the codec the farm used, short (xz:6) or its store URI query; default: from the "
    "journal's evidence, else xz at its default level (both generations' default)"
)


def add_cache_argument(p: argparse.ArgumentParser) -> None:
    """``--cache DIR``: the farm's binary cache, for ``analyze`` and ``report``."""
    p.add_argument(
        "--cache",
        metavar="DIR",
        help="the farm's binary cache directory: its narinfos' Compression: is evidence, "
        "and codecs are calibrated on a sample of its NARs (not the built-in corpus)",
    )


def add_farm_arguments(p: argparse.ArgumentParser) -> None:
    """What the operator knows of the farm better than the data, for `analyze` and `report`."""
    add_generation(p, help="force the semantics")
    p.add_argument(
        "--slots", type=integer(1, 100_000), help="build slots per machine (default: observed)"
    )
    p.add_argument(
        "--local-workers",
        type=integer(1, 100_000),
        metavar="N",
        help="C++ max_local_worker_threads (default: inferred where steps waited for one)",
    )
    p.add_argument(
        "--runner-cores",
        type=integer(1, 100_000),
        metavar="N",
        help="CPU cores of the C++ runner's host (default: this machine's)",
    )


HISTORY_NO_WHATIF = (
    "a what-if replays every step in memory; the history engine keeps them on disk: "
    "narrow the window (--since/--until) and use --engine memory"
)


def _progress(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def run(args: argparse.Namespace) -> int:
    from profiler.units import parse_seconds

    try:
        window = parse_seconds(args.window)
    except ValueError as exc:
        raise UsageError(f"--window: {exc}") from None
    if not (math.isfinite(window) and window > 0):
        raise UsageError(f"--window must be a positive duration, got {args.window!r}")
    from profiler.analyze import whatif as wi

    changes = [wi.parse_change(text) for text in args.whatif]
    if args.codec is not None:
        from profiler.bench.profiles import canonical

        canonical(args.codec)  # a bad spec fails before the run is read
    from profiler.analyze.history import Window
    from profiler.scenarios.analysis import analyze_run

    if args.since is not None and args.until is not None and args.until <= args.since:
        raise UsageError("--until must be after --since")
    selected = None
    if args.since is not None or args.until is not None:
        selected = Window(args.since, args.until)
    a = analyze_run(
        args.run_dir,
        bench_dir=args.profiles,
        codec=args.codec,
        cache_dir=args.cache,
        generation=args.generation,
        slots=args.slots,
        window_seconds=window,
        local_workers=args.local_workers,
        runner_cores=args.runner_cores,
        window=selected,
        engine=args.engine,
        memory_limit=args.memory_limit,
        progress=_progress,
        scheduler=args.scheduler,
        local_cluster=args.local_cluster,
    )
    results: list[wi.Projection] = []
    if a.engine == "history":
        failed = [(c.label, HISTORY_NO_WHATIF) for c in changes]
    else:
        results, failed = wi.project_all(a, changes, slots=args.slots)
    if args.format == "json":
        doc = a.as_dict()
        doc["whatif"] = [w.as_dict() for w in results] + [
            {"change": label, "error": reason} for label, reason in failed
        ]
        json.dump(to_jsonable(doc), sys.stdout, indent=2, allow_nan=False)
        print()
    else:
        from profiler.report import terminal

        sys.stdout.write(terminal.render(a, results, failed))
    return 0
