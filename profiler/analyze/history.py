"""Years of BuildSteps out of core: the step table, its split, the attribution, the
breakdowns over time and the verdict in DuckDB over the run's Parquet, with bounded memory.

``analyze`` holds a run's step table in memory (1M steps: about 1.3 GiB); a farm the size
of hydra.nixos.org has run hundreds of millions. This engine makes the same table in SQL from
the run's ``db_steps`` and ``db_builds`` (what ``collect db --since`` exports), with
BuildSteps' times as :func:`profiler.analyze.steps.build_step_table` reads them per
generation (:mod:`profiler.analyze.history_sql`), and then:

1. the facts of the copy split that need the whole table (:class:`SplitFacts`: the sample
   of sized phases, the peak of concurrent compressions, each step's CPU contention) in SQL;
2. the split itself a batch at a time, by the same function as in memory
   (:func:`profiler.analyze.attribution.split_copy`), into a Parquet file of per-step
   results;
3. totals, percentiles and the breakdowns by machine, system, jobset and time window in
   SQL over that file, and the verdict from the totals (:class:`StepTotals`).

DuckDB runs with a memory limit and spills to a scratch directory; on a run whose steps fit
in memory the result equals the in-memory engine's to rounding (tests/integration/
test_history.py; ``benchmarks/history.py`` at 1M and 100M steps). Only BuildSteps and Builds
are read: a tracker's phases, a journal and status samples sharpen the in-memory analysis of
a recent window, and their absence is said, never read as zero.
"""

from __future__ import annotations

import contextlib
import math
import os
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import pandas as pd

from profiler.analyze import history_sql as q
from profiler.analyze.attribution import SplitFacts, attribute_totals
from profiler.analyze.evidence import choose_codec
from profiler.analyze.history_quantiles import quantiles
from profiler.analyze.history_split import Progress, SplitJob, Splitter, split_here
from profiler.analyze.schema import CATEGORY_COLUMN, STEP_COLUMNS, Source, StepTable
from profiler.analyze.totals import SUM_COLUMNS, StepTotals
from profiler.analyze.verdict import Pressure, decide, use_table
from profiler.bench.profiles import CodecProfile
from profiler.errors import ProfilerError, StoreError
from profiler.store.tables import TableFiles, table_files, table_names

BATCH_ROWS = 500_000  # steps split per batch in pandas (~0.3 GiB at the widest)
# DuckDB's limit while it joins and sorts; the batches and Python's own memory come on top
# (10M steps: 2GB gave a 3.8 GiB peak, most of it DuckDB's pool held while the batches
# streamed, so the split runs with half of it: benchmarks/history.py)
DEFAULT_MEMORY = "2GB"


@dataclass(frozen=True)
class Window:
    """Steps whose ``stopTime`` is in ``[since, until)`` (epoch seconds; None: open)."""

    since: float | None = None
    until: float | None = None

    def describe(self) -> str:
        if self.since is None and self.until is None:
            return "every step of the run"
        fmt = "%Y-%m-%d %H:%M:%SZ"
        ends = [
            time.strftime(fmt, time.gmtime(t)) if t is not None else "..."
            for t in (self.since, self.until)
        ]
        return f"steps that stopped in [{ends[0]}, {ends[1]})"


@dataclass(frozen=True)
class HistoryResult:
    """What the engine found, for :func:`profiler.analyze.analysis.history_analysis`."""

    table: StepTable  # its steps are empty: the rows stayed on disk
    totals: StepTotals
    attribution: Any
    verdict: Any
    use: pd.DataFrame
    breakdowns: Mapping[str, pd.DataFrame]  # machine, system, jobset, window
    wall_percentiles_s: Mapping[str, float]
    codec_choice: Any
    local_workers: tuple[int | None, str]
    profile: CodecProfile | None


def _engine_error(exc: Exception, scratch: str) -> str:
    """DuckDB's error in one line, with the remedy where there is one."""
    first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    if "No space left" in first:
        return (
            f"history engine: the scratch directory {scratch} ran out of disk space ({first}); "
            "point TMPDIR at a larger disk (it needs a few times the run's Parquet size)"
        )
    if "memory" in first.lower():
        return f"history engine: {first}; raise --memory-limit or free memory"
    return f"history engine: {first}"


def _one(con: Any, sql: str) -> Any:
    """The one row ``sql`` gives (read whole: DuckDB wants a result finished before the
    next statement)."""
    rows = con.execute(sql).fetchall()
    return rows[0] if rows else None


