"""Contention: a CPU burner pinned to the cell's core is detected, re-run, and flagged."""

from __future__ import annotations

import os
import random
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from profiler.bench import contention, harness
from profiler.bench.timing import Sample
from profiler.payloads import resolve as payloads

BURN = "import os, sys; os.sched_setaffinity(0, {int(sys.argv[1])}); exec('while True: pass')"


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    """About 2 MB of words: xz:6 spends a few tenths of a second on it."""
    rng = random.Random(19)
    words = [f"w{rng.randrange(5000)}" for _ in range(400_000)]
    (tmp_path / "t").mkdir()
    (tmp_path / "t" / "words.txt").write_text(" ".join(words))
    return tmp_path / "t"


@pytest.fixture
def core() -> Iterator[int]:
    """This process (and the workers it starts) pinned to one core, restored afterwards."""
    if not hasattr(os, "sched_setaffinity"):
        pytest.skip("no os.sched_setaffinity on this platform")
    before = os.sched_getaffinity(0)
    cpu = min(before)
    os.sched_setaffinity(0, {cpu})
    try:
        yield cpu
    finally:
        os.sched_setaffinity(0, before)


def burner(cpu: int) -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, "-c", BURN, str(cpu)])


def stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.kill()
    proc.wait()


def bench(tree: Path, progress: list[str], on_rerun: object = None) -> dict:
    def tell(message: str) -> None:
        progress.append(message)
        if "re-running" in message and callable(on_rerun):
            on_rerun()

    res = harness.run_bench(
        payloads.resolve([str(tree)]),
        ["xz:6"],
        harness.BenchOptions(min_runs=2, min_time_seconds=0.2),
        tell,
    )
    return res.rows[0]


def test_a_burner_on_the_same_core_is_flagged_after_the_reruns(tree: Path, core: int) -> None:
    proc = burner(core)
    try:
        progress: list[str] = []
        row = bench(tree, progress)
    finally:
        stop(proc)
    assert row["error"] is None
    assert row["contended"] is True
    assert row["reruns"] == contention.MAX_RERUNS
    assert row["compress_wall_over_cpu"] > contention.WALL_OVER_CPU_LIMIT
    assert "still contended after 2 re-run(s)" in row["notes"]
    assert any(f"re-running (2/{contention.MAX_RERUNS})" in m for m in progress)
    assert "CONTENDED" in progress[-1]


def test_a_rerun_without_the_burner_clears_the_cell(tree: Path, core: int) -> None:
    proc = burner(core)
    try:
        progress: list[str] = []
        row = bench(tree, progress, on_rerun=lambda: stop(proc))
    finally:
        stop(proc)
    assert row["reruns"] >= 1  # the first measurement shared its core with the burner
    assert row["contended"] is False
    assert row["compress_wall_over_cpu"] <= contention.WALL_OVER_CPU_LIMIT
    assert "CONTENDED" not in progress[-1]


def test_judge_leaves_multithread_codecs_and_tiny_gaps_alone() -> None:
    waited = [Sample(wall_seconds=2.0, cpu_seconds=1.0)]
    assert contention.judge({"compress": waited}, threads=1).contended
    assert not contention.judge({"compress": waited}, threads=4).contended
    tiny = [Sample(wall_seconds=0.004, cpu_seconds=0.002)]  # 2x, but 2 ms
    assert not contention.judge({"compress": tiny}, threads=1).contended


def test_judge_notes_clocks_that_disagree() -> None:
    verdict = contention.judge({"decompress": [Sample(0.5, 1.0)]}, threads=1)
    assert not verdict.contended
    assert "the clocks disagree" in verdict.notes[0]
    assert verdict.wall_over_cpu["decompress"] == 0.5
