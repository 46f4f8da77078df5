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

import contextlib
import html
import json
import os
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from profiler.errors import ProfilerError
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
            host = status.read_host()  # once per document, as the runner reads it
            if path == "/status":
                return status.rust_status(e.state, now, host=host)
            return status.rust_endpoint(e.state, now, path, steps=self.steps(), host=host)

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
            try:
                self._get()
            except (BrokenPipeError, ConnectionResetError):
                pass  # the client went away: its business
            except Exception as exc:  # the emulator's own bug: the run is void
                snap.engine.fail(f"the HTTP endpoint {self.path}", exc)
                with contextlib.suppress(OSError):
                    self._send(500, json.dumps({"error": "testbed failure"}), "application/json")

        def _get(self) -> None:
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


def _dump_status_on_request(
    snap: Snapshots, dsn: str, stop: threading.Event, *, reconnect_seconds: float = 30.0
) -> None:
    """The C++ runner's main thread: the SystemStatus row is written at startup and then only
    when someone sends ``NOTIFY dump_status`` (hydra-queue-runner.cc dumpStatus/showStatus at
    a40d4286), so between requests it goes stale, as on a real farm. A lost connection (a
    PostgreSQL restart) is reopened, with LISTEN again, for up to ``reconnect_seconds``."""
    import psycopg

    from profiler.testbed.db import HydraDb

    def dump(db: HydraDb) -> None:
        doc = snap.status_doc()
        if doc is not None:
            db.write_system_status(status.cxx_status_text(doc, pretty=False))

    with HydraDb(dsn, reconnect_seconds=reconnect_seconds) as db:
        dump(db)  # at startup
        lost_since: float | None = None
        while not stop.is_set():
            try:
                with psycopg.connect(dsn, autocommit=True) as conn:
                    conn.execute("listen dump_status")
                    lost_since = None
                    while not stop.is_set():
                        for _ in conn.notifies(timeout=0.2, stop_after=1):
                            dump(db)
            except psycopg.OperationalError as exc:
                lost_since = lost_since or time.monotonic()
                if time.monotonic() - lost_since > reconnect_seconds:
                    raise ProfilerError(
                        f"the database connection was lost and not back within "
                        f"{reconnect_seconds:g} s: {' '.join(str(exc).split())}"
                    ) from None
                stop.wait(0.5)


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # a client that misbehaves or goes away: no traceback on the testbed's stderr


class _NotYet(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        self.send_error(503)


def _serve(port: int) -> ThreadingHTTPServer:
    """The HTTP server bound to 127.0.0.1:``port`` (0: a free one); a one-line error when
    the port is taken or not allowed."""
    try:
        return _Server(("127.0.0.1", port), _NotYet)
    except (OSError, OverflowError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise ProfilerError(f"testbed: cannot serve on 127.0.0.1:{port}: {reason}") from None


def _start(
    wl: Workload, knobs: Knobs, out: str, pg_dsn: str | None, port: int, progress: Progress
) -> tuple[ThreadingHTTPServer, Any, Engine]:
    """The server's port and the database first (nothing is written if they fail), then the
    output directory and the engine; every failure in one line."""
    server = _serve(port)
    db = None
    try:
        if pg_dsn:
            from profiler.testbed.db import HydraDb

            db = HydraDb.connect(pg_dsn)
            db.create_schema()
        for sub in ("", "status", "metrics"):
            os.makedirs(os.path.join(out, sub), exist_ok=True)
        with contextlib.suppress(FileNotFoundError):
            os.remove(os.path.join(out, "truth.json"))  # an earlier run's truth is not this one's
        wl.save(os.path.join(out, "workload.json"))
        return server, db, Engine(wl, knobs, out, db=db, progress=progress)
    except BaseException as exc:
        server.server_close()
        if db is not None:
            db.close()
        if isinstance(exc, OSError):
            raise ProfilerError(f"testbed: {out}: cannot write: {exc.strerror or exc}") from None
        raise


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
    server, db, engine = _start(wl, knobs, out, pg_dsn, port, progress)
    snap = Snapshots(engine)
    server.RequestHandlerClass = _handler(snap)
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

    ticker = threading.Thread(target=engine.guarded("the status snapshots", snapshots), daemon=True)
    dumper = None
    if pg_dsn and knobs.generation == "cxx":
        dumper = threading.Thread(
            target=engine.guarded(
                "the SystemStatus writer", _dump_status_on_request, snap, pg_dsn, stop
            ),
            daemon=True,
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
        engine.guarded("the status snapshots", _snapshot, snap, out, count[0])()  # the end
        time.sleep(linger_seconds)
        server.shutdown()
        server.server_close()
        engine.log.close()
        for j in engine.builder_logs.values():
            j.close()
        if db is not None:
            db.close()
    engine.check()  # a thread that failed while the run ended
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
