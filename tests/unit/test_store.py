"""The run store: manifest, sources, versions, segments, damaged lines, compaction, redaction."""

from __future__ import annotations

import datetime as dt
import json
import os
import re
import shlex
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from profiler.errors import FormatVersionError, StoreError
from profiler.store import FORMAT_VERSION, Run, compact, read_run, redact, redact_argv
from profiler.store import run as run_module
from profiler.store import segments as segments_module
from profiler.store import tables as tables_module


def _manifest(path: Path) -> dict[str, Any]:
    doc: dict[str, Any] = json.loads((path / "manifest.json").read_text())
    return doc


def _segments(path: Path, table: str) -> list[str]:
    return sorted(p.name for p in (path / "tables" / table).glob("*.jsonl"))


def _write(path: Path, table: str, records: list[dict[str, Any]], **options: Any) -> None:
    with Run.open(path, command="test").writer(table, **options) as w:
        for record in records:
            w.append(record)


def _utc(text: str) -> dt.datetime:
    stamp = dt.datetime.fromisoformat(text)
    assert stamp.utcoffset() == dt.timedelta(0)
    return stamp


# --- manifest and sources ------------------------------------------------------------------


def test_open_creates_the_directory_and_a_complete_manifest(tmp_path: Path) -> None:
    path = tmp_path / "a" / "run"
    run = Run.open(path)
    doc = _manifest(path)
    assert doc["format_version"] == FORMAT_VERSION == 2
    assert doc["kind"] == "hydra-profiler-run"
    assert _utc(doc["created_utc"]) <= _utc(doc["updated_utc"])
    assert doc["ended_utc"] is None
    assert doc["host"] == os.uname().nodename
    assert set(doc["tool_versions"]) == {"profiler", "python", "pandas", "pyarrow"}
    assert doc["sources"] == [] and doc["notes"] == []
    run.close()
    _utc(_manifest(path)["ended_utc"])
    assert not list(path.glob("manifest.json.*"))  # no temporary left behind


def test_reopening_keeps_the_manifest(tmp_path: Path) -> None:
    Run.open(tmp_path, command="one").add_source("status", "http://h/", "cxx")
    created = _manifest(tmp_path)["created_utc"]
    Run.open(tmp_path, command="two").add_source("metrics", "http://h/metrics", None)
    doc = _manifest(tmp_path)
    assert doc["created_utc"] == created
    assert [s["command"] for s in doc["sources"]] == ["one", "two"]


def test_missing_run_without_create_names_the_path(tmp_path: Path) -> None:
    with pytest.raises(
        StoreError, match=f"^{re.escape(str(tmp_path))}/nope: not a hydra-profiler run"
    ):
        Run.open(tmp_path / "nope", create=False)
    with pytest.raises(StoreError, match=r"no manifest\.json"):
        read_run(tmp_path)


def test_a_directory_with_other_files_is_not_taken_over(tmp_path: Path) -> None:
    (tmp_path / "thesis.tex").write_text("precious")
    with pytest.raises(StoreError, match=f"^{re.escape(str(tmp_path))}: not empty and not a"):
        Run.open(tmp_path)
    assert not (tmp_path / "manifest.json").exists()


def test_sources_are_recorded_with_secrets_redacted(tmp_path: Path) -> None:
    run = Run.open(tmp_path, command="hydra-profiler collect --pg 'host=db password=hunter2'")
    first = run.add_source("status", "https://admin:hunter2@hydra/status?token=s3cr3t", "rust")
    second = run.add_source("db", "postgresql://hydra:hunter2@db/hydra", None)
    assert (first, second) == (0, 1)
    run.end_source(first)
    run.note("fallback: password=hunter2 rejected")
    sources = _manifest(tmp_path)["sources"]
    assert sources[0]["target"] == "https://admin:***@hydra/status?token=***"
    assert sources[0]["generation"] == "rust" and sources[1]["generation"] is None
    assert sources[1]["target"] == "postgresql://hydra:***@db/hydra"
    assert sources[0]["command"] == "hydra-profiler collect --pg 'host=db password=***'"
    assert sources[0]["pid"] == os.getpid() and sources[0]["kind"] == "status"
    assert _utc(sources[0]["started_utc"]) <= _utc(sources[0]["ended_utc"])
    assert sources[1]["ended_utc"] is None
    run.close()  # ends the sources still open
    doc = _manifest(tmp_path)
    assert doc["sources"][1]["ended_utc"] is not None
    assert doc["notes"][0]["text"] == "fallback: password=*** rejected"
    assert "hunter2" not in (tmp_path / "manifest.json").read_text()


