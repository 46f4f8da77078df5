"""What-if: replay an analysed run in the simulator, change one thing, compare.

The step table becomes the simulator's input (:mod:`profiler.analyze.simulate`): observed phase
durations, machines and their slots, local worker slots, and release times. Hydra records no
step's release (runnable) time, so it is reconstructed: the gauge of steps waiting for a machine
is inverted (steps become runnable in the order they are dispatched, so the k-th dispatched step
was released when released-so-far = waiting + dispatched first reached k), to within a sample
interval; without samples a step is taken as released when it was dispatched. Both generations'
``startTime`` is the dispatch, not the release (Rust sets it when the job is created: hydra
14332fbf subprojects/hydra-queue-runner/src/state/mod.rs:880). Dependencies are not recorded
either: a step released just after another ended is taken to depend on it
(:func:`release_triggers`), so in the simulation it starts when that step ends there; other
steps keep their observed release, so gains from changes that would release them sooner are not
projected. The dispatcher's own lag (its rounds, and the Rust runner's 500 ms pause between
them) is not in the table either: one per-step delay is fitted to the observed dispatch times
(:mod:`profiler.analyze.dispatch_fit`) and kept in every projection.
"""

from __future__ import annotations

import dataclasses
import math
import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from profiler.analyze import dispatch_fit
from profiler.analyze import simulate as sim
from profiler.analyze.attribution import cpu_contention
from profiler.analyze.gauges import waited_for_worker
from profiler.bench.profiles import CodecProfile, canonical, profile_for
from profiler.errors import ProfilerError, UsageError

if TYPE_CHECKING:
    from profiler.analyze.analysis import Analysis

STORAGE_USD_PER_TB_MONTH = 23.0  # S3 standard, as the bench's operator view assumes


@dataclass(frozen=True)
class Change:
    """One what-if change: ``kind`` (codec, compress, workers, machines, upload) and value."""

    kind: str
    value: Any
    label: str


MAX_COMPRESS_FACTOR = 100.0
MAX_MACHINES = 10_000
MAX_WORKERS = 100_000


def parse_change(text: str) -> Change:
    """``codec=zstd:19``, ``compress=0.8``, ``workers=8``, ``machines=+2``, ``upload=100MB/s``.

    Every value is checked here, so a change the simulator cannot run is a usage error
    before any analysis, with the reason."""
    key, sep, value = text.partition("=")
    key, value = key.strip(), value.strip()
    if not sep or not value:
        raise UsageError(f"--whatif {text!r}: expected KEY=VALUE (see --help)")
    parse = _PARSERS.get(key)
    if parse is None:
        raise UsageError(
            f"--whatif {text!r}: unknown change {key!r} (codec, compress, workers, machines, "
            "upload)"
        )
    try:
        return parse(value)
    except (ValueError, UsageError) as exc:
        raise UsageError(f"--whatif {text!r}: {exc}") from None


def _codec_change(value: str) -> Change:
    label = canonical(value)
    return Change("codec", label, f"codec {label}")


def _compress_change(value: str) -> Change:
    try:
        factor = float(value)
    except ValueError:
        raise ValueError("compress=FACTOR needs a number, e.g. 0.8") from None
    if not 0 <= factor <= MAX_COMPRESS_FACTOR:  # also false for nan
        raise ValueError(f"the factor must be from 0 to {MAX_COMPRESS_FACTOR:g}, got {value}")
    return Change("compress", factor, f"compression time x{factor:g}")


def _workers_change(value: str) -> Change:
    if not re.fullmatch(r"\+?\d+", value):
        raise ValueError("workers=N needs a whole number of local worker slots, e.g. 8")
    n = int(value)
    if not 1 <= n <= MAX_WORKERS:
        raise ValueError(f"local worker slots must be from 1 to {MAX_WORKERS:,}, got {n}")
    return Change("workers", n, f"{n} local worker slots")


