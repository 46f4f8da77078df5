"""The analysis on small hand-made runs: the step table's joins and semantics, the copy split,
the queue integral, verdict signatures, what-if parsing, release reconstruction, the CLI."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from profiler.analyze import whatif
from profiler.analyze.analysis import analyze, queued
from profiler.analyze.attribution import ASSUMED_LINK_BYTES_PER_SECOND, attribute, split_copy
from profiler.analyze.gauges import queue_estimate, queue_increments
from profiler.analyze.journal_steps import store_name
from profiler.analyze.schema import QUEUED_GROUP, StepTable
from profiler.analyze.simulate import SimConfig, replay
from profiler.analyze.steps import build_step_table
from profiler.analyze.verdict import Pressure, decide, pressure
from profiler.bench.profiles import CodecProfile
from profiler.errors import ProfilerError, UsageError
from profiler.report.terminal import sentence
from profiler.store import Run, read_run

T0 = 1_795_900_000.0
H = "0c2zv5rr4qy3c8rqd4s1dw8dbg8wfrqn"
PROFILE = CodecProfile("xz:6", 1e-6, 0.25, "test")  # 1 MB/s


def drv(name: str) -> str:
    return f"/nix/store/{H}-{name}.drv"


def phase_rows(build: int, t: float, phases: list[tuple[str, float]]) -> list[dict[str, Any]]:
    rows = []
    for name, seconds in phases:
        rows.append(
            {
                "build": build,
                "stepnr": 1,
                "phase": name,
                "start_ts": t,
                "end_ts": t + seconds,
                "resolution_seconds": 0.1,
                "machine": "ssh://b1",
                "system": "x86_64-linux",
                "gap": False,
            }
        )
        t += seconds
    return rows


def write_run(path: Path, tables: dict[str, list[dict[str, Any]]]) -> str:
    with Run.open(str(path)) as run:
        for name, rows in tables.items():
            writer = run.writer(name)
            for row in rows:
                writer.append(row)
    return str(path)


def cxx_run(tmp: Path, *, with_phases: bool = True, runnable: list[float] | None = None) -> str:
    phases = [
        ("preparing", 0.5),
        ("connecting", 1.0),
        ("sending-inputs", 2.0),
        ("building", 10.0),
        ("waiting-for-local-slot", 3.0),
        ("receiving-outputs", 6.0),
        ("post-processing", 0.5),
    ]
    tables: dict[str, list[dict[str, Any]]] = {
        "db_steps": [
            {
                "build": 1,
                "stepnr": 1,
                "drv_path": drv("hello-2.12"),
                "machine": "ssh://b1",
                "system": "x86_64-linux",
                "status": 0,
                "start_time": T0 + 3,
                "stop_time": T0 + 13,
                "overhead_ms": 8000,
                "generation": "cxx",
            },
        ],
        "db_builds": [
            {
                "build": 1,
                "project": "nixpkgs",
                "jobset": "trunk",
                "job": "hello",
                "drv_path": drv("hello-2.12"),
                "size_bytes": 3_000_000,
            },
        ],
        "log_events": [
            {
                "ts": T0 + 21,
                "event": "output_copied",
                "path": f"/nix/store/{H}-hello-2.12",
                "nar_bytes": 2_000_000,
                "compressed_percent": 75.0,
                "ms": 4000,
                "generation": "cxx",
            },
        ],
    }
    if with_phases:
        tables["db_phases"] = phase_rows(1, T0, phases)
    if runnable is not None:
        tables["samples"] = [
            {"ts": T0 - 10 + i, "metric": "steps_runnable", "value": v, "generation": "cxx"}
            for i, v in enumerate(runnable)
        ]
    return write_run(tmp / "run", tables)


def test_store_name() -> None:
    assert store_name(drv("hello-2.12")) == "hello-2.12"
    assert store_name(f"/nix/store/{H}-hello-2.12") == "hello-2.12"
    assert store_name("hello") is None and store_name(None) is None


def test_tracker_steps_with_journal_sizes_and_a_split_copy(tmp_path: Path) -> None:
    table = build_step_table(read_run(cxx_run(tmp_path)))
    assert table.generation == "cxx"
    row = table.steps.iloc[0]
    # each phase seen holds the next phase's row update at its end: one write, the busy-1
    # span (0.5 s), moved to database time (preparing with the slot held, post after)
    assert (row["prepare_s"], row["connect_s"], row["send_s"], row["build_s"]) == (
        2.5, 0.5, 1.5, 9.5,
    )  # fmt: skip
    assert (row["slot_wait_s"], row["copy_s"], row["post_s"]) == (2.5, 5.5, 1.0)
    assert "post" in table.estimated and any("phase update" in n for n in table.notes)
    assert row["nar_bytes"] == 2_000_000  # the journal's, not Builds.size
    assert row["compressed_bytes"] == 500_000 and row["pipeline_s"] == 4.0
    assert row["jobset"] == "nixpkgs:trunk"
    steps = split_copy(table, PROFILE)
    s = steps.iloc[0]
    # compression = 2 MB x 1 us/B = 2 s of the 4 s pipeline; the receive at the assumed
    # 1 Gbit/s takes 0.016 s; the unexplained rest (1.984 s) is shared by per-byte costs
    # (1 us vs 8 ns a byte: 99% compression); upload = copy (less its write) - pipeline
    receive = 2e6 / ASSUMED_LINK_BYTES_PER_SECOND
    share = 1e-6 / (1e-6 + 1 / ASSUMED_LINK_BYTES_PER_SECOND)
    compress = 2.0 + (4.0 - 2.0 - receive) * share
    assert s["compress_s"] == pytest.approx(compress) and s["upload_s"] == 1.5
    assert s["receive_s"] == pytest.approx(4.0 - compress)
    assert s["compression_s"] == pytest.approx(2.5 + compress) and s["post_total_s"] == 3.5
    assert s["io_s"] == pytest.approx(1.5 + 1.5 + 4.0 - compress)
    assert s["wall_s"] == pytest.approx(23.0)
    assert s["slot_s"] == pytest.approx(16.5)  # C++: the slot is given back after the wait
    att = attribute(table, steps)
    assert sum(att.shares.values()) == pytest.approx(1.0)
    assert att.shares["build"] == pytest.approx(9.5 / 23)
    assert att.estimated["compression"] and not att.estimated["build"]
    no_profile = split_copy(table, None)
    assert no_profile.iloc[0]["compress_s"] == 0.0
    assert "not separated" in no_profile.iloc[0]["compress_source"]


def test_rust_base_name_store_paths_join_the_database_s_full_paths(tmp_path: Path) -> None:
    """The Rust runner prints store paths as base names (harmonia StorePath Display); the
    database holds /nix/store/... paths: the journal's lines must still re-time the tracked
    step. Rust logs "Submitting build" after creating the row (hydra 14332fbf
    state/mod.rs:1094-1133): the line does not widen the step, and an earlier attempt's
    line (a retry) is not taken for this row's start."""
    phases = phase_rows(1, T0 + 2, [("connecting", 1.0), ("building", 5.0)])
    base = f"{H}-hello-2.12.drv"
    common = {"drv": base, "build_id": 1, "hostname": "b1", "host": "hydra", "generation": "rust"}
    tables: dict[str, list[dict[str, Any]]] = {
        "db_phases": phases,
        "db_steps": [
            {"build": 1, "stepnr": 1, "drv_path": drv("hello-2.12"), "machine": "b1",
             "system": "x86_64-linux", "status": 0, "start_time": T0 + 2, "stop_time": T0 + 8,
             "overhead_ms": None, "generation": "rust"},
        ],
        "log_events": [
            # another attempt's dispatch, before this row existed
            {**common, "ts": T0 + 0.5, "event": "dispatch", "step_nr": 0},
            {**common, "ts": T0 + 2.05, "event": "dispatch", "step_nr": 1},
            {**common, "ts": T0 + 2.5, "event": "build_started"},
            {**common, "ts": T0 + 7.5, "event": "build_finished"},
            {**common, "ts": T0 + 7.9, "event": "job_done"},
        ],
    }  # fmt: skip
    table = build_step_table(read_run(write_run(tmp_path / "r", tables)))
    row = table.steps.iloc[0]
    assert row["timing_source"] == "tracker+journal"
    assert row["start_ts"] == pytest.approx(T0 + 2)
    assert row["prepare_s"] == pytest.approx(0.05)
    assert row["connect_s"] == pytest.approx(0.45)
    assert row["build_s"] == pytest.approx(5.0)
    assert store_name(f"{H}-hello-2.12.drv") == store_name(drv("hello-2.12")) == "hello-2.12"


