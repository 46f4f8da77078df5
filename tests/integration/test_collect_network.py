"""Requests with a total deadline, basic auth, proxies, commands, and the collector loop
(restarts, bad times, whole samples), against real sockets and processes."""

from __future__ import annotations

import base64
import json
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, ClassVar

import pytest

from profiler.cli import main
from profiler.collect.status import transfer
from profiler.collect.status.collector import Collector, CollectorOptions
from profiler.collect.status.sources import CommandSource, FileSource, HttpSource
from profiler.collect.status.transfer import Budget, Cancelled, http_get, parse_url, run_command
from profiler.errors import CollectorError, UsageError
from profiler.store import Run, read_run
from tests.faultserver import FaultServer

CMD = [sys.executable, "-m", "profiler"]
HEADERS = {"Accept": "application/json"}


@pytest.fixture(scope="module")
def server() -> Iterator[FaultServer]:
    with FaultServer() as s:
        yield s


def _get(url: str, timeout: float = 5.0, budget: Budget = transfer.NO_BUDGET, **kw: Any) -> Any:
    return http_get(
        parse_url(url),
        headers={**HEADERS, **kw.pop("headers", {})},
        timeout=timeout,
        max_bytes=kw.pop("max_bytes", 64 << 20),
        budget=budget,
    )


# --- deadlines and stops ----------------------------------------------------------------------


@pytest.mark.parametrize("behaviour", ["drip-body", "drip-headers", "hang-after-headers"])
def test_a_slow_server_is_cut_at_the_total_deadline(server: FaultServer, behaviour: str) -> None:
    url = server.url(behaviour, valid_first=0)
    start = time.monotonic()
    with pytest.raises(CollectorError, match=r"timed out after 0\.6 s") as err:
        _get(url, timeout=0.6)
    assert 0.55 <= time.monotonic() - start <= 1.5
    assert str(err.value).startswith(url)


def test_a_stop_or_the_end_of_the_run_cuts_a_request_short(server: FaultServer) -> None:
    url = server.url("drip-body", valid_first=0)
    stop = threading.Event()
    threading.Timer(0.3, stop.set).start()
    start = time.monotonic()
    with pytest.raises(Cancelled, match=r"request cut short \(stopped\)"):
        _get(url, timeout=30, budget=Budget(stop))
    assert time.monotonic() - start <= 1.0
    start = time.monotonic()
    with pytest.raises(Cancelled, match=r"cut short \(--duration reached\)"):
        _get(url, timeout=30, budget=Budget(None, time.monotonic() + 0.3))
    assert time.monotonic() - start <= 1.0
    with pytest.raises(Cancelled, match="not sent"):
        _get(url, budget=Budget(stop))


def test_bodies_are_capped(server: FaultServer) -> None:
    with pytest.raises(CollectorError, match=r"body larger than 1048576 bytes$"):
        _get(server.url("huge-body", valid_first=0), max_bytes=1 << 20)
    with pytest.raises(CollectorError, match=r"larger than 1048576 bytes \(Content-Length 1"):
        _get(server.url("huge-content-length", valid_first=0), max_bytes=1 << 20)
    assert _get(server.url("valid"), max_bytes=1 << 20).status == 200


# --- URLs, credentials, proxies ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("", "--url: empty URL"),
        ("http://[::1/x", "Invalid IPv6 URL"),
        ("http://127.0.0.1:18777/ok?token=s3cr3t x", "space or control character at position 39"),
        ("http://h/a\x00b", "space or control character"),
        ("http://h/\nx", "space or control character"),
        ("ftp://h/x", "not an http:// or https:// URL"),
        ("file:///tmp/x.json", "use --file for files"),
        ("http:///x", "no host"),
        ("http://h:99999/x", "out of range"),
        ("http://user:ab/s3cr3t@host/", "must be percent-encoded"),
        ("hydra.example.org/queue-runner-status", "not an http:// or https:// URL"),
    ],
)
def test_bad_urls_are_one_line_usage_errors(url: str, message: str) -> None:
    with pytest.raises(UsageError, match=r"^--url") as err:
        HttpSource(url)
    text = str(err.value)
    assert message in text and "\n" not in text
    assert "s3cr3t" not in text


def test_basic_auth_from_the_urls_userinfo(server: FaultServer) -> None:
    url = server.url("valid", auth="hydra:p/w@x", userinfo="hydra:p%2Fw%40x")
    body = json.loads(_get(url).body)
    assert body["status"] == "up"
    route = server.route(url)
    expected = "Basic " + base64.b64encode(b"hydra:p/w@x").decode()
    assert route.headers[0]["authorization"] == expected
    assert route.headers[0]["host"] == f"127.0.0.1:{server.port}"  # not "hydra:...@127..."
    plain = url.replace("hydra:p%2Fw%40x@", "")
    with pytest.raises(CollectorError, match="HTTP 401 Unauthorized"):
        _get(plain)
    with pytest.raises(CollectorError, match="HTTP 401 Unauthorized"):
        _get(url.replace("p%2Fw", "wrong"))
    with pytest.raises(CollectorError, match=r"^http://hydra:\*\*\*@127"):
        _get(url.replace("p%2Fw", "wrong"))
    # the same credentials as a header
    assert _get(plain, headers={"Authorization": expected}).status == 200


