"""One call from a stored run to the answer: :func:`analyze`.

The analysis is pure: it reads the stored run and the codec profiles it is given (a bench
result's, or one its caller calibrated: :func:`profiler.bench.profiles.farm_profile`), and
never runs a bench or a calibration. Which codec's profile it needs is in the run's evidence:
:func:`farm_codec` says it before the analysis, as :func:`analyze` will find it.
"""

from __future__ import annotations

import dataclasses
import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from profiler.analyze.attribution import Attribution, attribute, breakdown, by_window, split_copy
from profiler.analyze.cpu import CpuProfile, compressing_process, evidence_line
from profiler.analyze.cpu_split import MeasuredSplit, measured_compression, read_cpu
from profiler.analyze.evidence import CodecChoice, choose_codec
from profiler.analyze.farm import farm_attribution, farm_table, farm_totals
from profiler.analyze.gauges import (
    handing_over,
    local_worker_slots,
    waited_for_worker,
    waiting_series,
    workers_from_samples,
)
from profiler.analyze.history import (
    BATCH_ROWS,
    DEFAULT_MEMORY,
    Progress,
    Splitter,
    Window,
    run_history,
)
from profiler.analyze.schema import QUEUED_GROUP, StepTable
from profiler.analyze.steps import build_step_table, run_generation, with_cache_sizes
from profiler.analyze.verdict import (
    Pressure,
    Verdict,
    decide,
    pressure,
    use_table,
)
from profiler.bench.profiles import CodecProfile, canonical
from profiler.errors import ProfilerError
from profiler.store import RunReader, read_run

if TYPE_CHECKING:
    from profiler.bench.results import StoredResult

Series = tuple[np.ndarray, np.ndarray]  # (times in epoch seconds, values)


