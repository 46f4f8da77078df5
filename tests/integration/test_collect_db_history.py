"""``collect db --since 6y --once`` over years of generated history on Hydra's real schema
(tests/data/hydra-sql/hydra.sql): the streamed backfill writes exactly the table's rows,
resumes after SIGINT, SIGKILL and a killed session without losing or duplicating any, and
gives the same step table as the live (paged) export."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pyarrow as pa
import pytest

from profiler.analyze.steps import build_step_table
from profiler.collect.database import common as dbc
from profiler.collect.database import history as history_sql
from profiler.collect.database.collector import DbCollector
from profiler.collect.database.common import BUILD_MEMORY_SECONDS, DbOptions
from profiler.collect.database.state import load_state
from profiler.commands.argtypes import parse_time as parse_since
from profiler.errors import StoreError
from profiler.store import Run, read_run
from tests.conftest import fresh_database

SCHEMA = Path(__file__).resolve().parents[1] / "data" / "hydra-sql" / "hydra.sql"
CMD = [sys.executable, "-m", "profiler", "collect", "db"]
YEAR = 365 * 86400
STEPS = 100_000


def fill_history(dsn: str, steps: int, *, years: float = 5, end: int | None = None) -> None:
    """``steps`` BuildSteps (3 a build) and their Builds, stopTimes spread over ``years`` up to
    ``end`` (default two hours ago), as the C++ runner leaves them: failed steps (NULL
    overhead and timesBuilt, long error messages), NULL systems and isNonDeterministic,
    propagated and cached-failure steps without times, running steps, unfinished builds,
    failed builds without sizes; stopTimes shared across builds (7200 s buckets)."""
    end = int(time.time()) - 7200 if end is None else end
    builds = -(-steps // 3)
    start = end - int(years * YEAR)
    every = (end - start) / builds
    with psycopg.connect(dsn, autocommit=True) as c:
        c.execute("insert into Users (userName, emailAddress, password) values ('r', 'r@x', 'x')")
        c.execute("insert into Projects (name, displayName, owner) values ('nixpkgs', 'N', 'r')")
        c.execute(
            "insert into Jobsets (name, project, nixExprInput, nixExprPath, emailOverride)"
            " values ('trunk', 'nixpkgs', 'nixpkgs', 'release.nix', '')"
        )
        with c.transaction():
            # consistent by construction: skip the per-row foreign-key triggers (superuser)
            c.execute("set local session_replication_role = replica")
            c.execute(_BUILDS, {"n": builds, "start": start, "every": every})
            c.execute(_STEPS, {"n": steps})
        c.execute("analyze Builds")
        c.execute("analyze BuildSteps")


_BUCKET = "(%(start)s + floor(i * %(every)s)::integer) / 7200 * 7200"
_BUILDS = f"""
insert into Builds (id, finished, timestamp, jobset_id, job, nixName, drvPath, system,
    priority, globalPriority, startTime, stopTime, isCachedBuild, buildStatus, size, closureSize)
select i, case when i %% 89 = 0 then 0 else 1 end, {_BUCKET} - 600,
    (select id from Jobsets), 'pkg' || i || '.x86_64-linux', 'pkg-' || i,
    '/nix/store/' || lpad(i::text, 32, 'a') || '-pkg-' || i || '.drv',
    case when i %% 5 = 0 then 'aarch64-linux' else 'x86_64-linux' end, i %% 3, i %% 7 * 10,
    case when i %% 89 = 0 then null else {_BUCKET} + 10 end,
    case when i %% 89 = 0 then null else {_BUCKET} + 400 end,
    case when i %% 89 = 0 then null when i %% 31 = 0 then 1 else 0 end,
    case when i %% 89 = 0 then null when i %% 23 = 0 then 1 else 0 end,
    case when i %% 89 = 0 or i %% 23 = 0 then null else i * 1000 end,
    case when i %% 89 = 0 or i %% 23 = 0 then null else i * 5000 end
from generate_series(1, %(n)s) i
"""
_STEPS = """
insert into BuildSteps (build, stepnr, type, drvPath, busy, status, errorMsg, startTime,
    stopTime, machine, system, propagatedFrom, overhead, timesBuilt, isNonDeterministic)
