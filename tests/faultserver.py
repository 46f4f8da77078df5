"""A fault-injecting HTTP server on 127.0.0.1, and a runner of collectors against it.

:class:`FaultServer` listens on a real socket and serves each connection in its own thread.
Every URL it hands out (:meth:`FaultServer.url`) is a route of its own: the first
``valid_first`` requests to it get a valid answer (a C++ status document, or Prometheus text
for ``kind="metrics"``), every later one the route's behaviour, one of :data:`BEHAVIOURS`
(protocol violations, drips, hangs, resets, huge bodies, redirect loops, error statuses...).
Routes are independent, so many collectors can use one server at once.

:func:`run_matrix` runs ``hydra-profiler collect status|metrics --url`` against routes in
parallel, either stopped by ``--duration`` or by SIGTERM while the fault is being served, and
returns what each run did (exit code, stderr, how long it took to end, the run's events and
samples). The tests (tests/integration/test_collect_faults.py) assert on it;
``benchmarks/faults.py`` prints it. Collectors run as real processes: ``launcher="subprocess"``
starts ``python -m profiler``; ``launcher="fork"`` forks them from a multiprocessing fork
server that has imported the profiler (and pandas/pyarrow) once, which makes each run cost
about a tenth of the CPU; both run ``profiler.cli.main`` with its own signal handling.
"""

from __future__ import annotations

import base64
import contextlib
import itertools
import json
import multiprocessing
import multiprocessing.connection
import os
import select
import signal
import socket
import struct
import subprocess
import sys
import threading
import time
import urllib.parse
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

DRIP_SECONDS = 0.05  # one byte per this, for the drip behaviours

BEHAVIOURS: dict[str, str] = {
    "valid": "a valid answer, always",
    "broken-chunking": "chunked, a chunk of 0x100 bytes cut after 15, then close",
    "bad-status-line": "'HELLO WORLD' instead of a status line",
    "no-status-line": "a JSON body with no status line or headers",
    "empty-reply": "the connection closed without a byte",
    "bad-content-length": "Content-Length: abc",
    "negative-content-length": "Content-Length: -5",
    "huge-content-length": "Content-Length: 10^20, a short body, close",
    "many-headers": "200 headers",
    "long-header": "a 70,000-byte header line",
    "bad-chunk-size": "chunked, chunk size 'zz'",
    "drip-headers": f"status line and headers one byte per {DRIP_SECONDS:g} s, endless",
    "drip-body": f"headers, then the body one byte per {DRIP_SECONDS:g} s",
    "hang-after-accept": "the request read, nothing ever answered",
    "hang-after-headers": "headers with Content-Length 100, then nothing",
    "reset-mid-body": "half the body, then a TCP reset",
    "truncated-body": "Content-Length 100 more than the body, then close",
    "huge-body": "a body without Content-Length that never ends (beyond the 64 MiB cap)",
    "redirect-loop": "302 to itself",
    "401": "401 Unauthorized",
    "500": "500 Internal Server Error",
    "503": "503 Service Unavailable, Retry-After: 1",
    "non-json": "200 with an HTML error page",
}
FAULTS = [b for b in BEHAVIOURS if b != "valid"]


def status_document(n: int) -> dict[str, Any]:
    """The ``n``-th valid C++ status document of a route (steps done = n)."""
    return {
        "status": "up",
        "time": int(time.time()),
        "uptime": 1000 + n,
        "pid": 4242,
        "nrStepsDone": n,
        "nrQueuedBuilds": 3,
        "machines": {"builder-1": {"enabled": True, "currentJobs": 1, "nrStepsDone": n}},
    }


def metrics_text(n: int) -> str:
    """The ``n``-th valid Prometheus text of a route (a Rust runner's families)."""
    return (
        "# HELP hydraqueuerunner_steps_finished Steps finished\n"
        "# TYPE hydraqueuerunner_steps_finished gauge\n"
        f"hydraqueuerunner_steps_finished {n}\n"
        "# TYPE hydraqueuerunner_uptime_seconds gauge\n"
        f"hydraqueuerunner_uptime_seconds {1000 + n}\n"
    )


