"""How the step table places phase boundaries the tracker saw late, fills phases it missed,
takes the journal's microsecond lines over the tracker's polls (Rust), and counts retries."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from profiler.analyze.attribution import split_copy
from profiler.analyze.steps import build_step_table, retry_waits
from profiler.store import read_run
from tests.unit.test_analyze import write_run

T0 = 1_795_900_000.0
H = "0c2zv5rr4qy3c8rqd4s1dw8dbg8wfrqn"


def near(x: float) -> Any:
    """Equal to 10 us (epoch seconds as floats hold about a microsecond)."""
    return pytest.approx(x, abs=1e-5)


def drv(name: str) -> str:
    return f"/nix/store/{H}-{name}.drv"


def tracked(
    build: int, stepnr: int, phases: list[tuple[str, float, str, float, str, float]]
) -> list[dict[str, Any]]:
    """(phase, start, start_obs, start_err, end_obs, end_err) with each phase ending where the
    next starts; the last phase's entry gives the end in its own row via ``end``."""
    rows = []
    for i, (phase, start, s_obs, s_err, e_obs, e_err) in enumerate(phases[:-1]):
        end = phases[i + 1][1]
        rows.append(
            {"build": build, "stepnr": stepnr, "phase": phase, "start_ts": T0 + start,
             "end_ts": T0 + end, "start_obs": s_obs, "end_obs": e_obs, "start_err_s": s_err,
             "end_err_s": e_err, "resolution_seconds": 0.1, "machine": "b1",
             "system": "x86_64-linux", "gap": False}
        )  # fmt: skip
    return rows


def db_step(build: int, stepnr: int, name: str, gen: str, **extra: Any) -> dict[str, Any]:
    row = {"build": build, "stepnr": stepnr, "drv_path": drv(name), "machine": "b1",
           "system": "x86_64-linux", "status": 0, "start_time": T0, "stop_time": T0 + 1,
           "overhead_ms": None, "generation": gen}  # fmt: skip
    row.update(extra)
    return row


def one_cxx_step(tmp_path: Path, phases: list[tuple[str, float, str, float, str, float]]) -> Any:
    """The step table row of a one-step C++ run whose tracker saw ``phases``."""
    tables = {"db_phases": tracked(1, 1, phases), "db_steps": [db_step(1, 1, "a", "cxx")]}
    return build_step_table(read_run(write_run(tmp_path / "r", tables))).steps.iloc[0]


def test_a_transition_seen_at_a_poll_is_placed_mid_window(tmp_path: Path) -> None:
    """The tracker saw 'building' at the poll at 0.3 s, 0.1 s after the poll before: the
    transition is estimated at 0.25 s, not 0.3 s (which lengthened every first phase)."""
    row = one_cxx_step(tmp_path, [
        ("connecting", 0.0, "notify", 0.0, "poll", 0.1),
        ("building", 0.3, "poll", 0.1, "notify", 0.0),
        ("end", 1.0, "", 0.0, "", 0.0),
    ])  # fmt: skip
    assert row["connect_s"] == near(0.25)
    assert row["build_s"] == near(0.75)
    assert row["end_ts"] - row["start_ts"] == near(1.0)  # the step keeps its span


def test_post_processing_missed_after_receiving_outputs_gets_half_the_window(
    tmp_path: Path,
) -> None:
    """The step ended (notification) 0.08 s after the last poll that still saw
    receiving-outputs: post-processing, the only phase after it, ran in between."""
    row = one_cxx_step(tmp_path, [
        ("building", 0.0, "notify", 0.0, "poll", 0.1),
        ("receiving-outputs", 0.5, "poll", 0.1, "notify", 0.08),
        ("end", 0.9, "", 0.0, "", 0.0),
    ])  # fmt: skip
    assert row["post_s"] == near(0.04)
    assert row["copy_s"] == near(0.9 - 0.45 - 0.04)
    assert row["build_s"] == near(0.45)


