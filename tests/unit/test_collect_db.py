"""``collect db`` without a database: the phase state machine, generation detection, the export
state read back from a run, and the command's option parsing."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import pytest

from profiler.collect.database.common import Backoff, classify_generation, phase_name
from profiler.collect.database.export import ExportState, load_state
from profiler.collect.database.track import PhaseTracker
from profiler.commands.argtypes import parse_time as parse_since
from profiler.errors import UsageError
from profiler.store import Run

K = (7, 1)
ROW: tuple[str, str] = ("ssh://build@b1", "x86_64-linux")


def tracker() -> tuple[PhaseTracker, list[dict[str, Any]]]:
    rows: list[dict[str, Any]] = []
    return PhaseTracker(rows.append, 1.0), rows


def busy(code: int) -> dict[tuple[int, int], tuple[int, str, str]]:
    return {K: (code, *ROW)}


def brief(row: dict[str, Any]) -> tuple[Any, ...]:
    return (
        row["phase"],
        row["start_ts"],
        row["start_obs"],
        row["start_err_s"],
        row["end_ts"],
        row["end_obs"],
        row["end_err_s"],
        row["gap"],
    )


def test_notifications_sharpen_start_and_end() -> None:
    t, rows = tracker()
    t.observe(100.0, {})
    t.step_started(K, 100.3)
    t.observe(100.35, busy(1))  # the poll a notification triggers
    t.observe(101.35, busy(30))
    t.observe(102.35, busy(50))
    t.step_finished(K, 102.9)
    t.observe(102.95, {})
    assert [brief(r) for r in rows] == [
        ("preparing", 100.3, "notify", 0.0, 101.35, "poll", 1.0, False),
        ("building", 101.35, "poll", 1.0, 102.35, "poll", 1.0, False),
        ("post-processing", 102.35, "poll", 1.0, 102.9, "notify", 0.0, False),
    ]
    assert rows[0]["busy"] == 1 and rows[0]["machine"] == ROW[0] and rows[0]["system"] == ROW[1]
    assert rows[1]["duration_s"] == 1.0 and rows[1]["resolution_seconds"] == 1.0
    assert not t.active and not t.started and not t.finished


def test_a_finish_after_an_earlier_phase_bounds_it_loosely() -> None:
    t, rows = tracker()
    t.observe(10.0, busy(40))
    t.observe(11.0, busy(40))
    t.step_finished(K, 11.6)  # post-processing (50) may have run unseen in between
    t.observe(11.7, {})
    assert brief(rows[0])[3:] == (None, 11.6, "notify", 0.6, False)


def test_a_step_first_seen_past_preparing() -> None:
    t, rows = tracker()
    t.observe(0.0, {})
    t.step_started(K, 0.2)
    t.observe(0.9, busy(20))
    t.observe(1.9, {})  # gone without a notification: the poll bounds the end
    assert [brief(r) for r in rows] == [
        ("preparing", 0.2, "notify", 0.0, 0.9, "poll", pytest.approx(0.7), False),
        ("sending-inputs", 0.9, "poll", pytest.approx(0.7), 1.9, "poll", 1.0, False),
    ]


def test_steps_running_before_and_after_tracking() -> None:
    t, rows = tracker()
    t.observe(5.0, busy(30))
    t.observe(6.0, busy(30))
    t.close()
    assert [brief(r) for r in rows] == [
        ("building", 5.0, "initial", None, 6.0, "stop", None, False)
    ]
    assert not t.active


def test_a_step_between_two_polls_is_unobserved() -> None:
    t, rows = tracker()
    t.observe(0.0, {})
    t.step_started(K, 0.1)
    t.step_finished(K, 0.4)
    t.step_finished((8, 1), 0.5)  # never started while watched: nothing to say
    t.observe(1.0, {})
    assert [brief(r) for r in rows] == [
        ("unobserved", 0.1, "notify", 0.0, 0.4, "notify", 0.0, False)
    ]
    assert rows[0]["busy"] is None and rows[0]["duration_s"] == pytest.approx(0.3)


def test_an_outage_marks_the_phases_it_spans() -> None:
    t, rows = tracker()
    other = (9, 2)
    t.observe(0.0, busy(30))
    t.observe(1.0, busy(30))
    t.lost(1.5)
    t.lost(2.5)  # the first loss counts
    t.observe(10.0, {**busy(30), other: (40, *ROW)})  # back: 30 goes on, 9/2 appeared meanwhile
    t.observe(11.0, busy(40))
    t.observe(12.0, {})
    got = {(r["build"], r["phase"]): r for r in rows}
    building = got[(7, "building")]
    assert (building["gap"], building["end_ts"], building["end_err_s"]) == (True, 11.0, 1.0)
    assert got[(7, "receiving-outputs")]["gap"] is False
    appeared = got[(9, "receiving-outputs")]
    assert (appeared["gap"], appeared["start_ts"], appeared["start_err_s"]) == (True, 10.0, 9.0)
    assert appeared["end_ts"] == 11.0


def test_phase_names() -> None:
    assert [phase_name(c) for c in (1, 10, 20, 30, 35, 40, 50)] == [
        "preparing",
        "connecting",
        "sending-inputs",
        "building",
        "waiting-for-local-slot",
        "receiving-outputs",
        "post-processing",
    ]
    assert phase_name(60) == "busy-60" and phase_name(None) == "unobserved"


@pytest.mark.parametrize(
    ("machines", "status_row", "generation"),
    [
        (["ssh://build@b1", "b2"], False, "cxx"),
        (["ssh-ng://b1"], True, "cxx"),
        (["b1", ""], False, "rust"),
        (["b1"], True, "cxx"),
        ([], True, "cxx"),
        (["", None], False, None),
    ],
)
def test_classify_generation(
    machines: list[str | None], status_row: bool, generation: str | None
) -> None:
    got, reason = classify_generation(machines, status_row)
    assert got == generation and reason


def test_parse_since() -> None:
    now = 1_800_000_000.0
    assert parse_since("1760000000", now) == 1_760_000_000
    assert parse_since("0", now) == 0
    expected = dt.datetime(2025, 1, 2, 3, 4, 5, tzinfo=dt.UTC).timestamp()
    assert parse_since("2025-01-02T03:04:05", now) == expected  # naive means UTC
    assert parse_since("2025-01-02T04:04:05+01:00", now) == expected
    assert parse_since("2025-01-02T03:04:05Z", now) == expected
    assert parse_since("2h", now) == now - 7200
    assert parse_since("90s", now) == now - 90
    for bad in ("yesterday", "-5", "nan", "2h ago"):
        with pytest.raises(UsageError, match="--since"):
            parse_since(bad, now)


def test_backoff_doubles_up_to_its_cap() -> None:
    b = Backoff(0.5, 3.0)
    assert [b.next() for _ in range(5)] == [0.5, 1.0, 2.0, 3.0, 3.0]
    b.reset()
    assert b.next() == 0.5


def test_window_and_prune() -> None:
    st = ExportState(since=100, cursor=1000, seen={(1, 1): 900, (1, 2): 950, (2, 1): 999})
    assert st.window_start(60) == 940
    assert st.window_start(10_000) == 100  # never below --since
    st.prune(60)
    assert st.seen == {(1, 2): 950, (2, 1): 999}


def test_state_is_read_back_from_the_run(tmp_path: Path) -> None:
    assert load_state(str(tmp_path / "none"), None, 60, 123.7) == ExportState(since=123, cursor=123)
    assert load_state(str(tmp_path / "none"), 50.5, 60, 123.7).cursor == 50

    with Run.open(tmp_path / "run") as run:
        run.writer("db_cursor").append({"ts": 1.0, "since": 10, "stop_time": 10})
        steps = run.writer("db_steps")
        for build, stepnr, stop in ((1, 1, 500), (1, 2, 960), (2, 1, 1000), (3, 1, 990)):
            steps.append({"ts": 2.0, "build": build, "stepnr": stepnr, "stop_time": stop})
        run.writer("db_builds").append({"ts": 3.0, "build": 1, "stop_time": 960})
    st = load_state(str(tmp_path / "run"), 999_999, 60, 5000.0)  # --since: ignored on resume
    assert st.resumed and (st.since, st.cursor) == (10, 1000)
    assert st.seen == {(1, 2): 960, (2, 1): 1000, (3, 1): 990}
    assert st.builds_done == {(1, 960)} and st.pending == {2, 3}
