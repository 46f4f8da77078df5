"""Random testbed scenarios, and the data mixes an operator may have of each.

A :class:`Scenario` is everything one testbed run needs (a workload's parameters and the
:class:`~profiler.testbed.engine.Knobs`), drawn from one seed over every dimension the
testbed can vary: generation, Rust upload mode, codec and level, builder link and upload
bandwidth, local worker slots, machines x jobs, dispatch delay, database latency, build
scale, output sizes, failures, retries, builder CPU pressure and DAG shape. Nothing here
knows what the analysis will conclude; the benchmark (``benchmarks/accuracy.py``) draws
scenarios with fresh seeds and checks the analysis against each run's truth.

:data:`MIXES` are the data an operator may have, each built from one observed run the way
an operator would collect it: the collectors the CLI runs, with the options its commands
give them (``collect logs --file``, ``collect db --since 1d --once``, ``collect status|metrics
--file --once``), called as library code.
"""

from __future__ import annotations

import glob
import os
import random
import time
from dataclasses import asdict, dataclass, field, replace
from typing import Any

from profiler.errors import ProfilerError
from profiler.testbed import workload as wlmod
from profiler.testbed.engine import Knobs

CODECS = ("xz:6", "xz:3", "zstd:3", "zstd:9", "zstd:19")
MIXES = {
    "a": "database + tracker + journal + status + metrics",
    "b": "journal (-o json) + status + metrics",
    "c": "short-format journal + status",
    "d": "database history only (collect db --once)",
    "e": "status + metrics only",
    "e-files": "status + metrics only, imported from captured snapshot files",
}


@dataclass(frozen=True)
class Scenario:
    """One random testbed run: the workload's parameters and the knobs."""

    seed: int
    steps: int
    build_scale: float
    size_scale: float
    shape: str
    knobs: dict[str, Any] = field(default_factory=dict)
    failures: int = 0
    retries: int = 0

    def workload(self) -> wlmod.Workload:
        return wlmod.generate(
            self.steps,
            seed=self.seed,
            build_scale=self.build_scale,
            size_scale=self.size_scale,
            shape=self.shape,
        )

    def make_knobs(self, wl: wlmod.Workload, **changes: Any) -> Knobs:
        """The knobs, with failing and retried steps chosen from ``wl``'s leaves."""
        fail = wlmod.failing_leaves(wl, self.failures, self.seed) if self.failures else None
        retry: frozenset[int] = frozenset()
        if self.retries:
            rng = random.Random(self.seed * 31 + 7)
            pool = [s.index for s in wl.steps if not fail or s.index not in fail]
            retry = frozenset(rng.sample(pool, min(self.retries, len(pool))))
        k = Knobs(**self.knobs, fail_steps=fail or frozenset(), retry_steps=retry)
        return replace(k, **changes) if changes else k

    def describe(self) -> str:
        k = self.knobs
        parts = [
            k.get("generation", "cxx"),
            k.get("codec", "xz:6"),
            f"{k.get('machines', 2)}x{k.get('max_jobs', 2)}",
            f"{self.steps} steps {self.shape}",
            f"build x{self.build_scale:.2g}",
            f"size x{self.size_scale:.2g}",
        ]
        if k.get("generation") == "rust":
            parts.append(k.get("upload_mode", "presigned"))
        if k.get("local_workers") is not None:
            parts.append(f"workers={k['local_workers']}")
        for key, label, scale in (
            ("link_bytes_per_second", "link", 1e-6),
            ("upload_bytes_per_second", "upload", 1e-6),
            ("dispatch_delay_seconds", "dispatch", 1.0),
            ("db_latency_seconds", "db", 1.0),
        ):
            if k.get(key):
                parts.append(f"{label}={k[key] * scale:.2g}{'MB/s' if scale < 1 else 's'}")
        if k.get("pressure_machines"):
            parts.append(f"pressure={k['pressure_machines']}")
        if self.failures or self.retries:
            parts.append(f"fail={self.failures} retry={self.retries}")
        return " ".join(parts)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _log_uniform(rng: random.Random, low: float, high: float) -> float:
    import math

    return math.exp(rng.uniform(math.log(low), math.log(high)))


