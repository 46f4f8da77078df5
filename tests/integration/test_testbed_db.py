"""The testbed's Hydra tables and writes against a real PostgreSQL server (tests/pg.py)."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest
from psycopg import sql

from profiler.testbed.db import HydraDb

DRV = "/nix/store/aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa-hello-2.12.drv"
DEP_DRV = "/nix/store/bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb-libfoo-1.0.drv"
OUT = "/nix/store/cccccccccccccccccccccccccccccccc-hello-2.12"
MACHINE = "ssh://build@builder-1"
T0 = 1_760_000_000

CHANNELS = (
    "builds_added",
    "build_started",
    "step_started",
    "step_finished",
    "build_finished",
    "status_dumped",
)


@pytest.fixture
def db(db_dsn: str) -> Iterator[HydraDb]:
    with HydraDb(db_dsn) as hydra_db:
        hydra_db.create_schema()
        yield hydra_db


@pytest.fixture
def reader(db_dsn: str) -> Iterator[psycopg.Connection[Any]]:
    """A second connection, as a collector or the web UI would have."""
    with psycopg.connect(db_dsn, autocommit=True) as conn:
        yield conn


class Listener:
    """A connection that LISTENs and collects ``(channel, payload)`` in arrival order."""

    def __init__(self, dsn: str, channels: tuple[str, ...]) -> None:
        self.conn = psycopg.connect(dsn, autocommit=True)
        self.received: list[tuple[str, str]] = []
        self.conn.add_notify_handler(lambda n: self.received.append((n.channel, n.payload)))
        for channel in channels:
            self.conn.execute(sql.SQL("listen {}").format(sql.Identifier(channel)))

    def wait_for(self, count: int, timeout: float = 10.0) -> list[tuple[str, str]]:
        """Poll until ``count`` notifications have arrived (or the timeout)."""
        deadline = time.monotonic() + timeout
        while len(self.received) < count and time.monotonic() < deadline:
            self.conn.execute("select 1")  # delivers pending notifications to the handler
            time.sleep(0.01)
        return list(self.received)


@pytest.fixture
def listener(db: HydraDb, db_dsn: str) -> Iterator[Listener]:
    listening = Listener(db_dsn, CHANNELS)
    yield listening
    listening.conn.close()


def step_row(conn: psycopg.Connection[Any], build: int, stepnr: int) -> dict[str, Any]:
    cur = conn.execute("select * from BuildSteps where build = %s and stepnr = %s", (build, stepnr))
    row = cur.fetchone()
    assert row is not None
    assert cur.description is not None
    return dict(zip([c.name for c in cur.description], row, strict=True))


def new_build(db: HydraDb, drv: str = DRV) -> int:
    jobset = db.add_jobset("nixpkgs", "trunk")
    return db.add_build(jobset, "hello.x86_64-linux", drv, "x86_64-linux", T0)


def test_schema_creates_hydra_tables_and_indexes(
    db: HydraDb, reader: psycopg.Connection[Any]
) -> None:
    db.create_schema()  # idempotent
    tables = {
        r[0]
        for r in reader.execute(
            "select table_name from information_schema.tables where table_schema = 'public'"
        )
    }
    assert {
        "projects",
        "jobsets",
        "builds",
        "buildsteps",
        "buildstepoutputs",
        "buildoutputs",
        "systemstatus",
        "failedpaths",
    } <= tables
    columns = {
        r[0]
        for r in reader.execute(
            "select column_name from information_schema.columns where table_name = 'buildsteps'"
        )
    }
    assert columns == {
        "build",
        "stepnr",
        "type",
        "drvpath",
        "busy",
        "status",
        "errormsg",
        "starttime",
        "stoptime",
        "machine",
        "system",
        "propagatedfrom",
        "overhead",
        "timesbuilt",
        "isnondeterministic",
        "resolveddrvpath",
    }
    build_columns = {
        r[0]
        for r in reader.execute(
            "select column_name from information_schema.columns where table_name = 'builds'"
        )
    }
    assert {
        "finished",
        "timestamp",
        "jobset_id",
        "job",
        "drvpath",
        "system",
        "priority",
        "globalpriority",
        "starttime",
        "stoptime",
        "iscachedbuild",
        "buildstatus",
        "size",
        "closuresize",
        "notificationpendingsince",
    } <= build_columns
    indexes = dict(
        reader.execute(
            "select indexname, indexdef from pg_indexes where tablename = 'buildsteps'"
        ).fetchall()
    )
    assert "WHERE (busy <> 0)" in indexes["indexbuildstepsonbusy"]
    stop_index = indexes["indexbuildstepsonstoptime"]
    assert "stoptime DESC" in stop_index
    assert "WHERE ((starttime IS NOT NULL) AND (stoptime IS NOT NULL))" in stop_index
    status_type = reader.execute(
        "select data_type from information_schema.columns"
        " where table_name = 'systemstatus' and column_name = 'status'"
    ).fetchone()
    assert status_type == ("json",)


def test_step_lifecycle_rows(db: HydraDb, reader: psycopg.Connection[Any]) -> None:
    build = new_build(db)
    assert reader.execute(
        "select finished, timestamp from Builds where id = %s", (build,)
    ).fetchone() == (0, T0)
    stepnr = db.start_step(build, DRV, "x86_64-linux", MACHINE, {"out": OUT}, T0 + 5)
    assert stepnr == 1
    row = step_row(reader, build, stepnr)
    assert (row["busy"], row["status"], row["starttime"], row["stoptime"]) == (
        1,
        None,
        T0 + 5,
        None,
    )
    assert (row["type"], row["drvpath"], row["machine"], row["system"]) == (
        0,
        DRV,
        MACHINE,
        "x86_64-linux",
    )
    assert reader.execute(
        "select name, path from BuildStepOutputs where build = %s and stepnr = %s",
        (build, stepnr),
    ).fetchall() == [("out", OUT)]

    seen = [row["busy"]]
    for busy in (10, 20, 30, 40, 50):
        assert db.set_busy(build, stepnr, busy)
        seen.append(step_row(reader, build, stepnr)["busy"])
        # what /machines polls: the busy steps, via the partial index's predicate
        active = reader.execute("select build, stepnr, busy from BuildSteps where busy != 0")
        assert active.fetchall() == [(build, stepnr, busy)]

    # C++ semantics: times overwritten with the builder's build start/stop
    db.finish_step(build, stepnr, 0, T0 + 8, T0 + 68, MACHINE, 4321, log_file="/log/x.drv")
    row = step_row(reader, build, stepnr)
    seen.append(row["busy"])
    assert seen == [1, 10, 20, 30, 40, 50, 0]
    assert row["status"] == 0
    assert (row["starttime"], row["stoptime"]) == (T0 + 8, T0 + 68)
    assert (row["overhead"], row["timesbuilt"], row["isnondeterministic"]) == (4321, 1, None)
    assert row["errormsg"] is None and row["resolveddrvpath"] is None
    assert reader.execute("select count(*) from BuildSteps where busy != 0").fetchone() == (0,)

    db.finish_build(build, 0, T0 + 8, T0 + 68, 1000, 5000, {"out": OUT})
    assert reader.execute(
        "select finished, buildStatus, startTime, stopTime, size, closureSize,"
        " isCachedBuild, notificationPendingSince from Builds where id = %s",
        (build,),
    ).fetchone() == (1, 0, T0 + 8, T0 + 68, 1000, 5000, 0, T0 + 68)
    assert reader.execute(
        "select name, path from BuildOutputs where build = %s", (build,)
    ).fetchall() == [("out", OUT)]

    # the next step of the same build gets max + 1
    assert db.start_step(build, DEP_DRV, "x86_64-linux", MACHINE, {}, T0 + 70) == 2


def test_notify_payloads(db: HydraDb, listener: Listener) -> None:
    build = new_build(db)
    dep_step = db.start_step(build, DEP_DRV, "x86_64-linux", MACHINE, {"out": OUT}, T0 + 1)
    db.set_busy(build, dep_step, 30)
    db.finish_step(build, dep_step, 0, T0 + 2, T0 + 3, MACHINE, 0, log_file="/log/dep")
    top_step = db.start_step(build, DRV, "x86_64-linux", MACHINE, {"out": OUT}, T0 + 4)
    db.finish_step(build, top_step, 0, T0 + 5, T0 + 6, MACHINE, 10, log_file="")
    db.finish_build(build, 0, T0 + 5, T0 + 6, 1, 2, {"out": OUT}, dependents=[77, 78])
    db.write_system_status('{"status":"up"}')

    expected = [
        ("builds_added", ""),
        ("step_started", f"{build}\t1"),
        ("step_finished", f"{build}\t1\t/log/dep"),
        ("step_started", f"{build}\t2"),
        ("build_started", f"{build}"),  # step 2 is the build's top-level derivation
        ("step_finished", f"{build}\t2\t"),
        ("build_finished", f"{build}\t77\t78"),
        ("status_dumped", ""),
    ]
    assert listener.wait_for(len(expected)) == expected

    other = new_build(db)
    db.finish_build(other, 1, T0 + 9, T0 + 9, 0, 0, {})
    assert listener.wait_for(len(expected) + 2)[-1] == ("build_finished", f"{other}")


def test_set_busy_is_a_noop_after_finish(db: HydraDb, reader: psycopg.Connection[Any]) -> None:
    build = new_build(db)
    stepnr = db.start_step(build, DRV, "x86_64-linux", MACHINE, {"out": OUT}, T0)
    db.finish_step(build, stepnr, 1, T0 + 1, T0 + 2, MACHINE, 5)
    assert not db.set_busy(build, stepnr, 40)
    row = step_row(reader, build, stepnr)
    assert (row["busy"], row["status"]) == (0, 1)


def test_overhead_and_times_built_null_when_zero(
    db: HydraDb, reader: psycopg.Connection[Any]
) -> None:
    build = new_build(db)
    first = db.start_step(build, DEP_DRV, "x86_64-linux", "", {"out": OUT}, T0)
    db.finish_step(build, first, 8, T0, T0, "", 0, times_built=0)
    row = step_row(reader, build, first)
    assert (row["overhead"], row["timesbuilt"], row["isnondeterministic"]) == (None, None, None)

    second = db.start_step(build, DRV, "x86_64-linux", MACHINE, {"out": OUT}, T0)
    db.finish_step(
        build, second, 12, T0, T0 + 9, MACHINE, 7, times_built=2, is_non_deterministic=True
    )
    row = step_row(reader, build, second)
    assert (row["overhead"], row["timesbuilt"], row["isnondeterministic"]) == (7, 2, True)


def test_system_status_holds_one_row(db: HydraDb, reader: psycopg.Connection[Any]) -> None:
    db.write_system_status(json.dumps({"status": "up", "nrQueuedBuilds": 1}))
    db.write_system_status(json.dumps({"status": "up", "nrQueuedBuilds": 2}))
    rows = reader.execute("select what, status from SystemStatus").fetchall()
    assert rows == [("queue-runner", {"status": "up", "nrQueuedBuilds": 2})]


def test_clear_busy_aborts_running_steps(db: HydraDb, reader: psycopg.Connection[Any]) -> None:
    build = new_build(db)
    running = db.start_step(build, DRV, "x86_64-linux", MACHINE, {"out": OUT}, T0)
    db.set_busy(build, running, 30)
    assert db.clear_busy(T0 + 100) == 1
    row = step_row(reader, build, running)
    assert (row["busy"], row["status"], row["stoptime"]) == (0, 3, T0 + 100)


def test_concurrent_steps_get_distinct_stepnrs(
    db: HydraDb, reader: psycopg.Connection[Any]
) -> None:
    build = new_build(db)
    stepnrs: list[int] = []

    def work(i: int) -> None:
        drv = f"/nix/store/{i:032d}-dep.drv"
        stepnr = db.start_step(build, drv, "x86_64-linux", MACHINE, {"out": f"{drv}-out"}, T0)
        for busy in (10, 20, 30, 40, 50):
            db.set_busy(build, stepnr, busy)
        db.finish_step(build, stepnr, 0, T0, T0 + 1, MACHINE, i)
        stepnrs.append(stepnr)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(stepnrs) == list(range(1, 17))
    assert reader.execute(
        "select count(*), count(*) filter (where busy = 0 and status = 0) from BuildSteps"
    ).fetchone() == (16, 16)


def test_latency_knob_slows_each_write(db_dsn: str) -> None:
    with HydraDb(db_dsn, latency_seconds=0.05) as slow:
        slow.create_schema()
        started = time.monotonic()
        slow.write_system_status("{}")
        slow.write_system_status("{}")
        assert time.monotonic() - started >= 0.1
