"""``collect db`` against a real PostgreSQL: Hydra's rows as each runner generation writes them
(profiler.testbed.db.HydraDb), killed connections, a statement timeout, a server restart, and
phase timelines checked against the testbed's ground truth."""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest

from profiler.collect.database import common as dbc
from profiler.collect.database.collector import DbCollector
from profiler.collect.database.common import DbOptions
from profiler.collect.database.track import Tracker
from profiler.commands import collect_db
from profiler.errors import CollectorError, UsageError
from profiler.store import Run, compact, read_run
from profiler.testbed import workload
from profiler.testbed.db import HydraDb
from profiler.testbed.engine import Knobs
from profiler.testbed.run import run_testbed
from tests.pg import PostgresServer, find_pg_bindir, free_port

T0 = 1_760_000_000
SYSTEM = "x86_64-linux"
MACHINE = {"cxx": "ssh://build@builder-1", "rust": "builder-1"}


def drv(name: str) -> str:
    return f"/nix/store/{name:a>32.32}-{name}.drv"


def wait_for(cond: Callable[[], object], what: str, timeout: float = 60.0) -> None:
    """Poll ``cond`` until it is true; fail after ``timeout`` seconds (generous for slow CI)."""
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout:g} s waiting for {what}")
        time.sleep(0.02)


def table(run_dir: Path, name: str) -> list[dict[str, Any]]:
    data = read_run(run_dir).data
    return data[name].to_pylist() if name in data else []


def keys(rows: list[dict[str, Any]]) -> list[tuple[int, int]]:
    return [(r["build"], r["stepnr"]) for r in rows]


class Hydra:
    """Rows written as the queue runner writes them, with times chosen by the test."""

    def __init__(self, db: HydraDb, generation: str = "cxx") -> None:
        self.db = db
        self.machine = MACHINE[generation]
        self.jobset = db.add_jobset("nixpkgs", "trunk")

    def build(self, name: str) -> int:
        return self.db.add_build(self.jobset, f"{name}.{SYSTEM}", drv(name), SYSTEM, T0)

    def step(self, build: int, name: str, start: int, stop: int, overhead_ms: int = 0) -> int:
        stepnr = self.db.start_step(build, drv(name), SYSTEM, self.machine, {"out": name}, start)
        self.db.finish_step(build, stepnr, 0, start, stop, self.machine, overhead_ms)
        return stepnr

    def finish(self, build: int, start: int, stop: int) -> None:
        self.db.finish_build(build, 0, start, stop, 1000, 5000, {"out": f"/nix/store/{build}"})


@pytest.fixture
def hydra_db(db_dsn: str) -> Iterator[HydraDb]:
    with HydraDb(db_dsn) as db:
        db.create_schema()
        yield db


@pytest.fixture
def admin(db_dsn: str) -> Iterator[psycopg.Connection[Any]]:
    with psycopg.connect(db_dsn, autocommit=True) as conn:
        yield conn


def export_once(run_dir: Path, dsn: str, logs: list[str] | None = None, **opts: Any) -> DbCollector:
    """One ``--once`` export into ``run_dir`` (a fresh collector process, as far as state goes)."""
    run = Run.open(run_dir)
    options = DbOptions(**{"once": True, "since": 0, "backoff_seconds": 0.05, **opts})
    collector = DbCollector(run, dsn, options, log=(logs if logs is not None else []).append)
    try:
        collector.run_loop()
    finally:
        run.close()
    return collector


class Background:
    """A collector running in a thread, as ``collect db`` without ``--once`` runs."""

    def __init__(self, run_dir: Path, dsn: str, **opts: Any) -> None:
        self.run = Run.open(run_dir)
        self.logs: list[str] = []
        defaults: dict[str, Any] = {
            "interval_seconds": 0.1,
            "export_every_seconds": 0.2,
            "since": 0,
            "backoff_seconds": 0.05,
            "max_backoff_seconds": 0.5,
            "timeout_seconds": 5,
        }
        self.collector = DbCollector(self.run, dsn, DbOptions(**{**defaults, **opts}), log=self.log)
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._main)
        self.thread.start()

    def log(self, message: str) -> None:
        self.logs.append(message)

    def _main(self) -> None:
        try:
            self.collector.run_loop()
        except BaseException as exc:
            self.error = exc

    @property
    def tracker(self) -> Tracker:
        assert self.collector.tracker is not None
        return self.collector.tracker

    def stop(self) -> None:
        self.collector.stop.set()
        self.thread.join(timeout=60)
        assert not self.thread.is_alive(), "the collector did not stop"
        self.run.close()
        if self.error is not None:
            raise self.error