def random_scenario(seed: int) -> Scenario:
    """A scenario drawn from ``seed`` (the same seed gives the same scenario)."""
    rng = random.Random(seed)
    generation = rng.choice(("cxx", "rust"))
    machines = rng.choice((1, 2, 2, 3, 4))
    knobs: dict[str, Any] = {
        "generation": generation,
        "codec": rng.choice(CODECS),
        "machines": machines,
        "max_jobs": rng.choice((1, 2, 2, 3)),
    }
    if generation == "cxx":
        knobs["local_workers"] = rng.choice((1, 1, 2, 4, 8))
    else:
        knobs["upload_mode"] = rng.choice(("presigned", "presigned", "direct"))
        if machines >= 2 and rng.random() < 0.15:
            knobs["pressure_machines"] = 1
    if rng.random() < 0.3:
        knobs["link_bytes_per_second"] = round(_log_uniform(rng, 4e6, 60e6))
    if rng.random() < 0.4:
        knobs["upload_bytes_per_second"] = round(_log_uniform(rng, 0.8e6, 20e6))
    if rng.random() < 0.25:
        knobs["dispatch_delay_seconds"] = round(_log_uniform(rng, 0.1, 1.0), 2)
    if rng.random() < 0.25:
        knobs["db_latency_seconds"] = round(_log_uniform(rng, 0.03, 0.3), 3)
    steps = rng.randint(10, 22)
    return Scenario(
        seed=seed,
        steps=steps,
        build_scale=round(_log_uniform(rng, 0.1, 1.5), 3),
        size_scale=round(_log_uniform(rng, 0.3, 2.0), 3),
        shape=rng.choice(("mixed", "mixed", "flat", "deep")),
        knobs=knobs,
        failures=rng.choice((0, 0, 0, 1, 2)),
        retries=rng.choice((0, 0, 0, 1)),
    )


def codec_change(s: Scenario) -> str:
    """The codec a re-run switches to: the common switch away from what the farm uses."""
    codec = s.knobs.get("codec", "xz:6")
    return "zstd:3" if codec.startswith("xz") else "xz:6"


def worker_change(s: Scenario) -> tuple[str, dict[str, Any]]:
    """A capacity change and its what-if: C++ local worker slots, Rust one more machine."""
    if s.knobs.get("generation", "cxx") == "cxx":
        workers = s.knobs.get("local_workers") or 2
        new = 4 if workers < 4 else 1
        return f"workers={new}", {"local_workers": new}
    machines = s.knobs.get("machines", 2)
    return "machines=+1", {"machines": machines + 1}


def build_mixes(testbed_dir: str, full_run: str, out: str, dsn: str | None) -> dict[str, str]:
    """Run directories for each mix of :data:`MIXES` from one observed testbed run.

    ``full_run`` is mix (a), collected live; the others take its live status and metrics
    samples (what ``collect status --url`` and ``collect metrics --url`` keep) and collect the
    journals and the database as ``collect logs`` and ``collect db`` would; ``e-files``
    imports the testbed's snapshot files instead (C++ status documents are stamped in whole
    seconds)."""
    statuses = os.path.join(testbed_dir, "status")
    metrics = os.path.join(testbed_dir, "metrics")
    json_logs = sorted(glob.glob(os.path.join(testbed_dir, "*.journal.json")))
    short_logs = sorted(glob.glob(os.path.join(testbed_dir, "*.journal.txt")))
    runs = {"a": full_run}

    for mix, logs in (("b", json_logs), ("c", short_logs)):
        run = os.path.join(out, mix)
        copy_samples(full_run, run, metrics=mix == "b")
        if logs:
            collect_logs(logs, run)
        runs[mix] = run
    if dsn is not None:
        run = os.path.join(out, "d")
        collect_db_once(dsn, run, since_seconds_ago=86400.0)
        runs["d"] = run
    run = os.path.join(out, "e")
    copy_samples(full_run, run, metrics=True)
    runs["e"] = run
    # the same status as an operator importing captured snapshot files would have it
    run = os.path.join(out, "e-files")
    collect_files_once(statuses, run, kind="status")
    collect_files_once(metrics, run, kind="metrics")
    runs["e-files"] = run
    return runs


