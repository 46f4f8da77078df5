"""Shared parts of the database collector: options, read-only sessions, SQL, generation
detection, reporting and backoff (see :mod:`profiler.collect.database.collector`)."""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import psycopg

from profiler.collect.control import Log
from profiler.hydra import facts
from profiler.store import Run, redact

# Hydra's facts, from their one home (profiler.hydra.facts), under the names used here
PHASES: Mapping[int, str] = facts.BUSY
PREPARING = facts.PREPARING
FINAL_PHASE = facts.FINAL_PHASE  # the last busy code in both generations: busy 0 follows
SEMANTICS = facts.TIME_SEMANTICS
BUILD_SEMANTICS = facts.BUILD_SEMANTICS

EXPORT_APP = "hydra-profiler-db-export"
TRACK_APP = "hydra-profiler-db-track"
LISTEN_APP = "hydra-profiler-db-listen"
CHANNELS = ("step_started", "step_finished", "build_finished")
LOCK_NAME = ".collect-db.lock"
# exported builds are remembered this long below the window: a step of a finished build (one
# that failed through another dependency) can still finish later and make it pending again
BUILD_MEMORY_SECONDS = 7 * 86400

# a finished step with both times: the predicate of IndexBuildStepsOnStopTime (hydra.sql:688)
FINISHED = "startTime is not null and stopTime is not null and busy = 0"
STEP_KEYS_SQL = (
    "select stopTime, build, stepnr from BuildSteps"
    f" where {FINISHED} and stopTime >= %(lo)s"
    " and (stopTime, build, stepnr) > (%(stop)s, %(build)s, %(stepnr)s)"
    " order by stopTime, build, stepnr limit %(limit)s"
)
STEP_ROWS_SQL = (
    "select s.build, s.stepnr, s.type, s.drvPath, s.machine, s.system, s.status,"
    " left(s.errorMsg, 500), s.startTime, s.stopTime, s.overhead, s.timesBuilt,"
    " s.isNonDeterministic, s.propagatedFrom"
    " from unnest(%(builds)s::integer[], %(stepnrs)s::integer[]) as k(build, stepnr)"
    " join BuildSteps s on s.build = k.build and s.stepnr = k.stepnr"
    f" where {FINISHED}"
)
BUILDS_SQL = (
    "select b.id, j.project, j.name, b.job, b.system, b.drvPath, b.nixName, b.timestamp,"
    " b.startTime, b.stopTime, b.buildStatus, b.isCachedBuild, b.size, b.closureSize,"
    " b.priority, b.globalPriority, b.finished"
    " from Builds b join Jobsets j on j.id = b.jobset_id where b.id = any(%(ids)s::integer[])"
)
BUSY_SQL = "select build, stepnr, busy, machine, system from BuildSteps where busy != 0"
RECENT_MACHINES_SQL = (
    "select machine from BuildSteps where startTime is not null and stopTime is not null"
    " order by stopTime desc limit 50"
)
STATUS_ROW_SQL = "select count(*) from SystemStatus where what = 'queue-runner'"

Key = tuple[int, int]
Conn = psycopg.Connection[Any]
Connect = Callable[[str, str, float, bool], Conn]


@dataclass
class DbOptions:
    """How ``collect db`` runs (the CLI's options, in seconds)."""

    interval_seconds: float = 1.0
    export_every_seconds: float = 30.0
    duration_seconds: float | None = None
    once: bool = False
    track: bool = True
    timeout_seconds: float = 10.0
    since: float | None = None  # None: now (a fresh run), or the run's own cursor
    overlap_seconds: float = 3600.0
    generation: str | None = None  # None: detect
    page_size: int = 5000
    backoff_seconds: float = 0.5
    max_backoff_seconds: float = 30.0
    once_retries: int = 2
    on_page: Callable[[int], object] | None = None  # after each exported page (a test seam)
    backfill_after_seconds: float | None = None  # a window older than this: backfill (history)
    backfill_rows: int = 50_000  # rows per backfill part
    backfill_timeout_seconds: float = 0.0  # the backfill transaction's statement timeout; 0 none
    progress_seconds: float = 2.0  # between backfill progress lines


def phase_name(busy: int | None) -> str:
    """``30`` -> ``'building'``; codes Hydra may add later -> ``'busy-<code>'``."""
    if busy is None:
        return "unobserved"
    return PHASES.get(busy, f"busy-{busy}")


def describe(exc: BaseException) -> str:
    """The first line of an error, secrets redacted."""
    text = str(exc).strip()
    return redact(text.splitlines()[0] if text else type(exc).__name__)


def ms(seconds: float) -> int:
    """Seconds as whole milliseconds, at least 1 (a ``statement_timeout`` of 0 means none)."""
    return max(1, int(seconds * 1000))


