"""The limiting resource, with its evidence and a confidence (reference ``hydra.md`` §8).

The USE view per resource (utilisation, saturation, errors) comes from the status samples and
the step table; the verdict follows where steps wait:

- steps runnable while machine slots are free: the dispatcher is not keeping up
  (**scheduling**);
- steps runnable while every slot is taken: the slots are the limit, and what holds them
  decides the name: building (**builder-capacity**), compressing or waiting for a local worker
  slot to compress (**compression**), sending, receiving or uploading (**io**);
- concurrent database updates piling up, "PostgreSQL may be stalled", or post-processing
  dominating the steps (**database**);
- nothing waiting and slots mostly free (**idle**);
- otherwise the largest non-build share of the steps' time, if it is large.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import pandas as pd

from profiler.analyze.attribution import Attribution
from profiler.analyze.gauges import metric_series, waiting_series
from profiler.analyze.totals import StepTotals
from profiler.hydra import facts
from profiler.units import format_share

BOTTLENECKS = ("compression", "io", "scheduling", "database", "builder-capacity", "idle")


@dataclass
class Verdict:
    """The named bottleneck (one of :data:`BOTTLENECKS`), confidence 0..1, evidence lines."""

    bottleneck: str
    confidence: float
    evidence: list[str]
    scores: dict[str, float] = field(default_factory=dict)
    close: list[str] = field(default_factory=list)  # runner-up within CLOSE of the headline
    throughput: dict[str, Any] = field(default_factory=dict)  # Throughput.as_dict()
    latency: dict[str, Any] = field(default_factory=dict)  # Latency.as_dict()
    basis: str = ""  # which answer the headline comes from: throughput or latency

    def summary(self) -> str:
        """The two answers in a few words: ``not saturated; latency: io``."""
        sat = self.throughput.get("saturated")
        held = self.throughput.get("held_by")
        first = (
            "saturation not observed"
            if sat is None
            else f"saturated (slots held by {held})"
            if sat
            else "not saturated"
        )
        return f"{first}; latency: {self.latency.get('cause', 'unknown')}"

    def as_dict(self) -> dict[str, Any]:
        return {
            "bottleneck": self.bottleneck,
            "confidence": round(self.confidence, 3),
            "close": self.close,
            "basis": self.basis,
            "summary": self.summary(),
            "throughput": self.throughput,
            "latency": self.latency,
            "evidence": self.evidence,
            "scores": {k: round(v, 3) for k, v in self.scores.items()},
        }


SATURATED_SHARE = 0.10  # of step wall time queued while every usable slot was taken
SATURATED_MARGIN = 0.05  # closer than this to the line: saturation itself is a close call
LATENCY_SHARE = 0.12  # a non-build share this large is worth fixing
CLOSE = 0.8  # runner-up / headline above this: a close call, said so
RESOURCE_OF = {"scheduling": "scheduling", "io": "io", "compression": "compression",
               "post": "database", "build": "builder-capacity"}  # fmt: skip
_CATEGORY_OF = {v: k for k, v in RESOURCE_OF.items()}
SETTLE = {
    "compression": "NAR sizes per step (the database's Builds.size, or narinfos via --cache) "
    "and a bench of your own NARs (--profiles) split the copy phase",
    "io": "NAR sizes per step (the database) and a bench of your NARs (--profiles) split the "
    "copy phase; the status's s3 putTime separates the upload",
    "scheduling": "status samples every few seconds (collect status) show whether slots were "
    "free while steps waited",
    "builder-capacity": "status samples of machine slots (collect status) show how long steps "
    "waited with every slot taken",
    "database": "the database collector's phase tracker (collect db) and the status's "
    "nrActiveDbUpdates",
    "idle": "status samples (collect status) over a busier period",
}


@dataclass
class Throughput:
    """Is the farm saturated (steps queued while every usable slot was taken), and what
    held the slots then. ``saturated`` is None when the run cannot tell."""

    saturated: bool | None
    queued_share: float  # of step wall time, waiting for a machine (NaN: not observed)
    queued_full_share: float  # ... while every usable slot was taken
    queued_free_share: float  # ... while a slot was free
    holders: dict[str, float]
    source: str
    # whether the wait was mostly with every slot taken is within the samples' error
    split_close: bool = False

    @property
    def held_by(self) -> str:
        return max(self.holders.items(), key=lambda kv: kv[1])[0] if self.holders else ""

    def sentence(self) -> str:
        if self.saturated is None:
            return f"throughput: whether the farm is saturated is not observed ({self.source})"
        q = (
            f"steps waited for a machine {_pct(self.queued_share)} of their time, "
            f"{_pct(self.queued_full_share)} with every usable slot taken and "
            f"{_pct(self.queued_free_share)} with a slot free ({self.source})"
        )
        if self.split_close:
            q += (
                "; whether most of the wait had every slot taken is within the samples' "
                "error (sample more often to settle it)"
            )
        if self.saturated:
            held = self.held_by or "what, the run does not show (no step phases)"
            return f"throughput: saturated: {q}; the slots were held by {held}"
        return f"throughput: not saturated: {q}"

    def as_dict(self) -> dict[str, Any]:
        def num(x: float) -> float | None:
            return round(x, 4) if math.isfinite(x) else None

        return {
            "saturated": self.saturated,
            "held_by": self.held_by if self.saturated else None,
            "queued_share": num(self.queued_share),
            "queued_full_share": num(self.queued_full_share),
            "queued_free_share": num(self.queued_free_share),
            "slot_time": {k: round(v, 4) for k, v in self.holders.items()},
            "source": self.source,
            "split_close": self.split_close,
        }


@dataclass
class Latency:
    """What, besides the build, adds most to the steps' wall time."""

    ranking: list[tuple[str, float]]  # resources by share of step wall time, largest first
    partial: list[str]  # resources whose share is partial (absent parts)

    @property
    def cause(self) -> str:
        top = self.ranking[0] if self.ranking else ("build", 0.0)
        return top[0] if top[1] >= LATENCY_SHARE else "build"

    def sentence(self) -> str:
        parts = ", ".join(
            f"{k} {_pct(v)}{' (partial)' if k in self.partial else ''}" for k, v in self.ranking
        )
        if self.cause == "build":
            return (
                f"latency: the build itself; nothing else reaches {_pct(LATENCY_SHARE)} ({parts})"
            )
        return f"latency: {self.cause} adds most to step wall time besides the build ({parts})"

    def as_dict(self) -> dict[str, Any]:
        return {
            "cause": self.cause,
            "shares": {k: round(v, 4) for k, v in self.ranking},
            "partial": self.partial,
        }