@dataclass
class Route:
    behaviour: str
    valid_first: int
    kind: str
    auth: str | None  # "user:password" the route requires, or None
    requests: int = 0
    in_flight: int = 0
    headers: list[dict[str, str]] = field(default_factory=list)  # of each request
    targets: list[str] = field(default_factory=list)  # the request lines' targets
    first_at: float | None = None  # time.monotonic() of the first request


class FaultServer:
    """A real HTTP/1.1 listener on 127.0.0.1 (any free port), a thread per connection."""

    def __init__(self) -> None:
        self._listener = socket.socket()
        self._listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._listener.bind(("127.0.0.1", 0))
        self._listener.listen(128)
        self.port = self._listener.getsockname()[1]
        self.stop = threading.Event()
        self.routes: dict[str, Route] = {}
        self._lock = threading.Lock()
        self._names = itertools.count(1)
        self._conns: set[socket.socket] = set()
        self._thread = threading.Thread(target=self._accept, name="faultserver", daemon=True)
        self._thread.start()

    def url(
        self,
        behaviour: str,
        *,
        valid_first: int = 1,
        kind: str = "status",
        auth: str | None = None,
        userinfo: str = "",
    ) -> str:
        """A new route: ``valid_first`` valid answers, then ``behaviour`` for ever."""
        if behaviour not in BEHAVIOURS:
            raise ValueError(f"unknown behaviour {behaviour!r}")
        name = f"r{next(self._names)}"
        with self._lock:
            self.routes[name] = Route(behaviour, valid_first, kind, auth)
        tail = "metrics" if kind == "metrics" else "queue-runner-status"
        at = f"{userinfo}@" if userinfo else ""
        return f"http://{at}127.0.0.1:{self.port}/{name}/{tail}"

    def route(self, url: str) -> Route:
        return self.routes[urllib.parse.urlsplit(url).path.split("/")[1]]

    def close(self) -> None:
        self.stop.set()
        self._listener.close()
        with self._lock:
            conns = list(self._conns)
        for conn in conns:
            with contextlib.suppress(OSError):
                conn.close()

    def __enter__(self) -> FaultServer:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    # ---------------------------------------------------------------------------------------

    def _accept(self) -> None:
        while not self.stop.is_set():
            try:
                conn, _ = self._listener.accept()
            except OSError:
                return
            with self._lock:
                self._conns.add(conn)
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn: socket.socket) -> None:
        route = None
        try:
            conn.settimeout(5)
            found = _read_request(conn)
            if found is None:
                return
            target, headers = found
            name = urllib.parse.urlsplit(target).path.split("/")[1:2]
            with self._lock:
                route = self.routes.get(name[0]) if name else None
                if route is not None:
                    n = route.requests
                    route.first_at = route.first_at or time.monotonic()
                    route.requests += 1
                    route.in_flight += 1
                    route.headers.append(headers)
                    route.targets.append(target)
            if route is None:
                _answer(conn, 404, b"no such route\n")
                return
            behaviour = "valid" if n < route.valid_first else route.behaviour
            if route.auth is not None and not _authorised(headers, route.auth):
                behaviour = "401"
            conn.settimeout(None)
            HANDLERS[behaviour](self, conn, route, n, target)
        except OSError:
            pass  # the client went away: what many behaviours are waiting for
        finally:
            if route is not None:
                with self._lock:
                    route.in_flight -= 1
            with self._lock:
                self._conns.discard(conn)
            with contextlib.suppress(OSError):
                conn.close()

    def _until_client_leaves(self, conn: socket.socket) -> None:
        """Hold the connection until the client closes it or the server stops."""
        while not self.stop.is_set():
            ready, _, _ = select.select([conn], [], [], 0.1)
            if ready and not conn.recv(65536):
                return

    def _drip(self, conn: socket.socket, data: bytes) -> None:
        for byte in data:
            if self.stop.wait(DRIP_SECONDS):
                return
            conn.sendall(bytes([byte]))