select b.id, g %% 3 + 1, case when g %% 9 = 0 then 1 else 0 end,
    '/nix/store/' || lpad(g::text, 32, 'b') || '-step.drv',
    case when g %% 103 = 0 then 30 else 0 end,
    case when g %% 103 = 0 then null when g %% 50 = 7 or g %% 101 = 0 then 1 else 0 end,
    case when g %% 50 = 7 then 'error: builder failed ' || repeat('x', 600) end,
    case when g %% 101 = 0 then null else b.timestamp + 600 + (g %% 3) * 60 - 50 end,
    case when g %% 101 = 0 or g %% 103 = 0 then null else b.timestamp + 600 + (g %% 3) * 60 end,
    'ssh://build@builder-' || g %% 7, case when g %% 17 = 0 then null else b.system end,
    case when g %% 101 = 0 and b.id > 1 then b.id - 1 end,
    case when g %% 11 = 0 or g %% 50 = 7 then null else g %% 1000 * 10 end,
    case when g %% 50 = 7 then null else 1 end,
    case when g %% 13 = 0 then null else g %% 2 = 0 end
from generate_series(0, %(n)s - 1) g join Builds b on b.id = g / 3 + 1
"""

STEP_COLS = (
    "build stepnr type drv_path machine system status error_msg start_time stop_time "
    "stop_minus_start_s overhead_ms times_built is_non_deterministic propagated_from"
).split()
BUILD_COLS = (
    "build project jobset job system drv_path nix_name queued_time start_time stop_time "
    "status is_cached size_bytes closure_size_bytes priority global_priority"
).split()


def expected_steps(dsn: str, since: int) -> list[tuple[Any, ...]]:
    """The exported steps as the database has them, converted as the export documents."""
    with psycopg.connect(dsn) as c:
        rows = c.execute(
            "select build, stepnr, type, drvPath, machine, system, status, left(errorMsg, 500),"
            " startTime, stopTime, stopTime - startTime, coalesce(overhead, 0), timesBuilt,"
            " isNonDeterministic, propagatedFrom from BuildSteps where startTime is not null"
            " and stopTime is not null and busy = 0 and stopTime >= %s",
            (since,),
        ).fetchall()
    return sorted(rows)


def expected_builds(dsn: str, since: int) -> list[tuple[Any, ...]]:
    """Finished builds with an exported step."""
    with psycopg.connect(dsn) as c:
        rows = c.execute(
            "select b.id, j.project, j.name, b.job, b.system, b.drvPath, b.nixName, b.timestamp,"
            " b.startTime, b.stopTime, b.buildStatus, b.isCachedBuild = 1, b.size, b.closureSize,"
            " b.priority, b.globalPriority from Builds b join Jobsets j on j.id = b.jobset_id"
            " where b.finished = 1 and exists (select 1 from BuildSteps s where s.build = b.id"
            " and s.startTime is not null and s.stopTime is not null and s.busy = 0"
            " and s.stopTime >= %s)",
            (since,),
        ).fetchall()
    return sorted(rows)


def stored(run_dir: Path, table: str, cols: list[str]) -> list[tuple[Any, ...]]:
    data = read_run(run_dir).data[table]
    return sorted(zip(*(data.column(c).to_pylist() for c in cols), strict=True))


def assert_exact(run_dir: Path, dsn: str, since: int) -> None:
    """The run's db_steps and db_builds are the tables' rows: each once, column for column."""
    steps = stored(run_dir, "db_steps", STEP_COLS)
    want = expected_steps(dsn, since)
    assert len(steps) == len(want)
    assert len({s[:2] for s in steps}) == len(steps), "a step was written twice"
    assert steps == want
    builds = stored(run_dir, "db_builds", BUILD_COLS)
    assert len({b[0] for b in builds}) == len(builds), "a build was written twice"
    assert builds == expected_builds(dsn, since)


@pytest.fixture(scope="module")
def history(pg_dsn: str) -> Iterator[str]:
    """A database with Hydra's real schema and :data:`STEPS` steps over five years."""
    with fresh_database(pg_dsn) as dsn:
        with psycopg.connect(dsn, autocommit=True) as conn:
            conn.execute(SCHEMA.read_text(encoding="utf-8"))  # type: ignore[arg-type]
        fill_history(dsn, STEPS)
        yield dsn