def test_queue_integral_includes_the_queue_before_the_first_step(tmp_path: Path) -> None:
    # samples from T0-10 every second: 2 runnable for 10 s before the step starts, then 0
    run = cxx_run(tmp_path, runnable=[2.0] * 10 + [0.0] * 30)
    table = build_step_table(read_run(run))
    assert table.queue_seconds == pytest.approx(20.0)
    assert "integral" in table.queue_source
    att = attribute(table, split_copy(table, PROFILE))
    assert att.seconds["scheduling"] == pytest.approx(20.5)  # + connecting less a write
    assert att.estimated["scheduling"]


def test_rust_queue_wait_is_the_job_wait_histogram_not_the_queue_insert_counter() -> None:
    """Rust: job_wait_time_seconds (runnable -> dispatch, observed at dispatch) is the wait
    for a machine; machine_type_wait_time (runnable -> queue insertion) is not
    (hydra 14332fbf hydra-queue-runner/src/state/queue.rs:71-83 and :514-515)."""
    rows = [
        # the queue-insertion counter grows a lot: it must not be taken as the wait
        *({"ts": t, "metric": "machine_type_queue_insert_wait_seconds_total",
           "machine_type": "x86_64-linux", "value": v} for t, v in ((1.0, 0.0), (3.0, 500.0))),
        # histogram sums per machine type, with a runner restart (counter drops) for aarch64
        *({"ts": t, "metric": "job_wait_seconds_sum", "machine_type": "x86_64-linux",
           "value": v} for t, v in ((1.0, 4.0), (2.0, 9.0), (3.0, 12.5))),
        *({"ts": t, "metric": "job_wait_seconds_sum", "machine_type": "aarch64-linux",
           "value": v} for t, v in ((1.0, 10.0), (2.0, 1.0), (3.0, 3.0))),
    ]  # fmt: skip
    total, how = queue_estimate(pd.DataFrame(rows), "rust", (0.0, 10.0))
    assert total == pytest.approx(8.5 + 1.0 + 2.0)
    assert "job_wait_time_seconds" in how
    # over time and per system: each interval's increase at its start, labelled
    waits, _ = queue_increments(pd.DataFrame(rows), "rust", (0.0, 10.0))
    per = waits.groupby(["machine_type", "ts"])["seconds"].sum().to_dict()
    assert per == {("x86_64-linux", 1.0): 5.0, ("x86_64-linux", 2.0): 3.5,
                   ("aarch64-linux", 1.0): 1.0, ("aarch64-linux", 2.0): 2.0}  # fmt: skip
    table = StepTable(pd.DataFrame(), "rust", total, how, queue_waits=waits)
    assert queued(table, by_system=True).groupby(level=0).sum().to_dict() == {
        "x86_64-linux": 8.5, "aarch64-linux": 3.0}  # fmt: skip
    assert queued(table).to_dict() == {QUEUED_GROUP: total}
    assert queued(StepTable(pd.DataFrame(), "rust")) is None  # not observed: no row


