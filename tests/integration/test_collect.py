"""Collectors against real HTTP (the testbed and a misbehaving server), real PostgreSQL,
and a real SIGKILL; rates checked against the testbed's ground truth."""

from __future__ import annotations

import contextlib
import json
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, ClassVar

import pandas as pd
import pytest

from profiler.analyze import rates
from profiler.collect.status.collector import Collector, CollectorOptions
from profiler.collect.status.sources import HttpSource, PgSource
from profiler.store import Run, read_run
from profiler.testbed import status as tb_status
from profiler.testbed import workload
from profiler.testbed.engine import Knobs
from profiler.testbed.run import run_testbed
from profiler.testbed.state import MachineState, RunnerState

CMD = [sys.executable, "-m", "profiler"]


def collect_during_testbed(
    tmp: Path, generation: str, codec: str, paths: list[str]
) -> tuple[dict[str, Any], pd.DataFrame, Path]:
    """Run the testbed and, in parallel, a collector polling its endpoints over HTTP."""
    wl = workload.generate(8, seed=5, build_scale=0.4)
    port: list[int] = []
    run_dir = tmp / "run"
    box: dict[str, Any] = {}

    def testbed() -> None:
        box["truth"] = run_testbed(
            wl,
            Knobs(generation, codec),
            str(tmp / "tb"),
            snapshot_seconds=5,
            on_serving=port.append,
            linger_seconds=1.0,
        )

    t = threading.Thread(target=testbed)
    t.start()
    while not port:
        assert t.is_alive(), "the testbed died before serving"
        time.sleep(0.01)
    run = Run.open(str(run_dir))
    kinds = {"/metrics": "metrics"}
    sources = [
        HttpSource(f"http://127.0.0.1:{port[0]}{p}", kind=kinds.get(p, "status"), timeout_seconds=5)
        for p in paths
    ]
    collector = Collector(
        run, sources, CollectorOptions(interval_seconds=0.25, retries=0), log=lambda _m: None
    )
    poller = threading.Thread(target=collector.run_loop)
    poller.start()
    t.join()
    collector.stop.set()
    poller.join()
    run.close()
    return box["truth"], read_run(str(run_dir)).table("samples"), run_dir


def _final(samples: pd.DataFrame, metric: str, source_suffix: str = "") -> float:
    sel = samples[
        (samples["metric"] == metric)
        & samples["machine"].isna()
        & samples["source"].str.endswith(source_suffix)
    ]
    return float(sel.sort_values("ts")["value"].iloc[-1])


def _phase_seconds(truth: dict[str, Any], names: set[str]) -> float:
    return sum(
        p["end"] - p["start"] for s in truth["steps"] for p in s["phases"] if p["phase"] in names
    )


def test_cxx_rates_agree_with_ground_truth(tmp_path: Path) -> None:
    truth, samples, _ = collect_during_testbed(
        tmp_path, "cxx", "compression=xz", ["/queue-runner-status", "/metrics"]
    )
    assert set(samples["generation"]) == {"cxx"}
    r = rates.counter_rates(samples)
    assert (r["rate"].dropna() >= 0).all() and not r["reset"].any()
    written = sum(s["nar_bytes"] for s in truth["steps"])
    first = samples[samples["metric"] == "nar_write_bytes_total"].sort_values("ts")
    assert _final(samples, "nar_write_bytes_total") == written
    assert (
        first["value"].iloc[0]
        + rates.total_increase(r, "nar_write_bytes_total", first["source"].iloc[0])
        == written
    )
    # Nix's compression timer covers receive + compress + write: the truth's phases
    pipeline = _phase_seconds(truth, {"receiving-outputs", "compressing", "writing-cache"})
    seconds = _final(samples, "nar_write_compression_seconds_total")
    assert seconds == pytest.approx(pipeline, rel=0.05, abs=0.05 * len(truth["steps"]))
    # compression seconds per second, from the rates, against the truth over the same span
    span = samples["ts"].max() - samples["ts"].min()
    assert rates.total_increase(
        r, "nar_write_compression_seconds_total", first["source"].iloc[0]
    ) / span == pytest.approx(pipeline / span, rel=0.1, abs=0.05)
    assert _final(samples, "steps_done_total") == len(truth["steps"])
    assert {"dispatcher_running_seconds_total", "up"} <= set(samples["metric"])