def history_rows(run_dir: str) -> int:
    """How many ``db_steps`` rows the run's Parquet files hold (their metadata; segments
    not counted): what ``--engine auto`` weighs."""
    if "db_steps" not in table_names(run_dir):
        return 0
    import pyarrow.parquet as pq

    return sum(pq.read_metadata(f).num_rows for f in table_files(run_dir, "db_steps").parquet)


def _register(con: Any, name: str, files: TableFiles) -> None:
    """``name`` as a view over a table's Parquet files and segments, each row with its
    reading position (``_file``, ``_row``): the in-memory reader's order, which decides
    which of two copies of a step counts (the last)."""
    parts = []
    if files.parquet:
        listed = ", ".join(q.literal(f) for f in files.parquet)
        parts.append(
            f"SELECT * EXCLUDE (filename, file_row_number), "
            f"list_position([{listed}], filename) AS _file, file_row_number AS _row "
            f"FROM read_parquet([{listed}], union_by_name = true, filename = true, "
            "file_row_number = true)"
        )
    if files.segments is not None:
        import pyarrow as pa

        seg = files.segments
        seg = seg.append_column("_file", pa.array([len(files.parquet) + 1] * seg.num_rows))
        seg = seg.append_column("_row", pa.array(range(seg.num_rows), pa.int64()))
        con.register(f"{name}_segments", seg)
        parts.append(f"SELECT * FROM {name}_segments")
    if not parts:
        raise ProfilerError(f"no rows in {name}")
    con.execute(f"CREATE VIEW {name} AS " + " UNION ALL BY NAME ".join(parts))


def _half(memory_limit: str) -> str:
    """Half of a DuckDB memory limit (``2GB`` -> ``1000MB``)."""
    from profiler.units import parse_bytes

    try:
        return f"{int(parse_bytes(memory_limit) / 2e6)}MB"
    except ValueError:
        return memory_limit


def _connect(scratch: str, memory_limit: str, threads: int | None) -> Any:
    import duckdb

    con = duckdb.connect(os.path.join(scratch, "history.duckdb"))
    con.execute(f"SET memory_limit = {q.literal(memory_limit)}")
    con.execute(f"SET temp_directory = {q.literal(os.path.join(scratch, 'spill'))}")
    con.execute("SET preserve_insertion_order = false")
    # its own bar goes to stdout (and would corrupt --format json): progress is ours, on stderr
    con.execute("SET enable_progress_bar = false")
    if threads:
        con.execute(f"SET threads = {int(threads)}")
    return con


@contextlib.contextmanager
def _watched(con: Any, label: str, say: Progress, every_seconds: float = 5.0) -> Iterator[None]:
    """Say ``label`` and, while the statement runs, DuckDB's progress every few seconds."""
    say(label)
    done = threading.Event()
    began = time.monotonic()

    def watch() -> None:
        while not done.wait(every_seconds):
            share = con.query_progress()  # -1: DuckDB cannot tell for this statement
            done_share = f"{share:.0f}%, " if share >= 0 else ""
            say(f"{label}: {done_share}{time.monotonic() - began:.0f} s")

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    try:
        yield
    finally:
        done.set()
        watcher.join()


def _generation(con: Any, given: str | None) -> str:
    """As the in-memory engine reads it from db_steps: the one generation its rows name."""
    if given:
        return given
    rows = con.execute(q.GENERATIONS).fetchall()
    return str(rows[0][0]) if len(rows) == 1 else "unknown"


def _facts(con: Any, generation: str, runner_cores: float | None) -> SplitFacts:
    """The split's whole-table facts in SQL (contention comes per batch, as a column)."""
    n = _one(con, q.SIZED_COUNT)[0]
    from profiler.analyze.attribution import sample_ranks

    ranks = [int(r) for r in sample_ranks(int(n))]
    sample = con.execute(q.sized_sample(ranks)).fetchnumpy()
    peak = _one(con, q.PEAK)[0]
    empty = pd.Series(dtype=float)
    return SplitFacts((sample["x"], sample["y"]), int(peak or 0), empty)


def _totals(con: Any, median: float | None) -> StepTotals:
    row = _one(con, q.totals_sql(SUM_COLUMNS))
    (steps, start, end, failed, unsplit, whole), sums = row[:6], row[6:]
    return StepTotals(
        steps=int(steps),
        sums={c: float(v or 0.0) for c, v in zip(SUM_COLUMNS, sums, strict=True)},
        wall_median_s=float(median) if median is not None else math.nan,
        start_ts=float(start) if start is not None else math.nan,
        end_ts=float(end) if end is not None else math.nan,
        failed=int(failed or 0),
        unsplit_seconds=float(unsplit or 0.0),
        timed_whole_seconds=bool(whole),
    )