def kill(admin: psycopg.Connection[Any], *apps: str) -> int:
    """Terminate the collector's sessions with these application names; how many."""
    rows = admin.execute(
        "select pg_terminate_backend(pid, 10000) from pg_stat_activity"
        " where application_name = any(%s)",
        (list(apps),),
    ).fetchall()
    return sum(1 for (ok,) in rows if ok)


# --- export ---------------------------------------------------------------------------------


@pytest.mark.parametrize("generation", ["cxx", "rust"])
def test_export_records_each_generations_semantics(
    tmp_path: Path, db_dsn: str, hydra_db: HydraDb, generation: str
) -> None:
    h = Hydra(hydra_db, generation)
    if generation == "cxx":
        hydra_db.write_system_status('{"status":"up"}')  # only the C++ runner writes it
    first = h.build("hello")
    dep = h.step(first, "libfoo", T0 + 5, T0 + 65, overhead_ms=1500)
    top = h.step(first, "hello", T0 + 70, T0 + 100)  # overhead 0: Hydra stores NULL
    h.finish(first, T0 + 70, T0 + 100)
    second = h.build("curl")
    done = h.step(second, "zlib", T0 + 10, T0 + 40, overhead_ms=20)  # its build is not finished
    running = hydra_db.start_step(second, drv("curl"), SYSTEM, h.machine, {"out": "c"}, T0 + 50)
    hydra_db.set_busy(second, running, 30)

    run_dir = tmp_path / "run"
    collector = export_once(run_dir, db_dsn)
    assert (collector.exporter.steps_written, collector.exporter.builds_written) == (3, 1)
    steps = table(run_dir, "db_steps")
    assert keys(steps) == [(second, done), (first, dep), (first, top)]  # stopTime order
    by_key = {(s["build"], s["stepnr"]): s for s in steps}
    dep_row = by_key[(first, dep)]
    assert dep_row["start_time"] == T0 + 5 and dep_row["stop_time"] == T0 + 65
    assert dep_row["stop_minus_start_s"] == 60
    assert dep_row["overhead_ms"] == 1500
    assert by_key[(first, top)]["overhead_ms"] == 0
    assert dep_row["machine"] == h.machine and dep_row["system"] == SYSTEM
    assert dep_row["drv_path"] == drv("libfoo") and dep_row["status"] == 0
    assert dep_row["type"] == 0 and dep_row["times_built"] == 1
    assert {s["generation"] for s in steps} == {generation}
    expected = "the build only" if generation == "cxx" else "the whole step"
    assert all(expected in s["semantics"] for s in steps)

    (build,) = table(run_dir, "db_builds")
    assert build["build"] == first
    assert (build["project"], build["jobset"], build["job"]) == (
        "nixpkgs",
        "trunk",
        "hello.x86_64-linux",
    )
    assert (build["queued_time"], build["start_time"], build["stop_time"]) == (
        T0,
        T0 + 70,
        T0 + 100,
    )
    assert (build["status"], build["size_bytes"], build["closure_size_bytes"]) == (0, 1000, 5000)
    assert build["is_cached"] is False and build["generation"] == generation
    assert collector.exporter.state.pending == {second}

    manifest = read_run(run_dir).manifest
    (source,) = manifest["sources"]
    assert source["kind"] == "db" and source["generation"] == generation
    assert source["ended_utc"] is not None
    assert any(f"generation {generation} detected" in n["text"] for n in manifest["notes"])

    # later: the running step and the second build finish; a new collector exports just those
    hydra_db.finish_step(second, running, 0, T0 + 55, T0 + 90, h.machine, 7)
    h.finish(second, T0 + 55, T0 + 90)
    again = export_once(run_dir, db_dsn)
    assert (again.exporter.steps_written, again.exporter.builds_written) == (1, 1)
    assert keys(table(run_dir, "db_steps"))[-1] == (second, running)
    assert [b["build"] for b in table(run_dir, "db_builds")] == [first, second]