def test_rust_status_and_metrics_against_truth(tmp_path: Path) -> None:
    truth, samples, _ = collect_during_testbed(
        tmp_path, "rust", "compression=zstd&compression-level=19", ["/status", "/metrics"]
    )
    assert set(samples["generation"]) == {"rust"}
    upload = _phase_seconds(truth, {"reading-outputs", "compressing", "writing-cache", "uploading"})
    for suffix in ("/status", "/metrics"):
        got = _final(samples, "step_upload_seconds_total", suffix)
        assert got == pytest.approx(upload, abs=0.01 * len(truth["steps"]) + 0.05)
        assert _final(samples, "steps_done_total", suffix) == len(truth["steps"])
    machines = samples[samples["metric"] == "machine_current_jobs"]["machine"]
    assert set(machines) == {"builder-1", "builder-2"}


# --- a misbehaving server ---------------------------------------------------------------


def _cxx_doc(pid: int, steps: int) -> dict[str, Any]:
    state = RunnerState(
        "cxx", time.time() - 100 * pid, pid, [MachineState("b1", ["x86_64-linux"], 2)]
    )
    state.nr_steps_started = state.nr_steps_done = steps
    state.total_step_seconds = 10 * steps
    state.store.nar_write_bytes = 1000 * steps
    return tb_status.cxx_status(state, time.time(), 4)


class Scripted(BaseHTTPRequestHandler):
    """Answers with the next behaviour in ``script``; the last one repeats."""

    script: ClassVar[list[str]] = []
    calls = 0
    lock = threading.Lock()

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_GET(self) -> None:
        with Scripted.lock:
            mode = self.script[min(Scripted.calls, len(self.script) - 1)]
            Scripted.calls += 1
        if mode == "500":
            self.send_error(500, "Internal Server Error")
            return
        if mode == "hang":
            time.sleep(3)
            return
        kind, _, arg = mode.partition(":")
        body = {
            "notjson": b"<html>Bad Gateway</html>",
            "doc": json.dumps(_cxx_doc(*map(int, arg.split(","))) if arg else {}).encode(),
        }.get(kind, b"{}")
        if kind == "truncated":
            body = json.dumps(_cxx_doc(1, 1)).encode()
            self.send_response(200)
            self.send_header("Content-Length", str(len(body) + 100))
            self.end_headers()
            self.wfile.write(body)
            return
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


@pytest.fixture
def scripted() -> Iterator[tuple[str, type[Scripted]]]:
    Scripted.calls = 0
    server = ThreadingHTTPServer(("127.0.0.1", 0), Scripted)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}/queue-runner-status", Scripted
    server.shutdown()
    server.server_close()


def test_faults_are_one_line_errors_and_collection_goes_on(tmp_path: Path, scripted: Any) -> None:
    url, handler = scripted
    handler.script = ["doc:7,1", "500", "notjson", "truncated", "hang", "doc:7,2", "doc:7,3"]
    run = Run.open(str(tmp_path / "run"))
    lines: list[str] = []
    c = Collector(
        run,
        [HttpSource(url, timeout_seconds=0.5)],
        CollectorOptions(interval_seconds=0.1, duration_seconds=2.5, retries=0),
        log=lines.append,
    )
    c.run_loop()
    run.close()
    reader = read_run(str(tmp_path / "run"))
    events = reader.table("events")
    errors = events[events["event"] == "error"]["detail"].tolist()
    assert any("HTTP 500" in e for e in errors)
    assert any("not JSON" in e for e in errors)
    assert any("truncated" in e for e in errors)
    assert any("timed out" in e or "unreachable" in e for e in errors)
    assert all("\n" not in line for line in lines)
    done = reader.table("samples")
    done = done[done["metric"] == "steps_done_total"]
    assert {1.0, 2.0, 3.0} <= set(done["value"])  # before and after the faults


