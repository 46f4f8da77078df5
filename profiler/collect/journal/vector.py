"""The journal parser's columnar pass: a batch of journalctl short lines parsed as columns.

:class:`~profiler.collect.journal.parse.JournalParser` reads one line at a time in Python;
most of a queue runner's journal is one shape (``Mon DD HH:MM:SS host unit[pid]: message``
with a C++ message), which a columnar engine parses many times faster: Polars, whose string
kernels run the Rust ``regex`` crate over whole columns (``benchmarks/log_engines.py``: 2.7x
``grep -cE`` on 2M lines where the line-by-line parser takes 12x). This module takes a batch
only when **every** line has that shape (no ``<N>`` prefix, no sub-second stamp, no blank
line, a message not starting with a digit or ``<``, only printable ASCII and Nix's quotes,
dates that exist, fields that convert to 64-bit numbers); any other batch returns None and
goes line by line, so the events are the same either way (the line parser is the reference:
tests/unit/test_journal_vector.py checks it on hypothesis-generated lines of every C++
catalogue entry and through ``collect logs`` into the run's table). The parser's state
(year, last month, each unit's PID, the event a continuation line would join) is taken in
and handed back, so batches of either kind follow each other freely.

Polars is optional (``pip install 'hydra-profiler[fast-logs]'``); without it every batch goes
line by line.
"""

from __future__ import annotations

import calendar
import os
import re
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from profiler.collect.journal import rules

MONTH_NUMBERS = {m: i for i, m in enumerate(calendar.month_abbr) if m}
_Q = "\u2018\u2019"  # the quotes Nix prints
# The one shape a batch must have, every line (``Mon DD HH:MM:SS host unit[pid]: message``,
# the line parser's header with a C++ message), and only characters on which Python's re and
# the Rust regex crate agree for every class the catalogue uses: printable ASCII and Nix's
# quotes (\s differs on \x1c-\x1f, \w on numerals like ½, ...). Host: no space; unit: no
# space, ``[`` or ``:``; the message starts with none of space, a digit or ``<``. Checked
# with one match (a DFA, no captures); the fields are then cut at fixed offsets and at the
# first `` ``, ``[`` and ``]: `` after the stamp, which is where the line parser's groups end
# on a line of this shape.
_SHAPE = (
    r"^(?:Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec) [ 0-9][0-9] "
    r"[0-9][0-9]:[0-9][0-9]:[0-9][0-9] "
    rf"[!-~{_Q}]+ [!-9;-Z\\-~{_Q}]+\[[0-9]+\]: [!-/:;=-~{_Q}][ -~{_Q}]*$"
)
_WHOLE = "hydra_profiler_whole_match"  # a group name no catalogue pattern uses
_RUST_UNITS = ("hydra-queue-runner-dev", "hydra-queue-builder-dev", "hydra-builder")
MIN_BATCH_LINES = 2000  # fewer lines are not worth a columnar pass
_WORKERS = max(1, min(4, os.cpu_count() or 1))


@dataclass
class State:
    """What a batch needs from the lines before it, and hands on to the lines after it."""

    year: int
    last_month: int
    pids: dict[tuple[str | None, str], int]


@dataclass
class BatchResult:
    events: Any  # a polars DataFrame, one row per event, in line order
    understood: int
    unknown: Counter[str]
    lines: int
    last_event: dict[str, Any] | None  # the last line's event (None: the last line unknown)


def available() -> bool:
    try:
        import polars  # noqa: F401
    except ImportError:
        return False
    return True


def _compatible(pattern: str) -> bool:
    """Whether the Rust regex crate reads ``pattern`` as Python's ``re`` does: no lookaround
    or backreferences (which it lacks)."""
    return not re.search(r"\(\?[=!<]|\\[1-9]", pattern)


def parse_batch(lines: list[str], state: State) -> BatchResult | None:
    """The events of ``lines`` (all of the handled shape), or None to go line by line."""
    if len(lines) < MIN_BATCH_LINES or not available():
        return None
    import polars as pl

    text = pl.Series("line", [s.rstrip("\r\n") for s in lines], dtype=pl.Utf8)
    return parse_column(text, state)


