"""Run the testbed: the engine, its HTTP endpoints, periodic status snapshots, the truth.

While it runs, the emulator serves on 127.0.0.1 what its generation serves:

* C++: ``/queue-runner-status`` (pretty canonical JSON for ``Accept: application/json``,
  an HTML ``<pre>`` otherwise) and ``/metrics`` (the C++ Prometheus families);
* Rust: ``/status``, ``/status/machines|jobsets|builds|steps|runnable|queues|queues/jobs|
  queues/scheduled|uploads`` and ``/metrics``.

Every ``snapshot_seconds`` it also writes ``status/NNNN.json`` and ``metrics/NNNN.prom``
(and, for C++, appends the ``--status`` one-liner to ``status.txt`` and stores the JSON in
``SystemStatus`` when a database is given), so collectors can be tested from files too.
"""

from __future__ import annotations

import html
import json
import os
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from profiler.testbed import status, truth
from profiler.testbed.engine import Engine, Knobs, timelines_with_queue
from profiler.testbed.workload import Workload

Progress = Callable[[str], object]


class Snapshots:
    """Status JSON and metrics text of the engine's state, now."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def steps(self) -> list[dict[str, Any]]:
        e = self.engine
        out = []
        for r in e.runs:
            if r.finished_at:
                continue
            out.append(
                {
                    "drvPath": r.spec.drv_path,
                    "system": r.spec.system,
                    "runnable": bool(r.runnable_at) and not e.dispatched(r.spec.index),
                    "finished": False,
                    "created": int(e.state.started_at),
                    "tries": 0,
                    "lowestBuildId": r.build_id,
                    "runnableSince": int(r.runnable_at),
                }
            )
        return out

    def status_doc(self, path: str = "/status") -> dict[str, Any] | None:
        e = self.engine
        now = time.time()
        with e.state.lock:
            if e.k.generation == "cxx":
                return status.cxx_status(e.state, now, e.k.workers())
            if path == "/status":
                return status.rust_status(e.state, now)
            return status.rust_endpoint(e.state, now, path, steps=self.steps())

    def metrics(self) -> str:
        e = self.engine
        with e.state.lock:
            if e.k.generation == "cxx":
                return status.cxx_metrics(e.state)
            return status.rust_metrics(e.state, time.time(), list(e.state.job_wait_seconds))


def _handler(snap: Snapshots) -> type[BaseHTTPRequestHandler]:
    cxx = snap.engine.k.generation == "cxx"

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:  # quiet
            pass

        def _send(self, code: int, body: str, ctype: str) -> None:
            data = body.encode()
            self.send_response(code)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self) -> None:
            path = self.path.split("?", 1)[0].rstrip("/") or "/"
            if path == "/metrics":
                self._send(200, snap.metrics(), "text/plain; version=0.0.4")
                return
            if cxx and path == "/queue-runner-status":
                text = status.cxx_status_text(snap.status_doc() or {}, pretty=True)
                if "application/json" in self.headers.get("Accept", ""):
                    self._send(200, text, "application/json")
                else:
                    self._send(
                        200,
                        f"<html><body><pre>{html.escape(text)}</pre></body></html>",
                        "text/html",
                    )
                return
            doc = None if cxx else snap.status_doc(path)
            if doc is None:
                self._send(404, json.dumps({"error": f"no endpoint {path}"}), "application/json")
            else:
                self._send(200, json.dumps(doc), "application/json")

    return Handler


def _snapshot(snap: Snapshots, out: str, n: int) -> None:
    doc = snap.status_doc()
    with open(os.path.join(out, "status", f"{n:04d}.json"), "w", encoding="utf-8") as f:
        json.dump(doc, f)
    with open(os.path.join(out, "metrics", f"{n:04d}.prom"), "w", encoding="utf-8") as f:
        f.write(snap.metrics())
    if snap.engine.k.generation == "cxx" and doc is not None:
        line = status.cxx_status_text(doc, pretty=False)
        with open(os.path.join(out, "status.txt"), "a", encoding="utf-8") as f:
            f.write(line + "\n")


def _dump_status_on_request(snap: Snapshots, dsn: str, stop: threading.Event) -> None:
    """The C++ runner's main thread: the SystemStatus row is written at startup and then only
    when someone sends ``NOTIFY dump_status`` (hydra-queue-runner.cc dumpStatus/showStatus at
    a40d4286), so between requests it goes stale, as on a real farm."""
    import psycopg

    from profiler.testbed.db import HydraDb

    def dump(db: HydraDb) -> None:
        doc = snap.status_doc()
        if doc is not None:
            db.write_system_status(status.cxx_status_text(doc, pretty=False))

    with psycopg.connect(dsn, autocommit=True) as conn, HydraDb(dsn) as db:
        conn.execute("listen dump_status")
        dump(db)  # at startup
        while not stop.is_set():
            for _ in conn.notifies(timeout=0.2, stop_after=1):
                dump(db)


def run_testbed(
    wl: Workload,
    knobs: Knobs,
    out: str,
    *,
    pg_dsn: str | None = None,
    port: int = 0,
    snapshot_seconds: float = 1.0,
    progress: Progress = lambda _m: None,
    on_serving: Callable[[int], object] | None = None,
    linger_seconds: float = 0.0,
) -> dict[str, Any]:
    """Run ``wl`` under ``knobs`` into ``out``; return the truth document.

    ``linger_seconds`` keeps the endpoints up after the last step, so that a collector
    polling them sees the final state.
    """
    for sub in ("", "status", "metrics"):
        os.makedirs(os.path.join(out, sub), exist_ok=True)
    wl.save(os.path.join(out, "workload.json"))
    db = None
    if pg_dsn:
        from profiler.testbed.db import HydraDb

        db = HydraDb(pg_dsn)
        db.create_schema()
    engine = Engine(wl, knobs, out, db=db, progress=progress)
    snap = Snapshots(engine)
    server = ThreadingHTTPServer(("127.0.0.1", port), _handler(snap))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    bound = server.server_address[1]
    if on_serving:
        on_serving(bound)
    stop = threading.Event()
    count = [0]

    def snapshots() -> None:
        while not stop.wait(snapshot_seconds):
            count[0] += 1
            _snapshot(snap, out, count[0])

    ticker = threading.Thread(target=snapshots, daemon=True)
    dumper = None
    if pg_dsn and knobs.generation == "cxx":
        dumper = threading.Thread(
            target=_dump_status_on_request, args=(snap, pg_dsn, stop), daemon=True
        )
        dumper.start()
    started = time.time()
    ticker.start()
    try:
        runs = timelines_with_queue(engine.run())
    finally:
        stop.set()
        ticker.join()
        if dumper is not None:
            dumper.join()
        count[0] += 1
        _snapshot(snap, out, count[0])  # the final state
        time.sleep(linger_seconds)
        server.shutdown()
        server.server_close()
        engine.log.close()
        for j in engine.builder_logs.values():
            j.close()
        if db is not None:
            db.close()
    doc = truth.document(
        runs,
        knobs,
        engine.codec.spec.label,
        started,
        time.time(),
        {
            "http_port": bound,
            "snapshots": count[0],
            "log_lines": engine.log.lines,
            "cache": "cache",
            "database": bool(pg_dsn),
        },
    )
    truth.write(os.path.join(out, "truth.json"), doc)
    return doc
