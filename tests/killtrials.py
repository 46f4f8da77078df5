"""SIGKILL trials: ``collect status`` killed at random moments, then the run checked.

A local HTTP server serves C++ status documents of a farm of ``machines`` machines; each
document carries its sequence number as ``uptime``, so every stored sample says which
document it came from. A campaign starts ``hydra-profiler collect status --url`` into one
run directory again and again and SIGKILLs it after a random delay (mid-sample, mid-write,
at start-up, ...), then lets one last collector finish normally (its compaction absorbs the
killed collectors' segments). After every kill and at the end the run must be readable and:

* no sample torn: every stored sample has all the rows of its document;
* none duplicated: no document stored twice;
* none lost: every document served is stored, except the one in flight at each kill.

Used by tests/integration/test_kill_trials.py (a few trials) and benchmarks/kill_trials.py
(many).
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
UPTIME_MARK = 987654321987  # replaced by the sequence number in each document


def status_document(machines: int) -> bytes:
    """A C++ status document of ``machines`` machines, with ``UPTIME_MARK`` as uptime."""
    from profiler.testbed import status
    from profiler.testbed.state import MachineState, RunnerState

    state = RunnerState("cxx", 1_700_000_000.0, 4242)
    state.machines = [
        MachineState(f"builder-{i}.example.org", ["x86_64-linux"], 16, current_jobs=i % 3,
                     nr_steps_done=1000 + i, total_step_seconds=50_000 + i)
        for i in range(machines)
    ]  # fmt: skip
    doc = status.cxx_status(state, 1_700_000_000.0, 8)
    doc["uptime"] = UPTIME_MARK
    return json.dumps(doc).encode()


def rows_per_document(body: bytes) -> int:
    from profiler.collect.status import normalize

    return len(normalize.from_cxx_status(json.loads(body), 0.0, "x"))


class StatusServer:
    """Serves the document with a new sequence number (1, 2, ...) for every request."""

    def __init__(self, machines: int) -> None:
        self.template = status_document(machines)
        self.rows = rows_per_document(self.template)
        self.served = 0
        self._lock = threading.Lock()
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                with server._lock:
                    server.served += 1
                    seq = server.served
                body = server.template.replace(str(UPTIME_MARK).encode(), str(seq).encode())
                try:
                    self.send_response(200)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body)
                except OSError:  # the collector was killed mid-answer
                    pass

            def log_message(self, *_args: object) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/queue-runner-status"
        self._thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def __enter__(self) -> StatusServer:
        self._thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@dataclass
class Result:
    """What a campaign found."""

    trials: int = 0
    readable: int = 0  # checks after which the run read without an error
    checks: int = 0
    served: int = 0
    stored: int = 0
    lost: int = 0
    torn: int = 0  # stored samples missing rows (a torn sample read as whole)
    duplicated: int = 0
    dropped_partial: int = 0  # torn writes that readers dropped (warnings), which is fine
    tracebacks: int = 0
    errors: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.readable == self.checks and not (
            self.lost or self.torn or self.duplicated or self.tracebacks
        )


def _collector(url: str, run_dir: Path, *extra: str) -> subprocess.Popen[str]:
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
    }
    return subprocess.Popen(
        [sys.executable, "-m", "profiler", "collect", "status", "--url", url,
         "--interval", "0.05s", "--out", str(run_dir), *extra],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=env, cwd=ROOT,
    )  # fmt: skip


def check(run_dir: Path, server: StatusServer, in_flight: set[int], result: Result) -> None:
    """Read the run and count torn, duplicated and lost samples (documents)."""
    from profiler.errors import ProfilerError
    from profiler.store import read_run

    result.checks += 1
    try:
        reader = read_run(run_dir)
    except ProfilerError as exc:
        result.errors.append(f"unreadable: {exc}")
        return
    result.readable += 1
    partial = sum("partial last record" in w for w in reader.warnings)  # until compacted
    result.dropped_partial = max(result.dropped_partial, partial)
    if "samples" not in reader.tables():
        seqs: list[int] = []
        sizes: list[int] = []
    else:
        samples = reader.table("samples")
        sizes = samples.groupby("ts").size().tolist()
        up = samples[(samples["metric"] == "uptime_seconds") & samples["machine"].isna()]
        seqs = [int(v) for v in up["value"]]
    result.torn = sum(n < server.rows for n in sizes)
    result.duplicated = len(seqs) - len(set(seqs)) + sum(n > server.rows for n in sizes)
    result.stored, result.served = len(set(seqs)), server.served
    missing = set(range(1, server.served + 1)) - set(seqs) - in_flight
    result.lost = len(missing)
    if result.torn or result.duplicated or missing:
        result.errors.append(
            f"check {result.checks}: torn {result.torn}, duplicated {result.duplicated}, "
            f"lost {sorted(missing)[:10]}"
        )


def campaign(
    trials: int,
    *,
    machines: int = 2000,
    delays: tuple[float, float] = (0.6, 2.5),
    seed: int | None = None,
    run_dir: Path | None = None,
    log: Any = None,
) -> Result:
    """``trials`` SIGKILLed collectors into one run, a final clean one, checks after each."""
    rng = random.Random(seed)
    result = Result()
    with _directory(run_dir) as base, StatusServer(machines) as server:
        run = base / "run"
        in_flight: set[int] = set()
        for trial in range(trials):
            proc = _collector(server.url, run)
            time.sleep(rng.uniform(*delays))
            proc.send_signal(signal.SIGKILL)
            _, err = proc.communicate(timeout=60)
            result.trials += 1
            result.tracebacks += "Traceback" in err
            in_flight.add(server.served)  # the last document served may not have landed
            check(run, server, in_flight, result)
            if log:
                log(f"trial {trial + 1}: served {server.served}, stored {result.stored}, "
                    f"torn writes dropped {result.dropped_partial}")  # fmt: skip
        proc = _collector(server.url, run, "--duration", "0.3s")
        _, err = proc.communicate(timeout=120)
        result.tracebacks += "Traceback" in err
        if proc.returncode != 0:
            result.errors.append(f"final collector exited {proc.returncode}: {err[-300:]}")
        check(run, server, in_flight, result)
    return result


@contextmanager
def _directory(path: Path | None) -> Iterator[Path]:
    if path is not None:
        path.mkdir(parents=True, exist_ok=True)
        yield path
        return
    with tempfile.TemporaryDirectory(prefix="kill-trials-") as tmp:
        yield Path(tmp)
