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

**History** (``--since 5y``): a pass whose window reaches further back than
``backfill_after_seconds`` first streams it through a server-side cursor in one snapshot,
straight into Parquet parts (:mod:`.history`), then goes on as above from where the stream
ended; interrupted, it resumes from the parts written.

The run itself is the persistent state: a restarted collector reads ``db_steps``, ``db_builds``
and ``db_cursor`` back (only the re-read window's keys and recent builds: :mod:`.state`), so
it resumes where the last one stopped, losing and duplicating
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
    one row per export pass, and one per history part (its ``steps`` and ``builds``): ``ts``,
    ``since``, ``stop_time`` (the cursor), ``window_start``, ``overlap_seconds``, ``steps``,
    ``builds`` (exported by the pass), ``pending_builds``, ``generation``.
``db_phases``
    ``ts``, ``build``, ``stepnr``, ``phase`` (name), ``busy`` (code; None for
    ``unobserved``, a step that started and finished between two polls), ``start_ts``,
    ``end_ts``, ``duration_s``, ``start_obs``/``end_obs`` (``poll``, ``notify``, ``initial``:
    already running when tracking began, ``stop``: still running when it ended, ``end_ts`` is
    then the last sighting), ``start_err_s``/``end_err_s`` (None: unbounded),
    ``resolution_seconds`` (the poll interval), ``gap`` (spans a tracker outage), ``machine``,
    ``system``, ``generation``.
``db_build_finished``
    one row per ``build_finished`` notification: ``ts`` (when it arrived: the commit of the
    transaction that marked the build finished), ``build`` (the payload's first field; the
    rest are dependents failed with it), ``generation``.
``events``
    ``ts``, ``source`` (the redacted DSN), ``event`` (error | note), ``detail`` (starting
    ``export:`` or ``track:``).
"""

from __future__ import annotations

import fcntl
import os
import threading
import time
from typing import Any

from profiler.collect.control import Log, quiet
from profiler.collect.database.common import (
    LOCK_NAME,
    Connect,
    DbContext,
    DbOptions,
    Generation,
    Reporter,
    connect_readonly,
)
from profiler.collect.database.export import Exporter, load_state
from profiler.collect.database.track import Tracker
from profiler.errors import CollectorError
from profiler.store import Run, redact
from profiler.store.run import update_manifest


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
        One-line progress and error messages (none by default: the command passes its
        printer).
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
        log: Log = quiet,
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
            self.ctx = DbContext(
                run=run,
                dsn=dsn,
                options=opts,
                reporter=Reporter(run, self.target, log),
                generation=Generation(opts.generation, self._decided),
                stop=self.stop,
                connect=connect,
            )
            state = load_state(run.path, opts.since, opts.overlap_seconds, time.time())
            self.exporter = Exporter(self.ctx, state)
            self.tracker = Tracker(self.ctx) if opts.track and not opts.once else None
        except BaseException:
            self._unlock()
            raise

    def _decided(self, generation: str, reason: str) -> None:
        self.ctx.reporter.note("export", f"generation {generation}: {reason}")
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
