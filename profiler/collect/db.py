"""Hydra's PostgreSQL database, read-only: finished steps and builds, and live step phases.

Two workers share one run, each with read-only sessions of its own (application names
:data:`EXPORT_APP`, :data:`TRACK_APP`, :data:`LISTEN_APP`, so that an operator, or a test,
can find them in ``pg_stat_activity``). Every session sets ``default_transaction_read_only``;
every query runs in a ``read only`` transaction with ``set local statement_timeout``; nothing
takes a lock beyond the ``access share`` of a plain SELECT, and every query is served by an
index Hydra already has (the partial ``IndexBuildStepsOnStopTime`` and ``IndexBuildStepsOnBusy``,
and primary keys).

**Export** of finished steps and their builds, every ``export_every_seconds``. ``BuildSteps``
has no monotonic id, so the cursor is the key ``(stopTime, build, stepnr)``: each pass reads
the keys with ``stopTime >= cursor - overlap`` (never below ``--since``) in key order, pages
through them (keyset, ``page_size`` keys a page, each page its own short transaction), fetches
the full rows of keys not exported yet by primary key, and advances the cursor to the largest
``stopTime`` exported. Re-reading the overlap window is what catches steps committed late with
an older ``stopTime``: a C++ step's ``stopTime`` is the *builder's* build stop, written only
after its outputs were copied, compressed and uploaded, often minutes later. Keys already
exported are skipped, so nothing is written twice. A step committed more than ``overlap``
after its ``stopTime`` is missed: choose ``overlap`` above the longest output copy. A build is
exported once it is finished, keyed by ``(build, stop_time)`` (a restarted build that finishes
again is exported again; exported builds are remembered for :data:`BUILD_MEMORY_SECONDS` below
the window); builds of exported steps that are not finished yet are retried on each pass.
Only steps with both times are exported (the index's predicate): propagated and
cached-failure rows have no timing.

The run itself is the persistent state: a restarted collector reads ``db_steps``, ``db_builds``
and ``db_cursor`` back, so it resumes where the last one stopped, losing and duplicating
nothing (``--since`` only applies to a run that has no cursor yet). One ``collect db`` at a time
may write a run (``RUN/.collect-db.lock``).

**Phase tracking**: Hydra overwrites ``BuildSteps.busy`` in place and never stores when a
step entered a phase. The tracker polls ``busy != 0`` every ``interval_seconds`` and LISTENs
on ``step_started``, ``step_finished`` and ``build_finished``; a notification triggers a poll
at once (at most ten polls an interval), and sharpens a step's start (``step_started``, the row
is inserted with busy 1) and end (``step_finished``). Every phase interval seen becomes a
``db_phases`` row. A boundary observed by a poll lies in ``[ts - err, ts]`` (``err`` = time
since the previous sighting, about one interval); by a notification, at its receipt time
(``err`` 0). Phases shorter than the interval can be missed entirely; the rows say only what
was seen. Times are this machine's clock (epoch seconds); ``db_steps`` times are Hydra's.

**Failures** (connection lost, server restarted, statement timeout): a one-line message (the
DSN redacted) through ``log`` and an ``error`` event, then reconnect with exponential backoff
capped at ``max_backoff_seconds``. The exporter resumes from its cursor; the tracker resumes
its open phases, marking those that span the outage ``gap`` (their boundaries are then only
known to within the outage, which ``start_err_s``/``end_err_s`` say).

**Generation** (which semantics the time columns have): ``--generation``, else detected once
by :func:`classify_generation` from the machines of finished steps (exporter) or of running
ones (tracker) and the presence of the ``SystemStatus`` row; recorded in the manifest (source
``generation``, and a note saying why) and in every row; ``unknown`` until the evidence is there.

Needs psycopg >= 3.2 (``Connection.notifies(timeout=..., stop_after=...)``).

Tables written
--------------
``db_steps``
    ``ts`` (export time), ``build``, ``stepnr``, ``type`` (0 build, 1 substitution),
    ``drv_path``, ``machine``, ``system``, ``status``, ``error_msg`` (first 500 characters),
    ``start_time``, ``stop_time`` (epoch s, Hydra's), ``stop_minus_start_s``, ``overhead_ms``
    (Hydra's NULL = 0), ``times_built``, ``is_non_deterministic``, ``propagated_from``,
    ``generation`` (cxx | rust | unknown), ``semantics``: **C++**: ``stop - start`` is the
    build only (builder-reported), ``overhead_ms`` the copy of inputs to and outputs from the
    builder; **Rust**: ``stop - start`` is the whole step, ``overhead_ms`` the builder's
    import + upload time.
``db_builds``
    ``ts``, ``build``, ``project``, ``jobset``, ``job``, ``system``, ``drv_path``,
    ``nix_name``, ``queued_time`` (``Builds.timestamp``), ``start_time``, ``stop_time`` (copied
    from the top-level step's result: C++ build times, Rust step wall times; cached builds
    start = stop), ``status``, ``is_cached``, ``size_bytes``, ``closure_size_bytes``,
    ``priority``, ``global_priority``, ``generation``, ``semantics``.
``db_cursor``
    one row per export pass: ``ts``, ``since``, ``stop_time`` (the cursor), ``window_start``,
    ``overlap_seconds``, ``steps``, ``builds`` (exported by the pass), ``pending_builds``,
    ``generation``.
``db_phases``
    ``ts``, ``build``, ``stepnr``, ``phase`` (name), ``busy`` (code; None for
    ``unobserved``, a step that started and finished between two polls), ``start_ts``,
    ``end_ts``, ``duration_s``, ``start_obs``/``end_obs`` (``poll``, ``notify``, ``initial``:
    already running when tracking began, ``stop``: still running when it ended, ``end_ts`` is
    then the last sighting), ``start_err_s``/``end_err_s`` (None: unbounded),
    ``resolution_seconds`` (the poll interval), ``gap`` (spans a tracker outage), ``machine``,
    ``system``, ``generation``.
``events``
    ``ts``, ``source`` (the redacted DSN), ``event`` (error | note), ``detail`` (starting
    ``export:`` or ``track:``).
"""