def parse_column(text: Any, state: State) -> BatchResult | None:
    """:func:`parse_batch` of a polars string Series of lines (no line ends)."""
    import polars as pl

    if len(text) < MIN_BATCH_LINES:
        return None
    line = pl.col("line")
    rest = line.str.slice(16)
    try:
        head = (
            pl.DataFrame({"line": text})
            .lazy()
            .select(
                line.str.contains(_SHAPE).all().alias("shaped"),
                line.str.slice(0, 3).replace_strict(MONTH_NUMBERS, default=0,
                                                    return_dtype=pl.Int32).alias("month"),
                line.str.slice(4, 2).str.strip_chars_start(" ").cast(pl.Int32, strict=False)
                .alias("day"),
                *(line.str.slice(at, 2).cast(pl.Int32, strict=False).alias(name)
                  for name, at in (("hh", 7), ("mm", 10), ("ss", 13))),
                rest.str.splitn(" ", 2).alias("_host"),
            )
            .with_columns(
                pl.col("_host").struct.field("field_0").alias("host"),
                pl.col("_host").struct.field("field_1").str.splitn("[", 2).alias("_unit"),
            )
            .with_columns(
                pl.col("_unit").struct.field("field_0").alias("unit"),
                pl.col("_unit").struct.field("field_1").str.splitn("]: ", 2).alias("_pid"),
            )
            .select(
                "shaped", "month", "day", "hh", "mm", "ss", "host", "unit",
                pl.col("_pid").struct.field("field_0").cast(pl.Int64).alias("pid"),
                pl.col("_pid").struct.field("field_1").alias("msg"),
                pl.col("_pid").struct.field("field_1").str.splitn(" ", 2).struct.field("field_0")
                .alias("first"),
            )
            .collect()
        )  # fmt: skip
    except pl.exceptions.PolarsError:  # a PID beyond 64 bits (the line parser says so)
        return None
    if not head["shaped"][0]:
        return None
    frame = head.drop("shaped").with_row_index("i")
    if not _times(frame):
        return None
    frame = _stamps(frame, state)
    if frame is None:
        return None
    return _events(frame, state)


def _times(frame: Any) -> bool:
    """Clock values the line parser accepts (it refuses hh > 23, mm > 59, ss >= 61; a leap
    second is left to it)."""
    import polars as pl

    bad = frame.select(
        ((pl.col("hh") > 23) | (pl.col("mm") > 59) | (pl.col("ss") > 59)).any()
    ).item()
    return not bad


def _stamps(frame: Any, state: State) -> Any:
    """Epoch seconds, with the year carried over a December -> January turn as the line
    parser does (``JournalParser._yearless``); None when a date does not exist."""
    import polars as pl

    prev = frame["month"].shift(1, fill_value=state.last_month)
    turn = ((frame["month"] == 1) & (prev == 12)).cast(pl.Int32)
    years = turn.cum_sum() + state.year
    frame = frame.with_columns(years.alias("year"))
    try:
        dates = frame.select(pl.date(pl.col("year"), pl.col("month"), pl.col("day"))).to_series()
    except pl.exceptions.PolarsError:  # a day that does not exist (Feb 30)
        return None
    same = (dates.dt.day() == frame["day"]) & (dates.dt.month() == frame["month"])
    if dates.null_count() or not bool(same.all()):
        return None
    days = dates.cast(pl.Int64)
    ts = (days * 86400 + frame["hh"] * 3600 + frame["mm"] * 60 + frame["ss"]).cast(pl.Float64)
    return frame.with_columns(ts.alias("ts"))


def _restarts(frame: Any, state: State) -> list[tuple[int, dict[str, Any]]]:
    """(line index, event) for each line whose unit has another PID than before it (the line
    parser's ``_pid``); only lines whose host, unit or PID differ from the line before are
    looked at, as there it looks."""
    import polars as pl

    key = pl.struct("host", "unit", "pid")
    moved = frame.filter(key.ne_missing(key.shift(1)) | (pl.col("i") == 0))
    out = []
    for i, ts, host, unit, pid in moved.select("i", "ts", "host", "unit", "pid").iter_rows():
        old = state.pids.get((host, unit))
        state.pids[host, unit] = pid
        if old is not None and old != pid:
            out.append((i, {"ts": ts, "host": host, "pid": pid, "priority": None,
                            "generation": "cxx", "event": "runner_restart", "unit": unit,
                            "old_pid": old}))  # fmt: skip
    return out


@dataclass
class _Matched:
    """One first word's lines, matched against its rules."""

    parts: list[Any]
    understood: int
    unknown: Counter[str]


