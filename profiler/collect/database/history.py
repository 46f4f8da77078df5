"""The backfill: an export pass whose window reaches far into the past (``--since 5y``),
streamed at database speed with memory bounded by a batch and the re-read window.

One ``repeatable read, read only`` transaction (one snapshot for the whole stream, and for
the builds streamed beside it) declares a server-side cursor over the finished steps with
``stopTime >= window start`` in key order ``(stopTime, build, stepnr)``. The order is served
by Hydra's partial ``IndexBuildStepsOnStopTime`` on ``BuildSteps(stopTime desc) where startTime
is not null and stopTime is not null`` (hydra.sql:688 at NixOS/hydra 14332fbf), scanned
backwards, with PostgreSQL's incremental sort ordering the steps of one ``stopTime`` by
``(build, stepnr)`` (PostgreSQL >= 13); the query's predicate implies the index's, so the
planner may use it. Batches of ``backfill_rows`` are fetched, turned into Arrow columns (no
per-row dicts) with the types the live export's records have, and written as one Parquet part
of ``db_steps`` each.

**Builds**: each build is exported once, with the batch that holds its last finished step
(largest key). A second server-side cursor in the same snapshot streams the builds with a
step in the window in the order of their last step's key (an aggregate over the same index
range, then ``Builds`` and ``Jobsets`` by primary key), and is read alongside the steps: a
merge of two ordered streams, so no build is looked up twice and nothing is remembered over
the years. A build unfinished in the snapshot becomes ``pending`` (the live export retries
it every pass). A batch's builds part is written *before* its steps part.

**Resume**: the parts are the record. Each is renamed into place whole; the run's state
(:func:`profiler.collect.database.state.load_state`) is read back from them: the cursor is the
largest ``stop_time`` written, and a restarted backfill re-reads from ``cursor - overlap``,
skipping the keys the run already has. A part written just before a crash (its ``db_cursor``
row not yet) is thus neither lost nor duplicated; a builds part whose steps part was not
written is deduplicated by ``(build, stop_time)`` against the builds of the window. Steps
committed after the snapshot are caught by the live export's re-read window that follows
(``--once``: one pass of it), with the live export's guarantee (``overlap``). A finished
stream says when its snapshot began (``complete_at``, the database's clock), so that a
history without recent steps is not streamed again on every pass.
"""

from __future__ import annotations

import json
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Any

import psycopg

from profiler.collect.database.batches import Progress, builds_arrow, steps_arrow
from profiler.collect.database.common import (
    BUILD_MEMORY_SECONDS,
    BUILDS_SQL,
    EXPORT_APP,
    FINISHED,
    STATUS_ROW_SQL,
    Conn,
    DbContext,
    ms,
)
from profiler.collect.database.state import ExportState

STREAM_SQL = (
    "select build, stepnr, type, drvPath, machine, system, status, left(errorMsg, 500),"
    " startTime, stopTime, overhead, timesBuilt, isNonDeterministic, propagatedFrom"
    f" from BuildSteps where {FINISHED} and stopTime >= %(lo)s"
    " order by stopTime, build, stepnr"
)
ESTIMATE_SQL = f"explain (format json) select 1 from BuildSteps where {FINISHED} and stopTime >= %s"
# a step's key (stopTime, stepnr) as one bigint: stopTime and stepnr are 32-bit integers
_KEY = "((stopTime::bigint << 32) | stepnr)"
_LAST = "(l.k >> 32)"
_NR = "(l.k & 4294967295)"
# BUILDS_SQL's columns, then its last finished step's (stopTime, stepnr), in that key order:
# every build with a step in the stream, once (the largest key of a build with a step at or
# after lo is among its steps at or after lo: the same range of IndexBuildStepsOnStopTime),
# aggregated, then the builds by primary key
BUILDS_STREAM_SQL = (
    BUILDS_SQL.split(" from Builds b")[0] + f", {_LAST}, {_NR}"
    f" from (select build, max({_KEY}) as k from BuildSteps where {FINISHED}"
    " and stopTime >= %(lo)s group by build) l"
    " join Builds b on b.id = l.build join Jobsets j on j.id = b.jobset_id"
    f" order by {_LAST}, b.id, {_NR}"
)
# when the transaction began, on the database's clock: before its snapshot was taken
SNAPSHOT_SQL = "select floor(extract(epoch from transaction_timestamp()))::bigint"
CURSOR_NAME = "hydra_profiler_backfill"
BUILDS_PER_FETCH = 10_000  # builds held at once: a batch of steps spans a third as many
BUILDS_CURSOR_NAME = "hydra_profiler_backfill_builds"


