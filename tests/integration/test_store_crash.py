"""The run store under real processes: concurrent writers, SIGKILL, and the export command."""

from __future__ import annotations

import io
import json
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pandas as pd
import pytest

from profiler.store import Run, read_run

ROOT = Path(__file__).resolve().parents[2]
CMD = [sys.executable, "-m", "profiler"]

WRITER = textwrap.dedent(
    """
    import os, sys, time
    from profiler.store import Run

    path, k, go = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    while not os.path.exists(go):  # start both writers at the same moment
        time.sleep(0.001)
    run = Run.open(path, command=f"writer {k} --password hunter{k}")
    index = run.add_source("test", f"https://u:hunter{k}@h/?token=t{k}", None)
    with run.writer("records", max_segment_bytes=16 * 1024) as w:
        for i in range(3000):
            w.append({"writer": k, "i": i})
            if i % 150 == 0:
                run.note(f"writer {k} at {i}")
    run.end_source(index)
    run.close()
    """
)

APPENDER = textwrap.dedent(
    """
    import sys, time
    from profiler.store import Run

    run = Run.open(sys.argv[1], command="appender")
    run.add_source("test", "file:///dev/null", None)
    gen = int(sys.argv[2])
    with run.writer("events", max_segment_bytes=64 * 1024) as w:
        n = 0
        while True:
            w.append({"gen": gen, "i": n, "ts": time.time(), "pad": "x" * (n % 37)})
            n += 1
            if n % 1000 == 0:
                print(n, flush=True)
    """
)


def test_two_processes_write_into_one_run(tmp_path: Path) -> None:
    run_dir, go = tmp_path / "run", tmp_path / "go"
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", WRITER, str(run_dir), str(k), str(go)],
            cwd=ROOT,
            stderr=subprocess.PIPE,
            text=True,
        )
        for k in (1, 2)
    ]
    time.sleep(0.3)
    go.touch()
    for proc in procs:
        _, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err
    reader = read_run(run_dir)
    assert reader.warnings == []
    df = reader.table("records")
    for k in (1, 2):
        assert df[df["writer"] == k]["i"].tolist() == list(range(3000))
    doc = reader.manifest
    assert sorted(s["command"] for s in doc["sources"]) == [
        "writer 1 --password ***",
        "writer 2 --password ***",
    ]
    assert {s["pid"] for s in doc["sources"]} == {p.pid for p in procs}
    assert all(s["ended_utc"] for s in doc["sources"])
    assert len(doc["notes"]) == 2 * 20  # no read-modify-write of the manifest was lost
    assert "hunter" not in (run_dir / "manifest.json").read_text()