def _machines_change(value: str) -> Change:
    m = re.fullmatch(r"([+-]?)(\d+)", value)
    if m is None:
        raise ValueError("machines= needs +N, -N or N (whole numbers)")
    sign, n = m.group(1), int(m.group(2))
    if n == 0:
        raise ValueError(
            "machines=0 would leave no machines" if not sign else "adds or removes no machine"
        )
    if n > MAX_MACHINES:
        raise ValueError(f"at most {MAX_MACHINES:,} machines")
    return Change("machines", (sign, n), f"machines {sign}{n}")


def _upload_change(value: str) -> Change:
    from profiler.units import parse_bits_per_second, parse_bytes

    rate = value.removesuffix("/s")
    bits = "bit" in rate.lower() or rate.lower().endswith("bps")
    per_s = parse_bits_per_second(rate) / 8 if bits else float(parse_bytes(rate))
    if not (math.isfinite(per_s) and per_s > 0):
        raise ValueError("the upload bandwidth must be a positive, finite rate, e.g. 100MB/s")
    return Change("upload", per_s, f"upload {per_s / 1e6:g} MB/s")


_PARSERS = {
    "codec": _codec_change,
    "compress": _compress_change,
    "workers": _workers_change,
    "machines": _machines_change,
    "upload": _upload_change,
}


@dataclass(frozen=True)
class Releases:
    """When each step (table order) became runnable, how that was found, and to within how
    many seconds (0: taken as its dispatch, so no release trigger can be inferred)."""

    times: np.ndarray
    source: str
    resolution_s: float


def release_times(a: Analysis) -> Releases:
    """Per step (table order), when it became runnable (see the module docstring)."""
    steps = a.steps
    start = steps["start_ts"].to_numpy(float)
    gauge = a.pressure_series
    if gauge is None or len(gauge[0]) < 2:
        return Releases(start.copy(), "dispatch times (no runnable-steps samples)", 0.0)
    ts, runnable_n = gauge
    order = np.argsort(start, kind="stable")
    dispatched = np.searchsorted(np.sort(start), ts, side="right")
    released = np.maximum.accumulate(runnable_n + dispatched)
    release = start.copy()
    prev = np.concatenate([[ts[0] - (ts[1] - ts[0])], ts[:-1]])
    for k, i in enumerate(order, start=1):
        j = int(np.searchsorted(released, k, side="left"))
        if j < len(ts):
            release[i] = min(start[i], (prev[j] + ts[j]) / 2)
    interval = float(np.median(np.diff(ts)))
    return Releases(
        release, "runnable-steps gauge inverted (to within a sample interval)", interval
    )


CLOCK_SLACK_S = 0.05
"""How far a step's recorded end may lie after its dependant's recorded start: the two come
from different records (the end from the step's last log line or row, the start from the
dependant's first); they are a few milliseconds apart either way in the testbed's runs."""


def release_triggers(
    keys: pd.Series,
    release: np.ndarray,
    end: np.ndarray,
    tolerance_s: float,
    start: np.ndarray | None = None,
) -> list[list[str]]:
    """Per step, the step whose end released it, when one ended just before (else none).

    Hydra records no dependencies, but a step that became runnable within ``tolerance_s``
    after another step ended (and not with the first wave) was, most likely, waiting for it:
    the simulator then releases it when that step ends in the simulation, so a change that
    finishes steps sooner also starts their dependants sooner. A release time known to
    within a resolution (``tolerance_s`` is twice it and a margin) may lie before the
    trigger's end by up to half the tolerance: the inverted gauge is mid-interval.
    A dependency has ended before its dependant is dispatched, so with ``start`` (dispatch
    times) only a step that ended by then (give or take :data:`CLOCK_SLACK_S`, the skew
    between two steps' records) can be the trigger, and of those the one that ended nearest
    the dispatch (a step not kept waiting is dispatched as soon as it is released). Without
    that bound a step ending just after a dependant's dispatch was taken as its trigger, and
    the chains it made serial lengthened the replay by 15%.
    """
    if not np.isfinite(release).any():
        return [[] for _ in release]
    order = np.argsort(end, kind="stable")
    ends = end[order]
    first_wave = np.nanmin(release) + tolerance_s
    out: list[list[str]] = []
    for i, r in enumerate(release):
        if not np.isfinite(r) or r <= first_wave:
            out.append([])
            continue
        latest = r + tolerance_s / 2
        anchor = latest
        if start is not None and np.isfinite(start[i]):
            latest = min(latest, start[i] + CLOCK_SLACK_S)
            anchor = start[i]
        lo = int(np.searchsorted(ends, r - tolerance_s, side="left"))
        hi = int(np.searchsorted(ends, latest, side="right"))
        # only a step that ended before this one can have released it: every inferred edge
        # points to an earlier end, so the inferred dependencies can never form a cycle
        best, gap = -1, math.inf
        for j in range(hi - 1, lo - 1, -1):
            if order[j] == i or not ends[j] < end[i]:
                continue
            if abs(ends[j] - anchor) < gap:
                best, gap = j, abs(ends[j] - anchor)
            elif ends[j] < anchor:
                break  # ends only get farther below the anchor
        out.append([str(keys.iloc[order[best]])] if best >= 0 else [])
    return out