def test_generation_unknown_then_forced(tmp_path: Path, db_dsn: str, hydra_db: HydraDb) -> None:
    h = Hydra(hydra_db, "cxx")
    b = h.build("a")
    stepnr = hydra_db.start_step(b, drv("a"), SYSTEM, "", {"out": "a"}, T0)  # no machine
    hydra_db.finish_step(b, stepnr, 0, T0, T0 + 2, "", 0)
    export_once(tmp_path / "unknown", db_dsn)  # no evidence: no machine, no SystemStatus row
    (row,) = table(tmp_path / "unknown", "db_steps")
    assert row["generation"] == "unknown" and "pass --generation" in row["semantics"]
    assert read_run(tmp_path / "unknown").manifest["sources"][0]["generation"] is None

    h.step(b, "b", T0, T0 + 5)  # an ssh:// machine: C++ by the evidence, but the option wins
    export_once(tmp_path / "forced", db_dsn, generation="rust")
    rows = table(tmp_path / "forced", "db_steps")
    assert len(rows) == 2 and all(r["generation"] == "rust" for r in rows)
    assert all("whole step" in r["semantics"] for r in rows)
    assert read_run(tmp_path / "forced").manifest["sources"][0]["generation"] == "rust"


def test_resume_exports_only_new_rows_and_late_commits(
    tmp_path: Path, db_dsn: str, hydra_db: HydraDb
) -> None:
    h = Hydra(hydra_db)
    b = h.build("pkgs")
    first = [h.step(b, f"s{i}", T0 + i, T0 + 10 * i) for i in range(1, 6)]  # stop T0+10..50
    run_dir = tmp_path / "run"
    one = export_once(run_dir, db_dsn, page_size=2, overlap_seconds=60)
    assert one.exporter.steps_written == 5
    compact(run_dir)  # the second collector reads its state back from Parquet, too

    new = h.step(b, "new", T0 + 55, T0 + 60)
    late = h.step(b, "late", T0 + 20, T0 + 25)  # committed now, stopTime below the cursor
    too_late = h.step(b, "too-late", T0 - 30, T0 - 20)  # below cursor - overlap: documented loss
    two = export_once(run_dir, db_dsn, page_size=2, overlap_seconds=60)
    assert two.exporter.state.resumed
    assert two.exporter.steps_written == 2
    three = export_once(run_dir, db_dsn, page_size=2, overlap_seconds=60)
    assert three.exporter.steps_written == 0

    exported = keys(table(run_dir, "db_steps"))
    assert exported == [(b, n) for n in first] + [(b, late), (b, new)]
    assert (b, too_late) not in exported
    cursors = table(run_dir, "db_cursor")
    assert cursors[-1]["stop_time"] == T0 + 60 and cursors[-1]["since"] == 0
    assert cursors[-1]["window_start"] == T0


def test_since_limits_a_fresh_export(tmp_path: Path, db_dsn: str, hydra_db: HydraDb) -> None:
    h = Hydra(hydra_db)
    b = h.build("pkgs")
    steps = [h.step(b, f"s{i}", T0, T0 + 10 * i) for i in range(1, 4)]
    export_once(tmp_path / "run", db_dsn, since=T0 + 20)
    assert keys(table(tmp_path / "run", "db_steps")) == [(b, steps[1]), (b, steps[2])]


