"""The journal parser: every line format and event of reference ``hydra.md`` §2."""

from __future__ import annotations

import calendar
import gzip
import json
import lzma
from pathlib import Path
from typing import Any

import pytest
import zstandard

from profiler.codecs import open_text as open_log
from profiler.collect.journal.parse import JournalParser, parse_file, parse_lines
from profiler.errors import CollectorError
from profiler.hydra.catalogue import rust_duration_seconds

DRV = "/nix/store/0c2zv5rr4qy3c8rqd4s1dw8dbg8wfrqn-hello-2.12.1.drv"
OUT = "/nix/store/5d2zv5rr4qy3c8rqd4s1dw8dbg8wfrqn-hello-2.12.1"
M = "ssh://builder1"
UUID = "7f1c8c51-43b5-4a9e-9d8e-1b3c2d2e8a11"
T0 = calendar.timegm((2026, 11, 29, 3, 13, 44))


def q(text: str) -> str:
    return f"\u2018{text}\u2019"


def one(line: str, **kw: Any) -> dict[str, Any]:
    events, summary = parse_lines([line], source="t", year=2026, **kw)
    assert summary.unknown == {} and summary.malformed == [], (line, summary)
    assert len(events) == 1, events
    return events[0]


def short(msg: str, prio: str = "", pid: int = 1234) -> str:
    return f"{prio}Nov 29 03:13:44 hydra hydra-queue-runner[{pid}]: {msg}"


CXX_CASES = [
    (
        f"performing step {q(DRV)} 2 times on {q(M)} (needed by build 4711 and 3 others)",
        "step_started",
        {"drv": DRV, "rounds": 2, "machine": M, "build_id": 4711, "other_builds": 3},
    ),
    (
        f"copying path '{OUT}' (1048576 bytes, compressed 71.3% in 412 ms) to binary cache",
        "output_copied",
        {"path": OUT, "nar_bytes": 1048576, "compressed_percent": 71.3, "ms": 412},
    ),
    (
        "uploaded 's3://cache/nar/1abc.nar.xz' (300000 bytes) in 95 ms",
        "s3_upload",
        {"url": "s3://cache/nar/1abc.nar.xz", "bytes": 300000, "ms": 95},
    ),
    ("marking build 4711 as succeeded", "build_succeeded", {"build_id": 4711}),
    ("marking build 4711 as failed", "build_failed", {"build_id": 4711}),
    ("marking build 4712 as succeeded (cached)", "build_succeeded_cached", {"build_id": 4712}),
    (f"will retry {q(DRV)} after 68s", "retry", {"drv": DRV, "seconds": 68.0}),
    (
        f"possibly transient failure building {q(DRV)} on {q(M)}: error: unexpected EOF",
        "transient_failure",
        {"drv": DRV, "machine": M, "error": "error: unexpected EOF"},
    ),
    (f"will disable machine {q(M)} for 60s", "machine_disabled", {"machine": M, "seconds": 60}),
    (
        "warning: 7 concurrent database updates; PostgreSQL may be stalled",
        "db_stalled",
        {"updates": 7},
    ),
    ("checking the queue for builds...", "queue_check", {}),
    ("checking the queue for builds > 4700...", "queue_check", {"last_id": 4700}),
    (
        "loading build 4711 (nixpkgs:trunk:hello.x86_64-linux)",
        "build_loading",
        {"build_id": 4711, "job": "nixpkgs:trunk:hello.x86_64-linux"},
    ),
    (
        'status: {"status":"up","nrQueuedBuilds":3}',
        "status_dump",
        {"status": {"status": "up", "nrQueuedBuilds": 3}},
    ),
]