def sim_steps(a: Analysis) -> pd.DataFrame:
    """The step table in the simulator's columns (with inferred release triggers)."""
    s = a.steps
    releases = release_times(a)
    release = releases.times
    out = pd.DataFrame(
        {
            "step": s["step"],
            "machine": s["machine"].fillna("").astype(str),
            "system": s["system"].fillna("unknown").astype(str),
            "release_ts": release,
            "start_ts": s["start_ts"].astype(float),
            "end_ts": s["end_ts"].astype(float),
            "compressed_bytes": s["compressed_bytes"].astype(float),
            "nar_bytes": s["nar_bytes"].astype(float),
        }
    )
    for column in ("prepare_s", "connect_s", "send_s", "build_s", "slot_wait_s", "receive_s",
                   "compress_s", "upload_s", "post_s"):  # fmt: skip
        out[column] = s[column].astype(float).fillna(0.0) if column in s else 0.0
    out["write_s"] = 0.0
    if "compress_cpu_s" in s:  # what a codec change scales (_recompressed)
        out["compress_cpu_s"] = s["compress_cpu_s"].astype(float).fillna(out["compress_s"])
    resolution = releases.resolution_s
    if resolution > 0 and math.isfinite(resolution):
        out["deps"] = release_triggers(
            out["step"],
            release,
            out["end_ts"].to_numpy(float),
            2 * resolution + 0.2,
            out["start_ts"].to_numpy(float),
        )
    retry = (s["retry_wait_s"].fillna(0.0) > 0).to_numpy() if "retry_wait_s" in s else None
    if retry is not None and retry.any():
        # a retry waits out its back-off (retryInterval x retryBackoff^(tries-1)) counted
        # among the runnable steps (hydra a40d4286 builder.cc:62-67 sets `after`, then
        # makeRunnable, and dispatcher.cc:184 skips it; 14332fbf state/mod.rs:2255-2257
        # set_after, skipped by state/queue.rs:502-509), so the inverted gauge releases it
        # with the first attempt; the back-off is the farm's policy, not its speed:
        # released when it was dispatched
        out.loc[retry, "release_ts"] = out.loc[retry, ["release_ts", "start_ts"]].max(axis=1)
        if "deps" in out:
            out["deps"] = [[] if r else d for r, d in zip(retry, out["deps"], strict=True)]
    out.attrs["release_source"] = releases.source
    out.attrs["retries"] = int(retry.sum()) if retry is not None else 0
    return out


def sim_config(a: Analysis, steps: pd.DataFrame, slots: int | None = None) -> sim.SimConfig:
    """Machines as observed, with their slots (``slots``, else the observed capacity)."""
    machines = max(1, steps["machine"].replace("", np.nan).nunique())
    per_machine = slots
    if per_machine is None:
        cap = a.pressure.capacity
        per_machine = max(1, round(cap / machines)) if math.isfinite(cap) else 1
    if a.generation == "rust":
        return sim.config_from_steps(steps, "rust", per_machine, None)
    return sim.config_from_steps(steps, "cxx", per_machine, a.local_workers)


