"""One call from a stored run to the answer: :func:`analyze`."""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from profiler.analyze.attribution import Attribution, attribute, breakdown, by_window, split_copy
from profiler.analyze.evidence import CodecChoice, choose_codec
from profiler.analyze.farm import FarmTotals, farm_totals, shares
from profiler.analyze.profiles import CodecProfile, canonical, from_bench, profile_for
from profiler.analyze.schema import DURATIONS, STEP_COLUMNS, StepTable
from profiler.analyze.steps import (
    build_step_table,
    handing_over,
    local_worker_slots,
    waited_for_worker,
    waiting_series,
    with_cache_sizes,
    workers_from_samples,
)
from profiler.analyze.verdict import (
    Pressure,
    Verdict,
    decide,
    pressure,
    use_table,
)
from profiler.errors import ProfilerError
from profiler.store import read_run


@dataclass
class Analysis:
    """Everything :func:`analyze` found; DataFrames for notebooks, dicts for JSON."""

    run: str
    generation: str
    codec: str
    profile: CodecProfile | None
    table: StepTable
    steps: pd.DataFrame
    attribution: Attribution
    verdict: Verdict
    pressure: Pressure
    use: pd.DataFrame
    by_machine: pd.DataFrame
    by_system: pd.DataFrame
    by_jobset: pd.DataFrame
    by_window: pd.DataFrame
    profiles: dict[str, CodecProfile] = field(default_factory=dict)
    pressure_series: tuple[np.ndarray, np.ndarray] | None = None  # steps waiting for a machine
    local_workers: int | None = None  # C++ worker slots as observed (None: no limit seen)
    codec_choice: CodecChoice | None = None  # where the codec (and Rust upload mode) came from
    local_workers_source: str = ""  # how local_workers was found (or why it is not known)
    runner_cores: tuple[int, str] = (0, "")  # the C++ runner host's cores, and their source
    calibration_cache: str | None = None  # the binary cache codecs are calibrated on (else corpus)

    def coverage(self) -> dict[str, Any]:
        start, end = self.table.window
        return {
            "window_utc": [start, end],
            "sources": [s.__dict__ for s in self.table.sources],
            "queue_wait": self.table.queue_source,
            "compression": self.profile.source if self.profile else "not separated",
            "notes": self.attribution.notes,
            "estimated": [k for k, v in self.attribution.estimated.items() if v],
        }

    def as_dict(self) -> dict[str, Any]:
        """The JSON document of ``analyze --format json`` (``verdict``, ``attribution``...)."""
        return {
            "run": self.run,
            "generation": self.generation,
            "codec": self.codec,
            "codec_source": self.codec_choice.source if self.codec_choice else "",
            "upload_mode": self.codec_choice.mode if self.codec_choice else None,
            "upload_mode_source": self.codec_choice.mode_source if self.codec_choice else "",
            "local_workers": self.local_workers,
            "local_workers_source": self.local_workers_source,
            "steps": self.attribution.steps,
            "verdict": self.verdict.as_dict(),
            "attribution": self.attribution.as_dict(),
            "attribution_seconds": self.attribution.seconds,
            "attribution_how": {c: self.attribution.how(c) for c in self.attribution.shares},
            "slot_not_building_share": _not_building(self.steps),
            "wall_percentiles_s": _percentiles(self.steps["wall_s"]),
            "use": _records(self.use.reset_index()),
            "by_machine": _records(self.by_machine.reset_index()),
            "coverage": self.coverage(),
        }


def _not_building(steps: pd.DataFrame) -> float:
    slot = float(steps["slot_s"].sum())
    return 1 - float(steps["build_s"].sum()) / slot if slot > 0 else math.nan


def _percentiles(values: pd.Series) -> dict[str, float]:
    if values.empty:
        return {}
    return {f"p{q}": float(values.quantile(q / 100)) for q in (50, 90, 99)}


def _records(df: pd.DataFrame) -> list[dict[str, Any]]:
    return [
        {
            str(k): (None if isinstance(v, float) and not math.isfinite(v) else v)
            for k, v in row.items()
        }
        for row in df.to_dict(orient="records")
    ]


