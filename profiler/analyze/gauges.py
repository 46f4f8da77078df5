"""Series from the status and metrics samples: a metric over time, its integral, a counter's
increase, steps waiting for a machine, and what the gauges say about local worker slots.

Samples are the rows ``collect status`` and ``collect metrics`` store (one metric, value and
labels a row; :mod:`profiler.collect.samples`). Every function here reads samples only, never
the step table, so the step table's joins (:mod:`profiler.analyze.steps`) and the verdict
(:mod:`profiler.analyze.verdict`) share them.
"""

from __future__ import annotations

import math
from collections.abc import Iterator

import numpy as np
import pandas as pd

from profiler.analyze.schema import QUEUE_COLUMNS
from profiler.hydra import facts


def queue_estimate(
    samples: pd.DataFrame | None, generation: str, window: tuple[float, float]
) -> tuple[float, str]:
    """Total step-seconds spent runnable but not dispatched, and how it was obtained
    (:func:`queue_increments` added up)."""
    waits, source = queue_increments(samples, generation, window)
    return (float(waits["seconds"].sum()) if len(waits) else math.nan), source


def queue_increments(
    samples: pd.DataFrame | None, generation: str, window: tuple[float, float]
) -> tuple[pd.DataFrame, str]:
    """Step-seconds spent runnable but not dispatched, per sample interval, and how they were
    obtained: rows of ``ts`` (the interval's start), ``seconds`` and ``machine_type`` (the
    system the steps waited for, where the source says it; else None). No rows, and the
    reason, when the queue wait is not observed.

    Rust: the ``job_wait_time_seconds`` histogram's sum (each step's wait from runnable to
    dispatch, observed at dispatch: ``state/queue.rs`` :data:`facts.RUST_JOB_WAIT_SOURCE`),
    its increase between samples per machine type (a drop is a restart: the increase since is
    the new value). Never ``machine_type_wait_time``/``waitTimeMs``: those add up runnable ->
    insertion into the scheduling queue, not the wait for a machine. Otherwise the steps
    waiting for a machine are integrated over time (:func:`waiting_series`: C++ the runnable
    gauge; Rust runnable minus building, since its runnable count includes building steps),
    a step-function between samples, so to within a sample interval per change.
    """
    none = pd.DataFrame(columns=QUEUE_COLUMNS)
    if samples is None or samples.empty:
        return none, "no status samples: queue wait not observed"
    start, end = window
    if generation == "rust":
        waited = _counter_increments(samples, "job_wait_seconds_sum", "machine_type")
        if len(waited):
            return waited, (
                "Rust job_wait_time_seconds histogram (runnable -> dispatch, observed at "
                "dispatch): its sum's increase over the run"
            )
    gauge = waiting_series(samples, generation)
    if len(gauge) < 2:
        return none, "fewer than two runnable-steps samples: queue wait not observed"
    ts = gauge.index.to_numpy(float)
    value = gauge.to_numpy(float)
    if math.isfinite(start) and math.isfinite(end):
        # from the stretch of queueing that led up to the first step (steps wait before
        # the first one starts) to the last step's end
        first = int(np.searchsorted(ts, start - 1))
        while first > 0 and value[first - 1] > 0:
            first -= 1
        keep = (np.arange(len(ts)) >= first) & (ts <= end + 1)
        ts, value = ts[keep], value[keep]
    if len(ts) < 2:
        return none, "no runnable-steps samples inside the steps' window"
    # each sample holds until the next: trapezoids would invent half-steps
    waits = pd.DataFrame({"ts": ts[:-1], "seconds": value[:-1] * np.diff(ts), "machine_type": None})
    interval = float(np.median(np.diff(ts)))
    what = (
        "runnable minus building steps (Rust counts building steps as runnable)"
        if generation == "rust"
        else "the runnable-steps gauge"
    )
    if generation == "cxx":
        waits = _by_machine_type(waits, samples)
    return waits, f"integral of {what} (samples every {interval:.2g} s)"


def _by_machine_type(waits: pd.DataFrame, samples: pd.DataFrame) -> pd.DataFrame:
    """C++: each interval's wait shared among the machine types by their runnable counts at
    its start (status ``machineTypes.<type>.runnable``, the dispatcher's count per
    ``systemType``, the step's platform and required features: hydra a40d4286
    dispatcher.cc:177-178, :312-317, queue-monitor.cc:520-527); intervals with no per-type
    count stay unlabelled."""
    rows = samples[samples["metric"] == "machine_type_runnable"]
    if "machine_type" not in rows or rows["machine_type"].isna().all():
        return waits
    rows = rows[rows["machine_type"].notna()]
    wide = rows.pivot_table(index="ts", columns="machine_type", values="value", aggfunc="last")
    at = pd.Index(waits["ts"].to_numpy(float))
    wide = wide.reindex(wide.index.union(at)).ffill().reindex(at).fillna(0.0)
    total = wide.sum(axis=1).to_numpy(float)
    known = total > 0
    parts = [waits[~known]]
    for machine_type in wide.columns:
        share = wide[machine_type].to_numpy(float)[known] / total[known]
        parts.append(pd.DataFrame({
            "ts": waits["ts"].to_numpy(float)[known],
            "seconds": waits["seconds"].to_numpy(float)[known] * share,
            "machine_type": str(machine_type),
        }))  # fmt: skip
    return pd.concat(parts, ignore_index=True)  # zero waits kept: observed, not absent