def effective_workers(a: Analysis, wanted: int) -> tuple[int, str]:
    """Local worker slots that can make progress at once: each compresses on the runner's
    CPU for the share of its copy phase that is compression, so beyond ``cores / share``
    slots more workers only share the same cores (the replay models slots, not CPUs)."""
    cores, source = a.runner_cores
    s = a.steps
    compress = float(s["compress_s"].fillna(0).sum()) if "compress_s" in s else 0.0
    moving = sum(float(s[c].fillna(0).sum()) for c in ("receive_s", "upload_s") if c in s)
    share = compress / (compress + moving) if compress + moving > 0 else 0.0
    if share <= 0 or not cores:
        return wanted, "local workers: no compression seen in the copy phases; no CPU cap"
    cap = max(1, round(cores / share))
    if wanted <= cap:
        return wanted, (
            f"local workers: {wanted} fit the runner's {cores} cores ({source}) at "
            f"{100 * share:.0f}% compression per copy phase"
        )
    return cap, (
        f"local workers: {wanted} asked, but copy phases are {100 * share:.0f}% compression "
        f"on the runner's {cores} cores ({source}): at most {cap} make progress at once, so "
        f"{cap} are simulated"
    )


def uncontended(a: Analysis, workers: int) -> np.ndarray | None:
    """Per step (table order), the factor fewer local workers scale its compression's CPU
    part by: a C++ copy phase compresses on the runner's cores (hydra a40d4286
    build-remote.cc:582), shared by the copy phases running beside it, so a step's observed
    compression is slowed by ``max(1, level / cores)`` (``level``: the mean number of copy
    phases during it, :func:`profiler.analyze.attribution.cpu_contention`); with ``workers``
    slots at most that many run at once, so the slowdown becomes
    ``max(1, min(level, workers) / cores)``. None when the cores are unknown or no step was
    slowed; more workers than were ever busy change nothing here."""
    cores = a.runner_cores[0]
    if a.generation != "cxx" or not cores or a.steps.empty:
        return None
    observed = cpu_contention(a.steps, "cxx", cores).to_numpy(float)
    observed = np.where(np.isfinite(observed) & (observed >= 1), observed, 1.0)
    if not (observed > 1).any():
        return None
    level = observed * cores
    return np.maximum(1.0, np.minimum(level, workers) / cores) / observed


DAY_SECONDS = 86400.0


@dataclass(frozen=True)
class CostBasis:
    """What a fleet cost's daily and monthly figures are extrapolated from: the span of the
    steps whose NAR bytes were counted (epoch seconds), the bytes, and how many steps had a
    size."""

    start: float
    end: float
    nar_bytes: float
    sized_steps: int
    steps: int

    @property
    def span_seconds(self) -> float:
        return self.end - self.start

    def describe(self) -> str:
        """One sentence saying where the per-day figures come from and what they miss."""
        from profiler.units import format_bytes, format_seconds, format_utc_range

        span = self.span_seconds
        text = (
            f"extrapolated to a day and a month from {format_seconds(span)} of steps "
            f"({format_utc_range(self.start, self.end)}): {format_bytes(self.nar_bytes)} of "
            f"NAR in {self.sized_steps} of {self.steps} steps"
        )
        if span < DAY_SECONDS:
            text += (
                f", x{DAY_SECONDS / span:,.0f} for a day: a span shorter than a day misses the "
                "farm's daily cycle, so these scale this window's rate, they do not forecast"
            )
        if self.sized_steps < self.steps:
            text += "; steps without a size are not counted, so the figures are low"
        return text

    def as_dict(self) -> dict[str, Any]:
        return {
            "start_utc": self.start,
            "end_utc": self.end,
            "span_seconds": self.span_seconds,
            "nar_bytes": self.nar_bytes,
            "sized_steps": self.sized_steps,
            "steps": self.steps,
            "describe": self.describe(),
        }


def cost_basis(a: Analysis) -> CostBasis | None:
    """The span and bytes :func:`fleet_cost` extrapolates from (None when it cannot)."""
    start, end = a.table.window
    sizes = a.steps["nar_bytes"]
    nar = float(sizes.sum())
    if not (end - start > 0 and nar > 0):
        return None
    return CostBasis(float(start), float(end), nar, int(sizes.notna().sum()), len(a.steps))


