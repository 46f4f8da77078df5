"""The pieces the accuracy work rests on: random scenarios, the truth's answers, farm-level
totals from gauges and counters, one value per series and time, the worker count from the
status, the copy split without sizes or in Rust direct mode, and the calibration cache."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from profiler.analyze import farm
from profiler.analyze.attribution import split_copy
from profiler.analyze.gauges import metric_series, workers_from_samples
from profiler.analyze.schema import StepTable
from profiler.bench import profiles
from profiler.bench.profiles import CodecProfile
from profiler.scenarios import random_runs as scenarios
from profiler.testbed import truth
from profiler.testbed.engine import Knobs
from profiler.testbed.workload import SHAPES, generate

PROFILE = CodecProfile("xz:6", 1e-6, 0.25, "test", 0.0)


def test_scenarios_are_reproducible_and_cover_every_dimension() -> None:
    assert scenarios.random_scenario(7) == scenarios.random_scenario(7)
    drawn = [scenarios.random_scenario(seed) for seed in range(300)]
    k = [s.knobs for s in drawn]
    assert {x["generation"] for x in k} == {"cxx", "rust"}
    assert {x.get("upload_mode") for x in k if x["generation"] == "rust"} == {"presigned", "direct"}
    assert {x["codec"] for x in k} == set(scenarios.CODECS)
    assert {s.shape for s in drawn} == set(SHAPES)
    for key in ("link_bytes_per_second", "upload_bytes_per_second", "dispatch_delay_seconds",
                "db_latency_seconds", "pressure_machines"):  # fmt: skip
        assert any(key in x for x in k), key
    assert any(s.failures for s in drawn) and any(s.retries for s in drawn)
    assert len({s.describe() for s in drawn}) == len(drawn)


def test_scenario_knobs_fail_leaves_and_retry_others() -> None:
    s = next(x for x in map(scenarios.random_scenario, range(100)) if x.failures and x.retries)
    wl = s.workload()
    knobs = s.make_knobs(wl)
    assert isinstance(knobs, Knobs) and len(knobs.fail_steps) == s.failures
    needed = {d for step in wl.steps for d in step.deps}
    assert not knobs.fail_steps & needed and not knobs.fail_steps & knobs.retry_steps
    assert s.make_knobs(wl, machines=9).machines == 9


def test_dag_shapes() -> None:
    flat, deep = generate(12, seed=2, shape="flat"), generate(12, seed=2, shape="deep")
    assert all(not s.deps for s in flat.steps)
    assert all(s.deps and all(s.index - d <= 3 for d in s.deps) for s in deep.steps[1:])
    assert generate(12, seed=2).steps == generate(12, seed=2, shape="mixed").steps


def _doc(phases_per_step: list[list[tuple[str, float, float]]], **knobs: Any) -> dict[str, Any]:
    from profiler.testbed.engine import CATEGORY

    steps: list[dict[str, Any]] = []
    for ph in phases_per_step:
        steps.append(
            {
                "runnable_at": ph[0][1],
                "finished_at": ph[-1][2],
                "wall_seconds": ph[-1][2] - ph[0][1],
                "phases": [
                    {"phase": n, "category": CATEGORY[n], "start": a, "end": b} for n, a, b in ph
                ],
            }
        )
    runs_att: dict[str, float] = {}
    for st in steps:
        for p in st["phases"]:
            runs_att[p["category"]] = runs_att.get(p["category"], 0.0) + p["end"] - p["start"]
    total = sum(runs_att.values())
    shares = {c: runs_att.get(c, 0.0) / total for c in truth.CATEGORIES}
    return {
        "generation": knobs.get("generation", "cxx"),
        "knobs": {"machines": 1, "max_jobs": 1, **knobs},
        "steps": steps,
        "attribution": shares,
    }


def test_truth_saturated_farm_names_what_held_the_slot() -> None:
    # one slot: the second step waits 10 s while the first builds
    doc = _doc([
        [("queued", 0, 0), ("building", 0, 10), ("post-processing", 10, 10.5)],
        [("queued", 0, 10), ("building", 10, 20), ("post-processing", 20, 20.5)],
    ])  # fmt: skip
    a = truth.answers(doc)
    assert a["saturated"] and a["headline"] == "builder-capacity"
    assert a["queued_full_share"] == pytest.approx(10 / 31)
    assert a["makespan_seconds"] == 20.5 and a["latency"] == "scheduling"


def test_truth_even_wait_on_the_saturation_line_is_a_close_call() -> None:
    # one slot: B waits 10 s with the slot taken, C waits 10 s with it free (the dispatcher)
    doc = _doc([
        [("queued", 0, 0), ("building", 0, 10)],
        [("queued", 0, 10), ("building", 10, 20)],
        [("queued", 20, 30), ("building", 30, 40)],
    ])  # fmt: skip
    a = truth.answers(doc)
    assert a["queued_full_share"] == pytest.approx(a["queued_free_share"])
    assert a["saturated"] and a["headline"] == "builder-capacity"
    assert a["close"] == ["scheduling"]
    # the same farm with the free-slot wait a third as long: not close
    doc = _doc([
        [("queued", 0, 0), ("building", 0, 10)],
        [("queued", 0, 10), ("building", 10, 20)],
        [("queued", 20, 23), ("building", 23, 33)],
    ])  # fmt: skip
    assert truth.answers(doc)["close"] == []


def test_truth_idle_farm_names_its_latency_and_shares_permit_waits() -> None:
    doc = _doc(
        [[("queued", 0, 0), ("building", 0, 5), ("uploading", 5, 10)]],
        machines=2,
    )
    a = truth.answers(doc)
    assert not a["saturated"] and a["headline"] == "io" and a["latency"] == "io"
    use = truth._permit_use([(0, 10, "compression"), (0, 5, "io")], 0, 10)
    assert use == pytest.approx({"compression": 8 / 12, "io": 4 / 12})


def _samples(rows: list[Any]) -> pd.DataFrame:
    return pd.DataFrame(
        [
            {"ts": t, "metric": m, "value": v, "machine": mach, "source": "s"}
            for t, m, v, mach in rows
        ]
    )


def _series(metric: str, points: list[tuple[float, float]]) -> list[Any]:
    return [(float(t), metric, float(v), None) for t, v in points]


def test_one_value_per_series_and_time() -> None:
    """Snapshots stamped with the same whole second must not be added up."""
    rows = [(0.0, "machine_current_jobs", 2.0, "m1")] * 4 + [(0.0, "machine_current_jobs", 1, "m2")]
    assert metric_series(_samples(rows), "machine_current_jobs").iloc[0] == 3.0


def test_farm_integrals_and_counter_increases() -> None:
    rows = [(float(t), "steps_building", 2.0, None) for t in range(11)]
    rows += _series("step_seconds_total", [(0, 100), (5, 130), (6, 5), (10, 25)])
    s = _samples(rows)
    assert farm.integral(s, "steps_building") == pytest.approx(20.0)
    assert farm.increase(s, "step_seconds_total") == pytest.approx(50.0)  # a reset: 30 + 20
    assert math.isnan(farm.increase(s, "absent_total"))
    metrics = s.assign(source="m")  # the same figures from /metrics too: not counted twice
    both = pd.concat([s, metrics.iloc[:3]], ignore_index=True)
    assert farm.integral(both, "steps_building") == pytest.approx(20.0)


def test_rust_farm_totals_split_the_upload_by_per_byte_costs() -> None:
    rows: list[Any] = []
    for name, value in (("step_seconds_total", 100), ("step_import_seconds_total", 10),
                        ("step_build_seconds_total", 50), ("step_upload_seconds_total", 30),
                        ("job_wait_seconds_sum", 8), ("steps_done_total", 10)):  # fmt: skip
        rows += _series(name, [(0, 0), (60, value)])
    totals = farm.farm_totals(_samples(rows), "rust", PROFILE)
    assert totals is not None and totals.steps_done == 10
    share = 1e-6 / (1e-6 + 0.25 / 100e6)
    assert totals.seconds["compression"] == pytest.approx(30 * share)
    assert totals.seconds["io"] == pytest.approx(10 + 30 * (1 - share))
    assert totals.seconds["post"] == pytest.approx(10) and totals.seconds["scheduling"] == 8
    direct = farm.farm_totals(_samples(rows), "rust", PROFILE, "direct")
    assert direct is not None and direct.seconds["compression"] == 0.0


def test_workers_from_the_status() -> None:
    rows = _series("steps_waiting_for_download_slot", [(0, 0), (1, 3), (2, 0)])
    rows += _series("steps_copying_from", [(0, 1), (1, 2), (2, 5)])
    assert workers_from_samples(_samples(rows)) == 2
    never_waited = _series("steps_waiting_for_download_slot", [(0, 0), (1, 0)])
    assert workers_from_samples(_samples(never_waited + rows[3:])) is None


def _table(generation: str, nar: float, copy: float = 10.0) -> StepTable:
    steps = pd.DataFrame(
        {
            "step": ["1/1"],
            "copy_s": [copy],
            "nar_bytes": [nar],
            "connect_s": [0.0],
            "send_s": [0.0],
            "slot_wait_s": [0.0],
            "build_s": [1.0],
            "prepare_s": [0.0],
            "post_s": [0.0],
        }
    )
    return StepTable(steps, generation)


def test_copy_split_without_sizes_and_in_direct_mode() -> None:
    no_size = split_copy(_table("rust", np.nan), PROFILE).iloc[0]
    share = 1e-6 / (1e-6 + 0.25 / 100e6)
    assert no_size["compress_s"] == pytest.approx(10 * share)
    assert no_size["compress_source"].startswith("estimated without NAR sizes")
    direct = split_copy(_table("rust", 5e6), PROFILE, "direct").iloc[0]
    assert direct["compress_s"] == 0.0 and direct["io_s"] == pytest.approx(10.0)
    sized = split_copy(_table("rust", 5e6), PROFILE, "presigned").iloc[0]
    assert 5.0 < sized["compress_s"] <= 10.0  # 5 s by the profile, plus its share of the rest


def test_calibration_is_cached_on_disk(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    profiles.calibrate.cache_clear()
    first = profiles.calibrate("zstd:3", 1 << 16)
    assert Path(profiles.cache_path()).is_file() and first.fixed_seconds >= 0
    profiles.calibrate.cache_clear()

    def refuse(*_a: Any, **_k: Any) -> None:
        raise AssertionError("calibrated again instead of reading the cache")

    monkeypatch.setattr("profiler.codecs.make_codec", refuse)
    assert profiles.calibrate("zstd:3", 1 << 16) == first
    profiles.calibrate.cache_clear()


def test_journal_steps_time_before_the_copy_holds_the_database_writes() -> None:
    """C++ journal-only steps: the phase gauges cover each phase's work, not the updateStep
    write that starts it; nrActiveDbUpdates (two counted transactions a step) gives a
    write's latency, so the step's insert and the updates at the starts of connecting,
    sending, building and receiving (five writes before the copy) are database time, not
    taken as connecting."""
    from profiler.analyze.estimates import split_slot_wait

    n, write_s = 4, 0.1
    steps = pd.DataFrame({"pre_copy_s": [2.0] * n, "connect_s": 0.0, "build_s": 2.0})
    # over 10 s: building 4 step-s, sending 0.4, no waits, 2 x 4 x 0.1 = 0.8 in counted writes
    rows = (
        _series("steps_building", [(0, 0.4), (10, 0.4)])
        + _series("steps_copying_to", [(0, 0.04), (10, 0.04)])
        + _series("steps_waiting_for_download_slot", [(0, 0), (10, 0)])
        + _series("db_updates_active", [(0, 0.08), (10, 0.08)])
    )
    out, note, estimated = split_slot_wait(steps, _samples(rows), (0.0, 10.0))
    assert note is not None and "5 database writes of 100 ms" in note
    assert "post" in estimated  # preparing is now an estimate
    per_step = out.iloc[0]
    assert per_step["prepare_s"] == pytest.approx(5 * write_s)
    assert per_step["send_s"] == pytest.approx(0.1)
    assert per_step["build_s"] == pytest.approx(1.0)
    # connecting: what no gauge covers (2.0 - 0.5 - 0.1 - 1.0)
    assert per_step["connect_s"] == pytest.approx(0.4)
    parts = ("prepare_s", "send_s", "build_s", "connect_s")
    assert sum(per_step[c] for c in parts) == pytest.approx(2.0)
    # without the database gauge the writes stay in connecting, as before
    plain, _, plain_estimated = split_slot_wait(steps, _samples(rows[:-2]), (0.0, 10.0))
    assert "post" not in plain_estimated
    assert plain.iloc[0]["connect_s"] == pytest.approx(2.0 - 0.1 - 1.0)
