"""bench --fleet end to end on a Dask LocalCluster of two worker processes on this machine.

The fleet's deterministic figures (compressed sizes, ratios, NarSizes and NarHashes, per
payload x codec) must equal a single-process bench of the same suite; each host's task must
have run on its own worker, with the environment recorded there; a host whose payload is
missing fails in one line while the other's result is kept; compare shows both hosts.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from profiler.bench import fleet, fleet_render, fleet_view, results, run_suite
from profiler.bench.fleet_hosts import load_hosts
from tests.conftest import STRICT

try:
    import distributed
except ImportError:  # the cluster extra; CI=true installs it, so there it is a failure
    if STRICT:
        raise
    pytest.skip("distributed not installed: pip install 'hydra-profiler[cluster]'",
                allow_module_level=True)  # fmt: skip

CMD = [sys.executable, "-m", "profiler"]
FIGURES = ["payload", "codec", "nar_bytes", "compressed_bytes", "ratio", "error"]


@pytest.fixture(scope="module")
def suite(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """Two small payloads (source text; random bytes with a near-duplicate), zstd:3, xz:1."""
    root = tmp_path_factory.mktemp("fleet-payloads")
    src = root / "src"
    src.mkdir()
    here = Path(__file__).resolve().parents[2] / "profiler" / "bench"
    for path in sorted(here.glob("*.py"))[:8]:
        (src / path.name).write_bytes(path.read_bytes())
    blobs = root / "blobs"
    blobs.mkdir()
    blob = os.urandom(60_000)
    (blobs / "a.bin").write_bytes(blob)
    (blobs / "b.bin").write_bytes(blob[:-8] + b"01234567")
    toml = root / "tiny.toml"
    toml.write_text(
        f'payloads = ["{src}", "{blobs}"]\ncodecs = ["zstd:3", "xz:1"]\n'
        "min_runs = 1\nmin_time_seconds = 0\n"
    )
    return {"path": str(toml), "payloads": [str(src), str(blobs)], "codecs": ["zstd:3", "xz:1"]}


@pytest.fixture(scope="module")
def client() -> Iterator[Any]:
    with (
        distributed.LocalCluster(
            n_workers=2, processes=True, threads_per_worker=1, dashboard_address=":0"
        ) as cluster,
        distributed.Client(cluster) as c,
    ):
        c.wait_for_workers(2, timeout=60)
        yield c


def _request(suite: dict[str, Any], codecs: list[str] | None = None) -> dict[str, Any]:
    return {
        "suite": suite["path"],
        "payloads": suite["payloads"],
        "codecs": codecs or suite["codecs"],
        "options": {"min_runs": 1, "min_time_seconds": 0.0},
    }


@pytest.fixture(scope="module")
def fleet_dir(
    suite: dict[str, Any], client: Any, tmp_path_factory: pytest.TempPathFactory
) -> tuple[str, list[str]]:
    hosts = tmp_path_factory.mktemp("hosts") / "hosts.toml"
    hosts.write_text('[[host]]\nname = "builder-a"\n\n[[host]]\nname = "builder-b"\n')
    spec = load_hosts(str(hosts), local_workers=2)
    out = str(tmp_path_factory.mktemp("fleet") / "out")
    assert fleet_view.check_fleet_out(out, [h.name for h in spec.hosts])
    lines: list[str] = []
    run = fleet.run_fleet(spec, _request(suite), out, progress=lines.append, client=client)
    assert [o.status for o in run.outcomes] == ["ok", "ok"], lines
    return out, lines


def _figures(rows: pd.DataFrame) -> pd.DataFrame:
    return rows[FIGURES].sort_values(["payload", "codec"]).reset_index(drop=True)


def test_fleet_figures_equal_a_single_process_bench(
    fleet_dir: tuple[str, list[str]], suite: dict[str, Any], tmp_path: Path
) -> None:
    from profiler.bench import load_suite

    single = run_suite(load_suite(suite["path"]), str(tmp_path / "single"), name=suite["path"])
    assert single.rows["error"].isna().all()
    expected = _figures(single.rows)
    hashes = {p["name"]: p["nar_hash"] for p in single.meta["manifest"]["payloads"]}
    loaded = fleet_view.load_fleet(fleet_dir[0])
    assert sorted(loaded.results) == ["builder-a", "builder-b"]
    for host in loaded.results.values():
        pd.testing.assert_frame_equal(_figures(host.rows), expected)
        assert {p["name"]: p["nar_hash"] for p in host.meta["manifest"]["payloads"]} == hashes
        assert len(expected) == 4  # 2 payloads x 2 codecs


def test_each_host_ran_on_its_own_worker_with_its_environment(
    fleet_dir: tuple[str, list[str]], client: Any
) -> None:
    out, lines = fleet_dir
    workers = set(client.scheduler_info(n_workers=-1)["workers"])
    ran_on = []
    for name in ("builder-a", "builder-b"):
        meta = results.load_result(os.path.join(out, name)).meta
        assert meta["fleet"]["host"] == name and meta["fleet"]["payloads"] == "shared"
        assert meta["fleet"]["ran_on"] == meta["fleet"]["worker"]
        ran_on.append(meta["fleet"]["ran_on"])
        env = meta["environment"]
        assert env["cpu_model"] and env["cpu_count"] >= 1 and env["libzstd_version"]
    assert len(set(ran_on)) == 2 and set(ran_on) <= workers
    index = json.loads(Path(out, "fleet.json").read_text())
    assert [h["status"] for h in index["hosts"]] == ["ok", "ok"]
    assert index["shared_corpus"]["byte_equal"] is True
    assert sorted(line.split(":")[0] for line in lines) == ["builder-a", "builder-b"]
    assert all(": done" in line for line in lines)


def test_fleet_side_by_side(fleet_dir: tuple[str, list[str]]) -> None:
    loaded = fleet_view.load_fleet(fleet_dir[0])
    lines = fleet_render.fleet_text(loaded).splitlines()
    at = next(i for i, line in enumerate(lines) if line.startswith("codec "))
    assert lines[at - 1].split() == ["builder-a", "builder-b"]  # a column group per host
    assert lines[at].count("comp MB/s") == 2 and lines[at].count("ratio") == 2
    ratio = loaded.results["builder-a"].rows.groupby("codec")["compressed_bytes"].sum()
    nar = loaded.results["builder-a"].rows.groupby("codec")["nar_bytes"].sum()
    for codec, row in zip(("zstd:3", "xz:1"), lines[at + 2 : at + 4], strict=True):
        cells = row.split()
        assert cells[0] == codec and cells[2] == cells[4] == f"{ratio[codec] / nar[codec]:.3f}"
    assert any(line.startswith("builder-b  ok") for line in lines)
    assert "shared corpus: byte-equal on builder-a, builder-b" in lines[-1]
    doc = json.loads(fleet_render.fleet_json(loaded))
    cells = pd.DataFrame(doc["cells"])
    assert sorted(zip(cells["host"], cells["codec"], strict=True)) == sorted(
        (h, c) for h in ("builder-a", "builder-b") for c in ("zstd:3", "xz:1")
    )
    assert {h["host"]: h["status"] for h in doc["hosts"]} == {"builder-a": "ok", "builder-b": "ok"}


def test_a_host_missing_its_payload_fails_in_one_line_and_the_other_is_kept(
    suite: dict[str, Any], tmp_path: Path
) -> None:
    hosts = tmp_path / "hosts.toml"
    missing = tmp_path / "no-such-nars"
    hosts.write_text(
        f'[[host]]\nname = "good"\n\n[[host]]\nname = "bad"\npayloads = ["{missing}"]\n'
    )
    out = tmp_path / "fleet"
    done = subprocess.run(
        [*CMD, "bench", "--fleet", str(hosts), "--local-cluster", "2", "--suite", suite["path"],
         "--codec", "zstd:3", "--out", str(out)],
        capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert done.returncode == 1, done.stderr
    failed = [line for line in done.stderr.splitlines() if "FAILED" in line]
    assert len(failed) == 1 and failed[0].startswith("bad: FAILED: ") and str(missing) in failed[0]
    assert "Traceback" not in done.stderr
    index = json.loads((out / "fleet.json").read_text())
    status = {h["name"]: (h["status"], h["error"]) for h in index["hosts"]}
    assert status["good"] == ("ok", None) and status["bad"][0] == "failed"
    assert not (out / "bad").exists()
    good = results.load_result(str(out / "good"))
    assert list(good.rows["codec"].unique()) == ["zstd:3"] and good.rows["error"].isna().all()
    shown = subprocess.run([*CMD, "compare", str(out)], capture_output=True, text=True, check=True)
    assert "good" in shown.stdout and "bad: FAILED: " in shown.stdout
    assert "good" in done.stdout and "bad" in done.stdout  # bench --fleet's own table


def test_a_host_whose_worker_dies_fails_in_one_line_and_the_other_is_kept(
    suite: dict[str, Any], client: Any, tmp_path: Path
) -> None:
    """The victim measures 3 MB of random bytes with xz:6 five times (seconds); its worker
    process is killed two seconds in. Its task, pinned to that worker, must not wait for a
    worker that is gone (nor run elsewhere): the host fails, the other host's result stays."""
    big = tmp_path / "big"
    big.mkdir()
    (big / "r.bin").write_bytes(os.urandom(3_000_000))
    hosts = tmp_path / "hosts.toml"
    hosts.write_text(
        f'[[host]]\nname = "small"\n\n[[host]]\nname = "victim"\npayloads = ["{big}"]\n'
    )
    spec = load_hosts(str(hosts), local_workers=2)
    by_name = {str(w["name"]): a for a, w in client.scheduler_info(n_workers=-1)["workers"].items()}
    victim = by_name["1"]
    errors: list[BaseException] = []

    def kill() -> None:
        try:
            client.run(os._exit, 1, workers=[victim])
        except Exception as exc:  # the worker dies before it answers: that is the point
            errors.append(exc)

    timer = threading.Timer(2.0, kill)
    timer.start()
    lines: list[str] = []
    out = str(tmp_path / "fleet")
    request = {**_request(suite, ["xz:6"]), "options": {"min_runs": 5, "min_time_seconds": 0.0}}
    try:
        fleet_view.check_fleet_out(out, ["small", "victim"])
        run = fleet.run_fleet(spec, request, out, progress=lines.append, client=client)
    finally:
        timer.join()
    status = {o.host.name: (o.status, o.error) for o in run.outcomes}
    assert status["small"] == ("ok", None)
    assert status["victim"][0] == "failed" and victim in str(status["victim"][1])
    assert [line for line in lines if "FAILED" in line] == [
        f"victim: FAILED: {status['victim'][1]}"
    ]
    assert errors, "the worker answered: it was not killed"
    assert results.load_result(os.path.join(out, "small")).rows["error"].isna().all()
    client.wait_for_workers(2, timeout=60)  # the nanny restarts it before the cluster closes