@dataclass
class Projection:
    """A what-if: the replay's validation, the comparison table and the fleet cost (with
    the span it is extrapolated from)."""

    label: str
    validation: sim.Validation
    table: pd.DataFrame
    cost: pd.DataFrame
    notes: list[str] = field(default_factory=list)
    basis: CostBasis | None = None

    def as_dict(self) -> dict[str, Any]:
        def clean(df: pd.DataFrame) -> list[dict[str, Any]]:
            return [
                {str(k): (None if isinstance(v, float) and not math.isfinite(v) else v)
                 for k, v in row.items()}
                for row in df.to_dict(orient="records")
            ]  # fmt: skip

        v = self.validation
        return {
            "change": self.label,
            "replay": {
                "observed_makespan_s": v.observed_makespan_s,
                "simulated_makespan_s": v.simulated_makespan_s,
                "makespan_rel_error": v.makespan_rel_error,
                "end_mae_s": v.end_mae_s,
            },
            "projection": clean(self.table),
            "fleet_cost": clean(self.cost),
            "fleet_cost_basis": self.basis.as_dict() if self.basis else None,
            "notes": self.notes,
        }


def fleet_cost(
    basis: CostBasis | None, current: CodecProfile | None, new: CodecProfile | None
) -> pd.DataFrame:
    """CPU-hours a day compressing, storage and egress a month, at the NAR rate of ``basis``
    (:func:`cost_basis`; no rows without one)."""
    if basis is None:
        return pd.DataFrame(columns=["metric", "current", "projected"])
    daily = basis.nar_bytes / basis.span_seconds * DAY_SECONDS
    rows = []
    for name, fn in (
        ("nar_gb_per_day", lambda p: daily / 1e9),
        ("compress_cpu_hours_per_day", lambda p: daily * p.seconds_per_byte / 3600),
        ("stored_tb_per_month", lambda p: daily * 30 * p.ratio / 1e12),
        ("storage_usd_per_month", lambda p: daily * 30 * p.ratio / 1e12 * STORAGE_USD_PER_TB_MONTH),
        ("egress_tb_per_month_per_download", lambda p: daily * 30 * p.ratio / 1e12),
    ):
        cur = fn(current) if current is not None else math.nan
        new_v = fn(new) if new is not None else cur
        rows.append((name, cur, new_v))
    return pd.DataFrame(rows, columns=["metric", "current", "projected"])


def _changes(
    a: Analysis, change: Change, config: sim.SimConfig
) -> tuple[dict[str, Any], CodecProfile | None, list[str]]:
    notes: list[str] = []
    new_profile = a.profile
    if change.kind == "codec":
        if a.profile is None:
            raise UsageError("--whatif codec=...: the run's codec has no profile (give --profiles)")
        new_profile = profile_for(change.value, a.profiles, cache_dir=a.calibration_cache)
        assert new_profile is not None
        notes.append(
            f"{a.profile.codec}: {a.profile.source}; {new_profile.codec}: {new_profile.source}"
        )
        if new_profile.fixed_seconds or a.profile.fixed_seconds:
            notes.append(
                "compression time per step scaled by the two profiles at that step's NAR size "
                f"(set-up {a.profile.fixed_seconds:.3g} s vs {new_profile.fixed_seconds:.3g} s "
                "per NAR, plus bytes x rate)"
            )
        unsized = int(a.steps["nar_bytes"].isna().sum())
        if unsized:
            notes.append(
                f"{unsized} of {len(a.steps)} steps have no NAR size (give --cache with the "
                "farm's narinfos): their compression was split from their phase by per-byte "
                "costs, so their projection is as uncertain as that split"
            )
        return (
            {
                "compress_per_step": (a.profile, new_profile),
                "size_factor": new_profile.ratio / a.profile.ratio,
            },
            new_profile,
            notes,
        )
    if change.kind == "compress":
        return {"compress_factor": change.value}, new_profile, notes
    if change.kind == "workers":
        workers, note = effective_workers(a, change.value)
        notes.append(note)
        out: dict[str, Any] = {"local_workers": workers}
        factor = uncontended(a, workers)
        if factor is not None:
            out["compress_scale"] = factor
            slowed = float((factor < 1).mean())
            notes.append(
                f"with {workers} local workers the runner's cores are shared by fewer copy "
                f"phases: the CPU part of {100 * slowed:.0f}% of steps' compression scaled by "
                f"{float(factor[factor < 1].mean()):.2f} on average (its contention then / now)"
                if slowed
                else "the runner's cores were not oversubscribed: compression times kept"
            )
        return out, new_profile, notes
    if change.kind == "upload":
        return {"upload_bytes_per_second": change.value}, new_profile, notes
    sign, n = change.value
    machines = dict(config.machines)
    slots, systems = next(iter(machines.values()))
    target = len(machines) + n if sign == "+" else len(machines) - n if sign == "-" else n
    if target < 1:
        raise UsageError(f"--whatif machines: would leave {target} machines")
    names = list(machines)
    while len(machines) > target:
        machines.pop(names.pop())
    i = 1
    while len(machines) < target:
        machines[f"added-{i}"] = (slots, systems)
        i += 1
    return {"machines": machines}, new_profile, notes


