"""What real farms do and the emulator now does too: builds that fail. The runner marks the
build failed and writes no sizes; the journals say so in each generation's words; collectors
and the analysis take the run without a traceback and count the failures."""

from __future__ import annotations

import itertools
import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import psycopg
import pytest

from profiler.collect.journal.parse import parse_file
from profiler.testbed import workload
from profiler.testbed.engine import Knobs
from profiler.testbed.run import run_testbed

CMD = [sys.executable, "-m", "profiler"]
BENCH = Path(__file__).resolve().parents[1] / "data" / "bench-v1"


def _collect_and_analyze(run: Path, tb: Path, *more: list[str]) -> dict[str, Any]:
    """Collect the testbed's journals (and ``more`` collectors) into ``run``; analyse it."""
    logs = ["collect", "logs", *(f"--file={p}" for p in tb.glob("*.journal.txt"))]
    for argv in (*more, logs):
        done = subprocess.run(
            [*CMD, *argv, "--out", str(run)], capture_output=True, text=True, timeout=120
        )
        assert done.returncode == 0, done.stderr
    done = subprocess.run(
        [*CMD, "analyze", str(run), "--format", "json", "--profiles", str(BENCH)],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    doc: dict[str, Any] = json.loads(done.stdout)
    return doc


@pytest.mark.parametrize("generation", ["cxx", "rust"])
def test_failed_builds_end_to_end(tmp_path: Path, db_dsn: str, generation: str) -> None:
    wl = workload.generate(8, seed=5, build_scale=0.2)
    failing = workload.failing_leaves(wl, 2, seed=5)
    assert len(failing) == 2
    tb = tmp_path / "tb"
    truth = run_testbed(
        wl, Knobs(generation, "compression=zstd", fail_steps=failing), str(tb), pg_dsn=db_dsn
    )
    failed_truth = {s["build_id"] for s in truth["steps"] if s["status"] == 1}
    assert {s["index"] for s in truth["steps"] if s["status"] == 1} == set(failing)
    assert abs(sum(truth["attribution"].values()) - 1) < 1e-9
    with psycopg.connect(db_dsn) as conn:
        rows = conn.execute(
            "select id, buildStatus, size, closureSize from Builds order by id"
        ).fetchall()
        steps = conn.execute("select build, status, errorMsg from BuildSteps").fetchall()
    for build, status, size, closure in rows:
        if build in failed_truth:
            assert (status, size, closure) == (1, None, None)  # no sizes for failures
        else:
            assert status == 0 and size and closure
    assert {b for b, status, _ in steps if status == 1} == failed_truth
    assert all(msg for _, status, msg in steps if status == 1)
    # the journals say it in each generation's words, and the parser reads them
    if generation == "cxx":
        events, summary = parse_file(str(tb / "hydra-queue-runner.journal.txt"), year=2026)
        assert {e["build_id"] for e in events if e["event"] == "build_failed"} == failed_truth
    else:
        events, summary = parse_file(str(tb / "hydra-queue-runner-dev.journal.txt"), year=2026)
        assert {e["build_id"] for e in events if e["event"] == "build_failed"} == failed_truth
        assert sum(e["event"] == "job_removed" for e in events) == 2
        builder = [
            e
            for p in tb.glob("hydra-queue-builder-dev-*.journal.txt")
            for e in parse_file(str(p), year=2026)[0]
        ]
        assert sum(e["event"] == "build_step_failed" for e in builder) == 2
    assert summary.understood == summary.lines
    # collectors and the analysis take the run
    db = ["collect", "db", "--pg", db_dsn, "--once", "--since", "1700000000"]
    doc = _collect_and_analyze(tmp_path / "run", tb, db)
    failed = next(u for u in doc["use"] if u["resource"] == "builder slots")["errors"]
    assert failed == 2
    assert abs(sum(doc["attribution"].values()) - 1) < 1e-9


def test_rust_direct_uploads_compress_on_the_runner_after_the_step(tmp_path: Path) -> None:
    """Direct mode (no presigned URLs): the builder streams the NAR to the runner and the
    runner's uploader task compresses and uploads it afterwards (hydra 14332fbf
    hydra-builder/src/state.rs:1027-1062, hydra-queue-runner/src/state/uploader.rs)."""
    wl = workload.generate(5, seed=3, build_scale=0.2)
    tb = tmp_path / "tb"
    interval = sys.getswitchinterval()
    truth = run_testbed(wl, Knobs("rust", "compression=zstd", upload_mode="direct"), str(tb))
    assert sys.getswitchinterval() == interval  # shortened for the run only (Engine.run)
    phases = {p["phase"] for s in truth["steps"] for p in s["phases"]}
    assert "compressing" not in phases  # the step does not compress
    assert len(list((tb / "cache").glob("*.narinfo"))) == len(wl.steps)
    runner, _ = parse_file(str(tb / "hydra-queue-runner-dev.journal.txt"), year=2026)
    assert sum(e["event"] == "runner_upload_finished" for e in runner) == len(wl.steps)
    builder = [
        e
        for p in tb.glob("hydra-queue-builder-dev-*.journal.txt")
        for e in parse_file(str(p), year=2026)[0]
    ]
    modes = {e["mode"] for e in builder if e["event"] == "upload_finished"}
    assert modes == {"direct"}
    doc = _collect_and_analyze(tmp_path / "run", tb)
    assert doc["upload_mode"] == "direct" and "direct" in doc["upload_mode_source"]


def test_a_rust_builder_under_pressure_takes_no_work(tmp_path: Path) -> None:
    """machineFreeFn DynamicWithMaxJobLimit (production): a builder whose CPU PSI is over its
    threshold says hasCapacity false and gets no job although its slots are free (hydra
    14332fbf state/machine.rs:731-780, state/queue.rs:472); the analysis sees the gate."""
    wl = workload.generate(6, seed=2, build_scale=0.3)
    tb = tmp_path / "tb"
    knobs = Knobs("rust", "compression=zstd", machines=2, max_jobs=2, pressure_machines=1)
    truth = run_testbed(wl, knobs, str(tb), snapshot_seconds=0.2)
    assert {s["machine"] for s in truth["steps"]} == {"builder-2"}
    docs = [json.loads(p.read_text()) for p in sorted((tb / "status").glob("*.json"))]
    gated = docs[len(docs) // 2]["machines"]["builder-1"]
    assert gated["hasCapacity"] is False and gated["hasStaticCapacity"] is True
    assert gated["stats"]["pressure"]["cpuSome"]["avg10"] > gated["cpuPsiThreshold"]
    run = tmp_path / "run"
    status = ["collect", "status", "--file", str(tb / "status")]
    doc = _collect_and_analyze(run, tb, status)
    [line] = [e for e in doc["verdict"]["evidence"] if "hasCapacity false" in e]
    share = int(re.search(r"(\d+)% of the time", line).group(1))  # type: ignore[union-attr]
    assert share > 0, line  # steps waited while builder-1's slots were free


@pytest.mark.parametrize("generation", ["cxx", "rust"])
def test_a_transient_failure_is_retried_after_a_back_off(
    tmp_path: Path, db_dsn: str, generation: str
) -> None:
    """The first attempt fails transiently: its row ends aborted (status 3) with the error,
    the runner logs the failure and the retry (C++ builder.cc:261, :63; Rust state/mod.rs
    :2224, :2256), and the step runs again under a new step number after the back-off."""
    wl = workload.generate(5, seed=3, build_scale=0.2)
    knobs = Knobs(generation, "compression=zstd", retry_steps=frozenset({0}), retry_seconds=0.3)
    tb = tmp_path / "tb"
    truth = run_testbed(wl, knobs, str(tb), pg_dsn=db_dsn)
    step = next(s for s in truth["steps"] if s["index"] == 0)
    phases = [p["phase"] for p in step["phases"]]
    assert "retry-wait" in phases and phases.count("building") == 2
    assert abs(sum(truth["attribution"].values()) - 1) < 1e-9
    with psycopg.connect(db_dsn) as conn:
        rows = conn.execute(
            "select stepnr, status, errorMsg from BuildSteps where build = %s order by stepnr",
            (step["build_id"],),
        ).fetchall()
    assert [(nr, status) for nr, status, _ in rows] == [(1, 3), (2, 0)]
    assert rows[0][2]
    unit = "hydra-queue-runner" if generation == "cxx" else "hydra-queue-runner-dev"
    events, summary = parse_file(str(tb / f"{unit}.journal.txt"), year=2026)
    assert sum(e["event"] == "retry" for e in events) == 1
    assert summary.understood == summary.lines
    db = ["collect", "db", "--pg", db_dsn, "--once", "--since", "1700000000"]
    doc = _collect_and_analyze(tmp_path / "run", tb, db)
    assert doc["steps"] == len(wl.steps) + 1  # the aborted attempt is a step row of its own


def test_rust_steps_building_counts_a_step_from_dispatch_to_its_end(tmp_path: Path) -> None:
    """The Rust runner adds to steps_building when a dispatch succeeds and takes it off in
    track_build_success/failure (hydra 14332fbf state/mod.rs:1180, metrics.rs:1191, :1200):
    a step uploading its NAR still counts, unlike C++'s nrStepsBuilding."""
    from datetime import datetime

    wl = workload.generate(4, seed=9, build_scale=0.1, size_scale=2.0)
    knobs = Knobs("rust", "compression=zstd", upload_bytes_per_second=2_000_000)
    tb = tmp_path / "tb"
    truth = run_testbed(wl, knobs, str(tb), snapshot_seconds=0.05)
    seen = []
    for path in sorted((tb / "status").glob("*.json")):
        doc = json.loads(path.read_text())["queueRunner"]
        at = datetime.fromisoformat(doc["time"].replace("Z", "+00:00")).timestamp()
        seen.append((at, doc["nrStepsBuilding"]))
    phases = [p for s in truth["steps"] for p in s["phases"]]
    building = [(p["start"], p["end"]) for p in phases if p["phase"] == "building"]
    quiet = [  # uploads while no step was in its build phase
        (p["start"] + 0.05, p["end"] - 0.05)
        for p in phases
        if p["phase"] == "uploading"
        and not any(x < p["end"] and y > p["start"] for x, y in building)
    ]
    during = [n for at, n in seen if any(a < at < b for a, b in quiet)]
    assert during, "some snapshot fell in an upload that ran while nothing built"
    assert min(during) >= 1
    assert seen[-1][1] == 0  # every step taken off at its end


def test_cxx_post_processing_reads_narinfos_not_the_nar(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """C++ getBuildOutput computes the closure size from narinfos and re-reads a NAR only
    when its members were not captured during the copy (hydra f17273f3
    build-result.cc:19-42, build-remote.cc:308): a NAR is read back from the cache only as
    some later step's input (exportPaths from the destination store), once per dependant."""
    from collections import Counter

    from profiler.testbed.cache import BinaryCache

    reads: Counter[str] = Counter()
    infos: Counter[str] = Counter()
    read_nar, query = BinaryCache.read_nar, BinaryCache.query_path_info

    def counting_read(self: BinaryCache, path: str) -> tuple[bytes, int]:
        reads[path] += 1
        return read_nar(self, path)

    def counting_query(self: BinaryCache, path: str) -> int:
        infos[path] += 1
        return query(self, path)

    monkeypatch.setattr(BinaryCache, "read_nar", counting_read)
    monkeypatch.setattr(BinaryCache, "query_path_info", counting_query)
    wl = workload.generate(6, seed=3, build_scale=0.05)
    run_testbed(wl, Knobs("cxx", "xz:6"), str(tmp_path / "tb"))
    dependants = Counter(wl.steps[d].output.path for s in wl.steps for d in s.deps)
    assert reads == dependants
    assert all(infos[s.output.path] >= 1 for s in wl.steps)  # each step's own narinfo


def test_cxx_active_db_updates_count_startdbupdate_transactions_only(tmp_path: Path) -> None:
    """nrActiveDbUpdates counts the transactions made under startDbUpdate: creating a step
    and finishing it with its builds (hydra f17273f3 builder.cc:195, :327-337), not
    updateStep's busy transitions (builder.cc:201-205). With 80 ms a write, the gauge's
    integral is two writes a step, not seven."""
    wl = workload.generate(6, seed=4, build_scale=0.1)
    latency = 0.08
    tb = tmp_path / "tb"
    truth = run_testbed(wl, Knobs("cxx", "zstd:1", db_latency_seconds=latency), str(tb),
                        snapshot_seconds=0.01)  # fmt: skip
    # C++ documents carry whole seconds: the files' write times place the snapshots
    seen = [
        (path.stat().st_mtime, json.loads(path.read_text())["nrActiveDbUpdates"])
        for path in sorted((tb / "status").glob("*.json"))
    ]
    integral = sum(v * (t2 - t1) for (t1, v), (t2, _) in itertools.pairwise(seen))
    expected = 2 * len(truth["steps"]) * latency
    assert 0.6 * expected < integral < 1.5 * expected, (integral, expected)
