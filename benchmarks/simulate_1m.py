#!/usr/bin/env python3
"""Queue-runner simulation at scale: replay and one what-if on a 1,000,000-step table.

Generates a synthetic step table (heavy-tailed durations: log-normal builds and NAR sizes,
compression and upload proportional to size; Poisson releases at ~95% of the farm's
capacity; ~20% of steps depend on 1-3 recent earlier steps), then times :func:`replay` on a
C++ farm of 100 machines x 4 slots with 8 local workers (near saturation, so local-slot
waits hold machine slots), and a :func:`what_if` with compression twice as fast (baseline
reused). Prints the seconds of each stage and the peak resident memory (``ru_maxrss``).
The target is well under a minute on a slow 2-core machine.

Usage::

    python benchmarks/simulate_1m.py [--steps 1000000] [--machines 100] [--slots 4]
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

from profiler.analyze.simulate import SimConfig, replay, what_if


def make_table(n: int, machines: int, slots: int, seed: int = 1) -> pd.DataFrame:
    """A synthetic step table of ``n`` steps for a farm of ``machines`` x ``slots``."""
    rng = np.random.default_rng(seed)
    build = np.minimum(rng.lognormal(np.log(60.0), 1.4, n), 36_000.0)  # median 1 min
    nar = np.minimum(rng.lognormal(np.log(20e6), 1.8, n), 2**31)  # median 20 MB
    compressed = nar * rng.uniform(0.15, 0.45, n)
    compress = nar / 40e6  # xz-like pipeline, 40 MB/s
    upload = compressed / 100e6 + rng.exponential(0.2, n)
    cols = {
        "connect_s": rng.exponential(0.5, n),
        "send_s": rng.lognormal(np.log(2.0), 1.0, n),
        "build_s": build,
        "receive_s": nar / 500e6,
        "compress_s": compress,
        "write_s": compressed / 1e9,
        "upload_s": upload,
        "post_s": rng.exponential(0.3, n),
    }
    step_s = sum(cols.values())
    rate = 0.95 * machines * slots / float(np.mean(step_s))  # steps per second
    release = 1.7e9 + np.cumsum(rng.exponential(1.0 / rate, n))
    keys = np.char.add("s", np.arange(n).astype(str)).astype(object)
    deps: list[list[str]] = [[] for _ in range(n)]
    has = np.flatnonzero(rng.random(n) < 0.2)
    has = has[has > 10]
    for i, k in zip(has.tolist(), rng.integers(1, 4, len(has)).tolist(), strict=True):
        back = rng.integers(1, min(i, 2000) + 1, k)
        deps[i] = [keys[i - b] for b in back.tolist()]
    table = pd.DataFrame(
        {
            "step": keys,
            "machine": "",
            "system": "x86_64-linux",
            "release_ts": release,
            "deps": deps,
            **cols,
            "nar_bytes": nar.astype(np.int64),
            "compressed_bytes": compressed.astype(np.int64),
        }
    )
    table["start_ts"] = table["release_ts"]  # no observed schedule: validation is nominal
    table["end_ts"] = table["release_ts"] + step_s
    return table


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=1_000_000)
    ap.add_argument("--machines", type=int, default=100)
    ap.add_argument("--slots", type=int, default=4)
    ap.add_argument("--local-workers", type=int, default=8)
    args = ap.parse_args()

    t0 = time.perf_counter()
    table = make_table(args.steps, args.machines, args.slots)
    t1 = time.perf_counter()
    machines = {f"builder-{i:03d}": (args.slots, ("x86_64-linux",)) for i in range(args.machines)}
    config = SimConfig(
        generation="cxx",
        machines=machines,
        local_workers=args.local_workers,
    )
    base = replay(table, config)
    t2 = time.perf_counter()
    change = what_if(table, config, baseline=base, compress_factor=0.5)
    t3 = time.perf_counter()
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux

    print(f"steps: {args.steps:,}  machines: {args.machines} x {args.slots} slots")
    print(f"generate table:          {t1 - t0:7.2f} s")
    print(f"replay (1 simulation):   {t2 - t1:7.2f} s")
    print(f"what-if (1 simulation):  {t3 - t2:7.2f} s")
    print(f"peak RSS:                {rss:7.0f} MiB")
    with pd.option_context("display.width", 120, "display.float_format", "{:.4g}".format):
        print(change.comparison.to_string(index=False))


if __name__ == "__main__":
    main()