def test_restart_mid_run_never_gives_negative_rates(tmp_path: Path, scripted: Any) -> None:
    url, handler = scripted
    handler.script = ["doc:7,10", "doc:7,20", "doc:8,2", "doc:8,5"]
    run = Run.open(str(tmp_path / "run"))
    c = Collector(
        run,
        [HttpSource(url)],
        CollectorOptions(interval_seconds=0.1, duration_seconds=0.35, retries=0),
        log=lambda _m: None,
    )
    c.run_loop()
    run.close()
    reader = read_run(str(tmp_path / "run"))
    assert "restart" in set(reader.table("events")["event"])
    r = rates.counter_rates(reader.table("samples"))
    steps = r[r["metric"] == "steps_done_total"].sort_values("ts")
    assert steps["increase"].tolist() == [10.0, 2.0, 3.0]
    assert steps["reset"].tolist() == [False, True, False]
    assert (steps["rate"] >= 0).all()
    done = subprocess.run(
        [*CMD, "export", str(tmp_path / "run"), "rates", "--format", "json"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    exported = [r for r in json.loads(done.stdout) if r["metric"] == "steps_done_total"]
    assert [r["increase"] for r in exported] == [10.0, 2.0, 3.0]


def _answer_dump_status(dsn: str, doc: dict[str, Any], stop: threading.Event) -> None:
    """What the C++ runner's main thread does: LISTEN dump_status, rewrite the row, NOTIFY
    status_dumped (hydra-queue-runner.cc dumpStatus at a40d4286)."""
    import psycopg

    from profiler.testbed.db import HydraDb

    with psycopg.connect(dsn, autocommit=True) as conn, HydraDb(dsn) as db:
        conn.execute("listen dump_status")
        while not stop.is_set():
            for _ in conn.notifies(timeout=0.2, stop_after=1):
                db.write_system_status(json.dumps({**doc, "time": int(time.time())}))


def test_system_status_row_absent_stale_and_fresh(tmp_path: Path, db_dsn: str) -> None:
    from profiler.testbed.db import HydraDb

    with HydraDb(db_dsn) as db, contextlib.closing(PgSource(db_dsn, wait_seconds=0.5)) as src:
        db.create_schema()
        # no row (a Rust runner never writes one): said so, not "down"
        [absent] = src.fetch()
        assert absent.doc is None and "Rust queue runner does not write it" in (absent.note or "")
        # a row nobody refreshes: kept with its own time, and said to be stale
        old = {**_cxx_doc(42, 9), "time": int(time.time()) - 93 * 86400}
        db.write_system_status(json.dumps(old))
        [stale] = src.fetch()
        assert stale.doc["pid"] == 42 and stale.ts == old["time"]
        assert "93 days old" in (stale.note or "") and "not live" in (stale.note or "")
        # a runner that answers NOTIFY dump_status: a fresh document, no note
        stop = threading.Event()
        answer = threading.Thread(
            target=_answer_dump_status, args=(db_dsn, _cxx_doc(43, 11), stop), daemon=True
        )
        answer.start()
        try:
            time.sleep(0.3)
            [fresh] = src.fetch()
        finally:
            stop.set()
            answer.join()
    assert fresh.note is None and fresh.doc["pid"] == 43 and fresh.doc["nrStepsDone"] == 11
    assert abs(fresh.ts - time.time()) < 10
    with HydraDb(db_dsn) as db:
        db.write_system_status(json.dumps(old))
    done = subprocess.run(
        [*CMD, "collect", "status", "--pg", db_dsn, "--once", "--out", str(tmp_path / "run")],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert "days old" in done.stderr and "not live" in done.stderr
    reader = read_run(str(tmp_path / "run"))
    samples = reader.table("samples")
    done_total = samples[samples["metric"] == "steps_done_total"]
    assert done_total["value"].tolist() == [9.0]
    assert done_total["ts"].tolist() == [float(old["time"])]  # the document's time, not now
    events = reader.table("events")
    assert "stale" in set(events["event"])


def test_sigkill_during_collection_keeps_the_run(tmp_path: Path, scripted: Any) -> None:
    url, handler = scripted
    handler.script = [f"doc:3,{i}" for i in range(1, 400)]
    out = tmp_path / "run"
    proc = subprocess.Popen(
        [*CMD, "collect", "status", "--url", url, "--interval", "0.01", "--out", str(out)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    time.sleep(2.0)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    reader = read_run(str(out))
    seen = reader.table("samples")
    assert len(seen) > 100
    assert len(reader.warnings) <= 2  # at most the record in flight per table
    again = subprocess.run(
        [*CMD, "collect", "status", "--url", url, "--once", "--out", str(out)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert again.returncode == 0, again.stderr
    assert len(read_run(str(out)).table("samples")) > len(seen)


def test_sigterm_closes_cleanly(tmp_path: Path, scripted: Any) -> None:
    url, handler = scripted
    handler.script = ["doc:3,1"]
    out = tmp_path / "run"
    proc = subprocess.Popen(
        [*CMD, "collect", "status", "--url", url, "--interval", "0.2", "--out", str(out)],
        stderr=subprocess.PIPE,
        text=True,
    )
    time.sleep(1.5)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    manifest = read_run(str(out)).manifest
    assert manifest["ended_utc"] and manifest["sources"][0]["ended_utc"]


def test_secrets_never_reach_logs_or_manifest(tmp_path: Path) -> None:
    url = "http://admin:hunter2@127.0.0.1:9/queue-runner-status?token=s3cr3t"
    done = subprocess.run(
        [
            *CMD,
            "collect",
            "status",
            "--url",
            url,
            "--once",
            "--timeout",
            "1s",
            "--out",
            str(tmp_path / "run"),
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 1
    text = done.stderr + (tmp_path / "run" / "manifest.json").read_text()
    text += "".join(p.read_text() for p in (tmp_path / "run").rglob("*.jsonl"))
    assert "hunter2" not in text and "s3cr3t" not in text
    assert "unreachable" in done.stderr


def test_usage_errors_are_one_line() -> None:
    done = subprocess.run(
        [*CMD, "collect", "status", "--out", "/tmp/x"], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 2
    assert done.stderr.count("\n") == 1 and "give at least one source" in done.stderr


DATA = Path(__file__).resolve().parents[1] / "data" / "status"


def test_file_sources_snapshot_directory_journal_and_command(tmp_path: Path) -> None:
    snaps = tmp_path / "snaps"
    snaps.mkdir()
    for name in ("cxx-2018.json", "cxx-2025.json", "cxx-down.json"):
        (snaps / name).write_bytes((DATA / name).read_bytes())
    out = str(tmp_path / "run")
    for argv in (
        ["--file", str(snaps)],
        ["--file", f"file://{DATA / 'journal-status-2018.txt'}"],
        ["--command", f"cat {DATA / 'cxx-2025.json'}", "--once"],
    ):
        done = subprocess.run(
            [*CMD, "collect", "status", *argv, "--out", out],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert done.returncode == 0, done.stderr
    samples = read_run(out).table("samples")
    by_source = samples.groupby("source")["ts"].nunique()
    assert by_source[str(snaps)] == 3  # one time per snapshot, taken from the documents
    journal = [s for s in by_source.index if "journal-status-2018" in s]
    assert sum(by_source[s] for s in journal) == 2
    up = samples[(samples["metric"] == "up") & (samples["source"] == str(snaps))]
    assert sorted(up["value"]) == [0.0, 1.0, 1.0]


def test_rust_endpoint_urls(tmp_path: Path) -> None:
    wl = workload.generate(3, seed=2, build_scale=0.2)
    port: list[int] = []
    t = threading.Thread(
        target=run_testbed,
        args=(wl, Knobs("rust", "compression=zstd"), str(tmp_path / "tb")),
        kwargs={"on_serving": port.append, "linger_seconds": 2.0},
    )
    t.start()
    while not port:
        assert t.is_alive()
        time.sleep(0.01)
    done = subprocess.run(
        [
            *CMD,
            "collect",
            "status",
            "--url",
            f"http://127.0.0.1:{port[0]}/status/machines",
            "--once",
            "--out",
            str(tmp_path / "run"),
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    t.join()
    assert done.returncode == 0, done.stderr
    samples = read_run(str(tmp_path / "run")).table("samples")
    assert set(samples["generation"]) == {"rust"}
    assert {"builder-1", "builder-2"} <= set(samples["machine"].dropna())
