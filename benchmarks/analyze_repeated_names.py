#!/usr/bin/env python3
"""`analyze` on a long C++ journal whose steps share store names, against the same journal
with every name made distinct: the two should cost about the same (the copy-line join is
linear; it was quadratic in the steps sharing a name, 2M lines extrapolated to 1.75 h).

A farm rebuilds the same names all day (``source``, ``hook``, ``stdenv-linux``, a package
per evaluation), so the benchmark repeats one testbed journal K times, each repetition with
fresh store hashes, build ids + 1000 k and its times shifted after the previous one; in the
"distinct" variant each repetition's names also get a ``k<k>`` prefix. Then
``hydra-profiler collect logs`` and ``hydra-profiler analyze`` time each. Prints lines,
seconds of both commands for both variants, and the ratio repeated / distinct (target:
within 2x).

Usage::

    python benchmarks/analyze_repeated_names.py [--lines 200000] [--keep DIR]
"""

from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time

HASH = re.compile(r"([0-9a-df-np-sv-z]{32})-([^\s'\u2019/]+)")
BUILD = re.compile(r"\b(builds? )(\d+)")
STAMP = re.compile(r"^(\w{3} [ \d]\d \d\d:\d\d:\d\d)")
NIX32 = "0123456789abcdfghijklmnpqrsvwxyz"
YEAR = 2026


def _hash(text: str) -> str:
    digest = hashlib.sha256(text.encode()).digest()
    return "".join(NIX32[b % 32] for b in digest[:32])


def _parse(stamp: str) -> dt.datetime:
    return dt.datetime.strptime(f"{YEAR} {stamp} +0000", "%Y %b %d %H:%M:%S %z")


def _format(t: dt.datetime) -> str:
    return f"{t:%b} {t.day:>2} {t:%H:%M:%S}"


def generate(source: list[str], lines: int, distinct: bool, out: str) -> int:
    """Repeat ``source`` until ``lines`` lines, as described in the module docstring."""
    stamps = [STAMP.match(line) for line in source]
    times = [_parse(m.group(1)) for m in stamps if m]
    first, span = times[0], (times[-1] - times[0]) + dt.timedelta(seconds=5)
    written = 0
    with open(out, "w", encoding="utf-8") as f:
        k = 0
        while written < lines:
            shift = span * k
            prefix = f"k{k}" if distinct else ""

            def path(m: re.Match[str], k: int = k, prefix: str = prefix) -> str:
                return f"{_hash(f'{m.group(1)}/{k}')}-{prefix}{m.group(2)}"

            def build(m: re.Match[str], k: int = k) -> str:
                return f"{m.group(1)}{int(m.group(2)) + 1000 * k}"

            for line in source:
                m = STAMP.match(line)
                if m is None:
                    continue
                when = first + (_parse(m.group(1)) - first) + shift
                body = BUILD.sub(build, HASH.sub(path, line[m.end() :]))
                f.write(_format(when) + body)
                written += 1
                if written >= lines:
                    break
            k += 1
    return written


def timed(argv: list[str]) -> float:
    t0 = time.perf_counter()
    done = subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    if done.returncode:
        sys.exit(f"{' '.join(argv)}: exit {done.returncode}: {done.stderr.strip()[-2000:]}")
    return time.perf_counter() - t0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--lines", type=int, default=200_000)
    ap.add_argument("--steps", type=int, default=60, help="steps of the testbed journal")
    ap.add_argument("--keep", help="work directory to keep (default: a temporary one)")
    args = ap.parse_args(argv)
    work = args.keep or tempfile.mkdtemp(prefix="repeated-names-")
    os.makedirs(work, exist_ok=True)
    exe = [sys.executable, "-m", "profiler"]
    tb = os.path.join(work, "tb")
    if not os.path.isfile(os.path.join(tb, "hydra-queue-runner.journal.txt")):
        timed([*exe, "testbed", "--generation", "cxx", "--steps", str(args.steps),
               "--build-scale", "0.05", "--out", tb])  # fmt: skip
    with open(os.path.join(tb, "hydra-queue-runner.journal.txt"), encoding="utf-8") as f:
        source = f.readlines()
    print(f"{'variant':<9} {'lines':>9} {'collect s':>10} {'analyze s':>10}")
    seconds = {}
    for variant in ("distinct", "repeated"):
        journal = os.path.join(work, f"{variant}.journal.txt")
        n = generate(source, args.lines, variant == "distinct", journal)
        run = os.path.join(work, f"run-{variant}")
        shutil.rmtree(run, ignore_errors=True)
        collect = timed([*exe, "collect", "logs", "--file", journal, "--out", run])
        analyse = timed([*exe, "analyze", run, "--codec", "xz:6", "--format", "json"])
        seconds[variant] = analyse
        print(f"{variant:<9} {n:>9,} {collect:>10.1f} {analyse:>10.1f}")
    ratio = seconds["repeated"] / seconds["distinct"]
    print(f"analyze repeated / distinct names: {ratio:.2f}x (target: within 2x)")
    if not args.keep:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