def analyze(
    run_dir: str,
    *,
    profiles_dir: str | None = None,
    codec: str | None = None,
    generation: str | None = None,
    slots: int | None = None,
    window_seconds: float = 3600.0,
    calibrate: bool = True,
    cache_dir: str | None = None,
    local_workers: int | None = None,
    runner_cores: int | None = None,
) -> Analysis:
    """Analyse the run at ``run_dir``.

    Parameters
    ----------
    profiles_dir
        A ``hydra-profiler bench`` result whose codec figures split copy phases (else the
        codec is calibrated here on the built-in corpus, unless ``calibrate`` is False).
    codec
        The codec the farm compressed with (its store URI query or a short form); default:
        from the evidence (``cache_dir``'s narinfos, the journal), else xz at its default
        level, both generations' default (:mod:`profiler.analyze.evidence`).
    cache_dir
        A ``file://`` binary cache the farm wrote, whose narinfos say the method and whose
        NARs (a sample of them) codecs are calibrated on when no bench result has them.
    slots
        Build slots per machine (default: Rust status maxJobs, else the most seen running).
    local_workers
        C++ ``max_local_worker_threads`` as the operator configured it (default: inferred
        from the data where steps waited for one, see :func:`_local_workers`).
    runner_cores
        CPU cores of the C++ runner's host, where local workers compress (default: this
        machine's, assuming the analysis runs on the Hydra host; said so).
    """
    if not os.path.isdir(run_dir):
        raise ProfilerError(f"{run_dir}: no such run directory")
    reader = read_run(run_dir)
    table = with_cache_sizes(build_step_table(reader, generation=generation), cache_dir)
    gen = table.generation
    logs = reader.table("log_events") if "log_events" in reader.tables() else None
    samples = reader.table("samples") if "samples" in reader.tables() else None
    choice = choose_codec(logs, gen, codec, cache_dir)
    codec_name = choice.spec
    profiles = from_bench(profiles_dir) if profiles_dir else {}
    profile, calibration_cache, calibration_note = _profile(
        codec_name, profiles, calibrate, cache_dir
    )
    cores_of = (
        (runner_cores, "given by the operator (--runner-cores)")
        if runner_cores
        else (os.cpu_count() or 1, "this machine's; assumed to be the Hydra host")
    )
    if table.steps.empty:
        totals = farm_totals(samples, gen, profile, choice.mode) if gen in ("cxx", "rust") else None
        if totals is None or sum(totals.seconds.values()) <= 0:
            raise ProfilerError(
                f"{run_dir}: no build steps in the run, and no step-time gauges or counters "
                f"to answer from ({'; '.join(table.notes)})"
            )
        table = _farm_table(table, samples)
        steps = split_copy(table, profile, choice.mode, cores_of[0], builder_psi(samples))
        att = farm_attribution(totals)
    else:
        steps = split_copy(table, profile, choice.mode, cores_of[0], builder_psi(samples))
        att = attribute(table, steps)
    att.notes.append(f"codec {codec_name}: {choice.source}")
    att.notes.extend(f"run store: {w}" for w in reader.warnings)  # skipped damaged records
    if choice.mode is not None:
        att.notes.append(f"Rust upload mode {choice.mode}: {choice.mode_source}")
    att.notes.extend(choice.notes)
    if calibration_note:
        att.notes.append(calibration_note)
    p = pressure(samples, table.window, slots, gen, handing_over(table.steps, gen))
    sampled = p.interval_s if table.estimated and math.isfinite(p.interval_s) else 0.0
    verdict = decide(att, steps, gen, p, logs, _resolution(steps), sampled)
    steps = steps.assign(system=steps["system"].fillna("unknown"))
    jobsets = (
        steps.assign(jobset=steps["jobset"].fillna("unknown"))
        if "jobset" in steps
        else steps.assign(jobset="unknown")
    )
    workers, workers_source = _local_workers(gen, steps, samples, local_workers)
    return Analysis(
        run_dir, gen, codec_name, profile, table, steps, att, verdict, p,
        use_table(p, att, steps, workers),
        breakdown(steps.assign(machine=steps["machine"].fillna("unknown")), "machine"),
        breakdown(steps, "system"),
        breakdown(jobsets, "jobset"),
        by_window(steps, window_seconds),
        profiles,
        _runnable_series(samples, gen),
        workers,
        choice,
        workers_source,
        cores_of,
        calibration_cache,
    )  # fmt: skip


