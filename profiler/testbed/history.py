"""Years of BuildSteps and Builds rows, as ``collect db --since`` stores them, made fast.

The live testbed runs a farm in real time; a history of 100M steps cannot be made that way.
This writes the rows ``collect db`` would have exported from such a farm straight into a
run's ``db_steps`` and ``db_builds`` tables as Parquet parts (the columns of
:func:`profiler.collect.database.export._step_record` and ``_build_record``), a part per
``part_rows`` steps, vectorised. What real farms do is in it: whole-second times, the
generation's meaning of ``stopTime - startTime`` and ``overhead``, failed steps (status 1,
timed out 7) whose build has no size (``Builds.size`` is written on success only, hydra
a40d4286 hydra-queue-runner.cc:458), aborted attempts (3) retried after a back-off in a new
step row of the same drv (hydra 14332fbf state/mod.rs:2255-2257), and a few rows exported
twice (a collector restarted over its overlap window). Status codes: hydra 14332fbf
subprojects/crates/db/src/models.rs:11-31.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

import numpy as np

from profiler.hydra import facts
from profiler.store.run import Run

DAY_SECONDS = 86400.0
ORIGIN = 1_640_995_200.0  # 2022-01-01T00:00:00Z


def _times(rng: Any, n: int, lo: float, hi: float, gen: str) -> dict[str, np.ndarray]:
    """Start, stop and overhead (ms) per step, by the generation's semantics."""
    start = np.floor(np.sort(rng.uniform(lo, hi, n)))
    build = np.floor(rng.lognormal(np.log(90), 1.3, n)) + 1
    nar = np.floor(rng.lognormal(np.log(30e6), 1.6, n))
    copy_ms = np.floor((nar / 60e6 + rng.exponential(1.5, n)) * 1000)
    # C++: stop - start is the build only, overhead the copies after it; Rust: stop - start
    # is the whole step, overhead (import + upload) inside it
    stop = start + build + (copy_ms / 1000 if gen == "rust" else 0)
    return {"start": start, "stop": np.ceil(stop), "overhead": copy_ms, "nar": nar}


def _status(rng: Any, n: int, failure_rate: float) -> np.ndarray:
    status = np.zeros(n, np.int64)
    roll = rng.random(n)
    status[roll < failure_rate] = 1
    status[roll < failure_rate / 4] = 7
    status[roll < failure_rate / 8] = 3  # aborted: retried in the next step row
    return status


def _parts(
    rng: Any, first: int, n: int, span: tuple[float, float], gen: str, failure_rate: float
) -> tuple[dict[str, Any], dict[str, Any]]:
    """One part's step and build rows (builds of three steps each)."""
    i = np.arange(first, first + n)
    t = _times(rng, n, span[0], span[1], gen)
    status = _status(rng, n, failure_rate)
    build, stepnr = i // 3 + 1, i % 3 + 1
    drv_id = i.copy()
    retry = np.flatnonzero(status[:-1] == 3) + 1  # the next row retries the aborted drv
    drv_id[retry] = drv_id[retry - 1]
    gap = np.floor(rng.uniform(60, 600, len(retry)))
    t["start"][retry] = t["stop"][retry - 1] + gap + t["overhead"][retry - 1] // 1000
    t["stop"][retry] = np.maximum(t["stop"][retry], t["start"][retry] + 1)
    machines = np.array(
        [f"ssh://builder-{k:02d}" if gen == "cxx" else f"builder-{k:02d}" for k in range(40)]
    )
    steps = {
        "ts": t["stop"] + 5,
        "build": build,
        "stepnr": stepnr,
        "type": np.zeros(n, np.int64),
        "drv_path": np.char.add(np.char.add("/nix/store/", np.char.zfill(drv_id.astype(str), 32)),
                                "-pkg.drv"),
        "machine": machines[rng.integers(0, len(machines), n)],
        "system": np.where(rng.random(n) < 0.8, "x86_64-linux", "aarch64-linux"),
        "status": status,
        "start_time": t["start"],
        "stop_time": t["stop"],
        "stop_minus_start_s": t["stop"] - t["start"],
        "overhead_ms": t["overhead"],
        "generation": np.full(n, gen),
        "semantics": np.full(n, facts.TIME_SEMANTICS[gen]),
    }  # fmt: skip
    top = stepnr == 3
    ok = status[top] == 0
    builds = {
        "ts": t["stop"][top] + 6,
        "build": build[top],
        "project": np.full(int(top.sum()), "nixpkgs"),
        "jobset": np.array([f"js{k}" for k in range(30)])[build[top] % 30],
        "job": np.char.add("job", (build[top] % 997).astype(str)),
        "status": status[top],
        "size_bytes": np.where(ok, t["nar"][top], np.nan),
        "generation": np.full(int(top.sum()), gen),
        "semantics": np.full(int(top.sum()), facts.BUILD_SEMANTICS[gen]),
    }
    return steps, builds


