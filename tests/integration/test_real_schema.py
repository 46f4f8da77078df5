"""`collect db` and `analyze` against Hydra's real schema (tests/data/hydra-sql/hydra.sql,
NixOS/hydra 14332fbf), with rows written the way each generation writes them, failed builds
included.

What the real runners leave NULL and where (cited from the source):
- ``Builds.size`` / ``closureSize``: only the success path writes them: C++
  ``markSucceededBuild`` (hydra-queue-runner.cc:458 at a40d4286), Rust ``connection.rs:475``;
  a failed build's update (C++ builder.cc:461) leaves them NULL.
- propagated failures (C++ ``createBuildStep`` with ``propagatedFrom``,
  hydra-queue-runner.cc:299): a step row with status but no start/stop time and
  ``propagatedFrom`` set; cached failures (status 8) likewise without a time span.
- ``overhead``, ``timesBuilt``: NULL when 0.
- ``machine``: the C++ runner writes the machine's store URI (``ssh://build@host``), the Rust
  runner the builder's host name.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from tests.conftest import fresh_database

SCHEMA = Path(__file__).resolve().parents[1] / "data" / "hydra-sql" / "hydra.sql"
BENCH = Path(__file__).resolve().parents[1] / "data" / "bench-v1"
CMD = [sys.executable, "-m", "profiler"]
T0 = 1_795_900_000
H = "0c2zv5rr4qy3c8rqd4s1dw8dbg8wfrqn"


@pytest.fixture
def real_db(pg_dsn: str) -> Iterator[str]:
    """A fresh database holding Hydra's real schema."""
    with fresh_database(pg_dsn) as dsn:
        with psycopg.connect(dsn, autocommit=True) as conn:
            conn.execute(SCHEMA.read_text(encoding="utf-8"))  # type: ignore[arg-type]
        yield dsn


def _drv(name: str, i: int) -> str:
    return f"/nix/store/{H[:-3]}{i:03d}-{name}.drv"


def _write_farm(dsn: str, generation: str) -> dict[str, int]:
    """Builds and steps as the generation writes them: successes with sizes, a failed build
    (NULL sizes), a build failed through it (a propagated step without times), a cached
    failure, an aborted step."""
    cxx = generation == "cxx"
    machine = "ssh://build@elated-minsky.builder.nixos.org" if cxx else "elated-minsky"
    with psycopg.connect(dsn, autocommit=True) as c:
        c.execute(
            "insert into Users (userName, emailAddress, password) values ('root', 'r@x', 'x')"
        )
        c.execute(
            "insert into Projects (name, displayName, owner) values ('nixpkgs', 'Nixpkgs', 'root')"
        )
        c.execute(
            "insert into Jobsets (name, project, nixExprInput, nixExprPath, emailOverride)"
            " values ('trunk', 'nixpkgs', 'nixpkgs', 'release.nix', '')"
        )
        jobset = c.execute("select id from Jobsets").fetchone()[0]  # type: ignore[index]
        counts = {"builds": 0, "steps": 0, "failed": 0}
        for i in range(8):
            t = T0 + 100 * i
            status = 0
            if i == 5:
                status = 1  # failed
            elif i == 6:
                status = 2  # dependency failed (through build 6's step)
            elif i == 7:
                status = 3  # aborted
            drv = _drv(f"pkg{i}", i)
            row = c.execute(
                "insert into Builds (finished, timestamp, jobset_id, job, drvPath, system,"
                " startTime, stopTime, buildStatus, isCachedBuild, size, closureSize,"
                " notificationPendingSince) values (1, %s, %s, %s, %s, 'x86_64-linux', %s, %s,"
                " %s, 0, %s, %s, %s) returning id",
                (t - 50, jobset, f"pkg{i}.x86_64-linux", drv, t, t + 60, status,
                 # only the success path writes sizes
                 3_000_000 + i if status == 0 else None, 9_000_000 if status == 0 else None,
                 t + 60),
            ).fetchone()  # fmt: skip
            assert row is not None
            build = row[0]
            counts["builds"] += 1
            if i == 6:
                # the step failed in build 6 and was propagated here: no times, propagatedFrom
                c.execute(
                    "insert into BuildSteps (build, stepnr, type, drvPath, busy, status,"
                    " propagatedFrom, machine, system, errorMsg) values"
                    " (%s, 1, 0, %s, 0, 1, %s, '', 'x86_64-linux', null)",
                    (build, _drv("pkg5", 5), build - 1),
                )
                counts["steps"] += 1
                continue
            # C++: start/stop = the build (builder clock), overhead = copies in ms;
            # Rust: start/stop = the whole step (runner clock), overhead = import + upload
            start, stop = (t + 5, t + 45) if cxx else (t, t + 60)
            overhead = 9000 if status == 0 else None
            c.execute(
                "insert into BuildSteps (build, stepnr, type, drvPath, busy, status, startTime,"
                " stopTime, machine, system, overhead, timesBuilt, errorMsg) values"
                " (%s, 1, 0, %s, 0, %s, %s, %s, %s, 'x86_64-linux', %s, %s, %s)",
                (build, drv, status if status != 2 else 1, start, stop, machine, overhead,
                 1 if status == 0 else None, "error: builder failed" if status else None),
            )  # fmt: skip
            counts["steps"] += 1
            counts["failed"] += status != 0
            if i == 3:  # a cached failure step: a status, no time span
                c.execute(
                    "insert into BuildSteps (build, stepnr, type, drvPath, busy, status, machine,"
                    " system) values (%s, 2, 0, %s, 0, 8, '', 'x86_64-linux')",
                    (build, _drv("dep3", 3)),
                )
                counts["steps"] += 1
    return counts


