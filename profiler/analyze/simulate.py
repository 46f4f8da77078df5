"""A discrete-event simulation of a Hydra queue runner, for replay and what-if.

The model reproduces the slot semantics of the emulator (:mod:`profiler.testbed.engine`,
reference ``hydra.md`` §4.1 and §4.3) on a step table, one row per build step, and answers
"what would throughput and latency have been if compression were twice as fast, the NARs
smaller, a machine gone, or the queue runner Rust?".

Semantics
---------
Release
    A step without dependencies is released (becomes runnable) at its ``release_ts``. A step
    with a non-empty ``deps`` list is released when the last of its dependencies is done in
    the simulation, whatever its ``release_ts`` says. Dependencies naming steps that are not
    in the table are ignored (they are taken as already built); a step all of whose
    dependencies are unknown is released at its ``release_ts``.
Dispatch
    Whenever a step is runnable and a machine with a free slot serves its system, the step is
    dispatched at once. Runnable steps are taken in release order (ties by table order); the
    machine is the one with the fewest current jobs among the free ones serving the system
    (ties: the first in the config order). All events at one instant (releases, slot frees,
    completions) are applied before the dispatcher runs, as the emulator's dispatcher sees
    them all when it wakes. Steps of different systems do not block each other: a step whose
    system has no free machine does not hold back a later step of another system. The
    machine slot is reserved at the dispatch decision; ``dispatch_delay_s`` then passes
    before the step's first phase (the slot is held but idle meanwhile, and the step still
    counts as runnable: ``dispatch_ts`` is decision + delay).
C++ (``generation="cxx"``)
    The machine slot is held through prepare -> connect -> send -> build. Then the step waits
    for a local worker slot (``max_local_worker_threads``) **still holding the machine slot**;
    once the local slot is acquired, the machine slot is released. Receive -> compress ->
    write -> upload run holding the local slot, which is then released; post follows, and the
    step is done. Local-slot waiters are served first come, first served (ties by table
    order). ``local_workers=None`` means no limit.
Rust (``generation="rust"``)
    The machine slot is held through every phase, post included; there are no local slots.

Durations come from the table (NaN = 0, negatives clipped to 0); the observed
``slot_wait_s`` is never replayed, it is the simulation's output. What-if knobs scale the
phases: ``compress_s x compress_factor``, ``build_s x build_factor``, compressed bytes
``x size_factor`` and ``upload_s x size_factor``, or, with ``upload_bytes_per_second``,
``upload_s = compressed_bytes x size_factor / upload_bytes_per_second`` (a step without a
compressed size keeps ``upload_s x size_factor``). An optional ``prepare_s`` column (the
emulator's "preparing" phase, from :mod:`profiler.analyze.steps`) is held with the machine
slot before connect.

The loop is event-driven (``heapq``) over flat ``array`` vectors; runnable steps wait in one
FIFO per system and free machines sit in one lazily invalidated heap per system keyed by
``(current jobs, config position)``, so each event costs O(log machines).

Greedy list scheduling has anomalies (Graham 1969): with dependencies, speeding a phase up
or adding a machine can make the makespan *longer* (the order in which steps meet free
slots changes), so what-if answers are the outcome of this policy, not bounds.
"""

from __future__ import annotations

import dataclasses
import math
from array import array
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field
from heapq import heapify, heappop, heappush, heapreplace
from typing import Any, Literal

import numpy as np
import numpy.typing as npt
import pandas as pd

Generation = Literal["cxx", "rust"]
# Input duration columns, in pipeline order (slot_wait_s is recomputed, never read).
PRE_PHASES = ("prepare_s", "connect_s", "send_s", "build_s")
COPY_PHASES = ("receive_s", "compress_s", "write_s", "upload_s")
PHASES = (*PRE_PHASES, "slot_wait_s", *COPY_PHASES, "post_s")
# Metrics in the what-if comparison table, in display order.
COMPARED = (
    "throughput_steps_per_hour",
    "p50_wall_s",
    "p90_wall_s",
    "p99_wall_s",
    "builder_utilization",
    "slot_busy_share",
    "not_building_share",
    "mean_runnable",
    "makespan_s",
)
_BUILD_END, _MACHINE_FREE, _DONE = 0, 1, 2  # event kinds; event code = step * 3 + kind