BASE = "0c2zv5rr4qy3c8rqd4s1dw8dbg8wfrqn-hello-2.12.1.drv"  # Rust prints base names
SPAN_DRV = f"drv=Some(ProtoStorePath(StorePath({BASE})))"
# what a builder uploads: the outputs, in the upload spans' fields (state.rs:985, :1072)
OUT1 = "9w1k0zjaw5c716d8jga0g9hnjfsb6igy-hello-2.12.1"
OUT2 = "sh5dfsm7nyhfrs9nfqnnyxgr4xg51pjh-hello-2.12.1-man"
# (spans, target, message, span fields, event, fields): lines as tracing-subscriber 0.3.23's
# compact formatter writes them (hydra 14332fbf subprojects/crates/tracing/src/lib.rs)
RUST_CASES = [
    (
        "", "hydra_queue_runner::state",
        f"Submitting build drv={BASE} on machine={UUID} hostname=builder1 build_id=4711 "
        "step_nr=2", "",
        "dispatch",
        {"drv": BASE, "machine_id": UUID, "hostname": "builder1", "build_id": 4711,
         "step_nr": 2},
    ),
    (
        "succeed_step:", "hydra_queue_runner::state", f"marking job as done: drv_path={BASE}",
        f"machine_id={UUID} drv_path={BASE}", "job_done", {"drv": BASE},
    ),
    (
        "start_bidirectional_stream:handle_request:schedule_build:", "hydra_builder::state",
        f"Building {BASE}", "request=Build(BuildMessage { .. }) " + SPAN_DRV,
        "build_started", {"drv": BASE},
    ),
    (
        "process_build:", "hydra_builder::state", f"Finished building {BASE}", SPAN_DRV,
        "build_finished", {"drv": BASE},
    ),
    (
        "process_build:upload_nars:upload_nars_presigned:", "hydra_builder::state",
        "Start uploading paths using presigned urls",
        f'{SPAN_DRV} build_id="{UUID}" machine_id="{UUID}" presigned_url_opts=Some('
        "PresignedUploadOpts { upload_debug_info: false }) "
        f"output_paths=[StorePath({OUT1}), StorePath({OUT2})] "
        f'opts=PresignedUploadOpts {{ upload_debug_info: false }} build_id="{UUID}"',
        "upload_started", {"mode": "presigned", "drv": BASE, "outputs": f"{OUT1} {OUT2}"},
    ),
    (
        "process_build:upload_nars:upload_nars_regular:", "hydra_builder::state",
        "Start uploading paths to queue runner directly", SPAN_DRV,
        "upload_started", {"mode": "direct", "drv": BASE},
    ),
    (
        "process_build:upload_nars:upload_nars_presigned:", "hydra_builder::state",
        "Finished uploading paths using presigned urls. elapsed=41.234567891s",
        f'{SPAN_DRV} build_id="{UUID}"',
        "upload_finished", {"mode": "presigned", "elapsed": pytest.approx(41.234567891),
                            "drv": BASE},
    ),
    (
        "process_build:upload_nars:upload_nars_regular:", "hydra_builder::state",
        "Finished uploading paths to queue runner directly. elapsed=850.123456ms",
        f"{SPAN_DRV} presigned_url_opts=None nars=[StorePath({OUT1})]",
        "upload_finished", {"mode": "direct", "elapsed": pytest.approx(0.850123456),
                            "drv": BASE, "outputs": OUT1},
    ),
    (
        "", "hydra_builder::state", f"Successfully completed build process for {BASE}", "",
        "build_completed", {"drv": BASE},
    ),
]  # fmt: skip


def rust_line(spans: str, target: str, msg: str, tail: str, level: str = " INFO") -> str:
    return f"2026-11-29T03:13:44.123456Z {level} {spans}{' ' if spans else ''}{target}: {msg}" + (
        f" {tail}" if tail else ""
    )


@pytest.mark.parametrize(("msg", "event", "fields"), CXX_CASES)
def test_cxx_events_in_every_envelope(msg: str, event: str, fields: dict[str, Any]) -> None:
    record = {
        "__REALTIME_TIMESTAMP": str(T0 * 1_000_000 + 250_000),
        "_HOSTNAME": "hydra",
        "SYSLOG_IDENTIFIER": "hydra-queue-runner",
        "_PID": "1234",
        "PRIORITY": "5",
        "MESSAGE": msg,
    }
    for line, ts, host, pid in [
        (short(msg), T0, "hydra", 1234),
        (short(msg, "<5>"), T0, "hydra", 1234),
        (short("<5>" + msg), T0, "hydra", 1234),
        (f"<5>{msg}", None, None, None),
        (json.dumps(record, ensure_ascii=False), T0 + 0.25, "hydra", 1234),
        (f"2026-11-29T03:13:44+0000 hydra hydra-queue-runner[1234]: {msg}", T0, "hydra", 1234),
    ]:
        ev = one(line)
        assert ev["event"] == event, line
        assert {k: ev[k] for k in fields} == fields
        assert (ev["ts"], ev["host"], ev["pid"], ev["generation"]) == (ts, host, pid, "cxx")
    assert one(f"<5>{msg}")["priority"] == 5
    assert one(short(msg, "<6>"))["priority"] == 6


