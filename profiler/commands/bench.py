"""hydra-profiler bench: what NAR compression costs, and what another codec would buy."""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import math
import os
import sys
import tomllib
from typing import Any

from profiler.commands.argtypes import integer, number
from profiler.errors import UsageError

MAX_RUNS = 10_000
MAX_MIN_TIME = 86_400.0
SUITES_DIR = os.path.join(os.path.dirname(os.path.dirname(__file__)), "bench", "suites")

HELP = """\
codec specs (short form, or a Nix store-URI query string, or a whole store URI):
  xz:6  xz:9e  xz:6:parallel  xz:6:threads=4       liblzma preset, extreme, Nix's parallel mode
  zstd:19  zstd:19:long=27  zstd:3:threads=2        level, long window (2^N), workers
  zstd:3:frames=16M                                  independent frames (Nix 2.35 layout)
  br:6  gzip:6  bzip2:9  none
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
    p.set_defaults(run=run)


def load_suite(name: str) -> dict[str, Any]:
    """A suite by name (quick, hydra, full) or path to a TOML file, checked."""
    path = name if name.endswith(".toml") else os.path.join(SUITES_DIR, f"{name}.toml")
    try:
        with open(path, "rb") as f:
            suite = tomllib.load(f)
    except FileNotFoundError:
        known = sorted(n[:-5] for n in os.listdir(SUITES_DIR) if n.endswith(".toml"))
        raise UsageError(
            f"no suite {name!r} (known: {', '.join(known)}, or a .toml file)"
        ) from None
    except tomllib.TOMLDecodeError as exc:
        raise UsageError(f"{path}: invalid TOML: {exc}") from None
    except UnicodeDecodeError as exc:
        raise UsageError(f"{path}: invalid TOML: not UTF-8 text (byte {exc.start})") from None
    except OSError as exc:
        raise UsageError(f"{path}: cannot read the suite: {exc.strerror or exc}") from None
    _check_suite(suite, path)
    return suite


def _check_suite(suite: dict[str, Any], path: str) -> None:
    for key in ("payloads", "codecs"):
        items = suite.get(key)
        if not isinstance(items, list) or not items:
            raise UsageError(f"{path}: suite needs a non-empty list {key!r}")
        bad = [item for item in items if not isinstance(item, str) or not item.strip()]
        if bad:
            raise UsageError(f"{path}: {key!r} must list strings; got {bad[0]!r}")
    runs = suite.get("min_runs", 2)
    if isinstance(runs, bool) or not isinstance(runs, int) or not 1 <= runs <= MAX_RUNS:
        raise UsageError(f"{path}: min_runs must be a whole number from 1 to {MAX_RUNS}")
    seconds = suite.get("min_time_seconds", 0.5)
    if (
        isinstance(seconds, bool)
        or not isinstance(seconds, int | float)
        or not 0 <= seconds <= MAX_MIN_TIME  # also false for nan
    ):
        raise UsageError(f"{path}: min_time_seconds must be a number from 0 to {MAX_MIN_TIME:g}")


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
    from profiler.codecs import parse_spec

    suite = load_suite(args.suite)
    specs = args.codec or suite["codecs"]
    for spec in specs:
        parse_spec(spec)  # a typo fails before any payload is read
    a = assumptions(args)
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
    from profiler.bench import harness, plots, render, results
    from profiler.payloads.resolve import resolve

    chosen = args.payloads or suite["payloads"]
    found = resolve(chosen)
    options = harness.BenchOptions(
        min_runs=args.repeat if args.repeat is not None else int(suite.get("min_runs", 2)),
        min_time_seconds=args.min_time
        if args.min_time is not None
        else float(suite.get("min_time_seconds", 0.5)),
    )

    def progress(message: str) -> None:
        print(message, file=sys.stderr, flush=True)

    progress(f"bench: {len(found)} payloads x {len(specs)} codecs -> {out}")
    result = harness.run_bench(found, specs, options, progress, corpus_name=" ".join(chosen))
    result.meta["suite"] = args.suite
    results.write_result(out, result.meta, result.rows, result.samples)
    stored = results.load_result(out)
    written = plots.write_plots(stored.rows, out)
    progress(
        f"wrote {out}/ (meta.json, results.parquet, samples.parquet"
        f"{', ' if written else ''}{', '.join(os.path.basename(p) for p in written)})"
    )
    if args.format == "json":
        sys.stdout.write(render.json_report(stored.rows, stored.meta, a))
    elif args.format == "csv":
        sys.stdout.write(render.csv_report(stored.rows))
    else:
        sys.stdout.write(render.text_report(stored.rows, stored.meta, a))
    return 1 if stored.rows["error"].notna().all() else 0
