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


COMPACT = "import sys; from profiler.store import compact; compact(sys.argv[1])"


def test_compaction_killed_at_random_moments_neither_loses_nor_duplicates(tmp_path: Path) -> None:
    """SIGKILL a compaction mid-stream (pending named, temporary half-written, renamed,
    recorded, deleting...): the run reads the same after every kill, and the next
    compaction finishes the job."""
    import random
    import signal
    import subprocess
    import sys
    import time

    from profiler.store import Run, compact

    run = tmp_path / "run"
    with Run.open(run, command="test") as r:
        w = r.writer("samples", max_segment_bytes=256 * 1024)
        for k in range(60):
            w.append_many([{"ts": 1.7e9 + k, "metric": f"m{i % 9}", "value": float(i),
                            "kind": "gauge", "machine": f"b{i}", "k": k}
                           for i in range(1500)])  # fmt: skip
        w.close()
    expected = read_run(run).table("samples")
    key = ["k", "machine"]
    rng = random.Random(7)
    root = Path(__file__).resolve().parents[2]
    for _ in range(4):
        proc = subprocess.Popen([sys.executable, "-c", COMPACT, str(run)], cwd=root)
        time.sleep(rng.uniform(0.3, 2.0))
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=60)
        got = read_run(run).table("samples")
        assert len(got) == len(expected) and not got.duplicated(key).any()
    compact(run)
    got = read_run(run).table("samples")
    assert (
        got.sort_values(key)
        .reset_index(drop=True)
        .equals(expected.sort_values(key).reset_index(drop=True))
    )
    assert not list((run / "tables" / "samples").glob("*.jsonl"))
    assert len(list((run / "tables" / "samples").glob("*compacted*"))) == 1