def collect(run_dir: Path, dsn: str, *extra: str) -> subprocess.CompletedProcess[str]:
    args = ["--pg", dsn, "--out", str(run_dir), "--since", "6y", "--once", *extra]
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    return subprocess.run([*CMD, *args], capture_output=True, text=True, env=env, check=False)


def since_of(run_dir: Path) -> int:
    return int(read_run(run_dir).data["db_cursor"].column("since")[0].as_py())


def test_since_takes_years_and_weeks() -> None:
    now = 2_000_000_000.0
    assert parse_since("5y", now) == now - 5 * YEAR
    assert parse_since("1.5w", now) == now - 1.5 * 7 * 86400
    assert parse_since("30d", now) == now - 30 * 86400


# --- the whole history ----------------------------------------------------------------------


def test_history_once_is_the_tables_rows(tmp_path: Path, history: str) -> None:
    run_dir = tmp_path / "run"
    done = collect(run_dir, history, "--batch-rows", "20000")
    assert done.returncode == 0, done.stderr
    assert "Traceback" not in done.stderr
    assert_exact(run_dir, history, since_of(run_dir))
    lines = done.stderr.splitlines()
    assert any("backfill: steps from stopTime" in line for line in lines)
    final = [line for line in lines if "rows/s, stopTime reached" in line]
    assert final, done.stderr
    assert f"{len(expected_steps(history, since_of(run_dir))):,} steps" in final[-1]
    cursors = read_run(run_dir).data["db_cursor"].to_pylist()
    parts, end = cursors[1:-1], cursors[-1]  # --since first, one a part, the pass's total
    assert len(parts) == -(-end["steps"] // 20_000) >= 5
    assert sum(p["steps"] for p in parts) == end["steps"]  # the live pass found nothing new
    assert [p["stop_time"] for p in parts] == sorted(p["stop_time"] for p in parts)

    # read back for a restart: the cursor, and only the re-read window's keys and recent builds
    state = load_state(str(run_dir), None, 3600, time.time())
    steps = read_run(run_dir).data["db_steps"]
    keys = zip(
        *(steps.column(c).to_pylist() for c in ("build", "stepnr", "stop_time")), strict=True
    )
    assert state.cursor == max(steps.column("stop_time").to_pylist())
    assert state.seen == {(b, n): t for b, n, t in keys if t >= state.cursor - 3600}
    assert 0 < len(state.builds_done) < 200  # about a week of 33k builds over five years
    assert all(t >= state.cursor - 3600 - BUILD_MEMORY_SECONDS for _, t in state.builds_done)


def test_failed_steps_keep_their_nulls(tmp_path: Path, history: str) -> None:
    run_dir = tmp_path / "run"
    assert collect(run_dir, history).returncode == 0
    steps = read_run(run_dir).data["db_steps"].to_pylist()
    failed = [s for s in steps if s["status"] == 1]
    assert failed and all(s["times_built"] is None for s in failed)
    assert all(len(s["error_msg"]) == 500 for s in failed)
    assert all(s["overhead_ms"] == 0 for s in failed)  # Hydra's NULL overhead means 0
    assert any(s["system"] is None for s in steps)
    assert any(s["is_non_deterministic"] is None for s in steps)
    assert all(s["propagated_from"] is None for s in steps)  # propagated steps have no times
    builds = read_run(run_dir).data["db_builds"].to_pylist()
    assert any(b["size_bytes"] is None and b["status"] == 1 for b in builds)


def test_the_step_table_equals_the_live_exports(tmp_path: Path, history: str) -> None:
    """The backfill and the live (paged) export of the same history give the same step table."""
    streamed, paged = tmp_path / "streamed", tmp_path / "paged"
    assert collect(streamed, history).returncode == 0
    since = since_of(streamed)
    run = Run.open(paged)
    options = DbOptions(once=True, track=False, since=since, page_size=20_000)
    collector = DbCollector(run, history, options)
    try:
        collector.run_loop()
    finally:
        run.close()
    for table in ("db_steps", "db_builds"):  # the same columns, in the same order and types
        live, ours = (read_run(r).data[table].schema for r in (paged, streamed))
        assert live.names == ours.names
        # a column the live export saw only nulls in has no type there (propagated_from here)
        assert all(a.type in (b.type, pa.null()) for a, b in zip(live, ours, strict=True))
    assert stored(paged, "db_steps", STEP_COLS) == stored(streamed, "db_steps", STEP_COLS)
    assert stored(paged, "db_builds", BUILD_COLS) == stored(streamed, "db_builds", BUILD_COLS)
    one = build_step_table(read_run(streamed)).steps
    two = build_step_table(read_run(paged)).steps
    one, two = (t.sort_values("step").reset_index(drop=True) for t in (one, two))
    assert len(one) == len(expected_steps(history, since))
    assert one.drop(columns=[c for c in one.columns if c == "ts"]).equals(
        two.drop(columns=[c for c in two.columns if c == "ts"])
    )


# --- interrupted ----------------------------------------------------------------------------


def _parts(run_dir: Path) -> int:
    try:
        return sum(n.startswith("part-") for n in os.listdir(run_dir / "tables" / "db_steps"))
    except FileNotFoundError:
        return 0


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGKILL])
def test_interrupted_backfill_resumes_exactly(tmp_path: Path, history: str, sig: int) -> None:
    run_dir = tmp_path / "run"
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    args = ["--pg", history, "--out", str(run_dir), "--since", "6y", "--once"]
    proc = subprocess.Popen(
        [*CMD, *args, "--batch-rows", "1000"], stderr=subprocess.PIPE, text=True, env=env
    )
    try:
        deadline = time.monotonic() + 60
        while _parts(run_dir) < 5 and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.005)
        proc.send_signal(sig)
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert "Traceback" not in err
    if sig == signal.SIGINT:
        assert proc.returncode == 0 and "run it again with the same --out to resume" in err
    first = read_run(run_dir).data["db_steps"].num_rows
    assert 0 < first < len(expected_steps(history, since_of(run_dir))), "not interrupted"
    again = collect(run_dir, history, "--batch-rows", "30000")
    assert again.returncode == 0, again.stderr
    assert "resuming after stopTime" in again.stderr
    assert_exact(run_dir, history, since_of(run_dir))