@dataclass(frozen=True)
class SimConfig:
    """What the simulated queue runner looks like.

    Parameters
    ----------
    generation : {"cxx", "rust"}
        Which slot semantics to simulate.
    machines : Mapping[str, tuple[int, tuple[str, ...]]]
        Machine name -> (slots, systems served), in config order (the dispatch tie-break).
    local_workers : int or None
        C++ ``max_local_worker_threads``; None = unlimited. Ignored for Rust.
    compress_factor : float
        Multiplies ``compress_s`` (e.g. new codec's seconds per byte / old one's).
    size_factor : float
        Multiplies compressed bytes, and ``upload_s`` unless ``upload_bytes_per_second``.
    upload_bytes_per_second : float or None
        If set, ``upload_s = compressed_bytes * size_factor / upload_bytes_per_second``.
    build_factor : float
        Multiplies ``build_s``.
    dispatch_delay_s : float
        Seconds between each dispatch decision and the step's first phase (slot held).
    """

    generation: Generation = "cxx"
    machines: Mapping[str, tuple[int, tuple[str, ...]]] = field(default_factory=dict)
    local_workers: int | None = None
    compress_factor: float = 1.0
    size_factor: float = 1.0
    upload_bytes_per_second: float | None = None
    build_factor: float = 1.0
    dispatch_delay_s: float = 0.0

    def __post_init__(self) -> None:
        if self.generation not in ("cxx", "rust"):
            raise ValueError(f"generation must be 'cxx' or 'rust', not {self.generation!r}")
        if not self.machines:
            raise ValueError("the config has no machines")
        for name, (slots, systems) in self.machines.items():
            if slots < 0 or isinstance(systems, str):
                raise ValueError(f"machine {name!r}: need slots >= 0 and a tuple of systems")
        if self.local_workers is not None and self.local_workers < 1:
            raise ValueError("local_workers must be >= 1 or None")
        for knob in ("compress_factor", "size_factor", "build_factor", "dispatch_delay_s"):
            if not getattr(self, knob) >= 0:
                raise ValueError(f"{knob} must be >= 0")
        if self.upload_bytes_per_second is not None and not self.upload_bytes_per_second > 0:
            raise ValueError("upload_bytes_per_second must be > 0 or None")

    def neutral(self) -> SimConfig:
        """This config with every what-if knob at its identity (what :func:`replay` runs)."""
        return dataclasses.replace(
            self,
            compress_factor=1.0,
            size_factor=1.0,
            upload_bytes_per_second=None,
            build_factor=1.0,
        )


@dataclass
class SimResult:
    """One simulation: the per-step schedule and the farm-level figures.

    ``steps`` has, in table order and with the table's index: ``step``, ``machine``
    (simulated), ``system``, ``release_ts``, ``dispatch_ts``, ``machine_release_ts`` (end
    of the machine-slot hold), ``end_ts``, ``queue_s`` (dispatch - release),
    ``slot_wait_s``, ``wall_s`` (end - release), ``delay_s`` and every phase as used
    (``prepare_s`` ... ``post_s``), and ``compressed_bytes`` (scaled).
    """

    steps: pd.DataFrame
    config: SimConfig
    makespan_s: float
    throughput_steps_per_hour: float
    p50_wall_s: float
    p90_wall_s: float
    p99_wall_s: float
    builder_utilization: float
    slot_busy_share: float
    not_building_share: float
    max_runnable: int
    mean_runnable: float

    def metrics(self) -> dict[str, float]:
        """The scalar figures by name."""
        return {name: float(getattr(self, name)) for name in (*COMPARED, "max_runnable")}