def test_killed_connection_mid_export_loses_and_duplicates_nothing(
    tmp_path: Path, db_dsn: str, hydra_db: HydraDb, admin: psycopg.Connection[Any]
) -> None:
    h = Hydra(hydra_db)
    expected = []
    for i in range(10):
        b = h.build(f"b{i}")
        expected += [(b, h.step(b, f"b{i}s{j}", T0, T0 + 10 * j + i)) for j in range(12)]
    killed: list[int] = []

    def on_page(written: int) -> None:
        if not killed:  # after the first page: the next query finds its session gone
            killed.append(kill(admin, dbc.EXPORT_APP))

    logs: list[str] = []
    collector = export_once(
        tmp_path / "run", db_dsn, logs, page_size=25, on_page=on_page, once_retries=5
    )
    assert killed == [1]
    assert collector.exporter.errors == 1 and collector.exporter.passes == 1
    rows = table(tmp_path / "run", "db_steps")
    assert len(rows) == len(set(keys(rows))) == 120
    assert set(keys(rows)) == set(expected)
    errors = [e for e in table(tmp_path / "run", "events") if e["event"] == "error"]
    assert len(errors) == 1 and errors[0]["detail"].startswith("export: ")
    assert "terminat" in errors[0]["detail"] or "closed" in errors[0]["detail"]
    assert any("reconnecting in" in line for line in logs)


def test_statement_timeout_is_reported_and_retried(
    tmp_path: Path, db_dsn: str, hydra_db: HydraDb
) -> None:
    h = Hydra(hydra_db)
    b = h.build("pkgs")
    h.step(b, "a", T0, T0 + 1)
    with psycopg.connect(db_dsn) as locker:  # a SELECT waits for an access exclusive lock
        locker.execute("lock table BuildSteps in access exclusive mode")
        bg = Background(
            tmp_path / "run", db_dsn, once=True, once_retries=1000, timeout_seconds=0.3,
            backoff_seconds=0.1, max_backoff_seconds=0.2, track=False,
        )  # fmt: skip
        wait_for(lambda: bg.collector.exporter.errors >= 2, "statement timeouts")
        locker.rollback()
    wait_for(lambda: not bg.thread.is_alive(), "the export to finish once the lock is gone")
    bg.stop()
    assert bg.collector.exporter.steps_written == 1
    retries = [line for line in bg.logs if "reconnecting in" in line]
    assert len(retries) >= 2 and all("statement timeout" in line for line in retries)
    events = table(tmp_path / "run", "events")
    assert any("canceling statement due to statement timeout" in e["detail"] for e in events)


# --- read-only and indexes ------------------------------------------------------------------


@pytest.mark.parametrize("autocommit", [False, True])
def test_sessions_are_read_only(db_dsn: str, hydra_db: HydraDb, autocommit: bool) -> None:
    conn = dbc.connect_readonly(db_dsn, "ro-test", 2.5, autocommit)
    try:
        assert conn.execute("show transaction_read_only").fetchone() == ("on",)
        assert conn.execute("show statement_timeout").fetchone() == ("2500ms",)
        with pytest.raises(psycopg.errors.ReadOnlySqlTransaction):
            conn.execute("insert into Projects (name) values ('x')")
    finally:
        conn.close()


def test_queries_use_hydras_indexes(db_dsn: str, hydra_db: HydraDb) -> None:
    conn = dbc.connect_readonly(db_dsn, "explain", 5, True)
    conn.execute("set enable_seqscan = off")  # with tiny tables: does an index serve it?
    plans = {
        "indexbuildstepsonstoptime": (
            dbc.STEP_KEYS_SQL,
            {"lo": 1, "stop": 0, "build": 0, "stepnr": 0, "limit": 10},
        ),
        "indexbuildstepsonbusy": (dbc.BUSY_SQL, None),
        "buildsteps_pkey": (dbc.STEP_ROWS_SQL, {"builds": [1], "stepnrs": [1]}),
        "builds_pkey": (dbc.BUILDS_SQL, {"ids": [1, 2]}),
    }
    try:
        for index, (sql, params) in plans.items():
            plan = "\n".join(r[0] for r in conn.execute(f"explain {sql}", params))
            assert index in plan, plan
        recent = "\n".join(r[0] for r in conn.execute(f"explain {dbc.RECENT_MACHINES_SQL}"))
        assert "indexbuildstepsonstoptime" in recent
    finally:
        conn.close()


def test_one_db_collector_per_run(tmp_path: Path, db_dsn: str, hydra_db: HydraDb) -> None:
    run = Run.open(tmp_path / "run")
    first = DbCollector(run, db_dsn, DbOptions(once=True))
    with pytest.raises(CollectorError, match="another 'collect db'"):
        DbCollector(run, db_dsn, DbOptions(once=True))
    first.close()
    DbCollector(run, db_dsn, DbOptions(once=True)).close()
    run.close()