def _kill_after(run_dir: Path, gen: int, counts: int) -> tuple[int, int]:
    """Start an appender, let it report ``counts`` times, SIGKILL it; (last count, pid)."""
    proc = subprocess.Popen(
        [sys.executable, "-c", APPENDER, str(run_dir), str(gen)],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    seen = 0
    for _ in range(counts):
        line = proc.stdout.readline()
        if not line:
            proc.kill()
            pytest.fail(f"appender died: {proc.communicate()[1]}")
        seen = int(line)
    time.sleep(0.002 * gen)  # let it run on a little: the kill lands mid-stream
    proc.send_signal(signal.SIGKILL)
    proc.communicate(timeout=30)
    assert proc.returncode == -signal.SIGKILL
    return seen, proc.pid


def test_sigkill_at_any_moment_keeps_the_run_readable_and_appendable(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    for gen, counts in enumerate((2, 7, 23)):
        seen, pid = _kill_after(run_dir, gen, counts)
        reader = read_run(run_dir)
        events = reader.table("events")
        mine = events[events["gen"] == gen]
        assert len(mine) >= seen
        assert mine["i"].tolist() == list(range(len(mine)))  # no gap, no duplicate
        assert events["ts"].dtype == "float64"
        damaged = [w for w in reader.warnings if f"-{pid}-" in w]
        assert len(damaged) <= 1
        assert all("skipped a partial last record" in w for w in reader.warnings)
        with Run.open(run_dir, command="after the kill") as run, run.writer("events") as w:
            w.append({"gen": gen, "i": -1, "after_kill": True})
        again = read_run(run_dir).table("events")
        assert len(again) == len(events) + 1
        assert again[again["gen"] == gen]["i"].tolist() == [*range(len(mine)), -1]
    assert len(read_run(run_dir).manifest["sources"]) == 3


# --- hydra-profiler export ------------------------------------------------------------------

RECORDS = [
    {"ts": 1700000000.5, "metric": "steps_done_total", "value": 7, "machine": None},
    {"ts": 1700000030, "metric": "nar_write_bytes", "value": float("nan"), "labels": {"a": 1}},
    {"ts": 1700000060.25, "metric": "uptime_seconds", "value": 3.5, "machine": "büilder-1"},
]


@pytest.fixture
def run_dir(tmp_path: Path) -> Path:
    with Run.open(tmp_path / "run", command="test") as run, run.writer("samples") as w:
        for record in RECORDS:
            w.append(record)
    return tmp_path / "run"


def export(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*CMD, "export", *map(str, args)], capture_output=True, text=True, cwd=ROOT, timeout=120
    )


def test_export_csv_to_stdout_and_to_a_file(run_dir: Path, tmp_path: Path) -> None:
    done = export(run_dir, "samples", "--format", "csv")
    assert done.returncode == 0 and done.stderr == ""
    df = pd.read_csv(io.StringIO(done.stdout))
    assert list(df.columns) == ["ts", "metric", "value", "machine", "labels"]
    assert df["ts"].tolist() == [1700000000.5, 1700000030.0, 1700000060.25]
    assert df["machine"].tolist()[2] == "büilder-1"
    assert json.loads(df["labels"][1]) == {"a": 1}
    out = tmp_path / "samples.csv"
    assert export(run_dir, "samples", "-o", out).stdout == ""
    assert out.read_text() == done.stdout


def test_export_json_is_an_array_of_records_with_nulls(run_dir: Path) -> None:
    done = export(run_dir, "samples", "--format", "json")
    assert done.returncode == 0, done.stderr
    rows = json.loads(done.stdout)
    assert rows == [
        {**RECORDS[0], "value": 7.0, "labels": None},
        {**RECORDS[1], "ts": 1700000030.0, "value": None, "machine": None, "labels": '{"a": 1}'},
        {**RECORDS[2], "labels": None},
    ]


def test_export_parquet_needs_an_output_file(run_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "samples.parquet"
    done = export(run_dir, "samples", "--format", "parquet", "-o", out)
    assert done.returncode == 0 and done.stdout == "", done.stderr
    pd.testing.assert_frame_equal(pd.read_parquet(out), read_run(run_dir).table("samples"))
    refused = export(run_dir, "samples", "--format", "parquet")
    assert refused.returncode == 2
    assert refused.stderr == (
        "hydra-profiler: error: --format parquet needs -o FILE (Parquet is binary)\n"
    )


def test_export_unknown_table_is_one_line_listing_the_tables(run_dir: Path) -> None:
    done = export(run_dir, "steps", "--format", "csv")
    assert done.returncode == 1 and done.stdout == ""
    assert done.stderr == (
        f"hydra-profiler: error: {run_dir}: no table 'steps' (tables: samples)\n"
    )


def test_export_of_a_missing_run_names_it(tmp_path: Path) -> None:
    done = export(tmp_path / "nope", "samples")
    assert done.returncode == 1
    assert done.stderr == (
        f"hydra-profiler: error: {tmp_path}/nope: not a hydra-profiler run (no manifest.json)\n"
    )


def test_export_reports_damaged_lines_on_stderr(run_dir: Path) -> None:
    [segment] = (run_dir / "tables" / "samples").glob("*.jsonl")
    with segment.open("a") as f:
        f.write('{"ts": 17000')
    done = export(run_dir, "samples", "--format", "json")
    assert done.returncode == 0 and len(json.loads(done.stdout)) == 3
    assert "skipped a partial last record (crash during write)" in done.stderr


def test_export_help_has_examples() -> None:
    done = subprocess.run([*CMD, "export", "--help"], capture_output=True, text=True, cwd=ROOT)
    assert done.returncode == 0
    assert "examples:" in done.stdout and "hydra-profiler export run/" in done.stdout
