"""Attribution: each step's wall time split into scheduling, I/O, compression, build and post.

Per step (columns added to the step table, seconds):

- **scheduling**: connecting to the builder (and, in the totals only, the time steps waited
  runnable for a machine: no per-step source records it, see :mod:`profiler.analyze.steps`);
- **io**: sending inputs, receiving outputs, writing the cache, uploading;
- **compression**: compressing outputs (estimated from the codec profile, see below) and
  waiting for a local worker slot (C++: a slot is held for the whole receive+compress+upload,
  so the wait is caused by compression);
- **build**: building;
- **post**: preparing the step and post-processing (database writes, notifications).

The copy phase is split: C++ journals give the receive+compress+write pipeline time per
output, so ``copy - pipeline`` is the upload; compression is ``NAR bytes x seconds per byte``
of the codec profile, at most the pipeline (or the copy phase), and the rest of it is I/O.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from profiler.analyze.gauges import peak_concurrency
from profiler.analyze.schema import CATEGORIES, CATEGORY_COLUMN, StepTable
from profiler.analyze.totals import StepTotals
from profiler.bench.profiles import SMALL_NAR_BYTES, CodecProfile

# Phases that hold a machine slot (C++ gives the slot back once it has a local worker slot).
SLOT_COLUMNS = {
    "cxx": ("prepare_s", "connect_s", "send_s", "build_s", "slot_wait_s"),
    "rust": ("prepare_s", "connect_s", "send_s", "build_s", "slot_wait_s", "copy_s", "post_s"),
}


@dataclass
class Attribution:
    """Totals and shares of step wall time per category, and how they were obtained."""

    seconds: dict[str, float]
    shares: dict[str, float]
    estimated: dict[str, bool]
    steps: int
    wall_seconds: float
    queue_seconds: float
    notes: list[str]
    unsplit_seconds: float = 0.0  # copy-phase time that could not be split (no NAR size/profile)
    queue_observed: bool = True  # whether the queue wait (in scheduling) was observed at all
    measured: str = ""  # how compression was measured (CPU samples), where it was

    def how(self, category: str) -> str:
        """How a category's seconds were obtained: observed, estimated, or (compression with
        copy phases that could not be split) not separated from I/O."""
        if self.unsplit_seconds > 0 and category == "compression":
            return "not separated: inside io"
        if self.unsplit_seconds > 0 and category == "io":
            return "includes unsplit compression"
        if category == "scheduling" and not self.queue_observed:
            return "partial: queue wait not observed"
        if category == "compression" and self.measured:
            return self.measured
        return "estimated" if self.estimated[category] else "observed"

    def as_dict(self) -> dict[str, float]:
        """The shares (summing to 1), as DESIGN.md's ``attribution`` object."""
        return dict(self.shares)


ASSUMED_UPLOAD_BYTES_PER_SECOND = 100e6  # a builder or runner to its cache, same region
ASSUMED_LINK_BYTES_PER_SECOND = 125e6  # a builder to the runner over SSH, 1 Gbit/s


RECEIVE_SECONDS_PER_BYTE = 1 / ASSUMED_LINK_BYTES_PER_SECOND  # a NAR byte over the link


def put_seconds_per_byte(profile: CodecProfile) -> float:
    """What uploading costs per NAR byte: its compressed bytes at the assumed upload rate."""
    return profile.ratio / ASSUMED_UPLOAD_BYTES_PER_SECOND


def compress_share(profile: CodecProfile, other_seconds_per_byte: float) -> float:
    """Of a phase that compresses NARs and moves bytes costing ``other_seconds_per_byte`` a
    NAR byte, the share spent compressing (0 when the profile has no rate)."""
    total = profile.seconds_per_byte + other_seconds_per_byte
    return float(profile.seconds_per_byte / total) if total > 0 else 0.0


# Without evidence of more, a machine compresses at most this many times slower than the
# calibration: the spread of server cores' speed and a busy builder's share of its cores. A
# slow link, by contrast, can be any number of times slower than the assumed rates.
SLOWDOWN_PRIOR = 3.0
REQUEST_SECONDS = 0.1  # a transfer's own fixed cost per NAR (a request, a handshake), at most


