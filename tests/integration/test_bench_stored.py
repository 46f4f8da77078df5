"""The "stored" reference row: what a real Nix-made ``file://`` cache holds per NAR."""

from __future__ import annotations

import glob
import json
import os
from pathlib import Path

import pytest

from profiler.bench import derive, harness, render
from profiler.payloads import resolve as payloads
from tests.conftest import add_to_store, make_example_tree, nix_copy, require_tool


@pytest.fixture(scope="module")
def store_path(tmp_path_factory: pytest.TempPathFactory) -> str:
    require_tool("nix-store", "nix-bin")
    tree = make_example_tree(tmp_path_factory.mktemp("src"))
    (tree / "text.txt").write_text(" ".join(f"line {i}" for i in range(40_000)))
    return add_to_store(tree)


def cache(store_path: str, dest: Path, method: str) -> Path:
    return nix_copy(store_path, dest, f"compression={method}")


def narinfo_field(cache_dir: Path, key: str) -> str:
    [path] = glob.glob(str(cache_dir / "*.narinfo"))
    with open(path, encoding="utf-8") as f:
        return next(ln.split(":", 1)[1].strip() for ln in f if ln.startswith(f"{key}:"))


def bench(cache_dir: Path) -> harness.BenchResult:
    progress: list[str] = []
    res = harness.run_bench(
        payloads.resolve([str(cache_dir)]),
        ["zstd:3"],
        harness.BenchOptions(min_runs=1, min_time_seconds=0),
        progress.append,
    )
    res.meta["progress"] = progress
    return res


@pytest.mark.parametrize("method", ["xz", "zstd"])
def test_stored_row_is_what_the_narinfo_and_nar_file_say(
    store_path: str, tmp_path: Path, method: str
) -> None:
    where = cache(store_path, tmp_path / "c", method)
    res = bench(where)
    [row] = res.meta["stored"]
    [nar_file] = glob.glob(str(where / "nar" / f"*.nar.{'zst' if method == 'zstd' else method}"))
    assert row["method"] == method == narinfo_field(where, "Compression")
    assert row["method_from"] == "narinfo Compression"
    assert row["compressed_bytes"] == os.path.getsize(nar_file)
    assert row["compressed_bytes"] == int(narinfo_field(where, "FileSize"))
    assert row["nar_bytes"] == int(narinfo_field(where, "NarSize"))
    assert row["ratio"] == row["compressed_bytes"] / row["nar_bytes"] < 0.5
    assert any(f"stored as {method}" in m for m in res.meta["progress"])
    # the measured cells are untouched: one codec, no stored row among them
    assert [r["codec"] for r in res.rows] == ["zstd:3"]


def test_stored_row_is_in_the_tables_and_json(store_path: str, tmp_path: Path) -> None:
    import pandas as pd

    res = bench(cache(store_path, tmp_path / "c", "xz"))
    rows = pd.DataFrame(res.rows)
    text = render.text_report(rows, res.meta, derive.Assumptions())
    payload_rows = text.split("Per payload (")[1].splitlines()
    stored_line = next(ln for ln in payload_rows if "stored:xz" in ln)
    assert f"{res.meta['stored'][0]['ratio']:.3f}" in stored_line
    assert "stored in cache" in stored_line
    assert "What the cache stores (reference, not measured" in text
    doc = json.loads(render.json_report(rows, res.meta, derive.Assumptions()))
    assert doc["stored"]["by_method"]["xz"]["payloads"] == 1
    assert [c["codec"] for c in doc["codecs"]] == ["zstd:3"]


def test_an_uncompressed_cache_stores_ratio_one(store_path: str, tmp_path: Path) -> None:
    [row] = bench(cache(store_path, tmp_path / "c", "none")).meta["stored"]
    assert row["method"] == "none" and row["ratio"] == 1.0


def test_a_tree_payload_has_no_stored_row(tmp_path: Path) -> None:
    (tmp_path / "t").mkdir()
    (tmp_path / "t" / "f").write_text("hello " * 1000)
    res = harness.run_bench(
        payloads.resolve([str(tmp_path / "t")]),
        ["none"],
        harness.BenchOptions(min_runs=1, min_time_seconds=0),
    )
    assert "stored" not in res.meta