def test_default_command_is_the_redacted_argv(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("sys.argv", ["hydra-profiler", "collect", "--api-token", "abc123"])
    Run.open(tmp_path).add_source("status", "x", None)
    assert (
        _manifest(tmp_path)["sources"][0]["command"] == "hydra-profiler collect --api-token '***'"
    )


def test_end_source_with_a_bad_index_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(StoreError, match=f"^{re.escape(str(tmp_path))}: no source #3"):
        Run.open(tmp_path).end_source(3)


# --- format version -------------------------------------------------------------------------

# A format-1 run exactly as hydra-profiler 0.1 wrote it: frozen, never regenerate it.
FROZEN_V1_MANIFEST = """{
  "format_version": 1,
  "kind": "hydra-profiler-run",
  "created_utc": "2026-03-01T10:00:00.000+00:00",
  "updated_utc": "2026-03-01T10:05:00.000+00:00",
  "ended_utc": "2026-03-01T10:05:00.000+00:00",
  "host": "builder-7",
  "tool_versions": {"profiler": "0.1.0", "python": "3.11.7", "pandas": "2.2.2",
                    "pyarrow": "16.1.0"},
  "sources": [{"kind": "status", "target": "http://hydra:3000/queue-runner-status",
               "generation": "cxx", "started_utc": "2026-03-01T10:00:00.000+00:00",
               "ended_utc": "2026-03-01T10:05:00.000+00:00",
               "command": "hydra-profiler collect status --url http://hydra:3000/",
               "pid": 4242}],
  "notes": ["status: no machines section"]
}
"""
FROZEN_V1_SEGMENT = (
    '{"ts":1772359200.0,"metric":"steps_done_total","value":7}\n'
    '{"ts":1772359230.5,"metric":"steps_done_total","value":9,"machine":"b1"}\n'
)


def _frozen_v1(path: Path) -> Path:
    (path / "tables" / "samples").mkdir(parents=True)
    (path / "manifest.json").write_text(FROZEN_V1_MANIFEST)
    (path / "tables/samples/20260301T100000.000000Z-4242-000001.jsonl").write_text(
        FROZEN_V1_SEGMENT
    )
    return path


def test_a_frozen_format_1_run_is_read_and_extended(tmp_path: Path) -> None:
    path = _frozen_v1(tmp_path)
    reader = read_run(path)
    assert reader.manifest["host"] == "builder-7" and reader.warnings == []
    samples = reader.table("samples")
    assert samples["ts"].tolist() == [1772359200.0, 1772359230.5]
    assert samples["value"].tolist() == [7, 9]
    assert samples["machine"].isna().tolist() == [True, False]
    run = Run.open(path)
    assert run.add_source("metrics", "http://hydra:9198/metrics", None) == 1
    assert _manifest(path)["notes"] == ["status: no machines section"]


def test_a_newer_format_is_refused_in_one_line(tmp_path: Path) -> None:
    path = _frozen_v1(tmp_path)
    newer = FORMAT_VERSION + 1
    text = FROZEN_V1_MANIFEST.replace('"format_version": 1', f'"format_version": {newer}')
    (path / "manifest.json").write_text(text)
    expected = (
        f"{path}: written by a newer hydra-profiler (format {newer}, this one reads up to "
        f"{FORMAT_VERSION}); upgrade hydra-profiler"
    )
    for attempt in (read_run, Run.open, compact):
        with pytest.raises(FormatVersionError) as info:
            attempt(path)
        assert str(info.value) == expected


def test_older_formats_are_migrated_step_by_step(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def to_3(doc: dict[str, Any]) -> dict[str, Any]:
        assert doc["format_version"] == 2  # after format 1 -> 2
        return {**doc, "format_version": 3, "notes": [{"text": n} for n in doc["notes"]]}

    monkeypatch.setattr(run_module, "FORMAT_VERSION", 3)
    monkeypatch.setattr(run_module, "_MIGRATIONS", {**run_module._MIGRATIONS, 3: to_3})
    doc = read_run(_frozen_v1(tmp_path)).manifest
    assert doc["format_version"] == 3
    assert doc["notes"] == [{"text": "status: no machines section"}]


@pytest.mark.parametrize(
    ("text", "error", "message"),
    [
        ("{", StoreError, "unreadable manifest"),
        ('{"kind": "something-else", "format_version": 1}', StoreError, "not a hydra-profiler"),
        ('{"kind": "hydra-profiler-run", "format_version": "1"}', FormatVersionError, "'1'"),
        ('{"kind": "hydra-profiler-run", "format_version": 0}', FormatVersionError, "invalid"),
    ],
)
def test_bad_manifests_are_one_line_errors(
    tmp_path: Path, text: str, error: type[Exception], message: str
) -> None:
    (tmp_path / "manifest.json").write_text(text)
    with pytest.raises(error, match=message) as info:
        read_run(tmp_path)
    assert str(tmp_path) in str(info.value) and "\n" not in str(info.value)


# --- writing and reading tables -------------------------------------------------------------


def test_records_with_different_keys_make_a_union_of_columns(tmp_path: Path) -> None:
    _write(
        tmp_path,
        "events",
        [
            {"ts": 1700000000, "event": "start"},
            {"ts": 1700000001.25, "event": "gap", "detail": {"missed": 2}, "tags": ["a"]},
            {"ts": 1700000002, "value": 3},
        ],
    )
    df = read_run(tmp_path).table("events")
    assert list(df.columns) == ["ts", "event", "detail", "tags", "value"]
    assert df["ts"].dtype == "float64"
    assert df["ts"].tolist() == [1700000000.0, 1700000001.25, 1700000002.0]
    assert json.loads(df["detail"][1]) == {"missed": 2} and df["tags"][1] == '["a"]'
    assert df["event"].isna().tolist() == [False, False, True]


def test_rotation_keeps_append_order(tmp_path: Path) -> None:
    records = [{"i": i, "pad": "x" * 50} for i in range(200)]
    _write(tmp_path, "t", records, max_segment_bytes=1024)
    assert len(_segments(tmp_path, "t")) > 5
    assert read_run(tmp_path).table("t")["i"].tolist() == list(range(200))


def test_flush_every_n_records_or_t_seconds(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    synced: list[int] = []
    real_fsync = os.fsync
    run = Run.open(tmp_path)
    w = run.writer("t", flush_every=3, flush_seconds=None)
    monkeypatch.setattr(os, "fsync", lambda fd: synced.append(fd) or real_fsync(fd))
    for i in range(7):
        w.append({"i": i})
    assert len(synced) == 3  # after 3 and 6 records; the new segment's directory once
    clock = [100.0]
    monkeypatch.setattr(segments_module.time, "monotonic", lambda: clock[0])
    timed = run.writer("u")  # default: fsync on an append a second after the last fsync
    synced.clear()
    timed.append({"i": 0})
    clock[0] += 0.5
    timed.append({"i": 1})
    assert synced == []
    clock[0] += 0.6
    timed.append({"i": 2})
    assert len(synced) == 2


def test_writer_errors_name_the_table(tmp_path: Path) -> None:
    run = Run.open(tmp_path)
    w = run.writer("t")
    with pytest.raises(StoreError, match="tables/t: record is not JSON-serialisable"):
        w.append({"when": dt.datetime.now(dt.UTC)})
    w.close()
    with pytest.raises(StoreError, match="tables/t: append to a closed writer"):
        w.append({"i": 1})
    for bad in ("../etc", "a/b", "", ".hidden"):
        with pytest.raises(StoreError, match="invalid table name"):
            run.writer(bad)


def test_unknown_table_lists_the_tables_present(tmp_path: Path) -> None:
    _write(tmp_path, "samples", [{"i": 1}])
    _write(tmp_path, "events", [{"i": 1}])
    with pytest.raises(StoreError) as info:
        read_run(tmp_path).table("steps")
    assert str(info.value) == f"{tmp_path}: no table 'steps' (tables: events, samples)"


# --- damaged segments -----------------------------------------------------------------------


def _segment(path: Path, text: str, name: str = "20260101T000000.000000Z-1-000001.jsonl") -> str:
    (path / "tables" / "t").mkdir(parents=True, exist_ok=True)
    (path / "tables" / "t" / name).write_text(text)
    return f"tables/t/{name}"


def test_a_partial_last_line_is_skipped_with_a_warning(tmp_path: Path) -> None:
    Run.open(tmp_path)
    label = _segment(tmp_path, '{"i":0}\n{"i":1}\n{"i":2,"pa')
    reader = read_run(tmp_path)
    assert reader.table("t")["i"].tolist() == [0, 1]
    assert reader.warnings == [f"{label}: skipped a partial last record (crash during write)"]


def test_garbage_in_the_middle_is_reported_with_its_line_number(tmp_path: Path) -> None:
    Run.open(tmp_path)
    label = _segment(tmp_path, '{"i":0}\n{"i":\n\n[1, 2]\n{"i":3}\n\x00\x00\x00')
    reader = read_run(tmp_path)
    assert reader.table("t")["i"].tolist() == [0, 3]
    assert reader.warnings == [
        f"{label}:2: skipped an unparsable record",
        f"{label}:4: skipped an unparsable record",
        f"{label}: skipped a partial last record (crash during write)",
    ]


def test_a_live_writers_line_in_flight_is_not_reported(tmp_path: Path) -> None:
    run = Run.open(tmp_path)
    w = run.writer("t")
    w.append({"i": 0})
    assert w._fd is not None
    os.write(w._fd, b'{"i":1,')  # as if read in the middle of another process's write
    reader = read_run(tmp_path)
    assert reader.table("t")["i"].tolist() == [0] and reader.warnings == []
    w.close()
    assert len(read_run(tmp_path).warnings) == 1


# --- compaction -----------------------------------------------------------------------------


def _mixed_run(path: Path) -> None:
    _write(path, "samples", [{"ts": 1.5 + i, "metric": "m", "value": i} for i in range(50)])
    _write(path, "samples", [{"ts": 99.0, "metric": "n", "machine": "b1", "labels": {"a": 1}}])
    _write(path, "events", [{"ts": 3, "event": "gap", "detail": None}])


def _parquets(path: Path, table: str) -> list[str]:
    return sorted(p.name for p in (path / "tables" / table).glob("compacted-*.parquet"))


def test_compaction_round_trip_keeps_every_record_in_order(tmp_path: Path) -> None:
    _mixed_run(tmp_path)
    before = {t: read_run(tmp_path).table(t) for t in ("samples", "events")}
    assert compact(tmp_path) == {"samples": 51, "events": 1}
    assert _segments(tmp_path, "samples") == [] and _segments(tmp_path, "events") == []
    entry = _manifest(tmp_path)["compacted"]["samples"]
    assert entry["parquet"] == _parquets(tmp_path, "samples")[0]
    assert len(entry["segments"]) == 2
    after = read_run(tmp_path)
    for table, df in before.items():
        pd.testing.assert_frame_equal(after.table(table), df)
    assert compact(tmp_path) == {}  # nothing new


def test_compacting_again_appends_after_the_compacted_records(tmp_path: Path) -> None:
    _write(tmp_path, "t", [{"i": i} for i in range(3)])
    compact(tmp_path)
    _write(tmp_path, "t", [{"i": i, "s": "late"} for i in range(3, 6)])
    assert read_run(tmp_path).table("t")["i"].tolist() == list(range(6))
    assert compact(tmp_path) == {"t": 3}
    df = read_run(tmp_path).table("t")
    assert df["i"].tolist() == list(range(6)) and df["s"].isna().sum() == 3
    assert len(_parquets(tmp_path, "t")) == 1


def test_a_column_that_changes_kind_survives_compaction(tmp_path: Path) -> None:
    _write(tmp_path, "t", [{"v": 1}, {"v": 2}])
    compact(tmp_path)
    _write(tmp_path, "t", [{"v": "three"}, {"v": True}])
    before = read_run(tmp_path).table("t")
    assert before["v"].tolist() == ["1", "2", "three", "true"]
    compact(tmp_path)
    pd.testing.assert_frame_equal(read_run(tmp_path).table("t"), before)


def test_crash_after_parquet_before_manifest_neither_loses_nor_duplicates(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _mixed_run(tmp_path)
    before = {t: read_run(tmp_path).table(t) for t in ("samples", "events")}

    def crash(*_args: object) -> None:
        raise KeyboardInterrupt("power cut")

    monkeypatch.setattr(tables_module, "_record_compaction", crash)
    with pytest.raises(KeyboardInterrupt):
        compact(tmp_path)
    [orphan] = _parquets(tmp_path, "events") + _parquets(tmp_path, "samples")
    entries = _manifest(tmp_path)["compacted"]  # the orphan was named before it was written
    assert [e["parquet"] for e in entries.values()] == [None]
    assert [e["pending"] for e in entries.values()] == [[orphan]]
    for table, df in before.items():
        pd.testing.assert_frame_equal(read_run(tmp_path).table(table), df)
    monkeypatch.undo()
    compact(tmp_path)
    for table, df in before.items():
        pd.testing.assert_frame_equal(read_run(tmp_path).table(table), df)
    assert len(_parquets(tmp_path, "events")) == len(_parquets(tmp_path, "samples")) == 1


def test_crash_after_manifest_before_deleting_segments_does_not_duplicate(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _mixed_run(tmp_path)
    before = read_run(tmp_path).table("samples")
    monkeypatch.setattr(tables_module, "remove_files", lambda *_args: None)
    compact(tmp_path)
    monkeypatch.undo()
    assert len(_segments(tmp_path, "samples")) == 2  # absorbed, still on disk
    pd.testing.assert_frame_equal(read_run(tmp_path).table("samples"), before)
    _write(tmp_path, "samples", [{"ts": 100.0, "metric": "late"}])
    assert compact(tmp_path) == {"samples": 1}
    assert _segments(tmp_path, "samples") == []
    df = read_run(tmp_path).table("samples")
    assert len(df) == len(before) + 1 and df["metric"].iloc[-1] == "late"


def test_compaction_leaves_segments_of_live_writers_alone(tmp_path: Path) -> None:
    run = Run.open(tmp_path)
    live = run.writer("t")
    live.append({"i": 0})
    _write(tmp_path, "t", [{"i": 1}])
    assert compact(tmp_path) == {"t": 1}
    live.append({"i": 2})
    assert sorted(read_run(tmp_path).table("t")["i"]) == [0, 1, 2]
    live.close()
    assert compact(tmp_path) == {"t": 2}
    assert sorted(read_run(tmp_path).table("t")["i"]) == [0, 1, 2]


def test_compaction_records_dropped_lines_as_notes(tmp_path: Path) -> None:
    Run.open(tmp_path)
    label = _segment(tmp_path, '{"i":0}\n{"i"')
    assert compact(tmp_path) == {"t": 1}
    reader = read_run(tmp_path)
    assert reader.warnings == [] and reader.table("t")["i"].tolist() == [0]
    assert reader.manifest["notes"][0]["text"] == (
        f"compact: {label}: skipped a partial last record (crash during write)"
    )


# --- redaction ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("https://user:secret@host/path", "https://user:***@host/path"),
        ("http://u:p@ss:w0rd@hydra.example:3000/", "http://u:***@hydra.example:3000/"),
        ("redis://:secret@cache:6379", "redis://:***@cache:6379"),
        ("postgresql://hydra:pw@db.local/hydra", "postgresql://hydra:***@db.local/hydra"),
        (
            "postgres://hydra:pw@db/hydra?sslmode=require",
            "postgres://hydra:***@db/hydra?sslmode=require",
        ),
        ("https://h/s?token=abc&x=1", "https://h/s?token=***&x=1"),
        ("https://h/s?x=1&access_token=abc#frag", "https://h/s?x=1&access_token=***#frag"),
        (
            "https://h/?api_key=k1&apiKey=k2&API-KEY=k3",
            "https://h/?api_key=***&apiKey=***&API-KEY=***",
        ),
        (
            "https://h/?client_secret=s&password=p&passwd=q",
            "https://h/?client_secret=***&password=***&passwd=***",
        ),
        (
            "https://h/?auth=a&X-Amz-Signature=ab12&X-Amz-Credential=AK%2F1",
            "https://h/?auth=***&X-Amz-Signature=***&X-Amz-Credential=***",
        ),
        ("https://h/?authorization=Basic%20xyz", "https://h/?authorization=***"),
        ("host=db password=pw dbname=hydra", "host=db password=*** dbname=hydra"),
        ("host=db password = 'p w\\'x' user=h", "host=db password = *** user=h"),
        ('host=db password="p w" user=h', "host=db password=*** user=h"),
        ("password=pw", "password=***"),
        ("PGPASSWORD=pw psql -h db", "PGPASSWORD=*** psql -h db"),
        ("sslpassword=pw", "sslpassword=***"),
        ("--pg 'host=db password=pw'", "--pg 'host=db password=***'"),
        ("--db-password=pw --x", "--db-password=*** --x"),
        ("collect --password hunter2 --x", "collect --password *** --x"),
        ("collect --api-token=abc --url u", "collect --api-token=*** --url u"),
        ("c --client-secret 'a b' --x", "c --client-secret *** --x"),
        ("c --token --url u", "c --token --url u"),
        ("postgresql://u@db/hydra?password=pw", "postgresql://u@db/hydra?password=***"),
        ("Authorization: Basic dXNlcjpwdw==", "Authorization: ***"),
        ("authorization: Bearer abc.def.ghi\nnext", "authorization: ***\nnext"),
        ("curl -H 'Authorization: token ghp_123' url", "curl -H 'Authorization: ***' url"),
        ("{'Authorization': 'Bearer xyz'}", "{'Authorization': '***'}"),
        ("Proxy-Authorization: Basic Zm9v", "Proxy-Authorization: ***"),
        ("sent Bearer eyJhbGciOiJI.eyJzdWIi.c2ln to h", "sent Bearer *** to h"),
        ("bearer 0123456789abcdef", "bearer ***"),
    ],
)
def test_redact_hides_secrets(text: str, expected: str) -> None:
    assert redact(text) == expected
    assert redact(expected) == expected  # idempotent


@pytest.mark.parametrize(
    "text",
    [
        "",
        "http://hydra.example:3000/queue-runner-status",
        "https://[::1]:8080/metrics?format=json&x=1",
        "file:///var/lib/hydra/status.json",
        "user@example.com wrote: see http://h/a@b",
        "host=db port=5432 dbname=hydra user=hydra sslmode=require",
        "the password is wrong (password authentication failed for user hydra)",
        "the bearer of bad news; Bearer tokens expire",
        "authorization failed",
        "keys: 3, tokens: 4",
        "hydra-profiler collect status --url http://h:3000/ --interval 30s",
        "steps_done_total 42\nnar_write_bytes 1.5e9",
        "ünïcödé ✓ /nix/store/abc-hello-2.12",
    ],
)
def test_redact_leaves_harmless_text_unchanged(text: str) -> None:
    assert redact(text) == text


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["collect", "--password", "pw", "--x"], "collect --password '***' --x"),
        (
            ["c", "--api-token", "t", "--pg", "host=h password=p"],
            "c --api-token '***' --pg 'host=h password=***'",
        ),
        (["c", "--url", "https://u:p@h/?token=t"], "c --url 'https://u:***@h/?token=***'"),
        (["c", "--token=abc", "next"], "c '--token=***' next"),
        (["c", "--interval", "30s"], "c --interval 30s"),
    ],
)
def test_redact_argv(argv: list[str], expected: str) -> None:
    assert redact_argv(argv) == expected
    assert len(shlex.split(expected)) == len(argv)


