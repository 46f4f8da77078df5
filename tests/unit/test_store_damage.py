"""Damaged and hostile run directories (findings D4, D7, D9, D10, D13).

Every damage gives a one-line error naming the file, or a correct result with a warning
naming it; never a traceback, never a silent 0 rows, and nothing the manifest does not
account for is ever deleted or overwritten.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from profiler.errors import StoreError
from profiler.store import Run, compact, read_run
from profiler.store import segments as segments_module
from tests.runhelp import ROOT, STATUS, cli, one_line_error, snapshot

SEGMENT = "20990101T000000.000000Z-1-000001.jsonl"


@pytest.fixture
def run(base_run: Path, tmp_path: Path) -> Path:
    path = tmp_path / "run"
    shutil.copytree(base_run, path)
    return path


def manifest(path: Path) -> dict[str, Any]:
    doc: dict[str, Any] = json.loads((path / "manifest.json").read_text())
    return doc


def edit_manifest(path: Path, change: Any) -> None:
    doc = manifest(path)
    change(doc)
    (path / "manifest.json").write_text(json.dumps(doc))


def compacted_file(path: Path, table: str) -> Path:
    [found] = (path / "tables" / table).glob("compacted-*.parquet")
    return found


def samples_rows(path: Path) -> int:
    return len(read_run(path).table("samples"))


# --- D4: never delete or overwrite what the manifest does not account for ------------------


def test_a_run_without_its_manifest_is_refused_not_reinitialised(run: Path, tmp_path: Path) -> None:
    (run / "manifest.json").unlink()
    before = snapshot(run)
    code, _, err = cli("collect", "status", "--file", STATUS, "--once", "--out", run)
    assert code == 1
    assert one_line_error(err, run).endswith(
        "tables/ present but no manifest.json; not overwriting"
    )
    assert snapshot(run) == before and not (run / "manifest.json").exists()
    with pytest.raises(StoreError, match=r"no manifest\.json"):
        read_run(run)


def test_a_lost_compacted_section_is_an_error_and_nothing_is_deleted(run: Path) -> None:
    rows = samples_rows(run)
    edit_manifest(run, lambda doc: doc.pop("compacted"))
    before = snapshot(run)
    for args in (("export", run, "samples"), ("analyze", run)):
        code, out, err = cli(*args)
        assert code == 1 and out == ""
        line = one_line_error(err, "compacted-", "does not list")
        assert "nothing deleted" in line
    code, _, err = cli("collect", "status", "--file", STATUS, "--once", "--out", run)
    assert code == 1 and "does not list" in one_line_error(err)
    with pytest.raises(StoreError, match="does not list"):
        compact(run)
    assert snapshot(run) == before
    edit_manifest(run, lambda doc: None)  # put nothing back: still refused
    assert rows > 0


def test_a_compacted_file_the_manifest_does_not_list_is_kept(run: Path) -> None:
    """A format-2 entry lists its pending files: any other compacted file (a restored old
    manifest, a copied-in file) is data the manifest does not account for."""
    compact(run)
    listed = compacted_file(run, "samples")
    stranger = listed.with_name("compacted-20000101T000000.000000Z.parquet")
    shutil.copy(listed, stranger)
    with pytest.raises(StoreError, match=f"^{stranger}: compacted data that .* does not list"):
        read_run(run)
    with pytest.raises(StoreError, match="does not list"):
        compact(run)
    assert stranger.exists() and listed.exists()


def test_a_format_1_orphan_is_still_cleaned_up_even_after_a_crash(
    run: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Format-1 entries have no 'pending': their other compacted files are crash orphans,
    which become pending (accounted for) once a compaction of this version starts."""
    from profiler.store import tables

    edit_manifest(run, lambda doc: [e.pop("pending", None) for e in doc["compacted"].values()])
    listed = compacted_file(run, "log_events")
    orphan = listed.with_name("compacted-20000101T000000.000000Z.parquet")
    shutil.copy(listed, orphan)
    rows = len(read_run(run).table("log_events"))
    with Run.open(run, command="test") as r:
        r.writer("log_events").append({"ts": 1.0, "event": "late"})

    real = tables._write_compacted

    def crash(table_dir: str, table: str, *args: Any) -> Any:
        if table == "log_events":
            raise KeyboardInterrupt("power cut")
        return real(table_dir, table, *args)

    monkeypatch.setattr(tables, "_write_compacted", crash)
    with pytest.raises(KeyboardInterrupt):
        compact(run)
    monkeypatch.undo()
    assert orphan.name in manifest(run)["compacted"]["log_events"]["pending"]
    assert len(read_run(run).table("log_events")) == rows + 1
    compact(run)
    assert not orphan.exists() and len(read_run(run).table("log_events")) == rows + 1


