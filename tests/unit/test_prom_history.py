"""collect history against a small fake Prometheus API serving the series of the C++ and Rust
fixture documents: the imported rows equal live parsing of the same documents; chunks,
resumption, a stop, and one-line errors."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import urllib.parse
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, ClassVar

import pytest
from prometheus_client.parser import text_string_to_metric_families

from profiler.collect.history.api import Prometheus
from profiler.collect.history.importer import HistoryOptions, Importer
from profiler.collect.status.prometheus import from_prometheus
from profiler.errors import CollectorError
from profiler.store import Run, read_run

DATA = Path(__file__).parent.parent / "data" / "status"
T0 = 1_700_000_000.0
TARGET = ("hydra", "runner:9198")
SOURCE = "http://runner:9198/metrics"


def _series(text: str, times: list[float]) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """The matrix Prometheus would hold after scraping ``text`` at ``times`` (a counter grows
    by its index each time), and the metadata of its families."""
    series, meta = [], {}
    for fam in text_string_to_metric_families(text):
        kind = fam.type if fam.type != "unknown" else "untyped"
        name = fam.name + ("_total" if fam.type == "counter" and "_total" not in text else "")
        meta[name if f"# TYPE {name} " in text else fam.name] = [{"type": kind}]
        for s in fam.samples:
            if s.name.endswith("_created"):
                continue
            labels = {"__name__": s.name, **s.labels, "job": TARGET[0], "instance": TARGET[1]}
            values = [
                [t, repr(float(s.value) + (i if kind == "counter" else 0))]
                for i, t in enumerate(times)
            ]
            series.append({"metric": labels, "values": values})
    return series, meta


def _document(text: str, index: int) -> str:
    """``text`` as scraped the ``index``-th time (counters grown as in :func:`_series`)."""
    out = []
    for fam in text_string_to_metric_families(text):
        out.append(f"# TYPE {fam.name} {fam.type}")
        for s in fam.samples:
            if s.name.endswith("_created"):
                continue
            grow = index if fam.type == "counter" else 0
            labels = ",".join(f'{k}="{v}"' for k, v in s.labels.items())
            out.append(f"{s.name}{{{labels}}} {float(s.value) + grow!r}")
    return "\n".join(out) + "\n"


class FakeProm(BaseHTTPRequestHandler):
    series: ClassVar[list[dict[str, Any]]] = []
    meta: ClassVar[dict[str, Any]] = {}
    mode: ClassVar[str] = "ok"
    queries: ClassVar[list[dict[str, str]]] = []

    def log_message(self, *_: object) -> None:
        pass

    def do_GET(self) -> None:
        url = urllib.parse.urlsplit(self.path)
        q = dict(urllib.parse.parse_qsl(url.query))
        if self.mode == "http500":
            return self._send(500, b"boom")
        if self.mode == "garbage":
            return self._send(200, b"<html>not json")
        if self.mode == "error":
            return self._json({"status": "error", "errorType": "bad_data", "error": "nope"})
        if url.path.endswith("/metadata"):
            return self._json({"status": "success", "data": self.meta})
        if url.path.endswith("/targets"):
            target = {
                "labels": dict(zip(("job", "instance"), TARGET, strict=True)),
                "scrapeUrl": SOURCE,
            }
            return self._json({"status": "success", "data": {"activeTargets": [target]}})
        self.queries.append(q)
        return self._json({"status": "success", "data": self._matrix(q)})

    def _matrix(self, q: dict[str, str]) -> dict[str, Any]:
        lo, hi, step = float(q["start"]), float(q["end"]), float(q["step"])
        runner = "__name__!~" not in q["query"]
        out = []
        for s in self.series:
            mine = s["metric"]["__name__"].startswith("hydraqueuerunner_") == runner
            values = [v for v in s["values"] if lo <= v[0] <= hi and (v[0] - lo) % step == 0]
            if mine and values:
                out.append({"metric": s["metric"], "values": values})
        return {"resultType": "matrix", "result": out}

    def _json(self, doc: object) -> None:
        self._send(200, json.dumps(doc).encode())

    def _send(self, status: int, body: bytes) -> None:
        self.send_response(status)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


@contextmanager
def fake_prometheus(text: str, times: list[float], mode: str = "ok") -> Iterator[str]:
    FakeProm.series, FakeProm.meta = _series(text, times)
    FakeProm.mode, FakeProm.queries = mode, []
    server = ThreadingHTTPServer(("127.0.0.1", 0), FakeProm)
    thread = threading.Thread(target=server.serve_forever)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def _import(url: str, out: Path, until: float, **kw: Any) -> Importer:
    run = Run.open(str(out))
    opts = HistoryOptions(since=T0, until=until, step_seconds=10.0, chunk_seconds=30.0, **kw)
    importer = Importer(run, Prometheus(url, 5.0), opts)
    try:
        importer.import_all()
    finally:
        run.close()
    return importer


def _rows(samples: list[dict[str, Any]]) -> list[tuple[Any, ...]]:
    keys = ["ts", "source", "generation", "metric", "value", "kind", "unit"]
    keys += ["machine", "machine_type", "jobset", "bucket"]
    return sorted(
        tuple("" if r[k] is None or r[k] != r[k] else r[k] for k in keys) for r in samples
    )


@pytest.mark.parametrize("name", ["metrics-cxx.prom", "metrics-rust.prom"])
def test_imported_rows_are_the_live_rows(tmp_path: Path, name: str) -> None:
    text = (DATA / name).read_text()
    times = [T0 + 10 * i for i in range(7)]
    with fake_prometheus(text, times) as url:
        importer = _import(url, tmp_path / "run", times[-1])
    live = [r for i, t in enumerate(times) for r in from_prometheus(_document(text, i), t, SOURCE)]
    imported = read_run(str(tmp_path / "run")).table("samples").to_dict("records")
    assert _rows(imported) == _rows(live)
    # 7 times 10 s apart in chunks of 30 s (3 times): T0..T0+20, T0+30..T0+50, T0+60
    chunks = read_run(str(tmp_path / "run")).table("history_chunks")
    assert importer.chunks_done == 3
    assert list(chunks["start"]) == [T0, T0 + 30, T0 + 60]
    assert list(chunks["end"]) == [T0 + 20, T0 + 50, T0 + 60]


def test_resumes_after_the_last_chunk(tmp_path: Path) -> None:
    text = (DATA / "metrics-rust.prom").read_text()
    times = [T0 + 10 * i for i in range(7)]
    with fake_prometheus(text, times) as url:
        _import(url, tmp_path / "run", T0 + 25)
        first = len(read_run(str(tmp_path / "run")).table("samples"))
        FakeProm.queries = []
        _import(url, tmp_path / "run", times[-1])
        assert float(FakeProm.queries[0]["start"]) == T0 + 30  # after T0+20, the last done
        _import(url, tmp_path / "run", times[-1])  # nothing left: no new rows
        _import(url, tmp_path / "one", times[-1])
    two = read_run(str(tmp_path / "run")).table("samples")
    assert 0 < first < len(two)
    assert _rows(two.to_dict("records")) == _rows(
        read_run(str(tmp_path / "one")).table("samples").to_dict("records")
    )


def test_a_stop_keeps_what_was_written_and_records_it(tmp_path: Path) -> None:
    text = (DATA / "metrics-cxx.prom").read_text()
    times = [T0 + 10 * i for i in range(7)]
    with fake_prometheus(text, times) as url:
        run = Run.open(str(tmp_path / "run"))
        opts = HistoryOptions(since=T0, until=times[-1], step_seconds=10.0, chunk_seconds=30.0)
        importer = Importer(run, Prometheus(url, 5.0), opts)
        importer.log = lambda m: importer.stop.set() if "chunk 1/" in m else None
        importer.import_all()
        run.close()
    assert importer.chunks_done == 1
    samples = read_run(str(tmp_path / "run")).table("samples")
    assert sorted(samples["ts"].unique()) == times[:3]
    chunks = read_run(str(tmp_path / "run")).table("history_chunks")
    assert list(chunks["end"]) == [T0 + 20]  # a re-run starts at T0+30


@pytest.mark.parametrize(
    ("mode", "says"),
    [
        ("http500", "HTTP 500"),
        ("garbage", "not JSON"),
        ("error", "Prometheus says bad_data: nope"),
    ],
)
def test_server_failures_are_one_line(tmp_path: Path, mode: str, says: str) -> None:
    with fake_prometheus("", [], mode) as url:
        with pytest.raises(CollectorError, match=says) as info:
            Prometheus(url, 5.0).query_range("up", T0, T0 + 10, 10)
        done = subprocess.run(
            [sys.executable, "-m", "profiler", "collect", "history", "--prometheus", url,
             "--since", str(T0), "--until", str(T0 + 10), "--out", str(tmp_path / "run")],
            capture_output=True, text=True, timeout=60,
        )  # fmt: skip
    assert "\n" not in str(info.value)
    assert done.returncode == 1
    assert says in done.stderr
    errors = [line for line in done.stderr.splitlines() if says in line]
    assert len(errors) == 1


def test_unreachable_server(tmp_path: Path) -> None:
    from profiler.testbed.pgserver import free_port

    url = f"http://127.0.0.1:{free_port()}"
    done = subprocess.run(
        [sys.executable, "-m", "profiler", "collect", "history", "--prometheus", url,
         "--since", "1h", "--out", str(tmp_path / "run")],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode == 1
    assert "refused" in done.stderr.lower(), done.stderr
    assert "Traceback" not in done.stderr
