"""The notebooks in notebooks/ run top to bottom on fresh demo data, in a real python3 kernel.

Each notebook is executed with nbclient against one demo directory made here (a small bench,
and a testbed run observed live, with a private PostgreSQL when one is installed), exactly as
a user runs them after ``hydra-profiler demo``: ``HYDRA_PROFILER_DEMO`` points at it. A cell
that raises, a warning on a cell's stderr, or a missing figure fails the test.
"""

from __future__ import annotations

import json
import os
import re
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import nbformat
import pytest
from jupyter_client.kernelspec import KernelSpecManager
from nbclient import NotebookClient

from profiler.analyze.verdict import BOTTLENECKS
from tests.conftest import STRICT

ROOT = Path(__file__).resolve().parents[2]
NOTEBOOKS = ROOT / "notebooks"
NAMES = ("01-codec-tradeoffs", "02-explore-a-run", "03-what-if")
# Two small payloads (2.1 MiB of NAR) keep the bench near 15 s on 2 cores; all of
# /usr/lib/git-core (22 MiB) takes 70-85 s with xz-6 and zstd-19.
BENCH_PAYLOADS = ("/usr/lib/git-core/git-daemon", "/usr/lib/git-core/mergetools")
CODECS = ("xz:6", "zstd:3", "zstd:19")
STEPS = 12
CELL_TIMEOUT_S = 120
NOTEBOOK_BUDGET_S = 60  # each should take < 30 s; twice that for a loaded CI machine
# Appended to the executed copy (not the file): the kernel must use this checkout's package.
PROBE = "import profiler\nprint('profiler from', profiler.__file__)"


@dataclass(frozen=True)
class Demo:
    path: Path
    database: bool  # whether the run had PostgreSQL (db_* tables)


def _make_demo(out: Path) -> bool:
    """What `hydra-profiler demo` writes (all five stages, on a small bench payload).

    Returns whether the testbed ran with a database (the demo starts a private PostgreSQL
    when it is installed; under CI=true it must be).
    """
    from profiler.scenarios.demo import DemoOptions, run_demo
    from profiler.testbed.pgserver import find_pg_bindir

    if find_pg_bindir() is None and STRICT:
        pytest.fail("CI=true: PostgreSQL not installed (initdb; scripts/setup-tests.sh)")
    run_demo(
        DemoOptions(out=str(out), steps=STEPS, bench_payloads=BENCH_PAYLOADS),
        say=lambda _m: None,
    )
    return find_pg_bindir() is not None


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Demo:
    out = tmp_path_factory.mktemp("notebooks") / "demo"
    database = _make_demo(out)
    for part in ("bench/meta.json", "run/manifest.json", "testbed/truth.json"):
        assert (out / part).is_file(), f"the demo data has no {part}"
    return Demo(out, database)


