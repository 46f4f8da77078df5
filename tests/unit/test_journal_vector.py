"""The journal's columnar pass gives exactly the line parser's events (the line parser is the
reference): on hypothesis-generated messages of every C++ catalogue entry, on batches that mix
in lines it does not take, across a year's end and a runner restart, and through
``collect logs`` into the run's table."""

from __future__ import annotations

import calendar
import time
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from profiler.collect.journal import parse, rules, vector

try:
    import polars  # noqa: F401
except ImportError:
    from tests.conftest import STRICT

    if STRICT:
        pytest.fail("CI=true: polars not installed (the test extra; scripts/setup-tests.sh)")
    pytest.skip("polars not installed (pip install 'hydra-profiler[fast-logs]')",
                allow_module_level=True)  # fmt: skip

PLAIN = [r for group in rules.PLAIN.by_first.values() for r in group] + list(rules.PLAIN.anywhere)


@pytest.fixture(autouse=True)
def small_batches(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(vector, "MIN_BATCH_LINES", 1)


def both(lines: list[str], year: int = 2026) -> tuple[Any, Any, bool]:
    """(line-by-line result, columnar result, whether the columnar pass took the batch)."""
    slow = parse.JournalParser("x", year, False)
    slow.feed_all(lines)
    fast = parse.JournalParser("x", year, False)
    frame = fast.feed_frame(lines)
    took = frame is not None
    if took:
        fast.events.extend(parse.event_dicts(frame))
    else:
        fast.feed_all(lines)
    return (slow.events, slow.summary), (fast.events, fast.summary), took


def stamp(t: int) -> str:
    s = time.gmtime(t)
    return f"{time.strftime('%b', s)} {s.tm_mday:2d} {time.strftime('%H:%M:%S', s)}"


T0 = calendar.timegm((2026, 3, 1, 10, 0, 0))


# mostly the characters the columnar pass takes (so it is exercised), sometimes any
SAFE = st.characters(min_codepoint=0x20, max_codepoint=0x7E) | st.sampled_from("\u2018\u2019")
ANY = st.characters(codec="utf-8")


@st.composite
def message(draw: st.DrawFn) -> str:
    rule = draw(st.sampled_from(PLAIN))
    alphabet = draw(st.sampled_from([SAFE, SAFE, SAFE, ANY]))
    return draw(st.from_regex(f"(?:{rule.message.pattern})", fullmatch=True, alphabet=alphabet))


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(message(), min_size=1, max_size=8), st.integers(0, 3))
def test_generated_catalogue_lines_parse_alike(msgs: list[str], pid_changes: int) -> None:
    lines = [
        f"{stamp(T0 + i)} hydra hydra-queue-runner[{4000 + min(i, pid_changes)}]: {m}"
        for i, m in enumerate(msgs)
    ]
    slow, fast, _took = both(lines)
    assert fast == slow