PSI_TOTAL = "machine_pressure_cpu_some_seconds_total"


def builder_psi(samples: pd.DataFrame | None) -> dict[str, tuple[np.ndarray, np.ndarray]] | None:
    """Each Rust builder's PSI ``cpu some`` total over time (seconds some task waited for a
    CPU: /proc/pressure/cpu, read by the builder, hydra 14332fbf hydra-builder/src/system.rs
    :116, and passed on in the status's ``machines.*.stats.pressure.cpuSome.total``, µs),
    as (times, totals) sorted by time; None when no sample has it."""
    if samples is None or samples.empty or "metric" not in samples or "machine" not in samples:
        return None
    rows = samples[(samples["metric"] == PSI_TOTAL) & samples["machine"].notna()]
    out = {}
    for name, g in rows.groupby(rows["machine"].astype(str)):
        g = g.assign(value=pd.to_numeric(g["value"], errors="coerce")).dropna(subset=["value"])
        totals = g.groupby("ts")["value"].last().sort_index()
        if len(totals) >= 2:
            out[str(name)] = (totals.index.to_numpy(float), totals.to_numpy(float))
    return out or None


def _profile(
    codec: str, profiles: dict[str, CodecProfile], calibrate: bool, cache_dir: str | None
) -> tuple[CodecProfile | None, str | None, str]:
    """The farm codec's profile: from the bench result, else calibrated on the farm's own
    NARs when its cache is given (what the codec costs depends on the data: xz is half as
    fast on some NARs as on others), else on the built-in corpus. Returns the profile, the
    cache calibrations use, and a note when the cache could not be used."""
    if cache_dir is None or not calibrate or canonical(codec) in profiles:
        return profile_for(codec, profiles, calibrate_missing=calibrate), None, ""
    try:
        return profile_for(codec, profiles, cache_dir=cache_dir), cache_dir, ""
    except ProfilerError as exc:
        note = f"{exc}: calibrated on the built-in corpus instead"
        return profile_for(codec, profiles), None, note


def _resolution(steps: pd.DataFrame) -> float:
    """How finely the steps were timed: 1 s when every start is a whole second (BuildSteps
    rows, short-format journals; their ends may carry a millisecond overhead), else finer."""
    if steps.empty:
        return 0.0
    times = steps["start_ts"].astype(float).dropna()
    if times.empty:
        return 0.0
    return 1.0 if bool((times == times.round()).all()) else 0.0


def _local_workers(
    generation: str, steps: pd.DataFrame, samples: pd.DataFrame | None, given: int | None
) -> tuple[int | None, str]:
    """C++ local worker slots: the operator's figure, else inferred where steps waited for
    one (a limit never reached cannot be seen, and then does not change a replay)."""
    if generation != "cxx":
        return None, "Rust has no local worker slots (builders compress)"
    if given is not None:
        return given, "given by the operator (--local-workers)"
    peak = local_worker_slots(generation, steps)
    if peak is not None:
        return peak, "most copy phases at once while steps waited for a slot (phase tracker)"
    held = workers_from_samples(samples)
    if held is not None:
        return held, (
            "steps copying from builders while others waited for a slot (status "
            "nrStepsCopyingFrom while nrStepsWaitingForDownloadSlot > 0; hydra a40d4286 "
            "build-remote.cc:560-584)"
        )
    if waited_for_worker(steps):
        return None, "not known: steps waited for a slot but no source shows how many there are"
    return None, "no step waited for a local worker slot: the limit was never reached"


def _farm_table(table: StepTable, samples: pd.DataFrame | None) -> StepTable:
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


def _runnable_series(
    samples: pd.DataFrame | None, generation: str
) -> tuple[np.ndarray, np.ndarray] | None:
    if samples is None or samples.empty or "metric" not in samples:
        return None
    series = waiting_series(samples, generation)
    if series.empty:
        return None
    return series.index.to_numpy(float), series.to_numpy(float)