@dataclass
class Validation:
    """A replay against the observed schedule.

    ``makespan_rel_error`` is signed: (simulated - observed) / observed. The mean absolute
    errors are over steps with an observed ``end_ts`` (``start_ts`` for dispatch).
    """

    result: SimResult
    observed_makespan_s: float
    simulated_makespan_s: float
    makespan_rel_error: float
    observed_throughput_steps_per_hour: float
    simulated_throughput_steps_per_hour: float
    observed_p50_wall_s: float
    simulated_p50_wall_s: float
    observed_p90_wall_s: float
    simulated_p90_wall_s: float
    end_mae_s: float
    dispatch_mae_s: float

    def table(self) -> pd.DataFrame:
        """Observed vs simulated, one row per metric."""
        rows = [
            (m, getattr(self, f"observed_{m}"), getattr(self, f"simulated_{m}"))
            for m in ("makespan_s", "throughput_steps_per_hour", "p50_wall_s", "p90_wall_s")
        ]
        out = pd.DataFrame(rows, columns=["metric", "observed", "simulated"])
        out["rel_error"] = (out["simulated"] - out["observed"]) / out["observed"]
        return out


@dataclass
class WhatIf:
    """The replayed baseline, the changed run, and their comparison (``change`` is relative)."""

    baseline: Validation
    projected: SimResult
    changes: dict[str, Any]
    comparison: pd.DataFrame

    @property
    def current(self) -> SimResult:
        """The baseline simulation."""
        return self.baseline.result


# --- input -----------------------------------------------------------------------------------


@dataclass
class _Inputs:
    """The step table as flat arrays, phases scaled by the config."""

    keys: pd.Index
    index: pd.Index
    systems: list[str]
    sys_of: npt.NDArray[np.int64]
    release: np.ndarray
    phases: dict[str, np.ndarray]
    compressed: np.ndarray
    dep_count: array[int] | None = None
    dep_off: array[int] | None = None
    dep_tgt: array[int] | None = None


def _floats(steps: pd.DataFrame, name: str) -> np.ndarray:
    """A numeric column as float64 (NaN where missing or unparsable)."""
    if name not in steps.columns:
        return np.full(len(steps), np.nan)
    return np.asarray(pd.to_numeric(steps[name], errors="coerce"), dtype=float)


def _duration(steps: pd.DataFrame, name: str) -> np.ndarray:
    a = _floats(steps, name)
    return np.where(np.isnan(a) | (a < 0), 0.0, a)


def _phases(steps: pd.DataFrame, config: SimConfig) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """Per-phase seconds as the simulation uses them, and the scaled compressed bytes."""
    ph = {name: _duration(steps, name) for name in PHASES if name != "slot_wait_s"}
    ph["build_s"] = ph["build_s"] * config.build_factor
    ph["compress_s"] = ph["compress_s"] * config.compress_factor
    compressed = _floats(steps, "compressed_bytes") * config.size_factor
    upload = ph["upload_s"] * config.size_factor
    if config.upload_bytes_per_second is not None:
        known = ~np.isnan(compressed)
        upload = np.where(known, np.nan_to_num(compressed) / config.upload_bytes_per_second, upload)
    ph["upload_s"] = np.maximum(upload, 0.0)
    return ph, compressed


def _dependencies(steps: pd.DataFrame, keys: pd.Index) -> tuple[array[int], array[int], array[int]]:
    """Per step its number of known dependencies, and the dependants as CSR (offsets, targets)."""
    n = len(keys)
    flat = steps["deps"].reset_index(drop=True).explode()  # a str is one key; None/[] -> NaN
    flat = flat[flat.notna()]
    src = keys.get_indexer(pd.Index(flat.to_numpy(), dtype=object))
    dst = flat.index.to_numpy(dtype=np.int64)
    known = src >= 0  # unknown keys: taken as built already
    pair = np.unique(src[known].astype(np.int64) * n + dst[known])  # sorted by dependency
    src, dst = pair // n, pair % n
    off = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(np.bincount(src, minlength=n), out=off[1:])
    return _ints(np.bincount(dst, minlength=n)), _ints(off), _ints(dst)