# --- phase tracking -------------------------------------------------------------------------


def phases_of(run_dir: Path, key: tuple[int, int]) -> list[dict[str, Any]]:
    return [p for p in table(run_dir, "db_phases") if (p["build"], p["stepnr"]) == key]


def test_tracker_recovers_from_killed_connections(
    tmp_path: Path, db_dsn: str, hydra_db: HydraDb, admin: psycopg.Connection[Any]
) -> None:
    h = Hydra(hydra_db)
    b = h.build("pkgs")
    bg = Background(tmp_path / "run", db_dsn)
    try:
        wait_for(lambda: bg.tracker.polls >= 1, "the first poll")
        stepnr = hydra_db.start_step(b, drv("pkgs"), SYSTEM, h.machine, {"out": "o"}, T0)
        hydra_db.set_busy(b, stepnr, 30)
        active = bg.tracker.phases.active
        wait_for(lambda: getattr(active.get((b, stepnr)), "busy", 0) == 30, "building seen")
        assert kill(admin, dbc.TRACK_APP, dbc.LISTEN_APP) >= 1
        wait_for(lambda: bg.tracker.errors >= 1, "the tracker to notice")
        polls = bg.tracker.polls
        wait_for(lambda: bg.tracker.polls > polls + 2, "polls after reconnecting")
        hydra_db.set_busy(b, stepnr, 40)
        wait_for(lambda: getattr(active.get((b, stepnr)), "busy", 0) == 40, "receiving seen")
        hydra_db.finish_step(b, stepnr, 0, T0, T0 + 1, h.machine, 5)
        wait_for(lambda: (b, stepnr) not in active, "the finish")
    finally:
        bg.stop()
    rows = {p["phase"]: p for p in phases_of(tmp_path / "run", (b, stepnr))}
    assert rows["building"]["gap"] is True  # it spans the outage
    assert rows["building"]["end_obs"] == "poll"
    assert rows["receiving-outputs"]["gap"] is False
    assert rows["receiving-outputs"]["end_obs"] == "notify"
    assert rows["receiving-outputs"]["end_err_s"] > 0  # post-processing may have passed unseen
    events = table(tmp_path / "run", "events")
    assert any(e["event"] == "error" and e["detail"].startswith("track: ") for e in events)
    assert any(e["event"] == "note" and "reconnected after" in e["detail"] for e in events)


def _busy(tracker: Any, key: tuple[int, int]) -> int | None:
    """The busy code the tracker has for ``key`` (read from another thread: the tracker
    replaces an entry while it updates it, so it may be briefly absent)."""
    op = tracker.phases.active.get(key)
    return None if op is None else int(op.busy)


def test_server_restart_mid_watch(tmp_path: Path) -> None:
    bindir = find_pg_bindir()
    if bindir is None:
        message = "PostgreSQL not installed (Debian package postgresql; scripts/setup-tests.sh)"
        if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
            pytest.fail(f"CI=true: {message}")
        pytest.skip(message)
    with PostgresServer(bindir) as server:
        with HydraDb(server.dsn) as db:
            db.create_schema()
            h = Hydra(db)
            b = h.build("pkgs")
            before = h.step(b, "before", T0, T0 + 10)
            running = db.start_step(b, drv("running"), SYSTEM, h.machine, {"out": "r"}, T0)
            db.set_busy(b, running, 30)
        bg = Background(tmp_path / "run", server.dsn, timeout_seconds=3)
        try:
            ex, tr = bg.collector.exporter, bg.tracker
            wait_for(lambda: ex.steps_written == 1, "the first export")
            wait_for(lambda: (b, running) in tr.phases.active, "the running step")
            server.shutdown()
            wait_for(lambda: tr.errors >= 1, "the tracker to notice the shutdown")
            server.resume()
            polls = tr.polls
            wait_for(lambda: tr.polls > polls + 2, "the tracker to reconnect", timeout=90)
            with HydraDb(server.dsn) as db:
                db.set_busy(b, running, 40)
                wait_for(lambda: _busy(tr, (b, running)) == 40, "receiving seen")
                db.finish_step(b, running, 0, T0 + 20, T0 + 30, h.machine, 9)
                after = Hydra(db).step(b, "after", T0 + 5, T0 + 40)
            wait_for(lambda: ex.steps_written == 3, "the export after the restart", timeout=90)
        finally:
            bg.stop()
    steps = table(tmp_path / "run", "db_steps")
    assert keys(steps) == [(b, before), (b, running), (b, after)]
    events = [e for e in table(tmp_path / "run", "events") if e["event"] == "error"]
    assert any(e["detail"].startswith("track: ") for e in events)
    assert any(e["detail"].startswith("export: ") for e in events)
    phases = {p["phase"]: p for p in phases_of(tmp_path / "run", (b, running))}
    assert phases["building"]["start_obs"] == "initial" and phases["building"]["gap"] is True
    assert phases["receiving-outputs"]["end_obs"] == "notify"