from __future__ import annotations

import fcntl
import math
import os
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import psycopg

from profiler.errors import CollectorError, StoreError
from profiler.store import Run, redact
from profiler.store.run import load_manifest, update_manifest
from profiler.store.segments import SegmentWriter

PHASES: dict[int, str] = {
    1: "preparing",
    10: "connecting",
    20: "sending-inputs",
    30: "building",
    35: "waiting-for-local-slot",
    40: "receiving-outputs",
    50: "post-processing",
}
PREPARING = 1
FINAL_PHASE = 50  # the last busy code in both generations: busy 0 follows

SEMANTICS = {
    "cxx": "C++: stop-start = the build only (builder-reported); overhead_ms = copying "
    "inputs to and outputs from the builder (incl. compression and upload)",
    "rust": "Rust: stop-start = the whole step (runner clock); overhead_ms = the builder's "
    "import + upload time",
    "unknown": "generation unknown: stop-start is the build only (C++) or the whole step "
    "(Rust); pass --generation",
}
BUILD_SEMANTICS = {
    "cxx": "C++: start/stop = the top-level step's build start/stop (builder clock)",
    "rust": "Rust: start/stop = the top-level step's wall times (runner clock)",
    "unknown": "generation unknown: start/stop are build times (C++) or step wall times (Rust)",
}

EXPORT_APP = "hydra-profiler-db-export"
TRACK_APP = "hydra-profiler-db-track"
LISTEN_APP = "hydra-profiler-db-listen"
CHANNELS = ("step_started", "step_finished", "build_finished")
LOCK_NAME = ".collect-db.lock"
# exported builds are remembered this long below the window: a step of a finished build (one
# that failed through another dependency) can still finish later and make it pending again
BUILD_MEMORY_SECONDS = 7 * 86400

