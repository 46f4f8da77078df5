"""Golden journals built line by line from the real programs' format strings
(``tests/data/golden/*/*.sources.md`` say which source lines each follows): every era of the
C++ runner and the Rust runner and builder, in journalctl short, ``-o json`` and raw stderr.

``collect logs`` must understand at least 95% of each file's lines and report the rest by
pattern; a Rust runner + builder journal alone must yield steps whose build and upload times
``analyze`` uses; no golden journal may make ``analyze`` fail with anything but a one-line
error.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from profiler.collect.journal.parse import parse_file
from profiler.store import read_run

GOLDEN = Path(__file__).resolve().parents[1] / "data" / "golden"
CMD = [sys.executable, "-m", "profiler"]
JOURNALS = sorted(
    p
    for p in GOLDEN.glob("*/*")
    if p.suffix in (".txt", ".json")
    and not p.name.endswith(".sources.md")
    and ("journal" in p.name or "stderr" in p.name)
)


def _year(path: Path) -> int:
    head = path.name[:4]
    return int(head) if head.isdigit() else 2026


@pytest.mark.parametrize("path", JOURNALS, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_golden_journal_is_understood(path: Path) -> None:
    events, summary = parse_file(str(path), year=_year(path))
    assert summary.lines > 20, "a golden journal of a few lines proves little"
    assert not summary.malformed, summary.malformed[:5]
    share = summary.understood / summary.lines
    unknown = "\n".join(f"{n:4d} x {p}" for p, n in summary.unknown.most_common())
    assert share >= 0.95, f"{path.name}: {share:.1%} understood; unknown:\n{unknown}"
    assert events, "no events"
    sources = path.with_name(path.name + ".sources.md")
    assert sources.exists(), f"{path.name} does not say which source lines it follows"


def test_every_golden_file_set_exists() -> None:
    """The eras the issue names are all there."""
    names = {f"{p.parent.name}/{p.name}" for p in JOURNALS}
    assert any(n.startswith("rust/") and "builder" in n for n in names), names
    assert any(n.startswith("rust/") and "runner" in n for n in names), names
    assert sum(n.startswith("cxx/") for n in names) >= 4, names


def _collect(run: Path, *files: Path) -> None:
    argv = [*CMD, "collect", "logs", "--out", str(run)]
    for f in files:
        argv += ["--file", str(f)]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr


BENCH = Path(__file__).resolve().parents[1] / "data" / "bench-v1"  # xz:6 and zstd:3 profiles


def _analyze(run: Path) -> subprocess.CompletedProcess[str]:
    # a frozen bench result gives the codec profile: no calibration in every test
    return subprocess.run(
        [*CMD, "analyze", str(run), "--format", "json", "--profiles", str(BENCH)],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def test_a_rust_journal_alone_gives_steps_with_build_and_upload_times(tmp_path: Path) -> None:
    runner = GOLDEN / "rust" / "queue-runner.journal.txt"
    builder = GOLDEN / "rust" / "builder.journal.txt"
    run = tmp_path / "run"
    _collect(run, runner, builder)
    logs = read_run(str(run)).table("log_events")
    assert set(logs["generation"].dropna()) == {"rust"}
    # the builders' upload lines name their step through the span fields
    uploads = logs[logs["event"] == "upload_finished"]
    assert len(uploads) > 0 and uploads["drv"].notna().all()
    done = _analyze(run)
    assert done.returncode == 0, done.stderr
    doc = json.loads(done.stdout)
    assert doc["generation"] == "rust" and doc["steps"] >= 5
    seconds = doc["attribution_seconds"]
    assert seconds["build"] > 0
    assert seconds["io"] + seconds["compression"] > 0  # the builders' upload phases
    assert (
        doc["upload_mode"] == "presigned"
        and "builders' upload lines" in (doc["upload_mode_source"])
    )
    assert doc["codec_source"]


@pytest.mark.parametrize(
    "path",
    [p for p in JOURNALS if p.parent.name == "cxx" and p.name.endswith(".journal.txt")],
    ids=lambda p: p.name,
)
def test_a_cxx_journal_alone_is_analysed_or_refused_in_one_line(path: Path, tmp_path: Path) -> None:
    run = tmp_path / "run"
    _collect(run, path)
    done = _analyze(run)
    assert "Traceback" not in done.stderr, done.stderr
    if done.returncode != 0:
        assert done.returncode == 1 and len(done.stderr.strip().splitlines()) == 1
        return
    doc = json.loads(done.stdout)
    assert doc["generation"] == "cxx" and doc["steps"] > 0
    assert abs(sum(doc["attribution"].values()) - 1) < 1e-6
