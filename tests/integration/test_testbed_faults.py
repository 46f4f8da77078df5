"""The testbed under bad knobs and faults (reliability D15): every knob is checked before
anything runs (one line, exit 2); a thread of the emulator that dies fails the run (exit 1,
no truth.json), never exit 0 with a false truth; a PostgreSQL restart is survived."""

from __future__ import annotations

import json
import os
import socket
import threading
from pathlib import Path
from typing import Any

import psycopg
import pytest

from profiler.cli import main
from profiler.testbed import engine, workload
from profiler.testbed import run as testbed_run
from profiler.testbed.engine import Knobs
from profiler.testbed.pgserver import PostgresServer, find_pg_bindir
from profiler.testbed.run import run_testbed
from tests.conftest import STRICT

SMALL = ["testbed", "--steps", "2", "--machines", "1", "--max-jobs", "1", "--build-scale", "0.2"]


def one_line_error(capsys: pytest.CaptureFixture[str]) -> str:
    """The one error line (the testbed's progress lines aside); no traceback."""
    err = capsys.readouterr().err
    progress = ("testbed (an emulator", "step ")
    lines = [line for line in err.splitlines() if not line.startswith(progress)]
    assert len(lines) == 1 and lines[0].startswith("hydra-profiler: error: "), err
    assert "Traceback" not in err
    return lines[0]


@pytest.mark.parametrize(
    ("knob", "value"),
    [
        ("--dispatch-delay", "-1"),
        ("--dispatch-delay", "nan"),
        ("--dispatch-delay", "inf"),
        ("--build-scale", "-1"),
        ("--build-scale", "nan"),
        ("--build-scale", "inf"),
        ("--db-latency", "-1"),
        ("--db-latency", "1e400"),
        ("--local-workers", "0"),
        ("--local-workers", "-2"),
        ("--port", "99999"),
        ("--port", "-1"),
        ("--machines", "0"),
        ("--max-jobs", "0"),
        ("--steps", "0"),
        ("--retry", "-1"),
        ("--link", "0"),
        ("--upload", "nan"),
        ("--codec", "xz:19:threads=2"),
    ],
)
def test_bad_knobs_are_usage_errors_before_anything_runs(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], knob: str, value: str
) -> None:
    assert main([*SMALL, f"{knob}={value}", "--out", str(tmp_path / "tb")]) == 2
    line = one_line_error(capsys)
    assert knob in line or "level 19 out of range for xz" in line
    assert not (tmp_path / "tb").exists()


def _workload_file(tmp_path: Path, change: Any) -> Path:
    path = tmp_path / "w.json"
    workload.generate(3, seed=2).save(str(path))
    doc = json.loads(path.read_text())
    change(doc)
    path.write_text(json.dumps(doc))
    return path


def _set(path: list[Any], value: Any) -> Any:
    def change(doc: dict[str, Any]) -> None:
        target: Any = doc
        for key in path[:-1]:
            target = target[key]
        target[path[-1]] = value

    return change


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        (_set(["steps", 1, "build_seconds"], None), "step 1: 'build_seconds' is None"),
        (_set(["steps", 1, "build_seconds"], -1), "build_seconds -1.0"),
        (_set(["steps", 1, "deps"], None), "'deps' is None"),
        (_set(["steps", 0, "deps"], [2]), "deps must be indexes of earlier steps"),
        (_set(["steps", 2, "name"], None), "'name' is None"),
        (_set(["steps", 1, "output", "root"], "/no/such/root"), "is not a directory"),
        (_set(["steps", 1, "output", "budget_bytes"], None), "'budget_bytes' is None"),
        (_set(["steps"], []), "no steps"),
        (_set(["steps", 1, "system"], "riscv64-linux"), "the testbed's machines are"),
    ],
)
def test_workloads_with_nonsense_fields_are_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], change: Any, reason: str
) -> None:
    path = _workload_file(tmp_path, change)
    assert main(["testbed", "--workload", str(path), "--out", str(tmp_path / "tb")]) == 2
    line = one_line_error(capsys)
    assert "not a testbed workload" in line and reason in line
    assert not (tmp_path / "tb").exists()