_FINISHED = "startTime is not null and stopTime is not null and busy = 0"
STEP_KEYS_SQL = (
    "select stopTime, build, stepnr from BuildSteps"
    f" where {_FINISHED} and stopTime >= %(lo)s"
    " and (stopTime, build, stepnr) > (%(stop)s, %(build)s, %(stepnr)s)"
    " order by stopTime, build, stepnr limit %(limit)s"
)
STEP_ROWS_SQL = (
    "select s.build, s.stepnr, s.type, s.drvPath, s.machine, s.system, s.status,"
    " left(s.errorMsg, 500), s.startTime, s.stopTime, s.overhead, s.timesBuilt,"
    " s.isNonDeterministic, s.propagatedFrom"
    " from unnest(%(builds)s::integer[], %(stepnrs)s::integer[]) as k(build, stepnr)"
    " join BuildSteps s on s.build = k.build and s.stepnr = k.stepnr"
    f" where {_FINISHED}"
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
Log = Callable[[str], object]
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


def phase_name(busy: int | None) -> str:
    """``30`` -> ``'building'``; codes Hydra may add later -> ``'busy-<code>'``."""
    if busy is None:
        return "unobserved"
    return PHASES.get(busy, f"busy-{busy}")


def describe(exc: BaseException) -> str:
    """The first line of an error, secrets redacted."""
    text = str(exc).strip()
    return redact(text.splitlines()[0] if text else type(exc).__name__)


def _ms(seconds: float) -> int:
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
        conn.execute(f"set session statement_timeout = {_ms(timeout_seconds)}")
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


class _Reporter:
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


# --- the export's persistent state --------------------------------------------------------


@dataclass
class ExportState:
    """Where the export stands: the cursor and what it has already written.

    ``seen`` holds the step keys inside the re-read window (with their ``stop_time``),
    ``pending`` the builds of exported steps not exported yet, ``builds_done`` the
    ``(build, stop_time)`` of exported builds.
    """

    since: int
    cursor: int
    seen: dict[Key, int] = field(default_factory=dict)
    pending: set[int] = field(default_factory=set)
    builds_done: set[tuple[int, int]] = field(default_factory=set)
    resumed: bool = False

    def window_start(self, overlap_seconds: float) -> int:
        """The smallest ``stopTime`` a pass reads."""
        return max(self.since, self.cursor - int(overlap_seconds))

    def prune(self, overlap_seconds: float) -> None:
        """Forget keys below the window (no pass reads them again), and old builds."""
        lo = self.window_start(overlap_seconds)
        self.seen = {k: s for k, s in self.seen.items() if s >= lo}
        old = lo - BUILD_MEMORY_SECONDS
        if any(s < old for _, s in self.builds_done):
            self.builds_done = {(b, s) for b, s in self.builds_done if s >= old}


def stored_columns(path: str, table: str, names: Sequence[str]) -> dict[str, list[Any]]:
    """Columns ``names`` of a run's table (compacted Parquet + segments); empty if absent."""
    from profiler.store import tables

    if table not in tables.table_names(path):
        return {n: [] for n in names}
    for _ in range(20):  # as read_run: retry when a compaction swapped files meanwhile
        manifest = load_manifest(path)
        try:
            data, _warnings = tables.load_table(path, table, manifest)
        except FileNotFoundError:
            continue
        if load_manifest(path).get("compacted") == manifest.get("compacted"):
            return {
                n: data.column(n).to_pylist() if n in data.column_names else [None] * data.num_rows
                for n in names
            }
    raise StoreError(f"{path}: table {table} kept being compacted while it was read; try again")


def load_state(path: str, since: float | None, overlap_seconds: float, now: float) -> ExportState:
    """The export state of the run at ``path``: resumed from its tables, or a fresh one.

    A fresh state starts at ``since`` (default ``now``); a resumed one keeps its own
    ``since`` and continues from the largest ``stop_time`` it exported or recorded.
    """
    steps = stored_columns(path, "db_steps", ("build", "stepnr", "stop_time"))
    cursors = stored_columns(path, "db_cursor", ("since", "stop_time"))
    if not steps["build"] and not cursors["since"]:
        start = math.floor(now if since is None else since)
        return ExportState(since=start, cursor=start)
    stops = [int(s) for s in steps["stop_time"]]
    first = int(cursors["since"][0]) if cursors["since"] else min(stops)
    cursor = max([first, *(int(s) for s in cursors["stop_time"] if s is not None), *stops])
    state = ExportState(since=first, cursor=cursor, resumed=True)
    lo = state.window_start(overlap_seconds)
    for build, stepnr, stop in zip(steps["build"], steps["stepnr"], stops, strict=True):
        if stop >= lo:
            state.seen[(int(build), int(stepnr))] = stop
    builds = stored_columns(path, "db_builds", ("build", "stop_time"))
    state.builds_done = {
        (int(b), int(s)) for b, s in zip(builds["build"], builds["stop_time"], strict=True)
    }
    exported = {b for b, _ in state.builds_done}
    state.pending = {int(b) for b in steps["build"]} - exported
    return state


# --- export -------------------------------------------------------------------------------


def _step_record(row: Sequence[Any], generation: str, ts: float) -> dict[str, Any]:
    (build, stepnr, type_, drv, machine, system, status, error) = row[:8]
    (start, stop, overhead, times_built, nondet, propagated) = row[8:]
    return {
        "ts": ts,
        "build": build,
        "stepnr": stepnr,
        "type": type_,
        "drv_path": drv,
        "machine": machine,
        "system": system,
        "status": status,
        "error_msg": error,
        "start_time": start,
        "stop_time": stop,
        "stop_minus_start_s": stop - start,
        "overhead_ms": overhead or 0,
        "times_built": times_built,
        "is_non_deterministic": nondet,
        "propagated_from": propagated,
        "generation": generation,
        "semantics": SEMANTICS[generation],
    }


def _build_record(row: Sequence[Any], generation: str, ts: float) -> dict[str, Any]:
    (build, project, jobset, job, system, drv, nix_name, queued) = row[:8]
    (start, stop, status, cached, size, closure, prio, global_prio) = row[8:16]
    return {
        "ts": ts,
        "build": build,
        "project": project,
        "jobset": jobset,
        "job": job,
        "system": system,
        "drv_path": drv,
        "nix_name": nix_name,
        "queued_time": queued,
        "start_time": start,
        "stop_time": stop,
        "status": status,
        "is_cached": None if cached is None else bool(cached),
        "size_bytes": size,
        "closure_size_bytes": closure,
        "priority": prio,
        "global_priority": global_prio,
        "generation": generation,
        "semantics": BUILD_SEMANTICS[generation],
    }


class Exporter:
    """Incremental export of finished steps and builds (see the module docstring)."""

    def __init__(
        self,
        run: Run,
        dsn: str,
        options: DbOptions,
        reporter: _Reporter,
        state: ExportState,
        *,
        stop: threading.Event,
        connect: Connect = connect_readonly,
        generation: Generation | None = None,
    ) -> None:
        self.run = run
        self.dsn = dsn
        self.options = options
        self.reporter = reporter
        self.state = state
        self.stop = stop
        self.connect = connect
        self.generation = generation or Generation(options.generation, lambda _g, _r: None)
        self.steps = run.writer("db_steps")
        self.builds = run.writer("db_builds")
        self.cursors = run.writer("db_cursor")
        self.steps_written = 0
        self.builds_written = 0
        self.passes = 0
        self.errors = 0
        self._conn: Conn | None = None
        self._timeout_ms = _ms(options.timeout_seconds)
        self._has_status_row: bool | None = None
        if not state.resumed:
            self._write_cursor(0, 0)  # persists --since before anything is exported

    def _connection(self) -> Conn:
        if self._conn is None or self._conn.closed:
            self._conn = self.connect(self.dsn, EXPORT_APP, self.options.timeout_seconds, False)
        return self._conn

    def close(self) -> None:
        """Close the connection (if open)."""
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def _query(self, sql: str, params: Mapping[str, Any] | None = None) -> list[tuple[Any, ...]]:
        return read_query(self._connection(), sql, params, self._timeout_ms)

    # generation

    def _detect(self, machines: Sequence[str | None] = ()) -> None:
        if self._has_status_row is None:
            self._has_status_row = bool(self._query(STATUS_ROW_SQL)[0][0])
        if not machines:
            machines = [r[0] for r in self._query(RECENT_MACHINES_SQL)]
        self.generation.consider(machines, self._has_status_row)

    def detect_quietly(self) -> None:
        """Detect the generation now if possible; a failure is left to the next pass."""
        if self.generation.value is not None:
            return
        try:
            self._detect()
        except psycopg.Error:
            self.close()
        finally:
            self._has_status_row = None

    # one pass

    def export_pass(self) -> tuple[int, int]:
        """Export what finished since the cursor; the numbers of steps and builds written.

        Raises
        ------
        psycopg.Error
            The database failed; the state is consistent, the next pass resumes.
        """
        self._has_status_row = None
        if self.generation.value is None:
            self._detect()
        steps = self._export_steps()
        builds = self._export_builds()
        self.state.prune(self.options.overlap_seconds)
        self._write_cursor(steps, builds)
        self.passes += 1
        return steps, builds

    def _export_steps(self) -> int:
        st, opts = self.state, self.options
        lo = st.window_start(opts.overlap_seconds)
        after: tuple[int, int, int] = (lo - 1, 0, 0)
        total = 0
        while True:
            keys = self._query(
                STEP_KEYS_SQL,
                {"lo": lo, "stop": after[0], "build": after[1], "stepnr": after[2],
                 "limit": opts.page_size},
            )  # fmt: skip
            fresh = [(k[1], k[2]) for k in keys if (k[1], k[2]) not in st.seen]
            if fresh:
                total += self._write_steps(fresh)
            if opts.on_page is not None:
                opts.on_page(total)
            if len(keys) < opts.page_size:
                break
            after = (keys[-1][0], keys[-1][1], keys[-1][2])
        return total

    def _write_steps(self, keys: list[Key]) -> int:
        rows = self._query(
            STEP_ROWS_SQL, {"builds": [k[0] for k in keys], "stepnrs": [k[1] for k in keys]}
        )
        rows.sort(key=lambda r: (r[9], r[0], r[1]))
        if self.generation.value is None:
            self._detect([r[4] for r in rows])
        generation = self.generation.name
        now = time.time()
        st = self.state
        for row in rows:
            self.steps.append(_step_record(row, generation, now))
            st.seen[(row[0], row[1])] = row[9]  # only once it is written
            st.cursor = max(st.cursor, row[9])
            st.pending.add(row[0])
        self.steps_written += len(rows)
        return len(rows)

    def _export_builds(self) -> int:
        st = self.state
        ids = sorted(st.pending)
        generation = self.generation.name
        written = 0
        for i in range(0, len(ids), 1000):
            chunk = ids[i : i + 1000]
            rows = self._query(BUILDS_SQL, {"ids": chunk})
            now = time.time()
            for row in rows:
                if not row[16]:  # not finished: stays pending
                    continue
                st.pending.discard(row[0])
                if (row[0], row[9]) in st.builds_done:
                    continue
                self.builds.append(_build_record(row, generation, now))
                st.builds_done.add((row[0], row[9]))
                written += 1
            st.pending -= set(chunk) - {row[0] for row in rows}  # deleted meanwhile
        self.builds_written += written
        return written

    def _write_cursor(self, steps: int, builds: int) -> None:
        st = self.state
        self.cursors.append(
            {
                "ts": time.time(),
                "since": st.since,
                "stop_time": st.cursor,
                "window_start": st.window_start(self.options.overlap_seconds),
                "overlap_seconds": self.options.overlap_seconds,
                "steps": steps,
                "builds": builds,
                "pending_builds": len(st.pending),
                "generation": self.generation.name,
            }
        )

    # the loop

    def _attempt(self, backoff: Backoff) -> float | None:
        """One pass; the seconds until the next, or None when done (``--once``)."""
        try:
            self.export_pass()
        except psycopg.Error as exc:
            self.errors += 1
            self.close()
            if self.options.once and self.errors > self.options.once_retries:
                self.reporter.error("export", exc, None)
                return None
            delay = backoff.next()
            self.reporter.error("export", exc, delay)
            return delay
        backoff.reset()
        return None if self.options.once else self.options.export_every_seconds

    def run_loop(self, deadline: float | None = None) -> None:
        """Export every ``export_every_seconds`` until ``stop`` (or ``deadline``, monotonic).

        A last pass on the way out catches what finished since the previous one (when the
        connection is up; a failure is reported, not retried).
        """
        backoff = Backoff(self.options.backoff_seconds, self.options.max_backoff_seconds)
        while not self.stop.is_set():
            wait = self._attempt(backoff)
            if wait is None:
                return
            if deadline is not None:
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                wait = min(wait, left)
            self.stop.wait(wait)
        if self._conn is not None and not self._conn.closed:
            try:
                self.export_pass()
            except psycopg.Error as exc:
                self.errors += 1
                self.reporter.error("export", exc, None)


# --- phase tracking -----------------------------------------------------------------------


@dataclass
class _Open:
    """A phase being watched."""

    busy: int
    start_ts: float
    start_obs: str
    start_err: float | None
    last_seen: float
    machine: str
    system: str | None
    gap: bool = False


Row = tuple[int, str, str | None]  # busy, machine, system


class PhaseTracker:
    """Phase intervals from polls of the busy steps and from notifications (no I/O).

    Feed it :meth:`observe` (one poll: ``{(build, stepnr): (busy, machine, system)}``),
    :meth:`step_started` / :meth:`step_finished` (notifications), :meth:`lost` (the
    connection failed) and finally :meth:`close`; each finished interval is passed to
    ``emit`` as a ``db_phases`` record (without ``ts`` and ``generation``).
    """

    def __init__(self, emit: Callable[[dict[str, Any]], object], resolution_seconds: float) -> None:
        self.emit = emit
        self.resolution = resolution_seconds
        self.active: dict[Key, _Open] = {}
        self.started: dict[Key, float] = {}
        self.finished: dict[Key, float] = {}
        self.last_poll: float | None = None
        self.gap_since: float | None = None

    def step_started(self, key: Key, ts: float) -> None:
        """``step_started``: the row exists, busy 1, since about ``ts``."""
        if key not in self.active:
            self.started.setdefault(key, ts)

    def step_finished(self, key: Key, ts: float) -> None:
        """``step_finished``: busy became 0 at about ``ts``."""
        if key in self.active:
            self.finished[key] = ts
            return
        started = self.started.pop(key, None)
        if started is not None:  # its whole life fell between two polls
            self._emit(key, None, "", None, (started, "notify", 0.0), (ts, "notify", 0.0), False)

    def lost(self, ts: float) -> None:
        """The connection failed at ``ts``: what happens until the next poll is unseen."""
        if self.gap_since is None:
            self.gap_since = ts

    def observe(self, ts: float, rows: Mapping[Key, Row]) -> None:
        """One poll at ``ts``: the busy steps and their phases."""
        gap = self.gap_since is not None
        for key in list(self.active):
            self._update(key, rows.get(key), ts, gap)
        for key, row in rows.items():
            if key not in self.active:
                self._open(key, row, ts, gap)
        self.last_poll = ts
        self.gap_since = None
        for key in [k for k in self.finished if k not in self.active]:
            del self.finished[key]
        for key in [k for k, t in self.started.items() if t < ts - 3600]:
            del self.started[key]

    def close(self) -> None:
        """Tracking ends: emit the phases still open, ending at their last sighting."""
        for key, op in self.active.items():
            end = (op.last_seen, "stop", None)
            self._emit(key, op.busy, op.machine, op.system, _start(op), end, op.gap)
        self.active.clear()

    def _update(self, key: Key, row: Row | None, ts: float, gap: bool) -> None:
        op = self.active[key]
        if row is not None and row[0] == op.busy:
            op.last_seen = ts
            op.gap = op.gap or gap
            return
        del self.active[key]
        finished = self.finished.pop(key, None) if row is None else None
        if finished is not None:
            # busy 0 at the notification; an earlier phase may have ended sooner, unseen
            err = 0.0 if op.busy == FINAL_PHASE else max(0.0, finished - op.last_seen)
            end: tuple[float, str, float | None] = (finished, "notify", err)
        else:
            end = (ts, "poll", ts - op.last_seen)
        self._emit(key, op.busy, op.machine, op.system, _start(op), end, op.gap or gap)
        if row is not None:
            self.active[key] = _Open(row[0], ts, "poll", ts - op.last_seen, ts, row[1], row[2], gap)

    def _open(self, key: Key, row: Row, ts: float, gap: bool) -> None:
        busy, machine, system = row
        started = self.started.pop(key, None)
        if started is not None and busy == PREPARING:
            self.active[key] = _Open(busy, started, "notify", 0.0, ts, machine, system, gap)
        elif started is not None:  # preparing began at the notification, ended unseen
            prep = ((started, "notify", 0.0), (ts, "poll", ts - started))
            self._emit(key, PREPARING, machine, system, *prep, gap)
            self.active[key] = _Open(busy, ts, "poll", ts - started, ts, machine, system, gap)
        elif self.last_poll is None:  # running before tracking began
            self.active[key] = _Open(busy, ts, "initial", None, ts, machine, system)
        else:
            err = ts - self.last_poll
            self.active[key] = _Open(busy, ts, "poll", err, ts, machine, system, gap)

    def _emit(
        self,
        key: Key,
        busy: int | None,
        machine: str,
        system: str | None,
        start: tuple[float, str, float | None],
        end: tuple[float, str, float | None],
        gap: bool,
    ) -> None:
        self.emit(
            {
                "build": key[0],
                "stepnr": key[1],
                "phase": phase_name(busy),
                "busy": busy,
                "start_ts": round(start[0], 6),
                "end_ts": round(end[0], 6),
                "duration_s": round(end[0] - start[0], 6),
                "start_obs": start[1],
                "end_obs": end[1],
                "start_err_s": None if start[2] is None else round(start[2], 6),
                "end_err_s": None if end[2] is None else round(end[2], 6),
                "resolution_seconds": self.resolution,
                "gap": gap,
                "machine": machine,
                "system": system,
            }
        )


def _start(op: _Open) -> tuple[float, str, float | None]:
    return (op.start_ts, op.start_obs, op.start_err)


class Tracker:
    """Polls ``busy != 0`` and LISTENs, feeding a :class:`PhaseTracker` into ``db_phases``."""

    def __init__(
        self,
        run: Run,
        dsn: str,
        options: DbOptions,
        reporter: _Reporter,
        *,
        stop: threading.Event,
        connect: Connect = connect_readonly,
        generation: Generation | None = None,
    ) -> None:
        self.dsn = dsn
        self.options = options
        self.reporter = reporter
        self.stop = stop
        self.connect = connect
        self.generation = generation or Generation(options.generation, lambda _g, _r: None)
        self.writer: SegmentWriter = run.writer("db_phases")
        self.phases = PhaseTracker(self._write, options.interval_seconds)
        self.polls = 0
        self.phases_written = 0
        self.errors = 0
        self.failure: BaseException | None = None
        self._poll_conn: Conn | None = None
        self._listen: Conn | None = None
        self._last_poll = -math.inf  # monotonic
        self._timeout_ms = _ms(options.timeout_seconds)

    def _write(self, record: dict[str, Any]) -> None:
        self.writer.append({"ts": time.time(), **record, "generation": self.generation.name})
        self.phases_written += 1

    def _ensure_connected(self) -> None:
        timeout = self.options.timeout_seconds
        if self._listen is None or self._listen.closed:  # first, so nothing is missed
            self._listen = self.connect(self.dsn, LISTEN_APP, timeout, True)
            for channel in CHANNELS:
                self._listen.execute(f"listen {channel}")
        if self._poll_conn is None or self._poll_conn.closed:
            self._poll_conn = self.connect(self.dsn, TRACK_APP, timeout, False)

    def _close(self) -> None:
        for conn in (self._listen, self._poll_conn):
            if conn is not None:
                conn.close()
        self._listen = self._poll_conn = None

    def _on_notify(self, note: psycopg.Notify, ts: float) -> None:
        parts = note.payload.split("\t")
        if note.channel == "build_finished" or len(parts) < 2:
            return
        if not (parts[0].isdigit() and parts[1].isdigit()):
            return
        key = (int(parts[0]), int(parts[1]))
        if note.channel == "step_started":
            self.phases.step_started(key, ts)
        elif note.channel == "step_finished":
            self.phases.step_finished(key, ts)

    def _drain(self) -> None:
        """Handle the notifications received since the last wait."""
        assert self._listen is not None
        for note in self._listen.notifies(timeout=0):
            self._on_notify(note, time.time())

    def poll(self) -> None:
        """One poll of the busy steps (after the notifications received so far)."""
        self._drain()
        conn = self._poll_conn
        assert conn is not None
        with conn.transaction():
            conn.execute(f"set local statement_timeout = {self._timeout_ms}")
            ts = time.time()
            rows = conn.execute(BUSY_SQL).fetchall()
            if self.generation.value is None and any(r[3] for r in rows):
                # running steps carry their machine too: decide before writing their phases
                status_row = conn.execute(STATUS_ROW_SQL).fetchall()[0][0]
                self.generation.consider([r[3] for r in rows], bool(status_row))
        self._last_poll = time.monotonic()
        self.phases.observe(ts, {(r[0], r[1]): (r[2], r[3], r[4]) for r in rows})
        self.polls += 1

    def _wait(self) -> None:
        """Until the next poll is due: an interval, or soon after a notification."""
        assert self._listen is not None
        interval = self.options.interval_seconds
        min_gap = max(0.01, interval / 10)
        triggered = False
        while not self.stop.is_set():
            until = self._last_poll + (min_gap if triggered else interval)
            left = until - time.monotonic()
            if left <= 0:
                return
            for note in self._listen.notifies(timeout=min(left, 0.5), stop_after=1):
                self._on_notify(note, time.time())
                triggered = True

    def _step(self, backoff: Backoff, outage: float | None) -> float | None:
        """Connect, poll, wait; the start of an outage still unresolved (or None)."""
        try:
            self._ensure_connected()
            self.poll()
        except psycopg.Error as exc:
            now = time.time()
            self.phases.lost(now)
            self.errors += 1
            self._close()
            delay = backoff.next()
            self.reporter.error("track", exc, delay)
            self.stop.wait(delay)
            return now if outage is None else outage
        if outage is not None:
            self.reporter.note(
                "track",
                f"reconnected after {time.time() - outage:.1f} s; phases spanning the outage "
                "are marked gap",
            )
        backoff.reset()
        try:
            self._wait()
        except psycopg.Error as exc:  # the LISTEN session broke: the next poll reconnects
            self.phases.lost(time.time())
            self.errors += 1
            self._close()
            self.reporter.error("track", exc, 0)
            return time.time()
        return None

    def run_loop(self) -> None:
        """Track until ``stop``; a fatal error (e.g. the run's disk) is kept in ``failure``."""
        backoff = Backoff(self.options.backoff_seconds, self.options.max_backoff_seconds)
        outage: float | None = None
        try:
            while not self.stop.is_set():
                outage = self._step(backoff, outage)
            self.phases.close()
        except BaseException as exc:  # handed to the main thread, which re-raises it
            self.failure = exc
            self.stop.set()
        finally:
            self._close()


# --- both ---------------------------------------------------------------------------------


def _lock_run(path: str) -> int:
    fd = os.open(os.path.join(path, LOCK_NAME), os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        raise CollectorError(
            f"{path}: another 'collect db' is writing this run (one at a time: its cursor)"
        ) from None
    return fd


class DbCollector:
    """The exporter (in the calling thread) and the phase tracker (in a thread of its own).

    Parameters
    ----------
    run
        The run to write into.
    dsn
        Hydra's database (libpq DSN or URL); stored and shown redacted.
    options
        See :class:`DbOptions`.
    log
        One-line progress and error messages.
    stop
        Set it (e.g. from a signal handler) to stop after the current step.
    connect
        Opens a read-only session (tests may wrap it).
    """

    def __init__(
        self,
        run: Run,
        dsn: str,
        options: DbOptions | None = None,
        *,
        log: Log = print,
        stop: threading.Event | None = None,
        connect: Connect = connect_readonly,
    ) -> None:
        self.run = run
        self.options = options or DbOptions()
        self.stop = stop or threading.Event()
        self.target = redact(dsn)
        self._lock_fd: int | None = _lock_run(run.path)
        try:
            opts = self.options
            self.source_index = run.add_source("db", self.target, opts.generation)
            self._reporter = _Reporter(run, self.target, log)
            self.generation = Generation(opts.generation, self._decided)
            state = load_state(run.path, opts.since, opts.overlap_seconds, time.time())
            self.exporter = Exporter(
                run, dsn, opts, self._reporter, state,
                stop=self.stop, connect=connect, generation=self.generation,
            )  # fmt: skip
            self.tracker: Tracker | None = None
            if opts.track and not opts.once:
                self.tracker = Tracker(
                    run, dsn, opts, self._reporter,
                    stop=self.stop, connect=connect, generation=self.generation,
                )  # fmt: skip
        except BaseException:
            self._unlock()
            raise

    def _decided(self, generation: str, reason: str) -> None:
        self._reporter.note("export", f"generation {generation}: {reason}")
        self.run.note(f"collect db: generation {generation} detected: {reason}")
        index = self.source_index

        def record(doc: dict[str, Any]) -> None:
            doc["sources"][index]["generation"] = generation

        update_manifest(self.run.path, record)

    @property
    def errors(self) -> int:
        """Database errors so far, both workers."""
        return self.exporter.errors + (self.tracker.errors if self.tracker else 0)

    def run_loop(self) -> None:
        """Export (and track) until stopped, for ``duration_seconds``, or once."""
        opts = self.options
        deadline = None
        if opts.duration_seconds is not None:
            deadline = time.monotonic() + opts.duration_seconds
        thread = None
        if self.tracker is not None:
            self.exporter.detect_quietly()  # so that the first phase rows know it too
            thread = threading.Thread(target=self.tracker.run_loop, name="db-tracker", daemon=True)
            thread.start()
        try:
            self.exporter.run_loop(deadline)
        finally:
            self.stop.set()
            if thread is not None:
                thread.join()
            self.close()
        if self.tracker is not None and self.tracker.failure is not None:
            raise self.tracker.failure

    def close(self) -> None:
        """Close the connections, end the source in the manifest, release the run's lock."""
        self.exporter.close()
        try:
            self.run.end_source(self.source_index)
        finally:
            self._unlock()

    def _unlock(self) -> None:
        if self._lock_fd is not None:
            os.close(self._lock_fd)
            self._lock_fd = None