def test_killed_session_mid_backfill(tmp_path: Path, history: str) -> None:
    killed: list[int] = []
    parts: list[int] = []

    def on_page(_written: int) -> None:
        parts.append(1)
        if len(parts) == 3:
            with psycopg.connect(history, autocommit=True) as admin:
                rows = admin.execute(
                    "select pg_terminate_backend(pid, 10000) from pg_stat_activity"
                    " where application_name = %s",
                    (dbc.EXPORT_APP,),
                ).fetchall()
            killed.append(sum(1 for (ok,) in rows if ok))

    run = Run.open(tmp_path / "run")
    logs: list[str] = []
    options = DbOptions(
        once=True, track=False, since=time.time() - 6 * YEAR, backfill_after_seconds=6 * 3600,
        backfill_rows=8000, on_page=on_page, backoff_seconds=0.05,
    )  # fmt: skip
    collector = DbCollector(run, history, options, log=logs.append)
    try:
        collector.run_loop()
    finally:
        run.close()
    assert killed == [1]
    assert collector.exporter.errors == 1 and collector.exporter.passes == 1
    steps = len(expected_steps(history, since_of(tmp_path / "run")))
    assert collector.exporter.steps_written == steps  # the parts before the kill count too
    assert any("reconnecting in" in line for line in logs)
    assert_exact(tmp_path / "run", history, since_of(tmp_path / "run"))


