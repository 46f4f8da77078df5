"""hydra-profiler bench: what NAR compression costs, and what another codec would buy."""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import math
import os
import sys
from typing import Any

from profiler.bench.suites import (
    MAX_MIN_TIME,
    MAX_RUNS,
    QUICK_MIN_TIME_SECONDS,
    QUICK_RUNS,
    load_suite,
)
from profiler.commands.argtypes import integer, number
from profiler.errors import UsageError

HELP = """\
codec specs (short form, or a Nix store-URI query string, or a whole store URI):
  xz:6  xz:9e  xz:6:parallel  xz:6:threads=4       liblzma preset, extreme, Nix's parallel mode
  zstd:19  zstd:19:long=27  zstd:3:threads=2        level, long window (2^N), workers
  zstd:3:frames=16M                                  independent frames (Nix 2.35 layout)
  br:6  gzip:6  bzip2:9  none
  zstd:1-19  xz:0,6,9e  zstd:1,3,9-12:long=27       level ranges and lists: one codec a level
  'compression=zstd&compression-level=19&parallel-compression=true'
  add as=nix (default) | nix235 | rust | rust-presigned to run it the way that writer does,
  e.g. 'compression=zstd&compression-level=19&as=rust-presigned' runs what Hydra's builders
  really run (zstd 3)

suites (--suite): quick (default), hydra, full, or a .toml file with payloads, codecs,
min_runs, min_time_seconds

examples:
  hydra-profiler bench                                  # quick suite on the built-in corpus
  hydra-profiler bench --suite hydra --out results/hydra
  hydra-profiler bench ./cache store:*chromium* --codec xz:6 --codec zstd:19:long=27
  hydra-profiler bench --codec 'compression=zstd&compression-level=19&as=rust-presigned'
  hydra-profiler bench --format json > result.json

a fleet (--fleet hosts.toml): the suite runs on every host at once, one Dask task pinned to
each host's worker (an existing scheduler, an SSH cluster, or --local-cluster N worker
processes on this machine); each host's result goes to OUT/<host>/, the index to
OUT/fleet.json, and the hosts are shown side by side (also: hydra-profiler compare OUT):
  hydra-profiler bench --fleet hosts.toml --suite hydra --out results/fleet
  hydra-profiler bench --fleet hosts.toml --scheduler tcp://hydra.example:8786
  hydra-profiler bench --local-cluster 2 --suite quick --out fleet-demo
"""


def add_parser(sub: Any) -> None:
    p = sub.add_parser(
        "bench",
        help="benchmark NAR compression codecs on payloads",
        description=__doc__,
        epilog=HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "payloads",
        nargs="*",
        metavar="PAYLOAD",
        help="what to measure (see `hydra-profiler payloads --help`); default: the suite's",
    )
    p.add_argument("--codec", action="append", metavar="SPEC", help="codec spec (repeatable)")
    p.add_argument("--suite", default="quick", help="quick, hydra, full, or a .toml file")
    p.add_argument(
        "--repeat",
        type=integer(1, MAX_RUNS),
        metavar="N",
        help="at least N timed runs per phase",
    )
    p.add_argument(
        "--min-time",
        type=number(0, MAX_MIN_TIME),
        metavar="SECONDS",
        help="at least this much timed work per phase",
    )
    p.add_argument(
        "--quick",
        action="store_true",
        help=f"one timed run per phase and no minimum time (the suite's min_runs and "
        f"min_time_seconds become {QUICK_RUNS} and {QUICK_MIN_TIME_SECONDS:g}; --repeat and "
        "--min-time still win): minutes instead of tens of minutes, noisier speeds; "
        "ratios are unchanged",
    )
    p.add_argument("--out", metavar="DIR", help="result directory (default: ./bench-<UTC time>)")
    p.add_argument(
        "--force",
        action="store_true",
        help="replace the bench result already in --out (refused without it)",
    )
    p.add_argument("--format", choices=("table", "json", "csv"), default="table")
    p.add_argument(
        "--daily-nar",
        default="1TiB",
        metavar="BYTES",
        help="NAR volume a day, for CPU-hours and storage (default 1TiB)",
    )
    p.add_argument(
        "--storage-price",
        type=number(0, 1e9),
        default=23.0,
        metavar="USD",
        help="storage price in $ per TB-month (default 23, S3 Standard)",
    )
    p.add_argument(
        "--client-link",
        default="100Mbit",
        metavar="RATE",
        help="client download speed (default 100Mbit)",
    )
    p.add_argument(
        "--uplink", default="1Gbit", metavar="RATE", help="builder upload speed (default 1Gbit)"
    )
    p.add_argument(
        "--profile",
        action="store_true",
        help="record the harness with py-spy (native frames) into the result dir",
    )
    _add_fleet_arguments(p)
    p.set_defaults(run=run)