def test_the_report_shows_the_fleet_given_a_fleet_directory(
    fleet_dir: tuple[str, list[str]], tmp_path: Path
) -> None:
    from tests.runhelp import make_base_run

    run = make_base_run(tmp_path / "run")
    report = tmp_path / "report.md"
    done = subprocess.run(
        [*CMD, "report", str(run), "--profiles", fleet_dir[0], "--codec", "zstd:3",
         "-o", str(report)],
        capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    text = report.read_text()
    table = text[text.index("### Fleet side by side") :].splitlines()
    header = next(line for line in table if line.startswith("| codec"))
    assert header.split(" | ")[1:] == [
        "builder-a comp MB/s", "builder-a ratio", "builder-b comp MB/s", "builder-b ratio |"
    ]  # fmt: skip
    assert "shared corpus: byte-equal on builder-a, builder-b" in text


def test_an_existing_scheduler_matches_hosts_to_workers_by_name(
    suite: dict[str, Any], tmp_path: Path
) -> None:
    """`--scheduler tcp://...` over the file's: the workers were started as builder-a and
    builder-b (as `dask worker --name` does); builder-c has no worker and fails in one line."""
    named = {
        n: {"cls": distributed.Nanny, "options": {"nthreads": 1}}
        for n in ("builder-a", "builder-b")
    }
    quiet = {"dashboard": False, "dashboard_address": ":0"}  # no HTTP server on port 8787
    scheduler = {"cls": distributed.Scheduler, "options": quiet}
    hosts = tmp_path / "hosts.toml"
    hosts.write_text(
        'scheduler = "tcp://hydra.invalid:8786"\n[[host]]\nname = "builder-a"\n'
        '[[host]]\nname = "builder-b"\n[[host]]\nname = "builder-c"\naddress = "192.0.2.77"\n'
    )
    out = tmp_path / "fleet"
    with distributed.SpecCluster(workers=named, scheduler=scheduler) as cluster:
        done = subprocess.run(
            [*CMD, "bench", "--fleet", str(hosts), "--scheduler", cluster.scheduler_address,
             "--suite", suite["path"], "--codec", "zstd:3", "--out", str(out), "--format", "json"],
            capture_output=True, text=True, timeout=300, check=False,
        )  # fmt: skip
        workers = {str(w["name"]): a for a, w in cluster.scheduler_info["workers"].items()}
    assert done.returncode == 1, done.stderr
    assert [line for line in done.stderr.splitlines() if "FAILED" in line] == [
        f"builder-c: FAILED: no worker for 192.0.2.77 on {cluster.scheduler_address}"
    ]
    doc = json.loads(done.stdout)
    assert doc["fleet"]["scheduler"] == cluster.scheduler_address
    ran = {h["name"]: (h["status"], h["worker"]) for h in doc["fleet"]["hosts"]}
    assert ran == {
        "builder-a": ("ok", workers["builder-a"]),
        "builder-b": ("ok", workers["builder-b"]),
        "builder-c": ("failed", None),
    }
    for name in ("builder-a", "builder-b"):
        meta = results.load_result(str(out / name)).meta
        assert meta["fleet"]["ran_on"] == workers[name]
    assert {c["host"] for c in doc["cells"]} == {"builder-a", "builder-b"}


def test_an_unreachable_scheduler_is_one_line_and_nothing_is_written(
    suite: dict[str, Any], tmp_path: Path
) -> None:
    from profiler.errors import BenchmarkError

    hosts = tmp_path / "hosts.toml"
    hosts.write_text('[[host]]\nname = "builder-a"\n')
    spec = load_hosts(str(hosts), scheduler="tcp://127.0.0.1:9")  # discard port: no listener
    out = tmp_path / "fleet"
    out.mkdir()
    with pytest.raises(
        BenchmarkError, match=r"^scheduler tcp://127.0.0.1:9: cannot connect: "
    ) as e:
        fleet.run_fleet(spec, _request(suite), str(out), connect_timeout_seconds=2)
    assert "\n" not in str(e.value) and list(out.iterdir()) == []