def throughput(attribution: Attribution, p: Pressure, blame: dict[str, float]) -> Throughput:
    """Saturation from the queue wait (how long steps waited, when observed) split by the
    status samples' time with every slot taken vs a slot free."""
    wall = attribution.wall_seconds
    queued = (
        attribution.queue_seconds / wall if wall > 0 and attribution.queue_observed else math.nan
    )
    full_t, free_t = p.runnable_full_share, p.runnable_free_share
    holders = {k: v for k, v in blame.items() if v > 0}
    if not (math.isfinite(full_t) and math.isfinite(free_t)):
        return Throughput(None, queued, math.nan, math.nan, holders, "no status samples")
    seen = full_t + free_t
    f_full = p.waiting_full_fraction
    if not math.isfinite(f_full):
        f_full = full_t / seen if seen > 0 else 0.0
    if not math.isfinite(queued):  # no queue wait: the samples' time shares stand in
        q_full, q_free = full_t, free_t
        source = "status samples' time shares (the queue wait itself is not observed)"
    else:
        q_full, q_free = queued * f_full, queued * (1 - f_full)
        source = "queue wait split by status samples"
    saturated = q_full >= SATURATED_SHARE and q_full >= q_free
    # the full-vs-free fraction comes from the waiting samples: its standard error as a
    # proportion of n samples (neighbours are alike, so n overstates the evidence: err wide)
    n = p.waiting_samples
    se = math.sqrt(f_full * (1 - f_full) / n) if n > 0 else math.inf
    split_close = abs(f_full - 0.5) < 2 * se and (q_full + q_free) / 2 >= SATURATED_SHARE
    return Throughput(saturated, queued, q_full, q_free, holders, source, split_close)