def test_a_password_protected_status_page_can_be_collected(
    server: FaultServer, tmp_path: Path
) -> None:
    url = server.url("valid", auth="admin:s3cr3t-pw", userinfo="admin:s3cr3t-pw")
    out = tmp_path / "run"
    done = subprocess.run(
        [*CMD, "collect", "status", "--url", url, "--once", "--out", str(out)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    reader = read_run(str(out))
    assert set(reader.table("samples")["metric"]) >= {"up", "steps_done_total"}
    assert reader.manifest["sources"][0]["target"].startswith("http://admin:***@127.0.0.1")
    token = base64.b64encode(b"admin:s3cr3t-pw").decode()
    plain = url.replace("admin:s3cr3t-pw@", "")
    headers = ["--header", f"Authorization: Basic {token}", "--header", "X-Trace: abc"]
    done = subprocess.run(
        [
            *CMD,
            "collect",
            "status",
            "--url",
            plain,
            "--once",
            "--out",
            str(tmp_path / "h"),
            *headers,
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert server.route(plain).headers[-1]["x-trace"] == "abc"
    manifest = (tmp_path / "h" / "manifest.json").read_text()
    assert token not in manifest and "Authorization: ***" in manifest
    done = subprocess.run(
        [*CMD, "collect", "status", "--url", plain, "--once", "--out", str(tmp_path / "n")],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 1 and "HTTP 401 Unauthorized" in done.stderr


class _Redirector(BaseHTTPRequestHandler):
    """/same -> /end on this server; /away -> /end on ``elsewhere``; /end records headers."""

    elsewhere: ClassVar[str] = ""
    seen: ClassVar[list[dict[str, str]]] = []

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_GET(self) -> None:
        if self.path in ("/same", "/away"):
            base = "" if self.path == "/same" else self.elsewhere
            self.send_response(302)
            self.send_header("Location", f"{base}/end")
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        _Redirector.seen.append({k.lower(): v for k, v in self.headers.items()})
        body = b'{"status": "down"}'
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


def test_credentials_stay_with_their_origin_on_redirects() -> None:
    srv = ThreadingHTTPServer(("127.0.0.1", 0), _Redirector)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    port = srv.server_address[1]
    _Redirector.elsewhere = f"http://localhost:{port}"  # another origin: another host name
    _Redirector.seen = []
    try:
        for path in ("/same", "/away"):
            _get(f"http://u:pw@127.0.0.1:{port}{path}", headers={"X-Api-Key": "k"})
    finally:
        srv.shutdown()
        srv.server_close()
    same, away = _Redirector.seen
    assert same["authorization"].startswith("Basic ") and same["x-api-key"] == "k"
    assert "authorization" not in away and "x-api-key" not in away


def test_the_environments_http_proxy_is_used(
    server: FaultServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = server.url("valid")
    path = url.split(str(server.port), 1)[1]
    for name in ("no_proxy", "NO_PROXY", "HTTP_PROXY"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("http_proxy", f"http://127.0.0.1:{server.port}")
    assert json.loads(_get(f"http://hydra.invalid{path}").body)["status"] == "up"
    assert server.route(url).targets == [f"http://hydra.invalid:80{path}"]
    monkeypatch.setenv("no_proxy", "hydra.invalid")
    with pytest.raises(CollectorError, match="unreachable"):
        _get(f"http://hydra.invalid{path}")


# --- commands ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("command", "message"),
    [
        ("echo 'abc", "cannot parse it: No closing quotation"),
        ("", "empty command"),
        ("   ", "empty command"),
        ("cat \\", "cannot parse it: No escaped character"),
    ],
)
def test_unparsable_commands_are_usage_errors(command: str, message: str) -> None:
    with pytest.raises(UsageError, match=r"^--command") as err:
        CommandSource(command)
    assert message in str(err.value)


def test_commands_that_cannot_run_are_one_line_errors(tmp_path: Path) -> None:
    script = tmp_path / "status.sh"
    script.write_text("#!/bin/sh\necho '{}'\n")  # not executable
    cases = {
        str(script): r"cannot run: \[Errno 13\] Permission denied",
        str(tmp_path): r"cannot run: \[Errno 13\] Permission denied",
        str(tmp_path / "missing"): "command not found",
        "false": r"no output \(exit code 1\)",
        "sh -c 'echo boom >&2; exit 3'": r"no output \(boom\)",
    }
    for command, message in cases.items():
        with pytest.raises(CollectorError, match=message) as err:
            CommandSource(command).fetch()
        assert "\n" not in str(err.value)


def test_command_output_is_capped_and_deadlined(tmp_path: Path) -> None:
    with pytest.raises(CollectorError, match="output larger than 1048576 bytes"):
        run_command(
            ["head", "-c", "5000000", "/dev/zero"], target="t", timeout=10, max_bytes=1 << 20
        )
    pidfile = tmp_path / "pid"
    start = time.monotonic()
    with pytest.raises(CollectorError, match=r"no answer within 0\.5 s"):
        run_command(
            ["sh", "-c", f"sleep 30 & echo $! > {pidfile}; wait"],
            target="t",
            timeout=0.5,
            max_bytes=1 << 20,
        )
    assert time.monotonic() - start < 2.0
    stat = Path(f"/proc/{pidfile.read_text().strip()}/stat")
    for _ in range(100):  # the whole process group was killed: gone, or a zombie
        try:
            state = stat.read_text().rsplit(")", 1)[1].split()[0]
        except FileNotFoundError:
            state = "gone"
        if state in ("Z", "gone"):
            break
        time.sleep(0.02)
    assert state in ("Z", "gone")
    stop = threading.Event()
    threading.Timer(0.2, stop.set).start()
    with pytest.raises(Cancelled, match="command cut short"):
        run_command(["sleep", "30"], target="t", timeout=30, max_bytes=10, budget=Budget(stop))


# --- the collector loop -----------------------------------------------------------------------


def _collect(tmp_path: Path, sources: list[Any], **options: Any) -> tuple[Collector, Any]:
    run = Run.open(str(tmp_path / "run"))
    collector = Collector(run, sources, CollectorOptions(**options), log=lambda _m: None)
    collector.run_loop()
    run.close()
    return collector, read_run(str(tmp_path / "run"))


def test_duration_is_honoured_while_a_source_hangs(server: FaultServer, tmp_path: Path) -> None:
    # the findings' D20: --timeout 2s --duration 8s ran 16.2 s; here scaled by 1/4
    src = HttpSource(server.url("hang-after-accept", valid_first=0), timeout_seconds=0.5)
    start = time.monotonic()
    collector, reader = _collect(
        tmp_path, [src], interval_seconds=30, duration_seconds=2.0, retries=2, backoff_seconds=0.25
    )
    assert time.monotonic() - start <= 3.0
    events = reader.table("events")
    assert "cut short (--duration reached)" in events["detail"].iloc[-1]
    assert collector.errors == 0  # retried until the end: a gap, not an error


def test_a_stop_ends_the_loop_during_a_request(server: FaultServer, tmp_path: Path) -> None:
    run = Run.open(str(tmp_path / "run"))
    src = HttpSource(server.url("drip-body", valid_first=1), timeout_seconds=30)
    collector = Collector(run, [src], CollectorOptions(interval_seconds=0.1), log=print)
    loop = threading.Thread(target=collector.run_loop)
    loop.start()
    while server.route(src.url.display).in_flight == 0 or collector.samples_written == 0:
        time.sleep(0.01)
    time.sleep(0.2)
    stopped = time.monotonic()
    collector.stop.set()
    loop.join(5)
    assert not loop.is_alive() and time.monotonic() - stopped <= 1.0
    run.close()
    assert read_run(str(tmp_path / "run")).manifest["sources"][0]["ended_utc"]


def _snapshots(tmp_path: Path, docs: list[Any]) -> FileSource:
    snaps = tmp_path / "snaps"
    snaps.mkdir()
    for i, doc in enumerate(docs):
        text = doc if isinstance(doc, str) else json.dumps(doc)
        (snaps / f"{i:04d}.json").write_text(text)
    return FileSource(str(snaps))


@pytest.mark.parametrize(
    ("docs", "detail"),
    [
        ([{"uptime": 100}, {"uptime": 5}], "uptime 100 -> 5"),
        ([{"uptime": 100, "pid": 7}, {"uptime": 5}], "uptime 100 -> 5"),
        ([{"uptime": 100}, {"uptime": 5, "pid": 7}], "uptime 100 -> 5"),
        ([{"pid": 7}, {"pid": 4194304}], "pid 7 -> 4194304"),
        ([{"pid": 7, "uptime": 100}, {"pid": 8, "uptime": 5}], "pid 7 -> 8, uptime 100 -> 5"),
        ([{"pid": 7, "uptime": 100}, {"pid": None, "uptime": "x"}, {"pid": 8}], "pid 7 -> 8"),
        ([{"uptime": 100}, {"pid": 7}, {"uptime": 50}], "uptime 100 -> 50"),
        ([{"uptime": 1e400 if False else 10**400}, {"uptime": 5}], None),
    ],
)
def test_restarts_are_found_whatever_fields_are_missing(
    tmp_path: Path, docs: list[dict[str, Any]], detail: str | None
) -> None:
    full = [{"status": "up", "time": 1000 + i, **d} for i, d in enumerate(docs)]
    collector, reader = _collect(tmp_path, [_snapshots(tmp_path, full)])
    assert collector.errors == 0
    events = reader.table("events") if "events" in reader.tables() else None
    restarts = [] if events is None else events[events["event"] == "restart"]["detail"].tolist()
    if detail is None:
        assert restarts == []
    else:
        assert restarts == [f"queue runner restarted ({detail}); counters reset"]


def test_restarts_in_old_journal_status_lines(tmp_path: Path) -> None:
    journal = tmp_path / "old.journal"
    line = "Jun 05 12:00:0{} hydra hydra-queue-runner[1]: status: {}\n"
    journal.write_text(
        line.format(0, '{"status":"up","uptime":100,"time":1}')
        + line.format(1, '{"status":"up","uptime":5,"time":2}')
        + line.format(2, "[" * 100_000)
    )
    _, reader = _collect(tmp_path, [FileSource(str(journal))])
    assert reader.table("events")["detail"].tolist() == [
        "queue runner restarted (uptime 100 -> 5); counters reset"
    ]


def test_bad_numbers_times_and_nesting_in_status_documents(tmp_path: Path) -> None:
    huge = "1" + "0" * 400
    docs = [
        f'{{"status":"up","time":1700000000,"nrStepsDone":{huge},"nrQueuedBuilds":2}}',
        '{"status":"up","time":NaN,"nrQueuedBuilds":3}',
        '{"status":"up","time":1e308,"nrQueuedBuilds":4}',
        '{"status":"up","time":-1e18,"nrQueuedBuilds":5}',
        f'{{"status":"up","time":{huge},"nrQueuedBuilds":6}}',
        '{"status":"up","x":' + "[" * 100_000 + "]" * 100_000 + "}",
        '{"status":"up","time":1700000009,"machines":{"m":{"currentJobs":' + huge + "}}}",
    ]
    collector, reader = _collect(tmp_path, [_snapshots(tmp_path, docs)])
    samples = reader.table("samples")
    assert samples["ts"].between(0, 4102444800).all()
    queued = samples[samples["metric"] == "builds_queued"]
    assert sorted(queued["value"]) == [2.0, 3.0, 4.0, 5.0, 6.0]  # every document but one kept
    assert "steps_done_total" not in set(samples["metric"])  # "not a number"
    assert "machine_current_jobs" not in set(samples["metric"])
    events = reader.table("events")
    errors = events[events["event"] == "error"]["detail"].tolist()
    assert len(errors) == 1 and "0005.json: JSON nested too deeply" in errors[0]
    notes = events[events["event"] == "note"]["detail"].tolist()
    assert len(notes) == 4 and all("not a plausible time" in n for n in notes[:3])
    assert collector.errors == 1


def test_a_sample_is_written_in_one_write(tmp_path: Path) -> None:
    machines = {f"m{i}": {"enabled": True, "currentJobs": i} for i in range(300)}
    docs = [{"status": "up", "time": 1000 + i, "machines": machines} for i in range(3)]
    run = Run.open(str(tmp_path / "run"))
    collector = Collector(run, [_snapshots(tmp_path, docs)], CollectorOptions())
    writes: list[int] = []
    real = collector.samples._write

    def spy(data: bytes, count: int) -> None:
        writes.append(count)
        real(data, count)

    collector.samples._write = spy  # type: ignore[method-assign]
    collector.run_loop()
    run.close()
    assert writes == [602, 602, 602]  # up, time, 2 per machine: each document in one write


@pytest.mark.parametrize(
    ("flag", "value", "message"),
    [
        ("--interval", "1e400", "too long"),
        ("--interval", "nan", "not a number"),
        ("--interval", "0", "must be positive"),
        ("--timeout", "1e400", "too long (at most 1 day)"),
        ("--timeout", "1e12", "too long (at most 1 day)"),
        ("--timeout", "0s", "must be positive"),
        ("--duration", "1e999s", "too long"),
        ("--duration", "0", "must be positive (or use --once)"),
        ("--duration", "-1s", "negative duration"),
    ],
)
def test_time_options_out_of_range_are_usage_errors(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], flag: str, value: str, message: str
) -> None:
    argv = ["collect", "status", "--file", str(tmp_path), "--out", str(tmp_path / "r")]
    assert main([*argv, f"{flag}={value}"]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1 and err.startswith("hydra-profiler: error:")
    assert not (tmp_path / "r").exists()