def _match_group(word: str, group: Any) -> _Matched | None:
    """The events of the lines whose message starts with ``word``: each rule takes the lines
    the ones before it left (the line parser's first match wins), by one pass per rule: a
    match when the rule has no fields, else a capture with the whole match as a group of its
    own (which says which lines matched). None when a rule needs the line parser."""
    import polars as pl

    from profiler.collect.journal.parse import normalise

    remaining = group
    parts: list[Any] = []
    understood = 0
    for rule in (*rules.PLAIN.by_first.get(word, ()), *rules.PLAIN.anywhere):
        if remaining.is_empty():
            break
        pattern = rule.message.pattern
        if not _compatible(pattern):
            return None
        if rule.names:
            anchored = f"^(?P<{_WHOLE}>{pattern})$"
            found = remaining["msg"].str.extract_groups(anchored).struct.unnest()
            hit = found[_WHOLE].is_not_null()
        else:
            found, hit = None, remaining["msg"].str.contains(f"^(?:{pattern})$")
        if not bool(hit.any()):
            continue
        rows = remaining.filter(hit)
        remaining = remaining.filter(~hit)
        fields = found.filter(hit).drop(_WHOLE) if found is not None else pl.DataFrame()
        part = _rule_frame(rule, rows, fields)
        if part is None:
            return None
        parts.append(part)
        understood += len(rows)
    unknown: Counter[str] = Counter(normalise(m) for m in remaining["msg"].to_list())
    return _Matched(parts, understood, unknown)


def _events(frame: Any, state: State) -> BatchResult | None:
    import polars as pl

    restarts = _restarts(frame, state)
    groups = frame.partition_by("first", maintain_order=True, as_dict=True)
    # the words' passes in parallel: polars releases the GIL in its string kernels, and one
    # kernel runs on one core (benchmarks/log_parse.py)
    with ThreadPoolExecutor(max_workers=min(len(groups), _WORKERS) or 1) as pool:
        matched = list(pool.map(lambda kv: _match_group(str(kv[0][0]), kv[1]), groups.items()))
    parts: list[Any] = []
    unknown: Counter[str] = Counter()
    understood = 0
    for m in matched:
        if m is None:
            return None
        parts += m.parts
        understood += m.understood
        unknown.update(m.unknown)
    if restarts:
        parts.append(pl.DataFrame([{"i": i, "sub": 0, **ev} for i, ev in restarts]))
    n = len(frame)
    events = (
        pl.concat(parts, how="diagonal_relaxed").sort(pl.col("i") * 2 + pl.col("sub"))
        if parts
        else pl.DataFrame()
    )
    last = None
    if parts and events["i"][-1] == n - 1 and events["sub"][-1] == 1:
        row = events.row(len(events) - 1, named=True)
        last = {
            k: v
            for k, v in row.items()
            if (v is not None or k == "priority") and k not in ("i", "sub")
        }
    state.last_month = int(frame["month"][-1])
    state.year = int(frame["year"][-1])
    return BatchResult(events.drop("i", "sub") if parts else events, understood, unknown, n, last)


_CASTS = {"int": "Int64", "float": "Float64"}


def _rule_frame(rule: rules.Rule, rows: Any, fields: Any) -> Any:
    """The events of ``rows`` (all matching ``rule``; ``fields`` their named groups) as
    columns, the fields cast as the line parser converts them; None when a field's type is
    not one a cast reproduces (json)."""
    import polars as pl

    program = rule.message.program
    generation = rules.GENERATION.get(program)
    gen = (
        pl.lit(generation)
        if generation
        else pl.when(pl.col("msg").str.contains_any(list(_RUST_UNITS)))
        .then(pl.lit("rust"))
        .otherwise(pl.lit("cxx"))
    )
    out = rows.select(
        "i",
        pl.lit(1).alias("sub"),
        "ts",
        "host",
        "pid",
        pl.lit(None).alias("priority"),
        gen.alias("generation"),
        "unit",
        pl.lit(rule.event).alias("event"),
        pl.lit(program).alias("program"),
    )
    if rule.names:
        fields.columns = list(rule.names)
        kinds = rule.message.types
        casts = []
        for name in rule.names:
            kind = kinds.get(name, "str")
            if kind == "str":
                casts.append(pl.col(name))
            elif kind in _CASTS:
                casts.append(pl.col(name).cast(getattr(pl, _CASTS[kind]), strict=True))
            else:
                return None
        try:
            fields = fields.select(casts)
            # a field named like an envelope column (a message's pid) replaces it where it
            # took part, as the line parser's dict update does
            shared = [n for n in fields.columns if n in out.columns]
            out = out.with_columns(pl.coalesce(fields[n], out[n]).alias(n) for n in shared).hstack(
                fields.drop(shared)
            )
        except pl.exceptions.PolarsError:
            return None
    return out
