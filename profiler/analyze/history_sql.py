"""The SQL of the history engine (:mod:`profiler.analyze.history`), one statement per step.

Each statement states in SQL what a function of the in-memory engine does with pandas, and
names it; the two are checked equal on the same run (tests/integration/test_history.py).
Views it reads: ``raw_steps`` and ``raw_builds`` (a run's ``db_steps`` and ``db_builds``,
each row with its reading position ``_file``, ``_row``); tables it makes: ``base``,
``levels``, ``steps``; ``split`` is the per-step split the engine writes.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

from profiler.analyze.schema import PHASE_COLUMN

RETRY_GAP_SECONDS = 3600  # profiler.analyze.steps.retry_waits: a later attempt within an hour
ZERO_PHASES = sorted(set(PHASE_COLUMN.values()) - {"build_s", "copy_s"})


def literal(text: str) -> str:
    """``text`` as a SQL string literal."""
    return "'" + text.replace("'", "''") + "'"


def _number(value: float) -> str:
    return repr(float(value))


def _window(since: float | None, until: float | None) -> str:
    stop = "TRY_CAST(stop_time AS DOUBLE)"
    terms = []
    if since is not None:
        terms.append(f"{stop} >= {_number(since)}")
    if until is not None:
        terms.append(f"{stop} < {_number(until)}")
    return ("WHERE " + " AND ".join(terms)) if terms else ""


GENERATIONS = (
    "SELECT DISTINCT CAST(generation AS VARCHAR) FROM raw_steps "
    "WHERE generation IS NOT NULL AND CAST(generation AS VARCHAR) <> 'unknown'"
)


def raw_count(since: float | None, until: float | None) -> str:
    """BuildSteps rows in the window, repeated copies included (the in-memory source count)."""
    return f"SELECT count(*) FROM raw_steps {_window(since, until)}"


def _times(generation: str) -> str:
    """Start, end, build and copy seconds from BuildSteps' times, by generation, as
    :func:`profiler.analyze.steps._db_steps` reads them: Rust ``stop - start`` is the whole
    step (overhead = import + upload, inside it); C++ it is the build only, the copies
    (overhead) after it."""
    span = "(stop_time - start_time)"
    if generation == "rust":
        return (
            "start_time AS start_ts, stop_time AS end_ts, overhead_s AS copy_s, "
            f"CASE WHEN {span} - overhead_s < 0 THEN 0::DOUBLE "
            f"ELSE {span} - overhead_s END AS build_s"
        )
    return (
        "start_time AS start_ts, stop_time + overhead_s AS end_ts, overhead_s AS copy_s, "
        f"{span} AS build_s"
    )


def steps_sql(
    generation: str, since: float | None, until: float | None, builds: bool
) -> Sequence[tuple[str | None, str]]:
    """(label, statement) that make ``base`` (no label: too quick for a progress line): one
    row per step (the last copy of a repeated one), joined with its build's jobset and NAR
    size, with the back-off it waited after its drv's previous failed attempt
    (:func:`profiler.analyze.steps.retry_waits`).

    One blocking operator per statement, each result a table: in one statement the join's
    hash table of Builds stayed pinned while the two windows above it sorted 100M rows, and
    the whole ran out of a 2GB limit (``benchmarks/history.py``); apart, each spills."""
    jobs = (
        "SELECT TRY_CAST(build AS BIGINT) AS build, "
        "coalesce(CAST(project AS VARCHAR), 'None') || ':' || "
        "coalesce(CAST(jobset AS VARCHAR), 'None') AS jobset, "
        "TRY_CAST(size_bytes AS DOUBLE) AS size_bytes FROM raw_builds "
        "QUALIFY row_number() OVER (PARTITION BY build ORDER BY _file DESC, _row DESC) = 1"
        if builds
        else "SELECT NULL::BIGINT AS build, NULL::VARCHAR AS jobset, NULL::DOUBLE AS size_bytes"
    )
    zeros = ", ".join(f"0::DOUBLE AS {c}" for c in ZERO_PHASES)
    drv = "CASE WHEN drv_path <> '' THEN drv_path END"
    attempt = f"PARTITION BY {drv} ORDER BY start_ts ASC NULLS LAST, _file, _row"
    last_copy = f"""
CREATE TABLE last_copy AS
SELECT TRY_CAST(build AS BIGINT) AS build, TRY_CAST(stepnr AS BIGINT) AS stepnr,
    CAST(machine AS VARCHAR) AS machine, CAST(system AS VARCHAR) AS system,
    CAST(drv_path AS VARCHAR) AS drv_path, TRY_CAST(status AS DOUBLE) AS status,
    TRY_CAST(start_time AS DOUBLE) AS start_time, TRY_CAST(stop_time AS DOUBLE) AS stop_time,
    coalesce(TRY_CAST(overhead_ms AS DOUBLE), 0::DOUBLE) / 1000 AS overhead_s, _file, _row
