"""The history engine (DuckDB over a run's Parquet, out of core) against the in-memory
analysis on the same BuildSteps: equal to rounding, for both generations, whole runs and
windows, split across several batches; and its errors."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from typing import Any

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest

from profiler.analyze.analysis import Analysis, analyze, analyze_history
from profiler.analyze.history import Window
from profiler.bench.profiles import CodecProfile
from profiler.errors import ProfilerError
from profiler.testbed.history import ORIGIN, write_history

PROFILE = CodecProfile(
    codec="xz:6", seconds_per_byte=1 / 20e6, ratio=0.3, fixed_seconds=0.01, source="test"
)
YEAR = 365 * 86400.0


@pytest.fixture(scope="module", params=["cxx", "rust"])
def history(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> str:
    run = str(tmp_path_factory.mktemp("history") / request.param)
    write_history(run, 12_000, generation=request.param, seed=7, years=2.0, part_rows=5_000)
    return run


def _close(a: Any, b: Any, where: str) -> None:
    """Equal, floats to rounding (the engines sum in different orders)."""
    if isinstance(a, dict):
        assert set(a) == set(b), where
        for k in a:
            _close(a[k], b[k], f"{where}.{k}")
    elif isinstance(a, list):
        assert len(a) == len(b), where
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            _close(x, y, f"{where}[{i}]")
    elif isinstance(a, float) and isinstance(b, float):
        assert (math.isnan(a) and math.isnan(b)) or a == pytest.approx(b, rel=1e-9, abs=1e-9), where
    else:
        assert a == b, where


def _same(memory: Analysis, history: Analysis) -> None:
    m, h = memory.as_dict(), history.as_dict()
    assert (m.pop("engine"), h.pop("engine")) == ("memory", "history")
    notes = h["coverage"]["notes"]
    assert notes[-1].startswith("history engine (DuckDB, out of core)")
    h["coverage"]["notes"] = notes[:-1]
    _close(m, h, "analysis")
    for name in ("by_machine", "by_system", "by_jobset", "by_window"):
        pd.testing.assert_frame_equal(
            getattr(memory, name), getattr(history, name), check_dtype=False, rtol=1e-9
        )
    assert memory.verdict.bottleneck == history.verdict.bottleneck
    assert memory.verdict.evidence == history.verdict.evidence


def test_history_engine_equals_the_memory_engine(history: str) -> None:
    memory = analyze(history, profile=PROFILE, codec="xz:6", runner_cores=4, window_seconds=86400)
    out = analyze_history(
        history, profile=PROFILE, codec="xz:6", runner_cores=4, window_seconds=86400,
        batch_rows=2_500,  # several batches: the split's whole-table facts carry across them
    )  # fmt: skip
    _same(memory, out)
    assert out.attribution.steps == 12_000  # the ten rows exported twice count once
    assert any("10 repeated step row(s)" in n for n in out.attribution.notes)
    assert out.attribution.shares["compression"] > 0  # NAR sizes from Builds were split
    # retried attempts' back-off is scheduling, per step, as in memory
    assert out.attribution.seconds["scheduling"] > 0
    assert out.steps.empty and len(out.by_window) > 300


def test_a_window_selects_the_steps_that_stopped_in_it(history: str) -> None:
    window = Window(ORIGIN + 0.5 * YEAR, ORIGIN + 0.75 * YEAR)
    memory = analyze(history, profile=PROFILE, codec="xz:6", runner_cores=4, window=window)
    out = analyze_history(history, profile=PROFILE, codec="xz:6", runner_cores=4, window=window)
    _same(memory, out)
    rows = pq.ParquetDataset(os.path.join(history, "tables", "db_steps")).read().to_pandas()
    rows = rows.drop_duplicates(["build", "stepnr"])
    inside = (rows["stop_time"] >= window.since) & (rows["stop_time"] < window.until)
    assert out.attribution.steps == int(inside.sum()) > 1000


def test_errors_are_one_line(tmp_path: Any, history: str) -> None:
    empty = str(tmp_path / "empty")
    write_history(empty, 10, repeated=0)
    os.rename(os.path.join(empty, "tables", "db_steps"), os.path.join(empty, "tables", "x"))
    with pytest.raises(ProfilerError, match="no db_steps table"):
        analyze_history(empty, profile=PROFILE)
    with pytest.raises(ProfilerError, match="no BuildSteps rows in steps that stopped in"):
        analyze_history(history, profile=PROFILE, window=Window(0.0, 1.0))


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "profiler", *args], capture_output=True, text=True, timeout=300
    )


def test_analyze_command_history_engine(history: str) -> None:
    since = "2022-03-01T00:00:00"
    done = _cli(
        "analyze", history, "--engine", "history", "--codec", "xz:6", "--since", since,
        "--until", "2022-09-01", "--format", "json", "--whatif", "codec=zstd:3",
        "--memory-limit", "256MB",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    doc = json.loads(done.stdout)
    assert doc["engine"] == "history" and doc["steps"] > 1000
    assert "history: done" in done.stderr and "split" in done.stderr  # progress
    assert "replays every step" in doc["whatif"][0]["error"]
    ends = [r["group"] for r in doc["by_machine"]]
    assert ends == sorted(ends)
    bad = _cli("analyze", history, "--since", "2023-01-01", "--until", "2022-01-01")
    assert bad.returncode == 2 and "--until must be after --since" in bad.stderr
    assert len(bad.stderr.strip().splitlines()) == 1


def test_auto_engine_picks_by_size(history: str, monkeypatch: pytest.MonkeyPatch) -> None:
    from profiler.scenarios import analysis as scenario

    assert scenario.pick_engine(history, "auto") == "memory"
    monkeypatch.setattr(scenario, "HISTORY_AUTO_ROWS", 1000)
    assert scenario.pick_engine(history, "auto") == "history"
    assert np.isfinite(scenario.HISTORY_AUTO_ROWS)


def test_the_split_on_a_dask_local_cluster_equals_one_process(history: str) -> None:
    """Two worker processes split the step partitions (each reads its own Parquet files);
    the analysis equals the in-memory one on the same steps."""
    from profiler.analyze.cluster import client_for, on_cluster

    memory = analyze(history, profile=PROFILE, codec="xz:6", runner_cores=4, window_seconds=86400)
    seen: list[str] = []
    with client_for(None, 2) as client:
        assert len(client.scheduler_info()["workers"]) == 2
        out = analyze_history(
            history, profile=PROFILE, codec="xz:6", runner_cores=4, window_seconds=86400,
            batch_rows=2_500, splitter=on_cluster(client), progress=seen.append,
        )  # fmt: skip
    _same(memory, out)
    split_lines = [s for s in seen if s.startswith("split ")]
    assert len(split_lines) >= 2 and "on 2 Dask worker(s)" in split_lines[-1]
    assert split_lines[-1].startswith("split 12,000/12,000 steps")


def test_report_takes_a_window_and_refuses_a_whole_long_history(
    history: str, tmp_path: Any, monkeypatch: pytest.MonkeyPatch, capsys: Any
) -> None:
    from profiler.cli import main
    from profiler.scenarios import analysis as scenario

    out = str(tmp_path / "r.md")
    args = ["report", history, "--codec", "xz:6", "--runner-cores", "4", "-o", out]
    assert main([*args, "--since", "2022-06-01", "--until", "2022-07-01"]) == 0
    with open(out, encoding="utf-8") as f:
        text = f.read()
    steps = analyze(
        history, profile=PROFILE, window=Window(1654041600.0, 1656633600.0)
    ).attribution.steps
    assert f"{steps:,}" in text or str(steps) in text
    monkeypatch.setattr(scenario, "HISTORY_AUTO_ROWS", 1000)
    capsys.readouterr()
    assert main(args) == 2
    err = capsys.readouterr().err.strip()
    assert "holds more than 1,000 BuildSteps rows" in err and len(err.splitlines()) == 1
