"""SIGKILL trials in CI: `collect status --url` killed at random moments (tests/killtrials.py).

A few trials here (benchmarks/kill_trials.py runs many): the run stays readable after every
kill, no sample is torn or duplicated, none lost but the one in flight at each kill, and the
killed collectors' segments are compacted by the next collector that stops cleanly.
"""

from __future__ import annotations

from pathlib import Path

from profiler.store import read_run
from tests.killtrials import campaign


def test_collectors_killed_at_random_moments_lose_nothing_and_tear_nothing(
    tmp_path: Path,
) -> None:
    result = campaign(3, machines=300, delays=(0.4, 1.5), run_dir=tmp_path)
    assert result.ok, result.errors
    assert result.trials == 3 and result.readable == result.checks == 4
    assert result.stored >= result.served - 3 and result.stored > 3  # samples were taken
    reader = read_run(tmp_path / "run")  # the last collector compacted every segment
    assert not list((tmp_path / "run" / "tables" / "samples").glob("*.jsonl"))
    assert reader.manifest["compacted"]["samples"]["rows"] == len(reader.table("samples"))