def _inputs(steps: pd.DataFrame, config: SimConfig) -> _Inputs:
    missing = {"step", "system", "release_ts"} - set(steps.columns)
    if missing:
        raise ValueError(f"step table lacks columns {sorted(missing)}")
    keys = pd.Index(steps["step"], dtype=object)
    if not keys.is_unique:
        raise ValueError("step keys are not unique")
    codes, systems = pd.factorize(steps["system"].astype(str))
    phases, compressed = _phases(steps, config)
    inp = _Inputs(
        keys=keys,
        index=steps.index,
        systems=[str(s) for s in systems],
        sys_of=np.asarray(codes, dtype=np.int64),
        release=_floats(steps, "release_ts"),
        phases=phases,
        compressed=compressed,
    )
    if "deps" in steps.columns:
        inp.dep_count, inp.dep_off, inp.dep_tgt = _dependencies(steps, keys)
        if not any(inp.dep_count):
            inp.dep_count = inp.dep_off = inp.dep_tgt = None
    roots = (
        np.ones(len(keys), dtype=bool) if inp.dep_count is None else np.asarray(inp.dep_count) == 0
    )
    bad = roots & ~np.isfinite(inp.release)
    if bad.any():
        raise ValueError(f"{int(bad.sum())} steps without dependencies have no release_ts")
    return inp


# --- the event loop --------------------------------------------------------------------------


def _doubles(a: npt.ArrayLike) -> array[float]:
    """A float64 vector as a compact ``array('d')`` (fast scalar access, 8 bytes a value)."""
    out = array("d")
    out.frombytes(np.ascontiguousarray(a, dtype=np.float64).tobytes())
    return out


def _ints(a: npt.ArrayLike) -> array[int]:
    """An integer vector as a compact ``array('q')``."""
    out = array("q")
    out.frombytes(np.ascontiguousarray(a, dtype=np.int64).tobytes())
    return out


