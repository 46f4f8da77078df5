"""`collect logs`: files, compressed and damaged inputs, following a growing or rotated
file, a pipe on stdin, journalctl, and live on the testbed's journal next to a status
collector in the same run."""

from __future__ import annotations

import gzip
import json
import lzma
import os
import signal
import subprocess
import sys
import threading
import time
import zlib
from collections import Counter
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import zstandard

from profiler.collect.journal.collector import LogCollector, guess_year
from profiler.collect.status.collector import Collector, CollectorOptions
from profiler.collect.status.sources import HttpSource
from profiler.store import Run, read_run
from profiler.testbed import workload
from profiler.testbed.engine import Knobs
from profiler.testbed.run import run_testbed

CMD = [sys.executable, "-m", "profiler"]
DRV = "/nix/store/0c2zv5rr4qy3c8rqd4s1dw8dbg8wfrqn-hello-2.12.1.drv"


def _q(text: str) -> str:
    return f"\u2018{text}\u2019"


def journal_lines(n_builds: int, *, pid: int = 4242, start_build: int = 1) -> list[str]:
    """Short-format C++ lines: per build a queue check, a step start, a copy and a success."""
    out = []
    for b in range(start_build, start_build + n_builds):
        stamp = f"Nov 29 03:{(b // 60) % 60:02d}:{b % 60:02d}"
        head = f"{stamp} hydra hydra-queue-runner[{pid}]: "
        out += [
            head + "checking the queue for builds...",
            head + f"performing step {_q(DRV)} 1 times on {_q('ssh://b1')} "
            f"(needed by build {b} and 0 others)",
            head + f"copying path '/nix/store/x-{b}' ({1000 + b} bytes, compressed 50.0% in 7 ms) "
            "to binary cache",
            head + f"marking build {b} as succeeded",
        ]
    return out


def _events(run_dir: Path) -> pd.DataFrame:
    return read_run(str(run_dir)).table("log_events")


def _run(args: list[str], **kw: Any) -> subprocess.CompletedProcess[str]:
    return subprocess.run(CMD + args, capture_output=True, text=True, timeout=120, **kw)


def test_file_plain_and_compressed_into_one_run(tmp_path: Path) -> None:
    lines = [*journal_lines(50), "Nov 29 04:00:00 hydra hydra-queue-runner[4242]: odd 1 thing"]
    text = "\n".join(lines) + "\n"
    (tmp_path / "q.log").write_text(text)
    (tmp_path / "q.log.gz").write_bytes(gzip.compress(text.encode()))
    (tmp_path / "q.log.xz").write_bytes(lzma.compress(text.encode()))
    (tmp_path / "q.log.zst").write_bytes(zstandard.ZstdCompressor().compress(text.encode()))
    run_dir = tmp_path / "run"
    files = [str(tmp_path / f"q.log{s}") for s in ("", ".gz", ".xz", ".zst")]
    args = ["collect", "logs", "--out", str(run_dir), "--year", "2026"]
    for f in files:
        args += ["--file", f]
    done = _run(args)
    assert done.returncode == 0, done.stderr
    assert "201 lines, 99.5% understood, 200 events, 1 unknown lines in 1 patterns" in done.stderr
    events = _events(run_dir)
    assert Counter(events["source"]) == dict.fromkeys(files, 200)
    started = events[events["event"] == "step_started"]
    assert sorted(started["build_id"].unique()) == list(range(1, 51))
    assert set(started["drv"]) == {DRV}
    copied = events[events["event"] == "output_copied"]
    assert (copied["ms"] == 7).all() and copied["nar_bytes"].min() == 1001
    summary = read_run(str(run_dir)).table("log_summary")
    assert list(summary["source"]) == files
    assert (summary["understood"] == 200).all() and (summary["lines"] == 201).all()
    assert json.loads(summary["unknown_patterns"].iloc[0]) == {"odd N thing": 1}
    assert (summary["year_assumed"] == 2026).all()
    manifest = read_run(str(run_dir)).manifest
    assert [s["kind"] for s in manifest["sources"]] == ["logs"] * 4


