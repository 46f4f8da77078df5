"""hydra-profiler testbed: run a local queue-runner EMULATOR (not Hydra) that does real work.

It emulates the C++ (until 2026) or Rust (since 2026) hydra-queue-runner on this machine:
a DAG of steps on emulated build machines, with real NARs of real files, real compression
with the codec you give, a real file:// binary cache, loopback transfers, journal lines,
status JSON and Prometheus metrics on 127.0.0.1, optional real PostgreSQL rows, and the
true phase times in DIR/truth.json. Use it to test collectors and analysis, and to learn.
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any

from profiler.commands.argtypes import (
    add_generation,
    codec_spec,
    integer,
    number,
    positive_int,
    rate,
)
from profiler.errors import ProfilerError, UsageError

MAX_STEPS = 100_000
MAX_MACHINES = 1_000
MAX_JOBS = 1_000
MAX_WORKERS = 1_024  # Hydra caps max_local_worker_threads' default there too
MAX_DELAY = 3_600.0
MAX_BUILD_SCALE = 1_000.0

HELP = """\
examples:
  hydra-profiler testbed --generation cxx --codec 'compression=xz' --steps 40 --machines 2 \\
      --max-jobs 2 --out tb-cxx
  hydra-profiler testbed --generation rust --codec 'compression=zstd&compression-level=19' \\
      --workload tb-cxx/workload.json --out tb-rust      # same DAG, same bytes
  hydra-profiler testbed --codec 'compression=xz' --local-workers 1 --out tb-slot   # make
      compression the bottleneck (C++ busy=35 waits)
  hydra-profiler testbed --pg 'postgresql:///hydra' --db-latency 0.2 --out tb-db