def test_a_listed_parquet_that_is_missing_is_an_error_not_a_loop(tmp_path: Path) -> None:
    _write(tmp_path, "t", [{"i": 1}])
    compact(tmp_path)
    [parquet] = (tmp_path / "tables" / "t").glob("compacted-*.parquet")
    parquet.unlink()
    with pytest.raises(StoreError, match=f"^{re.escape(str(parquet))}: listed in the run but"):
        read_run(tmp_path)
    _write(tmp_path, "t", [{"i": 2}])
    with pytest.raises(StoreError, match="listed in the run but missing"):
        compact(tmp_path)


def test_append_many_writes_one_group_line_never_split_across_segments(tmp_path: Path) -> None:
    with Run.open(str(tmp_path / "r")) as run:
        writer = run.writer("t", max_segment_bytes=400)
        for k in range(5):  # groups of ~300 bytes: two never fit in one segment
            writer.append_many([{"i": 10 * k + i, "pad": "x" * 20} for i in range(10)])
        writer.append_many([])
        writer.append({"i": 50, "pad": ""})  # fits after the last group
        writer.append_many([{"i": 51 + i, "pad": "x" * 100} for i in range(10)])  # > 400 bytes
        assert writer.records == 61
        assert len(writer.segments) == 6
    lines = [[json.loads(ln) for ln in Path(p).read_text().splitlines()] for p in writer.segments]
    assert [len(seg) for seg in lines] == [1, 1, 1, 1, 2, 1]  # lines per segment
    assert lines[4][1] == {"i": 50, "pad": ""} and len(lines[5][0]) == 10
    assert read_run(str(tmp_path / "r")).table("t")["i"].tolist() == list(range(61))