def _add_fleet_arguments(p: Any) -> None:
    p.add_argument(
        "--fleet",
        metavar="HOSTS.toml",
        help="run the suite on every host of this file with Dask (see below)",
    )
    p.add_argument(
        "--scheduler",
        metavar="ADDRESS",
        help="with --fleet: this Dask scheduler (tcp://HOST:8786) instead of the file's",
    )
    p.add_argument(
        "--local-cluster",
        type=integer(1, 64),
        metavar="N",
        help="a fleet of N worker processes on this machine (the hosts are the workers)",
    )


def assumptions(args: argparse.Namespace) -> Any:
    from profiler.bench.derive import Assumptions
    from profiler.units import parse_bits_per_second, parse_bytes

    figures = []
    for option, text, parse in (
        ("--daily-nar", args.daily_nar, parse_bytes),
        ("--client-link", args.client_link, parse_bits_per_second),
        ("--uplink", args.uplink, parse_bits_per_second),
    ):
        try:
            value = float(parse(text))
        except ValueError as exc:
            raise UsageError(f"{option}: {exc}") from None
        if not (math.isfinite(value) and value > 0):
            raise UsageError(f"{option}: must be a positive, finite amount, got {text!r}")
        figures.append(value)
    daily, client, uplink = figures
    return Assumptions(daily, args.storage_price, client, uplink)


def run(args: argparse.Namespace) -> int:
    from profiler.bench.levels import expand_specs
    from profiler.codecs import parse_spec

    suite = load_suite(args.suite)
    specs = expand_specs(args.codec or suite["codecs"])
    for spec in specs:
        parse_spec(spec)  # a typo fails before any payload is read
    a = assumptions(args)
    if args.fleet or args.local_cluster or args.scheduler:
        from profiler.commands.bench_fleet import run_fleet

        return run_fleet(args, suite, specs, a)
    out = args.out or f"bench-{dt.datetime.now(dt.UTC):%Y%m%dT%H%M%SZ}"
    from profiler.bench.results import check_out

    created = check_out(out, force=args.force)  # before any work: refusals, unwritable
    try:
        if args.profile:
            from profiler.bench.profile import run_profiled

            return run_profiled(sys.argv[1:], out)
        return _measure(args, suite, specs, a, out)
    except BaseException:
        if created:  # leave no empty directory behind a bench that failed
            with contextlib.suppress(OSError):
                os.rmdir(out)
        raise


def _measure(
    args: argparse.Namespace, suite: dict[str, Any], specs: list[str], a: Any, out: str
) -> int:
    from profiler.bench import render, run_suite

    def progress(message: str) -> None:
        print(message, file=sys.stderr, flush=True)

    stored = run_suite(
        suite,
        out,
        name=args.suite,
        specs=specs,
        payload_specs=args.payloads,
        repeat=args.repeat,
        min_time=args.min_time,
        quick=args.quick,
        progress=progress,
    )
    if args.format == "json":
        sys.stdout.write(render.json_report(stored.rows, stored.meta, a))
    elif args.format == "csv":
        sys.stdout.write(render.csv_report(stored.rows))
    else:
        sys.stdout.write(render.text_report(stored.rows, stored.meta, a))
    return 1 if stored.rows["error"].notna().all() else 0