def _counter_increments(samples: pd.DataFrame, metric: str, by: str) -> pd.DataFrame:
    """A counter's increase between consecutive samples of each of its series (``by``
    label), as :data:`QUEUE_COLUMNS` rows at the earlier sample; a drop is a restart."""
    parts = [
        pd.DataFrame({"ts": ts[:-1], "seconds": increases, "machine_type": key or None})
        for key, ts, increases in _increases(samples, metric, by)
    ]
    return pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(columns=QUEUE_COLUMNS)


def _increases(
    samples: pd.DataFrame, metric: str, by: str
) -> Iterator[tuple[str, np.ndarray, np.ndarray]]:
    """Each series of a counter (its ``by`` label, "" when missing) with two samples or more:
    its times, and its increase from each sample to the next (a drop is a restart: the
    increase since is the new value)."""
    rows = samples[samples["metric"] == metric]
    keys = rows[by].fillna("") if by in rows else pd.Series("", index=rows.index)
    for key, series in rows.assign(_key=keys).sort_values("ts").groupby("_key"):
        values = series["value"].to_numpy(float)
        if len(values) >= 2:
            steps = np.diff(values)
            yield str(key), series["ts"].to_numpy(float), np.where(steps >= 0, steps, values[1:])


def counter_increase(samples: pd.DataFrame, metric: str, by: str) -> float:
    """A counter's increase over the samples, summed over its series (``by`` label); a drop
    is a restart (the increase since is the new value). NaN without two samples."""
    sums = [float(increases.sum()) for _, _, increases in _increases(samples, metric, by)]
    return sum(sums) if sums else math.nan


def handing_over(steps: pd.DataFrame, generation: str) -> np.ndarray:
    """Rust: the times a live step is neither waiting nor in ``steps_building``, as
    ``(start, end)`` rows. Its runnable flag is never cleared (:data:`facts.RUNNABLE_SOURCES`),
    so runnable minus building counts it as waiting (a) from its dispatch until the job is
    handed to the builder: the runner counts it building only once ``build_drv`` returned,
    after the row's insert, the notification and the Connecting update (hydra 14332fbf
    state/mod.rs:1094-1180), the step table's preparing and dispatch time from its start;
    (b) from its stop (``stop_ts``: building falls at track_build_*, machine.rs:186-206)
    to its end, while its rows are written. Empty for C++ (a dispatched step leaves the
    runnable count at once)."""
    needed = {"start_ts", "prepare_s", "connect_s"}
    if not facts.RUNNABLE_INCLUDES_BUILDING.get(generation, False) or not needed <= set(steps):
        return np.empty((0, 2))

    def column(name: str) -> pd.Series:
        return pd.to_numeric(steps[name], errors="coerce")

    start = column("start_ts")
    span = column("prepare_s").fillna(0.0) + column("connect_s").fillna(0.0)
    ok = start.notna() & (span > 0)
    windows = [np.column_stack([start[ok], (start + span)[ok]])]
    if {"stop_ts", "end_ts"} <= set(steps):
        stop, end = column("stop_ts"), column("end_ts")
        after = stop.notna() & end.notna() & (end > stop)
        windows.append(np.column_stack([stop[after], end[after]]))
    return np.concatenate(windows).astype(float)


def waiting_series(
    samples: pd.DataFrame, generation: str, handover: np.ndarray | None = None
) -> pd.Series:
    """Steps waiting for a machine over time: C++ ``nrRunnableSteps``; Rust
    ``steps_runnable`` minus ``steps_building``, because the Rust runnable flag is never
    cleared on dispatch (:data:`facts.RUNNABLE_SOURCES`), less the steps dispatched and not
    yet handed over at each sample (``handover``: :func:`handing_over`)."""
    runnable = metric_series(samples, "steps_runnable")
    if not facts.RUNNABLE_INCLUDES_BUILDING.get(generation, False) or runnable.empty:
        return runnable
    building = metric_series(samples, "steps_building")
    if building.empty:
        return runnable
    aligned = building.reindex(runnable.index.union(building.index)).ffill()
    out: pd.Series = (runnable - aligned.reindex(runnable.index).fillna(0.0)).clip(lower=0.0)
    if handover is not None and len(handover):
        t = out.index.to_numpy(float)[:, None]
        inside = ((handover[:, 0] <= t) & (t < handover[:, 1])).sum(axis=1)
        out = (out - inside).clip(lower=0.0)
    return out