@pytest.fixture(scope="module")
def kernel_env(demo: Demo, tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """The environment the kernels inherit, with a python3 kernelspec on this interpreter."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("HYDRA_PROFILER_DEMO", str(demo.path))
        # this checkout's package first, whatever is installed in site-packages
        path = os.environ.get("PYTHONPATH")
        mp.setenv("PYTHONPATH", os.pathsep.join([str(ROOT), *([path] if path else [])]))
        mp.setenv("JUPYTER_PLATFORM_DIRS", "1")  # silences jupyter_core's migration warning
        # no figure unless a notebook selects the inline backend itself, as it must for users
        # whose matplotlib defaults elsewhere
        mp.setenv("MPLBACKEND", "agg")
        if "python3" not in KernelSpecManager().find_kernel_specs():
            spec = tmp_path_factory.mktemp("jupyter") / "kernels" / "python3"
            spec.mkdir(parents=True)
            argv = [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"]
            doc = {"argv": argv, "display_name": "Python 3", "language": "python"}
            (spec / "kernel.json").write_text(json.dumps(doc))
            jupyter_path = os.environ.get("JUPYTER_PATH")
            parts = [str(spec.parent.parent), *([jupyter_path] if jupyter_path else [])]
            mp.setenv("JUPYTER_PATH", os.pathsep.join(parts))
        assert "python3" in KernelSpecManager().find_kernel_specs()
        yield


def execute(name: str, figures: int | None) -> tuple[Any, str]:
    """Run notebooks/<name>.ipynb; check it ran cleanly; return it and its text output."""
    path = NOTEBOOKS / f"{name}.ipynb"
    nb = nbformat.read(path, as_version=4)
    for cell in nb.cells:
        if cell.cell_type == "code":
            assert not cell.outputs and cell.execution_count is None, (
                f"{path.name}: committed with outputs (clear them to keep diffs small)"
            )
    nb.cells.append(nbformat.v4.new_code_cell(PROBE))
    client = NotebookClient(
        nb,
        timeout=CELL_TIMEOUT_S,
        kernel_name="python3",
        resources={"metadata": {"path": str(NOTEBOOKS)}},
    )
    start = time.monotonic()
    client.execute()  # raises CellExecutionError at the first failing cell
    seconds = time.monotonic() - start
    print(f"{name}: {seconds:.1f} s")
    assert seconds < NOTEBOOK_BUDGET_S, f"{name} took {seconds:.0f} s (keep notebooks fast)"
    outputs = [o for cell in nb.cells if cell.cell_type == "code" for o in cell.outputs]
    errors = [o for o in outputs if o.output_type == "error"]
    assert not errors, f"{name}: {errors[0].ename}: {errors[0].evalue}"
    stderr = [o.text for o in outputs if o.output_type == "stream" and o.name == "stderr"]
    assert not stderr, f"{name} wrote to stderr (a warning?):\n{''.join(stderr)}"
    drawn = sum("image/png" in o.get("data", {}) for o in outputs)
    if figures is not None:
        assert drawn == figures, f"{name}: {drawn} figures (image/png outputs), not {figures}"
    text = "\n".join(
        o.text if o.output_type == "stream" else o.data["text/plain"]
        for o in outputs
        if o.output_type == "stream" or "text/plain" in o.get("data", {})
    )
    used = re.search(r"^profiler from (\S+)$", text, re.M)
    assert used and Path(used.group(1)).is_relative_to(ROOT), (
        f"{name}: the kernel imported another profiler package: {used and used.group(1)}"
    )
    return nb, text


def test_every_notebook_is_executed() -> None:
    assert sorted(p.stem for p in NOTEBOOKS.glob("*.ipynb")) == list(NAMES)


@pytest.mark.usefixtures("kernel_env")
def test_codec_tradeoffs() -> None:
    _, text = execute("01-codec-tradeoffs", figures=4)
    front = re.search(r"Pareto front, slowest first: (.+); baseline: (\S+)", text)
    assert front, text
    assert set(front.group(1).split(", ")) <= set(CODECS)
    assert front.group(2) == "xz:6"
    for codec in CODECS:  # one sentence per codec from the operator view
        assert re.search(rf"^{re.escape(codec)}: [\d.]+x the size of xz:6", text, re.M), text


@pytest.mark.usefixtures("kernel_env")
def test_explore_a_run(demo: Demo) -> None:
    _, text = execute("02-explore-a-run", figures=5)
    verdict = re.search(r"^bottleneck: (\S+) \(confidence ([\d.]+)\)", text, re.M)
    assert verdict, text
    assert verdict.group(1) in BOTTLENECKS
    assert 0 <= float(verdict.group(2)) <= 1
    tables = ["samples", "log_events"] + (["db_steps", "db_phases"] if demo.database else [])
    for table in tables:
        assert re.search(rf"^{table}\s+\d+", text, re.M), f"no {table} in the inventory"
    check = re.search(r"largest error ([\d.]+) percentage points.*verdict: (\S+)", text)
    assert check, "the truth check did not run"
    assert float(check.group(1)) < 20, check.group(0)
    assert check.group(2) == verdict.group(1)


@pytest.mark.usefixtures("kernel_env")
def test_what_if() -> None:
    _, text = execute("03-what-if", figures=2)
    assert re.search(r"step ends off by [\d.]+ s on average", text), text
    for metric in ("makespan_s", "p50_wall_s", "throughput_steps_per_hour", "rel_error"):
        assert metric in text
    for codec in ("zstd:3", "zstd:19"):  # codec projections from the bench profiles
        assert f"{codec} change" in text, text
    assert "compress_cpu_hours_per_day" in text and "storage_usd_per_month" in text


def _partial_demo(out: Path, kind: str) -> Path:
    """A demo directory whose run holds one source only: the status (a farm reported in a
    Hydra issue: 85 runnable, nothing active), a C++ journal (the golden 2025 excerpt) or a
    Rust builder's journal (the golden excerpt)."""
    from profiler.cli import main

    run = out / "run"
    data = ROOT / "tests" / "data"
    if kind == "status":
        doc = json.loads((data / "status" / "cxx-2025.json").read_text(encoding="utf-8"))
        snaps = out / "snaps"
        snaps.mkdir(parents=True)
        for i in range(4):
            d = {**doc, "time": doc["time"] + 30 * i, "nrRunnableSteps": 85, "nrActiveSteps": 0}
            (snaps / f"{i:04d}.json").write_text(json.dumps(d), encoding="utf-8")
        args = ["collect", "status", "--file", str(snaps), "--once", "--out", str(run)]
    elif kind == "rust":  # the runner's and a builder's journal, one run
        for part in ("queue-runner", "builder"):
            journal = data / "golden" / "rust" / f"{part}.journal.json"
            assert main(["collect", "logs", "--file", str(journal), "--out", str(run)]) == 0
        return out
    else:
        journal = data / "golden" / "cxx" / "2025-final.journal.json"
        args = ["collect", "logs", "--file", str(journal), "--out", str(run)]
    assert main(args) == 0
    return out


@pytest.mark.usefixtures("kernel_env")
@pytest.mark.parametrize("kind", ["status", "journal"])
def test_explore_a_partial_run(kind: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The exploration notebook on a run with one source only: it says what is missing and
    goes on (no traceback), with the answer the analysis gives."""
    monkeypatch.setenv("HYDRA_PROFILER_DEMO", str(_partial_demo(tmp_path / "demo", kind)))
    _, text = execute("02-explore-a-run", figures=None)
    assert re.search(r"^bottleneck: (\S+) \(confidence ([\d.]+)\)", text, re.M), text
    if kind == "status":
        assert "no per-step rows" in text


@pytest.mark.usefixtures("kernel_env")
@pytest.mark.parametrize("kind", ["status", "journal", "rust"])
def test_what_if_on_a_partial_run(
    kind: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The what-if notebook on a run with one source only: a projection the run cannot
    support is said with its reason (status only: no per-step rows), never a traceback."""
    monkeypatch.setenv("HYDRA_PROFILER_DEMO", str(_partial_demo(tmp_path / "demo", kind)))
    _, text = execute("03-what-if", figures=None)
    if kind == "status":
        assert "no replay: the run has no per-step rows" in text, text
        assert "no sweep to plot" in text
    else:
        assert re.search(r"queue runner, [1-9]\d* steps", text), text
