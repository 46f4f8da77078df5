"""``bench --quick``: one timed run per phase, no minimum time, recorded; ETA in progress."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pandas as pd

CMD = [sys.executable, "-m", "profiler", "bench"]


def run(tree: Path, out: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*CMD, str(tree), "--codec", "zstd:1,3", "--out", str(out), "--format", "json", *extra],
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_quick_takes_one_run_per_phase_and_says_so(tmp_path: Path) -> None:
    tree = tmp_path / "t"
    tree.mkdir()
    (tree / "f.txt").write_text("hydra " * 50_000)
    done = run(tree, tmp_path / "q", "--quick")
    assert done.returncode == 0, done.stderr
    meta = json.loads((tmp_path / "q" / "meta.json").read_text())
    assert meta["options"] == {"min_runs": 1, "min_time_seconds": 0.0, "quick": True}
    samples = pd.read_parquet(tmp_path / "q" / "samples.parquet")
    assert samples.groupby(["codec", "phase"]).size().tolist() == [1, 1, 1, 1]
    assert "1 timed run(s) and 0 s per phase; --quick" in done.stderr
    lines = [ln for ln in done.stderr.splitlines() if ln.startswith("[")]
    assert "(ETA " in lines[0] and ", elapsed " in lines[0]  # after one cell: an estimate
    assert "ETA 0s" in lines[-1]
    doc = json.loads(done.stdout)
    assert {c["codec"] for c in doc["payloads"]} == {"zstd:1", "zstd:3"}


def test_repeat_wins_over_quick(tmp_path: Path) -> None:
    tree = tmp_path / "t"
    tree.mkdir()
    (tree / "f.txt").write_text("hydra " * 1000)
    done = run(tree, tmp_path / "q", "--quick", "--repeat", "3")
    assert done.returncode == 0, done.stderr
    samples = pd.read_parquet(tmp_path / "q" / "samples.parquet")
    assert (samples.groupby(["codec", "phase"]).size() >= 3).all()
