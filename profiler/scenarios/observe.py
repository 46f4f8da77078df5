"""A testbed run observed the way a Hydra is: collectors running against it live.

:func:`observed_run` starts the testbed, and while it runs samples its status (and metrics)
over HTTP and, with a database, exports its steps and tracks their phases; when it ends, its
journals are read. Everything lands in one run directory next to the testbed's truth, so the
analysis can be checked against what really happened (tests, the demo).
"""

from __future__ import annotations

import glob
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from profiler.errors import ProfilerError
from profiler.testbed.engine import Knobs
from profiler.testbed.run import run_testbed
from profiler.testbed.workload import Workload


@dataclass
class Observed:
    """Where things are: the testbed directory (truth.json) and the run directory."""

    truth: dict[str, Any]
    testbed_dir: str
    run_dir: str


def observed_run(
    wl: Workload,
    knobs: Knobs,
    out: str,
    *,
    pg_dsn: str | None = None,
    status_interval_seconds: float = 0.25,
    db_interval_seconds: float = 0.1,
    snapshot_seconds: float = 0.25,
    progress: Callable[[str], object] = lambda _m: None,
) -> Observed:
    """Run the testbed under ``knobs`` into ``out/testbed`` and observe it into ``out/run``."""
    from profiler.collect.journal.collector import LogCollector
    from profiler.collect.status.collector import Collector, CollectorOptions
    from profiler.collect.status.sources import HttpSource
    from profiler.store import Run, compact

    tb_dir, run_dir = os.path.join(out, "testbed"), os.path.join(out, "run")
    port: list[int] = []
    box: dict[str, Any] = {}

    def testbed() -> None:
        try:
            box["truth"] = run_testbed(
                wl, knobs, tb_dir, pg_dsn=pg_dsn, on_serving=port.append,
                snapshot_seconds=snapshot_seconds,
                linger_seconds=max(1.0, 3 * status_interval_seconds), progress=progress,
            )  # fmt: skip
        except BaseException as exc:  # reported by the caller's thread
            box["error"] = exc

    thread = threading.Thread(target=testbed, name="testbed")
    thread.start()
    while not port and thread.is_alive():
        time.sleep(0.01)
    if not port:
        thread.join()
        raise ProfilerError(f"testbed failed before serving: {box.get('error')}")
    run = Run.open(run_dir, command=f"observed testbed run ({knobs.generation}, {knobs.codec})")
    quiet = lambda _m: None  # noqa: E731
    paths = ["/queue-runner-status"] if knobs.generation == "cxx" else ["/status"]
    sources = [
        HttpSource(f"http://127.0.0.1:{port[0]}{p}", kind="status", timeout_seconds=5)
        for p in paths
    ]
    sources.append(
        HttpSource(f"http://127.0.0.1:{port[0]}/metrics", kind="metrics", timeout_seconds=5)
    )
    status = Collector(
        run,
        sources[:-1],
        CollectorOptions(interval_seconds=status_interval_seconds, retries=0),
        log=quiet,
    )
    metrics = Collector(
        run,
        sources[-1:],
        CollectorOptions(interval_seconds=max(1.0, status_interval_seconds)),
        log=quiet,
    )
    workers = [threading.Thread(target=c.run_loop, name="collect") for c in (status, metrics)]
    db_collector = None
    if pg_dsn is not None:
        from profiler.collect.database.collector import DbCollector
        from profiler.collect.database.common import DbOptions

        db_collector = DbCollector(
            run,
            pg_dsn,
            DbOptions(
                interval_seconds=db_interval_seconds,
                export_every_seconds=2.0,
                since=time.time() - 60,
                generation=knobs.generation,
            ),
            log=quiet,
        )
        workers.append(threading.Thread(target=db_collector.run_loop, name="collect-db"))
    for w in workers:
        w.start()
    thread.join()
    time.sleep(2 * status_interval_seconds)
    for c in (status, metrics):
        c.stop.set()
    if db_collector is not None:
        db_collector.stop.set()
    for w in workers:
        w.join()
    if "error" in box:
        run.close()
        raise ProfilerError(f"testbed failed: {box['error']}")
    logs = LogCollector(run, log=quiet)
    for path in sorted(glob.glob(os.path.join(tb_dir, "*.journal.json"))):
        logs.collect_file(path)
    run.close()
    compact(run_dir)
    return Observed(box["truth"], tb_dir, run_dir)