def _confidence(top_score: float, second: float, thr: Throughput) -> float:
    """From the headline's margin over the runner-up and how near saturation is to its line
    (the queue share to :data:`SATURATED_SHARE`, the wait's full-vs-free split to even)."""
    margin = (top_score - second) / top_score if top_score > 0 else 0.0
    confidence = min(1.0, 0.3 + 0.7 * margin)
    if math.isfinite(thr.queued_full_share):  # saturated or not: how near the line
        near = abs(thr.queued_full_share - SATURATED_SHARE) / SATURATED_MARGIN
        confidence *= 0.5 + 0.5 * min(1.0, near)
    if thr.split_close:
        confidence *= 0.5
    return confidence


def _quality(top: str, thr: Throughput, attribution: Attribution, unsplit: float) -> float:
    """How far the data lets the headline be trusted (1: everything it rests on observed)."""
    quality = 1.0
    if thr.saturated is None:
        quality *= 0.6  # whether steps waited for slots is not observed
    if top in ("io", "compression") and unsplit > 0.5:
        quality *= 0.5  # the copy phase holds both: which one is not known
    elif attribution.estimated.get(_CATEGORY_OF.get(top, top), False):
        quality *= 0.85
    return quality


def headline_ranking(thr: Throughput, lat: Latency) -> tuple[list[tuple[str, float]], str]:
    """The candidates for the one thing to fix first, strongest first, and which answer they
    come from: a saturated farm's slot holders; else steps waiting with slots free (the
    dispatcher's wait is part of the scheduling latency); else what adds most latency, or idle
    when nothing but the build is large."""
    if thr.saturated and thr.holders:
        return sorted(thr.holders.items(), key=lambda kv: -kv[1]), "throughput"
    # "idle" competes at the threshold: a cause just above it is a close call with idle, and
    # idle with a cause just below it is a close call with that cause
    above = [kv for kv in lat.ranking if kv[1] >= LATENCY_SHARE]
    below = [kv for kv in lat.ranking if kv[1] < LATENCY_SHARE]
    if above:
        return [*above, ("idle", LATENCY_SHARE)], "latency"
    return [("idle", LATENCY_SHARE), *below[:1]], "latency"


def _across_the_line(thr: Throughput, lat: Latency) -> str:
    """The headline had saturation gone the other way, when the queue share is within
    :data:`SATURATED_MARGIN` of the line or whether steps waited mostly with every slot
    taken is within the samples' error (else empty)."""
    q = thr.queued_full_share
    if (
        thr.saturated is None
        or not math.isfinite(q)
        or (abs(q - SATURATED_SHARE) >= SATURATED_MARGIN and not thr.split_close)
    ):
        return ""
    other = replace(thr, saturated=not thr.saturated)
    if other.saturated and not other.holders:
        return ""
    return headline_ranking(other, lat)[0][0][0]


def latency(attribution: Attribution) -> Latency:
    shares = {RESOURCE_OF[c]: v for c, v in attribution.shares.items() if c != "build"}
    partial = [RESOURCE_OF[c] for c in attribution.shares
               if attribution.how(c).startswith(("partial", "not separated"))]  # fmt: skip
    return Latency(sorted(shares.items(), key=lambda kv: -kv[1]), partial)


