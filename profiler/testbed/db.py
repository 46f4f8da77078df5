"""The testbed's optional real PostgreSQL: Hydra's timing tables, written as the runner does.

:data:`DDL` is our own rendering (from the reference, §3) of the parts of Hydra's schema that a
queue runner writes and a profiler reads: ``Builds``, ``BuildSteps`` with its ``busy`` phase
codes and indexes, ``BuildStepOutputs``, ``BuildOutputs``, ``SystemStatus`` and ``FailedPaths``,
plus the minimal ``Projects``/``Jobsets`` that ``Builds.jobset_id`` refers to. Identifiers are
unquoted and spelled as in Hydra, so PostgreSQL folds them to lower case exactly as it does for
Hydra (``drvPath`` is column ``drvpath``).

:class:`HydraDb` performs the runner's writes with the same statements, transactions and
``NOTIFY`` payloads (reference §1.1, §3). What goes *into* the time columns is the engine's
choice per generation (reference §2.4, §4.2):

- **C++** (``cxx``): the step row is inserted with ``startTime`` = the runner's clock when the
  step began; on finish ``startTime``/``stopTime`` are **overwritten** with the builder-reported
  build start and stop, so ``stopTime - startTime`` is the build only; ``overhead`` = ms spent
  copying the input closure to the builder plus receiving (and compressing, uploading) outputs.
- **Rust** (``rust``): ``startTime`` = when the runner started realising the step, ``stopTime`` =
  when the result was processed, so ``stopTime - startTime`` is the whole step; ``overhead`` =
  the builder's ``import_time_ms + upload_time_ms``.

Both write ``overhead`` as NULL when it is 0. ``Builds.startTime``/``stopTime`` are copied from
the top-level step's result times (cached builds: start = stop = now).
"""

from __future__ import annotations

import functools
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from types import TracebackType
from typing import Any, TypeVar, cast

import psycopg
from psycopg.rows import TupleRow

from profiler.errors import ProfilerError
from profiler.hydra import facts

# Status codes shared by Builds.buildStatus and BuildSteps.status (reference §3).
STATUS_SUCCESS = 0
STATUS_FAILED = 1
STATUS_DEP_FAILED = 2
STATUS_ABORTED = 3
STATUS_CANCELLED = 4
STATUS_FAILED_WITH_OUTPUT = 6
STATUS_TIMED_OUT = 7
STATUS_CACHED_FAILURE = 8
STATUS_UNSUPPORTED = 9
STATUS_LOG_LIMIT_EXCEEDED = 10
STATUS_NAR_SIZE_LIMIT_EXCEEDED = 11
STATUS_NOT_DETERMINISTIC = 12
STATUS_RESOLVED = 13

