"""The collector process: sample sources at a fixed rate into a run, and never give up.

Ticks are scheduled on a monotonic clock at ``start + k * interval``, so sampling does not
drift; a tick that comes due while the previous one is still running is skipped and
recorded as a gap. Each fetch has a total deadline (the timeout) and is retried with backoff
inside its tick; a source that stays broken is reported in one line per failure and the
collector goes on. The end of ``duration_seconds`` and SIGINT/SIGTERM also cut a request or
a backoff short (within about 0.1 s): segments are flushed, the manifest closed.

Each document's rows go to the store in one ``append_many`` call (one ``os.write`` unless
the sample crosses a segment's size limit), not row by row, so a kill cannot stop the
collector between two rows of a sample. Everything written to the events table, the samples'
``source`` column and the log goes through :func:`~profiler.store.redact`.

Tables written: ``samples`` (tidy samples, see :mod:`profiler.collect.samples`) and
``events`` (``ts``, ``source``, ``event``: error | restart | gap | note | stale | absent,
``detail``).
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

from profiler.collect.control import Log, quiet
from profiler.collect.samples import Sample
from profiler.collect.status import normalize
from profiler.collect.status.prometheus import from_prometheus
from profiler.collect.status.sources import Fetched, Source
from profiler.collect.status.transfer import Budget, Cancelled, one_line
from profiler.errors import CollectorError, ProfilerError
from profiler.store import Run, redact

_LONGEST_WAIT = 3600.0  # Event.wait overflows past threading.TIMEOUT_MAX: wait in slices


@dataclass
class CollectorOptions:
    interval_seconds: float = 30.0
    duration_seconds: float | None = None
    once: bool = False
    retries: int = 2
    backoff_seconds: float = 0.5
    generation: str | None = None  # None: detect from each document


@dataclass
class _Identity:
    """What a source's process looked like last time: a change means a restart."""

    pid: float | None = None
    uptime: float | None = None