@pytest.mark.parametrize("generation", ["cxx", "rust"])
def test_collect_db_and_analyze_on_the_real_schema_with_failed_builds(
    real_db: str, tmp_path: Path, generation: str
) -> None:
    _write_farm(real_db, generation)
    run = tmp_path / "run"
    done = subprocess.run(
        [*CMD, "collect", "db", "--pg", real_db, "--once", "--since", "1700000000",
         "--out", str(run)],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert f"generation {generation}" in done.stderr
    analyzed = subprocess.run(
        [*CMD, "analyze", str(run), "--format", "json", "--profiles", str(BENCH)],
        capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert analyzed.returncode == 0, analyzed.stderr
    assert "Traceback" not in analyzed.stderr
    doc = json.loads(analyzed.stdout)
    assert doc["generation"] == generation
    assert doc["steps"] >= 6  # the steps with a time span (propagated and cached ones have none)
    shares = doc["attribution"]
    assert all(isinstance(v, float) and v == v for v in shares.values()), shares
    assert abs(sum(shares.values()) - 1) < 1e-9
    assert doc["verdict"]["bottleneck"]
    failed = next(u for u in doc["use"] if u["resource"] == "builder slots")["errors"]
    assert failed >= 2  # the failed and the aborted step


def test_the_real_schema_has_every_column_the_testbed_and_collectors_use(
    real_db: str, pg_dsn: str
) -> None:
    """Our testbed DDL is a subset of Hydra's real tables, column by column and type by type,
    so what the testbed writes and `collect db` reads exists in a real Hydra database."""
    from profiler.testbed.db import HydraDb

    def columns(dsn: str) -> dict[tuple[str, str], str]:
        with psycopg.connect(dsn) as conn:
            rows = conn.execute(
                "select table_name, column_name, data_type from information_schema.columns"
                " where table_schema = 'public'"
            ).fetchall()
        return {(t, c): d for t, c, d in rows}

    real = columns(real_db)
    with fresh_database(pg_dsn) as ours_dsn:
        with HydraDb(ours_dsn) as db:
            db.create_schema()
        ours = columns(ours_dsn)
    assert ours, "the testbed created no tables"
    missing = {k: v for k, v in ours.items() if k not in real}
    assert not missing, f"testbed columns absent from Hydra's schema: {missing}"
    differ = {k: (v, real[k]) for k, v in ours.items() if real[k] != v}
    assert not differ, f"types differ from Hydra's schema: {differ}"


def test_the_rust_schema_says_system_status_is_no_longer_written() -> None:
    """hydra.sql at 14332fbf: 'The queue runner no longer writes status here'."""
    text = SCHEMA.read_text(encoding="utf-8")
    assert "no longer\n-- writes status here" in text or "no longer writes status here" in text
