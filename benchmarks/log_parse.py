#!/usr/bin/env python3
"""Journal parsing throughput: ``parse_lines`` against ``grep -c`` on the same file.

Writes a synthetic C++ queue-runner journal (journalctl short text, the messages of
reference ``hydra.md`` §2.2 in realistic proportions, ~200k lines), then times the parser
(file read included) and ``grep -c .`` (the I/O floor), best of a few rounds, and prints
lines/s for both and their ratio. The target is within 3x of grep.

Usage::

    python benchmarks/log_parse.py [--lines 200000] [--rounds 3]
"""

from __future__ import annotations

import argparse
import calendar
import os
import random
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from profiler.collect.journal.parse import parse_lines

ALPHA = "0123456789abcdfghijklmnpqrsvwxyz"


def _q(text: str) -> str:
    return f"\u2018{text}\u2019"


def _messages(rng: random.Random, build_id: int) -> list[str]:
    """The lines one build contributes."""
    h = "".join(rng.choice(ALPHA) for _ in range(32))
    drv, out = f"/nix/store/{h}-pkg-{build_id}.drv", f"/nix/store/{h}-pkg-{build_id}"
    machine = f"ssh://builder{rng.randint(1, 9)}"
    nar = rng.randint(1000, 50_000_000)
    msgs = [
        "<5>checking the queue for builds...",
        f"<6>loading build {build_id} (nixpkgs:trunk:pkg-{build_id}.x86_64-linux)",
        f"<5>performing step {_q(drv)} 1 times on {_q(machine)} "
        f"(needed by build {build_id} and {rng.randint(0, 40)} others)",
        f"<6>copying path '{out}' ({nar} bytes, compressed {rng.uniform(0, 90):.1f}% "
        f"in {rng.randint(1, 90000)} ms) to binary cache",
        f"<5>uploaded 's3://cache/nar/{h}.nar.xz' ({nar // 3} bytes) in {rng.randint(5, 900)} ms",
        f"<5>marking build {build_id} as succeeded",
    ]
    if rng.random() < 0.05:
        msgs.append(f"<5>will retry {_q(drv)} after {rng.randint(60, 600)}s")
    if rng.random() < 0.05:
        msgs.append(
            f"<3>warning: {rng.randint(7, 20)} concurrent database updates; "
            "PostgreSQL may be stalled"
        )
    return msgs


def write_journal(path: str, n_lines: int) -> int:
    """A short-format journal of about ``n_lines`` lines; returns the exact count."""
    rng = random.Random(1)
    t = calendar.timegm((2026, 1, 1, 0, 0, 0))
    count, build_id = 0, 1000
    with open(path, "w", encoding="utf-8") as f:
        while count < n_lines:
            for msg in _messages(rng, build_id):
                t += rng.randint(0, 3)
                st = time.gmtime(t)
                stamp = f"{time.strftime('%b', st)} {st.tm_mday:2d} {time.strftime('%H:%M:%S', st)}"
                f.write(f"{stamp} hydra hydra-queue-runner[4242]: {msg[3:]}\n")
                count += 1
            build_id += 1
    return count


def _time_import(path: str, tmp: str) -> float:
    """`collect logs --file` in-process: parse, store as Parquet parts, compact."""
    from profiler.collect.journal.collector import LogCollector
    from profiler.store import Run, compact

    run_dir = os.path.join(tmp, f"run-{time.monotonic_ns()}")
    start = time.perf_counter()
    with Run.open(run_dir) as run:
        LogCollector(run, year=2026, log=lambda _m: None).collect_file(path)
    compact(run_dir)
    return time.perf_counter() - start


def _time_columns(path: str) -> float:
    """The columnar pass alone (``JournalParser.feed_frame``, as ``collect logs --file``
    runs it), in 16 MiB batches of lines."""
    from profiler.collect.journal.parse import JournalParser

    start = time.perf_counter()
    parser = JournalParser(path, 2026, False)
    with open(path, encoding="utf-8") as f:
        while batch := f.readlines(16 << 20):
            if parser.feed_frame(batch) is None:
                parser.feed_all(batch)
    return time.perf_counter() - start