class _Engine:
    """The event loop. State lives in flat arrays indexed by step or machine position."""

    def __init__(self, inp: _Inputs, config: SimConfig) -> None:
        n = len(inp.keys)
        nsys = len(inp.systems)
        sys_index = {name: s for s, name in enumerate(inp.systems)}
        ph = inp.phases
        pre = ph["prepare_s"] + ph["connect_s"] + ph["send_s"] + ph["build_s"]
        copy = ph["receive_s"] + ph["compress_s"] + ph["write_s"] + ph["upload_s"]
        self.rust = config.generation == "rust"
        self.delay = float(config.dispatch_delay_s)
        self.pre = _doubles(pre)
        self.copy = _doubles(copy)
        self.post = _doubles(ph["post_s"])
        self.total = _doubles((pre + copy) + ph["post_s"] if self.rust else np.zeros(0))
        self.sys_of = _ints(inp.sys_of)
        self.rel = _doubles(inp.release)
        self.t_dec = array("d", [math.nan]) * n
        self.end = array("d", [math.nan]) * n
        self.mrel = array("d", [math.nan]) * n
        self.mach = array("q", [-1]) * n
        self.ev: list[tuple[float, int]] = []
        self.pending: list[int] = []
        self.dirty: set[int] = set()
        self.queues: list[deque[int]] = [deque() for _ in range(nsys)]
        # machines
        self.M = len(config.machines)
        self.slots = [int(slots) for slots, _ in config.machines.values()]
        self.jobs = [0] * self.M
        self.msys = [
            sorted({sys_index[s] for s in systems if s in sys_index})
            for _, systems in config.machines.values()
        ]
        self.serving = [[j for j in range(self.M) if s in self.msys[j]] for s in range(nsys)]
        self.sheap = [[j for j in self.serving[s] if self.slots[j] > 0] for s in range(nsys)]
        self.cap = 4 * self.M + 64  # compact a system's machine heap beyond this size
        lw = config.local_workers
        self.local: list[float] | None = None if self.rust or lw is None else [-math.inf] * lw
        self.left = inp.dep_count
        self.off = inp.dep_off
        self.tgt = inp.dep_tgt

    # machine heaps: key = jobs * M + j, valid while machine j still has that many jobs

    def _top(self, s: int) -> int:
        """The least-loaded free machine serving system ``s``, or -1."""
        h, jobs, m = self.sheap[s], self.jobs, self.M
        while h:
            key = h[0]
            j = key % m
            if jobs[j] * m + j == key:
                return j
            heappop(h)
        return -1

    def _compact(self, s: int) -> None:
        """Rebuild system ``s``'s machine heap from the current loads (drops stale keys)."""
        jobs, slots, m = self.jobs, self.slots, self.M
        h = self.sheap[s]
        h[:] = [jobs[k] * m + k for k in self.serving[s] if jobs[k] < slots[k]]
        heapify(h)

    def _free(self, j: int) -> None:
        """A slot of machine ``j`` is free: re-key it and wake the systems it serves."""
        jobs, sheap, queues = self.jobs, self.sheap, self.queues
        jobs[j] -= 1
        key = jobs[j] * self.M + j
        for s in self.msys[j]:
            h = sheap[s]
            heappush(h, key)
            if len(h) > self.cap:
                self._compact(s)
            if queues[s]:
                self.dirty.add(s)

    def _assign(self, i: int, j: int, s: int, t: float) -> None:
        """Dispatch step ``i`` to machine ``j`` (the top of system ``s``'s heap) at ``t``."""
        jobs, sheap = self.jobs, self.sheap
        heappop(sheap[s])
        jobs[j] += 1
        if jobs[j] < self.slots[j]:
            key = jobs[j] * self.M + j
            for s2 in self.msys[j]:
                h = sheap[s2]
                heappush(h, key)
                if len(h) > self.cap:
                    self._compact(s2)
        self.t_dec[i] = t
        self.mach[i] = j
        start = t + self.delay
        if self.rust:
            end = start + self.total[i]
            self.end[i] = end
            heappush(self.ev, (end, i * 3 + _DONE))
        else:
            heappush(self.ev, (start + self.pre[i], i * 3 + _BUILD_END))

    def _build_end(self, i: int, t: float) -> None:
        """C++: the build is over; take a local slot (FIFO), then free the machine."""
        local = self.local
        if local is None:
            start = t
        else:  # FIFO multi-server queue: in arrival order, the earliest-free server
            free_at = local[0]
            start = free_at if free_at > t else t
            heapreplace(local, start + self.copy[i])
        self.mrel[i] = start
        end = start + self.copy[i] + self.post[i]
        self.end[i] = end
        if start == t:
            self._free(self.mach[i])
        else:
            heappush(self.ev, (start, i * 3 + _MACHINE_FREE))
        off = self.off
        if off is not None and off[i + 1] > off[i]:
            heappush(self.ev, (end, i * 3 + _DONE))

    def _done(self, i: int, t: float) -> None:
        if self.rust:
            self.mrel[i] = t
            self._free(self.mach[i])
        if self.off is None or self.tgt is None or self.left is None:
            return
        left, rel, pending = self.left, self.rel, self.pending
        for k in self.tgt[self.off[i] : self.off[i + 1]]:
            left[k] -= 1
            if left[k] == 0:
                rel[k] = t
                pending.append(k)

    def _flush(self, t: float) -> None:
        """Queue the steps released at ``t``, keeping each queue in (release, index) order."""
        pending, queues, sys_of, rel = self.pending, self.queues, self.sys_of, self.rel
        if len(pending) > 1:
            pending.sort()
        for i in pending:
            s = sys_of[i]
            q = queues[s]
            if q and q[-1] > i and rel[q[-1]] == t:
                k = len(q) - 1
                while k > 0 and q[k - 1] > i and rel[q[k - 1]] == t:
                    k -= 1
                q.insert(k, i)
            else:
                q.append(i)
            self.dirty.add(s)
        pending.clear()

    def _dispatch(self, t: float) -> None:
        """Dispatch while some runnable step has a free machine for its system."""
        dirty, queues, rel = self.dirty, self.queues, self.rel
        if len(dirty) == 1:
            s = dirty.pop()
            q = queues[s]
            while q:
                j = self._top(s)
                if j < 0:
                    break
                self._assign(q.popleft(), j, s, t)
            return
        live = list(dirty)
        dirty.clear()
        while True:
            live = [s for s in live if queues[s] and self._top(s) >= 0]
            if not live:
                return
            s = min(live, key=lambda x: (rel[queues[x][0]], queues[x][0]))
            self._assign(queues[s].popleft(), self._top(s), s, t)

    def run(self, order: array[int]) -> None:
        """Run to completion; ``order`` = the root steps by (release, index)."""
        ev, pending, rel, mach = self.ev, self.pending, self.rel, self.mach
        times = array("d", [rel[i] for i in order])
        p, nroot, inf = 0, len(order), math.inf
        while True:
            tr = times[p] if p < nroot else inf
            te = ev[0][0] if ev else inf
            t = tr if tr <= te else te
            if t == inf:
                return
            while p < nroot and times[p] == t:
                pending.append(order[p])
                p += 1
            while ev and ev[0][0] == t:
                i, kind = divmod(heappop(ev)[1], 3)
                if kind == _BUILD_END:
                    self._build_end(i, t)
                elif kind == _MACHINE_FREE:
                    self._free(mach[i])
                else:
                    self._done(i, t)
            if pending:
                self._flush(t)
            if self.dirty:
                self._dispatch(t)


