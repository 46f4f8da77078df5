"""``collect history``: a queue runner's series from Prometheus into a run's ``samples``.

The window ``[since, until]`` is read with range queries of at most ``chunk_seconds`` each
(never more than :data:`~profiler.collect.history.api.MAX_POINTS_PER_SERIES` points per
series), oldest first. Each chunk's rows go to ``samples`` one evaluation time at a time (one
``append_many`` each), then a row of ``history_chunks`` says which times are in; a re-run with
the same Prometheus, query and step starts after the last one recorded. Evaluation times are
multiples of the step (a grid independent of ``--since``), so runs of one query line up.
SIGINT/SIGTERM stop between two times (a request in flight is cut short) and record what was
written.

Raw series are imported, not rates: ``samples`` holds what the runner exported, and the
analysis computes rates, counter resets and gaps from them as it does for live samples.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

from profiler.collect.history import rebuild
from profiler.collect.history.api import MAX_POINTS_PER_SERIES, Series, SeriesSource
from profiler.collect.samples import Sample
from profiler.collect.status.metrics_map import P
from profiler.collect.status.transfer import Budget, Cancelled
from profiler.errors import CollectorError, StoreError
from profiler.store import Run, read_run, redact

CHUNKS_TABLE = "history_chunks"
# The queue runner's own families in both generations: every hydraqueuerunner_* (the live
# collector keeps unknown ones as prom_*) and the 2022-03 C++ up gauge. A target exporting one
# of them is a runner; the rest of what its /metrics served (the Rust runner's process_*, the
# C++ runner's prometheus-cpp exposer_*) is read by a second query on that target.
RUNNER_REGEX = f"{P}.*|hydra_queue_runner_running"
# Series Prometheus adds to every target rather than scrapes from it: up, scrape_* ("Jobs and
# instances", https://prometheus.io/docs/concepts/jobs_instances/)
SYNTHETIC_REGEX = (
    "up|scrape_duration_seconds|scrape_samples_scraped|scrape_samples_post_metric_relabeling"
    "|scrape_series_added|scrape_timeout_seconds|scrape_sample_limit|scrape_body_size_bytes"
)


@dataclass
class HistoryOptions:
    since: float  # epoch seconds, UTC
    until: float
    step_seconds: float = 30.0
    chunk_seconds: float = 6 * 3600.0
    matchers: str = ""  # extra label matchers, e.g. job="hydra"
    generation: str | None = None


def query(matchers: str = "") -> str:
    """The selector of the runners' own series (one query per chunk for all targets)."""
    extra = f",{matchers.strip().strip(',')}" if matchers.strip() else ""
    return f'{{__name__=~"{RUNNER_REGEX}"{extra}}}'


def rest_of_target(job: str, instance: str) -> str:
    """The selector of a runner target's other scraped series."""
    return (
        f'{{job="{_quote(job)}",instance="{_quote(instance)}",'
        f'__name__!~"{RUNNER_REGEX}|{SYNTHETIC_REGEX}"}}'
    )


