"""`hydra-profiler demo` end to end in its quickest form (no bench, no database): the
journal-and-status analysis still finds the compression bottleneck the testbed was given."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

CMD = [sys.executable, "-m", "profiler"]


def test_quick_demo_without_bench_or_database(tmp_path: Path) -> None:
    out = tmp_path / "demo"
    done = subprocess.run(
        [*CMD, "demo", "--out", str(out), "--steps", "12", "--no-bench", "--no-db"],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    for stage in range(1, 6):
        assert f"== demo {stage}/5" in done.stderr
    assert "Bottleneck: compression" in done.stdout
    assert "timed from the journal only" in done.stdout
    paths = json.loads((out / "demo.json").read_text())["paths"]
    for name in ("report.html", "report.md", "report.json", "trace.json"):
        assert os.path.getsize(paths[name]) > 0, name
    report = json.loads(Path(paths["report.json"]).read_text())
    assert report["verdict"]["bottleneck"] == "compression"
    assert "db_steps" not in {s["name"] for s in report["coverage"]["sources"]}


def test_demo_refuses_a_non_empty_directory(tmp_path: Path) -> None:
    (tmp_path / "x").write_text("keep me")
    done = subprocess.run(
        [*CMD, "demo", "--out", str(tmp_path), "--no-bench"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 1
    assert "exists and is not empty" in done.stderr
    assert (tmp_path / "x").read_text() == "keep me"