def _decodable_lines(suffix: str, damaged: bytes) -> int:
    """Whole lines a decompressor can produce from ``damaged`` (the reference count)."""
    dobj: Any = {
        ".gz": lambda: zlib.decompressobj(wbits=31),
        ".xz": lzma.LZMADecompressor,
        ".zst": lambda: zstandard.ZstdDecompressor().decompressobj(),
    }[suffix]()
    return dobj.decompress(damaged).count(b"\n")


@pytest.mark.parametrize("suffix", [".gz", ".xz", ".zst"])
@pytest.mark.parametrize(("lines", "keep"), [(3000, 2 / 3), (120, 1 / 2)])
def test_truncated_compressed_file_keeps_what_came_before(
    tmp_path: Path, suffix: str, lines: int, keep: float
) -> None:
    text = ("\n".join(journal_lines(lines)) + "\n").encode()
    packed = {
        ".gz": gzip.compress,
        ".xz": lzma.compress,
        ".zst": zstandard.ZstdCompressor().compress,
    }[suffix](text)
    path = tmp_path / f"q.log{suffix}"
    damaged = packed[: int(len(packed) * keep)]
    path.write_bytes(damaged)
    run_dir = tmp_path / "run"
    done = _run(["collect", "logs", "--file", str(path), "--out", str(run_dir), "--year", "2026"])
    expected = _decodable_lines(suffix, damaged)
    errors = [line for line in done.stderr.splitlines() if "unreadable after line" in line]
    assert len(errors) == 1 and str(path) in errors[0], done.stderr
    # every whole line the input still holds is there, the cut one is not, and the line
    # reached is said as it is
    n_lines = int(errors[0].split("unreadable after line ")[1].split(":")[0])
    assert n_lines == expected
    if expected == 0:  # (zstd decodes whole blocks: a small file may hold none)
        return
    assert done.returncode == 0, done.stderr  # events were kept: not a failure
    events = _events(run_dir)
    assert len(events) == expected
    builds = events[events["event"] == "step_started"]["build_id"]
    assert list(builds) == list(range(1, len(builds) + 1))
    logged = read_run(str(run_dir)).table("events")
    assert list(logged["event"]) == ["error"]
    summary = read_run(str(run_dir)).table("log_summary")
    assert list(summary["ended"]) == ["error"]


def test_concatenated_members_streams_and_frames_are_read_whole(tmp_path: Path) -> None:
    text = [("\n".join(journal_lines(40)[i * 40 : i * 40 + 40]) + "\n").encode() for i in range(4)]
    files = {
        "q.gz": b"".join(gzip.compress(t) for t in text),
        "q.xz": b"".join(lzma.compress(t) + b"\0" * 4 for t in text),  # with stream padding
        "q.zst": b"".join(zstandard.ZstdCompressor().compress(t) for t in text),
    }
    for name, data in files.items():
        (tmp_path / name).write_bytes(data)
        run_dir = tmp_path / f"run-{name}"
        done = _run(["collect", "logs", "--file", str(tmp_path / name), "--out", str(run_dir),
                     "--year", "2026"])  # fmt: skip
        assert done.returncode == 0 and "unreadable" not in done.stderr, done.stderr
        assert len(_events(run_dir)) == 160, name


def test_strict_mode_names_file_and_line_and_keeps_earlier_events(tmp_path: Path) -> None:
    lines = journal_lines(5)
    lines.insert(7, "Feb 30 10:00:00 hydra hydra-queue-runner[1]: marking build 1 as failed")
    path = tmp_path / "q.log"
    path.write_text("\n".join(lines) + "\n")
    run_dir = tmp_path / "run"
    args = ["collect", "logs", "--file", str(path), "--out", str(run_dir), "--year", "2026"]
    done = _run([*args, "--strict"])
    assert done.returncode == 1
    assert done.stderr.strip().splitlines()[-1] == (
        f"hydra-profiler: error: malformed log line {path}:8: bad date 2026-2-30"
    )
    assert len(_events(run_dir)) == 7  # the lines before the bad one
    lax = _run([*args[:-4], "--out", str(tmp_path / "lax")])
    assert lax.returncode == 0 and "1 malformed" in lax.stderr