def test_cxx_queue_wait_is_shared_by_the_runnable_count_per_machine_type() -> None:
    """C++: nrRunnableSteps integrated, each interval shared by machineTypes.<t>.runnable
    (types are system:features, hydra a40d4286 queue-monitor.cc:520-527); an interval whose
    per-type counts are all 0 stays unlabelled, and by system it is a row of its own."""
    rows = []
    for t, total, big, plain in ((0.0, 4, 1, 3), (2.0, 2, 0, 0), (4.0, 0, 0, 0)):
        rows.append({"ts": t, "metric": "steps_runnable", "value": total, "machine_type": None})
        rows += [
            {"ts": t, "metric": "machine_type_runnable", "value": big,
             "machine_type": "x86_64-linux:big-parallel"},
            {"ts": t, "metric": "machine_type_runnable", "value": plain,
             "machine_type": "aarch64-linux"},
        ]  # fmt: skip
    waits, _ = queue_increments(pd.DataFrame(rows), "cxx", (0.0, 4.0))
    assert waits["seconds"].sum() == pytest.approx(4 * 2 + 2 * 2)
    labelled = waits.groupby(waits["machine_type"].fillna("-"))["seconds"].sum().to_dict()
    assert labelled == {"x86_64-linux:big-parallel": 2.0, "aarch64-linux": 6.0, "-": 4.0}
    table = StepTable(pd.DataFrame(), "cxx", 12.0, "", queue_waits=waits)
    by_system = queued(table, by_system=True).groupby(level=0).sum().to_dict()
    assert by_system == {"x86_64-linux": 2.0, "aarch64-linux": 6.0, QUEUED_GROUP: 4.0}


