"""The database collector's incremental export of finished steps and builds (see
:mod:`profiler.collect.database.collector` for the cursor, overlap and resume semantics)."""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from typing import Any

import psycopg

from profiler.collect.database.common import (
    BUILD_SEMANTICS,
    BUILDS_SQL,
    EXPORT_APP,
    RECENT_MACHINES_SQL,
    SEMANTICS,
    STATUS_ROW_SQL,
    STEP_KEYS_SQL,
    STEP_ROWS_SQL,
    Backoff,
    Conn,
    DbContext,
    Key,
    ms,
    read_query,
)
from profiler.collect.database.history import Backfill
from profiler.collect.database.state import ExportState, load_state

__all__ = ["ExportState", "Exporter", "load_state"]


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
    """Incremental export of finished steps and builds (see
    :mod:`profiler.collect.database.collector`), resuming from ``state``."""

    def __init__(self, ctx: DbContext, state: ExportState) -> None:
        self.ctx = ctx
        self.state = state
        self.steps = ctx.run.writer("db_steps")
        self.builds = ctx.run.writer("db_builds")
        self.cursors = ctx.run.writer("db_cursor")
        self.steps_written = 0
        self.builds_written = 0
        self.passes = 0
        self.errors = 0
        self._conn: Conn | None = None
        self._timeout_ms = ms(ctx.options.timeout_seconds)
        self._has_status_row: bool | None = None
        self._streamed_until = 0  # when the last finished backfill's snapshot began
        if not state.resumed:
            self._write_cursor(0, 0)  # persists --since before anything is exported

    def _connection(self) -> Conn:
        if self._conn is None or self._conn.closed:
            self._conn = self.ctx.connect(
                self.ctx.dsn, EXPORT_APP, self.ctx.options.timeout_seconds, False
            )
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
        self.ctx.generation.consider(machines, self._has_status_row)

    def detect_quietly(self) -> None:
        """Detect the generation now if possible; a failure is left to the next pass."""
        if self.ctx.generation.value is not None:
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
        if self.ctx.generation.value is None:
            self._detect()
        steps = builds = 0
        if self._far_behind():
            self.close()  # the backfill has a session of its own; this one would idle
            backfill = Backfill(self.ctx, self.state, self._after_part)
            try:
                steps, builds = backfill.run()
            finally:  # the parts written count, also when the database failed meanwhile
                self.steps_written += backfill.steps_written
                self.builds_written += backfill.builds_written
            self._streamed_until = backfill.complete_at or self._streamed_until
            if backfill.complete_at is None:  # stopped mid-stream: the next start resumes it
                self._write_cursor(steps, builds)
                self.passes += 1
                return steps, builds
        steps += self._export_steps()
        builds += self._export_builds()
        self.state.prune(self.ctx.options.overlap_seconds)
        self._write_cursor(steps, builds)
        self.passes += 1
        return steps, builds

    def _far_behind(self) -> bool:
        """Whether this pass's window reaches back further than ``backfill_after_seconds``."""
        after = self.ctx.options.backfill_after_seconds
        start = self.state.window_start(self.ctx.options.overlap_seconds)
        return after is not None and time.time() - max(start, self._streamed_until) > after

    def _after_part(self, steps: int, builds: int) -> None:
        self._write_cursor(steps, builds)
        if self.ctx.options.on_page is not None:
            self.ctx.options.on_page(steps)

    def _export_steps(self) -> int:
        st, opts = self.state, self.ctx.options
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
        if self.ctx.generation.value is None:
            self._detect([r[4] for r in rows])
        generation = self.ctx.generation.name
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
        generation = self.ctx.generation.name
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
                "window_start": st.window_start(self.ctx.options.overlap_seconds),
                "overlap_seconds": self.ctx.options.overlap_seconds,
                "steps": steps,
                "builds": builds,
                "pending_builds": len(st.pending),
                "generation": self.ctx.generation.name,
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
            if self.ctx.options.once and self.errors > self.ctx.options.once_retries:
                self.ctx.reporter.error("export", exc, None)
                return None
            delay = backoff.next()
            self.ctx.reporter.error("export", exc, delay)
            return delay
        backoff.reset()
        return None if self.ctx.options.once else self.ctx.options.export_every_seconds

    def run_loop(self, deadline: float | None = None) -> None:
        """Export every ``export_every_seconds`` until ``stop`` (or ``deadline``, monotonic).

        A last pass on the way out catches what finished since the previous one (when the
        connection is up; a failure is reported, not retried).
        """
        backoff = Backoff(self.ctx.options.backoff_seconds, self.ctx.options.max_backoff_seconds)
        while not self.ctx.stop.is_set():
            wait = self._attempt(backoff)
            if wait is None:
                return
            if deadline is not None:
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                wait = min(wait, left)
            self.ctx.stop.wait(wait)
        if self._conn is not None and not self._conn.closed:
            try:
                self.export_pass()
            except psycopg.Error as exc:
                self.errors += 1
                self.ctx.reporter.error("export", exc, None)
