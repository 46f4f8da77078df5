#!/usr/bin/env python3
"""Years of BuildSteps analysed out of core: a generated history of N steps (default 100M)
through ``analyze --engine history``, its time and peak memory printed, and the same analysis
of a 1M-step history compared with the in-memory engine (equal to rounding, and both timed).

The history is written by the benchmark itself (:func:`profiler.testbed.history.write_history`:
the rows ``collect db --since`` stores, 2M steps per Parquet part) into ``--dir`` (default a
temporary directory; 100M steps take about 4 GB there, and DuckDB spills beside it). Each
analysis runs in a child process, so its peak memory (``ru_maxrss``) is its own.

Usage::

    python benchmarks/history.py                    # 100M steps, then the 1M comparison
    python benchmarks/history.py --steps 10000000 --memory-limit 1GB
    python benchmarks/history.py --compare-only     # the 1M comparison alone
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
COMPARE_STEPS = 1_000_000
GIB = 1 << 30


def _generate(path: str, steps: int, part_rows: int) -> float:
    """Write the history in a child process: a child inherits its parent's peak RSS across
    exec (Linux keeps the old mm's high-water mark in the process' maxrss), so the parent
    stays small for the analyses' figures to be their own."""
    began = time.monotonic()
    code = (
        "import sys; from profiler.testbed.history import write_history; "
        f"write_history({path!r}, {steps}, seed=1, part_rows={part_rows}, "
        "progress=lambda n: print(f'  generated {n:,} steps', file=sys.stderr, flush=True))"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT)
    return time.monotonic() - began


def _analyze(path: str, engine: str, memory_limit: str) -> tuple[dict, float, float]:
    """(the JSON document, wall seconds, the child's own peak RSS in bytes: os.wait4)."""
    began = time.monotonic()
    with tempfile.TemporaryFile("w+") as out:
        child = subprocess.Popen(
            [
                sys.executable, "-m", "profiler", "analyze", path, "--engine", engine,
                "--codec", "xz:6", "--runner-cores", "8", "--window", "1d", "--format", "json",
                "--memory-limit", memory_limit,
            ],
            stdout=out,
            cwd=ROOT,
        )  # fmt: skip
        _, status, usage = os.wait4(child.pid, 0)
        child.returncode = os.waitstatus_to_exitcode(status)
        if child.returncode:
            raise SystemExit(f"analyze --engine {engine} failed (exit {child.returncode})")
        out.seek(0)
        doc = json.load(out)
    return doc, time.monotonic() - began, usage.ru_maxrss * 1024.0


def _max_diff(a: object, b: object) -> float:
    """The largest relative difference between two JSON documents' numbers (inf if their
    shapes or texts differ)."""
    if isinstance(a, dict) and isinstance(b, dict):
        if set(a) != set(b):
            return float("inf")
        return max((_max_diff(a[k], b[k]) for k in a), default=0.0)
    if isinstance(a, list) and isinstance(b, list):
        if len(a) != len(b):
            return float("inf")
        return max((_max_diff(x, y) for x, y in zip(a, b, strict=True)), default=0.0)
    if isinstance(a, float | int) and isinstance(b, float | int):
        scale = max(abs(a), abs(b), 1e-12)
        return abs(a - b) / scale
    return 0.0 if a == b else float("inf")


def _comparable(doc: dict) -> dict:
    doc = dict(doc)
    doc.pop("engine")
    doc.pop("whatif", None)
    cov = dict(doc["coverage"])
    cov["notes"] = [n for n in cov["notes"] if not n.startswith("history engine")]
    doc["coverage"] = cov
    return doc


def compare(root: str, memory_limit: str) -> None:
    path = os.path.join(root, "history-1m")
    print(f"1M-step history: generating into {path}", file=sys.stderr)
    gen = _generate(path, COMPARE_STEPS, 500_000)
    mem, mem_s, mem_rss = _analyze(path, "memory", memory_limit)
    his, his_s, his_rss = _analyze(path, "history", memory_limit)
    diff = _max_diff(_comparable(mem), _comparable(his))
    print(f"\n{COMPARE_STEPS:,} steps (generated in {gen:.0f} s):")
    print(f"  in-memory engine: {mem_s:7.1f} s, peak {mem_rss / GIB:.2f} GiB")
    print(f"  history engine:   {his_s:7.1f} s, peak {his_rss / GIB:.2f} GiB")
    print(f"  largest relative difference of any figure: {diff:.2e} (identical to rounding: "
          f"{'yes' if diff < 1e-9 else 'NO'})")  # fmt: skip
    print(f"  verdict: memory {mem['verdict']['bottleneck']}, history "
          f"{his['verdict']['bottleneck']}")  # fmt: skip


def big(root: str, steps: int, memory_limit: str) -> None:
    path = os.path.join(root, "history-big")
    print(f"{steps:,}-step history: generating into {path}", file=sys.stderr)
    gen = _generate(path, steps, 2_000_000)
    size = sum(
        os.path.getsize(os.path.join(d, f)) for d, _, fs in os.walk(path) for f in fs
    )  # fmt: skip
    doc, wall, rss = _analyze(path, "history", memory_limit)
    print(f"\n{steps:,} steps ({size / GIB:.1f} GiB of Parquet, generated in {gen:.0f} s):")
    print(f"  history engine: {wall:.0f} s ({steps / wall:,.0f} steps/s), peak memory "
          f"{rss / GIB:.2f} GiB (target < 4 GiB: {'met' if rss < 4 * GIB else 'NOT met'}), "
          f"DuckDB memory limit {memory_limit}")  # fmt: skip
    shares = ", ".join(f"{k} {v:.1%}" for k, v in doc["attribution"].items())
    print(f"  {doc['steps']:,} steps: {shares}; verdict {doc['verdict']['bottleneck']}")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--steps", type=int, default=100_000_000)
    p.add_argument("--memory-limit", default="2GB")
    p.add_argument("--dir", help="where the histories go (default: a temporary directory)")
    p.add_argument("--compare-only", action="store_true", help="only the 1M comparison")
    p.add_argument("--keep", action="store_true", help="keep the generated histories")
    args = p.parse_args()
    root = args.dir or tempfile.mkdtemp(prefix="hydra-profiler-history-bench-")
    os.makedirs(root, exist_ok=True)
    try:
        if not args.compare_only:
            big(root, args.steps, args.memory_limit)
        compare(root, args.memory_limit)
    finally:
        if not args.keep:
            for name in ("history-1m", "history-big"):
                shutil.rmtree(os.path.join(root, name), ignore_errors=True)


if __name__ == "__main__":
    main()