def _recompressed(steps: pd.DataFrame, old: CodecProfile, new: CodecProfile) -> pd.DataFrame:
    """The steps with each compression time scaled by what the two codecs cost at its NAR
    size. Only the part CPU work explains (``compress_cpu_s``: the profile's time, slowed by
    the contention its host saw) scales; the rest of the estimate (a slow link or a per-call
    overhead) is kept as it is. A step without a size is taken at the size the old profile
    needs for its compression time (:func:`implied_nar_bytes`): scaling by the per-byte
    rates alone would give a small NAR the new codec's per-byte cost without the old one's
    set-up cost (xz's 2 ms a call against zstd's 0.07 ms made a 0.1 s step 30 s)."""
    nar = steps["nar_bytes"].to_numpy(float)
    sized = np.isfinite(nar) & (nar > 0)
    nar = np.where(sized, nar, implied_nar_bytes(old, _cpu_seconds(steps).to_numpy(float)))
    before = np.asarray(old.seconds(nar), float)
    with np.errstate(divide="ignore", invalid="ignore"):
        factor = np.where(before > 0, np.asarray(new.seconds(nar), float) / before, np.nan)
    per_byte = new.seconds_per_byte / old.seconds_per_byte
    return _rescaled(steps, np.nan_to_num(np.where(np.isfinite(factor), factor, per_byte), nan=1.0))


def _cpu_seconds(steps: pd.DataFrame) -> pd.Series:
    """The CPU part of each step's compression estimate (the whole estimate without it)."""
    cpu = steps["compress_cpu_s"] if "compress_cpu_s" in steps else steps["compress_s"]
    return cpu.fillna(steps["compress_s"]).astype(float)


def _rescaled(steps: pd.DataFrame, factor: np.ndarray) -> pd.DataFrame:
    """The steps with the CPU part of each compression time (``compress_cpu_s``) scaled."""
    out = steps.copy()
    cpu = _cpu_seconds(out)
    out["compress_s"] = out["compress_s"] - cpu + cpu * factor
    return out


def implied_nar_bytes(profile: CodecProfile, seconds: np.ndarray) -> np.ndarray:
    """The NAR size whose compression ``profile`` says takes ``seconds`` (0 below one call's
    set-up cost), inverted on a log grid of sizes (the profile's time grows with size)."""
    grid = np.concatenate([[0.0], np.logspace(2, 11, 400)])
    times = np.maximum.accumulate(np.asarray(profile.seconds(grid), float))
    t = np.nan_to_num(np.asarray(seconds, float), nan=0.0)
    inside = np.interp(t, times, grid)
    beyond = grid[-1] + (t - times[-1]) / profile.seconds_per_byte
    return np.where(t > times[-1], beyond, inside)


class ProjectionError(ProfilerError):
    """A what-if the run's data cannot support (said as a note, not a crash)."""


