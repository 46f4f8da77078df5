#!/usr/bin/env python3
"""``collect db`` history backfill against the database's own speed, and its memory.

For each size (``--steps``, and ``--also`` for the memory comparison) a fresh database with
Hydra's real schema (tests/data/hydra-sql/hydra.sql) is filled with generated steps over
five years (generate_series; tests/integration/test_collect_db_history.fill_history), then:

* **COPY**: ``COPY (the backfill's SELECT) TO STDOUT`` read through psycopg, in this process:
  the database's own speed for these rows (text and binary formats), and the same for the
  builds it exports (finished builds with an exported step);
* **cursor fetch**: the backfill's server-side cursor fetched into Python tuples and
  dropped (psycopg's own cost, the floor of any Python reader);
* **ours**: the backfill (``--once --no-track``, the stream then one live pass), in a fresh
  process so that its peak RSS (``ru_maxrss`` of that child, from ``wait4``) is its own;
  compaction of the run afterwards is timed separately (the CLI does it at the end).

Prints rows, seconds, rows/s, the ratio ours/COPY (target: within 2-3x) and the peak RSS.
Memory bounded by a batch shows as nearly the same peak for every size.

Usage::

    python benchmarks/db_history.py [--steps 1000000] [--also 200000] [--batch-rows 50000]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from typing import Any

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))

import psycopg
from psycopg import sql

from profiler.collect.database.common import BUILDS_SQL
from profiler.collect.database.history import STREAM_SQL
from profiler.testbed.pgserver import PostgresServer, find_pg_bindir
from tests.conftest import fresh_database
from tests.integration.test_collect_db_history import SCHEMA, YEAR, fill_history

CHILD = """
import json, resource, sys, time
from profiler.collect.database.collector import DbCollector
from profiler.collect.database.common import DbOptions
from profiler.store import Run, compact
dsn, out, since, rows = sys.argv[1], sys.argv[2], float(sys.argv[3]), int(sys.argv[4])
run = Run.open(out)
opts = DbOptions(once=True, track=False, since=since, backfill_after_seconds=21600,
                 backfill_rows=rows, progress_seconds=1e9)
collector = DbCollector(run, dsn, opts, log=lambda m: print(m, file=sys.stderr))
t = time.perf_counter()
try:
    collector.run_loop()
finally:
    run.close()
seconds = time.perf_counter() - t
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # before compaction
t = time.perf_counter()
compact(out)
print(json.dumps({"steps": collector.exporter.steps_written, "seconds": seconds, "peak": peak,
                  "builds": collector.exporter.builds_written,
                  "compact_seconds": time.perf_counter() - t}))
