#!/usr/bin/env python3
"""Compaction memory: peak RSS of compacting a run of N status rows (target: 1M rows under
300 MB), and how it grows with N.

The run is written as ``collect status`` writes it: real C++ status documents of a farm of
``--machines`` machines (the testbed's status generator), normalised to samples, one
``append_many`` group per sample. Each compaction runs in a fresh process, so its peak RSS
(``ru_maxrss`` of the child) is compaction's alone (interpreter and pyarrow included).

Usage::

    python benchmarks/compaction_memory.py [--rows 1000000] [--machines 5000] [--scale]

``--scale`` also measures 1/4 and 1/2 of ``--rows``: memory bounded independently of the
run's size shows as (nearly) the same peak for every size.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))

from profiler.collect.status import normalize
from profiler.store import Run
from profiler.testbed import status
from profiler.testbed.state import MachineState, RunnerState

CHILD = """
import json, resource, sys, time
from profiler.store import compact
t = time.perf_counter()
moved = compact(sys.argv[1])
seconds = time.perf_counter() - t
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
print(json.dumps({"moved": sum(moved.values()), "seconds": seconds, "peak": peak}))
"""

BASELINE = """
import resource, pyarrow.parquet, profiler.store.tables
print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024)
"""


def farm_doc(machines: int, tick: int) -> dict[str, object]:
    state = RunnerState("cxx", 1_700_000_000.0, 1234)
    state.machines = [
        MachineState(
            f"builder-{i}.example.org",
            ["x86_64-linux", "i686-linux"],
            48,
            current_jobs=(i + tick) % 4,
            nr_steps_done=40000 + i + tick,
            total_step_seconds=2_100_000 + tick,
            total_step_build_seconds=1_300_000 + tick,
        )
        for i in range(machines)
    ]
    state.nr_steps_done = 480_000 + tick
    state.jobsets = {f"nixpkgs:job{i}": (3600 * i, 100) for i in range(40)}
    return status.cxx_status(state, 1_700_000_000.0 + 30 * tick, 144)


def write_run(path: str, rows: int, machines: int) -> int:
    """A run of about ``rows`` sample rows, one group per sample, as the collector writes."""
    written, tick = 0, 0
    with Run.open(path, command="compaction_memory") as run:
        writer = run.writer("samples", flush_seconds=None)
        template = normalize.from_cxx_status(farm_doc(machines, 0), 0.0, "bench")
        while written < rows:
            ts = 1_700_000_000.0 + 30 * tick
            sample = [{**r, "ts": ts, "value": r["value"] + tick} for r in template]
            sample = sample[: rows - written]
            writer.append_many(sample)
            written += len(sample)
            tick += 1
        writer.close()
    return written


def measure(rows: int, machines: int) -> dict[str, float]:
    with tempfile.TemporaryDirectory(prefix="compaction-memory-") as tmp:
        path = os.path.join(tmp, "run")
        t = time.perf_counter()
        written = write_run(path, rows, machines)
        write_s = time.perf_counter() - t
        size = sum(os.path.getsize(os.path.join(d, f)) for d, _, fs in os.walk(path) for f in fs)
        env = {**os.environ, "PYTHONPATH": os.path.join(os.path.dirname(__file__), "..")}
        out = subprocess.run(
            [sys.executable, "-c", CHILD, path], capture_output=True, text=True, env=env,
            check=True,
        )  # fmt: skip
        result = json.loads(out.stdout)
        return {"rows": written, "segment_mb": size / 2**20, "write_s": write_s, **result}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--machines", type=int, default=5000)
    ap.add_argument("--scale", action="store_true", help="also 1/4 and 1/2 of --rows")
    args = ap.parse_args(argv)
    env = {**os.environ, "PYTHONPATH": os.path.join(os.path.dirname(__file__), "..")}
    base = int(subprocess.check_output([sys.executable, "-c", BASELINE], env=env, text=True))
    print(f"baseline (python + pyarrow + profiler.store imported): {base / 2**20:.0f} MB")
    sizes = [args.rows // 4, args.rows // 2, args.rows] if args.scale else [args.rows]
    print(f"{'rows':>10} {'segments MB':>12} {'peak RSS MB':>12} {'compact s':>10}")
    peaks = []
    for n in sizes:
        r = measure(n, args.machines)
        peaks.append(r["peak"])
        print(f"{r['rows']:>10,} {r['segment_mb']:>12.0f} {r['peak'] / 2**20:>12.0f} "
              f"{r['seconds']:>10.1f}")  # fmt: skip
        assert r["moved"] == r["rows"], r
    ok = peaks[-1] < 300 * 2**20
    print(f"target: {sizes[-1]:,} rows under 300 MB peak: {'met' if ok else 'NOT met'}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