# busy code of each true phase (testbed engine): the phases one busy value covers
TRUE_CODE = {
    "cxx": {
        "connecting": 10,
        "sending-inputs": 20,
        "building": 30,
        "waiting-for-local-slot": 35,
        "receiving-outputs": 40,
        "compressing": 40,
        "writing-cache": 40,
        "uploading": 40,
        "post-processing": 50,
    },
    "rust": {
        "dispatch": 10,
        "importing": 20,
        "building": 30,
        "reading-outputs": 40,
        "compressing": 40,
        "writing-cache": 40,
        "uploading": 40,
        "post-processing": 50,
    },
}


def true_intervals(step: dict[str, Any], generation: str) -> dict[int, tuple[float, float]]:
    """Per busy code, the true interval (consecutive phases with one code merged)."""
    out: dict[int, tuple[float, float]] = {}
    for p in step["phases"]:
        code = TRUE_CODE[generation].get(p["phase"])
        if code is not None:
            start = out.get(code, (p["start"], p["end"]))[0]
            out[code] = (start, p["end"])
    return out


@pytest.mark.parametrize("generation", ["cxx", "rust"])
def test_phases_agree_with_testbed_truth(tmp_path: Path, db_dsn: str, generation: str) -> None:
    interval, margin = 0.2, 0.4
    with HydraDb(db_dsn) as db:
        db.create_schema()
    bg = Background(tmp_path / "run", db_dsn, interval_seconds=interval, export_every_seconds=0.5)
    try:
        wait_for(lambda: bg.tracker.polls >= 1, "the first poll")
        truth = run_testbed(
            workload.generate(6, seed=3, build_scale=2.0),
            Knobs(generation, "compression=zstd", link_bytes_per_second=20e6, post_seconds=0.5),
            str(tmp_path / "tb"),
            pg_dsn=db_dsn,
            snapshot_seconds=0.5,
        )
        n = len(truth["steps"])
        wait_for(lambda: bg.collector.exporter.steps_written == n, "every step exported")
    finally:
        bg.stop()
    assert {s["generation"] for s in table(tmp_path / "run", "db_steps")} == {generation}
    phases = table(tmp_path / "run", "db_phases")
    assert {p["generation"] for p in phases} == {generation}
    agree = 0
    for step in truth["steps"]:
        truth_codes = true_intervals(step, generation)
        seen = [
            p
            for p in phases
            if (p["build"], p["stepnr"]) == (step["build_id"], step["step_nr"])
            and p["busy"] in truth_codes
        ]
        ok = {p["busy"] for p in seen} >= {30, 50}  # >= 0.5 s each: seen unless polls stall
        for p in seen:
            start, end = truth_codes[p["busy"]]
            ok &= abs(p["start_ts"] - start) <= interval + margin
            ok &= abs(p["end_ts"] - end) <= interval + margin
            ok &= p["start_ts"] >= start - 0.05 and p["end_ts"] >= end - 0.05  # never early
        agree += ok
    assert agree >= 0.8 * len(truth["steps"]), f"{agree} of {len(truth['steps'])} steps agree"
    # build_finished comes when the builds' rows commit: the step's true end (Rust: after
    # the machine freed the job, hydra 14332fbf state/mod.rs:2095-2131)
    finished = {r["build"]: r["ts"] for r in table(tmp_path / "run", "db_build_finished")}
    assert set(finished) == {s["build_id"] for s in truth["steps"]}
    for step in truth["steps"]:
        at = finished[step["build_id"]]
        assert step["finished_at"] - 0.05 <= at <= step["finished_at"] + interval + margin


