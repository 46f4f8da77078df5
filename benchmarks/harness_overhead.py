#!/usr/bin/env python3
"""Harness overhead: our reported compress MB/s against the codecs' own command-line tools.

On the same NAR, in the same run, interleaved round by round:

* zstd-3: ``hydra-profiler``'s figure vs ``zstd -b3`` (zstd's in-memory benchmark mode);
* xz-6: ``hydra-profiler``'s figure vs ``xz -6 -T1 -c NAR > /dev/null`` timed from outside
  (this includes the CLI's process start and file read, a few ms on a multi-second run).

Both sides report their best run. The ratio ours/CLI should be within 5% of 1.00; a
bigger gap would mean the harness adds time of its own, or that the library builds differ
(zstandard bundles its own libzstd, whose version is printed).

Usage::

    python benchmarks/harness_overhead.py [TREE] [--size-mib 8] [--rounds 3]
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))

from profiler.bench import environment, harness
from profiler.payloads import corpus
from profiler.payloads import resolve as payloads


def make_nar(tree: str, size_mib: float) -> tuple[bytes, str]:
    selection, total = corpus.select_files(tree, (), int(size_mib * corpus.MiB))
    payload = payloads.TreePayload("nar", "user", tree, root=tree, selection=selection)
    return payload.read(), f"{tree} (first {total / corpus.MiB:.1f} MiB in NAR order)"


def ours(path: str, spec: str) -> float:
    res = harness.run_bench(
        [payloads.nar_file(path)], [spec], harness.BenchOptions(min_runs=2, min_time_seconds=0.0)
    )
    row = res.rows[0]
    if row["error"]:
        raise SystemExit(row["error"])
    return float(row["compress_mb_per_s"])


def zstd_cli(path: str) -> float:
    out = subprocess.run(["zstd", "-b3", "-i2", path], capture_output=True, text=True, check=True)
    text = out.stdout + out.stderr
    # progress lines end with the best compression speed so far; take the last one
    speeds = re.findall(r"\(x[\d.]+\),\s+([\d.]+) MB/s", text)
    if not speeds:
        raise SystemExit(f"cannot read zstd -b output: {text!r}")
    return float(speeds[-1])


def xz_cli(path: str, nbytes: int) -> float:
    best = float("inf")
    for _ in range(2):
        start = time.perf_counter()
        subprocess.run(["xz", "-6", "-T1", "-c", path], stdout=subprocess.DEVNULL, check=True)
        best = min(best, time.perf_counter() - start)
    return nbytes / best / 1e6


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument(
        "tree",
        nargs="?",
        default="/usr/lib/git-core" if os.path.isdir("/usr/lib/git-core") else "/usr/bin",
    )
    ap.add_argument("--size-mib", type=float, default=8)
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    data, where = make_nar(args.tree, args.size_mib)
    env = environment.collect()
    print(
        f"NAR: {where}, {len(data) / 1e6:.1f} MB; libzstd {env['libzstd_version']} (ours) "
        f"vs the zstd CLI; liblzma {env['liblzma_version']}",
        flush=True,
    )
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "payload.nar")
        with open(path, "wb") as f:
            f.write(data)
        best: dict[str, float] = {}
        for rnd in range(1, args.rounds + 1):
            for name, fn in (
                ("ours zstd-3", lambda: ours(path, "zstd:3")),
                ("cli zstd -b3", lambda: zstd_cli(path)),
                ("ours xz-6", lambda: ours(path, "xz:6")),
                ("cli xz -6", lambda: xz_cli(path, len(data))),
            ):
                best[name] = max(best.get(name, 0.0), fn())
            print(f"round {rnd}/{args.rounds} done", file=sys.stderr, flush=True)
    print(f"\n{'codec':<8} {'ours MB/s':>10} {'CLI MB/s':>10} {'ours/CLI':>9}")
    for codec, a, b in (
        ("zstd-3", "ours zstd-3", "cli zstd -b3"),
        ("xz-6", "ours xz-6", "cli xz -6"),
    ):
        print(f"{codec:<8} {best[a]:10.2f} {best[b]:10.2f} {best[a] / best[b]:9.3f}")
    print("\nours/CLI = 1.00 means the harness reports what the tool itself measures")
    return 0


if __name__ == "__main__":
    sys.exit(main())