Rust runs use the builders' presigned-upload semantics unless the codec says as=...
(so compression-level=19 runs as zstd 3, as in production since 2026).
"""


def add_parser(sub: Any) -> None:
    p = sub.add_parser(
        "testbed",
        help="run the local queue-runner emulator (not Hydra)",
        description=__doc__,
        epilog=HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_generation(p, default="cxx")
    p.add_argument(
        "--codec",
        type=codec_spec,
        default="compression=xz",
        help="store-URI query or short spec (default compression=xz)",
    )
    p.add_argument("--steps", type=positive_int(MAX_STEPS), default=40)
    p.add_argument("--seed", type=integer(), default=1)
    p.add_argument("--workload", metavar="FILE", help="replay a saved workload.json")
    p.add_argument("--machines", type=positive_int(MAX_MACHINES), default=2)
    p.add_argument("--max-jobs", type=positive_int(MAX_JOBS), default=2)
    p.add_argument(
        "--local-workers",
        type=positive_int(MAX_WORKERS),
        metavar="N",
        help="C++ max_local_worker_threads (default: Hydra's, max(4, cores)-2)",
    )
    p.add_argument(
        "--link", type=rate("--link"), metavar="RATE", help="builder link bandwidth, e.g. 200Mbit"
    )
    p.add_argument(
        "--upload",
        type=rate("--upload"),
        metavar="RATE",
        help="cache upload bandwidth, e.g. 100Mbit",
    )
    p.add_argument("--dispatch-delay", type=number(0, MAX_DELAY), default=0.0, metavar="SECONDS")
    p.add_argument("--db-latency", type=number(0, MAX_DELAY), default=0.0, metavar="SECONDS")
    p.add_argument(
        "--build-scale",
        type=number(0, MAX_BUILD_SCALE),
        default=1.0,
        help="scale build durations",
    )
    p.add_argument("--burn", action="store_true", help="builds burn CPU instead of waiting")
    p.add_argument(
        "--upload-mode",
        choices=("presigned", "direct"),
        default="presigned",
        help="Rust builders: compress and PUT themselves (presigned, production) or stream "
        "NARs to the runner, which compresses and uploads them after the step (direct)",
    )
    p.add_argument(
        "--pressure-machines",
        type=integer(0, MAX_MACHINES),
        default=0,
        metavar="N",
        help="Rust: N builders report CPU pressure over their threshold (machineFreeFn "
        "DynamicWithMaxJobLimit, as in production): hasCapacity false, no work for them",
    )
    p.add_argument(
        "--retry",
        type=integer(0, MAX_STEPS),
        default=0,
        metavar="N",
        help="N steps fail transiently on their first attempt and are retried after a "
        "back-off (the row of the first attempt ends aborted, status 3)",
    )
    p.add_argument(
        "--fail",
        type=integer(0, MAX_STEPS),
        default=0,
        metavar="N",
        help="N steps that nothing depends on fail to build (chosen with --seed): the build "
        "is marked failed, no outputs, NULL sizes, as on a real farm",
    )
    p.add_argument("--pg", metavar="DSN", help="write Hydra's tables into this PostgreSQL")
    p.add_argument(
        "--port", type=integer(0, 65535), default=0, help="HTTP port (default: a free one)"
    )
    p.add_argument("--out", required=True, metavar="DIR")
    p.set_defaults(run=run)


def _bytes_per_second(bits_per_second: float | None) -> float | None:
    """A ``--link``/``--upload`` rate (bits per second, checked by argparse) in bytes."""
    return None if bits_per_second is None else bits_per_second / 8


def check_out(out: str) -> None:
    """``--out`` must be a new or empty directory, or an earlier testbed run (its files are
    replaced); never a file or an unrelated directory, and it must be writable."""
    from profiler import atomic

    if os.path.lexists(out) and not os.path.isdir(out):
        raise UsageError(f"--out {out}: exists and is not a directory")
    if os.path.isdir(out):
        try:
            names = os.listdir(out)
        except OSError as exc:
            raise ProfilerError(f"--out {out}: cannot read: {exc.strerror or exc}") from None
        earlier = "workload.json" in names or "truth.json" in names
        if names and not earlier:
            raise UsageError(
                f"--out {out}: a non-empty directory that is not a testbed run; "
                "give a new or empty directory"
            )
        atomic.check_writable(os.path.join(out, "truth.json"))
        return
    parent = os.path.dirname(os.path.abspath(out))
    if not os.path.isdir(parent):
        raise ProfilerError(f"--out {out}: cannot create: no directory {parent}")
    atomic.check_writable(os.path.join(parent, os.path.basename(os.path.abspath(out))))


def run(args: argparse.Namespace) -> int:
    import random
    from dataclasses import replace

    from profiler.testbed import workload
    from profiler.testbed.engine import Knobs
    from profiler.testbed.run import run_testbed

    if args.pressure_machines and (
        args.generation != "rust" or not 0 < args.pressure_machines < args.machines
    ):
        raise UsageError("--pressure-machines: Rust only, and fewer than --machines")
    knobs = Knobs(
        args.generation,
        args.codec,
        args.machines,
        args.max_jobs,
        args.local_workers,
        _bytes_per_second(args.link),
        _bytes_per_second(args.upload),
        args.dispatch_delay,
        args.db_latency,
        burn=args.burn,
        upload_mode=args.upload_mode,
        pressure_machines=args.pressure_machines,
    )
    wl = (
        workload.load(args.workload)
        if args.workload
        else workload.generate(args.steps, args.seed, build_scale=args.build_scale)
    )
    check_out(args.out)
    if args.fail:
        knobs = replace(knobs, fail_steps=workload.failing_leaves(wl, args.fail, args.seed))
    if args.retry:
        chosen = random.Random(args.seed).sample(
            range(len(wl.steps)), min(args.retry, len(wl.steps))
        )
        knobs = replace(knobs, retry_steps=frozenset(chosen) - knobs.fail_steps)

    def say(message: str) -> None:
        print(message, file=sys.stderr, flush=True)

    def serving(port: int) -> None:
        paths = (
            ("/queue-runner-status", "/metrics")
            if args.generation == "cxx"
            else ("/status", "/metrics")
        )
        say(
            f"testbed (an emulator, not Hydra): {args.generation} queue runner, "
            f"{len(wl.steps)} steps on {args.machines} machines x {args.max_jobs} jobs; "
            f"serving " + " ".join(f"http://127.0.0.1:{port}{p}" for p in paths)
        )

    doc = run_testbed(
        wl, knobs, args.out, pg_dsn=args.pg, port=args.port, progress=say, on_serving=serving
    )
    shares = ", ".join(f"{k} {v:.1%}" for k, v in doc["attribution"].items())
    wall = doc["finished_at"] - doc["started_at"]
    print(
        f"testbed done in {wall:.1f} s: {len(doc['steps'])} steps, codec {doc['codec']}; "
        f"true attribution: {shares}; wrote {args.out}/ (truth.json, cache/, "
        f"*.journal.txt, *.journal.json, status/, metrics/)"
    )
    return 0