FROM raw_steps {_window(since, until)}
QUALIFY row_number() OVER (PARTITION BY build, stepnr ORDER BY _file DESC, _row DESC) = 1
"""
    timed = f"""
CREATE TABLE timed AS
SELECT last_copy.*, jobs.jobset, jobs.size_bytes, {_times(generation)}
FROM last_copy LEFT JOIN jobs USING (build)
"""
    base = f"""
CREATE TABLE base AS
SELECT build, stepnr, machine, system, jobset, drv_path,
    CASE WHEN isnan(status) THEN NULL ELSE status END AS status,
    start_ts, end_ts, build_s, copy_s, {zeros},
    size_bytes AS nar_bytes, NULL::DOUBLE AS compressed_bytes, NULL::DOUBLE AS pipeline_s,
    1::DOUBLE AS resolution_s, 'db' AS timing_source, {literal(generation)} AS generation,
    CASE WHEN {drv} IS NOT NULL
        AND coalesce(lag(status) OVER ({attempt}) <> 0, true)
        AND start_ts - lag(end_ts) OVER ({attempt}) >= 0
        AND start_ts - lag(end_ts) OVER ({attempt}) < {RETRY_GAP_SECONDS}
        THEN start_ts - lag(end_ts) OVER ({attempt}) ELSE 0::DOUBLE END AS retry_wait_s
FROM timed
"""
    return (
        ("the last copy of each step", last_copy),
        ("the last copy of each build", f"CREATE TABLE jobs AS {jobs}"),
        ("joining BuildSteps and Builds", timed),
        (None, "DROP TABLE last_copy"),
        (None, "DROP TABLE jobs"),
        ("retry back-offs", base),
        (None, "DROP TABLE timed"),
    )


def _copy_window() -> tuple[str, str]:
    """A step's copy phase (:func:`profiler.analyze.attribution.copy_window`): the copy
    seconds before its post-processing."""
    end = "(end_ts - coalesce(post_s, 0::DOUBLE))"
    return f"({end} - coalesce(copy_s, 0::DOUBLE))", end


def _hosts(generation: str) -> tuple[str, str, str]:
    """(host, busy start, busy end) of :func:`profiler.analyze.attribution.cpu_contention`:
    a Rust builder's steps on it; the C++ runner's copy phases, all on one host."""
    if generation == "rust":
        return "coalesce(machine, '')", "start_ts", "end_ts"
    start, end = _copy_window()
    return "'runner'", start, end


def contention_sql(generation: str, runner_cores: float | None) -> Sequence[str]:
    """``levels`` (per host and instant, how many busy intervals are open after it, and the
    area below that step function up to it: :func:`profiler.analyze.attribution._mean_level`),
    ``cont``: per ``base`` row (``id``: its rowid) its ``contention``, the mean level over its
    copy phase per core (at least 1; NULL where it cannot be known), and the view ``steps``:
    ``base`` with it. The joins run on these narrow rows, not on ``base``'s (100M wide rows
    through two ASOF joins spilled more than the disk had)."""
    host, start, end = _hosts(generation)
    ok = f"{start} IS NOT NULL AND {end} IS NOT NULL AND {end} >= {start}"
    levels = f"""
CREATE TABLE levels AS
WITH ev AS (
    SELECT host, t, sum(d) AS d FROM (
        SELECT {host} AS host, {start} AS t, 1 AS d FROM base WHERE {ok}
        UNION ALL SELECT {host} AS host, {end} AS t, -1 AS d FROM base WHERE {ok}
    ) GROUP BY host, t
), lv AS (
    SELECT host, t, sum(d) OVER (PARTITION BY host ORDER BY t ROWS UNBOUNDED PRECEDING) AS level
    FROM ev
)
SELECT host, t, level, coalesce(sum(level * (next_t - t)) OVER (PARTITION BY host ORDER BY t
    ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING), 0::DOUBLE) AS area
