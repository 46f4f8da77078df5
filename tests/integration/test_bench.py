"""The bench harness end to end: real worker processes, real codecs, a real result dir."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from profiler.bench import derive, harness, results
from profiler.errors import BenchmarkError, FormatVersionError
from profiler.payloads import resolve as payloads

CMD = [sys.executable, "-m", "profiler"]


@pytest.fixture(scope="module")
def tree(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small tree with text, near-duplicate binaries and incompressible bytes."""
    root = tmp_path_factory.mktemp("payload") / "t"
    root.mkdir()
    here = Path(__file__).resolve().parents[2] / "profiler"
    shutil.copytree(here, root / "src", ignore=shutil.ignore_patterns("__pycache__"))
    (root / "rand.bin").write_bytes(os.urandom(200_000))
    blob = os.urandom(150_000)
    (root / "a.bin").write_bytes(blob)
    (root / "b.bin").write_bytes(blob[:-10] + b"0123456789")
    return root


@pytest.fixture(scope="module")
def result(tree: Path, tmp_path_factory: pytest.TempPathFactory) -> results.StoredResult:
    out = tmp_path_factory.mktemp("res") / "r"
    found = payloads.resolve([str(tree), str(tree / "src")])
    res = harness.run_bench(
        found,
        ["xz:6", "zstd:3", "zstd:19:long=27", "gzip:6", "none"],
        harness.BenchOptions(min_runs=2, min_time_seconds=0.05),
    )
    results.write_result(str(out), res.meta, res.rows, res.samples)
    return results.load_result(str(out))


def test_every_cell_has_figures(result: results.StoredResult, tree: Path) -> None:
    rows = result.rows
    assert len(rows) == 10 and rows["error"].isna().all()
    from profiler import nar

    _, size = nar.hash_path(tree)
    t = rows[rows["payload"] == "t"].set_index("codec")
    assert (t["nar_bytes"] == size).all()
    assert t.loc["none", "ratio"] == 1.0
    assert t.loc["xz:6", "ratio"] < t.loc["gzip:6", "ratio"] < 1
    for col in ("compress_best_seconds", "decompress_best_seconds", "compress_cpu_seconds"):
        assert (t[col] > 0).all(), col
    assert (t["compress_median_seconds"] >= t["compress_best_seconds"]).all()
    assert (t["compress_runs"] >= 2).all()
    # xz-6's encoder needs tens of MiB (94 MiB by the manual, less on small inputs)
    assert t.loc["xz:6", "compress_peak_bytes"] > 8 << 20
    assert t.loc["zstd:3", "compress_peak_bytes"] < t.loc["xz:6", "compress_peak_bytes"]


def test_samples_and_metadata(result: results.StoredResult) -> None:
    s = result.samples
    assert set(s.columns) == {"payload", "codec", "phase", "run", "wall_seconds", "cpu_seconds"}
    assert set(s["phase"]) == {"compress", "decompress"}
    env = result.meta["environment"]
    for key in (
        "cpu_model",
        "cpu_count",
        "kernel",
        "python",
        "liblzma_version",
        "libzstd_version",
        "profiler_version",
        "time_utc",
    ):
        assert env[key], key
    assert env["time_utc"].endswith("+00:00")
    rows = result.meta["manifest"]["payloads"]
    assert [r["name"] for r in rows] == ["t", "src"]
    assert all(r["nar_hash"].startswith("sha256:") for r in rows)


def test_derived_figures(result: results.StoredResult) -> None:
    table = derive.overall(result.rows)
    ok = result.rows
    xz = ok[ok["codec"] == "xz:6"]
    assert table.loc["xz:6", "ratio"] == pytest.approx(
        xz["compressed_bytes"].sum() / xz["nar_bytes"].sum()
    )
    a = derive.Assumptions(
        daily_nar_bytes=2 * derive.GiB,
        storage_usd_per_tb_month=10,
        client_link_bits_per_second=8e6,
        uplink_bits_per_second=8e6,
    )
    view = derive.operator_view(table, a)
    assert view.loc["xz:6", "size_vs_baseline"] == 1.0
    per_gib = table.loc["xz:6", "compress_cpu_seconds_per_gib"]
    assert view.loc["xz:6", "cpu_hours_per_day"] == pytest.approx(2 * per_gib / 3600)
    none = table.loc["none"]
    # 1 GiB over 1 MB/s takes 1073.7 s, plus decompression
    assert view.loc["none", "client_seconds_per_gib"] == pytest.approx(
        derive.GiB / 1e6 + derive.GiB / (none["decompress_mb_per_s"] * 1e6)
    )
    assert view.loc["none", "stored_tb_per_month"] == pytest.approx(2 * derive.GiB * 30 / 1e12)
    assert "xz:6" in derive.pareto_codecs(table) or "zstd:19:long=27" in derive.pareto_codecs(table)
    classes = derive.per_class(result.rows)
    assert list(classes.index) == ["user", "all"]


