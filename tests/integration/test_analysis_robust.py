"""No traceback from `analyze` or `report` on any run the collectors can write.

A real observed testbed run (database, tracker, journal, status, metrics) is cut down the way
real runs are partial: tables missing, rows lost, columns NULL (failed builds, old schemas),
one sample only, times shifted. Hypothesis draws the cuts; every run must give an answer or a
one-line error (exit 1), never a traceback, and never `nan` in the prose.
"""

from __future__ import annotations

import io
import json
import math
import shutil
from contextlib import redirect_stderr, redirect_stdout
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from profiler.cli import main
from profiler.scenarios.observe import observed_run
from profiler.store import Run, read_run
from profiler.testbed import workload
from profiler.testbed.engine import Knobs

TABLES = ("db_steps", "db_builds", "db_phases", "log_events", "samples")
NULLABLE = (
    "start_time", "stop_time", "machine", "system", "status", "overhead_ms", "size_bytes",
    "nar_bytes", "value", "ts", "drv_path", "event", "busy", "ms", "compressed_percent",
    "jobset", "path",
)  # fmt: skip


@pytest.fixture(scope="module")
def base(tmp_path_factory: pytest.TempPathFactory, pg_dsn: str) -> dict[str, pd.DataFrame]:
    """The tables of one small observed C++ run with failures (and of a Rust one, keyed
    ``rust:<table>``)."""
    from tests.conftest import fresh_database

    out: dict[str, pd.DataFrame] = {}
    for gen in ("cxx", "rust"):
        wl = workload.generate(8, seed=11, build_scale=0.15)
        knobs = Knobs(gen, "zstd:3", local_workers=1 if gen == "cxx" else None,
                      fail_steps=workload.failing_leaves(wl, 1, 11))  # fmt: skip
        with fresh_database(pg_dsn) as dsn:
            tmp = tmp_path_factory.mktemp(f"base-{gen}")
            observed = observed_run(wl, knobs, str(tmp), pg_dsn=dsn)
        reader = read_run(observed.run_dir)
        for name in reader.tables():
            if name in TABLES:
                out[f"{gen}:{name}"] = reader.table(name)
    return out


@st.composite
def cuts(draw: st.DrawFn) -> dict[str, Any]:
    return {
        "generation": draw(st.sampled_from(("cxx", "rust"))),
        "tables": draw(st.sets(st.sampled_from(TABLES))),
        "keep": draw(st.sampled_from((1.0, 0.5, 0.1, 0.0))),
        "one_row": draw(st.booleans()),
        "nulls": draw(st.lists(st.sampled_from(NULLABLE), max_size=3)),
        "shift": draw(st.sampled_from((0.0, -3600.0, 1e6))),
        "seed": draw(st.integers(0, 2**16)),
    }


def write_cut(base: dict[str, pd.DataFrame], cut: dict[str, Any], path: Path) -> str:
    if path.exists():
        shutil.rmtree(path)
    with Run.open(str(path)) as run:
        for name in cut["tables"]:
            df = base.get(f"{cut['generation']}:{name}")
            if df is None or df.empty:
                continue
            df = df.sample(frac=cut["keep"], random_state=cut["seed"]) if cut["keep"] < 1 else df
            if cut["one_row"]:
                df = df.head(1)
            df = df.copy()
            for column in cut["nulls"]:
                if column in df:
                    df[column] = None
            for column in ("ts", "start_time", "stop_time", "start_ts", "end_ts"):
                if column in df and cut["shift"]:
                    df[column] = pd.to_numeric(df[column], errors="coerce") + cut["shift"]
            writer = run.writer(name)
            for row in df.to_dict(orient="records"):
                writer.append({str(k): _clean(v) for k, v in row.items()})
    return str(path)


def _clean(v: Any) -> Any:
    if isinstance(v, float) and not math.isfinite(v):
        return None
    if hasattr(v, "item"):
        return v.item()
    return v


def run_cli(*args: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with redirect_stdout(out), redirect_stderr(err):
        code = main(list(args))
    return code, out.getvalue(), err.getvalue()


def check_answer(code: int, out: str, err: str) -> None:
    if code != 0:
        assert code == 1 and len(err.strip().splitlines()) == 1, err
        assert err.startswith("hydra-profiler: error: ")
        return
    doc = json.loads(out)
    prose = " ".join(doc["verdict"]["evidence"]) + " " + doc["verdict"]["summary"]
    assert " nan" not in prose.lower() and "n/a" not in prose, prose
    assert doc["verdict"]["bottleneck"]
    for w in doc["whatif"]:
        assert "error" in w or "projection" in w


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(cut=cuts())
def test_analyze_answers_or_refuses_in_one_line(
    base: dict[str, pd.DataFrame], tmp_path: Path, cut: dict[str, Any]
) -> None:
    run = write_cut(base, cut, tmp_path / "run")
    code, out, err = run_cli(
        "analyze", run, "--codec", "zstd:3", "--format", "json",
        "--whatif", "compress=0.5", "--whatif", "workers=4", "--whatif", "codec=xz:6",
    )  # fmt: skip
    check_answer(code, out, err)


@settings(
    max_examples=6, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(cut=cuts())
def test_report_renders_or_refuses_in_one_line(
    base: dict[str, pd.DataFrame], tmp_path: Path, cut: dict[str, Any]
) -> None:
    run = write_cut(base, cut, tmp_path / "run")
    code, _, err = run_cli(
        "report", run, "--codec", "zstd:3", "--out", str(tmp_path / "r.html"),
        "--trace", str(tmp_path / "t.json"),
    )  # fmt: skip
    if code != 0:
        assert code == 1 and err.strip().splitlines()[-1].startswith("hydra-profiler: error: ")
    else:
        assert " nan " not in (tmp_path / "r.html").read_text(encoding="utf-8").lower()