def _breakdown(con: Any, key_sql: str) -> pd.DataFrame:
    """:func:`profiler.analyze.attribution.breakdown` in SQL, same columns and order."""
    df = con.execute(q.breakdown_sql(key_sql, CATEGORY_COLUMN)).fetch_df()
    if df.empty:
        return pd.DataFrame()
    df["steps"] = df["steps"].astype("int64")
    df = df.set_index("group")
    wall = quantiles(con, key_sql)
    for column in ("wall_p50_s", "wall_p90_s", "wall_p99_s"):
        df.insert(len([c for c in df.columns if c.startswith(("steps", "wall_"))]), column,
                  df.index.map(wall[column]) if len(wall) else float("nan"))  # fmt: skip
    return df


def _percentiles(con: Any) -> dict[str, float]:
    wall = quantiles(con, "0")
    if wall.empty:
        return {}
    return {str(c)[5:-2]: float(wall[c].iloc[0]) for c in wall}  # wall_p50_s -> p50


def _table_of(con: Any, run_dir: str, gen: str, window: Window, notes: list[str]) -> StepTable:
    rows = _one(con, q.raw_count(window.since, window.until))[0]
    kept = _one(con, "SELECT count(*) FROM base")[0]
    repeated = rows - kept
    if not kept:
        raise ProfilerError(f"{run_dir}: no BuildSteps rows in {window.describe()}")
    notes.append(
        f"{rows} step(s) without tracker phases: timed from BuildSteps only (whole seconds; "
        "scheduling and post-processing not separable)"
    )
    if repeated:
        notes.append(f"{repeated} repeated step row(s) (same build and step) dropped")
    notes.append("no status samples: queue wait not observed")
    sources = [Source("db_steps", int(rows), f"Hydra BuildSteps ({gen})", "1 s")]
    empty = pd.DataFrame(columns=list(STEP_COLUMNS))
    start, end = _one(con, "SELECT min(start_ts), max(end_ts) FROM base")
    return StepTable(
        empty,
        gen,
        math.nan,
        "no status samples: queue wait not observed",
        sources,
        notes,
        (float(start), float(end)),
    )


def _other_tables(run_dir: str) -> list[str]:
    others = sorted(set(table_names(run_dir)) & {"db_phases", "log_events", "samples"})
    if not others:
        return []
    return [
        f"history engine: {', '.join(others)} in the run not read (BuildSteps and Builds only; "
        "the in-memory engine, --engine memory, uses them on a window that fits in memory)"
    ]


def run_history(
    run_dir: str,
    *,
    profile: CodecProfile | None,
    codec: str | None = None,
    generation: str | None = None,
    runner_cores: float | None = None,
    local_workers: int | None = None,
    window_seconds: float = 3600.0,
    window: Window = Window(),
    memory_limit: str = DEFAULT_MEMORY,
    threads: int | None = None,
    batch_rows: int = BATCH_ROWS,
    scratch_dir: str | None = None,
    cache_dir: str | None = None,
    progress: Progress | None = None,
    profile_for: Callable[[str], CodecProfile | None] | None = None,
    splitter: Splitter | None = None,
) -> HistoryResult:
    """Analyse the BuildSteps history of the run at ``run_dir`` out of core (see the module).

    ``profile`` is the farm codec's (as :func:`profiler.analyze.analysis.analyze` takes it),
    or ``profile_for`` gives it for the codec the evidence names (``codec``, else
    ``cache_dir``'s narinfos, else the generation's default); ``memory_limit`` is DuckDB's
    (``2GB``; it spills beyond to ``scratch_dir``, default a temporary directory removed
    afterwards).
    """
    say = progress or (lambda _text: None)
    try:
        steps_files = table_files(run_dir, "db_steps")
    except StoreError as exc:
        if "no table" in str(exc):
            raise ProfilerError(
                f"{run_dir}: no db_steps table: the history engine reads BuildSteps rows "
                "(collect db --since ...)"
            ) from None
        raise
    import duckdb

    with tempfile.TemporaryDirectory(prefix="hydra-profiler-history-", dir=scratch_dir) as tmp:
        con = _connect(tmp, memory_limit, threads)
        try:
            return _run(
                con, run_dir, steps_files, tmp, say,
                profile=profile, codec=codec, generation=generation, runner_cores=runner_cores,
                local_workers=local_workers, window_seconds=window_seconds, window=window,
                batch_rows=batch_rows, cache_dir=cache_dir, profile_for=profile_for,
                splitter=splitter, memory_limit=memory_limit,
            )  # fmt: skip
        except duckdb.Error as exc:
            raise ProfilerError(_engine_error(exc, tmp)) from None
        finally:
            con.close()


