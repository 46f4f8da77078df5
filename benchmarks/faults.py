#!/usr/bin/env python3
"""Collectors against a misbehaving server: the fault-server matrix.

``collect status --url`` and ``collect metrics --url`` run as real processes against every
behaviour of tests/faultserver.py (protocol violations, drips, hangs, resets, huge bodies,
redirect loops, error statuses, non-JSON): one valid answer, then the fault for every later
request. Each (collector, behaviour) runs ``--repeat`` times stopped by ``--duration`` and as
often stopped by SIGTERM while the fault is being served. Printed: one line per behaviour
(runs, tracebacks, hangs, exits other than 0, the worst end past ``--duration`` counted from
the collector's first request, the worst time from SIGTERM to the process's end, compaction
included, the events recorded and the first failure), then the totals. Exit code 1 if any
run gave a traceback, hung, or exited other than 0.

``--launcher subprocess`` (the default) starts ``python -m profiler`` for each run, as a
user would; ``--launcher fork`` forks them from a preloaded server (ten times less CPU).

With ``--kills N`` it then runs N SIGKILL trials (benchmarks/kill_trials.py: a collector
killed at random moments, each run then checked readable, with no sample lost, torn or
duplicated), so one command gives both halves of the fault figures.

Usage::

    python3 benchmarks/faults.py [--repeat 1] [--parallel 8] [--launcher subprocess|fork]
                                 [--kills 60]
"""

from __future__ import annotations

import argparse
import collections
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))

from tests.faultserver import BEHAVIOURS, Case, Outcome, run_matrix


def _events(o: Outcome) -> tuple[collections.Counter[str], str]:
    if o.returncode is None or not (o.run_dir / "manifest.json").exists():
        return collections.Counter(), ""
    events = o.table("events")
    if events.empty:
        return collections.Counter(), ""
    mine = events[events["source"] != "collector"]  # not "ticks skipped"
    failures = mine[mine["event"].isin(["error", "gap"])]["detail"].tolist()
    first = failures[0].split(": ", 1)[-1] if failures else ""
    return collections.Counter(events["event"]), first


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=1, help="runs per case and stop (1)")
    parser.add_argument("--parallel", type=int, default=4, help="runs at once (4)")
    parser.add_argument("--launcher", choices=("subprocess", "fork"), default="subprocess")
    parser.add_argument("--duration", type=float, default=2.0, help="--duration of runs (2)")
    parser.add_argument("--timeout", type=float, default=0.8, help="--timeout of runs (0.8)")
    parser.add_argument("--kinds", default="status,metrics")
    parser.add_argument("--behaviours", default=",".join(BEHAVIOURS))
    parser.add_argument("--kills", type=int, default=0, help="SIGKILL trials after (0)")
    args = parser.parse_args()
    cases = [
        Case(kind, behaviour, mode)
        for kind in args.kinds.split(",")
        for behaviour in args.behaviours.split(",")
        for mode in ("duration", "sigterm")
        for _ in range(args.repeat)
    ]
    start = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="faults-") as tmp:
        outcomes = run_matrix(
            cases,
            Path(tmp),
            launcher=args.launcher,
            parallel=args.parallel,
            duration=args.duration,
            timeout=args.timeout,
        )
        rows: dict[tuple[str, str], list[Outcome]] = collections.defaultdict(list)
        for o in outcomes:
            rows[(o.case.kind, o.case.behaviour)].append(o)
        print(
            f"{'collector':8} {'behaviour':24} {'runs':>4} {'tb':>3} {'hung':>4} {'rc!=0':>5} "
            f"{'late':>6} {'TERM->end':>9}  events; first failure"
        )
        bad = 0
        for (kind, behaviour), runs in rows.items():
            tracebacks = sum(o.traceback for o in runs)
            hangs = sum(o.returncode is None for o in runs)
            nonzero = sum(o.returncode not in (0, None) for o in runs)
            bad += tracebacks + hangs + nonzero
            by_duration = max(o.late or 0.0 for o in runs if o.case.mode == "duration")
            by_term = max(o.seconds for o in runs if o.case.mode == "sigterm")
            counts: collections.Counter[str] = collections.Counter()
            first = ""
            for o in runs:
                c, f = _events(o)
                counts += c
                first = first or f
            said = ",".join(f"{k}:{v}" for k, v in sorted(counts.items())) or "-"
            print(
                f"{kind:8} {behaviour:24} {len(runs):4} {tracebacks:3} {hangs:4} {nonzero:5} "
                f"{by_duration:5.2f}s {by_term:8.2f}s  {said}; {first[:60]}"
            )
        total = len(outcomes)
        print(
            f"\n{total} runs ({args.launcher}) in {time.monotonic() - start:.1f} s: "
            f"{sum(o.traceback for o in outcomes)} tracebacks, "
            f"{sum(o.returncode is None for o in outcomes)} hangs, "
            f"{sum(o.returncode not in (0, None) for o in outcomes)} exits other than 0; "
            f"ended at most {max(o.late or 0.0 for o in outcomes):.2f} s after --duration "
            f"{args.duration:g}s (from the first request), "
            f"{max(o.seconds for o in outcomes if o.case.mode == 'sigterm'):.2f} s after SIGTERM"
        )
    if args.kills > 0:
        import kill_trials

        print(f"\n{args.kills} SIGKILL trials (benchmarks/kill_trials.py):", flush=True)
        bad += kill_trials.main(["--trials", str(args.kills)])
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
