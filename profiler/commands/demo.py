"""hydra-profiler demo: the whole tool end to end on this machine, in a few minutes."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from profiler.errors import UsageError

HELP = """\
stages: 1. bench xz-6, zstd-3 and zstd-19 on the built-in corpus; 2. a private PostgreSQL
(when installed); 3. the testbed (an emulated C++ queue runner with xz-6 and one local
worker slot) with the status, metrics and database collectors running against it live, then
its journals; 4. analysis and what-if; 5. the report (HTML, Markdown, JSON, Chrome trace).

examples:
  hydra-profiler demo
  hydra-profiler demo --out /tmp/demo --steps 40
  hydra-profiler demo --no-bench --no-db      # fastest: calibration, journal and status only
"""


def add_parser(sub: Any) -> None:
    p = sub.add_parser(
        "demo",
        help="run everything end to end on this machine (a few minutes)",
        description=__doc__,
        epilog=HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--out", default="hydra-profiler-demo", help="where (hydra-profiler-demo)")
    p.add_argument("--steps", type=int, default=24, help="testbed build steps (24)")
    p.add_argument("--no-bench", action="store_true", help="skip the bench")
    p.add_argument(
        "--bench-payload",
        action="append",
        metavar="PAYLOAD",
        help="bench these payloads instead of the built-in corpus (see `payloads`)",
    )
    p.add_argument("--no-db", action="store_true", help="no PostgreSQL even if installed")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from profiler.scenarios.demo import DemoOptions, run_demo

    if args.steps < 2:
        raise UsageError("--steps must be at least 2")
    opts = DemoOptions(
        out=args.out,
        steps=args.steps,
        bench=not args.no_bench,
        bench_payloads=tuple(args.bench_payload or ["default"]),
        database=not args.no_db,
    )
    run_demo(opts, say=lambda m: print(m, file=sys.stderr, flush=True))
    return 0
