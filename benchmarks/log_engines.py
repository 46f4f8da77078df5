#!/usr/bin/env python3
"""Candidate engines for parsing queue-runner journals at grep speed (issue 17), measured on
the same file in one run, against ``grep -cE`` on the step lines and ``grep -c .``.

Every contender reads the file and finds, for each line, the journalctl short header and the
first catalogue rule (C++ messages, :data:`profiler.collect.journal.rules.PLAIN`) its message
matches; what differs is how much of the job it does:

* ``ours``: :func:`profiler.collect.journal.parse.parse_lines`, the whole job (typed events
  as dicts, one line at a time in Python);
* ``polars``: a vectorised pass (Rust regex, all cores): lines as one column, the header
  cut by its fixed layout, then per first word the candidate rules' patterns by
  ``extract_groups`` in catalogue order, first match wins; columns per event kind, written as
  Parquet (the whole job, columnar; the fields are not yet converted to their types);
* ``hyperscan``: every rule (with the header in front) in one multi-pattern database, one scan
  of the whole buffer; gives which rule matched each line, no fields (Hyperscan has no
  capture groups, so the fields would still need a second pass);
* ``re2``: google-re2, one alternation of every rule matched per line from Python; which
  rule, no fields.

Engines that are not installed are reported as such (``pip install polars hyperscan
google-re2``). Usage::

    python benchmarks/log_engines.py [--lines 2000000] [--rounds 2]
"""

from __future__ import annotations

import argparse
import os
import re
import sys
import tempfile
import time
from collections.abc import Callable

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from log_parse import GREP_STEPS, _time_grep, write_journal

from profiler.collect.journal import rules
from profiler.collect.journal.parse import parse_lines

HEADER = (
    r"^(?:<(\d)>)?(\w{3}) ([ \d]\d) (\d\d:\d\d:\d\d(?:\.\d+)?) (\S+) ([^\s\[:]+)\[(\d+)\]: "
    r"(?:<(\d)>)?(.*)$"
)


def _plain_rules() -> list[rules.Rule]:
    out = [r for group in rules.PLAIN.by_first.values() for r in group]
    return out + list(rules.PLAIN.anywhere)


def _pattern(rule: rules.Rule) -> str:
    return rule.message.pattern


def run_ours(path: str) -> int:
    with open(path, encoding="utf-8") as f:
        events, _ = parse_lines(f, source=path, year=2026)
    return len(events)


def run_polars(path: str, tmp: str) -> int:
    import polars as pl

    lines = pl.read_csv(
        path, has_header=False, separator="\x1f", quote_char=None, new_columns=["line"],
        schema_overrides={"line": pl.Utf8},
    )  # fmt: skip
    # the short header has a fixed layout: slices and one split, no regex (a header regex
    # was 60% of the time); a line whose ident does not end in "]:" would take the slow path
    head = (
        lines.with_columns(
            pl.col("line").str.slice(0, 15).alias("stamp"),
            pl.col("line").str.slice(16).str.splitn(" ", 3).alias("parts"),
        )
        .unnest("parts")
        .rename({"field_0": "host", "field_1": "ident", "field_2": "msg"})
        .drop("line")
    )
    head = head.with_columns(pl.col("msg").str.extract(r"^(\S+)", 1).alias("first"))
    matched = 0
    by_first = rules.PLAIN.by_first
    for (word,), group in head.group_by(["first"]):
        remaining = group
        for rule in [*by_first.get(str(word), ()), *rules.PLAIN.anywhere]:
            if remaining.is_empty():
                break
            pattern = f"^(?:{_pattern(rule)})$"
            fields = remaining["msg"].str.extract_groups(pattern).struct.unnest()
            hit = fields[fields.columns[0]].is_not_null() if fields.width else None
            if hit is None:
                hit = remaining["msg"].str.contains(pattern)
            if hit.any():
                part = pl.concat([remaining.drop("msg"), fields], how="horizontal").filter(hit)
                part.write_parquet(os.path.join(tmp, f"{rule.event}-{matched}.parquet"))
                matched += int(hit.sum())
            remaining = remaining.filter(~hit)
    return matched


def run_hyperscan(path: str) -> int:
    import hyperscan

    with open(path, "rb") as f:
        data = f.read()
    exprs = []
    for rule in _plain_rules():
        body = re.sub(r"\(\?P<\w+>", "(", _pattern(rule))
        exprs.append(f"^[A-Z][a-z]{{2}} [ 0-9][0-9] [0-9:]{{8}} [^ ]+ [^\\[ ]+\\[[0-9]+\\]: "
                     f"(?:{body})$".encode())  # fmt: skip
    db = hyperscan.Database(mode=hyperscan.HS_MODE_BLOCK)
    flags = hyperscan.HS_FLAG_MULTILINE | hyperscan.HS_FLAG_SINGLEMATCH
    db.compile(expressions=exprs, ids=list(range(len(exprs))), flags=[flags] * len(exprs))
    count = [0]

    def on_match(_id: int, _from: int, _to: int, _flags: int, _ctx: object) -> None:
        count[0] += 1

    # SINGLEMATCH is per pattern per scan: scan line by line in blocks of lines
    step = 1 << 20
    pos = 0
    while pos < len(data):
        end = data.find(b"\n", min(pos + step, len(data) - 1))
        end = len(data) if end < 0 else end + 1
        for line in data[pos:end].splitlines():
            db.scan(line, match_event_handler=on_match)
        pos = end
    return count[0]


def run_re2(path: str) -> int:
    import re2

    combined = "|".join(f"(?:{re.sub(r'[(][?]P<[a-z_0-9]+>', '(', _pattern(r))})"
                        for r in _plain_rules())  # fmt: skip
    regex = re2.compile(HEADER.replace("(.*)$", f"(?:{combined})$"))
    n = 0
    with open(path, encoding="utf-8") as f:
        for line in f:
            if regex.match(line.rstrip("\n")):
                n += 1
    return n


def grep(path: str, *pattern: str) -> int:
    return _time_grep(path, *pattern)[1]


def best(call: Callable[[], int], rounds: int) -> tuple[float, int | str]:
    t, out = float("inf"), 0
    for _ in range(rounds):
        start = time.perf_counter()
        try:
            out = call()
        except ImportError as exc:
            return float("nan"), f"not installed ({exc.name})"
        t = min(t, time.perf_counter() - start)
    return t, out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--lines", type=int, default=2_000_000)
    ap.add_argument("--rounds", type=int, default=2)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "journal.txt")
        n = write_journal(path, args.lines)
        print(f"journal: {n} lines, {os.path.getsize(path) / 1e6:.0f} MB")
        floor, _ = best(lambda: grep(path, "."), args.rounds)
        steps, matched = best(lambda: grep(path, "-E", GREP_STEPS), args.rounds)
        print(f"{'grep -c .':12s} {floor:7.2f} s  (floor)")
        print(f"{'grep -cE':12s} {steps:7.2f} s  {matched} step lines")
        contenders: list[tuple[str, Callable[[], int]]] = [
            ("ours", lambda: run_ours(path)),
            ("polars", lambda: run_polars(path, tmp)),
            ("hyperscan", lambda: run_hyperscan(path)),
            ("re2", lambda: run_re2(path)),
        ]
        for name, call in contenders:
            t, out = best(call, args.rounds)
            if isinstance(out, str):
                print(f"{name:12s} {out}")
                continue
            print(f"{name:12s} {t:7.2f} s  {out} lines matched  {t / steps:5.1f}x grep -cE  "
                  f"{t / floor:6.1f}x grep -c .")  # fmt: skip


if __name__ == "__main__":
    main()