def _quote(value: str) -> str:
    """A label value inside a PromQL double-quoted string (Go escapes)."""
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def utc(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass
class Importer:
    run: Run
    prometheus: SeriesSource
    options: HistoryOptions
    log: Callable[[str], None] = lambda _m: None
    stop: threading.Event = field(default_factory=threading.Event)
    samples_written: int = 0
    chunks_done: int = 0
    meta: dict[str, str] | None = None  # family -> type, from the metadata API
    urls: dict[tuple[str, str], str] = field(default_factory=dict)  # target -> scrape URL

    def __post_init__(self) -> None:
        self.prometheus.budget = Budget(self.stop)
        self.query = query(self.options.matchers)
        self.name = redact(self.prometheus.base)

    def chunk_times(self) -> int:
        """Evaluation times per range query: those in ``chunk_seconds``, at most the API's
        limit."""
        by_chunk = int(self.options.chunk_seconds // self.options.step_seconds)
        return max(1, min(by_chunk, MAX_POINTS_PER_SERIES))

    def resume_from(self) -> float | None:
        """The last evaluation time imported by an earlier run of this query, or None."""
        try:
            done = read_run(self.run.path).table(CHUNKS_TABLE)
        except StoreError:
            return None
        mine = done[
            (done["source"] == self.name)
            & (done["query"] == self.query)
            & (done["step_seconds"] == self.options.step_seconds)
        ]
        return None if mine.empty else float(mine["end"].max())

    def import_all(self) -> None:
        """Import ``[since, until]`` chunk by chunk; CollectorError when the server fails."""
        opts = self.options
        start = math.ceil(opts.since / opts.step_seconds) * opts.step_seconds  # on the grid
        last = self.resume_from()
        if last is not None and last >= start:
            start = last + opts.step_seconds
            self.log(f"collect history: resuming after {utc(last)}")
        self.samples = self.run.writer("samples")
        self.chunks = self.run.writer(CHUNKS_TABLE)
        try:
            self._chunks_from(start)
        finally:
            self.samples.close()
            self.chunks.close()

    def _chunks_from(self, start: float) -> None:
        step, per = self.options.step_seconds, self.chunk_times()
        left = int((self.options.until - start) // step) + 1 if start <= self.options.until else 0
        total = math.ceil(left / per)
        for n in range(1, total + 1):
            if self.stop.is_set():
                return
            end = start + (min(per, left - (n - 1) * per) - 1) * step  # its last time
            written_to = self._chunk(start, end, f"{n}/{total}")
            if written_to is None or written_to < end:  # stopped inside the chunk
                return
            start = end + step

    def _types(self) -> dict[str, str]:
        try:
            return self.prometheus.metadata()
        except Cancelled:
            raise
        except CollectorError as exc:  # types also come from the series themselves
            self.log(f"collect history: no metadata ({exc}); histograms recognised by le")
            return {}

    def _scrape_urls(self) -> dict[tuple[str, str], str]:
        try:
            return self.prometheus.scrape_urls()
        except Cancelled:
            raise
        except CollectorError as exc:
            self.log(f"collect history: no targets ({exc}); sources named job/instance")
            return {}

    def _chunk(self, start: float, end: float, of: str) -> float | None:
        """Import one chunk; the last evaluation time written (None: stopped before any)."""
        step = self.options.step_seconds
        series = self.prometheus.query_range(self.query, start, end, step)
        if self.meta is None:  # asked once the server has answered a query
            self.meta, self.urls = self._types(), self._scrape_urls()
        for job, instance in _targets(series):
            series += self.prometheus.query_range(rest_of_target(job, instance), start, end, step)
        types = rebuild.family_types(series, self.meta)
        docs = rebuild.documents(series, types)
        rows_by_time: dict[float, list[Sample]] = {}
        for target, by_time in docs.items():
            source = self.urls.get(target) or "/".join(target)
            for ts, rows in rebuild.samples(by_time, types, source, self.options.generation):
                rows_by_time.setdefault(ts, []).extend(rows)
        written, last = 0, None
        for ts in sorted(rows_by_time):
            if self.stop.is_set():
                break
            batch = rows_by_time[ts]
            self.samples.append_many(batch)
            written += len(batch)
            last = ts
        self.samples.flush()
        self.samples_written += written
        done_to = end if not self.stop.is_set() else last
        if done_to is None:
            return None
        self.chunks.append(
            {
                "ts": time.time(),
                "source": self.name,
                "query": self.query,
                "step_seconds": self.options.step_seconds,
                "start": start,
                "end": done_to,
                "series": len(series),
                "samples": written,
            }
        )
        self.chunks.flush()
        self.chunks_done += 1
        self.log(
            f"collect history: chunk {of} {utc(start)} .. {utc(done_to)}: {len(series)} series, "
            f"{len(rows_by_time)} times, {written} samples"
        )
        return done_to


def _targets(series: list[Series]) -> list[tuple[str, str]]:
    """The ``(job, instance)`` of the targets in ``series``, sorted."""
    return sorted({(s.labels.get("job", ""), s.labels.get("instance", "")) for s in series})
