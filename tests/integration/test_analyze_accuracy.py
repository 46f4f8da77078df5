"""Analysis against ground truth: testbed runs with a bottleneck created on purpose, observed
live by the collectors (status over HTTP, the database with its phase tracker, the journal),
then analysed. The verdict must name the created bottleneck, and each attributed share must
be within 5 percentage points of the truth where the run observed the phase directly, 10
where it is estimated (compression split by a codec profile, queue wait from a gauge)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from profiler.analyze import whatif
from profiler.analyze.analysis import Analysis
from profiler.scenarios.analysis import analyze_run
from profiler.scenarios.observe import Observed, observed_run
from profiler.testbed import workload
from profiler.testbed.engine import Knobs

SCENARIOS: dict[str, tuple[str, dict[str, Any], float]] = {
    # name: (expected verdict, knobs, build scale)
    "slow-codec-few-workers": (
        "compression",
        {"codec": "xz:6", "local_workers": 1},
        0.3,
    ),
    "narrow-upload": (
        "io",
        {"codec": "zstd:3", "upload_bytes_per_second": 1_500_000},
        0.3,
    ),
    "too-few-machines": (
        "builder-capacity",
        {"codec": "zstd:3", "machines": 1, "max_jobs": 1},
        1.0,
    ),
    "slow-dispatcher": (
        "scheduling",
        {"codec": "zstd:3", "machines": 4, "dispatch_delay_seconds": 0.8},
        0.3,
    ),
    "rust-too-few-machines": (
        "builder-capacity",
        {"generation": "rust", "codec": "zstd:19", "machines": 1, "max_jobs": 2},
        1.0,
    ),
    "rust-slow-codec": (
        "compression",
        {"generation": "rust", "codec": "xz:9", "machines": 2, "max_jobs": 1, "size": 2.0},
        0.3,
    ),
    "slow-database": (
        "database",
        {"codec": "zstd:3", "db_latency_seconds": 0.25},
        0.3,
    ),
}


def observe(tmp: Path, dsn: str, knobs: dict[str, Any], scale: float, steps: int = 24) -> Observed:
    size = knobs.pop("size", 1.0)
    wl = workload.generate(steps, seed=3, build_scale=scale, size_scale=size)
    k = Knobs(generation=knobs.pop("generation", "cxx"), **knobs)
    return observed_run(wl, k, str(tmp), pg_dsn=dsn)


def check_shares(a: Analysis, truth: dict[str, float]) -> None:
    ours = a.attribution.shares
    assert abs(sum(ours.values()) - 1) < 1e-9
    for category, share in truth.items():
        limit = 0.10 if a.attribution.estimated[category] else 0.05
        assert abs(ours[category] - share) <= limit, (category, ours, truth)


@pytest.mark.parametrize("name", list(SCENARIOS))
def test_verdict_names_the_created_bottleneck(tmp_path: Path, db_dsn: str, name: str) -> None:
    expected, knobs, scale = SCENARIOS[name]
    steps = 16 if knobs.get("generation") == "rust" else 24
    observed = observe(tmp_path, db_dsn, dict(knobs), scale, steps=steps)
    a = analyze_run(observed.run_dir, codec=knobs["codec"])
    assert a.verdict.bottleneck == expected, (a.verdict.scores, a.verdict.evidence)
    assert a.verdict.confidence > 0.1
    check_shares(a, observed.truth["attribution"])
    doc = a.as_dict()
    assert doc["verdict"]["bottleneck"] == expected
    assert set(doc["attribution"]) == {"scheduling", "io", "compression", "build", "post"}
    assert {s["name"] for s in doc["coverage"]["sources"]} >= {"db_phases", "db_steps", "samples"}


def test_replay_reproduces_the_run_and_a_faster_compression_helps(
    tmp_path: Path, db_dsn: str
) -> None:
    """The simulator replays an observed compression-bound run closely, and halving the
    compression time shortens steps and the run (checked against the same run's replay)."""
    knobs = {"codec": "xz:6", "local_workers": 1}
    observed = observe(tmp_path, db_dsn, dict(knobs), 0.3, steps=16)
    a = analyze_run(observed.run_dir, codec="xz:6")
    p = whatif.project(a, whatif.parse_change("compress=0.5"))
    v = p.validation
    assert abs(v.makespan_rel_error) < 0.15, v.table()
    assert v.end_mae_s < 2.0
    change = p.table.set_index("metric")["change"]
    assert change["p50_wall_s"] < -0.05
    assert change["makespan_s"] < 0
    assert any("released by the end of another" in n for n in p.notes)
    doc = p.as_dict()
    assert doc["replay"]["makespan_rel_error"] == v.makespan_rel_error
    assert {r["metric"] for r in doc["fleet_cost"]} >= {"compress_cpu_hours_per_day"}