"""


# the builds the backfill exports: finished, with a step it exports (BUILDS_SQL's columns)
BUILDS_COPY = BUILDS_SQL.replace(
    "b.id = any(%(ids)s::integer[])",
    "b.finished = 1 and b.id in (select build from BuildSteps where startTime is not null"
    " and stopTime is not null and busy = 0 and stopTime >= %(lo)s)",
)


def copy_seconds(dsn: str, since: int, binary: bool, select: str = STREAM_SQL) -> tuple[int, float]:
    """Bytes and seconds of ``COPY (select) TO STDOUT`` read whole through psycopg."""
    query = sql.SQL(select.replace("%(lo)s", "{}")).format(sql.Literal(since))  # type: ignore[arg-type]
    fmt = sql.SQL(" (format binary)" if binary else "")
    total = 0
    with psycopg.connect(dsn) as conn, conn.cursor() as cur:
        t = time.perf_counter()
        with cur.copy(sql.SQL("copy ({}) to stdout{}").format(query, fmt)) as copy:
            for block in copy:
                total += len(block)
        return total, time.perf_counter() - t


def fetch_seconds(dsn: str, since: int, rows_per_fetch: int) -> tuple[int, float]:
    """Rows and seconds of the backfill's server-side cursor fetched into Python tuples and
    dropped: what psycopg costs any Python reader of these rows (no conversion, no writes)."""
    total = 0
    with psycopg.connect(dsn) as conn:
        t = time.perf_counter()
        with conn.transaction(), conn.cursor(name="bench", binary=True) as cur:
            cur.execute(STREAM_SQL, {"lo": since})
            while rows := cur.fetchmany(rows_per_fetch):
                total += len(rows)
        return total, time.perf_counter() - t


def ours(dsn: str, since: int, batch_rows: int) -> dict[str, Any]:
    """The backfill in a fresh process: its figures and its own peak RSS."""
    with tempfile.TemporaryDirectory(prefix="db-history-") as tmp:
        out = os.path.join(tmp, "run")
        argv = [sys.executable, "-c", CHILD, dsn, out, str(since), str(batch_rows)]
        env = {**os.environ, "PYTHONPATH": os.path.join(os.path.dirname(__file__), "..")}
        log = os.path.join(tmp, "stderr")
        with open(log, "wb") as err:
            proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=err, env=env)
            assert proc.stdout is not None
            stdout = proc.stdout.read()
            proc.stdout.close()
            _, status, usage = os.wait4(proc.pid, 0)  # reaped here: its own rusage
            proc.returncode = os.waitstatus_to_exitcode(status)
        if proc.returncode:
            with open(log, encoding="utf-8", errors="replace") as f:
                raise SystemExit(f"backfill failed:\n{f.read()}")
        result: dict[str, Any] = json.loads(stdout)
        result["peak_bytes"] = usage.ru_maxrss * 1024  # compaction included
        return result


def measure(server_dsn: str, steps: int, batch_rows: int) -> dict[str, Any]:
    with fresh_database(server_dsn) as dsn:
        with psycopg.connect(dsn, autocommit=True) as conn:
            conn.execute(SCHEMA.read_text(encoding="utf-8"))  # type: ignore[arg-type]
        t = time.perf_counter()
        fill_history(dsn, steps)
        fill = time.perf_counter() - t
        since = int(time.time() - 6 * YEAR)
        copy_text = copy_seconds(dsn, since, binary=False)
        copy_binary = copy_seconds(dsn, since, binary=True)
        builds = copy_seconds(dsn, since, False, BUILDS_COPY)
        fetched = fetch_seconds(dsn, since, batch_rows)
        mine = ours(dsn, since, batch_rows)
    return {
        "steps": steps, "fill": fill, "text": copy_text, "binary": copy_binary,
        "fetch": fetched, "ours": mine, "batch_rows": batch_rows, "builds": builds,
    }  # fmt: skip


def report(m: dict[str, Any]) -> None:
    ours_s, rows = m["ours"]["seconds"], m["ours"]["steps"]
    text_s, binary_s, fetch_s = m["text"][1], m["binary"][1], m["fetch"][1]
    builds_s = m["builds"][1]
    peak = m["ours"]["peak_bytes"]
    print(
        f"{m['steps']:>9,} generated, {rows:,} exported ({m['ours']['builds']:,} builds, "
        f"{-(-rows // m['batch_rows'])} parts of {m['batch_rows']:,}; fill {m['fill']:.1f} s)\n"
        f"  COPY text      {text_s:7.2f} s  {rows / text_s:>10,.0f} rows/s"
        f"  ({m['text'][0] / 2**20:,.0f} MiB)\n"
        f"  COPY binary    {binary_s:7.2f} s  {rows / binary_s:>10,.0f} rows/s"
        f"  ({m['binary'][0] / 2**20:,.0f} MiB)\n"
        f"  cursor fetch   {fetch_s:7.2f} s  {rows / fetch_s:>10,.0f} rows/s"
        f"  (psycopg tuples only: {fetch_s / text_s:.2f}x COPY text)\n"
        f"  COPY builds    {builds_s:7.2f} s  (text; steps + builds {text_s + builds_s:.2f} s)\n"
        f"  ours           {ours_s:7.2f} s  {rows / ours_s:>10,.0f} rows/s"
        f"  = {ours_s / text_s:.2f}x COPY text, {ours_s / binary_s:.2f}x COPY binary,"
        f" {ours_s / (text_s + builds_s):.2f}x COPY steps + builds,"
        f" {ours_s / fetch_s:.2f}x the cursor fetch\n"
        f"  ours: peak RSS {m['ours']['peak'] / 2**20:,.0f} MiB (the process: interpreter and"
        f" libraries ~90 MiB); compaction afterwards {m['ours']['compact_seconds']:.2f} s,"
        f" peak RSS with it {peak / 2**20:,.0f} MiB"
    )


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--steps", type=int, default=1_000_000)
    p.add_argument("--also", type=int, default=200_000, help="a second size (0: none)")
    p.add_argument("--batch-rows", type=int, default=50_000)
    args = p.parse_args()
    bindir = find_pg_bindir()
    if bindir is None:
        raise SystemExit("PostgreSQL not installed (initdb; scripts/setup-tests.sh)")
    sizes = [s for s in (args.also, args.steps) if s > 0]
    with PostgresServer(bindir) as server:
        for steps in sizes:
            report(measure(server.dsn, steps, args.batch_rows))


if __name__ == "__main__":
    main()