def copy_samples(full_run: str, run: str, *, metrics: bool) -> None:
    """The live-collected status (and metrics) samples of ``full_run`` into ``run``: what an
    operator polling ``/queue-runner-status`` or ``/status`` (and ``/metrics``) has."""
    import math

    from profiler.store import Run, compact, read_run

    reader = read_run(full_run)
    if "samples" not in reader.tables():
        return
    samples = reader.table("samples")
    if not metrics and "source" in samples:
        samples = samples[~samples["source"].astype(str).str.endswith("/metrics")]
    records = [
        {str(k): (None if isinstance(v, float) and not math.isfinite(v) else v)
         for k, v in row.items()}
        for row in samples.to_dict(orient="records")
    ]  # fmt: skip
    with Run.open(run, command="status and metrics samples collected live") as r:
        r.write_part("samples", records)
    compact(run)


def collect_logs(paths: list[str], run_dir: str) -> None:
    """``collect logs --file P ... --out RUN``: the journals ``paths`` into ``run_dir``.

    Raises
    ------
    ProfilerError
        Every input failed and no event was written (the command's exit 1).
    """
    from profiler.collect.journal.collector import LogCollector
    from profiler.store import Run, compact

    run = Run.open(run_dir, command=f"collect logs ({len(paths)} file(s), mix build)")
    collector = LogCollector(run)
    try:
        for path in paths:
            collector.collect_file(path)
    finally:
        run.close()
    compact(run_dir)
    if collector.errors and not collector.events_written:
        raise ProfilerError(f"collect logs into {run_dir}: {collector.errors} error(s)")


def collect_db_once(dsn: str, run_dir: str, *, since_seconds_ago: float) -> None:
    """``collect db --pg DSN --since ... --once --out RUN``: one export pass, no tracking.

    Raises
    ------
    ProfilerError
        The export pass never ran (the command's exit 1).
    """
    from profiler.collect.database.collector import DbCollector
    from profiler.collect.database.common import DbOptions
    from profiler.store import Run, compact

    options = DbOptions(once=True, track=False, since=time.time() - since_seconds_ago)
    run = Run.open(run_dir, command="collect db --once (mix build)")
    try:
        collector = DbCollector(run, dsn, options)
        collector.run_loop()
    finally:
        run.close()
    compact(run_dir)
    if collector.exporter.passes == 0 and collector.errors:
        raise ProfilerError(f"collect db into {run_dir}: {collector.errors} error(s)")


def collect_files_once(path: str, run_dir: str, *, kind: str) -> None:
    """``collect status|metrics --file PATH --once --out RUN``: captured snapshots imported.

    Raises
    ------
    ProfilerError
        No sample was written and there were errors (the command's exit 1).
    """
    from profiler.collect.status.collector import Collector, CollectorOptions
    from profiler.collect.status.sources import FileSource
    from profiler.store import Run, compact

    run = Run.open(run_dir, command=f"collect {kind} --file --once (mix build)")
    collector = Collector(run, [FileSource(path, kind=kind)], CollectorOptions(once=True))
    try:
        collector.run_loop()
    finally:
        run.close()
    compact(run_dir)
    if collector.samples_written == 0 and collector.errors:
        raise ProfilerError(f"collect {kind} into {run_dir}: {collector.errors} error(s)")
