"""A farm-level attribution from status and metrics alone (no per-step source).

Without the database, its tracker or the journal there are no steps to time, but the queue
runner's own gauges and counters still say where the step-time went, summed over the farm:

- C++ (``/queue-runner-status``, :mod:`profiler.collect.status.status_map`): the phase gauges
  ``nrStepsBuilding``, ``nrStepsCopyingTo``, ``nrStepsCopyingFrom``,
  ``nrStepsWaitingForDownloadSlot``, ``nrRunnableSteps`` and ``nrActiveSteps`` integrated over
  time are step-seconds in each phase (Little's law); the store's
  ``narWriteCompressionTimeMs`` and ``s3.putTimeMs`` counters split the copy back.
- Rust (``/status``, ``/metrics``): ``totalStepTimeMs``, ``totalStepImportTimeMs``,
  ``totalStepBuildTimeMs``, ``totalStepUploadTimeMs`` (hydra 14332fbf
  subprojects/hydra-queue-runner/src/io/queue_runner.rs:136-139, from the counters of
  state/metrics.rs:47-50) and the ``job_wait_time_seconds`` histogram's sum (runnable ->
  dispatch; state/metrics.rs:115, :601-603). The builder's upload phase holds compression and
  the PUT together and no byte counter says how much was compressed: it is shared by per-byte
  costs (the codec profile vs an assumed upload rate) and marked estimated.

Everything here is an estimate over the farm (marked so); there are no per-step rows.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from profiler.analyze.attribution import (
    ASSUMED_UPLOAD_BYTES_PER_SECOND,
    RECEIVE_SECONDS_PER_BYTE,
    Attribution,
    compress_share,
    compression_in_phase,
    put_seconds_per_byte,
)
from profiler.analyze.gauges import SERIES_KEYS, metric_series, series_integral
from profiler.analyze.schema import CATEGORIES, DURATIONS, STEP_COLUMNS, StepTable
from profiler.bench.profiles import CodecProfile


@dataclass
class FarmTotals:
    """Step-seconds per category over the farm, and how they were found."""

    seconds: dict[str, float]
    queue_seconds: float
    steps_done: int
    unsplit_seconds: float = 0.0
    notes: list[str] = field(default_factory=list)


def _one_source(rows: pd.DataFrame) -> pd.DataFrame:
    """The rows of the source with the most samples (status and metrics both carry some
    figures; adding them would count twice)."""
    if "source" not in rows or rows["source"].nunique() <= 1:
        return rows
    best = rows["source"].value_counts().idxmax()
    return rows[rows["source"] == best]


def integral(samples: pd.DataFrame, metric: str) -> float:
    """Time integral of a gauge (step-seconds for a count of steps); NaN if unsampled."""
    rows = _one_source(samples[samples["metric"] == metric])
    return series_integral(metric_series(rows, metric))


def increase(samples: pd.DataFrame, metric: str) -> float:
    """A counter's increase over the samples, per series, resets ignored; NaN if unsampled."""
    rows = _one_source(samples[samples["metric"] == metric])
    if rows.empty:
        return math.nan
    keys = [k for k in SERIES_KEYS if k in rows]
    total, seen = 0.0, False
    groups = rows.groupby(keys, dropna=False) if keys else [((), rows)]
    for _, g in groups:
        v = g.sort_values("ts")["value"].to_numpy(float)
        if len(v) >= 2:
            total += float(np.clip(np.diff(v), 0, None).sum())
            seen = True
    return total if seen else math.nan


def _z(x: float) -> float:
    return x if math.isfinite(x) else 0.0


def farm_totals(
    samples: pd.DataFrame | None,
    generation: str,
    profile: CodecProfile | None,
    upload_mode: str | None = None,
) -> FarmTotals | None:
    """Step-seconds per category from the gauges and counters, or None without them."""
    if samples is None or samples.empty or "metric" not in samples:
        return None
    if generation == "rust":
        return _rust(samples, None if upload_mode == "direct" else profile)
    return _cxx(samples, profile)