def _read_request(conn: socket.socket) -> tuple[str, dict[str, str]] | None:
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = conn.recv(65536)
        if not chunk or len(data) > 1 << 20:
            return None
        data += chunk
    head = data.split(b"\r\n\r\n", 1)[0].decode("latin-1").split("\r\n")
    parts = head[0].split(" ")
    if len(parts) != 3:
        return None
    headers = {}
    for line in head[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    return parts[1], headers


def _authorised(headers: dict[str, str], auth: str) -> bool:
    expected = "Basic " + base64.b64encode(auth.encode()).decode()
    return headers.get("authorization") == expected


def _answer(
    conn: socket.socket, status: int, body: bytes, extra: Sequence[str] = (), reason: str = ""
) -> None:
    reason = reason or {200: "OK", 404: "Not Found"}.get(status, "Error")
    head = [f"HTTP/1.1 {status} {reason}", f"Content-Length: {len(body)}", *extra]
    conn.sendall(("\r\n".join(head) + "\r\n\r\n").encode() + body)


def _valid_body(route: Route, n: int) -> bytes:
    if route.kind == "metrics":
        return metrics_text(n).encode()
    return json.dumps(status_document(n)).encode()


def _valid(server: FaultServer, conn: socket.socket, route: Route, n: int, target: str) -> None:
    kind = "text/plain; version=0.0.4" if route.kind == "metrics" else "application/json"
    _answer(conn, 200, _valid_body(route, n), [f"Content-Type: {kind}"])


def _raw(data: bytes) -> Callable[..., None]:
    def send(server: FaultServer, conn: socket.socket, *_args: Any) -> None:
        conn.sendall(data)

    return send


def _status(code: int, reason: str, extra: Sequence[str] = ()) -> Callable[..., None]:
    def send(server: FaultServer, conn: socket.socket, *_args: Any) -> None:
        _answer(conn, code, f"{code} {reason}\n".encode(), extra, reason)

    return send


def _page(body: bytes) -> Callable[..., None]:
    def send(server: FaultServer, conn: socket.socket, *_args: Any) -> None:
        _answer(conn, 200, body, ["Content-Type: text/html"])

    return send


def _with_length(length: str) -> Callable[..., None]:
    def send(server: FaultServer, conn: socket.socket, route: Route, n: int, _t: str) -> None:
        body = _valid_body(route, n)
        conn.sendall(f"HTTP/1.1 200 OK\r\nContent-Length: {length}\r\n\r\n".encode() + body)

    return send


def _many_headers(server: FaultServer, conn: socket.socket, route: Route, n: int, _t: str) -> None:
    _answer(conn, 200, _valid_body(route, n), [f"X-Header-{i}: {i}" for i in range(200)])


def _long_header(server: FaultServer, conn: socket.socket, route: Route, n: int, _t: str) -> None:
    _answer(conn, 200, _valid_body(route, n), ["X-Long: " + "a" * 70_000])


def _drip_headers(server: FaultServer, conn: socket.socket, *_args: Any) -> None:
    head = "HTTP/1.1 200 OK\r\n" + "".join(f"X-Pad-{i}: {i}\r\n" for i in range(10_000))
    server._drip(conn, head.encode())


def _drip_body(server: FaultServer, conn: socket.socket, route: Route, n: int, _t: str) -> None:
    body = _valid_body(route, n) + b" " * 10_000
    conn.sendall(f"HTTP/1.1 200 OK\r\nContent-Length: {len(body)}\r\n\r\n".encode())
    server._drip(conn, body)


def _hang_after_accept(server: FaultServer, conn: socket.socket, *_args: Any) -> None:
    server._until_client_leaves(conn)


def _hang_after_headers(server: FaultServer, conn: socket.socket, *_args: Any) -> None:
    conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n")
    server._until_client_leaves(conn)


def _reset_mid_body(
    server: FaultServer, conn: socket.socket, route: Route, n: int, _t: str
) -> None:
    body = _valid_body(route, n)
    conn.sendall(f"HTTP/1.1 200 OK\r\nContent-Length: {len(body)}\r\n\r\n".encode())
    conn.sendall(body[: len(body) // 2])
    time.sleep(0.05)
    conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))


def _truncated(server: FaultServer, conn: socket.socket, route: Route, n: int, _t: str) -> None:
    body = _valid_body(route, n)
    conn.sendall(f"HTTP/1.1 200 OK\r\nContent-Length: {len(body) + 100}\r\n\r\n".encode() + body)


def _huge_body(server: FaultServer, conn: socket.socket, *_args: Any) -> None:
    conn.sendall(b'HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n\r\n{"status": "up"')
    block = b" " * (1 << 20)
    while not server.stop.is_set():
        conn.sendall(block)  # until the client stops reading and closes (EPIPE, reset)


def _redirect_loop(
    server: FaultServer, conn: socket.socket, _r: Route, _n: int, target: str
) -> None:
    path = urllib.parse.urlsplit(target).path
    _answer(conn, 302, b"", [f"Location: {path}"], "Found")


HANDLERS: dict[str, Callable[[FaultServer, socket.socket, Route, int, str], None]] = {
    "valid": _valid,
    "broken-chunking": _raw(
        b'HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n100\r\n{"status": "up"'
    ),
    "bad-status-line": _raw(b"HELLO WORLD\r\n\r\n"),
    "no-status-line": _raw(b'{"status": "up", "nrStepsDone": 1}'),
    "empty-reply": _raw(b""),
    "bad-content-length": _with_length("abc"),
    "negative-content-length": _with_length("-5"),
    "huge-content-length": _with_length("1" + "0" * 20),
    "many-headers": _many_headers,
    "long-header": _long_header,
    "bad-chunk-size": _raw(
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n{}\r\n0\r\n\r\n"
    ),
    "drip-headers": _drip_headers,
    "drip-body": _drip_body,
    "hang-after-accept": _hang_after_accept,
    "hang-after-headers": _hang_after_headers,
    "reset-mid-body": _reset_mid_body,
    "truncated-body": _truncated,
    "huge-body": _huge_body,
    "redirect-loop": _redirect_loop,
    "401": _status(401, "Unauthorized", ['WWW-Authenticate: Basic realm="hydra"']),
    "500": _status(500, "Internal Server Error"),
    "503": _status(503, "Service Unavailable", ["Retry-After: 1"]),
    "non-json": _page(b"<html><body>502 Bad Gateway</body></html>\n"),
}
assert set(HANDLERS) == set(BEHAVIOURS)


# --------------------------------------------------------------------------------------------
# running collectors against it


@dataclass(frozen=True)
class Case:
    kind: str  # "status" | "metrics"
    behaviour: str
    mode: str  # "duration" | "sigterm"

    @property
    def name(self) -> str:
        return f"{self.kind}-{self.behaviour}-{self.mode}"


@dataclass
class Outcome:
    case: Case
    returncode: int | None  # None: did not end (hung), killed
    stderr: str
    seconds: float  # from start (duration) or from SIGTERM (sigterm) to the process's end
    run_dir: Path
    requests: int
    late: float | None = None  # duration: end - (first request + --duration), start-up aside

    @property
    def traceback(self) -> bool:
        return "Traceback" in self.stderr

    def table(self, name: str) -> Any:
        """A table of the run (an empty one when the run has none)."""
        import pandas as pd

        from profiler.store import read_run

        reader = read_run(str(self.run_dir))
        return reader.table(name) if name in reader.tables() else pd.DataFrame()


def _child(argv: list[str], err_path: str) -> None:
    """A forked collector: ``cli.main(argv)`` with stdout and stderr in ``err_path``."""
    fd = os.open(err_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    os.dup2(fd, 1)
    os.dup2(fd, 2)
    code = 1
    try:
        from profiler.cli import main

        code = main(argv)
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else 1
    except BaseException:
        import traceback

        traceback.print_exc()
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)


_PRELOAD = [
    "profiler.cli",
    "profiler.commands.collect",
    "profiler.collect.status.collector",
    "profiler.collect.status.sources",
    "profiler.collect.status.normalize",
    "profiler.collect.status.prometheus",
    "profiler.store",
    "pandas",
    "pyarrow",
    "pyarrow.parquet",
]


# multiprocessing is not thread-safe here: Process.start() polls every child's sentinel
# (multiprocessing.process._cleanup) while another thread may be reading its own, and the
# loser reads EOF (exit code 255). Starts and polls take turns; waits only watch the fds.
_MP_LOCK = threading.Lock()


class _Process:
    """A collector process: started by subprocess, or forked from a preloaded server."""

    def __init__(self, argv: list[str], err_path: Path, launcher: str, ctx: Any) -> None:
        self.err_path = err_path
        if launcher == "subprocess":
            with open(err_path, "wb") as err:
                self._popen: Any = subprocess.Popen(
                    [sys.executable, "-m", "profiler", *argv], stdout=err, stderr=err
                )
            self.pid = self._popen.pid
        else:
            self._proc = ctx.Process(target=_child, args=(argv, str(err_path)), daemon=False)
            with _MP_LOCK:
                self._proc.start()
            self._popen = None
            self.pid = self._proc.pid

    def wait(self, timeout: float) -> int | None:
        if self._popen is not None:
            try:
                return int(self._popen.wait(timeout))
            except subprocess.TimeoutExpired:
                return None
        multiprocessing.connection.wait([self._proc.sentinel], timeout)
        with _MP_LOCK:
            code = self._proc.exitcode
        return None if code is None else int(code)

    def kill(self) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(self.pid, signal.SIGKILL)
        self.wait(10)


def _noop() -> None:
    pass


def fork_context() -> Any:
    """A multiprocessing fork server with the collector's imports done once (now, not
    during the first runs: their times would include it)."""
    ctx = multiprocessing.get_context("forkserver")
    ctx.set_forkserver_preload(_PRELOAD)
    warm = ctx.Process(target=_noop)
    warm.start()
    warm.join()
    return ctx


def run_case(
    server: FaultServer,
    case: Case,
    out: Path,
    *,
    launcher: str = "fork",
    ctx: Any = None,
    duration: float = 2.0,
    timeout: float = 0.8,
    interval: float = 0.2,
    hang_seconds: float = 10.0,
) -> Outcome:
    """One collector against one route: stopped by ``--duration`` or by SIGTERM once the
    fault is being served (0.3 s into the first faulty request)."""
    url = server.url(case.behaviour, kind=case.kind)
    run_dir = out / case.name
    argv = ["collect", case.kind, "--url", url, "--interval", f"{interval}s"]
    argv += ["--timeout", f"{timeout}s", "--out", str(run_dir)]
    if case.mode == "duration":
        argv += ["--duration", f"{duration}s"]
    route = server.route(url)
    start = time.monotonic()
    proc = _Process(argv, out / f"{case.name}.stderr", launcher, ctx)
    late = None
    if case.mode == "duration":
        code = proc.wait(duration + hang_seconds)
        seconds = time.monotonic() - start
        if route.first_at is not None:
            late = time.monotonic() - (route.first_at + duration)
    else:
        while route.requests < route.valid_first + 1 and time.monotonic() - start < 10:
            if proc.wait(0.02) is not None:
                break
        time.sleep(0.3)
        signalled = time.monotonic()
        with contextlib.suppress(ProcessLookupError):
            os.kill(proc.pid, signal.SIGTERM)
        code = proc.wait(hang_seconds)
        seconds = time.monotonic() - signalled
    if code is None:
        proc.kill()
    stderr = (out / f"{case.name}.stderr").read_text(errors="replace")
    return Outcome(case, code, stderr, seconds, run_dir, route.requests, late)


def run_matrix(
    cases: Sequence[Case],
    out: Path,
    *,
    launcher: str = "fork",
    parallel: int = 8,
    **options: Any,
) -> list[Outcome]:
    """Every case, ``parallel`` at a time, against one fault server; outcomes in order."""
    out.mkdir(parents=True, exist_ok=True)
    ctx = fork_context() if launcher == "fork" else None
    with FaultServer() as server, ThreadPoolExecutor(parallel) as pool:
        runs = [
            pool.submit(run_case, server, c, out, launcher=launcher, ctx=ctx, **options)
            for c in cases
        ]
        return [r.result() for r in runs]


def all_cases(kinds: Sequence[str] = ("status", "metrics")) -> Iterator[Case]:
    for kind in kinds:
        for behaviour in BEHAVIOURS:
            for mode in ("duration", "sigterm"):
                yield Case(kind, behaviour, mode)