@pytest.mark.parametrize(("spans", "target", "msg", "tail", "event", "fields"), RUST_CASES)
def test_rust_events_raw_short_and_json(
    spans: str, target: str, msg: str, tail: str, event: str, fields: dict[str, Any]
) -> None:
    tracing = rust_line(spans, target, msg, tail)
    record = {
        "__REALTIME_TIMESTAMP": str(T0 * 1_000_000 + 200_000),
        "PRIORITY": "6",
        "_PID": "77",
        "_HOSTNAME": "hydra",
        "MESSAGE": tracing,
    }
    for line in (tracing, short(tracing, pid=77), json.dumps(record)):
        ev = one(line)
        assert ev["event"] == event
        assert {k: ev[k] for k in fields} == fields
        assert ev["generation"] == "rust"
        assert ev["ts"] == pytest.approx(T0 + 0.123456)
        assert ev["target"] == target
        assert ev.get("spans", "") == spans.strip()
    assert one(tracing)["priority"] == 6
    ev = one(rust_line(spans, target, msg, tail, level="ERROR"))
    assert (ev["event"], ev["priority"]) == (event, 3)


def test_a_rust_message_without_its_tail_still_matches_and_a_longer_word_does_not() -> None:
    assert one(rust_line("", "hydra_builder::state", f"Building {BASE}", ""))["drv"] == BASE
    events, summary = parse_lines(
        [rust_line("", "hydra_builder::state", f"Buildings {BASE}", "")], source="t", year=2026
    )
    assert events == [] and sum(summary.unknown.values()) == 1


def test_journalctl_marker_lines_are_understood() -> None:
    lines = [
        "-- Logs begin at Mon 2016-05-02 10:00:01 CEST, end at Tue 2016-05-03 11:00:00 CEST. --",
        "-- Boot 0123456789abcdef0123456789abcdef --",
        "-- Reboot --",
        "-- No entries --",
    ]
    events, summary = parse_lines(lines, source="t", year=2016)
    assert events == [] and summary.understood == 4 and not summary.unknown


def test_rust_durations() -> None:
    assert rust_duration_seconds("41.2s") == 41.2
    assert rust_duration_seconds("850.1ms") == pytest.approx(0.8501)
    assert rust_duration_seconds("12µs") == pytest.approx(12e-6)
    assert rust_duration_seconds("3ns") == pytest.approx(3e-9)
    with pytest.raises(ValueError, match="not a Rust duration"):
        rust_duration_seconds("soon")


def test_timestamp_variants_and_year_rollover() -> None:
    msg = "checking the queue for builds..."
    lines = [
        f"Dec 31 23:59:59 hydra hydra-queue-runner[1]: {msg}",
        f"Jan  1 00:00:00.123456 hydra hydra-queue-runner[1]: {msg}",
        f"Jan  1 00:00:01 hydra hydra-queue-runner[1]: {msg}",
        f"2027-01-01T01:00:02+0100 hydra hydra-queue-runner[1]: {msg}",
        f"2027-01-01T00:00:02.5+00:00 hydra hydra-queue-runner[1]: {msg}",
        f"2027-01-01T00:00:03Z hydra hydra-queue-runner[1]: {msg}",
    ]
    events, summary = parse_lines(lines, source="t", year=2026)
    base = calendar.timegm((2027, 1, 1, 0, 0, 0))
    assert [e["ts"] for e in events] == [
        base - 1,
        pytest.approx(base + 0.123456),
        base + 1,
        base + 2,
        base + 2.5,
        base + 3,
    ]
    assert summary.lines == summary.understood == 6


def test_unknown_lines_counted_by_pattern() -> None:
    lines = [
        short(f"sending closure of {q(DRV)} to {q(M)} in 12 parts"),
        short(f"sending closure of {q(OUT)} to {q(M)} in 3 parts"),
        "<5>something else 42",
        short("checking the queue for builds..."),
    ]
    events, summary = parse_lines(lines, source="t", year=2026)
    assert [e["event"] for e in events] == ["queue_check"]
    assert summary.lines == 4 and summary.understood == 1
    assert summary.unknown == {
        "sending closure of \u2018<path>\u2019 to \u2018<path>\u2019 in N parts": 2,
        "something else N": 1,
    }


