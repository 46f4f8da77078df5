"""What Hydra records as one phase, or not at all, estimated from the gauges and counters:
the C++ journal steps' time before the copy split by the status's phase gauges, and the Rust
rows' writes and imports the journal cannot see. Each estimate says how it was made (a
note) and which categories it touched (marked estimated in the attribution).
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from profiler.analyze.gauges import (
    counter_increase,
    gauge_integral,
    metric_series,
    one_reader,
    series_integral,
)
from profiler.analyze.journal_steps import journal_attempts

COUNTED_WRITES_PER_STEP = 2


# before the journal's copy line: the step's insert (builder.cc:195) and the Connecting,
# SendingInputs, Building and ReceivingOutputs updates (build-remote.cc:431, :512, :532, :582)
WRITES_BEFORE_COPY = 5


def split_slot_wait(
    steps: pd.DataFrame, samples: pd.DataFrame | None, window: tuple[float, float]
) -> tuple[pd.DataFrame, str | None, tuple[str, ...]]:
    """C++ journal-only steps: 'before the copy' (creating the step's row, connecting,
    sending inputs, building, waiting for a worker slot) split by the integrals of the
    status's phase gauges (nrStepsCopyingTo, nrStepsBuilding, nrStepsWaitingForDownloadSlot:
    step-seconds in each phase over the farm), shared in proportion to each step's time
    before the copy; the rest is connecting.

    The gauges cover the work of a phase, not the database write that starts it
    (``updateStep``, builder.cc:201-205, before ``MaintainCount`` in build-remote.cc:512-
    537): with ``nrActiveDbUpdates`` sampled, a write's latency is its integral over the
    counted transactions (:data:`COUNTED_WRITES_PER_STEP`), and each step's time before the
    copy holds :data:`WRITES_BEFORE_COPY` of them, database time. Returns the steps, a note
    and the categories estimated."""
    if "pre_copy_s" not in steps or steps["pre_copy_s"].isna().all():
        return steps, None, ()
    pre = steps["pre_copy_s"].fillna(0.0)
    total = float(pre.sum())
    wait = gauge_integral(samples, "steps_waiting_for_download_slot", window)
    if not math.isfinite(wait) or total <= 0:
        return steps, None, ()
    send = gauge_integral(samples, "steps_copying_to", window)
    building = gauge_integral(samples, "steps_building", window)
    parts = {"slot_wait_s": wait}
    n = int(pre.gt(0).sum())
    db = gauge_integral(samples, "db_updates_active", window)
    write_s = db / (COUNTED_WRITES_PER_STEP * n) if math.isfinite(db) and n else 0.0
    if math.isfinite(send) and math.isfinite(building) and building > 0:
        parts.update(send_s=send, build_s=building)
        if write_s > 0:
            parts.update(prepare_s=WRITES_BEFORE_COPY * n * write_s)
    used = sum(parts.values())
    scale = min(1.0, total / used) if used > 0 else 1.0
    steps = steps.copy()
    if "connect_s" not in steps:
        steps["connect_s"] = 0.0
    shares = {c: v * scale / total for c, v in parts.items()}
    for column, share in shares.items():
        steps[column] = pre * share
    rest = max(0.0, 1.0 - sum(shares.values()))
    if "build_s" in parts:
        steps["connect_s"] = steps["connect_s"].fillna(0.0) + pre * rest
        how = (
            f"sending inputs {100 * shares['send_s']:.0f}%, building "
            f"{100 * shares['build_s']:.0f}%, waiting for a worker slot "
            f"{100 * shares['slot_wait_s']:.0f}%, "
            + (
                f"writing the step's row {100 * shares['prepare_s']:.0f}% ("
                f"{WRITES_BEFORE_COPY} database writes of {write_s * 1000:.0f} ms from "
                "nrActiveDbUpdates: the insert and each phase's update), "
                if "prepare_s" in shares
                else ""
            )
            + f"connecting {100 * (rest + shares.get('connect_s', 0.0)):.0f}%"
        )
    else:
        steps["build_s"] = pre * (1 - shares["slot_wait_s"])
        how = f"waiting for a worker slot {100 * shares['slot_wait_s']:.0f}%, the rest building"
    estimated = ("build", "scheduling", "io") + (("post",) if "prepare_s" in shares else ())
    return (
        steps,
        (
            "the journal steps' time before the copy split by the status's phase gauges "
            f"(step-seconds per phase over the farm; estimated): {how}"
        ),
        estimated,
    )


def rust_step_rows(
    steps: pd.DataFrame,
    logs: pd.DataFrame | None,
    samples: pd.DataFrame | None,
    generation: str,
) -> tuple[pd.DataFrame, str | None]:
    """Rust: the time from a step's dispatch to its ``Submitting build`` line, which neither
    the journal nor the tracker sees: the runner takes the machine's slot, stamps the step's
    start (set_start_time_now) and creates its BuildSteps row and notifies before it logs
    (hydra 14332fbf subprojects/hydra-queue-runner/src/state/mod.rs:880, :1094-1133). The
    step-time counter (``totalStepTimeMs``/``steps_total_time_ms``: stop - start of every
    attempt, added at the stop, machine.rs:186-206, metrics.rs:1188-1206) holds it: its
    increase less the journal's dispatch-to-stop spans of the attempts it counted is that
    time, spread evenly over the steps as database time before their first line (estimated).
    """
    needed = ("event", "drv", "ts")
    if (
        generation != "rust"
        or steps.empty
        or logs is None
        or not all(c in logs for c in needed)
        or samples is None
        or samples.empty
        or "metric" not in samples
    ):
        return steps, None
    rows = one_reader(samples, "step_seconds_total").sort_values("ts")
    if len(rows) < 2:
        return steps, None
    first, last = float(rows["ts"].iloc[0]), float(rows["ts"].iloc[-1])
    attempts = journal_attempts(logs)
    if not len(attempts):
        return steps, None
    counted = attempts[(attempts[:, 1] > first) & (attempts[:, 1] <= last)]
    increase = counter_increase(rows, "step_seconds_total", "_none_")
    if not len(counted) or not math.isfinite(increase):
        return steps, None
    done = samples[samples["metric"] == "steps_done_total"]
    if "source" in rows:  # the attempts it counted, from the same reader
        done = done[done["source"] == rows["source"].iloc[0]]
    done = done[(done["ts"] >= first) & (done["ts"] <= last)]
    n = counter_increase(done, "steps_done_total", "_none_") if len(done) >= 2 else math.nan
    if not math.isfinite(n) or n <= 0:
        n = float(len(counted))  # every attempt the counter holds is in the journal
    mean_span = float((counted[:, 1] - counted[:, 0]).mean())
    per_attempt = (increase - mean_span * n) / n
    if per_attempt <= 1e-3:  # nothing the counter's milliseconds can tell from zero
        return steps, None
    steps = _rust_before_line(steps, per_attempt)
    note = (
        f"{per_attempt * 1000:.0f} ms per step between dispatch and the 'Submitting build' line "
        f"(creating the step's row and notifying) from the step-time counter less the "
        f"journal's spans of {int(n)} attempt(s), added to each step as database time, and "
        f"the Connecting update after the line ({per_attempt * 500:.0f} ms, taken as one of "
        "those two writes) moved from dispatch to database time (estimated)"
    )
    attempts[:, 0] -= per_attempt
    steps, end_note = _rust_row_ends(steps, attempts, samples)
    return steps, "; ".join(n for n in (note, end_note) if n)


def _rust_before_line(steps: pd.DataFrame, before_s: float) -> pd.DataFrame:
    """Rust steps get the ``before_s`` between dispatch and their ``Submitting build`` line:
    the step row's insert and the ``build_started`` notification, two transactions (hydra
    14332fbf state/mod.rs:1094-1127). A journal-timed step starts at the line; a step the
    journal re-timed (:func:`rust_journal_refine`) already has the tracker's part (the
    notification, after the insert's commit) as preparing; a tracker-only step starts at the
    insert's commit (the notification is in its busy-1 span). The Connecting update after
    the line (:1134-1142), one write (half of ``before_s``), is in the journal's dispatch time
    (to the builder's ``Building`` line): it moves to database time."""
    steps = steps.copy()
    known = steps["start_ts"].notna()
    prepare = steps["prepare_s"].astype(float).fillna(0.0)
    source = steps["timing_source"]
    add = pd.Series(before_s, index=steps.index)
    add[source == "tracker+journal"] = (before_s - prepare).clip(lower=0.0)
    add[source == "tracker"] = before_s / 2
    add = add.where(known, 0.0)
    steps["prepare_s"] = prepare + add
    steps.loc[known, "start_ts"] = steps.loc[known, "start_ts"].astype(float) - add[known]
    timed = known & source.isin(["journal", "tracker+journal"])
    connect = steps["connect_s"].astype(float).fillna(0.0)
    update = connect.clip(upper=before_s / 2).where(timed, 0.0)
    steps["connect_s"] = connect - update
    steps["prepare_s"] += update
    return steps


def _rust_row_ends(
    steps: pd.DataFrame, attempts: np.ndarray, samples: pd.DataFrame
) -> tuple[pd.DataFrame, str | None]:
    """Rust journal-timed steps end at ``marking job as done`` (the stop), but the machine
    keeps the job while the step's row is written, and frees it after (succeed_step, hydra
    14332fbf state/mod.rs:1927-1940). The machines' ``currentJobs`` (jobs held, dispatch to
    removal) integrated over the status samples, less the attempts' dispatch-to-stop spans, is
    that time; spread evenly over the attempts and added to the journal steps' post-processing
    when it stands clear of the samples' own error (each rise and fall is seen up to an
    interval late: the integral's deviation is about interval x sqrt(attempts / 6))."""
    held_series = metric_series(one_reader(samples, "machine_current_jobs"), "machine_current_jobs")
    journal = steps["timing_source"] == "journal"
    if len(held_series) < 3 or not journal.any():
        return steps, None
    t = held_series.index.to_numpy(float)
    first, last = float(t[0]), float(t[-1])
    held = series_integral(held_series)
    seen = float(
        (np.minimum(attempts[:, 1], last) - np.maximum(attempts[:, 0], first)).clip(0).sum()
    )
    inside = int(((attempts[:, 1] > first) & (attempts[:, 1] <= last)).sum())
    interval = float(np.median(np.diff(t)))
    noise = interval * math.sqrt(max(inside, 1) / 6)
    extra = held - seen
    if inside == 0 or extra <= 2 * noise or extra / inside <= 1e-3:
        return steps, None
    per_attempt = extra / inside
    steps = steps.copy()
    steps.loc[journal, "post_s"] = steps.loc[journal, "post_s"].astype(float) + per_attempt
    steps.loc[journal, "end_ts"] = steps.loc[journal, "end_ts"].astype(float) + per_attempt
    return steps, (
        f"{per_attempt * 1000:.0f} ms per journal step after its 'marking job as done' line "
        f"(writing the step's row while the machine holds the job) from the machines' "
        f"currentJobs over {len(t)} samples (+-{noise / inside * 1000:.0f} ms) less the "
        "journal's spans (estimated)"
    )


def rust_imports(
    steps: pd.DataFrame, samples: pd.DataFrame | None, generation: str
) -> tuple[pd.DataFrame, str | None]:
    """Rust steps timed from the journal alone: the builder's ``Building {drv}`` line comes
    when it receives the job, before it imports the inputs (hydra-builder/src/state.rs at
    14332fbf: import, then ``StepStatus::Building`` :564), so their build span holds the
    import. Each builder's import counter (``totalStepImportTimeMs`` / ``machine_total_step_
    import_time_ms``: the builders' import_time_ms summed, state/metrics.rs) says how much:
    it is taken out of that machine's journal steps in proportion to their build spans."""
    if generation != "rust" or samples is None or samples.empty or "metric" not in samples:
        return steps, None
    journal = (steps["timing_source"] == "journal") & (steps["build_s"] > 0)
    if not journal.any():
        return steps, None
    metric = "machine_step_import_seconds_total"
    rows = samples[samples["metric"] == metric]
    per_machine: dict[str, float] = {}
    if "machine" in rows:
        for machine, series in rows.groupby(rows["machine"].astype(str)):
            per_machine[str(machine)] = counter_increase(series, metric, "_none_")
    steps = steps.copy()
    moved = 0.0
    groups = (
        steps[journal].groupby(steps.loc[journal, "machine"].astype(str)).groups
        if per_machine
        else {"": steps.index[journal]}
    )
    farm = counter_increase(samples, "step_import_seconds_total", "_none_")
    for key, index in groups.items():
        total = per_machine.get(str(key), math.nan) if per_machine else farm
        if not math.isfinite(total) or total <= 0:
            continue
        spans = steps.loc[index, "build_s"].astype(float)
        share = min(1.0, total / float(spans.sum())) if spans.sum() > 0 else 0.0
        taken = spans * share
        steps.loc[index, "send_s"] = steps.loc[index, "send_s"].astype(float) + taken
        steps.loc[index, "build_s"] = spans - taken
        moved += float(taken.sum())
    if moved <= 0:
        return steps, None
    return steps, (
        f"{moved:.3g} step-s of input imports taken out of the journal steps' build spans by "
        "the builders' import counters, in proportion to each step's span (estimated)"
    )


def without_retries(
    queue_s: float, source: str, steps: pd.DataFrame, retried: pd.Series, generation: str
) -> tuple[float, str]:
    """The queue total less what the steps' retry waits hold (they are counted per step).

    The runnable-steps gauges count a step through its back-off (C++ ``makeRunnable`` after
    setting ``after``: a40d4286 builder.cc:64-67; Rust keeps the job queued with its
    runnable flag). Rust's ``job_wait_time_seconds`` measures a retried step from the job's
    ``runnable_since``, which the retry keeps (14332fbf state/queue.rs:514), so it also holds
    the failed attempts' whole time."""
    waits = float(steps["retry_wait_s"].sum())
    if not math.isfinite(queue_s) or (waits <= 0 and not retried.any()):
        return queue_s, source
    held = waits
    if generation == "rust" and source.startswith("Rust job_wait"):
        spans = steps.loc[retried, "end_ts"].astype(float) - steps.loc[retried, "start_ts"]
        held += float(spans.clip(lower=0).sum())
    less = min(held, queue_s)
    return queue_s - less, f"{source}, less {less:.3g} step-s of retries (counted per step)"
