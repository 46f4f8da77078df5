"""Every failed write is one line (reliability D17, D18): stdout on a full device, output
files on a full disk (``RLIMIT_FSIZE`` stands in for one: writes fail with EFBIG), outputs
that cannot be created, checked before the work; ``bench --out`` never replaces a result
without ``--force`` nor writes into an unrelated directory; nothing partial is left behind."""

from __future__ import annotations

import json
import os
import resource
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from profiler.cli import main

CMD = [sys.executable, "-m", "profiler"]
DATA = Path(__file__).resolve().parents[1] / "data"
BENCH = DATA / "bench-v1"
ENV = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1"}


def run(
    *args: str | Path, stdout: object = subprocess.PIPE, fsize: int | None = None
) -> subprocess.CompletedProcess[str]:
    def limit() -> None:
        if fsize is not None:
            resource.setrlimit(resource.RLIMIT_FSIZE, (fsize, fsize))

    return subprocess.run(
        [*CMD, *map(str, args)],
        stdout=stdout,  # type: ignore[arg-type]
        stderr=subprocess.PIPE,
        text=True,
        timeout=300,
        env=ENV,
        preexec_fn=limit,
    )


def one_line(done: subprocess.CompletedProcess[str], code: int = 1) -> str:
    """The last stderr line is the one error; no traceback, the right exit code."""
    err = done.stderr
    assert "Traceback" not in err and "Exception ignored" not in err, err
    errors = [line for line in err.splitlines() if line.startswith("hydra-profiler: ")]
    assert len(errors) == 1 and errors[0].startswith("hydra-profiler: error: "), err
    assert done.returncode == code, err
    return errors[0]