def connect_readonly(
    dsn: str, application_name: str, timeout_seconds: float, autocommit: bool
) -> Conn:
    """A session that cannot write: ``default_transaction_read_only`` and a statement timeout.

    Parameters
    ----------
    dsn
        libpq connection string or URL.
    application_name
        Shown in ``pg_stat_activity``.
    timeout_seconds
        Connect timeout and the session's ``statement_timeout``.
    autocommit
        True for a LISTEN session; otherwise every transaction is also begun ``read only``.
    """
    conn = psycopg.connect(
        dsn,
        autocommit=autocommit,
        connect_timeout=max(1, math.ceil(timeout_seconds)),
        application_name=application_name,
    )
    try:
        conn.execute("set session default_transaction_read_only = on")
        conn.execute(f"set session statement_timeout = {ms(timeout_seconds)}")
        if not autocommit:
            conn.commit()
            conn.read_only = True
    except BaseException:
        conn.close()
        raise
    return conn


def read_query(
    conn: Conn, sql: str, params: Mapping[str, Any] | None, timeout_ms: int
) -> list[tuple[Any, ...]]:
    """Run one SELECT in its own read-only transaction with a local statement timeout."""
    with conn.transaction():
        conn.execute(f"set local statement_timeout = {int(timeout_ms)}")
        return conn.execute(sql, params).fetchall()


def classify_generation(
    machines: Iterable[str | None], has_status_row: bool
) -> tuple[str | None, str]:
    """Which runner wrote the rows, from their ``machine`` values and ``SystemStatus``.

    A store URI (``ssh://build@host``) is the C++ runner's; bare host names without a
    ``SystemStatus`` row are the Rust runner's; a ``SystemStatus`` row alone means C++ (only
    it writes one, though a row left over from a C++ past would mislead: hence ``--generation``).

    Returns
    -------
    generation, reason
        ``"cxx"``, ``"rust"`` or None (not enough evidence yet), and why.
    """
    names = [m for m in machines if m]
    if any("://" in m for m in names):
        return "cxx", "step machines are store URIs (ssh://...), as the C++ runner writes them"
    if names and not has_status_row:
        return "rust", "step machines are bare host names and there is no SystemStatus row"
    if has_status_row:
        why = "a SystemStatus 'queue-runner' row exists (only the C++ runner writes it)"
        if names:
            why += "; machines are bare names (older C++ machines files)"
        return "cxx", why
    return None, "no finished step with a machine and no SystemStatus row yet"


class Generation:
    """The runner generation, given or detected once; shared by the exporter and the tracker.

    ``on_decided(generation, reason)`` is called once when detection settles it.
    """

    def __init__(self, given: str | None, on_decided: Callable[[str, str], object]) -> None:
        self.value = given
        self.on_decided = on_decided
        self._lock = threading.Lock()

    @property
    def name(self) -> str:
        """``cxx``, ``rust`` or ``unknown``."""
        return self.value or "unknown"

    def consider(self, machines: Iterable[str | None], has_status_row: bool) -> None:
        """Detect from this evidence, unless already known."""
        if self.value is not None:
            return
        generation, reason = classify_generation(machines, has_status_row)
        if generation is None:
            return
        with self._lock:
            if self.value is not None:
                return
            self.value = generation
        self.on_decided(generation, reason)


class Reporter:
    """One-line errors and notes: to ``log`` and to the ``events`` table."""

    def __init__(self, run: Run, target: str, log: Log) -> None:
        self.events = run.writer("events")
        self.target = target
        self.log = log
        self._lock = threading.Lock()

    def _append(self, kind: str, detail: str) -> None:
        with self._lock:
            self.events.append(
                {"ts": time.time(), "source": self.target, "event": kind, "detail": detail}
            )

    def error(self, part: str, exc: BaseException, retry_in: float | None) -> None:
        self._append("error", f"{part}: {describe(exc)}")
        then = "" if retry_in is None else f"; reconnecting in {retry_in:g} s"
        self.log(f"collect db: {part}: {self.target}: {describe(exc)}{then}")

    def note(self, part: str, text: str) -> None:
        self._append("note", f"{part}: {text}")
        self.log(f"collect db: {part}: {text}")


@dataclass(frozen=True)
class DbContext:
    """What the exporter and the tracker share, made once by the collector.

    Parameters
    ----------
    run
        The run both write into.
    dsn
        Hydra's database, opened through ``connect`` (each worker has sessions of its own).
    options
        See :class:`DbOptions`.
    reporter
        Where both say their errors and notes.
    generation
        The runner generation, given or detected once by whichever worker sees it first.
    stop
        Set it to stop both workers.
    connect
        Opens a read-only session (tests may wrap it).
    """

    run: Run
    dsn: str
    options: DbOptions
    reporter: Reporter
    generation: Generation
    stop: threading.Event
    connect: Connect = connect_readonly


@dataclass
class Backoff:
    """Exponential backoff: ``initial``, doubling, capped at ``cap``; ``reset`` on success."""

    initial: float
    cap: float
    _next: float = 0.0

    def next(self) -> float:
        delay = self._next or self.initial
        self._next = min(delay * 2, self.cap)
        return min(delay, self.cap)

    def reset(self) -> None:
        self._next = 0.0
