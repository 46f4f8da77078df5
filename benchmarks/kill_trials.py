#!/usr/bin/env python3
"""SIGKILL trials: many `collect status --url` collectors killed at random moments.

Each campaign kills ``--trials-per-run`` collectors, one after another, into one run
directory after a random delay, then lets one collector stop cleanly (compacting
everything); the run is checked after every kill and at the end (tests/killtrials.py):
readable, no sample torn (fewer rows than its document), none duplicated, none lost but the
document in flight at each kill. Printed: trials, runs readable (checks passed reading),
samples served/stored/lost/torn/duplicated, torn writes that readers dropped (fine: a
sample lands whole or not at all), tracebacks. Exit code 1 on any loss, tear, duplicate,
unreadable run or traceback.

Usage::

    python3 benchmarks/kill_trials.py [--trials 60] [--trials-per-run 10] [--machines 2000]
"""

from __future__ import annotations

import argparse
import os
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))

from tests.killtrials import Result, campaign


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--trials", type=int, default=60, help="collectors killed (60)")
    parser.add_argument("--trials-per-run", type=int, default=10, help="kills per run (10)")
    parser.add_argument("--machines", type=int, default=2000, help="farm size (2000)")
    parser.add_argument("--min-delay", type=float, default=0.3, help="seconds (0.3)")
    parser.add_argument("--max-delay", type=float, default=3.0, help="seconds (3.0)")
    parser.add_argument("--seed", type=int, default=None)
    args = parser.parse_args(argv)
    total = Result()
    runs = 0
    start = time.monotonic()
    left = args.trials
    while left > 0:
        n = min(left, args.trials_per_run)
        seed = None if args.seed is None else args.seed + runs
        r = campaign(n, machines=args.machines, delays=(args.min_delay, args.max_delay), seed=seed)
        runs += 1
        left -= n
        for name in ("trials", "readable", "checks", "served", "stored", "lost", "torn",
                     "duplicated", "dropped_partial", "tracebacks"):  # fmt: skip
            setattr(total, name, getattr(total, name) + getattr(r, name))
        total.errors += r.errors
        print(f"run {runs}: {n} kills, {r.served} samples served, {r.stored} stored, lost "
              f"{r.lost}, torn {r.torn}, duplicated {r.duplicated}, torn writes dropped "
              f"{r.dropped_partial}, readable {r.readable}/{r.checks}", flush=True)  # fmt: skip
    print(f"trials {total.trials}, runs {runs}, runs readable {total.readable}/{total.checks} "
          f"checks, samples served {total.served}, stored {total.stored}, lost {total.lost}, "
          f"torn {total.torn}, duplicated {total.duplicated}, torn writes dropped whole "
          f"{total.dropped_partial}, tracebacks {total.tracebacks} "
          f"({time.monotonic() - start:.0f} s)")  # fmt: skip
    for error in total.errors[:20]:
        print(f"  {error}")
    return 0 if total.ok else 1


if __name__ == "__main__":
    sys.exit(main())
