"""The testbed end to end: real cache accepted by Nix, logs in Hydra's formats, status that
behaves like the real runner's, and xz vs zstd showing the difference a farm would see."""

from __future__ import annotations

import itertools
import json
import re
import subprocess
import threading
import time
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from profiler.testbed import workload
from profiler.testbed.engine import CATEGORIES, Knobs
from profiler.testbed.run import run_testbed
from tests.conftest import NIX_ENV, nix_hash, require_tool

TYPO = "\u2018[^\u2019]+\u2019"
STORE = r"/nix/store/[0-9a-z]{32}-[^ ]+"
CXX_FORMATS = [  # reference hydra.md §2.2, as printed at -v
    r"checking the queue for builds\.\.\.",
    r"loading build \d+ \([^:]+:[^:]+:[^)]+\)",
    rf"performing step {TYPO} \d+ times on {TYPO} \(needed by build \d+ and \d+ others\)",
    rf"copying path '{STORE}' \(\d+ bytes, compressed -?\d+\.\d% in \d+ ms\) to binary cache",
    r"marking build \d+ as succeeded",
    # Nix's S3 store after each PUT (2.0-2.32, s3-binary-cache-store.cc), after the copy line
    r"uploaded 's3://[^/']+/nar/[0-9a-df-np-sv-z]{52}\.nar(?:\.\w+)?' \(\d+ bytes\) in \d+ ms",
    r"warning: \d+ concurrent database updates; PostgreSQL may be stalled",
]
# tracing-subscriber 0.3.23 compact layout (Hydra's subprojects/crates/tracing/src/lib.rs):
# timestamp, level padded to 5, span names, target, message, then the spans' fields
RUST_PREFIX = (
    r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z  INFO (?:\w+:)*(?:\w+: )?"
    r"hydra_(queue_runner|builder)::state: "
)
BASE = r"[0-9a-df-np-sv-z]{32}-[^\s/]+"  # Rust prints store paths as base names
UUID = r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"
SPAN_DRV = rf"drv=Some\(ProtoStorePath\(StorePath\({BASE}\)\)\)"
RUST_FORMATS = [  # hydra 14332fbf: state/mod.rs:1130, :1882; hydra-builder/src/state.rs
    rf"Submitting build drv={BASE}\.drv on machine={UUID} hostname=\S+ build_id=\d+ step_nr=\d+",
    rf"marking job as done: drv_path={BASE}\.drv .*drv_path={BASE}\.drv",
    rf"Building {BASE}\.drv request=Build\(BuildMessage \{{.*\}}\) {SPAN_DRV}",
    rf"Finished building {BASE}\.drv {SPAN_DRV}",
    rf"Start uploading paths using presigned urls {SPAN_DRV} .*",
    rf"Finished uploading paths using presigned urls\. elapsed=\d+(\.\d+)?(s|ms|µs) {SPAN_DRV} .*",
    rf"Successfully completed build process for {BASE}\.drv",
]
PRIORITY = {
    "checking": "5",
    "loading": "6",
    "performing": "5",
    "copying": "6",
    "marking": "5",
    "uploaded": "5",  # Nix's info level
    "warning:": "3",
}


def _poll(port_box: list[int], docs: list[Any], stop: threading.Event, path: str) -> None:
    while not stop.is_set():
        if port_box:
            req = urllib.request.Request(
                f"http://127.0.0.1:{port_box[0]}{path}", headers={"Accept": "application/json"}
            )
            try:
                with urllib.request.urlopen(req, timeout=5) as resp:
                    docs.append(json.loads(resp.read()))
            except OSError:
                pass
        stop.wait(0.3)


def run_live(
    tmp: Path, generation: str, codec: str, wl: workload.Workload, **knobs: Any
) -> tuple[dict[str, Any], list[Any]]:
    """Run the testbed while polling its status endpoint over real HTTP."""
    path = "/queue-runner-status" if generation == "cxx" else "/status"
    port: list[int] = []
    docs: list[Any] = []
    stop = threading.Event()
    poller = threading.Thread(target=_poll, args=(port, docs, stop, path))
    poller.start()
    try:
        truth = run_testbed(
            wl,
            Knobs(generation, codec, **knobs),
            str(tmp),
            snapshot_seconds=0.5,
            on_serving=port.append,
        )
    finally:
        stop.set()
        poller.join()
    return truth, docs


@pytest.fixture(scope="module")
def small() -> workload.Workload:
    return workload.generate(8, seed=3, build_scale=0.5)