@dataclass
class Pressure:
    """Time shares from the status samples (NaN when the run has no samples)."""

    samples: int = 0
    interval_s: float = math.nan
    runnable_share: float = math.nan  # time with steps runnable
    runnable_free_share: float = math.nan  # ... while a machine slot was free
    runnable_full_share: float = math.nan  # ... while every slot was taken
    slot_busy_share: float = math.nan  # time-average of taken / available slots
    download_wait_share: float = math.nan  # time with steps waiting for a local slot
    db_stalled_share: float = math.nan  # time with > 6 concurrent database updates
    db_updates_max: float = math.nan
    capacity: float = math.nan
    dispatcher_busy: float = math.nan  # running / (running + waiting)
    # Rust: time some builder had a free slot by maxJobs but none took work (hasCapacity
    # false everywhere: pressure or load above its thresholds, or disks full)
    pressure_gated_share: float = math.nan
    free_from: str = ""  # how "a slot was free" was decided
    runner_cpu_cores: float = math.nan  # the runner process's CPU seconds per second (Rust)
    # of the step-seconds spent waiting for a machine, the share with every usable slot taken
    waiting_full_fraction: float = math.nan
    waiting_samples: int = 0  # samples with steps waiting for a machine


def _per_machine(samples: pd.DataFrame, metric: str) -> pd.Series:
    rows = samples[samples["metric"] == metric]
    if rows.empty or "machine" not in rows:
        return pd.Series(dtype=float)
    out: pd.Series = rows.groupby("machine")["value"].max()
    return out


def _machine_matrix(s: pd.DataFrame, metric: str, index: pd.Index) -> pd.DataFrame:
    """One column per machine, a metric's value at each time of ``index`` (last one seen)."""
    rows = s[s["metric"] == metric]
    if rows.empty or "machine" not in rows:
        return pd.DataFrame(index=index)
    wide = rows.pivot_table(index="ts", columns="machine", values="value", aggfunc="last")
    return wide.reindex(wide.index.union(index)).ffill().reindex(index)


def _capacity(slots: int | None, per_machine: pd.Series, max_jobs: pd.Series) -> float:
    """Build slots over the farm: ``slots`` per machine, else the Rust status's maxJobs."""
    if slots is not None:
        return float(slots * max(len(per_machine), len(max_jobs), 1))
    if not max_jobs.empty:
        return float(max_jobs.sum())
    # C++ status has no maxJobs: the most each machine was seen running (at least 1: a machine
    # in the status has a slot even if it was never seen using it)
    return float(per_machine.clip(lower=1).sum()) if not per_machine.empty else math.nan