def test_the_streams_are_served_by_hydras_stoptime_index(history: str) -> None:
    """The steps stream is an index range scan in key order (no sort of the whole history
    before the first row), and so is the builds stream's aggregate over a recent window."""
    lo = int(time.time()) - 30 * 86400
    with psycopg.connect(history) as conn:
        plans = [
            "\n".join(r[0] for r in conn.execute(f"explain declare c cursor for {q}", {"lo": lo}))
            for q in (history_sql.STREAM_SQL, history_sql.BUILDS_STREAM_SQL)
        ]
    steps, builds = plans
    assert "Index Scan Backward using indexbuildstepsonstoptime" in steps, steps
    assert "Incremental Sort" in steps and "Presorted Key: stoptime" in steps, steps
    assert "indexbuildstepsonstoptime" in builds, builds


def test_stop_cancels_a_statement_that_waits(tmp_path: Path, history: str) -> None:
    """Ctrl-C while the database works on the stream's first rows (minutes, for years of
    history; here: a lock it waits for) stops the backfill at once, without an error."""
    run = Run.open(tmp_path / "run")
    logs: list[str] = []
    options = DbOptions(
        once=True, track=False, since=time.time() - 6 * YEAR, backfill_after_seconds=3600,
        generation="cxx", backoff_seconds=0.05,
    )  # fmt: skip
    collector = DbCollector(run, history, options, log=logs.append)
    with psycopg.connect(history) as locker:
        locker.execute("lock table BuildSteps in access exclusive mode")
        worker = threading.Thread(target=collector.run_loop)
        worker.start()
        try:
            deadline = time.monotonic() + 30
            while not _waiting_for_a_lock(history) and time.monotonic() < deadline:
                time.sleep(0.02)
            stopped = time.monotonic()
            collector.stop.set()
            worker.join(timeout=30)
            took = time.monotonic() - stopped
        finally:
            locker.rollback()
            worker.join()
            run.close()
    assert took < 5, f"stopping took {took:.1f} s"
    assert collector.exporter.errors == 0, logs
    assert any("stopped after 0 steps" in line for line in logs), logs


def _waiting_for_a_lock(dsn: str) -> bool:
    with psycopg.connect(dsn, autocommit=True) as conn:
        row = conn.execute(
            "select count(*) from pg_stat_activity where application_name = %s"
            " and wait_event_type = 'Lock'",
            (dbc.EXPORT_APP,),
        ).fetchone()
    return bool(row and row[0])


def test_a_damaged_part_is_one_line_naming_it(tmp_path: Path) -> None:
    with Run.open(tmp_path / "run") as run:
        part = run.write_arrow_part(
            "db_steps", pa.table({"ts": [1.0], "build": [1], "stepnr": [1], "stop_time": [100]})
        )
        run.writer("db_cursor").append({"ts": 1.0, "since": 10, "stop_time": 10})
    assert load_state(str(tmp_path / "run"), None, 60, 200.0).cursor == 100
    path = tmp_path / "run" / "tables" / "db_steps" / part
    os.truncate(path, path.stat().st_size - 10)  # its footer cut off
    with pytest.raises(StoreError, match=rf"{part}: unreadable table file"):
        load_state(str(tmp_path / "run"), None, 60, 200.0)


def test_the_stream_is_one_read_only_snapshot_without_timeout(tmp_path: Path, history: str) -> None:
    conns: list[psycopg.Connection[Any]] = []
    seen: list[list[str]] = []

    def connect(dsn: str, app: str, timeout: float, autocommit: bool) -> Any:
        conns.append(dbc.connect_readonly(dsn, app, timeout, autocommit))
        return conns[-1]

    def on_page(_written: int) -> None:  # inside the stream's transaction
        names = ("transaction_isolation", "transaction_read_only", "statement_timeout")
        seen.append([str(conns[-1].execute(f"show {n}").fetchall()[0][0]) for n in names])

    run = Run.open(tmp_path / "run")
    options = DbOptions(
        once=True, track=False, since=time.time() - 6 * YEAR, backfill_after_seconds=3600,
        backfill_rows=40_000, on_page=on_page, timeout_seconds=7,
    )  # fmt: skip
    try:
        DbCollector(run, history, options, connect=connect).run_loop()
    finally:
        run.close()
    parts, live = seen[:-1], seen[-1]  # a part's, then the live pass's page (its session)
    assert len(parts) == 3 and all(s == ["repeatable read", "on", "0"] for s in parts), seen
    assert live == ["read committed", "on", "7s"]