SERIES_KEYS = ("machine", "machine_type", "jobset", "bucket")


def metric_series(samples: pd.DataFrame, metric: str, agg: str = "sum") -> pd.Series:
    """One metric over time: its samples at each time aggregated over series (machines...)."""
    rows = samples[samples["metric"] == metric]
    if rows.empty:
        return pd.Series(dtype=float)
    # one value per series and time (documents stamped with the same whole second, as C++
    # status "time" is, would otherwise be added up), then aggregated over the series
    keys = [k for k in SERIES_KEYS if k in rows and rows[k].notna().any()]
    if keys:
        rows = rows.assign(**{k: rows[k].astype(str) for k in keys})
    per_series = rows.groupby(["ts", *keys], sort=False)["value"].last().reset_index()
    out: pd.Series = per_series.groupby("ts")["value"].agg(agg).sort_index()
    return out


def gauge_integral(samples: pd.DataFrame | None, metric: str, window: tuple[float, float]) -> float:
    """Time integral of a gauge (summed over series) inside ``window``; NaN if unsampled."""
    if samples is None or samples.empty or "metric" not in samples:
        return math.nan
    return series_integral(metric_series(samples[samples["ts"].between(*window)], metric))


def series_integral(series: pd.Series) -> float:
    """Time integral of a series held from each sample to the next; NaN under two samples."""
    if len(series) < 2:
        return math.nan
    return float(np.sum(series.to_numpy(float)[:-1] * np.diff(series.index.to_numpy(float))))


def one_reader(samples: pd.DataFrame, metric: str) -> pd.DataFrame:
    """A metric's samples from one source (the one with most of them): the status and the
    metrics endpoint read the same counter at different moments, so interleaved they can
    step back and look like a restart."""
    rows = samples[samples["metric"] == metric]
    if "source" in rows and rows["source"].nunique() > 1:
        rows = rows[rows["source"] == rows["source"].value_counts().idxmax()]
    return rows


def workers_from_samples(samples: pd.DataFrame | None) -> int | None:
    """C++ local worker slots from the status: while a step waits for a slot (busy 35,
    ``nrStepsWaitingForDownloadSlot``) every slot is taken, so the steps copying from builders
    then (``nrStepsCopyingFrom``, counted while a slot is held) are all the slots. None when no
    step was seen waiting."""
    if samples is None or samples.empty or "metric" not in samples:
        return None
    waiting = metric_series(samples, "steps_waiting_for_download_slot")
    copying = metric_series(samples, "steps_copying_from")
    if waiting.empty or copying.empty:
        return None
    both = pd.concat([waiting.rename("w"), copying.rename("c")], axis=1, join="inner")
    held = both.loc[both["w"] > 0, "c"]
    return int(held.max()) if not held.empty and held.max() >= 1 else None


def waited_for_worker(s: pd.DataFrame, above_s: float = 0.05) -> bool:
    """Whether any step waited longer than ``above_s`` for a C++ local worker slot."""
    return "slot_wait_s" in s and bool((s["slot_wait_s"].fillna(0) > above_s).any())


def peak_concurrency(
    start: pd.Series, end: pd.Series, host: pd.Series | None = None, margin: float = 0.0
) -> int:
    """The most of the intervals ``[start, end)`` open at once on one host (0 when none has
    both ends). Each interval is shrunk by ``margin`` at both ends (the boundaries'
    uncertainty: back-to-back intervals do not overlap); one ending as another starts does
    not overlap it."""
    ok = start.notna() & end.notna() & (end >= start)
    if not ok.any():
        return 0
    groups = host[ok].astype(str) if host is not None else pd.Series("", index=start[ok].index)
    peak = 0
    for idx in groups.groupby(groups).groups.values():
        t = np.concatenate([end[idx].to_numpy(float) - margin, start[idx].to_numpy(float) + margin])
        d = np.concatenate([-np.ones(len(idx)), np.ones(len(idx))])
        order = np.lexsort((d, t))  # at one instant, ends before starts
        peak = max(peak, int(np.cumsum(d[order]).max()))
    return peak


def local_worker_slots(generation: str, s: pd.DataFrame) -> int | None:
    """C++ local worker slots: the most copy phases seen at once, if steps ever waited
    for one (None otherwise, and for Rust, which has none)."""
    if generation != "cxx" or not waited_for_worker(s):
        return None
    if "copy_start_ts" not in s or s["copy_start_ts"].isna().all():
        return None
    tracked = s.dropna(subset=["copy_start_ts", "copy_end_ts"])
    margin = float(tracked["resolution_s"].max()) if "resolution_s" in tracked else 0.0
    margin = margin if math.isfinite(margin) else 0.0
    start, end = tracked["copy_start_ts"], tracked["copy_end_ts"]
    return max(1, peak_concurrency(start, end, margin=margin))