FROM (SELECT *, lead(t) OVER (PARTITION BY host ORDER BY t) AS next_t FROM lv)
"""
    per_core = 1.0 if generation == "rust" else float(runner_cores or 0)
    known = generation in ("rust", "cxx") and per_core > 0

    def integral(alias: str, x: str) -> str:
        at = f"{alias}.area + {alias}.level * ({x} - {alias}.t)"
        return f"CASE WHEN {alias}.t IS NULL THEN 0::DOUBLE ELSE {at} END"

    ws, we = "w.ws", "w.we"
    mean = (
        f"CASE WHEN {we} - {ws} > 0 THEN ({integral('b', we)} - {integral('a', ws)}) / "
        f"({we} - {ws}) ELSE coalesce(a.level, 0::DOUBLE) END"
    )
    contention = (
        f"CASE WHEN {ws} IS NOT NULL AND {we} IS NOT NULL AND {we} >= {ws} "
        f"THEN greatest(1.0, {mean} / {_number(per_core)}) END"
        if known
        else "NULL::DOUBLE"
    )
    start_w, end_w = _copy_window()
    cont = f"""
CREATE TABLE cont AS
SELECT w.id, {contention} AS contention
FROM (SELECT rowid AS id, {host} AS host, {start_w} AS ws, {end_w} AS we FROM base) AS w
ASOF LEFT JOIN levels AS a ON w.host = a.host AND w.ws >= a.t
ASOF LEFT JOIN levels AS b ON w.host = b.host AND w.we >= b.t
"""
    steps = (
        "CREATE VIEW steps AS SELECT base.*, cont.contention FROM base "
        "JOIN cont ON cont.id = base.rowid"
    )
    return levels, cont, steps


def batch_sql(first: int, end: int) -> str:
    """The ``steps`` of ``base`` rows ``[first, end)`` (by rowid: a range scan of each)."""
    return (
        "SELECT base.*, cont.contention FROM base JOIN cont ON cont.id = base.rowid "
        f"WHERE base.rowid >= {int(first)} AND base.rowid < {int(end)} "
        f"AND cont.id >= {int(first)} AND cont.id < {int(end)}"
    )


# The most busy intervals open at once on one host (compressing_peak).
PEAK = "SELECT max(level) FROM levels"

_SIZED = "nar_bytes > 0 AND NOT isnan(nar_bytes) AND coalesce(copy_s, 0::DOUBLE) > 0"
SIZED_COUNT = f"SELECT count(*) FROM base WHERE {_SIZED}"


def sized_sample(ranks: Iterable[int]) -> str:
    """The phases of :func:`profiler.analyze.attribution.sized_sample` at ``ranks``, ranked
    by (NAR bytes, phase seconds); a BuildSteps copy phase has no pipeline time, so the
    phase is the whole copy."""
    listed = ", ".join(str(int(r)) for r in ranks) or "-1"
    return f"""
SELECT x, y FROM (
    SELECT nar_bytes AS x, coalesce(copy_s, 0::DOUBLE) AS y,
        row_number() OVER (ORDER BY nar_bytes, coalesce(copy_s, 0::DOUBLE)) - 1 AS r
    FROM base WHERE {_SIZED}
) WHERE r IN ({listed}) ORDER BY r
"""


def _sum(column: str) -> str:
    return f"sum(coalesce({column}, 0::DOUBLE))"


def totals_sql(columns: Sequence[str]) -> str:
    """:meth:`profiler.analyze.totals.StepTotals.of` over ``split``."""
    failed = "count(*) FILTER (WHERE status IS NOT NULL AND status <> 0)"
    starts = "start_ts IS NOT NULL AND NOT isnan(start_ts)"
    whole = (
        f"count(*) FILTER (WHERE {starts}) > 0 "
        f"AND bool_and(start_ts = round(start_ts)) FILTER (WHERE {starts})"
    )
    sums = ", ".join(_sum(c) for c in columns)
    return (
        f"SELECT count(*), min(start_ts), max(end_ts), {failed}, "
        f"sum(copy_s) FILTER (WHERE unsplit), {whole}, {sums} FROM split"
    )


def breakdown_sql(key: str, categories: Mapping[str, str]) -> str:
    """:func:`profiler.analyze.attribution.breakdown` over ``split`` grouped by ``key``,
    without the quantiles (:func:`profiler.analyze.history_quantiles.quantiles`)."""
    shares = ", ".join(
        f"CASE WHEN sum(wall_s) > 0 THEN {_sum(col)} / sum(wall_s) ELSE 0::DOUBLE END AS {c}_share"
        for c, col in categories.items()
    )
    return f"""
SELECT {key} AS "group", count(*) AS steps, coalesce(sum(wall_s), 0::DOUBLE) AS step_seconds,
    {shares},
    CASE WHEN sum(slot_s) > 0 THEN 1 - sum(build_s) / sum(slot_s) ELSE 0::DOUBLE END
        AS slot_not_building_share
FROM split GROUP BY 1 ORDER BY 1 ASC NULLS LAST
"""