def _cxx(samples: pd.DataFrame, profile: CodecProfile | None) -> FarmTotals | None:
    building = integral(samples, "steps_building")
    if not math.isfinite(building):
        return None
    send = _z(integral(samples, "steps_copying_to"))
    copy = _z(integral(samples, "steps_copying_from"))
    wait = _z(integral(samples, "steps_waiting_for_download_slot"))
    active = integral(samples, "steps_active")
    queue = integral(samples, "steps_runnable")
    notes = [
        "no per-step source (database, tracker or journal): step-seconds per phase are the "
        "time integrals of the status's phase gauges over the farm (estimates)"
    ]
    pipeline = increase(samples, "nar_write_compression_seconds_total")
    put = _z(increase(samples, "s3_put_seconds_total"))
    nar = increase(samples, "nar_write_bytes_total")
    writes = increase(samples, "nar_writes_total")
    compress = 0.0
    unsplit = 0.0
    if profile is not None and math.isfinite(nar) and nar > 0:
        compress = float(profile.seconds(0) * _z(writes) + nar * profile.seconds_per_byte)
        if math.isfinite(pipeline):  # the rest of the pipeline shared by per-byte costs
            receive = RECEIVE_SECONDS_PER_BYTE
            share = compress_share(profile, receive)
            compress = float(compression_in_phase(pipeline, compress, nar * receive, share))
        compress = min(compress, copy)
        notes.append(
            f"compression: {nar / 1e6:,.1f} MB of NARs written x the {profile.codec} profile"
            + (", at most the store's compression pipeline time" if math.isfinite(pipeline) else "")
        )
    else:
        unsplit = copy
    upload = min(put, max(0.0, copy - compress))
    receive = max(0.0, copy - compress - upload)
    other = max(0.0, _z(active) - (send + building + copy + wait)) if math.isfinite(active) else 0.0
    seconds = {
        "scheduling": _z(queue),
        "io": send + receive + upload,
        "compression": compress + wait,
        "build": building,
        "post": other,
    }
    if other:
        notes.append(
            f"{other:.1f} step-s active but in no phase gauge (preparing, connecting, "
            "post-processing) counted as post"
        )
    done = increase(samples, "steps_done_total")
    return FarmTotals(seconds, _z(queue), int(_z(done)), unsplit, notes)


def _rust(samples: pd.DataFrame, profile: CodecProfile | None) -> FarmTotals | None:
    total = increase(samples, "step_seconds_total")
    build = increase(samples, "step_build_seconds_total")
    if not (math.isfinite(total) and math.isfinite(build)):
        return None
    imp = _z(increase(samples, "step_import_seconds_total"))
    upload = _z(increase(samples, "step_upload_seconds_total"))
    queue = increase(samples, "job_wait_seconds_sum")
    share = compress_share(profile, put_seconds_per_byte(profile)) if profile else 0.0
    seconds = {
        "scheduling": _z(queue),
        "io": imp + upload * (1 - share),
        "compression": upload * share,
        "build": build,
        "post": max(0.0, total - imp - upload - build),
    }
    notes = [
        "no per-step source (database, tracker or journal): step-seconds per phase are the "
        "runner's totalStep*TimeMs counters over the farm",
    ]
    if profile is None:
        notes.append(
            f"{upload:.1f} step-s of builder upload phases (compression and PUT together) could "
            "not be split without a codec profile; counted as io, so compression is absent"
        )
    else:
        notes.append(
            f"builder upload phases ({upload:.1f} step-s, compression and PUT together; no byte "
            f"counter) split {100 * share:.0f}% compression by the {profile.codec} profile vs "
            f"an assumed {ASSUMED_UPLOAD_BYTES_PER_SECOND / 1e6:g} MB/s upload (estimate)"
        )
    done = increase(samples, "steps_done_total")
    return FarmTotals(seconds, _z(queue), int(_z(done)), 0.0 if profile else upload, notes)


def shares(totals: FarmTotals) -> dict[str, float]:
    wall = sum(totals.seconds.values())
    return {c: (totals.seconds[c] / wall if wall > 0 else 0.0) for c in CATEGORIES}


def farm_table(table: StepTable, samples: pd.DataFrame | None) -> StepTable:
    """The step table of a run without per-step rows: no rows, every column, the samples'
    time span as its window."""
    columns = list(dict.fromkeys([*STEP_COLUMNS, *DURATIONS]))
    empty = pd.DataFrame({c: pd.Series(dtype=object if c in ("step", "machine", "system",
                          "jobset") else float) for c in columns})  # fmt: skip
    window = table.window
    if samples is not None and not samples.empty and "ts" in samples:
        window = (float(samples["ts"].min()), float(samples["ts"].max()))
    return StepTable(empty, table.generation, math.nan, "", table.sources, table.notes, window)


def farm_attribution(totals: FarmTotals) -> Attribution:
    """An :class:`Attribution` of farm-level totals (every share estimated)."""
    wall = sum(totals.seconds.values())
    estimated = dict.fromkeys(totals.seconds, True)
    estimated["build"] = False
    notes = [*totals.notes]
    if totals.queue_seconds > 0:
        notes.append(f"queue wait {totals.queue_seconds:.1f} step-s from the status gauges")
    return Attribution(
        dict(totals.seconds), shares(totals), estimated, totals.steps_done, wall,
        totals.queue_seconds, notes, totals.unsplit_seconds, True,
    )  # fmt: skip