def test_rust_runnable_gauge_counts_building_steps() -> None:
    """Without the histogram, Rust waiting = runnable - building (the runnable flag is never
    cleared on dispatch: state/step.rs:451, :659); C++ runnable is waiting as it is."""
    rows = []
    for i, (runnable, building) in enumerate([(5, 5), (5, 5), (7, 5), (7, 5), (5, 5)]):
        rows.append({"ts": float(i), "metric": "steps_runnable", "value": runnable})
        rows.append({"ts": float(i), "metric": "steps_building", "value": building})
    samples = pd.DataFrame(rows)
    total, how = queue_estimate(samples, "rust", (0.0, 4.0))
    assert total == pytest.approx(4.0) and "minus building" in how
    cxx_total, _ = queue_estimate(samples, "cxx", (0.0, 4.0))
    assert cxx_total == pytest.approx(24.0)


def test_db_only_steps_follow_each_generations_semantics(tmp_path: Path) -> None:
    table = build_step_table(read_run(cxx_run(tmp_path, with_phases=False)))
    row = table.steps.iloc[0]
    assert row["timing_source"] == "db"
    assert (row["build_s"], row["copy_s"]) == (10.0, 8.0)  # C++: stop-start = build
    assert any("without tracker phases" in n for n in table.notes)
    rust = write_run(
        tmp_path / "rust",
        {
            "db_steps": [
                {
                    "build": 1,
                    "stepnr": 1,
                    "drv_path": drv("x-1"),
                    "machine": "b1",
                    "system": "x86_64-linux",
                    "start_time": T0,
                    "stop_time": T0 + 30,
                    "overhead_ms": 12000,
                    "generation": "rust",
                }
            ]
        },
    )
    r = build_step_table(read_run(rust)).steps.iloc[0]
    assert (r["build_s"], r["copy_s"]) == (18.0, 12.0)  # Rust: stop-start = whole step


def test_a_run_without_steps_is_a_one_line_error(tmp_path: Path) -> None:
    empty = write_run(tmp_path / "e", {"samples": [{"ts": T0, "metric": "up", "value": 1.0}]})
    with pytest.raises(ProfilerError, match="no build steps in the run"):
        analyze(empty)
    with pytest.raises(ProfilerError, match="no such run directory"):
        analyze(str(tmp_path / "missing"))


def _pressure_samples(runnable: list[float], jobs: list[float]) -> pd.DataFrame:
    rows = []
    for i, (r, j) in enumerate(zip(runnable, jobs, strict=True)):
        rows.append({"ts": float(i), "metric": "steps_runnable", "value": r})
        rows.append({"ts": float(i), "metric": "machine_current_jobs", "machine": "m", "value": j})
        rows.append({"ts": float(i), "metric": "machine_max_jobs", "machine": "m", "value": 4.0})
    return pd.DataFrame(rows)


def test_pressure_time_shares() -> None:
    p = pressure(_pressure_samples([0, 3, 3, 3], [1, 1, 4, 4]), (0, 10), None)
    assert p.capacity == 4
    assert p.runnable_share == pytest.approx(0.75)
    assert p.runnable_free_share == pytest.approx(0.25)
    assert p.runnable_full_share == pytest.approx(0.5)
    assert p.slot_busy_share == pytest.approx(10 / 16)


def test_rust_free_slots_are_gated_by_has_capacity() -> None:
    """A Rust builder under CPU pressure reports hasCapacity false with slots free, and the
    dispatcher gives it nothing (hydra 14332fbf state/machine.rs:762, state/queue.rs:472):
    steps waiting then are waiting for capacity, not for the dispatcher."""
    samples = _pressure_samples([3, 3, 3, 3], [1, 1, 1, 1])
    building = [{"ts": float(i), "metric": "steps_building", "value": 1.0} for i in range(4)]
    gate = [
        {"ts": float(i), "metric": "machine_has_capacity", "machine": "m", "value": v}
        for i, v in enumerate([1.0, 0.0, 0.0, 0.0])
    ]
    samples = pd.concat([samples, pd.DataFrame(building + gate)], ignore_index=True)
    by_slots = pressure(samples, (0, 10), None, "cxx")
    assert by_slots.runnable_free_share == pytest.approx(1.0)
    rust = pressure(samples, (0, 10), None, "rust")
    assert rust.runnable_share == pytest.approx(1.0)  # 3 runnable - 1 building = 2 waiting
    assert rust.runnable_free_share == pytest.approx(0.25)
    assert rust.runnable_full_share == pytest.approx(0.75)
    assert rust.pressure_gated_share == pytest.approx(0.75)
    assert "hasCapacity" in rust.free_from