def _arrow(columns: dict[str, Any]) -> Any:
    import pyarrow as pa

    out = {}
    for name, values in columns.items():
        array = pa.array(values, from_pandas=True)  # NaN: a NULL, as the database has it
        if name in ("size_bytes",):
            array = array.cast(pa.int64())
        out[name] = array
    return pa.table(out)


def write_history(
    run_dir: str | os.PathLike[str],
    steps: int,
    *,
    generation: str = "cxx",
    seed: int = 0,
    years: float = 5.0,
    part_rows: int = 1_000_000,
    failure_rate: float = 0.04,
    repeated: int = 10,
    progress: Callable[[int], None] | None = None,
    gauges_every_s: float | None = None,
) -> int:
    """Write ``steps`` BuildSteps rows (and their builds) over ``years`` into the run at
    ``run_dir`` (created), ``repeated`` of them a second time; the rows written. With
    ``gauges_every_s``, also the queue runner's gauges sampled that often
    (:func:`_gauges`: for histories of hours or days, as ``collect history`` would import
    them from Prometheus)."""
    rng = np.random.default_rng(seed)
    span = years * 365 * DAY_SECONDS
    written = 0
    spans: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
    with Run.open(run_dir, command="testbed history") as run:
        run.add_source("db", "generated history", generation)
        for first in range(0, steps, part_rows):
            n = min(part_rows, steps - first)
            lo = ORIGIN + span * first / steps
            hi = ORIGIN + span * (first + n) / steps
            rows, builds = _parts(rng, first, n, (lo, hi), generation, failure_rate)
            run.write_arrow_part("db_steps", _arrow(rows))
            run.write_arrow_part("db_builds", _arrow(builds))
            if gauges_every_s:
                spans.append((rows["machine"], rows["start_time"], rows["stop_time"]))
            written += n
            if progress is not None:
                progress(written)
        if repeated:
            again = {k: v[:repeated] for k, v in rows.items()}
            run.write_arrow_part("db_steps", _arrow(again))
            written += repeated
        if gauges_every_s:
            run.add_source("samples", "generated gauges", generation)
            machine, start, stop = (np.concatenate(c) for c in zip(*spans, strict=True))
            grid = np.arange(ORIGIN, ORIGIN + span + gauges_every_s, gauges_every_s)
            run.write_arrow_part("samples", _arrow(_gauges(rng, grid, machine, start, stop,
                                                            generation)))  # fmt: skip
    return written


def _gauges(
    rng: Any, grid: np.ndarray, machine: np.ndarray, start: np.ndarray, stop: np.ndarray, gen: str
) -> dict[str, Any]:
    """Samples (the ``samples`` table's columns) at the ``grid`` times: each machine's jobs
    running (the steps it has between start and stop), and the steps waiting for a machine,
    a Poisson count around a level that swings with a three-hour period (C++
    ``nrRunnableSteps``; Rust ``steps_runnable`` counts the building steps too, and
    ``steps_building`` them: :data:`profiler.hydra.facts.RUNNABLE_INCLUDES_BUILDING`)."""
    columns: list[tuple[str, np.ndarray, str | None]] = []  # metric, values, machine
    running_all = np.zeros(len(grid))
    for name in np.unique(machine):
        mine = machine == name
        began = np.searchsorted(np.sort(start[mine]), grid, side="right")
        ended = np.searchsorted(np.sort(stop[mine]), grid, side="right")
        running_all += began - ended
        columns.append(("machine_current_jobs", (began - ended).astype(float), str(name)))
    level = 6 + 5 * np.sin(2 * np.pi * (grid - grid[0]) / (3 * 3600))
    waiting = rng.poisson(np.clip(level, 0.2, None)).astype(float)
    if facts.RUNNABLE_INCLUDES_BUILDING.get(gen):
        columns.append(("steps_runnable", waiting + running_all, None))
        columns.append(("steps_building", running_all, None))
    else:
        columns.append(("steps_runnable", waiting, None))
    ts = [grid] * len(columns)
    metric = [np.full(len(grid), m) for m, _, _ in columns]
    value = [v for _, v, _ in columns]
    label = [np.full(len(grid), who, dtype=object) for _, _, who in columns]
    n = sum(len(t) for t in ts)
    return {
        "ts": np.concatenate(ts),
        "source": np.full(n, "generated"),
        "generation": np.full(n, gen),
        "metric": np.concatenate(metric),
        "value": np.concatenate(value),
        "kind": np.full(n, "gauge"),
        "unit": np.full(n, "count"),
        "machine": np.concatenate(label).astype(object),
        "machine_type": np.full(n, None, dtype=object),
        "jobset": np.full(n, None, dtype=object),
        "bucket": np.full(n, None, dtype=object),
    }