def test_usage_errors_are_one_line(tmp_path: Path) -> None:
    for args, message in [
        (["--file", "x", "--unit", "u"], "--unit and --since go with --journal"),
        (["--stdin", "--duration", "1m"], "--duration goes with --follow"),
        (["--file", "a", "--file", "b", "--follow"], "--follow takes one --file"),
        (["--stdin", "--follow", "--poll", "0s"], "--poll must be positive"),
    ]:
        done = _run(["collect", "logs", *args, "--out", str(tmp_path / "r")])
        assert done.returncode == 2
        assert done.stderr.strip().endswith(f": {message}"), done.stderr
        assert len(done.stderr.strip().splitlines()) == 1
    missing = _run(["collect", "logs", "--file", str(tmp_path / "nope"), "--out", str(tmp_path)])
    assert missing.returncode == 1
    assert f"{tmp_path / 'nope'}: cannot read: No such file or directory" in missing.stderr


def _wait(predicate: Any, timeout: float = 60.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def test_follow_a_growing_then_rotated_file(tmp_path: Path) -> None:
    path = tmp_path / "q.log"
    first, second = journal_lines(40), journal_lines(40, pid=5555, start_build=41)
    path.write_text("\n".join(first[:20]) + "\n")
    run = Run.open(str(tmp_path / "run"))
    collector = LogCollector(run, year=2026, poll_seconds=0.05, log=lambda _m: None)
    follower = threading.Thread(
        target=collector.collect_file, args=(str(path),), kwargs={"follow": True}
    )
    follower.start()
    with open(path, "a") as f:  # grows in pieces, a line split across two writes
        for line in first[20:]:
            half = len(line) // 2
            f.write(line[:half])
            f.flush()
            time.sleep(0.002)
            f.write(line[half:] + "\n")
            f.flush()
    _wait(lambda: collector.events_written >= len(first), what="the grown lines")
    os.rename(path, tmp_path / "q.log.1")  # logrotate: move away, start a new file
    path.write_text("\n".join(second) + "\n")
    _wait(lambda: collector.events_written >= len(first) + len(second) + 1, what="rotation")
    collector.stop.set()
    follower.join(timeout=30)
    assert not follower.is_alive()
    run.close()
    events = _events(tmp_path / "run")
    started = events[events["event"] == "step_started"]["build_id"]
    assert list(started) == list(range(1, 81))  # each exactly once, in order
    restarts = events[events["event"] == "runner_restart"]
    assert list(restarts["old_pid"]) == [4242] and list(restarts["pid"]) == [5555]
    summary = read_run(str(tmp_path / "run")).table("log_summary")
    assert list(summary["ended"]) == ["stopped"]
    assert int(summary["lines"].iloc[0]) == len(first) + len(second)


def test_stdin_pipe_events_land_before_the_pipe_closes(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    proc = subprocess.Popen(
        [*CMD, "collect", "logs", "--stdin", "--out", str(run_dir), "--year", "2026"],
        stdin=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stdin is not None
    lines = journal_lines(10)
    proc.stdin.write("\n".join(lines[:20]) + "\n")
    proc.stdin.flush()

    def seen() -> int:  # records in the live segments (a line holds one record or a group)
        tables = run_dir / "tables" / "log_events"
        lines = [ln for p in tables.glob("*.jsonl") for ln in p.read_text().splitlines(True)]
        groups = [json.loads(ln) for ln in lines if ln.endswith("\n")]  # not one in flight
        return sum(len(v) if isinstance(v, list) else 1 for v in groups)

    _wait(lambda: seen() >= 20, what="events from a still-open pipe")
    _, err = proc.communicate("\n".join(lines[20:]) + "\n", timeout=60)
    assert proc.returncode == 0, err
    assert "stdin: 40 lines, 100.0% understood, 40 events" in err
    assert len(_events(run_dir)) == 40


def test_sigterm_while_following_closes_the_run(tmp_path: Path) -> None:
    path = tmp_path / "q.log"
    path.write_text("\n".join(journal_lines(5)) + "\n")
    run_dir = tmp_path / "run"
    proc = subprocess.Popen(
        [*CMD, "collect", "logs", "--file", str(path), "--follow", "--out", str(run_dir)],
        stderr=subprocess.PIPE,
        text=True,
    )
    _wait(lambda: (run_dir / "tables" / "log_events").exists(), what="the first events")
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    reader = read_run(str(run_dir))
    assert len(reader.table("log_events")) == 20
    assert list(reader.table("log_summary")["ended"]) == ["stopped"]
    assert reader.manifest["ended_utc"] is not None


def _fake_journalctl(bin_dir: Path, records: list[dict[str, Any]]) -> Path:
    """A `journalctl` that behaves like the real one at its interface: -o json records on
    stdout, -u/--since honoured by what it prints, -f keeps the pipe open until killed."""
    data = bin_dir / "records.json"
    data.write_text("\n".join(json.dumps(r, ensure_ascii=False) for r in records) + "\n")
    argv_log = bin_dir / "argv.json"
    script = bin_dir / "journalctl"
    script.write_text(
        f"""#!{sys.executable}
import json, sys, time
argv = sys.argv[1:]
open({str(argv_log)!r}, "w").write(json.dumps(argv))
if argv[argv.index("-o") + 1] != "json":
    sys.exit("fake journalctl: only -o json")
units = [argv[i + 1] for i, a in enumerate(argv) if a == "-u"]
since = argv[argv.index("--since") + 1] if "--since" in argv else None  # "@epoch" form
for line in open({str(data)!r}):
    rec = json.loads(line)
    if units and rec["_SYSTEMD_UNIT"] not in units:
        continue
    if since and int(rec["__REALTIME_TIMESTAMP"]) < int(since.lstrip("@")) * 1000000:
        continue
    sys.stdout.write(line)
sys.stdout.flush()
if "-f" in argv:
    while True:
        time.sleep(1)
"""
    )
    script.chmod(0o755)
    return argv_log


def test_journalctl_json_with_units_since_and_follow(tmp_path: Path) -> None:
    t0 = 1_795_900_000
    records = []
    for i, line in enumerate(journal_lines(6)):
        msg = line.split(": ", 1)[1]
        unit = "hydra-queue-runner.service" if i % 8 else "other.service"
        records.append(
            {
                "__REALTIME_TIMESTAMP": str((t0 + i) * 1_000_000 + 250_000),
                "_HOSTNAME": "hydra",
                "SYSLOG_IDENTIFIER": "hydra-queue-runner",
                "_SYSTEMD_UNIT": unit,
                "_PID": "77",
                "PRIORITY": "5",
                "MESSAGE": msg,
            }
        )
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    argv_log = _fake_journalctl(bin_dir, records)
    env = {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}"}
    run_dir = tmp_path / "run"
    done = _run(
        ["collect", "logs", "--journal", "--since", f"@{t0 + 4}", "--out", str(run_dir)], env=env
    )
    assert done.returncode == 0, done.stderr
    argv = json.loads(argv_log.read_text())
    assert argv[:3] == ["-o", "json", "--no-pager"]
    assert ["-u", "hydra-queue-runner.service"] == argv[4:6] and "-f" not in argv
    events = _events(run_dir)
    expected = [r for r in records[4:] if r["_SYSTEMD_UNIT"] == "hydra-queue-runner.service"]
    assert len(events) == len(expected)
    assert events["ts"].tolist() == [int(r["__REALTIME_TIMESTAMP"]) / 1e6 for r in expected]
    assert (events["priority"] == 5).all() and (events["pid"] == 77).all()

    follow_dir = tmp_path / "follow"
    proc = subprocess.Popen(
        [
            *CMD,
            "collect",
            "logs",
            "--journal",
            "--follow",
            "--duration",
            "3s",
            "--out",
            str(follow_dir),
        ],
        env=env,
        stderr=subprocess.PIPE,
        text=True,
    )
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err  # the duration ends the follow; journalctl is stopped
    assert "-f" in json.loads(argv_log.read_text())
    assert len(_events(follow_dir)) == 21  # every record of the unit


def test_journalctl_missing_is_one_line(tmp_path: Path) -> None:
    env = {**os.environ, "PATH": str(tmp_path)}
    done = _run(["collect", "logs", "--journal", "--out", str(tmp_path / "r")], env=env)
    assert done.returncode == 1
    assert done.stderr.strip().startswith("hydra-profiler: error: journalctl not found")
    assert len(done.stderr.strip().splitlines()) == 1


def test_year_guess() -> None:
    nov = 1_795_900_000.0  # 2026-11-29
    assert guess_year(11, nov) == 2026
    assert guess_year(12, nov) == 2025  # a log that starts in December and ends in November
    assert guess_year(None, nov) == 2026


def test_live_follow_of_testbed_journal_next_to_status_collector(tmp_path: Path) -> None:
    """One run holding status samples and log events for the same testbed window."""
    wl = workload.generate(8, seed=5, build_scale=0.4)
    port: list[int] = []
    box: dict[str, Any] = {}
    tb = tmp_path / "tb"

    def testbed() -> None:
        box["truth"] = run_testbed(
            wl, Knobs("cxx", "compression=xz"), str(tb), on_serving=port.append, linger_seconds=1.0
        )

    t = threading.Thread(target=testbed)
    t.start()
    _wait(lambda: bool(port) or not t.is_alive(), what="the testbed")
    journal = tb / "hydra-queue-runner.journal.txt"
    _wait(journal.exists, what="the journal")
    run_dir = tmp_path / "run"
    follower = subprocess.Popen(
        [
            *CMD,
            "collect",
            "logs",
            "--file",
            str(journal),
            "--follow",
            "--poll",
            "0.1s",
            "--out",
            str(run_dir),
        ],
        stderr=subprocess.PIPE,
        text=True,
    )
    run = Run.open(str(run_dir))
    source = HttpSource(f"http://127.0.0.1:{port[0]}/queue-runner-status", kind="status")
    collector = Collector(
        run, [source], CollectorOptions(interval_seconds=0.25, retries=0), log=print
    )
    poller = threading.Thread(target=collector.run_loop)
    poller.start()
    t.join()
    collector.stop.set()
    poller.join()
    run.close()
    steps = box["truth"]["steps"]
    n_lines = len(journal.read_text().splitlines())
    _wait(
        lambda: (
            sum(
                p.read_text().count("\n")
                for p in (run_dir / "tables" / "log_events").glob("*.jsonl")
            )
            >= sum(1 for line in journal.read_text().splitlines() if "performing step" in line)
        ),
        what="the follower to catch up",
    )
    time.sleep(0.5)
    follower.send_signal(signal.SIGTERM)
    _, err = follower.communicate(timeout=60)
    assert follower.returncode == 0, err
    reader = read_run(str(run_dir))
    assert {"samples", "log_events", "log_summary"} <= set(reader.tables())
    events = reader.table("log_events")
    summary = reader.table("log_summary")
    assert int(summary["lines"].iloc[0]) == n_lines
    assert int(summary["understood"].iloc[0]) == n_lines
    started = events[events["event"] == "step_started"]
    assert Counter(started["drv"]) == Counter(s["drv_path"] for s in steps)
    samples = reader.table("samples")
    # the same window: log events fall inside the status samples' span (give or take a poll)
    assert events["ts"].min() >= samples["ts"].min() - 2
    assert events["ts"].max() <= samples["ts"].max() + 2