def _rust_lines(
    name: str, at: dict[str, float], elapsed: float, build: int = 1
) -> list[dict[str, Any]]:
    base = f"{H}-{name}.drv"
    common = {"drv": base, "build_id": build, "step_nr": 1, "hostname": "b1",
              "generation": "rust"}  # fmt: skip
    rows = [
        {**common, "ts": T0 + at["dispatch"], "event": "dispatch", "host": "hydra"},
        {**common, "ts": T0 + at["building"], "event": "build_started", "host": "b1"},
        {**common, "ts": T0 + at["built"], "event": "build_finished", "host": "b1"},
        {
            **common,
            "ts": T0 + at["built"] + elapsed + 0.001,
            "event": "upload_finished",
            "host": "b1",
            "elapsed": elapsed,
            "mode": "presigned",
        },
        {**common, "ts": T0 + at["done"], "event": "job_done", "host": "hydra"},
    ]
    return rows


def test_rust_tracked_steps_take_the_journal_s_microsecond_lines(tmp_path: Path) -> None:
    """A 0.4 s Rust step polled every 0.1 s: the tracker saw preparing then building then
    post-processing; the journal brackets the dispatch, the build, the upload it missed, and
    BuildSteps.overhead (import + upload ms) gives the import inside the build span."""
    phases = tracked(1, 1, [
        ("preparing", 0.0005, "notify", 0.0, "poll", 0.1),
        ("building", 0.1, "poll", 0.1, "poll", 0.1),
        ("post-processing", 0.3, "poll", 0.1, "notify", 0.0),
        ("end", 0.4, "", 0.0, "", 0.0),
    ])  # fmt: skip
    lines = _rust_lines("curl-8", {"dispatch": 0.0002, "building": 0.05, "built": 0.2,
                                   "done": 0.399}, elapsed=0.06)  # fmt: skip
    run = write_run(tmp_path / "r", {
        "db_phases": phases,
        "db_steps": [db_step(1, 1, "curl-8", "rust", overhead_ms=80)],
        "log_events": lines,
    })  # fmt: skip
    table = build_step_table(read_run(run))
    row = table.steps.iloc[0]
    assert row["timing_source"] == "tracker+journal"
    assert row["start_ts"] == near(T0 + 0.0002)
    assert row["connect_s"] == near(0.0498)  # dispatch -> the builder got the job
    assert row["send_s"] == near(0.02)  # import = 80 ms overhead - 60 ms upload
    assert row["build_s"] == near(0.15 - 0.02)
    assert row["copy_s"] == near(0.06)
    assert row["post_s"] == near(0.4 - 0.0002 - 0.0498 - 0.15 - 0.06)
    assert any("re-timed from the journal" in n for n in table.notes)


def test_rust_journal_in_whole_seconds_does_not_override_the_tracker(tmp_path: Path) -> None:
    phases = tracked(1, 1, [
        ("preparing", 0.0, "notify", 0.0, "poll", 0.1),
        ("building", 1.0, "poll", 0.1, "notify", 0.0),
        ("end", 3.0, "", 0.0, "", 0.0),
    ])  # fmt: skip
    lines = _rust_lines("curl-8", {"dispatch": 0.0, "building": 1.0, "built": 2.0,
                                   "done": 3.0}, elapsed=0.0)  # fmt: skip
    lines[3]["ts"] = T0 + 2.0
    run = write_run(tmp_path / "r", {
        "db_phases": phases, "db_steps": [db_step(1, 1, "curl-8", "rust")],
        "log_events": lines,
    })  # fmt: skip
    row = build_step_table(read_run(run)).steps.iloc[0]
    assert row["timing_source"] == "tracker"