@dataclass(frozen=True, kw_only=True)
class Analysis:
    """Everything :func:`analyze` found, and what the renderers show besides; DataFrames for
    notebooks, dicts for JSON. Built once, by keyword, and never changed."""

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
    profiles: Mapping[str, CodecProfile] = field(default_factory=dict)
    pressure_series: Series | None = None  # steps waiting for a machine
    local_workers: int | None = None  # C++ worker slots as observed (None: no limit seen)
    codec_choice: CodecChoice | None = None  # where the codec (and Rust upload mode) came from
    local_workers_source: str = ""  # how local_workers was found (or why it is not known)
    runner_cores: tuple[int, str] = (0, "")  # the C++ runner host's cores, and their source
    calibration_cache: str | None = None  # the binary cache codecs are calibrated on (else corpus)
    running_series: Series | None = None  # jobs running on all machines (status/metrics)
    bench: StoredResult | None = None  # the bench result the profiles came from (codec table)
    wall_percentiles_s: Mapping[str, float] = field(default_factory=dict)  # p50, p90, p99
    slot_not_building_share: float = math.nan  # machine-slot time not spent building
    engine: str = "memory"  # "memory", or "history" (out of core: `steps` has no rows)
    cpu: CpuProfile | None = None  # sampled CPU (collect cpu), None without the cpu tables
    cpu_split: MeasuredSplit | None = None  # the steps whose compression was measured

    def pareto_codecs(self) -> list[str]:
        """The codecs of the bench result no other of its codecs beats on both ratio and
        compression speed, slowest first (none without a bench result)."""
        from profiler.bench import derive

        if self.bench is None or derive.successful(self.bench.rows).empty:
            return []
        return derive.pareto_codecs(derive.overall(self.bench.rows))

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
            "engine": self.engine,
            "slot_not_building_share": self.slot_not_building_share,
            "wall_percentiles_s": dict(self.wall_percentiles_s),
            "use": _records(self.use.reset_index()),
            "by_machine": _records(self.by_machine.reset_index()),
            "by_window": _records(self.by_window.reset_index()),
            "coverage": self.coverage(),
            **({"cpu": self.cpu_dict()} if self.cpu is not None else {}),
        }

    def cpu_dict(self) -> dict[str, Any]:
        """The sampled CPU: window, cores busy and CPU seconds per process and class, and
        the steps whose compression it measured."""
        cpu = self.cpu
        assert cpu is not None
        start, end = cpu.window
        return {
            "window_utc": [start, end],
            "bucket_seconds": cpu.bucket_seconds,
            "sampled": cpu.describe(),
            "processes": {
                p: {"cores_busy": cpu.cores_busy(p), "cpu_seconds": cpu.by_class(p).to_dict()}
                for p in cpu.processes()
            },
            "compression_split": self.cpu_split.as_dict() if self.cpu_split else None,
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


def open_run(run_dir: str | os.PathLike[str]) -> RunReader:
    """The stored run at ``run_dir`` (:func:`profiler.store.read_run`), or a ProfilerError
    saying there is none."""
    if not os.path.isdir(run_dir):
        raise ProfilerError(f"{run_dir}: no such run directory")
    return read_run(run_dir)


def farm_codec(
    reader: RunReader,
    *,
    codec: str | None = None,
    generation: str | None = None,
    cache_dir: str | None = None,
) -> CodecChoice:
    """The codec the farm compressed with, as :func:`analyze` finds it with the same
    arguments: the profile to load or calibrate before analysing."""
    logs = reader.table("log_events") if "log_events" in reader.tables() else None
    return choose_codec(logs, generation or run_generation(reader), codec, cache_dir)


def analyze(
    run: str | os.PathLike[str] | RunReader,
    *,
    profiles: Mapping[str, CodecProfile] | None = None,
    profile: CodecProfile | None = None,
    bench: StoredResult | None = None,
    calibration_cache: str | None = None,
    notes: Sequence[str] = (),
    codec: str | None = None,
    generation: str | None = None,
    slots: int | None = None,
    window_seconds: float = 3600.0,
    cache_dir: str | None = None,
    local_workers: int | None = None,
    runner_cores: int | None = None,
    window: Window | None = None,
) -> Analysis:
    """Analyse a stored run (a run directory, or the run already read), in memory (see
    :func:`analyze_history` for a history too long for that).

    Parameters
    ----------
    profiles
        Codec profiles by label, from a ``hydra-profiler bench`` result
        (:func:`profiler.bench.profiles.from_result`): the farm codec's splits copy phases,
        the others are what codec what-ifs compare with.
    profile
        The farm codec's profile when ``profiles`` has none (calibrated by the caller:
        :func:`profiler.bench.profiles.farm_profile` for the codec :func:`farm_codec` says);
        without either, compression is not separated from I/O.
    bench
        The bench result ``profiles`` came from, kept for the report's codec table.
    calibration_cache
        The binary cache ``profile`` was calibrated on (what-ifs calibrate other codecs on
        it too); ``notes`` are the caller's, for the coverage (a calibration's fallback).
    codec
        The codec the farm compressed with (its store URI query or a short form); default:
        from the evidence (``cache_dir``'s narinfos, the journal), else xz at its default
        level, both generations' default (:mod:`profiler.analyze.evidence`).
    cache_dir
        A ``file://`` binary cache the farm wrote, whose narinfos say the method and the
        NAR sizes of steps the run has none for.
    slots
        Build slots per machine (default: Rust status maxJobs, else the most seen running).
    local_workers
        C++ ``max_local_worker_threads`` as the operator configured it (default: inferred
        from the data where steps waited for one, see :func:`_local_workers`).
    runner_cores
        CPU cores of the C++ runner's host, where local workers compress (default: this
        machine's, assuming the analysis runs on the Hydra host; said so).
    window
        Only the steps that stopped in it, and the samples and events of its time.
    """
    reader = run if isinstance(run, RunReader) else open_run(run)
    if window is not None:
        reader = windowed(reader, window)
    table = with_cache_sizes(build_step_table(reader, generation=generation), cache_dir)
    gen = table.generation
    logs = reader.table("log_events") if "log_events" in reader.tables() else None
    samples = reader.table("samples") if "samples" in reader.tables() else None
    choice = choose_codec(logs, gen, codec, cache_dir)
    codec_name = choice.spec
    profiles = profiles or {}
    profile = _farm_profile(codec_name, profiles, profile)
    cores_of = _runner_cores(runner_cores)
    cpu, cpu_notes = read_cpu(reader)
    measured, why = (
        measured_compression(table, choice.mode, cpu, reader.manifest.get("host"))
        if cpu is not None and not table.steps.empty
        else (None, "")
    )
    if table.steps.empty:
        totals = farm_totals(samples, gen, profile, choice.mode) if gen in ("cxx", "rust") else None
        if totals is None or sum(totals.seconds.values()) <= 0:
            only_cpu = (
                "; it has CPU samples only: collect the runner's data (db, logs, status) into "
                "the same run, or read them with `export RUN cpu_classes`"
                if cpu is not None
                else ""
            )
            metrics_only = (
                "; the C++ runner's /metrics has queue and dispatcher counters only, no step "
                "times (profiler.collect.status.metrics_map.PROM_CXX): add its status JSON "
                "(collect status), its journal (collect logs) or its database (collect db)"
                if gen == "cxx" and samples is not None and not samples.empty
                else ""
            )
            raise ProfilerError(
                f"{reader.path}: no build steps in the run, and no step-time gauges or counters "
                f"to answer from ({'; '.join(table.notes)}){only_cpu}{metrics_only}"
            )
        table = farm_table(table, samples)
        steps = split_copy(table, profile, choice.mode, cores_of[0], builder_psi(samples))
        att = farm_attribution(totals)
    else:
        steps = split_copy(
            table, profile, choice.mode, cores_of[0], builder_psi(samples),
            measured=measured.seconds if measured else None,
        )  # fmt: skip
        att = attribute(table, steps)
    att.notes.append(f"codec {codec_name}: {choice.source}")
    att.notes.extend(f"run store: {w}" for w in reader.warnings)  # skipped damaged records
    if choice.mode is not None:
        att.notes.append(f"Rust upload mode {choice.mode}: {choice.mode_source}")
    att.notes.extend(choice.notes)
    att.notes.extend(notes)
    att.notes.extend(cpu_notes)
    if measured is not None:
        att.measured = measured.how()
    att.notes.extend([measured.note()] if measured else [why] if why else [])
    p = pressure(samples, table.window, slots, gen, handing_over(table.steps, gen))
    sampled = p.interval_s if table.estimated and math.isfinite(p.interval_s) else 0.0
    verdict = decide(att, steps, gen, p, logs, _resolution(steps), sampled)
    if cpu is not None:
        process = compressing_process(gen, choice.mode)
        verdict.evidence.append(
            evidence_line(cpu, process, table.window, p.download_wait_share if gen == "cxx"
                          else math.nan)
        )  # fmt: skip
    steps = steps.assign(system=steps["system"].fillna("unknown"))
    jobsets = (
        steps.assign(jobset=steps["jobset"].fillna("unknown"))
        if "jobset" in steps
        else steps.assign(jobset="unknown")
    )
    workers, workers_source = _local_workers(gen, steps, samples, local_workers)
    return Analysis(
        run=reader.path,
        generation=gen,
        codec=codec_name,
        profile=profile,
        table=table,
        steps=steps,
        attribution=att,
        verdict=verdict,
        pressure=p,
        use=use_table(p, att, steps, workers),
        by_machine=breakdown(
            steps.assign(machine=steps["machine"].fillna("unknown")), "machine", queued(table)
        ),
        by_system=breakdown(steps, "system", queued(table, by_system=True)),
        by_jobset=breakdown(jobsets, "jobset"),
        by_window=by_window(steps, window_seconds, table.queue_waits),
        profiles=profiles,
        pressure_series=_runnable_series(samples, gen),
        local_workers=workers,
        codec_choice=choice,
        local_workers_source=workers_source,
        runner_cores=cores_of,
        calibration_cache=calibration_cache,
        running_series=running_jobs(samples),
        bench=bench,
        wall_percentiles_s=_percentiles(steps["wall_s"]),
        slot_not_building_share=_not_building(steps),
        cpu=cpu,
        cpu_split=measured,
    )


def _runner_cores(runner_cores: int | None) -> tuple[int, str]:
    if runner_cores:
        return runner_cores, "given by the operator (--runner-cores)"
    return os.cpu_count() or 1, "this machine's; assumed to be the Hydra host"


# The time a table's rows are placed at for --since/--until (default ``ts``); None: kept
# whole (the builds are joined to the steps kept).
TIME_COLUMN = {"db_steps": "stop_time", "db_builds": None}


def windowed(reader: RunReader, window: Window) -> RunReader:
    """The run with only the rows of ``window``: steps by ``stopTime`` (as the history
    engine selects them), every other table by its ``ts``."""
    import pyarrow as pa
    import pyarrow.compute as pc

    if window.since is None and window.until is None:
        return reader
    data = {}
    for name, arrow in reader.data.items():
        column = TIME_COLUMN.get(name, "ts")
        if column is None or column not in arrow.column_names:
            data[name] = arrow
            continue
        t = pc.cast(arrow[column], pa.float64())
        keep = pc.is_valid(t)
        if window.since is not None:
            keep = pc.and_(keep, pc.greater_equal(t, window.since))
        if window.until is not None:
            keep = pc.and_(keep, pc.less(t, window.until))
        data[name] = arrow.filter(pc.fill_null(keep, False))
    return dataclasses.replace(reader, data=data)


def analyze_history(
    run_dir: str | os.PathLike[str],
    *,
    profiles: Mapping[str, CodecProfile] | None = None,
    profile: CodecProfile | None = None,
    bench: StoredResult | None = None,
    calibration_cache: str | None = None,
    notes: Sequence[str] = (),
    codec: str | None = None,
    generation: str | None = None,
    window_seconds: float = 3600.0,
    cache_dir: str | None = None,
    local_workers: int | None = None,
    runner_cores: int | None = None,
    window: Window | None = None,
    memory_limit: str = DEFAULT_MEMORY,
    progress: Progress | None = None,
    batch_rows: int = BATCH_ROWS,
    splitter: Splitter | None = None,
    scratch_dir: str | None = None,
) -> Analysis:
    """:func:`analyze` of a run's BuildSteps history out of core (DuckDB over its Parquet,
    bounded memory: :mod:`profiler.analyze.history`). The result has no step rows
    (``steps`` is empty, ``engine`` is ``history``): the totals, shares, percentiles,
    breakdowns and the verdict are the in-memory engine's on the same steps; what-ifs,
    which replay the steps, are not made. ``splitter``: where the per-step split runs
    (:func:`profiler.analyze.cluster.on_cluster` for a Dask cluster, whose workers must see
    ``scratch_dir``)."""
    profiles = profiles or {}
    cores = _runner_cores(runner_cores)
    found = run_history(
        os.fspath(run_dir),
        profile=None,
        codec=codec,
        generation=generation,
        runner_cores=cores[0],
        local_workers=local_workers,
        window_seconds=window_seconds,
        window=window or Window(),
        memory_limit=memory_limit,
        batch_rows=batch_rows,
        splitter=splitter,
        scratch_dir=scratch_dir,
        cache_dir=cache_dir,
        progress=progress,
        profile_for=lambda spec: _farm_profile(spec, profiles, profile),
    )
    found.attribution.notes.extend(notes)
    wall = found.totals
    slot = wall.sum("slot_s")
    return Analysis(
        run=os.fspath(run_dir),
        generation=found.table.generation,
        codec=found.codec_choice.spec,
        profile=found.profile,
        table=found.table,
        steps=found.table.steps,
        attribution=found.attribution,
        verdict=found.verdict,
        pressure=Pressure(),
        use=found.use,
        by_machine=found.breakdowns["machine"],
        by_system=found.breakdowns["system"],
        by_jobset=found.breakdowns["jobset"],
        by_window=found.breakdowns["window"],
        profiles=profiles,
        local_workers=found.local_workers[0],
        codec_choice=found.codec_choice,
        local_workers_source=found.local_workers[1],
        runner_cores=cores,
        calibration_cache=calibration_cache,
        bench=bench,
        wall_percentiles_s=found.wall_percentiles_s,
        slot_not_building_share=1 - wall.sum("build_s") / slot if slot > 0 else math.nan,
        engine="history",
    )


def _farm_profile(
    codec: str, profiles: Mapping[str, CodecProfile], given: CodecProfile | None
) -> CodecProfile | None:
    """The farm codec's profile: the bench result's, else the one the caller calibrated
    (refused when it is another codec's: its split would be that codec's)."""
    label = canonical(codec)
    if label in profiles:
        return profiles[label]
    if given is not None and given.codec != label:
        raise ProfilerError(
            f"the profile given is {given.codec}'s, but the farm's codec is {label}"
        )
    return given


PSI_TOTAL = "machine_pressure_cpu_some_seconds_total"


def queued(table: StepTable, *, by_system: bool = False) -> pd.Series | None:
    """The queue wait as a breakdown's ``queue`` (None when not observed): per system when
    ``by_system``, where the source says which system a wait was for (Rust's
    ``job_wait_time_seconds`` is labelled with the step's system: hydra 14332fbf
    state/queue.rs:514-515; C++ shares the runnable gauge by its per-type counts, whose
    types are ``system:features``), the rest as :data:`QUEUED_GROUP`; by machine all of it
    is :data:`QUEUED_GROUP`: steps wait before any machine is chosen."""
    if not (math.isfinite(table.queue_seconds) and table.queue_seconds > 0):
        return None
    waits = table.queue_waits
    if by_system and len(waits) and waits["machine_type"].notna().any():
        groups = waits["machine_type"].astype(object).where(waits["machine_type"].notna(), None)
        systems = [str(g).split(":")[0] if g is not None else QUEUED_GROUP for g in groups]
        return waits["seconds"].astype(float).set_axis(systems)
    return pd.Series([table.queue_seconds], index=[QUEUED_GROUP])


def builder_psi(samples: pd.DataFrame | None) -> dict[str, Series] | None:
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


def _runnable_series(samples: pd.DataFrame | None, generation: str) -> Series | None:
    if samples is None or samples.empty or "metric" not in samples:
        return None
    series = waiting_series(samples, generation)
    if series.empty:
        return None
    return series.index.to_numpy(float), series.to_numpy(float)


def running_jobs(samples: pd.DataFrame | None) -> Series | None:
    """Jobs running on all machines over time, from ``machine_current_jobs`` samples.

    Parameters
    ----------
    samples : pandas.DataFrame or None
        A run's ``samples`` table (``metric``, ``machine``, ``ts``, ``value``, ``source``).

    Returns
    -------
    tuple of numpy.ndarray or None
        Times (epoch seconds) and the sum over machines at each, from the one source with
        the most samples of the metric (status and metrics may both report it); None if
        there is no such sample.
    """
    if samples is None or samples.empty or "metric" not in samples:
        return None
    rows = samples[samples["metric"] == "machine_current_jobs"]
    if rows.empty:
        return None
    if "source" in rows and rows["source"].nunique() > 1:
        best = rows["source"].value_counts().index[0]
        rows = rows[rows["source"] == best]
    series = rows.groupby("ts")["value"].sum().sort_index()
    return series.index.to_numpy(float), series.to_numpy(float)
