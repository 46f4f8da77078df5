#!/usr/bin/env python3
"""Journal parsing throughput: ``collect logs`` against ``grep -cE`` and ``grep -c .``.

Writes a synthetic C++ queue-runner journal (journalctl short text, the messages of
reference ``hydra.md`` §2.2 in realistic proportions; 2M lines by default), then times, best
of a few rounds on the same file:

- ``collect logs --file`` end to end into a run (read, parse, Parquet parts): the figure the
  targets are about, within 3x of ``grep -cE`` on the step lines and within 5x of
  ``grep -c .`` (the I/O floor);
- the columnar pass alone (the file split into a column and parsed, no Parquet), the file
  only read and split into a column, and the line-by-line parser (the reference the
  columnar pass is checked equal to);
- ``grep -cE`` with a pattern of the step lines and ``grep -c .``, in the C locale.

Usage::

    python benchmarks/log_parse.py [--lines 2000000] [--rounds 3]
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
    """The columnar pass alone, as ``collect logs --file`` runs it: 16 MiB blocks of bytes
    split into a column (``Block.column``) and parsed (``JournalParser.feed_frame``), no
    Parquet."""
    from profiler.collect.journal.collector import FILE_BATCH_BYTES, Block
    from profiler.collect.journal.parse import JournalParser

    start = time.perf_counter()
    parser = JournalParser(path, 2026, False)
    with open(path, "rb") as f:
        while data := f.read(FILE_BATCH_BYTES):
            block = Block(data + (f.readline() if not data.endswith(b"\n") else b""))
            column = block.column()
            if column is None or parser.feed_frame(column) is None:
                parser.feed_all(block.lines())
    return time.perf_counter() - start


def _time_split(path: str) -> float:
    """Only read the file and split it into a column, as the columnar pass does first."""
    from profiler.collect.journal.collector import FILE_BATCH_BYTES, Block

    start = time.perf_counter()
    with open(path, "rb") as f:
        while data := f.read(FILE_BATCH_BYTES):
            Block(data + (f.readline() if not data.endswith(b"\n") else b"")).column()
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
    ap.add_argument("--lines", type=int, default=2_000_000)
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    best: dict[str, float] = {}

    def timed(name: str, seconds: float) -> None:
        best[name] = min(best.get(name, float("inf")), seconds)

    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "hydra-queue-runner.journal.txt")
        n = write_journal(path, args.lines)
        size = os.path.getsize(path)
        n_events = n_grep = 0
        for r in range(args.rounds):
            print(f"round {r + 1}/{args.rounds}", file=sys.stderr)
            timed("grep -c .", _time_grep(path, ".")[0])
            elapsed, n_grep = _time_grep(path, "-E", GREP_STEPS)
            timed("grep -cE", elapsed)
            timed("collect logs", _time_import(path, tmp))
            timed("columnar", _time_columns(path))
            timed("split", _time_split(path))
            elapsed, n_events = _time_parse(path)
            timed("line parser", elapsed)
    print(f"journal: {n:,} lines, {size / 1e6:.1f} MB, {n_events:,} events, "
          f"grep -E matched {n_grep:,}")  # fmt: skip
    rows = (
        ("collect logs", "read, parse, Parquet parts: end to end into the run"),
        ("columnar", "split into a column and parsed (polars), no Parquet"),
        ("split", "only read and split into a column"),
        ("line parser", "parse_lines, line by line (the reference)"),
        ("grep -cE", "the step lines' pattern"),
        ("grep -c .", "the I/O floor"),
    )
    for name, what in rows:
        seconds = best[name]
        print(f"{name:13}: {n / seconds:12,.0f} lines/s {seconds * 1e3:7.0f} ms  "
              f"{seconds / best['grep -cE']:5.1f}x grep -cE  "
              f"{seconds / best['grep -c .']:6.1f}x grep -c .  ({what})")  # fmt: skip
    ours = best["collect logs"]
    for ref, target in (("grep -cE", 3), ("grep -c .", 5)):
        ratio = ours / best[ref]
        print(f"collect logs / {ref}: {ratio:.1f}x (target <= {target}x: "
              f"{'met' if ratio <= target else 'NOT met'})")  # fmt: skip


if __name__ == "__main__":
    main()