def pressure(
    samples: pd.DataFrame | None,
    window: tuple[float, float],
    slots: int | None,
    generation: str = "cxx",
    handover: np.ndarray | None = None,
) -> Pressure:
    """Time shares of runnable/free/full/waiting from the samples inside ``window``.

    Steps waiting for a machine are :func:`waiting_series` (Rust: runnable minus building).
    A slot is free when a machine runs fewer jobs than its slots; for Rust, when a machine
    says ``hasCapacity`` (the dispatcher's own gate, :data:`facts.RUST_CAPACITY_SOURCE`:
    pressure and disk thresholds as well as maxJobs), when the status has it.
    """
    if samples is None or samples.empty or "metric" not in samples:
        return Pressure()
    start, end = window
    s = samples[(samples["ts"] >= start - 1) & (samples["ts"] <= end + 1)]
    runnable = waiting_series(s, generation, handover)
    if len(runnable) < 2:
        return Pressure()
    ts = runnable.index.to_numpy(float)
    dt = np.diff(ts)
    weight = np.append(dt, np.median(dt))
    total = float(weight.sum())
    jobs = metric_series(s, "machine_current_jobs").reindex(runnable.index).ffill().fillna(0.0)
    per_machine = _per_machine(s, "machine_current_jobs")
    max_jobs = _per_machine(s, "machine_max_jobs")
    capacity = _capacity(slots, per_machine, max_jobs)
    r = runnable.to_numpy(float) > 0
    free = jobs.to_numpy(float) < capacity if math.isfinite(capacity) else np.zeros_like(r)
    p = Pressure(samples=len(runnable), interval_s=float(np.median(dt)), capacity=capacity)
    p.free_from = "machine slots (currentJobs < slots)"
    gate = _machine_matrix(s, "machine_has_capacity", runnable.index)
    if generation == "rust" and not gate.empty and gate.notna().any().any():
        free_by_slots = free
        free = np.asarray((gate.fillna(0.0).to_numpy(float) > 0).any(axis=1), dtype=bool)
        p.free_from = "builders' hasCapacity (slots, CPU/memory/IO pressure, disk)"
        p.pressure_gated_share = float(weight[free_by_slots & ~free].sum() / total)
    waiting_steps = weight * np.clip(runnable.to_numpy(float), 0, None)
    if waiting_steps.sum() > 0:  # step-weighted: ten steps waiting count ten times
        p.waiting_full_fraction = float(waiting_steps[~free].sum() / waiting_steps.sum())
        p.waiting_samples = int(np.count_nonzero(r))
    p.runnable_share = float(weight[r].sum() / total)
    p.runnable_free_share = float(weight[r & free].sum() / total)
    p.runnable_full_share = float(weight[r & ~free].sum() / total)
    if math.isfinite(capacity) and capacity > 0:
        p.slot_busy_share = float(np.sum(weight * jobs.to_numpy(float)) / (total * capacity))
    waiting = metric_series(s, "steps_waiting_for_download_slot").reindex(runnable.index).ffill()
    if waiting.notna().any():
        p.download_wait_share = float(weight[(waiting.fillna(0) > 0).to_numpy()].sum() / total)
    db = metric_series(s, "db_updates_active", "max").reindex(runnable.index).ffill()
    if db.notna().any():
        p.db_updates_max = float(db.max())
        stalled = (db.fillna(0) > facts.DB_STALL_THRESHOLD).to_numpy()
        p.db_stalled_share = float(weight[stalled].sum() / total)
    cpu = metric_series(s, "process_cpu_seconds_total", "max")
    if len(cpu) >= 2 and cpu.index[-1] > cpu.index[0]:
        used = float(np.clip(np.diff(cpu.to_numpy(float)), 0, None).sum())
        p.runner_cpu_cores = used / float(cpu.index[-1] - cpu.index[0])
    run_s = metric_series(s, "dispatcher_running_seconds_total", "max")
    wait_s = metric_series(s, "dispatcher_waiting_seconds_total", "max")
    if len(run_s) >= 2 and len(wait_s) >= 2:
        dr = float(run_s.iloc[-1] - run_s.iloc[0])
        dw = float(wait_s.iloc[-1] - wait_s.iloc[0])
        if dr + dw > 0:
            p.dispatcher_busy = dr / (dr + dw)
    return p


def _slot_blame(totals: StepTotals, generation: str) -> dict[str, float]:
    """What machine-slot time was spent on, by category (slot waits blamed on what the
    local worker slots were doing: compressing vs moving bytes)."""
    col = totals.sum

    compress, receive, upload = col("compress_s"), col("receive_s"), col("upload_s")
    wait = col("slot_wait_s")
    moved = receive + upload
    c_part = compress / (compress + moved) if compress + moved > 0 else 0.5
    blame = {
        "scheduling": col("connect_s"),
        "io": col("send_s") + wait * (1 - c_part),
        "compression": wait * c_part,
        "builder-capacity": col("build_s"),
        "database": col("prepare_s"),
    }
    if generation == "rust":  # the builder holds its slot through upload and post
        blame["io"] += moved
        blame["compression"] += compress
        blame["database"] += col("post_s")
    total = sum(blame.values())
    return {k: v / total for k, v in blame.items()} if total > 0 else blame


def _coarseness(totals: StepTotals, resolution_s: float, needed: float) -> float:
    """1 when steps last ``needed`` times their timing resolution or more, down to 0.2."""
    median = totals.wall_median_s
    if resolution_s <= 0 or not totals.steps or not math.isfinite(median):
        return 1.0
    return float(min(1.0, max(0.2, median / (needed * resolution_s))))


def _farm_blame(attribution: Attribution) -> dict[str, float]:
    """Slot time by what held it, from farm-level totals (no per-step rows): every category's
    step-seconds but the queue wait."""
    sec = dict(attribution.seconds)
    sec["scheduling"] = max(0.0, sec["scheduling"] - attribution.queue_seconds)
    total = sum(sec.values())
    return {RESOURCE_OF[c]: v / total for c, v in sec.items()} if total > 0 else {}