# --- results ---------------------------------------------------------------------------------


def _runnable(release: np.ndarray, dispatch: np.ndarray, span: float) -> tuple[int, float]:
    """Max and time-weighted mean of the runnable count (released, not yet dispatched)."""
    if len(release) == 0 or span <= 0:
        return 0, 0.0
    times = np.concatenate([release, dispatch])
    delta = np.concatenate([np.ones(len(release)), -np.ones(len(dispatch))])
    order = np.argsort(times, kind="stable")
    times, count = times[order], np.cumsum(delta[order])
    last = np.r_[np.flatnonzero(np.diff(times) > 0), len(times) - 1]  # end of each instant
    at, after = times[last], count[last]
    return int(max(after.max(), 0)), float(np.sum(np.diff(at) * after[:-1]) / span)


def _ratio(a: float, b: float) -> float:
    return a / b if b > 0 else math.nan


def _result(inp: _Inputs, eng: _Engine, config: SimConfig) -> SimResult:
    mach = np.asarray(eng.mach, dtype=np.int64)
    if (mach < 0).any():
        raise ValueError(f"{int((mach < 0).sum())} steps never became runnable (dependency cycle)")
    ph = inp.phases
    n = len(mach)
    t_dec = np.asarray(eng.t_dec, dtype=float)
    dispatch = t_dec + config.dispatch_delay_s
    end = np.asarray(eng.end, dtype=float)
    release = np.asarray(eng.rel, dtype=float)
    mrel = np.asarray(eng.mrel, dtype=float)
    pre = ph["prepare_s"] + ph["connect_s"] + ph["send_s"] + ph["build_s"]
    wait = np.zeros(n) if eng.rust else mrel - (dispatch + pre)
    names = list(config.machines)
    out = pd.DataFrame(
        {
            "step": np.asarray(inp.keys, dtype=object),
            "machine": pd.Categorical.from_codes(mach, categories=pd.Index(names)),
            "system": pd.Categorical.from_codes(inp.sys_of, categories=pd.Index(inp.systems)),
            "release_ts": release,
            "dispatch_ts": dispatch,
            "machine_release_ts": mrel,
            "end_ts": end,
            "queue_s": dispatch - release,
            "slot_wait_s": wait,
            "wall_s": end - release,
            "delay_s": np.full(n, float(config.dispatch_delay_s)),
            **{name: ph[name] for name in PHASES if name != "slot_wait_s"},
            "compressed_bytes": inp.compressed,
        },
        index=inp.index,
    )
    span = float(end.max() - release.min()) if n else 0.0
    capacity = sum(slots for slots, _ in config.machines.values()) * span
    busy = float(np.sum(mrel - t_dec))
    building = float(ph["build_s"].sum())
    p50, p90, p99 = np.percentile(out["wall_s"], [50, 90, 99]) if n else (math.nan,) * 3
    max_runnable, mean_runnable = _runnable(release, dispatch, span)
    return SimResult(
        steps=out,
        config=config,
        makespan_s=span,
        throughput_steps_per_hour=_ratio(n * 3600.0, span),
        p50_wall_s=float(p50),
        p90_wall_s=float(p90),
        p99_wall_s=float(p99),
        builder_utilization=_ratio(building, capacity),
        slot_busy_share=_ratio(busy, capacity),
        not_building_share=_ratio(busy - building, busy),
        max_runnable=max_runnable,
        mean_runnable=mean_runnable,
    )