def test_a_retried_step_waits_its_back_off_as_scheduling(tmp_path: Path) -> None:
    """Attempt 1 fails (aborted, status 3) at 2 s; attempt 2 starts at 5 s: 3 s of back-off
    in scheduling. The journal's start line of attempt 2 must not be attempt 1's (it once
    stretched attempt 2 back to the first line), and the build's success line widens only
    its last step."""
    phases = [
        *tracked(1, 1, [("building", 0.0, "notify", 0.0, "notify", 0.0),
                        ("end", 2.0, "", 0.0, "", 0.0)]),
        *tracked(1, 2, [("building", 5.0, "notify", 0.0, "poll", 0.0),
                        ("post-processing", 7.0, "poll", 0.0, "notify", 0.0),
                        ("end", 7.5, "", 0.0, "", 0.0)]),
    ]  # fmt: skip
    lines = [
        {"ts": T0 - 0.2, "event": "step_started", "drv": drv("a"), "build_id": 1,
         "generation": "cxx"},
        {"ts": T0 + 4.9, "event": "step_started", "drv": drv("a"), "build_id": 1,
         "generation": "cxx"},
        {"ts": T0 + 7.6, "event": "build_succeeded", "drv": drv("a"), "build_id": 1,
         "generation": "cxx"},
    ]  # fmt: skip
    builds = [{"build": 1, "project": "p", "jobset": "j", "job": "a", "drv_path": drv("a")}]
    run = write_run(tmp_path / "r", {
        "db_phases": phases,
        "db_steps": [db_step(1, 1, "a", "cxx", status=3), db_step(1, 2, "a", "cxx")],
        "db_builds": builds, "log_events": lines,
    })  # fmt: skip
    table = build_step_table(read_run(run))
    s = table.steps.set_index("stepnr")
    assert s.loc[1, "start_ts"] == near(T0 - 0.2)
    assert s.loc[1, "end_ts"] == near(T0 + 2.0)  # not widened to the success line
    assert s.loc[2, "start_ts"] == near(T0 + 4.9)  # its own start line
    assert s.loc[2, "end_ts"] == near(T0 + 7.6)
    assert s.loc[2, "retry_wait_s"] == near(2.9)
    assert split_copy(table, None).set_index("stepnr").loc[2, "scheduling_s"] == near(2.9)


def test_retry_waits_only_after_a_failed_attempt() -> None:
    steps = pd.DataFrame({
        "drv_path": ["a", "a", "b", "b", "c"],
        "status": [3, 0, 0, 0, 1],
        "start_ts": [0.0, 5.0, 0.0, 9.0, 0.0],
        "end_ts": [2.0, 7.0, 1.0, 10.0, 1.0],
    })  # fmt: skip
    wait, retried = retry_waits(steps)
    assert wait.tolist() == [0.0, 3.0, 0.0, 0.0, 0.0]  # b's second run followed a success
    assert retried.tolist() == [True, False, False, False, False]
    # rows without a drv (a string column with missing values, as Parquet gives it back)
    # are never paired, with each other or anything (they once broke the sort)
    steps["drv_path"] = pd.array([None, "a", None, "a", None], dtype="string")
    wait, retried = retry_waits(steps)
    assert wait.tolist() == [0.0, 0.0, 0.0, 0.0, 0.0] and not retried.any()


def test_rust_job_wait_less_the_retried_attempt_and_its_back_off(tmp_path: Path) -> None:
    """Rust observes a retried step's job wait from the job's runnable_since, kept across the
    retry (14332fbf state/queue.rs:514): the histogram holds the failed attempt and the
    back-off, which the table counts per step; the queue total must not count them again."""
    phases = [
        *tracked(1, 1, [("building", 0.0, "notify", 0.0, "notify", 0.0),
                        ("end", 2.0, "", 0.0, "", 0.0)]),
        *tracked(1, 2, [("building", 5.0, "notify", 0.0, "notify", 0.0),
                        ("end", 7.0, "", 0.0, "", 0.0)]),
    ]  # fmt: skip
    # job wait: 1 s before attempt 1, then 1 + 2 + 3 = 6 s at attempt 2's dispatch
    samples = [
        {
            "ts": T0 + t,
            "metric": "job_wait_seconds_sum",
            "machine_type": "x86_64-linux",
            "value": v,
            "generation": "rust",
        }
        for t, v in ((-2, 0.0), (8, 7.0))
    ]
    run = write_run(tmp_path / "r", {
        "db_phases": phases,
        "db_steps": [db_step(1, 1, "a", "rust", status=3), db_step(1, 2, "a", "rust")],
        "samples": samples,
    })  # fmt: skip
    table = build_step_table(read_run(run))
    assert table.queue_seconds == near(7.0 - 3.0 - 2.0)
    assert "retries" in table.queue_source


