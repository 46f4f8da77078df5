"""collect history against a real Prometheus (Debian's ``prometheus``) scraping the testbed's
``/metrics`` every second, while a live collector polls the same endpoint; the testbed is
restarted (a new process: counters start again) in the middle."""

from __future__ import annotations

import contextlib
import json
import re
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from profiler.analyze import rates
from profiler.collect.status.collector import Collector, CollectorOptions
from profiler.collect.status.sources import HttpSource
from profiler.store import Run, read_run
from profiler.testbed.pgserver import free_port
from tests.conftest import require_tool

CMD = [sys.executable, "-m", "profiler"]
SCRAPE_SECONDS = 1.0
LIVE_SECONDS = 0.2
LABELS = ["metric", "machine", "machine_type", "jobset", "bucket"]
# values that are times: they move between a scrape and the live poll next to it
CLOCKS = {"status_time_seconds", "uptime_seconds"}
TESTBED = """
import sys
from profiler.testbed import workload
from profiler.testbed.engine import Knobs
from profiler.testbed.run import run_testbed
wl = workload.generate(int(sys.argv[5]), seed=int(sys.argv[3]), build_scale=0.8)
run_testbed(wl, Knobs(sys.argv[4], "compression=zstd"), sys.argv[2], port=int(sys.argv[1]),
            linger_seconds=2.5)
"""


def _get_json(url: str) -> dict:
    with urllib.request.urlopen(url, timeout=5) as resp:
        return json.loads(resp.read())