@pytest.fixture(scope="module")
def cxx_run(
    tmp_path_factory: pytest.TempPathFactory, small: workload.Workload
) -> tuple[Path, dict[str, Any], list[Any]]:
    out = tmp_path_factory.mktemp("cxx")
    truth, docs = run_live(out, "cxx", "compression=xz", small, local_workers=1)
    return out, truth, docs


@pytest.fixture(scope="module")
def rust_run(
    tmp_path_factory: pytest.TempPathFactory, small: workload.Workload
) -> tuple[Path, dict[str, Any], list[Any]]:
    out = tmp_path_factory.mktemp("rust")
    truth, docs = run_live(out, "rust", "compression=zstd&compression-level=19", small)
    return out, truth, docs


def test_truth_tiles_every_step_and_attribution_sums_to_one(cxx_run: Any) -> None:
    _, truth, _ = cxx_run
    assert set(truth["attribution"]) == set(CATEGORIES)
    assert sum(truth["attribution"].values()) == pytest.approx(1.0)
    for step in truth["steps"]:
        phases = step["phases"]
        assert phases[0]["phase"] == "queued"
        assert phases[0]["start"] == step["runnable_at"]
        assert phases[-1]["end"] == step["finished_at"]
        for a, b in itertools.pairwise(phases):
            assert a["end"] == b["start"]
        assert step["nar_bytes"] > 0 and 0 < step["compressed_bytes"] < step["nar_bytes"]
    assert "emulator" in truth["emulator"]


def test_cache_is_accepted_by_real_nix(cxx_run: Any, tmp_path: Path) -> None:
    require_tool("nix", "nix-bin")
    out, truth, _ = cxx_run
    with_deps = max(truth["steps"], key=lambda s: len(s["deps"]))
    root = tmp_path / "root"
    done = subprocess.run(
        [
            "nix",
            "copy",
            "--no-check-sigs",
            "--from",
            f"file://{out / 'cache'}",
            "--to",
            str(root),
            with_deps["output_path"],
        ],
        capture_output=True,
        text=True,
        env=NIX_ENV,
    )
    assert done.returncode == 0, done.stderr
    for idx in [with_deps["index"], *with_deps["deps"]]:
        path = truth["steps"][idx]["output_path"]
        restored = root / path.lstrip("/")
        info = (out / "cache" / f"{Path(path).name[:32]}.narinfo").read_text()
        nar_hash = re.search(r"^NarHash: (\S+)$", info, re.M)
        assert nar_hash is not None
        assert nix_hash(restored) == nar_hash.group(1)


def _messages(out: Path, unit: str) -> list[dict[str, str]]:
    lines = (out / f"{unit}.journal.json").read_text().splitlines()
    return [json.loads(line) for line in lines]


def test_cxx_log_lines_match_hydra_formats(cxx_run: Any) -> None:
    out, truth, _ = cxx_run
    records = _messages(out, "hydra-queue-runner")
    assert len(records) >= 3 * len(truth["steps"])
    for r in records:
        msg = r["MESSAGE"]
        assert any(re.fullmatch(f, msg) for f in CXX_FORMATS), msg
        assert r["PRIORITY"] == PRIORITY[msg.split()[0]], msg
    raw = (out / "hydra-queue-runner.stderr").read_text().splitlines()
    assert [line[3:] for line in raw] == [r["MESSAGE"] for r in records]
    assert all(re.match(r"<[3-6]>", line) for line in raw)
    short = (out / "hydra-queue-runner.journal.txt").read_text().splitlines()
    assert all(
        re.match(r"[A-Z][a-z]{2} [ \d]\d \d\d:\d\d:\d\d hydra hydra-queue-runner\[\d+\]: ", line)
        for line in short
    )
    copying = [r for r in records if r["MESSAGE"].startswith("copying path")]
    assert len(copying) == len(truth["steps"])


def test_rust_log_lines_match_hydra_formats(rust_run: Any) -> None:
    out, truth, _ = rust_run
    # the NixOS units: hydra-queue-runner-dev, and hydra-queue-builder-dev on each builder
    units = ["hydra-queue-runner-dev"] + [
        p.name.removesuffix(".journal.json")
        for p in out.glob("hydra-queue-builder-dev-*.journal.json")
    ]
    assert len(units) > 1
    seen = 0
    for unit in units:
        for r in _messages(out, unit):
            assert re.match(RUST_PREFIX, r["MESSAGE"]), r["MESSAGE"]
            assert r["_SYSTEMD_UNIT"] in ("hydra-queue-runner-dev.service",
                                          "hydra-queue-builder-dev.service"), r  # fmt: skip
            body = re.sub(RUST_PREFIX, "", r["MESSAGE"])
            assert any(re.fullmatch(f, body) for f in RUST_FORMATS), body
            seen += 1
    assert seen >= 6 * len(truth["steps"])


