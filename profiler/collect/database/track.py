"""The database collector's live phase tracker: polls ``busy != 0`` and LISTENs, and turns
what it sees into phase intervals (see :mod:`profiler.collect.database.collector`)."""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import psycopg

from profiler.collect.database.common import (
    BUSY_SQL,
    CHANNELS,
    FINAL_PHASE,
    LISTEN_APP,
    PREPARING,
    STATUS_ROW_SQL,
    TRACK_APP,
    Backoff,
    Conn,
    DbContext,
    Key,
    ms,
    phase_name,
)
from profiler.store.segments import SegmentWriter


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

    def __init__(self, ctx: DbContext) -> None:
        self.ctx = ctx
        self.writer: SegmentWriter = ctx.run.writer("db_phases")
        self._finished: SegmentWriter | None = None  # db_build_finished, on the first one
        self.phases = PhaseTracker(self._write, ctx.options.interval_seconds)
        self.polls = 0
        self.phases_written = 0
        self.errors = 0
        self.failure: BaseException | None = None
        self._poll_conn: Conn | None = None
        self._listen: Conn | None = None
        self._last_poll = -math.inf  # monotonic
        self._timeout_ms = ms(ctx.options.timeout_seconds)

    def _write(self, record: dict[str, Any]) -> None:
        self.writer.append({"ts": time.time(), **record, "generation": self.ctx.generation.name})
        self.phases_written += 1

    def _ensure_connected(self) -> None:
        timeout = self.ctx.options.timeout_seconds
        if self._listen is None or self._listen.closed:  # first, so nothing is missed
            self._listen = self.ctx.connect(self.ctx.dsn, LISTEN_APP, timeout, True)
            for channel in CHANNELS:
                self._listen.execute(f"listen {channel}")
        if self._poll_conn is None or self._poll_conn.closed:
            self._poll_conn = self.ctx.connect(self.ctx.dsn, TRACK_APP, timeout, False)

    def _close(self) -> None:
        for conn in (self._listen, self._poll_conn):
            if conn is not None:
                conn.close()
        self._listen = self._poll_conn = None

    def _on_notify(self, note: psycopg.Notify, ts: float) -> None:
        parts = note.payload.split("\t")
        if note.channel == "build_finished":
            # '<build>[\t<dependent>...]', sent when the transaction that marked the build
            # finished commits (C++ builder.cc markSucceededBuild; Rust a transaction of its
            # own after the builds' rows: hydra 14332fbf state/mod.rs:2124-2131,
            # crates/db/src/connection.rs:1351-1375)
            if parts[0].isdigit():
                if self._finished is None:
                    self._finished = self.ctx.run.writer("db_build_finished")
                self._finished.append(
                    {"ts": ts, "build": int(parts[0]), "generation": self.ctx.generation.name}
                )
            return
        if len(parts) < 2:
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
            if self.ctx.generation.value is None and any(r[3] for r in rows):
                # running steps carry their machine too: decide before writing their phases
                status_row = conn.execute(STATUS_ROW_SQL).fetchall()[0][0]
                self.ctx.generation.consider([r[3] for r in rows], bool(status_row))
        self._last_poll = time.monotonic()
        self.phases.observe(ts, {(r[0], r[1]): (r[2], r[3], r[4]) for r in rows})
        self.polls += 1

    def _wait(self) -> None:
        """Until the next poll is due: an interval, or soon after a notification."""
        assert self._listen is not None
        interval = self.ctx.options.interval_seconds
        min_gap = max(0.01, interval / 10)
        triggered = False
        while not self.ctx.stop.is_set():
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
            self.ctx.reporter.error("track", exc, delay)
            self.ctx.stop.wait(delay)
            return now if outage is None else outage
        if outage is not None:
            self.ctx.reporter.note(
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
            self.ctx.reporter.error("track", exc, 0)
            return time.time()
        return None

    def run_loop(self) -> None:
        """Track until ``stop``; a fatal error (e.g. the run's disk) is kept in ``failure``."""
        backoff = Backoff(self.ctx.options.backoff_seconds, self.ctx.options.max_backoff_seconds)
        outage: float | None = None
        try:
            while not self.ctx.stop.is_set():
                outage = self._step(backoff, outage)
            self.phases.close()
        except BaseException as exc:  # handed to the main thread, which re-raises it
            self.failure = exc
            self.ctx.stop.set()
        finally:
            self._close()
