"""A stored run analysed the way ``hydra-profiler analyze`` and ``report`` do it.

:func:`profiler.analyze.analysis.analyze` is pure: it takes codec profiles and runs nothing.
Here the bench result is loaded (once: the analysis keeps it for the report's codec table),
the farm's codec is read from the run's evidence, and when the bench result did not measure
it, it is calibrated on this machine (on the farm's own NARs when its binary cache is given,
else on the built-in corpus; kept per machine: :func:`profiler.bench.profiles.calibrate`).
"""

from __future__ import annotations

import os
from typing import Any

from profiler.analyze.analysis import Analysis, analyze, analyze_history, farm_codec, open_run
from profiler.analyze.evidence import choose_codec
from profiler.analyze.history import DEFAULT_MEMORY, Progress, Window, history_rows
from profiler.bench.fleet_view import load_bench
from profiler.bench.profiles import farm_profile, from_result

ENGINES = ("auto", "memory", "history")
# --engine auto: a run with more BuildSteps rows than this is analysed out of core (in
# memory, 1M steps take about 1.3 GiB: benchmarks/history.py)
HISTORY_AUTO_ROWS = 2_000_000


def pick_engine(run_dir: str | os.PathLike[str], engine: str) -> str:
    """``memory`` or ``history`` for ``--engine`` (``auto``: by the run's BuildSteps rows)."""
    if engine != "auto":
        return engine
    return "history" if history_rows(os.fspath(run_dir)) > HISTORY_AUTO_ROWS else "memory"


def analyze_run(
    run_dir: str | os.PathLike[str],
    *,
    bench_dir: str | None = None,
    codec: str | None = None,
    cache_dir: str | None = None,
    generation: str | None = None,
    slots: int | None = None,
    window_seconds: float = 3600.0,
    local_workers: int | None = None,
    runner_cores: int | None = None,
    window: Window | None = None,
    engine: str = "memory",
    memory_limit: str = DEFAULT_MEMORY,
    progress: Progress | None = None,
    scheduler: str | None = None,
    local_cluster: int | None = None,
) -> Analysis:
    """Analyse the run at ``run_dir`` with the profiles of the bench result at ``bench_dir``,
    the farm codec calibrated here when that result has none of it.

    ``engine`` ``history`` analyses the run's BuildSteps out of core
    (:func:`~profiler.analyze.analysis.analyze_history`; ``auto``: :func:`pick_engine`), its
    per-step split on a Dask cluster with ``scheduler`` (an address) or ``local_cluster``
    (worker processes here). The other parameters are
    :func:`~profiler.analyze.analysis.analyze`'s.
    """
    options: dict[str, Any] = {
        "bench_dir": bench_dir, "codec": codec, "cache_dir": cache_dir,
        "generation": generation, "window_seconds": window_seconds,
        "local_workers": local_workers, "runner_cores": runner_cores, "window": window,
        "memory_limit": memory_limit, "progress": progress,
    }  # fmt: skip
    if scheduler or local_cluster:
        from profiler.analyze.cluster import client_for, on_cluster

        with client_for(scheduler, local_cluster) as client:
            # a remote cluster's workers see the run's directory, not this machine's /tmp
            scratch = os.fspath(run_dir) if scheduler else None
            return _history(run_dir, splitter=on_cluster(client), scratch_dir=scratch, **options)
    if pick_engine(run_dir, engine) == "history":
        return _history(run_dir, **options)
    reader = open_run(run_dir)
    choice = farm_codec(reader, codec=codec, generation=generation, cache_dir=cache_dir)
    return analyze(
        reader,
        **_profiled(bench_dir, choice.spec, cache_dir),
        codec=codec,
        generation=generation,
        slots=slots,
        window_seconds=window_seconds,
        cache_dir=cache_dir,
        local_workers=local_workers,
        runner_cores=runner_cores,
        window=window,
    )


def _profiled(bench_dir: str | None, spec: str, cache_dir: str | None) -> dict[str, Any]:
    """Both engines' codec inputs: the bench result's profiles (a fleet: its typical
    host's), and the farm codec ``spec``'s profile, calibrated here when they lack it."""
    bench = load_bench(bench_dir) if bench_dir else None
    profiles = from_result(bench) if bench is not None else {}
    found = farm_profile(spec, profiles, cache_dir=cache_dir)
    return {
        "profiles": profiles,
        "profile": found.profile,
        "bench": bench,
        "calibration_cache": found.calibration_cache,
        "notes": [found.note] if found.note else [],
    }


def _history(
    run_dir: str | os.PathLike[str],
    *,
    bench_dir: str | None,
    codec: str | None,
    cache_dir: str | None,
    generation: str | None,
    **options: Any,
) -> Analysis:
    """The history engine's analysis, its farm codec calibrated as :func:`analyze_run` does
    (the codec from the operator or the cache: a history has no journal to name it)."""
    spec = choose_codec(None, generation or "cxx", codec, cache_dir).spec
    return analyze_history(
        run_dir,
        **_profiled(bench_dir, spec, cache_dir),
        codec=codec,
        generation=generation,
        cache_dir=cache_dir,
        **options,
    )