def check_projectable(a: Analysis, change: Change) -> None:
    """Refuse, with the reason, a projection the data cannot support."""
    if a.steps.empty:
        raise ProjectionError(
            "the run has no per-step rows (status and metrics only): a replay needs the "
            "database, its tracker or the journal"
        )
    if change.kind == "workers":
        if a.generation != "cxx":
            raise ProjectionError(
                "Rust builders compress themselves: there are no local worker slots "
                "(try machines=+N)"
            )
        if a.local_workers is None and waited_for_worker(a.steps, above_s=0.0):
            raise ProjectionError(
                "steps waited for a local worker slot but the number of slots is not known "
                "(give --local-workers N: hydra-queue-runner's max_local_worker_threads)"
            )


def project(
    a: Analysis,
    change: Change,
    *,
    slots: int | None = None,
    dispatch: dispatch_fit.DispatchFit | None = None,
) -> Projection:
    """Replay ``a`` in the simulator, apply ``change``, and compare.

    ``dispatch``: the run's fitted dispatch delay (:func:`fitted_dispatch`), when several
    projections share it; else it is fitted here. Raises :class:`ProjectionError` when the
    run cannot support it (no per-step rows, an unknown local worker count that mattered, or
    a replay that failed)."""
    check_projectable(a, change)
    try:
        return _project(a, change, slots, dispatch)
    except ProfilerError:
        raise
    except (ValueError, KeyError, IndexError, ZeroDivisionError) as exc:
        raise ProjectionError(f"the replay failed: {exc}") from exc


def project_all(
    a: Analysis, changes: list[Change], *, slots: int | None = None
) -> tuple[list[Projection], list[tuple[str, str]]]:
    """Every projection that can be made, and (label, reason) for those that cannot."""
    done, failed = [], []
    dispatch = None
    for change in changes:
        try:
            check_projectable(a, change)
            if dispatch is None:
                dispatch = fitted_dispatch(a, slots)
            done.append(project(a, change, slots=slots, dispatch=dispatch))
        except ProfilerError as exc:
            failed.append((change.label, str(exc)))
    return done, failed


def fitted_dispatch(a: Analysis, slots: int | None = None) -> dispatch_fit.DispatchFit:
    """The dispatch delay the replay of ``a`` runs with (:mod:`.dispatch_fit`)."""
    steps = sim_steps(a)
    try:
        return dispatch_fit.fit(steps, sim_config(a, steps, slots))
    except (ValueError, KeyError, IndexError, ZeroDivisionError) as exc:
        raise ProjectionError(f"the replay failed: {exc}") from exc


def _project(
    a: Analysis, change: Change, slots: int | None, dispatch: dispatch_fit.DispatchFit | None
) -> Projection:
    steps = sim_steps(a)
    config = sim_config(a, steps, slots)
    if dispatch is None:
        dispatch = dispatch_fit.fit(steps, config)
    config = dataclasses.replace(config, dispatch_delay_s=dispatch.delay_s)
    changes, new_profile, notes = _changes(a, change, config)
    note = dispatch.note()
    if note:
        notes.append(note)
    profiles = changes.pop("compress_per_step", None)
    scale = changes.pop("compress_scale", None)
    if profiles is None and scale is None:
        result = sim.what_if(steps, config, **changes)
    else:
        baseline = sim.replay(steps, config)
        changed = (
            _recompressed(steps, *profiles) if profiles is not None else _rescaled(steps, scale)
        )
        result = sim.what_if(changed, config, baseline=baseline, **changes)
    triggered = sum(1 for d in steps.get("deps", []) if d)
    notes.append(
        f"release times: {steps.attrs['release_source']}; {triggered} of {len(steps)} steps "
        "released by the end of another (inferred dependency: the simulation releases them "
        "when it ends)"
        + (
            f"; {steps.attrs['retries']} retried attempts released when they were dispatched "
            "(after their back-off)"
            if steps.attrs.get("retries")
            else ""
        )
    )
    basis = cost_basis(a)
    return Projection(
        change.label, result.baseline, result.comparison,
        fleet_cost(basis, a.profile, new_profile), notes, basis,
    )  # fmt: skip
