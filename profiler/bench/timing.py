"""Timing loops and their statistics (best, median, MAD, throttling and outlier notes).

Like lzbench, runs are repeated in memory until both a minimum count and a minimum total
time are reached, and the best run is the figure of merit (the least disturbed one); the
median is kept beside it. A run far slower than the best (``THROTTLE_FACTOR``) suggests
CPU throttling or a noisy neighbour and is flagged, never silently averaged in.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass

THROTTLE_FACTOR = 1.5  # a run this much slower than the best is flagged
OUTLIER_MADS = 5.0  # runs beyond median + this many MADs are noted as outliers
NOISE_FLOOR_SECONDS = 0.02  # shorter runs jitter with the scheduler; not judged for throttling


@dataclass(frozen=True)
class Sample:
    """One timed run: wall-clock and process CPU seconds (CPU covers all threads)."""

    wall_seconds: float
    cpu_seconds: float


@dataclass(frozen=True)
class Summary:
    best_wall_seconds: float
    median_wall_seconds: float
    median_cpu_seconds: float
    runs: int
    throttled: bool
    notes: tuple[str, ...]


def time_once(fn: Callable[[], object]) -> tuple[Sample, object]:
    cpu0, wall0 = time.process_time(), time.perf_counter()
    result = fn()
    wall, cpu = time.perf_counter() - wall0, time.process_time() - cpu0
    return Sample(wall, cpu), result


def repeat(
    fn: Callable[[], object],
    first: Sample,
    min_runs: int,
    min_time_seconds: float,
    max_runs: int = 50,
) -> list[Sample]:
    """Samples of ``fn``: at least ``min_runs`` and ``min_time_seconds`` of timed runs.

    ``first`` is the warm-up run already made. It counts as a sample only when it lasted
    at least ``min_time_seconds`` (a run that long is its own warm-up); shorter warm-ups
    are discarded, as lzbench does.
    """
    samples = [first] if first.wall_seconds >= min_time_seconds else []
    total = sum(s.wall_seconds for s in samples)
    while len(samples) < max_runs and (len(samples) < min_runs or total < min_time_seconds):
        sample, _ = time_once(fn)
        samples.append(sample)
        total += sample.wall_seconds
    return samples


def summarise(samples: list[Sample]) -> Summary:
    walls = [s.wall_seconds for s in samples]
    best = min(walls)
    median = statistics.median(walls)
    notes = []
    worst = max(walls)
    judged = best >= NOISE_FLOOR_SECONDS
    throttled = judged and worst > THROTTLE_FACTOR * best
    if throttled:
        notes.append(
            f"slowest run {worst / best:.2f}x the best: throttling or a noisy "
            "neighbour; trust the best, rerun to confirm"
        )
    if judged and len(walls) >= 3:
        mad = statistics.median(abs(w - median) for w in walls)
        outliers = [w for w in walls if mad > 0 and w > median + OUTLIER_MADS * mad]
        if outliers:
            notes.append(
                f"{len(outliers)} of {len(walls)} runs are outliers "
                f"(> median + {OUTLIER_MADS:g} MAD)"
            )
    return Summary(
        best,
        median,
        statistics.median(s.cpu_seconds for s in samples),
        len(samples),
        throttled,
        tuple(notes),
    )