def _pct(x: float) -> str:
    return format_share(x, digits=0, missing="n/a")


def _runnable_evidence(p: Pressure) -> str:
    """Where steps waited, or that the run cannot say (absent, not zero)."""
    if not math.isfinite(p.runnable_share):
        return (
            "no status samples: whether steps waited for a machine, and whether slots were "
            "free meanwhile, is not observed (collect status or metrics to see it)"
        )
    slots = f"all {p.capacity:g} slots" if math.isfinite(p.capacity) else "every slot"
    return (
        f"steps runnable {_pct(p.runnable_share)} of the time: while a slot was free "
        f"{_pct(p.runnable_free_share)}, while {slots} were taken "
        f"{_pct(p.runnable_full_share)} (samples every {p.interval_s:.2g} s)"
    )


def decide(
    attribution: Attribution,
    steps: pd.DataFrame | StepTotals,
    generation: str,
    p: Pressure,
    log_events: pd.DataFrame | None = None,
    resolution_s: float = 0.0,
    sampled_s: float = 0.0,
) -> Verdict:
    """Score every bottleneck from the evidence and name the strongest.

    ``resolution_s`` is how finely the steps were timed (1 for whole-second rows): steps not
    much longer than it make every share coarse, and the confidence says so; ``sampled_s`` is
    the sample interval of the gauges that split phases (an integral over many samples: a
    step need only outlast a couple of them). ``steps``: the step table, or its totals."""
    totals = steps if isinstance(steps, StepTotals) else StepTotals.of(steps)
    sh = attribution.shares
    blame = _slot_blame(totals, generation) if totals.steps else _farm_blame(attribution)
    stalls = 0
    if log_events is not None and "event" in log_events:
        stalls = int((log_events["event"] == "db_stalled").sum())
    busy = p.slot_busy_share if math.isfinite(p.slot_busy_share) else math.nan
    unsplit = (
        attribution.unsplit_seconds / attribution.seconds["io"]
        if attribution.seconds["io"] > 0
        else 0.0
    )
    thr = throughput(attribution, p, blame)
    lat = latency(attribution)
    ranking, basis = headline_ranking(thr, lat)
    top, top_score = ranking[0]
    second_name, second = ranking[1] if len(ranking) > 1 else ("", 0.0)
    close = [second_name] if top_score > 0 and second >= CLOSE * top_score else []
    flipped = _across_the_line(thr, lat)
    if flipped and flipped != top and flipped not in close:
        close.append(flipped)
    confidence = _confidence(top_score, second, thr) * _quality(top, thr, attribution, unsplit)
    coarse = min(_coarseness(totals, resolution_s, 10), _coarseness(totals, sampled_s, 2))
    confidence *= coarse
    scores = dict.fromkeys(BOTTLENECKS, 0.0)
    scores.update({name: float(v) for name, v in ranking})
    evidence = [
        f"attribution of {attribution.steps} steps: "
        + ", ".join(f"{k} {_pct(v)}" for k, v in sh.items()),
        _runnable_evidence(p),
        ("machine-slot time spent on: " if totals.steps else "step time held (farm totals): ")
        + ", ".join(f"{k} {_pct(v)}" for k, v in sorted(blame.items(), key=lambda kv: -kv[1])),
    ]
    if math.isfinite(busy):
        evidence.append(f"machine slots in use {_pct(busy)} of the time (utilisation)")
    if math.isfinite(p.download_wait_share):
        evidence.append(
            f"steps waiting for a local worker slot {_pct(p.download_wait_share)} of the time"
        )
    if math.isfinite(p.db_updates_max):
        evidence.append(
            f"concurrent database updates up to {p.db_updates_max:g}; above 6 "
            f"{_pct(p.db_stalled_share)} of the time; {stalls} 'PostgreSQL may be stalled' warnings"
        )
    if math.isfinite(p.dispatcher_busy):
        evidence.append(f"dispatcher running {_pct(p.dispatcher_busy)} of its time")
    if unsplit > 0:
        evidence.append(
            f"{_pct(unsplit)} of the io time is copy phases whose compression could not be "
            "separated (no NAR sizes): io and compression cannot be told apart there"
        )
    if math.isfinite(p.runner_cpu_cores):
        evidence.append(
            f"queue runner process CPU {p.runner_cpu_cores:.2f} cores on average "
            "(process_cpu_seconds_total, whole seconds)"
        )
    if math.isfinite(p.pressure_gated_share):
        evidence.append(
            f"builders refused work (hasCapacity false: pressure, load or disk over their "
            f"thresholds) while slots were free {_pct(p.pressure_gated_share)} of the time"
        )
    if coarse < 1:
        median = totals.wall_median_s
        every = max(resolution_s, sampled_s)
        evidence.append(
            f"steps were timed (or their phases sampled) every {every:.2g} s but the "
            f"median step lasts {median:.2g} s: the shares are coarse (confidence lowered)"
        )
    evidence.insert(0, thr.sentence())
    evidence.insert(1, lat.sentence())
    evidence[2:2] = _close_calls(
        close, (top, top_score), (second_name, second), flipped, thr, basis
    )
    return Verdict(
        top, max(0.0, confidence), evidence, scores, close, thr.as_dict(), lat.as_dict(), basis
    )