def test_rust_journal_steps_take_the_import_out_of_the_build_span(tmp_path: Path) -> None:
    """Without the database the Rust builder's ``Building`` line (job received, before the
    import) starts the build span; the builder's import counter gives the import back to
    I/O, shared by the machine's steps in proportion to their spans."""
    lines = [
        *_rust_lines("a-1", {"dispatch": 0.0, "building": 0.01, "built": 0.11, "done": 0.2},
                     elapsed=0.02),
        *_rust_lines("b-1", {"dispatch": 1.0, "building": 1.01, "built": 1.31, "done": 1.4},
                     elapsed=0.02, build=2),
    ]  # fmt: skip
    samples = [
        {"ts": T0 + t, "metric": "machine_step_import_seconds_total", "machine": "b1",
         "value": v, "generation": "rust"} for t, v in ((-1.0, 3.0), (2.0, 3.05))
    ]  # fmt: skip
    run = write_run(tmp_path / "r", {"log_events": lines, "samples": samples})
    table = build_step_table(read_run(run))
    s = table.steps.sort_values("start_ts")
    assert s["send_s"].tolist() == [near(0.0125), near(0.0375)]
    assert s["build_s"].tolist() == [near(0.1 - 0.0125), near(0.3 - 0.0375)]
    assert {"build", "io"} <= table.estimated
    assert any("import counters" in n for n in table.notes)


def test_rust_journal_failed_build_ends_at_the_builder_s_failure_line(tmp_path: Path) -> None:
    """A failed Rust job has no "Finished building" line: the builder logs "Build of {drv}
    failed with: ..." when its build process fails (hydra 14332fbf
    subprojects/hydra-builder/src/state.rs:310), which ends its build span; the time after
    it is the runner's (it was all taken as post-processing)."""
    common = {"drv": f"{H}-bad-1.drv", "build_id": "uuid-9", "step_nr": 1, "hostname": "b1",
              "generation": "rust"}  # fmt: skip
    lines = [
        {**common, "ts": T0, "event": "dispatch", "host": "hydra"},
        {**common, "ts": T0 + 0.05, "event": "build_started", "host": "b1"},
        {**common, "ts": T0 + 2.05, "event": "build_step_failed", "host": "b1"},
        {**common, "ts": T0 + 2.1, "event": "job_removed", "host": "hydra"},
    ]
    table = build_step_table(read_run(write_run(tmp_path / "r", {"log_events": lines})))
    step = table.steps.iloc[0]
    assert step["status"] == 1
    assert step["build_s"] == near(2.0)
    assert step["post_s"] == near(0.05)


def _rust_farm(prep_s: float, row_s: float, n: int = 10) -> dict[str, list[dict[str, Any]]]:
    """``n`` Rust steps one after another on one machine, journal + counters + gauges: each
    is dispatched at 2k (the slot taken, startTime stamped), logs "Submitting build"
    ``prep_s`` later, stops ("marking job as done") at 2k + 1, and the machine drops the job
    ``row_s`` after that (the step row's write)."""
    lines: list[dict[str, Any]] = []
    for k in range(n):
        t = 2.0 * k
        lines += _rust_lines(f"s{k}-1", {"dispatch": t + prep_s, "building": t + 0.3,
                                         "built": t + 0.8, "done": t + 1.0},
                             elapsed=0.05, build=k + 1)  # fmt: skip
    samples = []
    for i in range(int(2 * n / 0.05) + 2):
        t = -0.5 + i * 0.05
        stopped = [k for k in range(n) if 2.0 * k + 1.0 <= t]
        held = sum(1 for k in range(n) if 2.0 * k <= t < 2.0 * k + 1.0 + row_s)
        common = {"ts": T0 + t, "generation": "rust", "source": "status"}
        samples += [
            {**common, "metric": "step_seconds_total", "value": 1.0 * len(stopped)},
            {**common, "metric": "steps_done_total", "value": float(len(stopped))},
            {**common, "metric": "machine_current_jobs", "machine": "b1", "value": float(held)},
        ]
    return {"log_events": lines, "samples": samples}


