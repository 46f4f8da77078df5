"""A stored run analysed the way ``hydra-profiler analyze`` and ``report`` do it.

:func:`profiler.analyze.analysis.analyze` is pure: it takes codec profiles and runs nothing.
Here the bench result is loaded (once: the analysis keeps it for the report's codec table),
the farm's codec is read from the run's evidence, and when the bench result did not measure
it, it is calibrated on this machine (on the farm's own NARs when its binary cache is given,
else on the built-in corpus; kept per machine: :func:`profiler.bench.profiles.calibrate`).
"""

from __future__ import annotations

import os

from profiler.analyze.analysis import Analysis, analyze, farm_codec, open_run
from profiler.bench.fleet_view import load_bench
from profiler.bench.profiles import farm_profile, from_result


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
) -> Analysis:
    """Analyse the run at ``run_dir`` with the profiles of the bench result at ``bench_dir``,
    the farm codec calibrated here when that result has none of it.

    The other parameters are :func:`~profiler.analyze.analysis.analyze`'s.
    """
    reader = open_run(run_dir)
    choice = farm_codec(reader, codec=codec, generation=generation, cache_dir=cache_dir)
    bench = load_bench(bench_dir) if bench_dir else None  # a fleet: its typical host's
    profiles = from_result(bench) if bench is not None else {}
    found = farm_profile(choice.spec, profiles, cache_dir=cache_dir)
    return analyze(
        reader,
        profiles=profiles,
        profile=found.profile,
        bench=bench,
        calibration_cache=found.calibration_cache,
        notes=[found.note] if found.note else [],
        codec=codec,
        generation=generation,
        slots=slots,
        window_seconds=window_seconds,
        cache_dir=cache_dir,
        local_workers=local_workers,
        runner_cores=runner_cores,
    )