def _numbers(doc: dict[str, Any], keys: list[str]) -> list[float]:
    return [doc[k] for k in keys]


def test_cxx_status_counters_grow_and_gauges_stay_in_bounds(cxx_run: Any) -> None:
    out, truth, docs = cxx_run
    snaps = [json.loads(p.read_text()) for p in sorted((out / "status").glob("*.json"))]
    assert len(docs) >= 2 and len(snaps) >= 2
    counters = [
        "nrStepsStarted",
        "nrStepsDone",
        "bytesSent",
        "bytesReceived",
        "nrBuildsDone",
        "nrDispatcherWakeups",
        "dispatchTimeMs",
    ]
    for series in (docs, snaps):
        for a, b in itertools.pairwise(series):
            for k in counters:
                assert b[k] >= a[k], k
            assert b["store"]["narWriteBytes"] >= a["store"]["narWriteBytes"]
        for d in series:
            assert d["status"] == "up" and isinstance(d["time"], int)
            assert 0 <= d["nrStepsWaitingForDownloadSlot"] <= d["nrActiveSteps"]
            assert 0 <= d["nrStepsCopyingFrom"] <= 1  # local_workers=1
            assert d["nrStepsWaiting"] == 0
            for m in d["machines"].values():
                assert 0 <= m["currentJobs"] <= 2
    final = snaps[-1]
    n = len(truth["steps"])
    assert final["nrStepsDone"] == final["nrStepsStarted"] == n
    assert set(final["machines"]) == {"ssh://build@builder-1", "ssh://build@builder-2"}
    store = final["store"]
    written = sum(s["nar_bytes"] for s in truth["steps"])
    assert store["narWriteBytes"] == written
    assert store["narWriteCompressedBytes"] == sum(s["compressed_bytes"] for s in truth["steps"])
    assert 0.5 < store["narCompressionSavings"] < 1
    # totalStepTime is in seconds (time_t sums), build time below it
    wall = sum(s["finished_at"] - s["phases"][1]["start"] for s in truth["steps"])
    assert abs(final["totalStepTime"] - wall) <= n
    assert final["totalStepBuildTime"] <= final["totalStepTime"]


def test_rust_status_shape(rust_run: Any) -> None:
    out, truth, docs = rust_run
    assert docs
    final = json.loads(sorted((out / "status").glob("*.json"))[-1].read_text())
    qr = final["queueRunner"]
    assert final["store"] is None
    assert re.match(r"\d{4}-\d\d-\d\dT", qr["time"])
    assert qr["nrStepsDone"] == len(truth["steps"])
    assert qr["totalStepUploadTimeMs"] > 0 and qr["totalStepBuildTimeMs"] > 0
    assert set(final["machines"]) == {"builder-1", "builder-2"}
    assert truth["codec"] == "zstd:3"  # presigned builders run level 19 as zstd 3


def test_metrics_endpoint_and_files(cxx_run: Any, rust_run: Any) -> None:
    from prometheus_client.parser import text_string_to_metric_families

    for out, _, _ in (cxx_run, rust_run):
        text = sorted((out / "metrics").glob("*.prom"))[-1].read_text()
        names = {f.name for f in text_string_to_metric_families(text)}
        assert any(n.startswith("hydraqueuerunner_") for n in names)


def test_xz_vs_zstd_shows_what_the_farm_would_see(tmp_path: Path, small: workload.Workload) -> None:
    xz, _ = run_live(tmp_path / "xz", "cxx", "compression=xz", small)
    zs, _ = run_live(tmp_path / "zstd", "cxx", "compression=zstd", small)
    assert xz["attribution"]["compression"] > 3 * zs["attribution"]["compression"]
    s_xz = json.loads(sorted((tmp_path / "xz" / "status").glob("*.json"))[-1].read_text())
    s_zs = json.loads(sorted((tmp_path / "zstd" / "status").glob("*.json"))[-1].read_text())
    assert s_xz["store"]["narWriteBytes"] == s_zs["store"]["narWriteBytes"]  # same bytes
    assert s_xz["store"]["narCompressionSpeed"] < s_zs["store"]["narCompressionSpeed"]
    assert s_xz["store"]["narCompressionSavings"] > s_zs["store"]["narCompressionSavings"]
    assert s_xz["store"]["narWriteCompressionTimeMs"] > s_zs["store"]["narWriteCompressionTimeMs"]