def compression_in_phase(
    phase: Any, expected: Any, other_seconds: Any, share: Any, slowdown: float = SLOWDOWN_PRIOR
) -> Any:
    """Compression seconds of a phase (per step, or a farm's total): the profile's
    ``expected`` time, plus ``share`` of what the phase holds beyond it and the assumed
    transfers (``other_seconds``): a busy machine compresses slower than the calibration
    did, a slow link moves bytes slower than assumed. At most ``slowdown`` times the
    profile's time (the rest of the excess is the transfer), and at most the phase."""
    excess = np.clip(phase - expected - other_seconds, 0.0, None)
    return np.minimum(np.minimum(expected + excess * share, slowdown * expected), phase)


def slowdown_evidence(phase: pd.Series, nar: pd.Series, per_call_seconds: float) -> float:
    """How much slower than calibrated the phases show compression to be, from what phases
    cost whatever their size (:func:`slowdown_of` on :func:`sized_sample`)."""
    return slowdown_of(sized_sample(phase, nar), per_call_seconds)


def slowdown_of(sample: tuple[np.ndarray, np.ndarray], per_call_seconds: float) -> float:
    """The slowdown a sample of sized phases (NAR bytes, phase seconds) shows: each phase
    less its bytes at the Theil-Sen slope of phase seconds over NAR bytes (the median of
    pairwise slopes, robust to a few odd steps), the 90th percentile of that (a machine's
    load varies over a run: a per-NAR cost a tenth of the phases show is one it reached),
    less a transfer's own fixed cost, over the profile's cost of one call (a fresh
    encoder's set-up). A transfer costs per byte; a codec's set-up, slowed by a busy
    machine, costs per NAR. At least :data:`SLOWDOWN_PRIOR`; the prior alone with fewer than
    four sized phases."""
    x, y = sample
    if len(x) < 4 or per_call_seconds <= 0:
        return SLOWDOWN_PRIOR
    slope = max(slope_of(sample), 0.0)
    per_call = float(np.quantile(y - slope * x, 0.9))
    return max(SLOWDOWN_PRIOR, (per_call - REQUEST_SECONDS) / per_call_seconds)


SAMPLE_PHASES = 200  # the pairs of a Theil-Sen fit grow as n^2, and a median is as good


def sample_ranks(n: int) -> np.ndarray:
    """Which of ``n`` sized phases, ranked by (NAR bytes, phase seconds), form the sample:
    all of them up to :data:`SAMPLE_PHASES`, else that many spread evenly over the ranks
    (the same whatever order the rows are stored in, in memory or in SQL)."""
    if n <= SAMPLE_PHASES:
        return np.arange(n)
    return np.unique(np.linspace(0, n - 1, SAMPLE_PHASES).round().astype(np.int64))


def sized_sample(phase: pd.Series, nar: pd.Series) -> tuple[np.ndarray, np.ndarray]:
    """(NAR bytes, phase seconds) of the phases with both, at most :data:`SAMPLE_PHASES`
    (:func:`sample_ranks`)."""
    ok = nar.notna() & (nar > 0) & phase.notna() & (phase > 0)
    x, y = nar[ok].to_numpy(float), phase[ok].to_numpy(float)
    order = np.lexsort((y, x))
    keep = order[sample_ranks(len(x))]
    return x[keep], y[keep]


def phase_slope(phase: pd.Series, nar: pd.Series) -> float:
    """What a NAR byte costs the phases (:func:`slope_of` on :func:`sized_sample`)."""
    return slope_of(sized_sample(phase, nar))


def slope_of(sample: tuple[np.ndarray, np.ndarray]) -> float:
    """The Theil-Sen slope of phase seconds over NAR bytes of a sample (the median of
    pairwise slopes, robust to a few odd steps); NaN with fewer than 4."""
    x, y = sample
    if len(x) < 4:
        return math.nan
    i, j = np.triu_indices(len(x), 1)
    dx = x[j] - x[i]
    slopes = (y[j] - y[i])[dx != 0] / dx[dx != 0]
    return float(np.median(slopes)) if len(slopes) else math.nan