@contextlib.contextmanager
def prometheus(tmp: Path, target_port: int) -> Iterator[str]:
    """A real Prometheus scraping 127.0.0.1:target_port/metrics every second; its URL, once
    it has tried the target (its discovery takes a few seconds)."""
    exe = require_tool("prometheus", "prometheus")
    port = free_port()
    config = tmp / "prometheus.yml"
    config.write_text(
        f"global:\n  scrape_interval: {SCRAPE_SECONDS:g}s\n"
        "scrape_configs:\n  - job_name: hydra\n    static_configs:\n"
        f'      - targets: ["127.0.0.1:{target_port}"]\n'
    )
    url = f"http://127.0.0.1:{port}"
    with open(tmp / "prometheus.log", "wb") as log:
        proc = subprocess.Popen(
            [
                exe,
                f"--config.file={config}",
                f"--storage.tsdb.path={tmp / 'tsdb'}",
                f"--web.listen-address=127.0.0.1:{port}",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        try:
            _wait_for_first_scrape(url, proc, tmp / "prometheus.log")
            yield url
        finally:
            proc.terminate()
            proc.wait(timeout=30)


def _wait_for_first_scrape(url: str, proc: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        assert proc.poll() is None, f"prometheus exited: {log.read_text()[-2000:]}"
        with contextlib.suppress(OSError):
            targets = _get_json(f"{url}/api/v1/targets")["data"]["activeTargets"]
            if targets and not targets[0]["lastScrape"].startswith("0001-"):
                return
        time.sleep(0.2)
    raise AssertionError(f"prometheus never scraped its target: {log.read_text()[-2000:]}")


def _testbed(port: int, out: Path, steps: int, generation: str) -> dict:
    """One testbed process serving on ``port`` until its workload is done; its truth."""
    subprocess.run(
        [sys.executable, "-c", TESTBED, str(port), str(out), str(steps), generation, str(steps)],
        check=True,
        timeout=120,
        capture_output=True,
    )
    return json.loads((out / "truth.json").read_text())


def _live_collector(url: str, run_dir: Path) -> tuple[Collector, threading.Thread, Run]:
    run = Run.open(str(run_dir))
    src = HttpSource(url, kind="metrics", timeout_seconds=2)
    options = CollectorOptions(interval_seconds=LIVE_SECONDS, retries=0)
    collector = Collector(run, [src], options, log=lambda _m: None)
    thread = threading.Thread(target=collector.run_loop)
    thread.start()
    return collector, thread, run


def _history(
    prom: str, since: float, until: float, out: Path, source: str = "--prometheus"
) -> subprocess.CompletedProcess:
    args = ["--since", f"{since:.3f}", "--until", f"{until:.3f}", "--step", "1s"]
    return subprocess.run(
        [*CMD, "collect", "history", source, prom, *args, "--chunk", "4s", "--out", out],
        capture_output=True,
        text=True,
        timeout=120,
    )


def _unmatched(imported: pd.DataFrame, live: pd.DataFrame) -> list[str]:
    """Imported rows without a live row of the same series and value taken within one scrape
    interval of ``t`` (or between two consecutive ones), the evaluation time: the scrape
    Prometheus stamped with its start lies
    in (t - 1 s, t], and the document it got describes a moment after that start (by the
    testbed's answer time: 0.3-0.5 s seen once on this 2-core machine under load); the live
    collector polls every 0.2 s. A value may have been passed through between two polls (4
    S3 puts seen by Prometheus, 2 then 6 live; 7 builds queued, 8 then 6 live): between two
    consecutive live values counts as seen (from 0 for a counter that went down: the new
    process's zeros, scraped at its start, lasted less than the live collector's retry
    after the refused connections). A gauge may also show a state shorter than a
    poll and not between its neighbours (``steps_building`` 0 for the moment between two
    steps, 1 in every live poll 3 s around): see the caller."""
    by_series = {
        key: (g["ts"].to_numpy(), g["value"].to_numpy())
        for key, g in live.fillna(dict.fromkeys(LABELS[1:], "")).groupby(LABELS)
    }
    missing = []
    rows = imported.fillna(dict.fromkeys(LABELS[1:], ""))
    for key, g in rows.groupby(LABELS):
        ts_live, v_live = by_series.get(key, (np.array([]), np.array([])))
        tol = 1.5 if key[0] in CLOCKS else 1e-9
        counter = set(g["kind"]) == {"counter"}
        for t, v in zip(g["ts"], g["value"], strict=True):
            near = (ts_live >= t - SCRAPE_SECONDS - LIVE_SECONDS) & (ts_live <= t + SCRAPE_SECONDS)
            seen = v_live[near]
            lo, hi = np.minimum(seen[:-1], seen[1:]), np.maximum(seen[:-1], seen[1:])
            if counter:  # a counter that went down restarted from 0 in between
                lo = np.where(seen[1:] < seen[:-1], 0.0, lo)
            passed = np.any((lo <= v) & (v <= hi))  # passed through between two polls
            if not (passed or np.any(np.abs(seen - v) <= tol)):
                around = (ts_live >= t - 3) & (ts_live <= t + 2)
                seen = list(zip(ts_live[around] - t, v_live[around], strict=True))
                kind = "counter" if counter else "gauge"
                missing.append(f"{kind} {key} at {t}: {v}; live around (dt, value): {seen}")
    return missing


def _counted(samples: pd.DataFrame, metric: str) -> float:
    """What a machine-less counter counted over the window by the analysis' rates (resets
    handled), plus its first value (counted before the first sample)."""
    sel = samples[(samples["metric"] == metric) & samples["machine"].isna()]
    first = float(sel.sort_values("ts")["value"].iloc[0])
    return first + rates.total_increase(rates.counter_rates(samples), metric)


@pytest.mark.parametrize("generation", ["rust", "cxx"])
def test_history_equals_live_across_a_restart(tmp_path: Path, generation: str) -> None:
    tb_port = free_port()
    metrics = f"http://127.0.0.1:{tb_port}/metrics"
    with prometheus(tmp_path, tb_port) as prom:
        collector, poller, live_run = _live_collector(metrics, tmp_path / "live")
        since = time.time()
        try:
            # the second process does fewer steps, so its counters come back below the
            # first's: the C++ /metrics has no pid or uptime, and a restart whose counters are
            # back at or above the old values by the next sample is invisible to the rates
            # (live or imported alike: 8 steps counted of 16 with two processes of 8)
            truth = [_testbed(tb_port, tmp_path / f"tb{n}", n, generation) for n in (8, 5)]
        finally:
            collector.stop.set()
            poller.join()
            live_run.close()
        until = time.time()
        done = _history(prom, since, until, tmp_path / "hist")
        assert done.returncode == 0, done.stderr
        again = _history(prom, since, until, tmp_path / "hist")  # resumes: nothing new
        mid = since + (until - since) / 2
        first_half = _history(prom, since, mid, tmp_path / "halves")
        second_half = _history(prom, since, until, tmp_path / "halves")
    assert "chunk 1/" in done.stderr and "resuming" in again.stderr, done.stderr + again.stderr
    assert first_half.returncode == second_half.returncode == 0, second_half.stderr

    live = read_run(str(tmp_path / "live")).table("samples")
    imported = read_run(str(tmp_path / "hist")).table("samples")
    # the same rows as live collection: source, generation, metric names, labels
    assert set(imported["source"]) == set(live["source"]) == {metrics}
    assert set(imported["generation"]) == {generation}
    assert set(imported["metric"]) == set(live["metric"])
    assert imported["ts"].nunique() >= 10  # both processes' lifetimes, every second
    missing = _unmatched(imported, live)
    said = f"{len(missing)} imported rows not seen live:\n" + "\n".join(missing)
    assert not [m for m in missing if m.startswith("counter")], said
    # gauges: at most 1 row in 200 in a state shorter than a live poll (measured on this
    # machine: 1 Rust gauge row of 336 in 1 run of 8, none in the other 7)
    assert len(missing) <= (imported["kind"] == "gauge").sum() / 200, said
    # the restart: the analysis' rates see the counters reset (and the Rust uptime go down)
    if generation == "rust":
        uptime = imported[imported["metric"] == "uptime_seconds"].sort_values("ts")["value"]
        assert (uptime.diff() < 0).sum() == 1
    steps = sum(len(t["steps"]) for t in truth)
    counter = "steps_done_total" if generation == "rust" else "queue_steps_created_total"
    assert _counted(imported, counter) == _counted(live, counter) == steps
    # resumable: the second run added nothing; two halves give the one-shot import's rows
    assert len(read_run(str(tmp_path / "hist")).table("samples")) == len(imported)
    halves = read_run(str(tmp_path / "halves")).table("samples")
    assert _rows(halves) == _rows(imported)
    _check_storage_inputs(tmp_path, since, until, live, steps, counter)
    _check_report(tmp_path / "hist", generation)


def _check_report(run: Path, generation: str) -> None:
    """The imported history alone, reported: Rust's /metrics has step times (a farm-level
    answer, the queue depth over UTC time); C++'s has none, and the one-line error says so
    and what to add."""
    done = subprocess.run([*CMD, "report", str(run), "-o", str(run.parent / "r.md")],
                          capture_output=True, text=True, timeout=120)  # fmt: skip
    if generation == "rust":
        assert done.returncode == 0, done.stderr
        text = (run.parent / "r.md").read_text(encoding="utf-8")
        assert re.search(r"Step lines over time \(\d{4}-\d\d-\d\d [\d:]+ to [\d:]+ UTC\)", text)
    else:
        assert done.returncode == 1
        error = done.stderr.strip().splitlines()
        assert len(error) == 2 and "no step times" in error[-1] and "collect status" in error[-1]


def _check_storage_inputs(
    tmp_path: Path, since: float, until: float, live: pd.DataFrame, steps: int, counter: str
) -> None:
    """The stopped server's TSDB (--tsdb, read by promtool) and the text `promtool tsdb dump`
    printed of it (--promtool-dump): every scraped point at its scrape time, the same rows as
    live collection within a scrape interval, the same count across the restart, and the
    same rows from both forms."""
    tsdb = tmp_path / "tsdb"
    from_tsdb = _history(str(tsdb), since, until, tmp_path / "from-tsdb", "--tsdb")
    assert from_tsdb.returncode == 0, from_tsdb.stderr
    assert "no metadata" in from_tsdb.stderr  # said, then histograms recognised by le
    stored = read_run(str(tmp_path / "from-tsdb")).table("samples")
    assert set(stored["metric"]) == set(live["metric"])
    assert set(stored["source"]) == {f"hydra/{live['source'].iloc[0].split('/')[2]}"}
    assert stored["ts"].nunique() >= 10 and (stored["ts"] * 1000 % 1 == 0).all()  # ms stamps
    missing = _unmatched(stored, live)
    said = f"{len(missing)} TSDB rows not seen live:\n" + "\n".join(missing)
    assert not [m for m in missing if m.startswith("counter")], said
    assert len(missing) <= (stored["kind"] == "gauge").sum() / 200, said
    assert _counted(stored, counter) == steps
    promtool = require_tool("promtool", "prometheus")
    dump = tmp_path / "dump.txt"
    with open(dump, "w", encoding="utf-8") as out:
        subprocess.run([promtool, "tsdb", "dump", str(tsdb)], stdout=out, check=True, timeout=120)
    from_dump = _history(str(dump), since, until, tmp_path / "from-dump", "--promtool-dump")
    assert from_dump.returncode == 0, from_dump.stderr
    assert _rows(read_run(str(tmp_path / "from-dump")).table("samples")) == _rows(stored)


def _rows(samples: pd.DataFrame) -> list[tuple[object, ...]]:
    cols = ["ts", *LABELS, "value"]
    return sorted(
        samples[cols].astype(object).where(samples[cols].notna(), "").itertuples(index=False)
    )