class Backfill:
    """One streamed pass from the window start to the end of the snapshot (see the module).

    ``after_part(steps, builds)`` is called after each part (the exporter records its cursor).
    """

    def __init__(
        self, ctx: DbContext, state: ExportState, after_part: Callable[[int, int], object]
    ) -> None:
        self.ctx = ctx
        self.state = state
        self.after_part = after_part
        self.steps_written = 0
        self.builds_written = 0
        self._status_row: bool | None = None
        self.complete_at: int | None = None  # epoch s: the stream reached its snapshot's end

    def run(self) -> tuple[int, int]:
        """Stream until the snapshot's end or ``stop``; the steps and builds written.

        Raises
        ------
        psycopg.Error
            The database failed; every part written is in the state, a new pass resumes.
        """
        opts = self.ctx.options
        conn = self.ctx.connect(self.ctx.dsn, EXPORT_APP, opts.timeout_seconds, False)
        ended = threading.Event()
        watch = threading.Thread(target=self._cancel_on_stop, args=(conn, ended), daemon=True)
        watch.start()
        try:
            conn.isolation_level = psycopg.IsolationLevel.REPEATABLE_READ
            with conn.transaction():
                conn.execute(f"set local statement_timeout = {_timeout_ms(opts)}")
                self._stream(conn)
        except psycopg.errors.QueryCanceled:
            if not self.ctx.stop.is_set():  # a statement timeout: an error like any other
                raise
        finally:
            ended.set()
            watch.join()
            conn.close()
        if self.complete_at is None:
            self.ctx.reporter.log(
                f"collect db: backfill: stopped after {self.steps_written:,} steps, at stopTime "
                f"{self.state.cursor}; run it again with the same --out to resume from there"
            )
        return self.steps_written, self.builds_written

    def _cancel_on_stop(self, conn: Conn, ended: threading.Event) -> None:
        """Cancel the statement running when ``stop`` is set (the first fetch of years of
        history can take minutes), so that Ctrl-C stops the backfill at once."""
        while not ended.is_set():
            if self.ctx.stop.wait(0.2):
                if not ended.is_set():
                    conn.cancel_safe(timeout=5.0)
                return

    def _stream(self, conn: Conn) -> None:
        opts, st = self.ctx.options, self.state
        lo = st.window_start(opts.overlap_seconds)
        snapshot = int(conn.execute(SNAPSHOT_SQL).fetchall()[0][0])  # takes the snapshot
        progress = Progress(self.ctx.reporter.log, opts.progress_seconds, _estimate(conn, lo))
        self.ctx.reporter.log(
            f"collect db: backfill: steps from stopTime {lo} on, about {progress.total or 0:,};"
            f" parts of {opts.backfill_rows:,} rows (the builds are ordered first, once)"
        )
        builds_cur = conn.cursor(name=BUILDS_CURSOR_NAME, binary=True)
        with conn.cursor(name=CURSOR_NAME, binary=True) as cur, builds_cur:
            cur.execute(STREAM_SQL, {"lo": lo})
            builds_cur.execute(BUILDS_STREAM_SQL, {"lo": lo})
            builds = _Merge(builds_cur, BUILDS_PER_FETCH)
            while not self.ctx.stop.is_set():
                rows = cur.fetchmany(opts.backfill_rows)
                if not rows:
                    self.complete_at = snapshot
                    break
                before = self.steps_written
                self._batch(conn, rows, builds)
                progress.update(self.steps_written - before, rows[-1][9])
        if progress.rows:
            progress.update(0, st.cursor, final=True)

    def _batch(self, conn: Conn, rows: list[tuple[Any, ...]], merge: _Merge) -> None:
        st = self.state
        found = merge.upto((rows[-1][9], rows[-1][0], rows[-1][1]))
        if st.seen and rows[0][9] <= max(st.seen.values()):  # a resumed window: skip the run's
            rows = [r for r in rows if (r[0], r[1]) not in st.seen]
        self._detect(conn, rows)
        generation, now = self.ctx.generation.name, time.time()
        builds = self._owned_builds(found)
        if builds:  # first: a crash before the steps part re-reads them (deduplicated)
            self.ctx.run.write_arrow_part("db_builds", builds_arrow(builds, generation, now))
        if rows:
            self.ctx.run.write_arrow_part("db_steps", steps_arrow(rows, generation, now))
        self._advance(rows, builds)
        if rows or builds:
            self.after_part(len(rows), len(builds))

    def _owned_builds(self, found: list[tuple[Any, ...]]) -> list[tuple[Any, ...]]:
        """Of the builds whose last step is in this batch, the finished ones not exported yet;
        the unfinished ones become pending. (A build whose steps were all written before a
        restart was exported, or made pending, with its last step: ``builds_done`` and
        ``pending`` say so.)"""
        st = self.state
        out = []
        for b in found:
            if not b[16]:
                st.pending.add(b[0])
            elif (b[0], b[9]) not in st.builds_done:
                out.append(b)
        return out

    def _advance(self, rows: list[tuple[Any, ...]], builds: list[tuple[Any, ...]]) -> None:
        """The state after a batch's parts are written: cursor, window keys, builds."""
        st, overlap = self.state, self.ctx.options.overlap_seconds
        st.cursor = max(st.cursor, rows[-1][9]) if rows else st.cursor
        lo = st.cursor - overlap
        for r in reversed(rows):  # key order: the window's keys are at the end
            if r[9] < lo:
                break
            st.seen[(r[0], r[1])] = r[9]
        remembered = lo - BUILD_MEMORY_SECONDS  # as prune() keeps them
        st.builds_done.update((b[0], b[9]) for b in builds if (b[9] or 0) >= remembered)
        if st.pending:
            st.pending.difference_update(b[0] for b in builds)
        st.prune(overlap)
        self.steps_written += len(rows)
        self.builds_written += len(builds)

    def _detect(self, conn: Conn, rows: list[tuple[Any, ...]]) -> None:
        if self.ctx.generation.value is not None or not rows:
            return
        if self._status_row is None:
            self._status_row = bool(conn.execute(STATUS_ROW_SQL).fetchall()[0][0])
        self.ctx.generation.consider([r[4] for r in rows], self._status_row)