def test_rust_row_writes_the_journal_cannot_see_come_from_counter_and_gauge(
    tmp_path: Path,
) -> None:
    """Rust creates a step's row before "Submitting build" and writes it again before freeing
    the machine, after "marking job as done" (hydra 14332fbf state/mod.rs:880, :1094-1133,
    :1927-1940): the step-time counter (dispatch to stop) less the journal's spans gives the
    first, the machines' currentJobs integral less those the second."""
    table = build_step_table(read_run(write_run(tmp_path / "r", _rust_farm(0.2, 0.1))))
    s = table.steps.sort_values("start_ts")
    assert len(s) == 10
    # 0.2 s before the line (the insert and the notification: 0.1 s a write), and the
    # Connecting update after it (one write) out of the 0.1 s to the builder's line
    assert s["prepare_s"].tolist() == [pytest.approx(0.3, abs=1e-3)] * 10
    assert s["connect_s"].tolist() == [pytest.approx(0.0, abs=1e-3)] * 10
    assert (s["start_ts"] - T0).tolist() == [pytest.approx(2.0 * k, abs=1e-3) for k in range(10)]
    # post-processing: done - (connect + build + upload) = 1.0 - 0.85, plus the row's write
    assert s["post_s"].tolist() == [pytest.approx(0.15 + 0.1, abs=0.02)] * 10
    assert (s["end_ts"] - T0).tolist() == [
        pytest.approx(2.0 * k + 1.1, abs=0.02) for k in range(10)
    ]
    assert "post" in table.estimated
    assert any("'Submitting build'" in n and "currentJobs" in n for n in table.notes)


def test_rust_spans_the_journal_holds_whole_get_nothing_added(tmp_path: Path) -> None:
    table = build_step_table(read_run(write_run(tmp_path / "r", _rust_farm(0.0, 0.0))))
    s = table.steps
    assert s["prepare_s"].tolist() == [0.0] * 10
    assert s["post_s"].tolist() == [pytest.approx(0.15, abs=1e-3)] * 10
    assert "post" not in table.estimated
    assert not any("'Submitting build'" in n for n in table.notes)


def test_a_build_s_top_level_step_runs_on_to_the_build_finished_notification(
    tmp_path: Path,
) -> None:
    """Rust frees the machine after the step's row and then writes the builds' rows and
    notifies build_finished (hydra 14332fbf state/mod.rs:1940, :2095-2131): the dependants
    wait for that commit, so a build's top-level step ends there; a step that is not its
    build's top level (build 1's dependency here) keeps the tracker's end."""
    phases = [
        *tracked(1, 1, [("building", 0.0, "notify", 0.0, "poll", 0.1),
                        ("post-processing", 1.0, "poll", 0.1, "notify", 0.0),
                        ("end", 1.2, "", 0.0, "", 0.0)]),
        *tracked(1, 2, [("building", 2.0, "notify", 0.0, "poll", 0.1),
                        ("post-processing", 3.0, "poll", 0.1, "notify", 0.0),
                        ("end", 3.2, "", 0.0, "", 0.0)]),
    ]  # fmt: skip
    common = {"machine": "b1", "system": "x86_64-linux", "status": 0, "generation": "rust"}
    run = write_run(tmp_path / "r", {
        "db_phases": phases,
        "db_steps": [
            {**common, "build": 1, "stepnr": 1, "drv_path": drv("dep-1"), "start_time": T0,
             "stop_time": T0 + 1},
            {**common, "build": 1, "stepnr": 2, "drv_path": drv("top-1"), "start_time": T0 + 2,
             "stop_time": T0 + 3},
        ],
        "db_builds": [{"build": 1, "drv_path": drv("top-1"), "project": "p", "jobset": "j",
                       "job": "top", "generation": "rust"}],
        "db_build_finished": [{"ts": T0 + 3.5, "build": 1, "generation": "rust"}],
    })  # fmt: skip
    s = build_step_table(read_run(run)).steps.set_index("stepnr")
    assert s.loc[2, "end_ts"] == near(T0 + 3.5)
    assert s.loc[1, "end_ts"] == near(T0 + 1.2)
    # the two steps' tracker phases are alike: the top one has the 0.3 s more
    assert s.loc[2, "post_s"] - s.loc[1, "post_s"] == near(0.3)