def _run(
    con: Any,
    run_dir: str,
    steps_files: TableFiles,
    tmp: str,
    say: Progress,
    *,
    profile: CodecProfile | None,
    codec: str | None,
    generation: str | None,
    runner_cores: float | None,
    local_workers: int | None,
    window_seconds: float,
    window: Window,
    batch_rows: int,
    cache_dir: str | None,
    profile_for: Callable[[str], CodecProfile | None] | None,
    splitter: Splitter | None,
    memory_limit: str,
) -> HistoryResult:
    began = time.monotonic()
    _register(con, "raw_steps", steps_files)
    has_builds = "db_builds" in table_names(run_dir)
    if has_builds:
        _register(con, "raw_builds", table_files(run_dir, "db_builds"))
    gen = _generation(con, generation)
    notes = list(steps_files.warnings)
    statements = [
        *q.steps_sql(gen, window.since, window.until, has_builds),
        *zip(
            ("busy levels", "contention", "joining steps and contention"),
            q.contention_sql(gen, runner_cores),
            strict=True,
        ),
    ]
    for label, statement in statements:
        if label is None:
            con.execute(statement)
            continue
        with _watched(con, f"history: {label}", say):
            con.execute(statement)
    table = _table_of(con, run_dir, gen, window, notes)
    total = _one(con, "SELECT count(*) FROM base")[0]
    say(f"history: {total:,} steps ({time.monotonic() - began:.0f} s); the split's facts")
    facts = _facts(con, gen, runner_cores)
    choice = choose_codec(None, gen, codec, cache_dir)
    if profile_for is not None:
        profile = profile_for(choice.spec)
    con.execute("SET memory_limit = " + q.literal(_half(memory_limit)))
    job = SplitJob(gen, profile, choice.mode, facts, tmp, total, batch_rows)
    files = (splitter or split_here)(con, job, say)
    for drop in ("VIEW steps", "TABLE cont", "TABLE levels", "TABLE base"):
        con.execute(f"DROP {drop}")
    con.execute("SET memory_limit = " + q.literal(memory_limit))  # quantiles hold their values
    listed = ", ".join(q.literal(f) for f in files)
    con.execute(f"CREATE VIEW split AS SELECT * FROM read_parquet([{listed}])")
    say(f"history: totals and breakdowns ({time.monotonic() - began:.0f} s)")
    percentiles = _percentiles(con)
    totals = _totals(con, percentiles.get("p50"))
    att = attribute_totals(table, totals)
    att.notes.append(f"codec {choice.spec}: {choice.source}")
    if choice.mode is not None:
        att.notes.append(f"Rust upload mode {choice.mode}: {choice.mode_source}")
    att.notes.extend(choice.notes)
    att.notes.extend(_other_tables(run_dir))
    att.notes.append(f"history engine (DuckDB, out of core): {window.describe()}")
    p = Pressure()
    resolution = 1.0 if totals.timed_whole_seconds else 0.0
    verdict = decide(att, totals, gen, p, None, resolution, 0.0)
    workers = _local_workers(con, gen, local_workers)
    unknown = "coalesce({}, 'unknown')"
    breakdowns = {
        "machine": _breakdown(con, unknown.format("machine")),
        "system": _breakdown(con, unknown.format("system")),
        "jobset": _breakdown(con, unknown.format("jobset")),
        "window": _breakdown(con, f"floor(end_ts / {window_seconds!r}) * {window_seconds!r}"),
    }
    say(f"history: done ({time.monotonic() - began:.0f} s)")
    return HistoryResult(
        table, totals, att, verdict, use_table(p, att, totals, workers[0]), breakdowns,
        percentiles, choice, workers, profile,
    )  # fmt: skip


def _local_workers(con: Any, generation: str, given: int | None) -> tuple[int | None, str]:
    """As :func:`profiler.analyze.analysis._local_workers` says it for BuildSteps rows."""
    if generation != "cxx":
        return None, "Rust has no local worker slots (builders compress)"
    if given is not None:
        return given, "given by the operator (--local-workers)"
    waited = _one(con, "SELECT count(*) FROM split WHERE slot_wait_s > 0.05")[0]
    if waited:
        return None, "not known: steps waited for a slot but no source shows how many there are"
    return None, "no step waited for a local worker slot: the limit was never reached"