def test_verdict_signatures(tmp_path: Path) -> None:
    table = build_step_table(read_run(cxx_run(tmp_path, runnable=[5.0] * 40)))
    steps = split_copy(table, PROFILE)
    att = attribute(table, steps)
    free = Pressure(samples=10, interval_s=1, runnable_share=0.9, runnable_free_share=0.9,
                    runnable_full_share=0.0, slot_busy_share=0.2, capacity=4)  # fmt: skip
    assert decide(att, steps, "cxx", free).bottleneck == "scheduling"
    full = Pressure(samples=10, interval_s=1, runnable_share=0.9, runnable_free_share=0.0,
                    runnable_full_share=0.9, slot_busy_share=1.0, capacity=4)  # fmt: skip
    v = decide(att, steps, "cxx", full)
    assert v.bottleneck == "builder-capacity"  # the slots are held mostly building
    assert 0 < v.confidence <= 1 and any("slot" in e for e in v.evidence)
    quiet = Pressure(samples=10, interval_s=1, runnable_share=0.0, runnable_free_share=0.0,
                     runnable_full_share=0.0, slot_busy_share=0.05, capacity=4,
                     download_wait_share=0.0)  # fmt: skip
    idle_steps = steps.assign(slot_wait_s=0.0, compression_s=0.0)
    idle_att = attribute(table, idle_steps)
    idle_att.shares.update(scheduling=0.05, io=0.1, compression=0.0, build=0.8, post=0.05)
    idle_att.queue_seconds = 0.0  # as the quiet samples say
    idle = decide(idle_att, idle_steps, "cxx", quiet)
    assert idle.bottleneck == "idle"
    assert idle.throughput["saturated"] is False and idle.latency["cause"] == "build"
    assert idle.summary() == "not saturated; latency: build"
    slow_io = attribute(table, idle_steps)
    slow_io.queue_seconds = 0.0
    slow_io.shares.update(scheduling=0.05, io=0.39, compression=0.0, build=0.5, post=0.06)
    v = decide(slow_io, idle_steps, "cxx", quiet)  # an idle farm whose steps upload 39%
    assert (v.bottleneck, v.summary()) == ("io", "not saturated; latency: io")
    assert v.as_dict()["basis"] == "latency"


def test_parse_change() -> None:
    assert whatif.parse_change("codec=zstd:19").value == "zstd:19"
    assert whatif.parse_change("compress=0.8").value == 0.8
    assert whatif.parse_change("workers=8").value == 8
    assert whatif.parse_change("machines=+2").value == ("+", 2)
    assert whatif.parse_change("upload=100MB/s").value == 100e6
    assert whatif.parse_change("upload=1Gbit/s").value == 125e6
    for bad, why in [
        ("codec", "expected KEY=VALUE"),
        ("speed=2", "unknown change 'speed'"),
        ("machines=lots", "machines=lots"),
        ("codec=lz4", "codec=lz4"),
    ]:
        with pytest.raises(UsageError, match=why):
            whatif.parse_change(bad)


def test_release_times_invert_the_runnable_gauge(tmp_path: Path) -> None:
    """Three steps dispatched at 10, 11 and 20 s; the gauge said 2 runnable from 2 s and 1
    from 5 s: so two were released by 2 s and the third by 5 s."""

    class A:
        generation = "cxx"
        pressure = Pressure(interval_s=1.0)
        steps = pd.DataFrame({"start_ts": [10.0, 11.0, 20.0]})
        pressure_series = (
            np.arange(0.0, 25.0),
            np.array([0, 0, 2, 2, 2, 3, 3, 3, 3, 3, 3, 2] + [1] * 9 + [0] * 4, dtype=float),
        )

    releases = whatif.release_times(A())  # type: ignore[arg-type]
    assert releases.times.tolist() == [1.5, 1.5, 4.5]
    assert "gauge" in releases.source
    assert releases.resolution_s == 1.0