# --- public API ------------------------------------------------------------------------------


def simulate(steps: pd.DataFrame, config: SimConfig) -> SimResult:
    """Simulate the queue runner of ``config`` on a step table.

    Parameters
    ----------
    steps : pandas.DataFrame
        One row per step: ``step``, ``system``, ``release_ts``, optional ``deps`` and the
        duration columns (see the module docstring); missing duration columns count as 0.
    config : SimConfig
        Machines, generation and what-if knobs.

    Returns
    -------
    SimResult
        The simulated schedule (rows in table order) and its figures.

    Raises
    ------
    ValueError
        On duplicate step keys, a root step without ``release_ts``, a system no machine with
        slots serves, or a dependency cycle.
    """
    inp = _inputs(steps, config)
    eng = _Engine(inp, config)
    unserved = sorted(
        {
            inp.systems[s]
            for s in np.unique(inp.sys_of).tolist()
            if not any(eng.slots[j] > 0 for j in eng.serving[s])
        }
    )
    if unserved:
        raise ValueError(f"no machine with slots serves system(s) {unserved}")
    roots = (
        np.arange(len(inp.keys))
        if inp.dep_count is None
        else np.flatnonzero(np.asarray(inp.dep_count) == 0)
    )
    order = _ints(roots[np.argsort(inp.release[roots], kind="stable")])
    eng.run(order)
    return _result(inp, eng, config)


def config_from_steps(
    steps: pd.DataFrame,
    generation: Generation = "cxx",
    slots_per_machine: int | Mapping[str, int] = 1,
    local_workers: int | None = None,
) -> SimConfig:
    """Machines as observed in the ``machine`` column, for :func:`replay`.

    Parameters
    ----------
    steps : pandas.DataFrame
        The step table; ``machine`` empty or NaN where unknown.
    generation : {"cxx", "rust"}
        The queue runner to simulate.
    slots_per_machine : int or Mapping[str, int]
        Slots (Hydra ``maxJobs``) of every machine, or per machine name.
    local_workers : int or None
        C++ ``max_local_worker_threads``.

    Returns
    -------
    SimConfig
        One machine per distinct observed name, sorted by name, serving the systems it was
        seen building. Systems never seen on a named machine are given to every machine, so
        that each step can run.
    """
    pairs = (
        pd.DataFrame(
            {
                "machine": steps["machine"].fillna("").astype(str),
                "system": steps["system"].astype(str),
            }
        )
        .drop_duplicates()
        .itertuples(index=False)
    )
    by_machine: dict[str, set[str]] = {}
    every = set()
    for name, system in pairs:
        every.add(system)
        if name:
            by_machine.setdefault(name, set()).add(system)
    if not by_machine:
        raise ValueError("no step has an observed machine")
    orphans = every.difference(*by_machine.values())
    machines: dict[str, tuple[int, tuple[str, ...]]] = {}
    for name in sorted(by_machine):
        if isinstance(slots_per_machine, Mapping):
            if name not in slots_per_machine:
                raise ValueError(f"slots_per_machine has no entry for machine {name!r}")
            slots = int(slots_per_machine[name])
        else:
            slots = int(slots_per_machine)
        machines[name] = (slots, tuple(sorted(by_machine[name] | orphans)))
    return SimConfig(generation=generation, machines=machines, local_workers=local_workers)