def test_nested_and_mixed_columns_still_become_json_text(tmp_path: Path) -> None:
    with Run.open(str(tmp_path / "r")) as run:
        w = run.writer("t")
        for rec in ({"a": {"x": 1}, "b": 1}, {"a": [1, 2], "b": "s"}, {"a": None, "b": 2.5}):
            w.append(rec)
    compact(str(tmp_path / "r"))
    table = read_run(str(tmp_path / "r")).table("t")
    assert table["a"].tolist()[:2] == ['{"x": 1}', "[1, 2]"]
    assert table["b"].tolist() == ["1", "s", "2.5"]


def test_parquet_parts_are_read_and_absorbed_by_compaction(tmp_path: Path) -> None:
    run_dir = str(tmp_path / "r")
    with Run.open(run_dir) as run:
        w = run.writer("t")
        w.append({"i": 0, "kind": "line"})
        run.write_part("t", [{"i": 1, "kind": "part"}, {"i": 2, "kind": "part", "x": [1]}])
        run.write_part("t", [{"i": 3, "kind": 5}])  # "kind" changes type: kept as text
    table_dir = tmp_path / "r" / "tables" / "t"
    assert len(list(table_dir.glob("part-*.parquet"))) == 2
    before = read_run(run_dir).table("t")
    assert sorted(before["i"].tolist()) == [0, 1, 2, 3]
    assert compact(run_dir) == {"t": 4}
    assert not list(table_dir.glob("part-*.parquet"))  # absorbed, then removed
    after = read_run(run_dir).table("t")
    assert sorted(after["i"].tolist()) == [0, 1, 2, 3]
    assert set(after["kind"].astype(str)) == {"line", "part", "5"}
    absorbed = read_run(run_dir).manifest["compacted"]["t"]["segments"]
    assert sum(n.startswith("part-") for n in absorbed) == 2
    with Run.open(run_dir) as run:  # a part written after compaction is read too
        run.write_part("t", [{"i": 4, "kind": "late"}])
    assert sorted(read_run(run_dir).table("t")["i"].tolist()) == [0, 1, 2, 3, 4]
    assert compact(run_dir) == {"t": 1}