def test_round_trip_failure_is_a_failed_cell_not_a_number(
    tree: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    # a codec whose decompressor corrupts one byte: the worker must refuse to report figures
    plugin = tmp_path / "sitecustomize.py"
    plugin.write_text(
        "import profiler.codecs.run as c\n"
        "orig = c._gzip\n"
        "def broken(spec):\n"
        "    codec = orig(spec)\n"
        "    return c.Codec(spec, codec.compress, lambda d: b'X' + codec.decompress(d)[1:])\n"
        "c._gzip = broken\n"
    )
    monkeypatch.setenv("PYTHONPATH", f"{tmp_path}{os.pathsep}{os.environ.get('PYTHONPATH', '')}")
    res = harness.run_bench(
        payloads.resolve([str(tree / "src")]),
        ["gzip:6", "zstd:3"],
        harness.BenchOptions(min_runs=1, min_time_seconds=0.0),
    )
    gz, zs = res.rows
    assert "round trip failed" in gz["error"] and pd.isna(gz["ratio"])
    assert zs["error"] is None and zs["ratio"] < 1


def test_result_format_version_is_checked(result: results.StoredResult, tmp_path: Path) -> None:
    copy = tmp_path / "copy"
    shutil.copytree(result.path, copy)
    meta = json.loads((copy / "meta.json").read_text())
    assert meta["format_version"] == results.FORMAT_VERSION
    meta["format_version"] = results.FORMAT_VERSION + 1
    (copy / "meta.json").write_text(json.dumps(meta))
    with pytest.raises(FormatVersionError, match="upgrade hydra-profiler"):
        results.load_result(str(copy))
    with pytest.raises(BenchmarkError, match=r"no meta\.json"):
        results.load_result(str(tmp_path))


def test_frozen_v1_result_still_loads() -> None:
    frozen = Path(__file__).resolve().parents[1] / "data" / "bench-v1"
    stored = results.load_result(str(frozen))
    assert stored.meta["format_version"] == 1
    assert len(stored.rows) and stored.rows["error"].isna().all()
    assert derive.overall(stored.rows).index.tolist() == ["xz:6", "zstd:3"]


def test_cli_bench_json_and_plots(tree: Path, tmp_path: Path) -> None:
    out = tmp_path / "cli"
    done = subprocess.run(
        [
            *CMD,
            "bench",
            str(tree / "src"),
            "--codec",
            "xz:1",
            "--codec",
            "compression=zstd&compression-level=19&as=rust-presigned",
            "--repeat",
            "1",
            "--min-time",
            "0",
            "--out",
            str(out),
            "--format",
            "json",
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    doc = json.loads(done.stdout)
    assert [c["codec"] for c in doc["codecs"]] == ["xz:1", "zstd:3"]
    assert "maps level 19 to 3" in doc["cells"][1]["notes"]
    assert "[2/2] src" in done.stderr  # progress
    for name in ("meta.json", "results.parquet", "samples.parquet", "tradeoff.png"):
        assert (out / name).stat().st_size > 0, name


def test_cli_bench_table_and_compare(result: results.StoredResult) -> None:
    done = subprocess.run(
        [*CMD, "compare", result.path, result.path], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    assert "xz:6" in done.stdout and "same" in done.stdout


def test_cli_bench_rejects_bad_codec_before_reading(tmp_path: Path) -> None:
    done = subprocess.run(
        [*CMD, "bench", "--codec", "xz:12", "--out", str(tmp_path / "x")],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2
    assert "level 12 out of range for xz" in done.stderr and "Traceback" not in done.stderr
    assert not (tmp_path / "x").exists()