DDL = """
create table if not exists Projects (
    name          text primary key not null
);

create table if not exists Jobsets (
    name          text not null,
    id            serial not null,
    project       text not null,
    primary key   (project, name),
    foreign key   (project) references Projects(name) on delete cascade on update cascade,
    constraint    Jobsets_id_unique unique (id)
);

create table if not exists Builds (
    id            serial primary key not null,
    finished      integer not null,         -- 0 = queued or running, 1 = done
    timestamp     integer not null,         -- epoch s, when the build was queued
    jobset_id     integer not null,
    job           text not null,
    nixName       text,
    drvPath       text not null,
    system        text not null,
    maxsilent     integer default 3600,
    timeout       integer default 36000,
    isChannel     integer not null default 0,
    isCurrent     integer default 0,
    priority      integer not null default 0,
    globalPriority integer not null default 0,
    startTime     integer,                  -- epoch s, copied from the top-level step result
    stopTime      integer,
    isCachedBuild integer,
    buildStatus   integer,
    size          bigint,                   -- bytes: NAR sizes of the outputs
    closureSize   bigint,                   -- bytes: NAR sizes of the closure
    releaseName   text,
    keep          integer not null default 0,
    notificationPendingSince integer,       -- epoch s, = stopTime when finished
    check (finished = 0 or (stopTime is not null and stopTime != 0)),
    check (finished = 0 or (startTime is not null and startTime != 0)),
    foreign key (jobset_id) references Jobsets(id) on delete cascade
);

create table if not exists BuildOutputs (
    build         integer not null,
    name          text not null,
    path          text,
    primary key   (build, name),
    foreign key   (build) references Builds(id) on delete cascade
);

create table if not exists BuildSteps (
    build         integer not null,
    stepnr        integer not null,         -- max + 1 within the build
    type          integer not null,         -- 0 = build, 1 = substitution
    drvPath       text not null,
    busy          integer not null,         -- phase: 1, 10, 20, 30, 35, 40, 50; 0 = not busy
    status        integer,                  -- NULL while busy
    errorMsg      text,
    startTime     integer,                  -- epoch s (meaning differs per generation)
    stopTime      integer,
    machine       text not null default '',
    system        text,
    propagatedFrom integer,
    overhead      integer,                  -- ms copying from/to build machines; NULL when 0
    timesBuilt    integer,
    isNonDeterministic boolean,
    resolvedDrvPath text,
    primary key   (build, stepnr),
    foreign key   (build) references Builds(id) on delete cascade,
    foreign key   (propagatedFrom) references Builds(id) on delete cascade,
    check ((status = 13) = (resolvedDrvPath is not null))
);

create table if not exists BuildStepOutputs (
    build         integer not null,
    stepnr        integer not null,
    name          text not null,
    path          text,
    primary key   (build, stepnr, name),
    foreign key   (build) references Builds(id) on delete cascade,
    foreign key   (build, stepnr) references BuildSteps(build, stepnr) on delete cascade
);

create table if not exists FailedPaths (
    path          text primary key not null
);

create table if not exists SystemStatus (
    what          text primary key not null,
    status        json not null
);

create index if not exists IndexBuildStepsOnBusy on BuildSteps(busy) where busy != 0;
create index if not exists IndexBuildStepsOnDrvPath on BuildSteps(drvPath);
create index if not exists IndexBuildStepsOnPropagatedFrom on BuildSteps(propagatedFrom)
    where propagatedFrom is not null;
create index if not exists IndexBuildStepsOnStopTime on BuildSteps(stopTime desc)
    where startTime is not null and stopTime is not null;
create index if not exists IndexBuildStepOutputsOnPath on BuildStepOutputs(path);
create index if not exists IndexBuildsOnFinished on Builds(finished) where finished = 0;
create index if not exists IndexBuildsOnDrvPath on Builds(drvPath);
create index if not exists IndexBuildsOnTimestamp on Builds(timestamp);
create index if not exists IndexBuildsOnNotificationPendingSince
    on Builds(notificationPendingSince) where notificationPendingSince is not null;
"""

Cursor = psycopg.Cursor[TupleRow]
_T = TypeVar("_T")
_F = TypeVar("_F", bound=Callable[..., Any])


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split()) or type(exc).__name__


def _reconnecting(method: _F) -> _F:
    """A write method that survives a lost connection (see :meth:`HydraDb._retry`)."""

    @functools.wraps(method)
    def call(self: HydraDb, *args: Any, **kwargs: Any) -> Any:
        return self._retry(lambda: method(self, *args, **kwargs))

    return cast(_F, call)