def test_write_part_refuses_bad_table_names(tmp_path: Path) -> None:
    with Run.open(str(tmp_path / "r")) as run, pytest.raises(StoreError, match="invalid table"):
        run.write_part("../x", [{"a": 1}])


def test_compaction_leaves_a_bulk_import_as_its_parts(tmp_path: Path) -> None:
    """Parts of a bulk import (on average BULK_PART_ROWS rows or more, no segment) stay as
    they are: rewriting a history of them into one file would cost minutes at a farm's size
    for nothing; once a segment comes, everything is folded as before."""
    import pyarrow as pa

    from profiler.store.tables import BULK_PART_ROWS

    run_dir = str(tmp_path / "r")
    n = BULK_PART_ROWS
    with Run.open(run_dir) as run:
        run.write_arrow_part("t", pa.table({"ts": [float(i) for i in range(n)], "i": range(n)}))
        run.write_arrow_part("t", pa.table({"ts": [1.0] * n, "i": range(n, 2 * n)}))
    table_dir = tmp_path / "r" / "tables" / "t"
    assert compact(run_dir) == {}
    assert len(list(table_dir.glob("part-*.parquet"))) == 2
    assert read_run(run_dir).table("t")["i"].tolist() == list(range(2 * n))
    with Run.open(run_dir) as run:
        run.writer("t").append({"ts": 2.0, "i": 2 * n})
    assert compact(run_dir) == {"t": 2 * n + 1}
    assert not list(table_dir.glob("part-*.parquet"))
    assert read_run(run_dir).table("t")["i"].tolist() == list(range(2 * n + 1))