class _Merge:
    """The builds stream (:data:`BUILDS_STREAM_SQL`, in last-step key order) read alongside
    the steps stream: :meth:`upto` gives the builds whose last step is at or below a key."""

    def __init__(self, cur: Any, rows_per_fetch: int) -> None:
        self.cur = cur
        self.rows_per_fetch = rows_per_fetch
        self.buffer: deque[tuple[Any, ...]] = deque()
        self.ended = False

    def upto(self, last: tuple[int, int, int]) -> list[tuple[Any, ...]]:
        out: list[tuple[Any, ...]] = []
        while True:
            if not self.buffer:
                more = [] if self.ended else self.cur.fetchmany(self.rows_per_fetch)
                if not more:
                    self.ended = True
                    return out
                self.buffer.extend(more)
            b = self.buffer[0]
            if (b[17], b[0], b[18]) > last:
                return out
            out.append(self.buffer.popleft())


def _timeout_ms(opts: Any) -> int:
    return 0 if not opts.backfill_timeout_seconds else ms(opts.backfill_timeout_seconds)


def _estimate(conn: Conn, lo: int) -> int | None:
    """The planner's row estimate for the stream (from the column statistics: no scan)."""
    try:
        plan = conn.execute(ESTIMATE_SQL, (lo,)).fetchall()[0][0]
        doc = plan if isinstance(plan, list) else json.loads(plan)
        return int(doc[0]["Plan"]["Plan Rows"])
    except (KeyError, IndexError, TypeError, ValueError):
        return None