def test_cli_runs_and_prints_its_port(tmp_path: Path) -> None:
    import sys

    start = time.time()
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "profiler",
            "testbed",
            "--generation",
            "cxx",
            "--codec",
            "compression=zstd",
            "--steps",
            "4",
            "--build-scale",
            "0.2",
            "--out",
            str(tmp_path / "tb"),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    assert re.search(r"serving http://127\.0\.0\.1:\d+/queue-runner-status", done.stderr)
    assert "an emulator, not Hydra" in done.stderr
    assert "true attribution" in done.stdout
    assert (tmp_path / "tb" / "truth.json").exists()
    assert time.time() - start < 120


@pytest.mark.parametrize("generation", ["cxx", "rust"])
def test_database_rows_obey_the_generation(tmp_path: Path, db_dsn: str, generation: str) -> None:
    import psycopg

    wl = workload.generate(5, seed=9, build_scale=0.5)
    truth = run_testbed(
        wl,
        Knobs(generation, "compression=zstd", link_bytes_per_second=20e6),
        str(tmp_path / "tb"),
        pg_dsn=db_dsn,
        snapshot_seconds=0.5,
    )
    with psycopg.connect(db_dsn) as conn:
        rows = conn.execute(
            "select build, stepnr, busy, status, startTime, stopTime, machine, overhead "
            "from BuildSteps order by build"
        ).fetchall()
        builds = conn.execute("select id, finished, buildStatus from Builds order by id").fetchall()
        system = conn.execute(
            "select status from SystemStatus where what = 'queue-runner'"
        ).fetchall()
        if generation == "cxx":
            # written at startup, then only on request (NOTIFY dump_status), like the runner:
            # the row is older than the run's end unless someone asks
            assert system and system[0][0]["time"] < truth["finished_at"] - 1
    assert len(rows) == len(truth["steps"]) and all(b[1:] == (1, 0) for b in builds)
    by_build = {s["build_id"]: s for s in truth["steps"]}
    for build, stepnr, busy, status, start, stop, machine, overhead in rows:
        step = by_build[build]
        assert (stepnr, busy, status) == (1, 0, 0)
        phases = {p["phase"]: p["end"] - p["start"] for p in step["phases"]}
        if generation == "cxx":
            assert machine == f"ssh://build@{step['machine']}"
            # stop - start is the remote build only; overhead is the copy time in ms
            assert stop - start == int(step["build_stop"]) - int(step["build_start"])
            copies = phases["sending-inputs"] + sum(
                phases[p]
                for p in ("receiving-outputs", "compressing", "writing-cache", "uploading")
            )
            assert (overhead or 0) == pytest.approx(copies * 1000, abs=50)
            # each phase's row update is written before its work (updateStep: builder.cc:201-
            # 205, build-remote.cc:431,512,532,582; builder.cc:226), with the slot held until
            # the outputs are received
            order = [p["phase"] for p in step["phases"]]
            assert order[:8] == [
                "queued", "preparing", "updating-step", "connecting", "updating-step",
                "sending-inputs", "updating-step", "building",
            ]  # fmt: skip
            assert order[order.index("receiving-outputs") - 1] == "db-update"
            assert order[order.index("post-processing") - 1] == "db-update"
        else:
            assert machine == step["machine"]
            # startTime is the dispatch, not the release (set_start_time_now when the job is
            # created: hydra 14332fbf state/mod.rs:880); stop - start is the whole step from
            # there; overhead is import + upload in ms
            order = [p["phase"] for p in step["phases"]]
            dispatched = next(p["start"] for p in step["phases"] if p["phase"] == "preparing")
            assert start == int(dispatched)
            # the step row is written with the slot held, the builds' rows after (succeed_step
            # state/mod.rs:1927-1940 then :2095-2108)
            # the Connecting update is written before the job goes out (:1134-1142)
            assert order[:4] == ["queued", "preparing", "updating-step", "dispatch"]
            assert order[-3:] == ["post-processing", "finishing-step", "db-update"]
            finishing = next(p for p in step["phases"] if p["phase"] == "finishing-step")
            assert int(finishing["start"]) - stop in (0, 1)  # read just before it opens
            upload = sum(
                phases[p] for p in ("reading-outputs", "compressing", "writing-cache", "uploading")
            )
            assert overhead == pytest.approx((phases["importing"] + upload) * 1000, abs=50)
    assert (len(system) == 1) == (generation == "cxx")
