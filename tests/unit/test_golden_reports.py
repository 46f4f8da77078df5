"""The terminal and Markdown outputs of frozen runs, word for word.

``tests/data/run-v1/`` holds small runs the testbed and the collectors wrote (a C++ farm seen
through everything, its database history alone and its status alone; a Rust farm
observed with everything, and the same farm through its journal, status and metrics only);
``tests/data/bench-v1/`` the codec profiles (xz:6, zstd:3), so nothing is calibrated on this
machine. The analysis of a stored run is deterministic, so its text is checked whole: a
refactor that changes a word of the output fails here. When an output changes on purpose,
regenerate with ``HYDRA_PROFILER_UPDATE_GOLDEN=1 pytest tests/unit/test_golden_reports.py``
and review the diff.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from profiler.cli import main

DATA = Path(__file__).parent.parent / "data"
RUNS = DATA / "run-v1"
GOLDEN = DATA / "expected-output"
BENCH = str(DATA / "bench-v1")
FARM = ["--profiles", BENCH, "--runner-cores", "2"]
CASES = sorted(p.name for p in RUNS.iterdir() if p.is_dir())


def _copy(name: str, tmp_path: Path) -> str:
    """Reading a run may take its lock or compact it: read a copy."""
    run = tmp_path / name
    shutil.copytree(RUNS / name, run)
    return str(run)


def _check(text: str, golden: Path, run: str) -> None:
    text = text.replace(run, "RUN").replace(BENCH, "BENCH")
    if os.environ.get("HYDRA_PROFILER_UPDATE_GOLDEN"):
        golden.parent.mkdir(parents=True, exist_ok=True)
        golden.write_text(text, encoding="utf-8")
    assert golden.is_file(), f"no golden text {golden}: set HYDRA_PROFILER_UPDATE_GOLDEN=1"
    expected = golden.read_text(encoding="utf-8")
    assert text.splitlines() == expected.splitlines()


def test_there_are_frozen_runs() -> None:
    assert {"cxx-all", "cxx-db-only", "cxx-status-only", "rust-all", "rust-journal"} <= set(CASES)


@pytest.mark.parametrize("name", CASES)
def test_terminal_output(name: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    run = _copy(name, tmp_path)
    assert main(["analyze", run, *FARM, "--whatif", "codec=zstd:3"]) == 0
    _check(capsys.readouterr().out, GOLDEN / f"{name}.analyze.txt", run)


@pytest.mark.parametrize("name", CASES)
def test_markdown_report(name: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    run = _copy(name, tmp_path)
    out = tmp_path / "report.md"
    assert main(["report", run, *FARM, "-o", str(out)]) == 0
    capsys.readouterr()
    _check(out.read_text(encoding="utf-8"), GOLDEN / f"{name}.report.md", run)