def test_a_crashed_compaction_leaves_only_files_the_manifest_lists(
    run: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from profiler.store import tables

    before = read_run(run).table("samples")

    def crash(*_args: object) -> None:
        raise KeyboardInterrupt("power cut")

    monkeypatch.setattr(tables, "_record_compaction", crash)
    with pytest.raises(KeyboardInterrupt):
        compact(run)
    monkeypatch.undo()
    entry = manifest(run)["compacted"]["samples"]
    files = sorted(p.name for p in (run / "tables/samples").glob("compacted-*"))
    assert files == sorted([entry["parquet"], *entry["pending"]])  # all accounted for
    assert read_run(run).table("samples").equals(before)
    compact(run)
    assert [p.name for p in (run / "tables/samples").glob("compacted-*")] == [
        manifest(run)["compacted"]["samples"]["parquet"]
    ]
    assert read_run(run).table("samples").equals(before)


# --- D7: every name read from disk is checked ------------------------------------------------


@pytest.mark.parametrize(
    ("where", "name"),
    [
        ("segments", "../../../victim.txt"),
        ("segments", "/etc/hostname"),
        ("segments", "sub/20260101T000000.000000Z-1-000001.jsonl"),
        ("segments", ".."),
        ("segments", "notes.txt"),
        ("segments", 7),
        ("parquet", "../../victim.txt"),
        ("parquet", "compacted-x.parquet"),
        ("pending", "../../victim.txt"),
        ("table", "../../x"),
    ],
)
def test_names_in_the_manifest_are_checked_before_use(
    run: Path, tmp_path: Path, where: str, name: Any
) -> None:
    victim = tmp_path / "victim.txt"
    victim.write_text("precious")

    def change(doc: dict[str, Any]) -> None:
        entry = doc["compacted"]["samples"]
        if where == "table":
            doc["compacted"][name] = entry
        elif where == "parquet":
            entry["parquet"] = name
        else:
            entry.setdefault(where, []).append(name)

    edit_manifest(run, change)
    before = snapshot(run)
    mpath = run / "manifest.json"
    for attempt in (read_run, compact, Run.open):
        with pytest.raises(StoreError, match=f"^{mpath}: malformed manifest: ") as info:
            attempt(run)
        assert "\n" not in str(info.value)
    code, _, err = cli("collect", "status", "--file", STATUS, "--once", "--out", run)
    assert code == 1 and "malformed manifest" in one_line_error(err, mpath)
    assert victim.read_text() == "precious" and snapshot(run) == before


# --- D10: a sample lands whole or not at all -------------------------------------------------


def _groups(path: Path, sizes: list[int]) -> Path:
    with Run.open(path, command="test") as r, r.writer("t") as w:
        for g, size in enumerate(sizes):
            w.append_many([{"ts": float(g), "g": g, "i": i, "pad": "x" * 10} for i in range(size)])
        [segment] = w.segments
    return Path(segment)


def test_append_many_is_one_write(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    writes: list[int] = []
    real = os.write

    def counting(fd: int, data: bytes) -> int:
        writes.append(len(data))
        return real(fd, data)

    monkeypatch.setattr(segments_module.os, "write", counting)
    _groups(tmp_path / "r", [5000])
    assert len(writes) == 1 and writes[0] > 5000 * 20


@pytest.mark.parametrize("cut", ["mid-record", "after-a-record", "before-the-bracket", "one-byte"])
def test_a_torn_sample_is_dropped_whole_by_readers_and_compaction(tmp_path: Path, cut: str) -> None:
    segment = _groups(tmp_path / "r", [50, 50, 50])
    data = segment.read_bytes()
    start = data.rstrip(b"\n").rfind(b"\n") + 1  # the last group's line
    last = data[start:]
    keep = {
        "mid-record": len(last) // 2,
        "after-a-record": last.index(b"},{", len(last) // 2) + 1,
        "before-the-bracket": len(last) - 2,  # every record there, no closing ]
        "one-byte": 1,
    }[cut]
    segment.write_bytes(data[: start + keep])
    reader = read_run(tmp_path / "r")
    assert reader.table("t")["g"].tolist() == [0] * 50 + [1] * 50
    assert reader.warnings == [
        f"tables/t/{segment.name}: skipped a partial last record (crash during write)"
    ]
    assert compact(tmp_path / "r") == {"t": 100}
    again = read_run(tmp_path / "r")
    assert again.table("t")["g"].tolist() == [0] * 50 + [1] * 50
    assert "partial last record" in again.manifest["notes"][-1]["text"]


# --- D13: damage gives one line naming the file ----------------------------------------------


def _write_segment(run: Path, table: str, lines: list[str]) -> Path:
    path = run / "tables" / table / SEGMENT
    path.write_text("".join(f"{line}\n" for line in lines))
    return path


def _replace_parquet(run: Path, table: str, change: Any) -> Path:
    path = compacted_file(run, table)
    pq.write_table(change(pq.read_table(path)), path)
    return path


def _set_column(column: str, values: Any) -> Any:
    def change(t: pa.Table) -> pa.Table:
        return t.set_column(t.schema.get_field_index(column), column, values(t))

    return change


ERRORS = {
    "compacted null": (lambda r: edit_manifest(r, lambda d: d.update(compacted=None)), "manifest"),
    "compacted [1]": (lambda r: edit_manifest(r, lambda d: d.update(compacted=[1])), "manifest"),
    "entry without its parquet": (
        lambda r: edit_manifest(r, lambda d: d["compacted"]["samples"].update(parquet=None)),
        "manifest",
    ),
    "nested manifest": (lambda r: (r / "manifest.json").write_text("[" * 100000), "manifest"),
    "segment is a directory": (
        lambda r: (r / "tables/samples" / SEGMENT).mkdir(),
        f"tables/samples/{SEGMENT}",
    ),
    "tables is a file": (
        lambda r: (shutil.rmtree(r / "tables"), (r / "tables").write_text("x")),
        "tables",
    ),
    "parquet of other columns": (
        lambda r: pq.write_table(pa.table({"x": [1, 2]}), compacted_file(r, "samples")),
        "compacted-",
    ),
    "parquet of no columns": (
        lambda r: pq.write_table(pa.table({}), compacted_file(r, "samples")),
        "compacted-",
    ),
    "parquet of text values": (
        lambda r: _replace_parquet(
            r, "samples", _set_column("value", lambda t: pa.array(["abc"] * t.num_rows))
        ),
        "compacted-",
    ),
    "parquet is a directory": (
        lambda r: (compacted_file(r, "samples").unlink(), compacted_file_dir(r)),
        "compacted-",
    ),
    "manifest without compacted": (
        lambda r: edit_manifest(r, lambda d: d.pop("compacted")),
        "compacted-",
    ),
    "parquet with fewer rows": (
        lambda r: _replace_parquet(r, "samples", lambda t: t.slice(0, 3)),
        "compacted-",
    ),
}


def compacted_file_dir(run: Path) -> None:
    name = manifest(run)["compacted"]["samples"]["parquet"]
    (run / "tables/samples" / name).mkdir()


@pytest.mark.parametrize("damage", sorted(ERRORS))
def test_damage_is_one_line_naming_the_file(run: Path, damage: str) -> None:
    apply, named = ERRORS[damage]
    if damage == "parquet with fewer rows":
        compact(run)  # a format-2 entry records its rows
    apply(run)
    for args in (("export", run, "samples"), ("export", run, "rates", "--format", "json")):
        code, out, err = cli(*args)
        assert code == 1 and out == "", (args, err)
        one_line_error(err, run, named)
    code, _, err = cli("analyze", run)
    assert code == 1
    one_line_error(err, named)


WARNINGS = {
    "value abc": ({"value": "abc"}, "value that is not a number"),
    "ts text": ({"ts": "2026-01-01"}, "ts that is not a number"),
    "ts NaN": ({"ts": float("nan")}, "without a finite ts"),
    "ts missing": ({"ts": None}, "without a finite ts"),
    "nested line": (None, "skipped an unparsable record"),
}


@pytest.mark.parametrize("damage", sorted(WARNINGS))
def test_bad_records_are_skipped_with_a_warning_naming_file_and_line(
    run: Path, damage: str
) -> None:
    change, warning = WARNINGS[damage]
    good = {"ts": 1.7e9, "source": "s", "metric": "steps_runnable", "value": 1.0, "kind": "gauge"}
    bad = "[" * 100000 if change is None else json.dumps({**good, **change})
    _write_segment(run, "samples", [json.dumps(good), bad, json.dumps(good)])
    rows = samples_rows(run) if damage != "nested line" else None
    for args in (("export", run, "samples"), ("export", run, "rates", "--format", "json")):
        code, _, err = cli(*args)
        assert code == 0 and "Traceback" not in err
        assert f"tables/samples/{SEGMENT}" in err and warning in err
    code, out, _ = cli("analyze", run)
    assert code == 0 and warning in out  # the analysis says what it skipped
    if rows is not None:
        assert rows == len(read_run(run).table("samples"))
    compact(run)  # compaction drops the record too, and says so in the manifest
    assert any(warning in n["text"] for n in read_run(run).manifest["notes"])


@pytest.mark.parametrize(
    ("table", "good", "bad", "warning"),
    [
        ("cpu_classes",
         {"ts": 1.7e9, "bucket_seconds": 1.0, "pid": 7, "tid": 7, "process": "xz", "thread": "xz",
          "class": "compression", "samples": 3, "cpu_seconds": 0.3},
         {"cpu_seconds": "lots"}, "cpu_seconds that is not a number"),
        ("cpu_stacks",
         {"process": "xz", "thread": "xz", "class": "compression", "stack": "main;lzma_code",
          "samples": 3, "cpu_seconds": 0.3},
         {"samples": "three"}, "samples that is not a number"),
        ("history_chunks",
         {"ts": 1.7e9, "source": "http://p", "query": "{}", "step_seconds": 30.0, "start": 1.0,
          "end": 2.0, "series": 4, "samples": 8},
         {"end": "tomorrow"}, "end that is not a number"),
    ],
)  # fmt: skip
def test_the_newer_tables_have_contracts(
    run: Path, table: str, good: dict[str, Any], bad: dict[str, Any], warning: str
) -> None:
    """collect cpu's and collect history's tables are checked as the others are: a record
    whose number is text is skipped with a warning naming the file and line."""
    (run / "tables" / table).mkdir(parents=True, exist_ok=True)
    _write_segment(run, table, [json.dumps(good), json.dumps({**good, **bad}), json.dumps(good)])
    code, _, err = cli("export", run, table)
    assert code == 0 and "Traceback" not in err
    assert f"tables/{table}/{SEGMENT}" in err and warning in err, err
    assert len(read_run(run).table(table)) == 2


def test_non_finite_values_are_null_in_json_and_nan_times_do_not_break_reports(
    run: Path, tmp_path: Path
) -> None:
    def values(t: pa.Table) -> pa.Array:
        v = t.column("value").to_pylist()
        v[0], v[1], v[2] = math.nan, math.inf, -math.inf
        return pa.array(v)

    _replace_parquet(run, "samples", _set_column("value", values))
    for table in ("samples", "rates"):
        code, out, err = cli("export", run, table, "--format", "json")
        assert code == 0, err
        doc = json.loads(out)  # strict JSON: no NaN or Infinity
        assert doc and all(v is None or math.isfinite(v) for r in doc for v in r.values()
                           if isinstance(v, float))  # fmt: skip
    _replace_parquet(run, "samples", _set_column("ts", lambda t: pa.array([math.nan] * t.num_rows)))
    code, _, err = cli("export", run, "samples")
    assert code == 0 and "without a finite ts" in err and "compacted-" in err
    code, _, err = cli("report", run, "-o", tmp_path / "r.md")
    assert code == 0, err
    assert (tmp_path / "r.md").exists()


def test_files_that_are_not_the_store_s_are_ignored_with_a_warning(run: Path) -> None:
    (run / "tables" / "stray").write_text("x")
    (run / "tables" / "samples" / "samples.parquet").write_bytes(b"PAR1")
    (run / "tables" / "samples" / ".compacted-x.parquet.tmp").write_bytes(b"PAR1")  # crash
    reader = read_run(run)
    assert "stray" not in reader.tables()
    assert reader.warnings == [
        "tables/samples/samples.parquet: not a file of the store; ignored",
        "tables/stray: not a table directory; ignored",
    ]


# --- D9: compaction memory does not grow with the run ----------------------------------------

MEASURE = """
import json, resource, sys
from profiler.store import compact, segments, tables
segments.CHUNK_RECORDS, tables.BATCH_ROWS, tables.ROW_GROUP_ROWS = 512, 2048, 2048
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
compact(sys.argv[1])
compact(sys.argv[1])  # and again, with the compacted file as base
print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before)
"""


def _samples_run(path: Path, rows: int) -> None:
    with Run.open(path, command="test") as r, r.writer("samples", flush_seconds=None) as w:
        for start in range(0, rows, 500):
            w.append_many([
                {"ts": 1.7e9 + start, "source": "s", "metric": f"m{i % 40}", "value": float(i),
                 "kind": "gauge", "machine": f"ssh://builder-{i}.example.org"}
                for i in range(start, start + 500)
            ])  # fmt: skip
    with Run.open(path, command="test") as r, r.writer("samples") as w:
        w.append({"ts": 1.7e9, "source": "s", "metric": "late", "value": 1.0})


def test_compaction_memory_does_not_grow_with_the_run(tmp_path: Path) -> None:
    """Batches made small, so that the bound is reached early: 20k and 100k rows compact in
    the same peak RSS (holding the run whole grows by ~1.8 KB a row, ~140 MB here)."""
    growth = []
    for rows in (20_000, 100_000):
        path = tmp_path / f"r{rows}"
        _samples_run(path, rows)
        out = subprocess.run(
            [sys.executable, "-c", MEASURE, str(path)],
            capture_output=True, text=True, check=True, cwd=ROOT,
            env={**os.environ, "PYTHONPATH": str(ROOT)},
        )  # fmt: skip
        growth.append(int(out.stdout) / 1024)  # MB above the imports
        assert len(read_run(path).table("samples")) == rows + 1
    assert growth[1] - growth[0] < 25, growth
