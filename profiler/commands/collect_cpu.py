"""hydra-profiler collect cpu: where a running queue runner's or builder's CPU goes."""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any

from profiler.commands.argtypes import add_generation, add_run_out, integer, seconds

HELP = """\
targets (one of):
  --pid PID       a process and all its threads (repeatable)
  --unit UNIT     the processes of a systemd unit, e.g. hydra-queue-runner (its cgroup)
  --match NAME    processes whose comm or argv[0] contains NAME, e.g. hydra-queue-runner

examples:
  hydra-profiler collect cpu --unit hydra-queue-runner --duration 5m --out run1
  hydra-profiler collect cpu --match hydra-builder --generation rust --duration 10m --out run1
  hydra-profiler collect cpu --pid 1234 --out run1            # until Ctrl-C
Samples are classified into compression, decompression, hashing, nar, network, database,
filesystem, allocation, runtime and other (profiler/collect/cpu/rules.py: each pattern with
the library or crate it belongs to). The run gets the cpu_classes, cpu_stacks and
cpu_unknown tables, RUN/cpu/stacks.folded and RUN/cpu/profile.speedscope.json.
Sampling needs root, CAP_PERFMON, or kernel.perf_event_paranoid <= 1 for your own processes.
"""

_LONGEST = (3650 * 86400.0, "3650 days")
SAMPLERS = ("auto", "perf", "py-spy")  # as profiler.collect.cpu (not imported for --help)
CALL_GRAPHS = ("fp", "dwarf", "leaf")


def add_parser(what: Any) -> None:
    """Add ``collect cpu`` to the ``collect`` sub-commands."""
    q = what.add_parser(
        "cpu",
        help="sample a running process' stacks (perf or py-spy) and classify its CPU",
        description=__doc__,
        epilog=HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    target = q.add_mutually_exclusive_group(required=True)
    target.add_argument("--pid", action="append", type=integer(1), metavar="PID")
    target.add_argument("--unit", metavar="UNIT")
    target.add_argument("--match", metavar="NAME")
    q.add_argument("--duration", type=seconds("--duration", longest=_LONGEST), help="e.g. 5m")
    q.add_argument(
        "--frequency", type=integer(1, 10000), default=99, metavar="HZ",
        help="samples per second per thread (99)",
    )  # fmt: skip
    q.add_argument(
        "--bucket", type=seconds("--bucket", longest=_LONGEST), default="1s",
        help="width of cpu_classes' time buckets (1s)",
    )  # fmt: skip
    q.add_argument("--sampler", choices=SAMPLERS, default="auto", help="(auto: perf if installed)")
    q.add_argument(
        "--call-graph", choices=CALL_GRAPHS, default="fp",
        help="frame pointers (fp, default), falling back to dwarf, then leaf only",
    )  # fmt: skip
    q.add_argument("--keep-raw", action="store_true", help="keep perf.data in RUN/cpu/")
    add_generation(q, help="the queue runner's generation recorded with the source")
    add_run_out(q)
    q.set_defaults(run=run, kind="cpu")


def _target(args: argparse.Namespace) -> Any:
    from profiler.collect.cpu import targets

    if args.pid:
        return targets.by_pid(args.pid)
    if args.unit:
        return targets.by_unit(args.unit)
    return targets.by_match(args.match, exclude=(os.getpid(), os.getppid()))


def run(args: argparse.Namespace) -> int:
    from profiler.collect.control import install_signal_handlers
    from profiler.collect.cpu.collector import CpuCollector, CpuOptions
    from profiler.store import Run, compact, redact_argv
    from profiler.units import format_share

    target = _target(args)
    options = CpuOptions(
        frequency_hz=args.frequency,
        duration_seconds=args.duration,
        bucket_seconds=args.bucket,
        sampler=args.sampler,
        call_graph=args.call_graph,
        generation=args.generation,
        keep_raw=args.keep_raw,
    )

    def log(message: str) -> None:
        print(message, file=sys.stderr, flush=True)

    with Run.open(args.out, command=redact_argv(sys.argv)) as run_dir:
        collector = CpuCollector(run_dir, target, options, log=log)
        install_signal_handlers(collector.stop)
        result = collector.collect()
    compact(args.out)
    total = sum(result.cpu_seconds_by_class.values())
    shares = ", ".join(
        f"{cls} {format_share(sec / total)}"
        for cls, sec in sorted(result.cpu_seconds_by_class.items(), key=lambda kv: -kv[1])
    )
    log(
        f"collect cpu: {result.samples} samples ({result.sampler}, {result.call_graph}), "
        f"{total:.2f} CPU s: {shares or 'nothing'}; run {args.out}"
    )
    return 0 if result.samples else 1