# --- the command ----------------------------------------------------------------------------


def parse(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    collect_db.add_parser(parser.add_subparsers())
    return parser.parse_args(["db", *argv])


def test_cli_once(tmp_path: Path, db_dsn: str, hydra_db: HydraDb, capsys: Any) -> None:
    h = Hydra(hydra_db, "rust")
    b = h.build("pkgs")
    h.step(b, "a", T0, T0 + 1)
    h.finish(b, T0, T0 + 1)
    run_dir = tmp_path / "run"
    args = parse(
        "--pg", f"{db_dsn} password=hunter2", "--out", str(run_dir), "--once", "--since", "0"
    )
    assert collect_db.run(args) == 0
    err = capsys.readouterr().err
    assert "1 steps, 1 builds" in err and "hunter2" not in err
    run = read_run(run_dir)
    assert run.manifest["compacted"]["db_steps"]  # compacted on a clean stop
    assert "hunter2" not in str(run.manifest)
    assert len(table(run_dir, "db_steps")) == 1


# until `collect db` is wired into `collect`: the same parser and run(), in a process of its own
SCRIPT = """
import argparse, sys
from profiler.commands import collect_db
parser = argparse.ArgumentParser()
collect_db.add_parser(parser.add_subparsers())
args = parser.parse_args(sys.argv[1:])
sys.exit(args.run(args))
"""


def test_sigterm_stops_cleanly(tmp_path: Path, db_dsn: str, hydra_db: HydraDb) -> None:
    h = Hydra(hydra_db)
    b = h.build("pkgs")
    h.step(b, "a", T0, T0 + 1)
    run_dir = tmp_path / "run"
    argv = ["db", "--pg", db_dsn, "--out", str(run_dir), "--since", "0"]
    argv += ["--interval", "100ms", "--export-every", "200ms"]
    command = [sys.executable, "-c", SCRIPT, *argv]
    proc = subprocess.Popen(command, stderr=subprocess.PIPE, text=True)
    try:
        manifest = run_dir / "manifest.json"
        wait_for(lambda: manifest.exists() and table(run_dir, "db_steps"), "the first export")
        late = h.step(b, "late", T0 + 2, T0 + 3)  # by the next pass, or the last one on stop
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, err
    assert "Ctrl-C to stop" in err
    assert "2 steps, 0 builds" in err and "0 error(s)" in err  # the build is not finished
    run = read_run(run_dir)
    assert run.manifest["ended_utc"] is not None
    assert all(s["ended_utc"] is not None for s in run.manifest["sources"])
    assert set(run.manifest["compacted"]) >= {"db_steps", "db_cursor"}
    assert keys(table(run_dir, "db_steps"))[-1] == (b, late)


def test_cli_once_unreachable_fails_in_one_line(tmp_path: Path, capsys: Any) -> None:
    dsn = f"host=127.0.0.1 port={free_port()} user=hydra password=s3cret dbname=hydra"
    args = parse("--pg", dsn, "--out", str(tmp_path / "run"), "--once", "--timeout", "2s")
    assert collect_db.run(args) == 1
    lines = [line for line in capsys.readouterr().err.splitlines() if "export:" in line]
    assert len(lines) == 3  # the first try and two retries, each one line
    assert all("password=***" in line and "s3cret" not in line for line in lines)
    errors = [e for e in table(tmp_path / "run", "events") if e["event"] == "error"]
    assert len(errors) == 3 and "s3cret" not in str(read_run(tmp_path / "run").manifest)


def test_cli_usage_errors(tmp_path: Path) -> None:
    out = str(tmp_path / "run")
    for bad, message in (
        (["--interval", "0"], "--interval must be positive"),
        (["--export-every", "soon"], "--export-every"),
        (["--since", "yesterday"], "--since"),
    ):
        with pytest.raises(UsageError, match=message):
            collect_db.run(parse("--pg", "host=x", "--out", out, *bad))
    assert not (tmp_path / "run").exists()  # refused before touching anything