def _time_parse(path: str) -> tuple[float, int]:
    start = time.perf_counter()
    with open(path, encoding="utf-8") as f:
        events, summary = parse_lines(f, source=path, year=2026)
    elapsed = time.perf_counter() - start
    assert not summary.unknown, summary.unknown
    assert not summary.malformed, summary.malformed
    return elapsed, len(events)


# What an operator would grep for to pull the same step lines out of a journal, written the
# way grep runs fastest (C locale, one DFA); it matches and counts, it extracts nothing.
GREP_STEPS = (
    r"^[A-Z][a-z]{2} [ 0-9][0-9] [0-9:]{8} [^ ]+ [^[ ]+\[[0-9]+\]: ("
    r"performing step .[^ ]+. [0-9]+ times on .[^ ]+. \(needed by build [0-9]+ and [0-9]+ others\)"
    r"|copying path '[^']+' \([0-9]+ bytes, compressed [0-9.]+% in [0-9]+ ms\) to binary cache"
    r"|uploaded '[^']+' \([0-9]+ bytes\) in [0-9]+ ms"
    r"|marking build [0-9]+ as (succeeded|failed)"
    r"|checking the queue for builds.*"
    r"|loading build [0-9]+ \(.*\)"
    r"|will retry .* after [0-9]+s"
    r"|warning: [0-9]+ concurrent database updates; PostgreSQL may be stalled)$"
)


def _time_grep(path: str, *pattern: str) -> tuple[float, int]:
    start = time.perf_counter()
    done = subprocess.run(
        ["grep", "-c", *pattern, path],
        check=True,
        capture_output=True,
        env={**os.environ, "LC_ALL": "C"},
    )
    return time.perf_counter() - start, int(done.stdout)


def main() -> None:
    """Generate, time, print."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--lines", type=int, default=200_000)
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "hydra-queue-runner.journal.txt")
        n = write_journal(path, args.lines)
        size = os.path.getsize(path)
        parse_best, n_events = float("inf"), 0
        floor_best = steps_best = import_best = columns_best = float("inf")
        for _ in range(args.rounds):
            floor_best = min(floor_best, _time_grep(path, ".")[0])
            elapsed_grep, n_grep = _time_grep(path, "-E", GREP_STEPS)
            steps_best = min(steps_best, elapsed_grep)
            elapsed, n_events = _time_parse(path)
            parse_best = min(parse_best, elapsed)
            import_best = min(import_best, _time_import(path, tmp))
            try:
                columns_best = min(columns_best, _time_columns(path))
            except ImportError:
                pass
    print(f"journal: {n} lines, {size / 1e6:.1f} MB, {n_events} events, grep -E matched {n_grep}")
    print(f"parse_lines       : {n / parse_best:12,.0f} lines/s ({parse_best * 1e3:.0f} ms)")
    print(f"collect logs      : {n / import_best:12,.0f} lines/s ({import_best * 1e3:.0f} ms, "
          "parse + Parquet parts + compaction)")  # fmt: skip
    if columns_best < float("inf"):
        print(f"columnar parse    : {n / columns_best:12,.0f} lines/s "
              f"({columns_best * 1e3:.0f} ms, feed_frame; polars)")  # fmt: skip
    print(f"grep -cE <steps>  : {n / steps_best:12,.0f} lines/s ({steps_best * 1e3:.0f} ms)")
    print(f"grep -c . (floor) : {n / floor_best:12,.0f} lines/s ({floor_best * 1e3:.0f} ms)")
    print(f"parse / grep -cE <steps> time: {parse_best / steps_best:.1f}x (target <= 3x)")
    print(f"parse / grep -c . time       : {parse_best / floor_best:.1f}x")
    if columns_best < float("inf"):
        print(f"columnar / grep -cE time     : {columns_best / steps_best:.1f}x (target <= 3x)")
        print(
            f"collect logs / grep -cE time : {import_best / steps_best:.1f}x "
            f"(grep -c .: {import_best / floor_best:.0f}x; target 5x)"
        )


if __name__ == "__main__":
    main()