class HydraDb:
    """The queue runner's database writes, over one autocommit psycopg connection.

    Thread-safe: every write holds a lock around the shared connection, and each method's
    statements run in one transaction, so its ``NOTIFY`` is delivered at commit, after the rows
    are visible (as in Hydra). ``latency_seconds`` > 0 sleeps before each write, *outside* the
    lock, like a slow database reached through Hydra's connection pool.
    """

    def __init__(
        self, dsn: str, *, latency_seconds: float = 0.0, reconnect_seconds: float = 30.0
    ) -> None:
        self.dsn = dsn
        self.latency_seconds = latency_seconds
        self.reconnect_seconds = reconnect_seconds
        self.reconnects = 0
        self._conn: psycopg.Connection[TupleRow] = psycopg.connect(dsn, autocommit=True)
        self._lock = threading.Lock()

    @classmethod
    def connect(cls, dsn: str, **kwargs: Any) -> HydraDb:
        """:class:`HydraDb` on ``dsn``; an unreachable server is a one-line error."""
        try:
            return cls(dsn, **kwargs)
        except psycopg.Error as exc:
            raise ProfilerError(f"testbed: --pg: cannot connect: {_one_line(exc)}") from None

    def _reconnect(self, broken: psycopg.Connection[TupleRow], exc: Exception) -> None:
        """Replace a lost connection (a PostgreSQL restart), retrying with back-off for up to
        ``reconnect_seconds``; then a one-line ``ProfilerError``."""
        deadline = time.monotonic() + self.reconnect_seconds
        delay = 0.1
        with self._lock:
            if self._conn is not broken:
                return  # another thread has reconnected already
            while True:
                try:
                    self._conn = psycopg.connect(self.dsn, autocommit=True)
                    self.reconnects += 1
                    return
                except psycopg.OperationalError as again:
                    exc = again
                if time.monotonic() + delay > deadline:
                    raise ProfilerError(
                        f"testbed: the database connection was lost and not back within "
                        f"{self.reconnect_seconds:g} s: {_one_line(exc)}"
                    ) from None
                time.sleep(delay)
                delay = min(2 * delay, 2.0)

    def close(self) -> None:
        """Close the connection."""
        with self._lock:
            self._conn.close()

    def __enter__(self) -> HydraDb:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    @contextmanager
    def _write(self) -> Iterator[Cursor]:
        """One write transaction: the latency knob, the lock, BEGIN ... COMMIT."""
        if self.latency_seconds > 0:
            time.sleep(self.latency_seconds)
        with self._lock, self._conn.transaction(), self._conn.cursor() as cur:
            yield cur

    def _retry(self, write: Callable[[], _T]) -> _T:
        """Run one write transaction; when the connection was lost, reconnect and run it
        again (the transaction was rolled back with the connection; only a loss while COMMIT
        was in flight could leave it done twice, as with any client)."""
        while True:
            conn = self._conn
            try:
                return write()
            except psycopg.OperationalError as exc:
                if not (conn.broken or conn.closed):
                    raise  # a statement's own failure (a timeout, a cancel): not a lost link
                self._reconnect(conn, exc)

    @staticmethod
    def _notify(cur: Cursor, channel: str, payload: str = "") -> None:
        cur.execute("select pg_notify(%s, %s)", (channel, payload))

    @_reconnecting
    def create_schema(self) -> None:
        """Create the tables and indexes of :data:`DDL` (idempotent)."""
        with self._write() as cur:
            cur.execute(DDL)

    @_reconnecting
    def add_jobset(self, project: str, name: str) -> int:
        """The id of jobset ``project:name``, creating the project and jobset if missing."""
        with self._write() as cur:
            cur.execute(
                "insert into Projects (name) values (%s) on conflict do nothing", (project,)
            )
            cur.execute(
                "insert into Jobsets (project, name) values (%s, %s)"
                " on conflict (project, name) do update set name = excluded.name returning id",
                (project, name),
            )
            return _one_int(cur)

    @_reconnecting
    def add_build(
        self,
        jobset_id: int,
        job: str,
        drv_path: str,
        system: str,
        timestamp: int,
        *,
        priority: int = 0,
        global_priority: int = 0,
    ) -> int:
        """Queue a build (what the evaluator does); ``NOTIFY builds_added``. Its id."""
        with self._write() as cur:
            cur.execute(
                "insert into Builds (finished, timestamp, jobset_id, job, drvPath, system,"
                " priority, globalPriority) values (0, %s, %s, %s, %s, %s, %s, %s) returning id",
                (timestamp, jobset_id, job, drv_path, system, priority, global_priority),
            )
            build_id = _one_int(cur)
            self._notify(cur, "builds_added")
            return build_id

    @_reconnecting
    def start_step(
        self,
        build_id: int,
        drv_path: str,
        system: str,
        machine: str,
        outputs: Mapping[str, str | None],
        start_time: int,
        step_type: int = 0,
        build_started: bool = True,
    ) -> int:
        """Insert a busy step (busy=1, stepnr = max+1) and its outputs. Its stepnr.

        ``NOTIFY step_started '<build>\\t<stepnr>'``; also ``NOTIFY build_started '<build>'``
        when ``drv_path`` is the build's own (top-level) derivation and ``build_started``
        (C++: one transaction; Rust notifies in a transaction of its own,
        :meth:`notify_build_started`).
        """
        with self._write() as cur:
            row = None
            while row is None:  # another writer took that stepnr: retry, as Hydra does
                cur.execute(
                    "insert into BuildSteps (build, stepnr, type, drvPath, busy, startTime,"
                    " system, machine) select %(build)s, coalesce(max(stepnr), 0) + 1, %(type)s,"
                    " %(drv)s, %(busy)s, %(start)s, %(system)s, %(machine)s"
                    " from BuildSteps where build = %(build)s"
                    " on conflict do nothing returning stepnr",
                    {
                        "build": build_id,
                        "type": step_type,
                        "drv": drv_path,
                        "busy": facts.PREPARING,
                        "start": start_time,
                        "system": system,
                        "machine": machine,
                    },
                )
                row = cur.fetchone()
            stepnr = int(row[0])
            cur.executemany(
                "insert into BuildStepOutputs (build, stepnr, name, path) values (%s, %s, %s, %s)",
                [(build_id, stepnr, name, path) for name, path in outputs.items()],
            )
            self._notify(cur, "step_started", f"{build_id}\t{stepnr}")
            cur.execute("select drvPath from Builds where id = %s", (build_id,))
            row = cur.fetchone()
            if build_started and row is not None and row[0] == drv_path:
                self._notify(cur, "build_started", str(build_id))
            return stepnr

    @_reconnecting
    def notify_build_started(self, build_id: int, drv_path: str) -> None:
        """Rust: ``NOTIFY build_started`` in its own transaction after the step's row (hydra
        14332fbf subprojects/hydra-queue-runner/src/state/mod.rs:1123-1127), when
        ``drv_path`` is the build's own derivation."""
        with self._write() as cur:
            cur.execute("select drvPath from Builds where id = %s", (build_id,))
            row = cur.fetchone()
            if row is not None and row[0] == drv_path:
                self._notify(cur, "build_started", str(build_id))

    @_reconnecting
    def set_busy(self, build_id: int, stepnr: int, busy: int) -> bool:
        """Move a running step to phase ``busy``; a no-op once it finished. Whether it did."""
        with self._write() as cur:
            cur.execute(
                "update BuildSteps set busy = %s"
                " where build = %s and stepnr = %s and busy != 0 and status is null",
                (busy, build_id, stepnr),
            )
            return cur.rowcount > 0

    @_reconnecting
    def finish_step(
        self,
        build_id: int,
        stepnr: int,
        status: int,
        start_time: int,
        stop_time: int,
        machine: str,
        overhead_ms: int,
        times_built: int = 1,
        *,
        is_non_deterministic: bool = False,
        error_msg: str | None = None,
        log_file: str = "",
        resolved_drv_path: str | None = None,
    ) -> None:
        """Finish a step: busy=0, status and times (overwritten), ``NOTIFY step_finished``.

        ``overhead`` and ``timesBuilt`` are written NULL when 0, ``isNonDeterministic`` unless
        ``times_built`` > 1. Payload ``'<build>\\t<stepnr>\\t<log_file>'``.
        """
        if "\t" in log_file:
            raise ValueError(f"tab in log file path {log_file!r}")
        with self._write() as cur:
            cur.execute(
                "update BuildSteps set busy = 0, status = %s, errorMsg = %s, startTime = %s,"
                " stopTime = %s, machine = %s, overhead = %s, timesBuilt = %s,"
                " isNonDeterministic = %s, resolvedDrvPath = %s"
                " where build = %s and stepnr = %s",
                (
                    status,
                    error_msg,
                    start_time,
                    stop_time,
                    machine,
                    overhead_ms if overhead_ms != 0 else None,
                    times_built if times_built > 0 else None,
                    is_non_deterministic if times_built > 1 else None,
                    resolved_drv_path,
                    build_id,
                    stepnr,
                ),
            )
            self._notify(cur, "step_finished", f"{build_id}\t{stepnr}\t{log_file}")

    @_reconnecting
    def finish_build(
        self,
        build_id: int,
        status: int,
        start_time: int,
        stop_time: int,
        size: int,
        closure_size: int,
        outputs: Mapping[str, str],
        *,
        is_cached: bool = False,
        release_name: str | None = None,
        dependents: Sequence[int] = (),
    ) -> None:
        """Mark a build finished with its outputs; ``NOTIFY build_finished``.

        Sets ``notificationPendingSince`` = ``stop_time``. Payload ``'<build>'``, followed by
        ``'\\t<id>'`` for each of ``dependents`` (builds finished along with it, e.g. failed
        through a shared dependency).
        """
        with self._write() as cur:
            cur.execute(
                "update Builds set finished = 1, buildStatus = %s, startTime = %s,"
                " stopTime = %s, size = %s, closureSize = %s, releaseName = %s,"
                " isCachedBuild = %s, notificationPendingSince = %s where id = %s",
                (
                    status,
                    start_time,
                    stop_time,
                    size,
                    closure_size,
                    release_name,
                    int(is_cached),
                    stop_time,
                    build_id,
                ),
            )
            cur.executemany(
                "insert into BuildOutputs (build, name, path) values (%s, %s, %s)"
                " on conflict (build, name) do update set path = excluded.path",
                [(build_id, name, path) for name, path in outputs.items()],
            )
            payload = "\t".join(str(b) for b in (build_id, *dependents))
            self._notify(cur, "build_finished", payload)

    @_reconnecting
    def write_system_status(self, json_text: str) -> None:
        """Replace the ``'queue-runner'`` status row; ``NOTIFY status_dumped`` (C++ §1.1)."""
        with self._write() as cur:
            cur.execute("delete from SystemStatus where what = 'queue-runner'")
            cur.execute(
                "insert into SystemStatus (what, status) values ('queue-runner', %s::json)",
                (json_text,),
            )
            self._notify(cur, "status_dumped")

    @_reconnecting
    def clear_busy(self, stop_time: int) -> int:
        """Runner startup: every busy step becomes busy=0, status=3 (aborted). How many."""
        with self._write() as cur:
            cur.execute(
                "update BuildSteps set busy = 0, status = %s, stopTime = %s where busy != 0",
                (STATUS_ABORTED, stop_time),
            )
            return cur.rowcount

    @_reconnecting
    def add_failed_paths(self, paths: Sequence[str]) -> None:
        """Record output paths of a failed step (the cached-failure mechanism)."""
        with self._write() as cur:
            cur.executemany(
                "insert into FailedPaths (path) values (%s) on conflict do nothing",
                [(path,) for path in paths],
            )


def _one_int(cur: Cursor) -> int:
    row = cur.fetchone()
    if row is None:
        raise RuntimeError("statement returned no row")
    return int(row[0])