@dataclass
class Collector:
    run: Run
    sources: Sequence[Source]
    options: CollectorOptions
    log: Log = quiet
    stop: threading.Event = field(default_factory=threading.Event)
    samples_written: int = 0
    errors: int = 0
    _identity: dict[str, _Identity] = field(default_factory=dict)
    _until: float = math.inf  # time.monotonic() at which the run's duration ends
    _names: dict[str, str] = field(default_factory=dict)  # source -> redacted, for the rows

    def __post_init__(self) -> None:
        self.samples = self.run.writer("samples")
        self.events = self.run.writer("events")
        self._indexes = [
            self.run.add_source(s.kind, s.target, self.options.generation) for s in self.sources
        ]

    def say(self, message: str) -> None:
        """One line to the log, secrets redacted (line breaks from the data escaped: a
        status key may hold one)."""
        self.log(redact(message).replace("\r", "\\r").replace("\n", "\\n"))

    def event(self, source: str, kind: str, detail: str, ts: float | None = None) -> None:
        self.events.append(
            {
                "ts": time.time() if ts is None else ts,
                "source": redact(source),
                "event": kind,
                "detail": redact(detail),
            }
        )

    def _failed(self, source: str, message: str) -> None:
        self.errors += 1
        self.event(source, "error", message)
        self.say(f"collect: {message}")

    def _fetch(self, src: Source) -> list[Fetched]:
        budget = Budget(self.stop, self._until)
        delay = self.options.backoff_seconds
        for attempt in range(self.options.retries + 1):
            why = budget.ended()
            if why is not None:
                raise Cancelled(f"{src.target}: not sampled ({why})")
            try:
                return src.fetch(budget)
            except Cancelled:
                raise
            except CollectorError as exc:
                if attempt == self.options.retries or time.monotonic() + delay >= self._until:
                    raise
                self.say(f"collect: {exc}; retrying in {delay:g} s")
                if self.stop.wait(delay):
                    raise
                delay *= 2
        raise AssertionError("unreachable")

    def sample(self, src: Source) -> int:
        """Fetch and store one round of ``src``; return the number of samples written."""
        try:
            items = self._fetch(src)
        except Cancelled as exc:
            self.event(src.target, "gap", str(exc))
            self.say(f"collect: {exc}")
            return 0
        except CollectorError as exc:
            self._failed(src.target, str(exc))
            return 0
        except Exception as exc:  # a bug must not end a week of collection: said, and on
            self._failed(src.target, f"{src.target}: internal error: {_bug(exc)}")
            return 0
        n = sum(self._store(src, item) for item in items)
        self.samples.flush()
        self.samples_written += n
        return n

    def _store(self, src: Source, item: Fetched) -> int:
        """Normalise and write one document; the number of rows written."""
        if item.note:
            kind = item.event or ("absent" if item.doc is None else "stale")
            if kind == "error":
                self.errors += 1
            self.event(item.origin, kind, item.note)
            self.say(
                f"collect: {item.origin}: {item.note}"
                if kind != "error"
                else f"collect: {item.note}"
            )
        if item.doc is None:
            return 0  # nothing to sample
        try:
            rows = self._normalise(src, item)
        except ProfilerError as exc:
            self._failed(item.origin, str(exc))
            return 0
        except Exception as exc:  # as in sample(): one document lost, not the collection
            self._failed(item.origin, f"{item.origin}: internal error: {_bug(exc)}")
            return 0
        self._check_restart(src.target, rows, item.ts)
        self.samples.append_many(self._named(rows))  # the whole sample in one write
        return len(rows)

    def _named(self, rows: list[Sample]) -> list[Sample]:
        """``rows`` with their ``source`` redacted (a no-op for the sources' own targets)."""
        for row in rows:
            name = row["source"]
            safe = self._names.get(name)
            if safe is None:
                safe = self._names.setdefault(name, redact(name))
            if safe != name:
                row["source"] = safe
        return rows

    def _normalise(self, src: Source, item: Fetched) -> list[Sample]:
        if src.kind == "metrics":
            return from_prometheus(item.doc, item.ts, src.target, self.options.generation)
        path = getattr(src, "path", "")
        if getattr(src, "url", None) is not None and path.startswith("/status/"):
            # a Rust /status/<endpoint>: machines, jobsets, queues...
            return normalize.from_rust_endpoint(path, item.doc, item.ts, src.target)
        gen = self.options.generation or normalize.detect(item.doc)
        if gen == "rust":
            return normalize.from_rust_status(item.doc, item.ts, src.target)
        return normalize.from_cxx_status(item.doc, item.ts, src.target)

    def _check_restart(self, source: str, rows: list[Sample], ts: float) -> None:
        """A restart event when the runner's pid changed or its uptime went down.

        Either value may be missing from a document (old eras, damaged or hand-made ones):
        the last one known is compared, and a restart starts over from what it showed.
        """
        values = {
            r["metric"]: r["value"]
            for r in rows
            if r["machine"] is None and r["metric"] in ("process_id", "uptime_seconds")
        }
        if not values:
            return
        seen = self._identity.setdefault(source, _Identity())
        pid, uptime = values.get("process_id"), values.get("uptime_seconds")
        pid_changed = seen.pid is not None and pid is not None and pid != seen.pid
        went_down = seen.uptime is not None and uptime is not None and uptime < seen.uptime
        if pid_changed or went_down:
            changes = [f"pid {_number(seen.pid)} -> {_number(pid)}"] if pid_changed else []
            if seen.uptime is not None and uptime is not None:
                changes.append(f"uptime {_number(seen.uptime)} -> {_number(uptime)}")
            detail = f"queue runner restarted ({', '.join(changes)}); counters reset"
            self.event(source, "restart", detail, ts)
            self.say(f"collect: {source}: {detail}")
            seen.pid, seen.uptime = pid, uptime
            return
        if pid is not None:
            seen.pid = pid
        if uptime is not None:
            seen.uptime = uptime

    def run_loop(self) -> None:
        """Sample until stopped, for ``duration_seconds``, or once."""
        opts = self.options
        start = time.monotonic()
        if opts.duration_seconds is not None:
            self._until = start + opts.duration_seconds
        tick = 0
        try:
            while not self.stop.is_set():
                for src in self.sources:
                    if self.stop.is_set() or time.monotonic() >= self._until:
                        break
                    self.sample(src)
                if opts.once or all(not s.live for s in self.sources):
                    break
                tick += 1
                due = start + tick * opts.interval_seconds
                now = time.monotonic()
                if now > due and now < self._until:  # overran: skip the ticks already past
                    missed = int((now - due) // opts.interval_seconds) + 1
                    self.event(
                        "collector",
                        "gap",
                        f"sampling took longer than the interval; {missed} tick(s) skipped",
                    )
                    tick += missed
                    due = start + tick * opts.interval_seconds
                if due > self._until:
                    break
                self._sleep_until(due)
        finally:
            self.close()

    def _sleep_until(self, due: float) -> None:
        while not self.stop.is_set():
            left = due - time.monotonic()
            if left <= 0:
                return
            self.stop.wait(min(left, _LONGEST_WAIT))

    def close(self) -> None:
        for i in self._indexes:
            self.run.end_source(i)
        self.samples.close()
        self.events.close()
        for src in self.sources:
            closer = getattr(src, "close", None)
            if closer:
                closer()


def _number(value: float | None) -> str:
    """A pid or an uptime as text: integers in full (pids are not 4.1943e+06)."""
    if value is None:
        return "?"
    if value.is_integer() and abs(value) < 1e15:
        return str(int(value))
    return f"{value:g}"


def _bug(exc: Exception) -> str:
    return one_line(f"{type(exc).__name__}: {exc} (a bug in hydra-profiler: please report it)")