def test_out_port_and_database_failures_are_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "file").write_text("x")
    assert main([*SMALL, "--out", str(tmp_path / "file")]) == 2
    assert "exists and is not a directory" in one_line_error(capsys)
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "mine.txt").write_text("x")
    assert main([*SMALL, "--out", str(tmp_path / "full")]) == 2
    assert "not a testbed run" in one_line_error(capsys)
    assert main([*SMALL, "--out", "/proc/tb"]) == 1
    assert "/proc/tb: cannot write" in one_line_error(capsys)
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        assert main([*SMALL, "--port", str(port), "--out", str(tmp_path / "p")]) == 1
    assert "Address already in use" in one_line_error(capsys)
    assert not (tmp_path / "p").exists()
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        dead = closed.getsockname()[1]  # nothing listens there once closed
    dsn = f"postgresql://hydra:s3cr3t@127.0.0.1:{dead}/hydra?connect_timeout=5"
    assert main([*SMALL, "--pg", dsn, "--out", str(tmp_path / "db")]) == 1
    line = one_line_error(capsys)
    assert "--pg: cannot connect" in line and "s3cr3t" not in line
    assert not (tmp_path / "db").exists()


def _boom(*_args: Any) -> None:
    raise RuntimeError("boom")


@pytest.mark.parametrize(
    ("where", "target", "name"),
    [
        ("the dispatcher", engine.Engine, "_dispatch_once"),
        ("step ", engine.Engine, "_closure_size"),
        ("the status snapshots", testbed_run, "_snapshot"),
    ],
)
def test_a_thread_that_dies_fails_the_run_without_a_truth(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    where: str,
    target: Any,
    name: str,
) -> None:
    out = tmp_path / "tb"
    out.mkdir()
    (out / "workload.json").write_text("{}")
    (out / "truth.json").write_text('{"an": "earlier run"}')  # must not pass for this run's
    monkeypatch.setattr(target, name, _boom)
    assert main([*SMALL, "--out", str(out)]) == 1
    line = one_line_error(capsys)
    assert f"testbed: {where}" in line and "RuntimeError: boom" in line and "void" in line
    assert not (out / "truth.json").exists()


def test_a_postgresql_restart_mid_run_is_survived(tmp_path: Path) -> None:
    bindir = find_pg_bindir()
    if bindir is None:
        if STRICT:
            pytest.fail("CI=true: PostgreSQL not installed")
        pytest.skip("PostgreSQL not installed (Debian package postgresql)")
    with PostgresServer(bindir) as server:
        first = threading.Event()
        result: dict[str, Any] = {}

        def progress(message: str) -> None:
            if message.startswith("step 1/"):
                first.set()

        def go() -> None:
            try:
                wl = workload.generate(4, seed=1, build_scale=0.3)
                knobs = Knobs("cxx", "compression=zstd", machines=1, max_jobs=1)
                result["truth"] = run_testbed(
                    wl, knobs, str(tmp_path / "tb"), pg_dsn=server.dsn, progress=progress
                )
            except BaseException as exc:
                result["error"] = exc

        runner = threading.Thread(target=go)
        runner.start()
        assert first.wait(60), "the first step never finished"
        server.shutdown()  # as an operator restarts it: every connection is dropped
        server.resume()
        runner.join(120)
        assert "error" not in result, result.get("error")
        assert len(result["truth"]["steps"]) == 4
        assert os.path.exists(tmp_path / "tb" / "truth.json")
        with psycopg.connect(server.dsn) as conn:
            done = conn.execute(
                "select count(*) filter (where busy = 0 and status = 0) from BuildSteps"
            ).fetchone()
            finished = conn.execute("select count(*) from Builds where finished = 1").fetchone()
        assert done == (4,) and finished == (4,)