@pytest.mark.parametrize("rule", PLAIN, ids=[r.event for r in PLAIN])
@settings(max_examples=4, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_every_catalogue_entry_is_taken_or_handed_back_for_a_reason(
    rule: rules.Rule, data: st.DataObject
) -> None:
    """Each C++ entry's lines: the same events either way, and the columnar pass takes them
    unless a field does not convert as a 64-bit number or JSON (the line parser then reports
    the line malformed, or keeps a number Arrow could not hold)."""
    msg = data.draw(st.from_regex(f"(?:{rule.message.pattern})", fullmatch=True, alphabet=SAFE))
    if not msg or msg[0] in " <" or msg[0].isdigit():
        return  # another shape: not this pass's
    line = f"{stamp(T0)} hydra hydra-queue-runner[42]: {msg}"
    slow, fast, took = both([line])
    assert fast == slow
    if not took:
        kinds = set(rule.message.types.values())
        big = any(isinstance(v, int) and abs(v) >= 2**63 for e in slow[0] for v in e.values())
        assert slow[1].malformed or "json" in kinds or big, (rule.event, msg)


def test_year_end_restart_and_unknown_lines() -> None:
    dec31 = calendar.timegm((2025, 12, 31, 23, 59, 58))
    msgs = ["checking the queue for builds...", "some message nobody knows 42",
            "marking build 7 as succeeded", "checking the queue for builds..."]  # fmt: skip
    lines = [
        f"{stamp(dec31 + i)} hydra hydra-queue-runner[{100 if i < 2 else 200}]: {m}"
        for i, m in enumerate(msgs)
    ]
    slow, fast, took = both(lines, year=2025)
    assert took and fast == slow
    events = fast[0]
    assert [e["event"] for e in events][-3:] == ["runner_restart", "build_succeeded",
                                                 "queue_check"]  # fmt: skip
    assert events[-1]["ts"] == dec31 + 3 and sum(fast[1].unknown.values()) == 1


@pytest.mark.parametrize(
    "odd",
    [
        "<5>checking the queue for builds...",  # a priority prefix
        "Mar  1 10:00:00.123 hydra hydra-queue-runner[42]: checking the queue for builds...",
        "   a continuation line",
        "Feb 30 10:00:00 hydra hydra-queue-runner[42]: checking the queue for builds...",
        "",
    ],
)
def test_a_batch_with_a_line_of_another_shape_goes_line_by_line(odd: str) -> None:
    good = f"{stamp(T0)} hydra hydra-queue-runner[42]: checking the queue for builds..."
    slow, fast, took = both([good, odd, good])
    assert not took and fast == slow


def test_collect_logs_writes_the_same_table(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from profiler.collect.journal.collector import LogCollector
    from profiler.store import Run, compact, read_run

    path = tmp_path / "journal.txt"
    with open(path, "w", encoding="utf-8") as f:
        for i in range(3000):
            pid = 4242 if i < 1500 else 4343
            msg = [f"loading build {i} (nixpkgs:trunk:pkg.x86_64-linux)",
                   f"marking build {i} as succeeded", "unknown words here"][i % 3]  # fmt: skip
            f.write(f"{stamp(T0 + i)} hydra hydra-queue-runner[{pid}]: {msg}\n")
        f.write("<5>a line of another shape\n")

    def collect(on: bool) -> Any:
        if not on:
            monkeypatch.setattr(vector, "available", lambda: False)
        run_dir = tmp_path / f"run-{on}"
        with Run.open(str(run_dir)) as run:
            LogCollector(run, year=2026, log=lambda _m: None).collect_file(str(path))
        compact(str(run_dir))
        monkeypatch.undo()
        monkeypatch.setattr(vector, "MIN_BATCH_LINES", 1)
        return read_run(str(run_dir)).table("log_events")

    fast, slow = collect(True), collect(False)
    cols = sorted(slow.columns)
    assert sorted(fast.columns) == cols and len(fast) == len(slow) == 2001
    import pandas as pd

    pd.testing.assert_frame_equal(fast[cols], slow[cols])


@given(
    st.lists(st.text(alphabet="ab \r\x0b\x1c\x1f\u2028é\ufeff", max_size=6), max_size=8),
    st.booleans(),
    st.sampled_from([b"", b"\xff", b"\xe2\x80"]),
)
def test_a_block_splits_lines_as_readlines_does(
    parts: list[str], final_newline: bool, damage: bytes
) -> None:
    """A file block read as bytes gives the line parser the lines a text reader's
    ``readlines`` would (errors replaced, split at ``\\n`` only, each keeping it) and the
    columnar pass the same lines without their ends, or no column when polars would read them
    otherwise (bytes that are not UTF-8, a leading byte-order mark, the CSV separator)."""
    import io

    from profiler.collect.journal.collector import Block

    text = "\n".join(parts) + ("\n" if final_newline and parts else "")
    data = text.encode() + damage
    expected = io.TextIOWrapper(io.BytesIO(data), encoding="utf-8", errors="replace", newline="\n")
    want = expected.readlines()
    block = Block(data)
    assert block.lines() == want
    assert len(block) == len(want)
    column = block.column()
    refused = not want or damage or text.startswith("\ufeff") or "\x1f" in text
    assert (column is None) == bool(refused)
    if column is not None:
        assert column.to_list() == [w.rstrip("\r\n") for w in want]