def copy_window(steps: pd.DataFrame) -> tuple[pd.Series, pd.Series]:
    """Each step's copy phase (start, end): the tracker's where it saw one, else the copy
    seconds before the step's post-processing."""
    end = steps["end_ts"].astype(float)
    zero = pd.Series(0.0, index=steps.index)
    copy_end = end - steps.get("post_s", zero).astype(float).fillna(0.0)
    copy_start = copy_end - steps.get("copy_s", zero).astype(float).fillna(0.0)
    if "copy_start_ts" in steps and "copy_end_ts" in steps:
        copy_start = steps["copy_start_ts"].astype(float).fillna(copy_start)
        copy_end = steps["copy_end_ts"].astype(float).fillna(copy_end)
    return copy_start, copy_end


def compressing_peak(steps: pd.DataFrame, generation: str) -> int:
    """How many steps' work at most shared one compressing host: a Rust builder compresses
    its own steps' outputs beside its builds (its steps' spans, per machine); the C++ queue
    runner compresses every step's outputs in its copy phases (hydra a40d4286
    build-remote.cc:582, one host). 0 when the table does not say."""
    if steps.empty or not {"start_ts", "end_ts"} <= set(steps.columns):
        return 0
    if generation == "rust":
        if "machine" not in steps:
            return 0
        return peak_concurrency(steps["start_ts"], steps["end_ts"], steps["machine"])
    return peak_concurrency(*copy_window(steps))


