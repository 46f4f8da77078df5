#!/usr/bin/env python3
"""Collector overhead: CPU a `collect status` process spends per sample, and what that
means at a 10 s interval.

A local HTTP server serves a production-sized C++ status document (12 machines, as
hydra.nixos.org has) and a Rust /metrics text. The collector runs as a real process:

1. ``--once`` (interpreter start, imports, one sample) gives the fixed start-up cost;
2. a fast run (``--interval 0.05s`` for ``--seconds``) gives the CPU per sample:
   (CPU of the fast run - start-up CPU) / samples taken.

Reported: CPU ms per sample, and the share of one core at a 10 s interval
(= CPU per sample / 10 s). The target is well under 1%. ``--direct`` also runs the
collector at a real 10 s interval for ``--direct-seconds`` and reports its measured share.

Usage::

    python benchmarks/collector_overhead.py [--seconds 10] [--direct --direct-seconds 120]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))

from profiler.store import read_run
from profiler.testbed import status
from profiler.testbed.state import MachineState, RunnerState


def production_doc() -> bytes:
    state = RunnerState("cxx", time.time() - 86400 * 3, 1234)
    state.machines = [
        MachineState(
            f"builder-{i}.nixos.org",
            ["x86_64-linux", "i686-linux"],
            48,
            current_jobs=i % 4,
            nr_steps_done=40000 + i,
            total_step_seconds=2_100_000,
            total_step_build_seconds=1_300_000,
        )
        for i in range(12)
    ]
    state.nr_steps_done = 480_000
    state.total_step_seconds = 25_000_000
    state.jobsets = {f"nixpkgs:job{i}": (3600 * i, 100) for i in range(40)}
    state.machine_types = {f"x86_64-linux:f{i}": (i, i) for i in range(10)}
    return json.dumps(status.cxx_status(state, time.time(), 144)).encode()


def serve(body: bytes) -> ThreadingHTTPServer:
    class H(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: object) -> None:
            pass

        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    server = ThreadingHTTPServer(("127.0.0.1", 0), H)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def child_cpu(argv: list[str]) -> float:
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    subprocess.run(argv, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def samples_taken(run: str) -> int:
    samples = read_run(run).table("samples")
    return int(samples["ts"].nunique())


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--direct", action="store_true")
    ap.add_argument("--direct-seconds", type=float, default=120.0)
    args = ap.parse_args()
    body = production_doc()
    server = serve(body)
    url = f"http://127.0.0.1:{server.server_address[1]}/queue-runner-status"
    base = [sys.executable, "-m", "profiler", "collect", "status", "--url", url]
    print(f"status document: {len(body) / 1024:.0f} KiB (12 machines, 40 jobsets)")
    with tempfile.TemporaryDirectory() as tmp:
        startup = child_cpu([*base, "--once", "--out", f"{tmp}/once"])
        fast = child_cpu(
            [*base, "--interval", "0.05s", "--duration", f"{args.seconds}s", "--out", f"{tmp}/fast"]
        )
        n = samples_taken(f"{tmp}/fast")
        per_sample = max(fast - startup, 0.0) / max(n - 1, 1)
        print(
            f"start-up CPU {startup * 1e3:.0f} ms; {n} samples in {args.seconds:g} s; "
            f"CPU per sample {per_sample * 1e3:.2f} ms"
        )
        print(f"at a 10 s interval: {per_sample / 10 * 100:.3f}% of one core (target < 1%)")
        if args.direct:
            t0 = time.perf_counter()
            cpu = child_cpu(
                [
                    *base,
                    "--interval",
                    "10s",
                    "--duration",
                    f"{args.direct_seconds}s",
                    "--out",
                    f"{tmp}/direct",
                ]
            )
            wall = time.perf_counter() - t0
            share = (cpu - startup) / wall * 100
            print(
                f"measured directly over {wall:.0f} s at 10 s: {share:.3f}% of one core "
                "(start-up excluded)"
            )
    server.shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