def test_cli_json_keys_and_one_line_errors(tmp_path: Path) -> None:
    run = cxx_run(tmp_path, runnable=[1.0] * 40)
    bench = str(Path(__file__).parent.parent / "data" / "bench-v1")  # xz:6 and zstd:3
    cmd = [sys.executable, "-m", "profiler", "analyze", run, "--profiles", bench]
    done = subprocess.run([*cmd, "--format", "json"], capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
    doc = json.loads(done.stdout)
    assert set(doc["verdict"]) >= {"bottleneck", "confidence", "evidence"}
    assert doc["verdict"]["bottleneck"] in (
        "compression",
        "io",
        "scheduling",
        "database",
        "builder-capacity",
        "idle",
    )
    assert set(doc["attribution"]) == {"scheduling", "io", "compression", "build", "post"}
    assert sum(doc["attribution"].values()) == pytest.approx(1.0)
    table = subprocess.run(cmd, capture_output=True, text=True, check=False)
    assert table.stdout.startswith("Bottleneck: ")
    bad = subprocess.run([*cmd, "--whatif", "speed=2"], capture_output=True, text=True, check=False)
    assert bad.returncode == 2
    assert bad.returncode == 2
    assert len(bad.stderr.strip().splitlines()) == 1 and "unknown change" in bad.stderr


def test_release_times_with_a_single_gauge_sample_are_the_dispatch_times() -> None:
    class A:
        generation = "cxx"
        pressure = Pressure(interval_s=float("nan"))
        steps = pd.DataFrame({"start_ts": [10.0, 11.0]})
        pressure_series = (np.array([5.0]), np.array([2.0]))

    releases = whatif.release_times(A())  # type: ignore[arg-type]
    assert releases.times.tolist() == [10.0, 11.0]
    assert releases.resolution_s == 0.0 and "dispatch" in releases.source


def test_absent_is_not_zero_observed_and_no_nan_in_prose(tmp_path: Path) -> None:
    """A run without status samples cannot see the queue wait: scheduling is partial, the
    evidence says what is not observed, and no 'nan' or 'n/a' reaches the prose."""
    a = analyze(cxx_run(tmp_path, with_phases=False), codec="xz:6")
    assert a.attribution.how("scheduling") == "partial: queue wait not observed"
    prose = " ".join(a.verdict.evidence)
    assert "nan" not in prose and "n/a" not in prose
    assert "not observed" in prose
    assert "scheduling" in sentence(a) and "(partial)" in sentence(a)


def test_a_retry_is_released_after_its_back_off_not_with_its_first_attempt() -> None:
    """Both generations count a step waiting out its retry back-off among the runnable, so
    the inverted gauge releases the retry with the first wave; the replay must not start it
    before the back-off ends (it did, and a codec what-if then credited the codec with the
    back-off's end moving)."""

    class A:
        generation = "rust"
        pressure = Pressure(interval_s=1.0)
        steps = pd.DataFrame(
            {
                "step": ["1/1", "2/1", "1/2"],
                "machine": ["m1", "m2", "m1"],
                "system": "x86_64-linux",
                "start_ts": [0.0, 0.0, 10.0],
                "end_ts": [2.0, 3.0, 12.0],
                "build_s": [2.0, 3.0, 2.0],
                "retry_wait_s": [0.0, 0.0, 8.0],
                "compressed_bytes": np.nan,
                "nar_bytes": np.nan,
            }
        )
        # three runnable from the start (the retry counted while backing off)
        pressure_series = (np.arange(0.0, 14.0), np.array([3.0] + [1.0] * 10 + [0.0] * 3))

    out = whatif.sim_steps(A())  # type: ignore[arg-type]
    assert out.attrs["retries"] == 1
    assert out["release_ts"].tolist()[:2] == [-0.5, -0.5]
    assert out["release_ts"].tolist()[2] == 10.0
    assert out["deps"].tolist()[2] == []
    config = SimConfig(generation="rust", machines={"m1": (1, ("x86_64-linux",)),
                                                    "m2": (1, ("x86_64-linux",))})  # fmt: skip
    replayed = replay(out, config).result.steps
    assert replayed["dispatch_ts"].tolist()[2] == 10.0