def _mean_level(starts: np.ndarray, ends: np.ndarray, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """How many of the intervals ``[starts, ends)`` were open, on average over each window
    ``[a, b]`` (at ``a`` for an empty window): the step function's integral, searched."""
    t = np.concatenate([ends, starts])
    d = np.concatenate([-np.ones(len(ends)), np.ones(len(starts))])
    order = np.lexsort((d, t))  # at one instant, ends before starts
    t, level = t[order], np.cumsum(d[order])
    area = np.concatenate([[0.0], np.cumsum(level[:-1] * np.diff(t))])

    def integral(x: np.ndarray) -> np.ndarray:
        k = np.searchsorted(t, x, side="right") - 1
        kk = np.clip(k, 0, None)
        return np.where(k < 0, 0.0, area[kk] + level[kk] * (x - t[kk]))

    width = b - a
    k = np.searchsorted(t, a, side="right") - 1
    at_a = np.where(k < 0, 0.0, level[np.clip(k, 0, None)])
    with np.errstate(divide="ignore", invalid="ignore"):
        mean = (integral(b) - integral(a)) / width
    return np.where(width > 0, mean, at_a)


PSI_SOME_CAP = 0.9  # a host stalled 90% of the time: 10x slower, as far as PSI can tell


def stall_share(psi: tuple[np.ndarray, np.ndarray], a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """The share of each window ``[a, b]`` in which some task on the host waited for a CPU:
    the increase of the host's PSI ``cpu some`` total (stall seconds, a counter) over the
    window, interpolated between samples (NaN outside them)."""
    ts, total = psi
    with np.errstate(divide="ignore", invalid="ignore"):
        grown = np.interp(b, ts, total) - np.interp(a, ts, total)
        share = grown / (b - a)
    inside = (a >= ts[0]) & (b <= ts[-1]) & (b > a)
    return np.where(inside, np.clip(share, 0.0, 1.0), np.nan)


def cpu_contention(
    steps: pd.DataFrame,
    generation: str,
    runner_cores: float | None,
    psi: dict[str, tuple[np.ndarray, np.ndarray]] | None = None,
) -> pd.Series:
    """Per step, how many times slower than alone CPU contention can make its compression,
    from what else its compressing host did during the step's copy phase (at least 1):

    - a Rust builder compresses its own steps' outputs (presigned mode) beside its other
      steps' builds, and a Nix build may use every core (Nix's ``cores`` setting, all of
      them by default): the mean number of its steps running;
    - the C++ runner compresses every step's outputs in its copy phases (hydra a40d4286
      build-remote.cc:582) on its own cores: the mean number of copy phases over
      ``runner_cores`` (NaN for every step when that is unknown).

    A Rust builder also reports its CPU pressure (PSI ``cpu some``, hydra 14332fbf
    hydra-builder/src/system.rs:116, the status's ``stats.pressure.cpuSome.total``): a host
    whose tasks waited for a CPU a share ``p`` of the copy phase slowed a CPU-bound thread
    about ``1 / (1 - p)``; the larger of the two figures counts (other work on the host, or
    builders sharing one, show only there). A step alone on a calm host gets 1: what its
    phase holds beyond the profile is then not CPU (a slow link, a request's latency), and a
    codec change does not scale it."""
    out = pd.Series(np.nan, index=steps.index)
    if steps.empty or not {"start_ts", "end_ts"} <= set(steps.columns):
        return out
    copy_start, copy_end = copy_window(steps)
    if generation == "rust":
        if "machine" not in steps:
            return out
        host, per_core = steps["machine"].astype(str), 1.0
        busy_start, busy_end = steps["start_ts"].astype(float), steps["end_ts"].astype(float)
    else:
        if not runner_cores or runner_cores <= 0:
            return out
        host, per_core = pd.Series("runner", index=steps.index), float(runner_cores)
        busy_start, busy_end = copy_start, copy_end
    for idx in host.groupby(host).groups.values():
        ok = busy_start[idx].notna() & busy_end[idx].notna() & (busy_end[idx] >= busy_start[idx])
        win = copy_start[idx].notna() & copy_end[idx].notna() & (copy_end[idx] >= copy_start[idx])
        if not ok.any() or not win.any():
            continue
        level = _mean_level(
            busy_start[idx][ok].to_numpy(float), busy_end[idx][ok].to_numpy(float),
            copy_start[idx][win].to_numpy(float), copy_end[idx][win].to_numpy(float),
        )  # fmt: skip
        contention = np.maximum(1.0, level / per_core)
        pressure = (psi or {}).get(str(host[idx[0]])) if generation == "rust" else None
        if pressure is not None:
            p = stall_share(pressure, copy_start[idx][win].to_numpy(float),
                            copy_end[idx][win].to_numpy(float))  # fmt: skip
            slowed = 1.0 / (1.0 - np.minimum(np.nan_to_num(p, nan=0.0), PSI_SOME_CAP))
            contention = np.maximum(contention, slowed)
        out.loc[win[win].index] = contention
    return out


def _cpu_plausible(slope: float, expected_per_byte: pd.Series) -> pd.Series:
    """How far a slower CPU can explain what a NAR byte costs the phases: 1 while the
    phases' per-byte cost is within :data:`SLOWDOWN_PRIOR` of compressing and moving a
    byte at the assumed rates, less as it grows beyond (a CPU 30 times slower than the
    calibration's is not one; a link 30 times slower than assumed is common)."""
    if not math.isfinite(slope) or slope <= 0:
        return pd.Series(1.0, index=expected_per_byte.index)
    implied = slope / expected_per_byte
    return (SLOWDOWN_PRIOR / implied).clip(upper=1.0).fillna(1.0)


def _compression(
    s: pd.DataFrame,
    generation: str,
    profile: CodecProfile,
    phases: tuple[pd.Series, pd.Series, pd.Series],
    facts: SplitFacts,
) -> tuple[pd.Series, pd.Series]:
    """Per step, compression seconds in the copy phase and the CPU work of it
    (:func:`split_copy`); ``phases``: whether a pipeline time is known, the compressing
    part of the phase and the NAR bytes."""
    has_pipe, pipe, nar = phases
    wanted = profile.seconds(nar)
    # what else a NAR byte costs in the phase: the Rust builder's upload phase is compress
    # + PUT; a C++ pipeline (Nix's copy line) is receive + compress + write; a C++ copy
    # phase without it is receive + compress + write + PUT
    put, receive = put_seconds_per_byte(profile), RECEIVE_SECONDS_PER_BYTE
    if generation == "rust":
        other = pd.Series(put, s.index)
    else:
        other = pd.Series(np.where(has_pipe, receive, receive + put), s.index)
    share = other.map(lambda o: compress_share(profile, o))
    slowdown = slowdown_of(facts.sample, float(profile.seconds(SMALL_NAR_BYTES)))
    if facts.peak > 0:  # k single-threaded compressions share at least one core
        slowdown = min(slowdown, SLOWDOWN_PRIOR * facts.peak)
    with_size = compression_in_phase(pipe, wanted, nar * other, share, slowdown)
    compress = with_size.where(nar.notna(), pipe * share).fillna(0.0)
    # the profile's time slowed by the contention seen is CPU work; of the rest, the
    # share a byte's cost gives compression (as the split itself weighed it): a CPU
    # slower than the calibration's, or a slow link the split could not tell apart
    contention = facts.contention.reindex(s.index)
    explained = np.minimum(compress, profile.seconds(nar) * contention)
    explained = explained + (compress - explained) * share * _cpu_plausible(
        slope_of(facts.sample), profile.seconds_per_byte + other
    )
    known = nar.notna() & contention.notna()
    return compress, explained.where(known, compress).fillna(compress)


@dataclass(frozen=True)
class SplitFacts:
    """What :func:`split_copy` needs of the whole table rather than of a row: a sample of
    sized phases (:func:`sized_sample`), the most steps compressing on one host at once
    (:func:`compressing_peak`) and each step's CPU contention (:func:`cpu_contention`, by
    the table's index). :func:`split_facts` finds them in memory; the history engine in
    SQL, and splits its steps a batch at a time with them."""

    sample: tuple[np.ndarray, np.ndarray]
    peak: int
    contention: pd.Series


def copy_pipe(steps: pd.DataFrame) -> tuple[pd.Series, pd.Series, pd.Series]:
    """(copy phase, whether a journal's pipeline time is inside it, the part that
    compresses: the pipeline where there is one, else the whole copy phase), seconds."""
    copy = steps["copy_s"].astype(float).fillna(0.0)
    pipeline = (
        steps["pipeline_s"].astype(float)
        if "pipeline_s" in steps
        else pd.Series(np.nan, steps.index)
    )
    has_pipe = pipeline.notna() & (pipeline <= copy + 1.0)  # a copy phase holds its pipeline
    pipe = pipeline.where(has_pipe, copy).clip(upper=copy.where(copy > 0, pipeline))
    return copy, has_pipe, pipe


def split_facts(
    table: StepTable,
    runner_cores: float | None = None,
    psi: dict[str, tuple[np.ndarray, np.ndarray]] | None = None,
) -> SplitFacts:
    """The :class:`SplitFacts` of a step table in memory."""
    s = table.steps
    _, _, pipe = copy_pipe(s)
    return SplitFacts(
        sized_sample(pipe, s["nar_bytes"].astype(float)),
        compressing_peak(s, table.generation),
        cpu_contention(s, table.generation, runner_cores, psi),
    )


def split_copy(
    table: StepTable,
    profile: CodecProfile | None,
    upload_mode: str | None = None,
    runner_cores: float | None = None,
    psi: dict[str, tuple[np.ndarray, np.ndarray]] | None = None,
    facts: SplitFacts | None = None,
    measured: pd.Series | None = None,
) -> pd.DataFrame:
    """Add ``compress_s``, ``receive_s``, ``upload_s`` and the category columns to the steps.

    ``upload_mode`` is the Rust builders' (:func:`profiler.analyze.evidence.upload_mode`):
    in ``direct`` mode a step's upload phase only streams the NAR to the runner, which
    compresses it later outside the step (hydra 14332fbf state/uploader.rs:291-366), so no
    step time is compression. In presigned mode the builder's upload phase is compression and
    the PUT only: what it holds beyond the profile's compression time and the PUT at the
    assumed rate is shared between the two by what a byte costs each way (a busy builder
    compresses slower than the calibration; a slow link uploads slower than assumed).
    ``runner_cores`` and the builders' ``psi`` (see :func:`cpu_contention`) say how much of
    a step's compression time is CPU work: ``compress_cpu_s``, the part a codec change
    scales (the profile's time slowed by the contention seen, and of the rest the share the
    split gave compression, less where the phases' per-byte cost is beyond what a slower
    CPU could do); the rest (a slow link read as compression) stays. ``facts``: the whole
    table's (:func:`split_facts`), when ``table`` is a batch of a larger one; ``measured``:
    compression seconds per step from sampled CPU (NaN where not measured:
    :mod:`profiler.analyze.cpu_split`), which replace the profile's estimate."""
    s = table.steps.copy()
    copy, has_pipe, pipe = copy_pipe(s)
    nar = s["nar_bytes"].astype(float)
    compress = pd.Series(0.0, s.index)
    s["compress_source"] = "no codec profile: compression not separated from I/O"
    s["compress_cpu_s"] = compress
    if profile is not None and math.isfinite(profile.seconds_per_byte):
        facts = facts or split_facts(table, runner_cores, psi)
        compress, cpu = _compression(s, table.generation, profile, (has_pipe, pipe, nar), facts)
        s["compress_source"] = np.where(
            nar.notna(),
            f"estimated: NAR bytes x {profile.codec} profile, the rest of the phase shared "
            "by per-byte costs",
            f"estimated without NAR sizes: the phase shared by per-byte costs ({profile.codec} "
            "profile vs assumed transfer rates)",
        )
        s["compress_cpu_s"] = cpu
    if measured is not None:
        compress = _use_measured(s, compress, measured.reindex(s.index))
    if table.generation == "rust" and upload_mode == "direct":
        compress = pd.Series(0.0, s.index)
        s["compress_source"] = "direct upload mode: the runner compresses after the step"
        s["compress_cpu_s"] = compress
    s["compress_s"] = compress
    s["upload_s"] = (copy - pipe.fillna(copy)).clip(lower=0.0)
    s["receive_s"] = (pipe.fillna(copy) - compress).clip(lower=0.0)
    s["scheduling_s"] = s["connect_s"].fillna(0.0)
    if "retry_wait_s" in s:
        s["scheduling_s"] += s["retry_wait_s"].fillna(0.0)
    s["io_s"] = s["send_s"].fillna(0.0) + s["receive_s"] + s["upload_s"]
    s["compression_s"] = s["slot_wait_s"].fillna(0.0) + s["compress_s"]
    s["post_total_s"] = s["prepare_s"].fillna(0.0) + s["post_s"].fillna(0.0)
    s["wall_s"] = (
        s["scheduling_s"]
        + s["io_s"]
        + s["compression_s"]
        + s["build_s"].fillna(0.0)
        + s["post_total_s"]
    )
    slot_cols = SLOT_COLUMNS.get(table.generation, SLOT_COLUMNS["cxx"])
    s["slot_s"] = sum(s[c].fillna(0.0) for c in slot_cols)
    return s


def _use_measured(s: pd.DataFrame, compress: pd.Series, measured: pd.Series) -> pd.Series:
    """The steps' compression seconds with the measured ones where there are (all CPU:
    what a codec change scales), and ``compress_source`` saying so."""
    known = measured.notna()
    s["compress_source"] = s["compress_source"].where(
        ~known, "measured: the compressing process' compression CPU samples in the phase"
    )
    s["compress_cpu_s"] = measured.where(known, s["compress_cpu_s"])
    return measured.where(known, compress)


def attribute(table: StepTable, steps: pd.DataFrame) -> Attribution:
    """Totals over all steps, with the queue wait (when observed) in scheduling."""
    return attribute_totals(table, StepTotals.of(steps))


def attribute_totals(table: StepTable, totals: StepTotals) -> Attribution:
    """:func:`attribute` from the steps' totals (the history engine computes them in SQL);
    ``table`` gives the queue wait, the notes and the categories estimated."""
    seconds = {c: totals.sum(col) for c, col in CATEGORY_COLUMN.items()}
    queue = table.queue_seconds if math.isfinite(table.queue_seconds) else 0.0
    seconds["scheduling"] += queue
    total = sum(seconds.values())
    shares = {c: (seconds[c] / total if total > 0 else 0.0) for c in CATEGORIES}
    estimated = dict.fromkeys(CATEGORIES, False)
    estimated["compression"] = totals.sum("compress_s") > 0
    estimated["io"] = estimated["compression"]
    estimated["scheduling"] = queue > 0 and "integral" in table.queue_source
    for category in table.estimated:
        estimated[category] = True
    notes = list(table.notes)
    if queue > 0:
        notes.append(f"queue wait {queue:.1f} step-s: {table.queue_source}")
    unsplit = totals.unsplit_seconds
    if unsplit > 0:
        notes.append(
            f"{unsplit:.1f} step-s of copy phases (receive, compress, upload together) could not "
            "be split: no NAR size for those steps (a journal alone has none for Rust builders: "
            "add the database or status samples) or no codec profile; counted as io, so "
            "compression is absent, not zero"
        )
    observed = math.isfinite(table.queue_seconds)
    return Attribution(
        seconds, shares, estimated, totals.steps, total, queue, notes, unsplit, observed
    )


def breakdown(steps: pd.DataFrame, by: str, queue: pd.Series | None = None) -> pd.DataFrame:
    """Per group of ``by`` (missing keys a group of their own, last): steps, wall
    p50/p90/p99, category shares, and slot time not building (grouped aggregations, not a
    loop over groups: an hourly breakdown of five years has 44,000 of them).

    ``queue``: step-seconds waited for a machine per group (a group no step has is a row of
    its own, e.g. :data:`~profiler.analyze.schema.QUEUED_GROUP`); it is counted in
    scheduling as the headline counts it, and given as ``queue_s`` and ``queue_share``.
    ``step_seconds`` is each group's wall time with its queue wait."""
    if steps.empty and (queue is None or queue.empty):
        return pd.DataFrame()
    summed = ["wall_s", "slot_s", "build_s", *CATEGORY_COLUMN.values()]
    frame = steps[list(dict.fromkeys([by, *summed]))].copy()
    for column in CATEGORY_COLUMN.values():
        frame[column] = frame[column].fillna(0.0)
    groups = frame.groupby(by, dropna=False, sort=True)
    sums = groups[list(dict.fromkeys(summed))].sum()
    wall = groups["wall_s"].quantile(np.array([0.5, 0.9, 0.99])).unstack()
    out = pd.DataFrame(
        {
            "steps": groups.size(),
            "wall_p50_s": wall.get(0.5),
            "wall_p90_s": wall.get(0.9),
            "wall_p99_s": wall.get(0.99),
        },
        index=sums.index,
    )
    waited = None
    if queue is not None and not queue.empty:
        waited = queue.groupby(level=0).sum()
        index = sums.index.append(waited.index.difference(sums.index))
        if pd.api.types.is_numeric_dtype(sums.index) and pd.api.types.is_numeric_dtype(index):
            index = index.sort_values()
        out, sums = out.reindex(index), sums.reindex(index, fill_value=0.0)
        out["steps"] = out["steps"].fillna(0).astype("int64")
        waited = waited.reindex(index, fill_value=0.0)
    total = sums["wall_s"] + (waited if waited is not None else 0.0)
    out["step_seconds"] = total
    for c, col in CATEGORY_COLUMN.items():
        part = sums[col] + (waited if waited is not None and c == "scheduling" else 0.0)
        out[f"{c}_share"] = (part / total).where(total > 0, 0.0)
    if waited is not None:
        out["queue_s"] = waited
        out["queue_share"] = (waited / total).where(total > 0, 0.0)
    slot = sums["slot_s"]
    out["slot_not_building_share"] = (1 - sums["build_s"] / slot).where(slot > 0, 0.0)
    out.index.name = "group"
    return out


def by_window(
    steps: pd.DataFrame, window_seconds: float, queue_waits: pd.DataFrame | None = None
) -> pd.DataFrame:
    """:func:`breakdown` per time window of step end (UTC epoch seconds at window start),
    with the queue wait by when it was waited (``queue_waits``:
    :attr:`~profiler.analyze.schema.StepTable.queue_waits`)."""
    keyed = steps.assign(window=(steps["end_ts"] // window_seconds) * window_seconds)
    queue = None
    if queue_waits is not None and len(queue_waits):
        at = (queue_waits["ts"].astype(float) // window_seconds) * window_seconds
        queue = queue_waits["seconds"].astype(float).set_axis(at)
    return breakdown(keyed, "window", queue)
