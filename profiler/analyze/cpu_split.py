"""Measured compression seconds per step, from the compressing process' sampled CPU.

For the steps whose copy phase (C++) or upload phase (Rust, presigned) lies inside the
sampled window, a step's compression time is the ``compression`` CPU seconds the
compressing process (:func:`profiler.analyze.cpu.compressing_process`) spent in each
sample bucket, shared between the steps copying in that bucket by their overlap with it,
weighted by their NAR bytes per second of phase (a step moving more bytes compresses more
of them); at most the part of the phase that compresses. Steps outside the window, or
only partly in it, keep the codec profile's estimate; the split says which.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from profiler.analyze.attribution import copy_pipe, copy_window
from profiler.analyze.cpu import (
    CPU_TABLES,
    CpuProfile,
    compressing_process,
    load_cpu,
    sampled_machine,
    window_coverage,
)
from profiler.analyze.schema import StepTable


@dataclass(frozen=True)
class MeasuredSplit:
    """Per step (by the step table's index), measured compression seconds, NaN where the
    samples do not cover the step's phase; and how much of the run that is."""

    seconds: pd.Series
    process: str
    covered_steps: int
    phase_steps: int  # steps with a copy (upload) phase
    coverage: float  # share of the run window the samples cover
    assigned_cpu_seconds: float
    outside_cpu_seconds: float  # measured compression in no step's phase
    capped_cpu_seconds: float  # beyond a phase's length (several threads compressing)

    def how(self) -> str:
        """Attribution's ``how`` of compression."""
        rest = self.phase_steps - self.covered_steps
        text = f"measured ({self.process} CPU samples) for {self.covered_steps} steps"
        return text + (f", estimated for {rest}" if rest else "")

    def note(self) -> str:
        """The coverage note."""
        cover = f"{100 * self.coverage:.0f}%" if math.isfinite(self.coverage) else "unknown"
        text = (
            f"compression split measured: {self.process}'s compression CPU samples cover "
            f"{cover} of the run's window and {self.covered_steps} of {self.phase_steps} "
            f"steps' copy phases ({self.assigned_cpu_seconds:.2f} CPU-s assigned to them); "
            "the other steps keep the codec profile's estimate"
        )
        if self.outside_cpu_seconds > 0.005:
            text += (
                f"; {self.outside_cpu_seconds:.2f} CPU-s of its compression fell in no step's "
                "phase (C++: inputSrcs copied into the cache, build logs)"
            )
        if self.capped_cpu_seconds > 0.005:
            text += (
                f"; {self.capped_cpu_seconds:.2f} CPU-s beyond the phases' length (several "
                "threads compressing) not counted as step time"
            )
        return text

    def as_dict(self) -> dict[str, Any]:
        return {
            "process": self.process,
            "covered_steps": self.covered_steps,
            "phase_steps": self.phase_steps,
            "window_coverage": self.coverage,
            "assigned_cpu_seconds": self.assigned_cpu_seconds,
            "outside_cpu_seconds": self.outside_cpu_seconds,
            "capped_cpu_seconds": self.capped_cpu_seconds,
        }


def read_cpu(reader: Any) -> tuple[CpuProfile | None, list[str]]:
    """The run's :class:`CpuProfile` (None without cpu tables), and what was not usable."""
    present = set(reader.tables())
    return load_cpu({n: reader.table(n) for n in CPU_TABLES if n in present})


def _densities(steps: pd.DataFrame, phase: np.ndarray) -> np.ndarray:
    """NAR bytes per second of phase; the median of the known ones where a step has no
    NAR size, else 1 (every step alike)."""
    nar = steps["nar_bytes"].astype(float).to_numpy()
    with np.errstate(divide="ignore", invalid="ignore"):
        rate = nar / phase
    ok = np.isfinite(rate) & (rate > 0)
    fill = float(np.median(rate[ok])) if ok.any() else 1.0
    return np.where(ok, rate, fill)


def _buckets(cpu: CpuProfile, process: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(starts, ends, compression CPU seconds) of the process' buckets that have some."""
    rows = cpu.of(process)
    rows = rows[rows["class"] == "compression"]
    per = rows.groupby("ts").agg(width=("bucket_seconds", "max"), cpu=("cpu_seconds", "sum"))
    per = per[per["cpu"] > 0].sort_index()
    starts = per.index.to_numpy(float)
    return starts, starts + per["width"].to_numpy(float), per["cpu"].to_numpy(float)


def _share_out(
    spans: tuple[np.ndarray, np.ndarray],
    density: np.ndarray,
    buckets: tuple[np.ndarray, np.ndarray, np.ndarray],
) -> np.ndarray:
    """Each span's share of the buckets' CPU seconds: by overlap x density, per bucket."""
    a, b = spans
    starts, ends, cpu = buckets
    overlaps = []
    weight = np.zeros(len(starts))
    for i in range(len(a)):
        k = np.arange(np.searchsorted(ends, a[i], "right"), np.searchsorted(starts, b[i], "left"))
        w = (np.minimum(ends[k], b[i]) - np.maximum(starts[k], a[i])).clip(0.0) * density[i]
        np.add.at(weight, k, w)
        overlaps.append((k, w))
    got = np.zeros(len(a))
    for i, (k, w) in enumerate(overlaps):
        ok = weight[k] > 0
        got[i] = float(np.sum(cpu[k][ok] * w[ok] / weight[k][ok]))
    return got


def _phases(steps: pd.DataFrame) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Each step's compressing phase (start, end, seconds that compress at most): the copy
    phase, or where a journal's pipeline time is all there is (no copy phase seen), the
    pipeline's seconds before the copy phase's end."""
    start, end = copy_window(steps)
    _, _, pipe = copy_pipe(steps)
    a, b = start.to_numpy(float), end.to_numpy(float)
    limit = pipe.fillna(0.0).to_numpy(float)
    a = np.where((b - a <= 0) & (limit > 0), b - limit, a)
    return a, b, limit


def measured_compression(
    table: StepTable, upload_mode: str | None, cpu: CpuProfile, host: str | None
) -> tuple[MeasuredSplit | None, str]:
    """The measured split (:class:`MeasuredSplit`) of the steps the samples cover, or None
    with why it does not apply."""
    process = compressing_process(table.generation, upload_mode)
    if process is None:
        why = (
            "in direct upload mode the runner compresses after the step, outside step time"
            if table.generation == "rust"
            else f"which process compresses is not known (queue runner {table.generation})"
        )
        return None, f"CPU samples not used for the compression split: {why}"
    if cpu.of(process).empty:
        return None, f"CPU samples not used for the compression split: no {process} samples"
    s = table.steps
    a, b, limit = _phases(s)
    phase = np.where(np.isfinite(a) & np.isfinite(b), b - a, 0.0)
    mine = np.ones(len(s), bool)
    if table.generation == "rust":
        machine = sampled_machine(s["machine"], host) if "machine" in s else None
        if machine is None:
            return None, (
                f"CPU samples not used for the compression split: which machine's {process} "
                f"was sampled is not known (run host {host!r} matches none of the steps')"
            )
        mine = (s["machine"].astype(str) == machine).to_numpy()
    has_phase = mine & (phase > 0)
    lo, hi = cpu.window
    near = has_phase & (b > lo) & (a < hi)
    covered = has_phase & (a >= lo) & (b <= hi)
    if not covered.any():
        return None, (
            f"CPU samples not used for the compression split: the {process} samples "
            f"({window_coverage(cpu.window, table.window):.0%} of the run's window) cover "
            "no step's copy phase whole"
        )
    buckets = _buckets(cpu, process)
    got = np.zeros(len(s))
    got[near] = _share_out((a[near], b[near]), _densities(s[near], phase[near]), buckets)
    kept = np.minimum(got, limit)
    seconds = pd.Series(np.where(covered, kept, np.nan), index=s.index)
    return MeasuredSplit(
        seconds=seconds,
        process=process,
        covered_steps=int(covered.sum()),
        phase_steps=int(has_phase.sum()),
        coverage=window_coverage(cpu.window, table.window),
        assigned_cpu_seconds=float(kept[covered].sum()),
        outside_cpu_seconds=max(0.0, float(buckets[2].sum() - got[near].sum())),
        capped_cpu_seconds=float((got - kept)[covered].sum()),
    ), ""
