"""The collector process: sample sources at a fixed rate into a run, and never give up.

Ticks are scheduled on a monotonic clock at ``start + k * interval``, so sampling does not
drift; a tick that comes due while the previous one is still running is skipped and
recorded as a gap. Each fetch has a timeout and is retried with backoff inside its tick; a
source that stays broken is reported in one line per failure and the collector goes on.
SIGINT and SIGTERM stop it between samples: segments are flushed, the manifest closed.

Tables written: ``samples`` (tidy samples, see :mod:`profiler.collect.normalize`) and
``events`` (``ts``, ``source``, ``event``: error | restart | gap | note, ``detail``).
"""

from __future__ import annotations

import signal
import threading
import time
import urllib.parse
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from profiler.collect import normalize
from profiler.collect.sources import Fetched, Source
from profiler.errors import CollectorError, ProfilerError
from profiler.store import Run

Log = Callable[[str], object]


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
    log: Log = print
    stop: threading.Event = field(default_factory=threading.Event)
    samples_written: int = 0
    errors: int = 0
    _identity: dict[str, _Identity] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.samples = self.run.writer("samples")
        self.events = self.run.writer("events")
        self._indexes = [
            self.run.add_source(s.kind, s.target, self.options.generation) for s in self.sources
        ]

    def event(self, source: str, kind: str, detail: str) -> None:
        self.events.append({"ts": time.time(), "source": source, "event": kind, "detail": detail})

    def _fetch(self, src: Source) -> list[Fetched]:
        delay = self.options.backoff_seconds
        for attempt in range(self.options.retries + 1):
            try:
                return src.fetch()
            except CollectorError as exc:
                if attempt == self.options.retries or self.stop.is_set():
                    raise
                self.log(f"collect: {exc}; retrying in {delay:g} s")
                if self.stop.wait(delay):
                    raise
                delay *= 2
        raise AssertionError("unreachable")

    def sample(self, src: Source) -> int:
        """Fetch and store one round of ``src``; return the number of samples written."""
        try:
            items = self._fetch(src)
        except CollectorError as exc:
            self.errors += 1
            self.event(src.target, "error", str(exc))
            self.log(f"collect: {exc}")
            return 0
        n = 0
        for item in items:
            if item.note:
                self.event(item.origin, "absent" if item.doc is None else "stale", item.note)
                self.log(f"collect: {item.origin}: {item.note}")
            if item.doc is None:
                continue  # nothing to sample
            try:
                rows = self._normalise(src, item)
            except ProfilerError as exc:
                self.errors += 1
                self.event(item.origin, "error", str(exc))
                self.log(f"collect: {exc}")
                continue
            self._check_restart(src.target, rows)
            self.samples.append_many(rows)  # one write: the sample lands whole or not at all
            n += len(rows)
        self.samples.flush()
        self.samples_written += n
        return n

    def _normalise(self, src: Source, item: Fetched) -> list[dict[str, Any]]:
        if src.kind == "metrics":
            return normalize.from_prometheus(item.doc, item.ts, src.target, self.options.generation)
        url = urllib.parse.urlsplit(item.origin)
        if url.scheme in ("http", "https") and url.path.startswith("/status/"):
            # a Rust /status/<endpoint>: machines, jobsets, queues...
            return normalize.from_rust_endpoint(url.path, item.doc, item.ts, src.target)
        gen = self.options.generation or normalize.detect(item.doc)
        if gen == "rust":
            return normalize.from_rust_status(item.doc, item.ts, src.target)
        return normalize.from_cxx_status(item.doc, item.ts, src.target)

    def _check_restart(self, source: str, rows: list[dict[str, Any]]) -> None:
        values = {
            r["metric"]: r["value"]
            for r in rows
            if r["machine"] is None and r["metric"] in ("process_id", "uptime_seconds")
        }
        if not values:
            return
        seen = self._identity.setdefault(source, _Identity())
        pid, uptime = values.get("process_id"), values.get("uptime_seconds")
        restarted = (seen.pid is not None and pid is not None and pid != seen.pid) or (
            seen.uptime is not None and uptime is not None and uptime < seen.uptime
        )
        if restarted:
            detail = (
                f"queue runner restarted (pid {seen.pid:g} -> {pid:g}, uptime "
                f"{seen.uptime} -> {uptime}); counters reset"
            )
            self.event(source, "restart", detail)
            self.log(f"collect: {source}: {detail}")
        seen.pid, seen.uptime = pid, uptime

    def run_loop(self) -> None:
        """Sample until stopped, for ``duration_seconds``, or once."""
        opts = self.options
        start = time.monotonic()
        deadline = None if opts.duration_seconds is None else start + opts.duration_seconds
        tick = 0
        try:
            while not self.stop.is_set():
                for src in self.sources:
                    if self.stop.is_set():
                        break
                    self.sample(src)
                if opts.once or all(not s.live for s in self.sources):
                    break
                tick += 1
                due = start + tick * opts.interval_seconds
                now = time.monotonic()
                if now > due:  # overran: skip the ticks that are already past
                    missed = int((now - due) // opts.interval_seconds) + 1
                    self.event(
                        "collector",
                        "gap",
                        f"sampling took longer than the interval; {missed} tick(s) skipped",
                    )
                    tick += missed
                    due = start + tick * opts.interval_seconds
                if deadline is not None and due > deadline:
                    break
                self.stop.wait(due - time.monotonic())
        finally:
            self.close()

    def close(self) -> None:
        for i in self._indexes:
            self.run.end_source(i)
        self.samples.close()
        self.events.close()
        for src in self.sources:
            closer = getattr(src, "close", None)
            if closer:
                closer()


def install_signal_handlers(stop: threading.Event) -> None:
    """SIGINT/SIGTERM end the collector cleanly after the sample in progress."""

    def handler(signum: int, _frame: object) -> None:
        stop.set()

    signal.signal(signal.SIGINT, handler)
    signal.signal(signal.SIGTERM, handler)
