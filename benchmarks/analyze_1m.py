#!/usr/bin/env python3
"""Analysis at farm scale: a generated table of 1,000,000 steps through the whole analysis.

Generates a step table shaped like the tracker's (100 machines x 4 slots, 30 days, heavy
tailed build times, C++ copy phases with journal pipeline times), plus a runnable-steps
gauge every 30 s, then times each stage: the copy split and attribution, the breakdowns by
machine, system, jobset and hour, the verdict, and a replay + one what-if in the simulator.
Prints seconds per stage, the total, and peak memory (ru_maxrss). Target: under a minute
and a few GB.

Usage::

    python benchmarks/analyze_1m.py [--steps 1000000] [--no-whatif]
"""

from __future__ import annotations

import argparse
import os
import resource
import sys
import time

import numpy as np
import pandas as pd

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from profiler.analyze import simulate as sim
from profiler.analyze.attribution import attribute, breakdown, by_window, split_copy
from profiler.analyze.schema import StepTable
from profiler.analyze.verdict import decide, pressure
from profiler.bench.profiles import CodecProfile

MACHINES, SLOTS, DAYS = 100, 4, 30


def generate(n: int, seed: int = 1) -> tuple[StepTable, pd.DataFrame]:
    """A step table of ``n`` steps and a samples table with the runnable-steps gauge."""
    rng = np.random.default_rng(seed)
    span = DAYS * 86400.0
    start = np.sort(rng.uniform(0, span, n)) + 1.7e9
    build = rng.lognormal(np.log(60), 1.2, n)
    nar = rng.lognormal(np.log(20e6), 1.5, n)
    pipeline = nar / 40e6 + rng.exponential(0.5, n)
    copy = pipeline + rng.exponential(1.0, n)
    phases = {
        "prepare_s": rng.exponential(0.05, n),
        "connect_s": rng.exponential(0.5, n),
        "send_s": rng.exponential(3.0, n),
        "build_s": build,
        "slot_wait_s": np.where(rng.random(n) < 0.2, rng.exponential(20.0, n), 0.0),
        "copy_s": copy,
        "post_s": rng.exponential(0.3, n),
    }
    end = start + sum(phases.values())
    machine = rng.integers(0, MACHINES, n)
    builds, stepnrs = np.arange(n) // 3 + 1, np.arange(n) % 3 + 1
    machines = np.array([f"ssh://builder-{i}" for i in range(MACHINES)])
    jobsets = np.array([f"nixpkgs:js{i}" for i in range(50)])
    steps = pd.DataFrame(
        {
            "build": builds,
            "stepnr": stepnrs,
            "step": [f"{b}/{s}" for b, s in zip(builds, stepnrs, strict=True)],
            "machine": machines[machine],
            "system": np.where(rng.random(n) < 0.8, "x86_64-linux", "aarch64-linux"),
            "jobset": jobsets[rng.integers(0, 50, n)],
            "start_ts": start,
            "end_ts": end,
            "nar_bytes": nar,
            "compressed_bytes": nar * 0.3,
            "pipeline_s": pipeline,
            "status": 0,
            "timing_source": "tracker",
            "resolution_s": 1.0,
            **phases,
        }
    )  # fmt: skip
    ts = np.arange(start[0], end.max(), 30.0)
    samples = pd.DataFrame(
        {"ts": ts, "metric": "steps_runnable", "value": rng.poisson(20, len(ts)).astype(float)}
    )
    jobs = pd.DataFrame(
        {
            "ts": np.repeat(ts, 1),
            "metric": "machine_current_jobs",
            "machine": "all",
            "value": rng.integers(200, MACHINES * SLOTS + 1, len(ts)).astype(float),
        }
    )
    window = (float(start.min()), float(end.max()))
    table = StepTable(
        steps, "cxx", float(np.sum(samples["value"][:-1] * 30.0)), "gauge", [], [], window
    )
    return table, pd.concat([samples, jobs], ignore_index=True)


def main() -> None:
    """Generate, time each stage, print."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--steps", type=int, default=1_000_000)
    ap.add_argument("--no-whatif", action="store_true")
    args = ap.parse_args()
    times: dict[str, float] = {}

    def stage(name: str, t0: float) -> float:
        now = time.perf_counter()
        times[name] = now - t0
        print(f"{name:<34} {times[name]:7.1f} s", flush=True)
        return now

    t = time.perf_counter()
    table, samples = generate(args.steps)
    t = stage(f"generate {args.steps:,} steps", t)
    profile = CodecProfile("xz:6", 1 / 3e6, 0.27, "assumed")
    steps = split_copy(table, profile)
    att = attribute(table, steps)
    t = stage("copy split + attribution", t)
    for by in ("machine", "system", "jobset"):
        breakdown(steps, by)
    by_window(steps, 3600)
    t = stage("breakdowns (machine/system/jobset/hour)", t)
    p = pressure(samples, table.window, SLOTS)
    verdict = decide(att, steps, "cxx", p)
    t = stage("verdict", t)
    if not args.no_whatif:
        sim_steps = steps.assign(release_ts=steps["start_ts"], write_s=0.0)
        config = sim.config_from_steps(sim_steps, "cxx", SLOTS, 16)
        sim.what_if(sim_steps, config, compress_factor=0.5)
        t = stage("replay + what-if (2 simulations)", t)
    total = sum(v for k, v in times.items() if not k.startswith("generate"))
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"analysis total (without generation)  {total:7.1f} s; peak memory {peak:,.0f} MiB")
    print(f"verdict: {verdict.bottleneck} ({verdict.confidence:.2f})")


if __name__ == "__main__":
    main()