def _close_calls(
    close: list[str],
    top: tuple[str, float],
    second: tuple[str, float],
    flipped: str,
    thr: Throughput,
    basis: str,
) -> list[str]:
    """The evidence lines of the close calls: a runner-up near the headline, and a farm near
    the saturation line (the other side's answer)."""
    lines = []
    if second[0] in close:
        lines.append(
            f"close call: {top[0]} ({top[1]:.2f}) vs {second[0]} ({second[1]:.2f}) on {basis}; "
            f"what would settle it: {SETTLE.get(second[0], SETTLE.get(top[0], ''))}"
        )
    if flipped in close:
        side = "just over" if thr.saturated else "just under"
        lines.append(
            f"close call: the farm is {side} the saturation line (steps queued with every "
            f"slot taken {_pct(thr.queued_full_share)} of their time, the line "
            f"{_pct(SATURATED_SHARE)}); on the other side the answer would be {flipped}; what "
            f"would settle it: {SETTLE['builder-capacity']}"
        )
    return lines


def use_table(
    p: Pressure,
    attribution: Attribution,
    steps: pd.DataFrame | StepTotals,
    local_workers: int | None = None,
) -> pd.DataFrame:
    """Utilisation, saturation and errors per resource, as far as the run shows them.

    Each row says in ``measures`` what its three figures are (shares of the run's time unless
    said otherwise); NaN where the run has no such signal. ``steps``: the step table, or its
    totals.
    """
    totals = steps if isinstance(steps, StepTotals) else StepTotals.of(steps)
    window = totals.window_seconds
    failed = totals.failed
    copying = sum(totals.sum(c) for c in ("compress_s", "receive_s", "upload_s"))
    workers_busy = copying / window / local_workers if local_workers and window else math.nan
    rows = [
        ("builder slots", p.slot_busy_share, p.runnable_full_share, failed,
         "slots in use; steps runnable with every slot taken; failed steps"),
        ("scheduler", p.dispatcher_busy, p.runnable_free_share, math.nan,
         "dispatcher running vs waiting; steps runnable while a slot was free"),
        ("local workers (copy: receive, compress, upload)", workers_busy, p.download_wait_share,
         math.nan, "workers copying; steps waiting for a worker slot"),
        ("database", p.db_updates_max, p.db_stalled_share, math.nan,
         "most concurrent updates (a count); time above 6 concurrent updates"),
    ]  # fmt: skip
    table = pd.DataFrame(
        rows, columns=["resource", "utilisation", "saturation", "errors", "measures"]
    )
    return table.set_index("resource")