def leftovers(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir())


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small run: one golden C++ journal and one status document."""
    out = tmp_path_factory.mktemp("run") / "run"
    journal = DATA / "golden" / "cxx" / "2018-local.journal.txt"
    assert run("collect", "logs", "--file", journal, "--out", out).returncode == 0
    status = DATA / "status" / "cxx-2025.json"
    assert run("collect", "status", "--file", status, "--once", "--out", out).returncode == 0
    return out


@pytest.fixture(scope="module")
def many_entries_nar(tmp_path_factory: pytest.TempPathFactory) -> Path:
    tree = tmp_path_factory.mktemp("tree") / "t"
    tree.mkdir()
    for i in range(1500):  # more listing than any stdout buffer holds
        (tree / f"file-{i:05d}").write_bytes(b"x")
    nar = tree.parent / "t.nar"
    with open(nar, "wb") as f:
        subprocess.run([*CMD, "nar", "dump", tree], stdout=f, check=True, env=ENV)
    return nar


def test_stdout_on_a_full_device_is_one_line(
    tmp_path: Path, run_dir: Path, many_entries_nar: Path
) -> None:
    tree = many_entries_nar.parent / "t"
    cases = [
        ["nar", "hash", tree],
        ["nar", "dump", tree],
        ["nar", "ls", "-lR", many_entries_nar],
        ["payloads", tree],
        ["payloads", tree, "--format", "json"],
        ["export", run_dir, "samples"],
        ["export", run_dir, "log_events", "--format", "json"],
        ["compare", BENCH, BENCH],
    ]
    with open("/dev/full", "w") as full:
        for argv in cases:
            line = one_line(run(*argv, stdout=full))
            assert line == "hydra-profiler: error: stdout: cannot write: No space left on device"


def test_output_files_on_a_full_disk_leave_nothing_behind(tmp_path: Path, run_dir: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    cases = [
        (["report", run_dir, "--profiles", BENCH, "-o", out / "r.html"], "r.html", 4096),
        (["export", run_dir, "samples", "-o", out / "s.csv"], "s.csv", 4096),
        (["export", run_dir, "samples", "-o", out / "s.parquet"], "s.parquet", 4096),
        (["payloads", DATA / "golden", "--manifest", out / "m.json"], "m.json", 100),
    ]
    for argv, name, fsize in cases:
        line = one_line(run(*argv, fsize=fsize))
        assert f"{out / name}: cannot write: File too large" in line
        assert leftovers(out) == [], f"{name}: {leftovers(out)} left behind"
    # an earlier file survives a failed rewrite whole
    (out / "s.csv").write_text("earlier\n")
    one_line(run("export", run_dir, "samples", "-o", out / "s.csv", fsize=4096))
    assert (out / "s.csv").read_text() == "earlier\n" and leftovers(out) == ["s.csv"]


def test_unwritable_outputs_fail_before_the_work(tmp_path: Path) -> None:
    for target in ("/proc/m.json", str(tmp_path)):
        line = one_line(run("payloads", DATA / "golden", "--manifest", target))
        assert "cannot write" in line
    done = run("payloads", DATA / "golden", "--manifest", "/proc/m.json")
    assert "reading" not in done.stderr  # refused before any payload was read


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"\xff\xfe payloads = 1", "not UTF-8 text"),
        (b'payloads = [1, 2]\ncodecs = ["zstd:1"]\n', "'payloads' must list strings; got 1"),
        (b'payloads = ["default"]\ncodecs = [3]\n', "'codecs' must list strings"),
        (b'payloads = ["default"]\ncodecs = ["zstd:1"]\nmin_runs = "abc"\n', "min_runs must"),
        (b'payloads = ["default"]\ncodecs = ["zstd:1"]\nmin_runs = 0\n', "min_runs must"),
        (b'payloads = ["default"]\ncodecs = ["zstd:1"]\nmin_time_seconds = nan\n',
         "min_time_seconds must"),
        (b'payloads = ["default"]\ncodecs = ["xz:19:threads=2"]\n', "level 19 out of range"),
        (b"payloads = [", "invalid TOML"),
    ],
)  # fmt: skip
def test_bad_suites_are_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], content: bytes, message: str
) -> None:
    suite = tmp_path / "s.toml"
    suite.write_bytes(content)
    assert main(["bench", "--suite", str(suite), "--out", str(tmp_path / "r")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and message in err
    assert not (tmp_path / "r").exists()


def test_a_directory_named_toml_is_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "d.toml").mkdir()
    assert main(["bench", "--suite", str(tmp_path / "d.toml")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "cannot read the suite: Is a directory" in err


def test_bench_out_is_checked_before_benchmarking(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("x")
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("mine")
    earlier = tmp_path / "earlier"
    shutil.copytree(BENCH, earlier)
    before = {p.name: p.read_bytes() for p in earlier.iterdir()}
    cases = [
        (tmp_path / "file", 2, "exists and is not a directory"),
        (Path("/proc/bench"), 1, "cannot create: No such file or directory"),
        (tmp_path / "mine", 2, "a non-empty directory that is not a bench result"),
        (earlier, 2, "already holds a bench result (xz:6, zstd:3"),
    ]
    for out, code, message in cases:
        done = run("bench", tmp_path / "mine", "--codec", "zstd:1", "--out", out)
        assert message in one_line(done, code)
        assert "payloads x" not in done.stderr  # nothing was measured
    assert {p.name: p.read_bytes() for p in earlier.iterdir()} == before
    assert leftovers(tmp_path / "mine") == ["notes.txt"]


def test_bench_force_replaces_a_result_and_a_full_disk_keeps_the_old_one(tmp_path: Path) -> None:
    payload = tmp_path / "p"
    payload.mkdir()
    (payload / "a.txt").write_text("hello " * 50)
    result = tmp_path / "r"
    shutil.copytree(BENCH, result)
    (result / "profile.speedscope.json").write_text("{}")  # from an earlier --profile run
    quick = ["bench", payload, "--codec", "zstd:1", "--repeat", "1", "--min-time", "0"]
    # a full disk while the result is written: the earlier result stays whole
    line = one_line(run(*quick, "--out", result, "--force", "--format", "csv", fsize=4096))
    assert f"{result}: cannot write the result: File too large" in line
    assert (result / "meta.json").read_bytes() == (BENCH / "meta.json").read_bytes()
    assert not [n for n in leftovers(result) if n.endswith(".tmp")]
    # a new directory on a full disk is not left behind half written
    one_line(run(*quick, "--out", tmp_path / "new", "--format", "csv", fsize=4096))
    assert not (tmp_path / "new").exists()
    done = run(*quick, "--out", result, "--force", "--format", "csv")
    assert done.returncode == 0, done.stderr
    meta = json.loads((result / "meta.json").read_text())
    assert [c["label"] for c in meta["codecs"]] == ["zstd:1"]
    assert "profile.speedscope.json" not in leftovers(result)  # not this result's
