"""hydra-profiler analyze: attribute step time, name the bottleneck, project a change."""

from __future__ import annotations

import argparse
import json
import math
import sys
from typing import Any

from profiler.commands.argtypes import add_generation, codec_spec, integer
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

examples:
  hydra-profiler analyze run1
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
    p.add_argument(
        "--cache",
        metavar="DIR",
        help="the farm's binary cache directory: its narinfos' Compression: is evidence, "
        "and codecs are calibrated on a sample of its NARs (not the built-in corpus)",
    )
    add_farm_arguments(p)
    p.add_argument("--whatif", action="append", default=[], metavar="SPEC")
    p.add_argument("--window", default="1h", help="time window of the over-time table (1h)")
    p.add_argument("--format", choices=("table", "json"), default="table")
    p.set_defaults(run=run)


CODEC_HELP = (
    "the codec the farm used, short (xz:6) or its store URI query; default: from the "
    "journal's evidence, else xz at its default level (both generations' default)"
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
    from profiler.scenarios.analysis import analyze_run

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
    )
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