def _mae(a: pd.Series, b: np.ndarray) -> float:
    err = np.abs(np.asarray(pd.to_numeric(a, errors="coerce"), dtype=float) - b)
    err = err[~np.isnan(err)]
    return float(err.mean()) if len(err) else math.nan


def replay(steps: pd.DataFrame, config: SimConfig) -> Validation:
    """Simulate with every what-if knob neutral and compare with the observed schedule.

    Parameters
    ----------
    steps : pandas.DataFrame
        The step table, with the observed ``start_ts`` (dispatch) and ``end_ts``.
    config : SimConfig
        Machines and generation; its scaling knobs are reset to 1 (``dispatch_delay_s`` is
        kept: it is part of the model, not a change).

    Returns
    -------
    Validation
        Observed vs simulated makespan, throughput and wall-time percentiles, and per-step
        mean absolute errors of end and dispatch times.
    """
    result = simulate(steps, config.neutral())
    release = _floats(steps, "release_ts")
    end = _floats(steps, "end_ts")
    observed_span = (
        float(np.nanmax(end) - np.nanmin(release))
        if np.isfinite(end).any() and np.isfinite(release).any()
        else math.nan
    )
    wall = end - release
    wall = wall[~np.isnan(wall)]
    o50, o90 = np.percentile(wall, [50, 90]) if len(wall) else (math.nan, math.nan)
    n = len(steps)
    return Validation(
        result=result,
        observed_makespan_s=observed_span,
        simulated_makespan_s=result.makespan_s,
        makespan_rel_error=_ratio(result.makespan_s - observed_span, observed_span),
        observed_throughput_steps_per_hour=_ratio(n * 3600.0, observed_span),
        simulated_throughput_steps_per_hour=result.throughput_steps_per_hour,
        observed_p50_wall_s=float(o50),
        simulated_p50_wall_s=result.p50_wall_s,
        observed_p90_wall_s=float(o90),
        simulated_p90_wall_s=result.p90_wall_s,
        end_mae_s=_mae(steps["end_ts"], result.steps["end_ts"].to_numpy())
        if "end_ts" in steps.columns
        else math.nan,
        dispatch_mae_s=_mae(steps["start_ts"], result.steps["dispatch_ts"].to_numpy())
        if "start_ts" in steps.columns
        else math.nan,
    )


def compare(current: SimResult, projected: SimResult) -> pd.DataFrame:
    """One row per figure: ``metric``, ``current``, ``projected``, ``change`` (relative)."""
    cur, new = current.metrics(), projected.metrics()
    out = pd.DataFrame(
        {"metric": list(COMPARED), "current": [cur[m] for m in COMPARED]},
    )
    out["projected"] = [new[m] for m in COMPARED]
    out["change"] = [_ratio(new[m], cur[m]) - 1 if cur[m] else math.nan for m in COMPARED]
    return out


def what_if(
    steps: pd.DataFrame,
    config: SimConfig,
    *,
    baseline: Validation | None = None,
    **changes: Any,
) -> WhatIf:
    """Replay the table, then simulate it with ``changes`` applied to ``config``.

    Parameters
    ----------
    steps : pandas.DataFrame
        The step table.
    config : SimConfig
        The observed farm. The baseline is ``replay(steps, config)`` (knobs neutral); the
        projection is ``dataclasses.replace(config, **changes)``, so knobs already set on
        ``config`` apply to the projection too.
    baseline : Validation, optional
        A replay already run on the same table and config, to save a simulation.
    **changes
        :class:`SimConfig` fields, e.g. ``compress_factor=0.5``, ``machines={...}``,
        ``generation="rust"``.

    Returns
    -------
    WhatIf
        Both runs and the comparison table (see :func:`compare`).
    """
    base = baseline if baseline is not None else replay(steps, config)
    projected = simulate(steps, dataclasses.replace(config, **changes))
    return WhatIf(
        baseline=base,
        projected=projected,
        changes=dict(changes),
        comparison=compare(base.result, projected),
    )