def test_continuation_lines_attach_to_previous_event() -> None:
    lines = [
        short(f"possibly transient failure building {q(DRV)} on {q(M)}: error: build failed"),
        "                                          last 10 log lines:",
        "  > make: *** [Makefile:3] Error 1",
    ]
    events, summary = parse_lines(lines, source="t", year=2026)
    assert len(events) == 1
    assert events[0]["continuation"] == [lines[1], lines[2]]
    assert summary.understood == 3
    record = {"MESSAGE": "marking build 5 as failed\nsecond line", "PRIORITY": "3"}
    assert one(json.dumps(record))["continuation"] == ["second line"]


def test_new_pid_emits_runner_restart() -> None:
    lines = [
        short("checking the queue for builds...", pid=100),
        short("checking the queue for builds...", pid=100),
        short("checking the queue for builds...", pid=200),
    ]
    events, _ = parse_lines(lines, source="t", year=2026)
    assert [e["event"] for e in events] == [
        "queue_check",
        "queue_check",
        "runner_restart",
        "queue_check",
    ]
    assert (events[2]["old_pid"], events[2]["pid"], events[2]["unit"]) == (
        100,
        200,
        "hydra-queue-runner",
    )


def test_malformed_lines_and_strict_mode() -> None:
    lines = [
        short("checking the queue for builds..."),
        "{not json",
        "Feb 30 10:00:00 hydra hydra-queue-runner[1]: marking build 1 as failed",
        json.dumps({"PRIORITY": "5"}),
    ]
    events, summary = parse_lines(lines, source="q.log", year=2026)
    assert len(events) == 1
    assert [m.split(": ")[0] for m in summary.malformed] == ["q.log:2", "q.log:3", "q.log:4"]
    with pytest.raises(CollectorError, match=r"q\.log:2: bad journal JSON"):
        parse_lines(lines, source="q.log", year=2026, strict=True)
    with pytest.raises(CollectorError, match=r"x:1: continuation line"):
        parse_lines(["   orphan"], source="x", year=2026, strict=True)


def test_compressed_inputs(tmp_path: Path) -> None:
    text = "".join(
        short(m) + "\n" for m in ("checking the queue for builds...", "marking build 9 as failed")
    )
    data = text.encode()
    files = {
        "plain.log": data,
        "j.gz": gzip.compress(data),
        "j.xz": lzma.compress(data),
        "j.zst": zstandard.ZstdCompressor().compress(data),
    }
    for name, blob in files.items():
        path = tmp_path / name
        path.write_bytes(blob)
        with open_log(str(path)) as f:
            assert f.read() == text
        events, summary = parse_file(str(path), year=2026)
        assert [e["event"] for e in events] == ["queue_check", "build_failed"], name
        assert summary.understood == 2


def _slow(lines: list[str], source: str = "t") -> tuple[list[dict[str, Any]], Any]:
    """The reference: every line through the general per-line path."""
    parser = JournalParser(source, 2026, strict=False)
    for lineno, line in enumerate(lines, 1):
        parser.feed(lineno, line)
    return parser.events, parser.summary


def test_fast_path_gives_the_same_events_as_the_general_path() -> None:
    """Every case in every envelope, with unknown, continuation, restart, year and bad lines."""
    lines = ["Dec 31 23:59:58 hydra hydra-queue-runner[9]: checking the queue for builds > 7..."]
    messages = [m for m, _, _ in CXX_CASES] + [rust_line(*c[:4]) for c in RUST_CASES]
    for i, msg in enumerate(messages):
        pid = 1234 if i % 7 else 4321  # a restart now and then
        lines += [short(msg, pid=pid), short(msg, "<3>", pid=pid), short("<6>" + msg, pid=pid)]
        lines += [f"<5>{msg}", short(f"unknown {i} thing /nix/store/x", pid=pid), "  cont."]
    lines += [
        "Jan  1 00:00:01.5 hydra hydra-queue-runner[9]: marking build 3 as failed",
        short(f"maybe cancelling build step {q(DRV)}"),
        short("maybe cancelling build step /nix/store/bare.drv"),
        "Feb 30 10:00:00 hydra hydra-queue-runner[1]: marking build 1 as failed",
        "Jan  1 25:00:00 hydra hydra-queue-runner[1]: marking build 1 as failed",
        "Xyz  1 10:00:00 hydra hydra-queue-runner[1]: marking build 1 as failed",
    ]
    fast_events, fast_summary = parse_lines(lines, source="t", year=2026)
    slow_events, slow_summary = _slow(lines)
    assert len(fast_events) > 3 * len(CXX_CASES)
    assert fast_events == slow_events
    assert fast_summary == slow_summary
    assert len(fast_summary.malformed) == 2  # Feb 30 and hour 25; "Xyz" is a continuation
