"""The step timeline in Chrome Trace Event Format, and the layout it shares with the figure.

Each step becomes a complete event (``"ph": "X"``) on its machine (a process, ``pid``) and
slot lane (a thread, ``tid``), with its phases nested inside it as consecutive complete
events in pipeline order from the step's start: prepare, connect, send, build, slot_wait,
receive, compress, upload, post (zero-length phases are left out). Times are microseconds
from the run start. Steps of a machine are put on lanes greedily (the first lane free when
the step starts), so steps on one lane never overlap and a machine gets as many lanes as it
ran steps at once (for C++ more than its slots: a step gives its machine slot back before
its outputs are copied). The runnable-steps gauge, when sampled, is a counter track (``pid`` 0).

Open the JSON in https://ui.perfetto.dev or ``chrome://tracing``.
"""

from __future__ import annotations

import json
import math
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from profiler.analyze.schema import COLUMN_CATEGORY

if TYPE_CHECKING:
    from profiler.analyze.analysis import Analysis

# (phase name, step-table column, attribution category), in pipeline order.
PHASES: tuple[tuple[str, str, str], ...] = tuple(
    (column.removesuffix("_s"), column, COLUMN_CATEGORY[column])
    for column in (
        "prepare_s",
        "connect_s",
        "send_s",
        "build_s",
        "slot_wait_s",
        "receive_s",
        "compress_s",
        "upload_s",
        "post_s",
    )
)
_EPSILON_S = 1e-6


def phase_durations(steps: pd.DataFrame) -> pd.DataFrame:
    """Per step, the seconds of each phase of :data:`PHASES` (missing or negative as 0).

    Parameters
    ----------
    steps : pandas.DataFrame
        The analysis' step table (``Analysis.steps``).

    Returns
    -------
    pandas.DataFrame
        Same index as ``steps``, one column per phase name, in pipeline order.
    """
    out = pd.DataFrame(index=steps.index)
    for name, column, _ in PHASES:
        values = steps[column] if column in steps else pd.Series(0.0, index=steps.index)
        out[name] = pd.to_numeric(values, errors="coerce").astype(float).fillna(0.0).clip(lower=0)
    return out


def machine_names(steps: pd.DataFrame) -> pd.Series:
    """The machine of each step as a string (``unknown`` where none was recorded)."""
    if "machine" not in steps:
        return pd.Series("unknown", index=steps.index, dtype=object)
    names = steps["machine"].astype(object).where(steps["machine"].notna(), "unknown")
    return names.map(lambda m: str(m) or "unknown")


def run_origin(a: Analysis) -> float:
    """The run start (UTC epoch seconds): the window start, or the first step if earlier."""
    starts = pd.to_numeric(a.steps["start_ts"], errors="coerce").to_numpy(float)
    candidates = [float(a.table.window[0]), *starts[np.isfinite(starts)].tolist()]
    finite = [c for c in candidates if math.isfinite(c)]
    return min(finite) if finite else 0.0


def step_spans(steps: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """Start and end (epoch seconds) of each step as drawn: its phases laid end to end.

    The end is the later of the recorded ``end_ts`` and the start plus the phases' sum, so a
    step drawn from its phases never runs into the next step on its lane.
    """
    start = pd.to_numeric(steps["start_ts"], errors="coerce").to_numpy(float)
    total = phase_durations(steps).sum(axis=1).to_numpy(float)
    end = (
        pd.to_numeric(steps["end_ts"], errors="coerce").to_numpy(float)
        if "end_ts" in steps
        else start
    )
    end = np.where(np.isfinite(end), end, start)
    return start, np.maximum(end, start + total)


def assign_lanes(machines: pd.Series, start: np.ndarray, end: np.ndarray) -> np.ndarray:
    """Per step, a lane number within its machine: the lowest lane free when it starts.

    Parameters
    ----------
    machines : pandas.Series
        The machine of each step.
    start, end : numpy.ndarray
        Each step's span (steps with a non-finite start get lane -1).

    Returns
    -------
    numpy.ndarray
        Integer lanes from 0, aligned with ``machines``.
    """
    lanes = np.full(len(machines), -1, dtype=int)
    keys = machines.to_numpy(object)
    order = np.lexsort((end, start))
    free_at: dict[Any, list[float]] = {}
    for i in order:
        if not math.isfinite(start[i]):
            continue
        busy = free_at.setdefault(keys[i], [])
        for lane, t in enumerate(busy):
            if t <= start[i] + _EPSILON_S:
                busy[lane] = end[i]
                lanes[i] = lane
                break
        else:
            busy.append(end[i])
            lanes[i] = len(busy) - 1
    return lanes


def _clean(value: Any) -> Any:
    if value is None:
        return None
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, bool | int | float | str):
        return value
    return None if pd.isna(value) else str(value)


def _us(seconds: float) -> float:
    return round(float(seconds) * 1e6, 3)


def _step_args(row: dict[Any, Any]) -> dict[str, Any]:
    args = {
        "step": _clean(row.get("step")),
        "build": _clean(row.get("build")),
        "stepnr": _clean(row.get("stepnr")),
        "drv": _clean(row.get("drv_path")),
    }
    for key in ("job", "system", "jobset", "nar_bytes", "wall_s"):
        if key in row:
            args[key] = _clean(row[key])
    return args


def _metadata(machines: list[str], lanes: dict[int, set[int]]) -> list[dict[str, Any]]:
    events: list[dict[str, Any]] = []
    for pid, name in enumerate(machines, start=1):
        events.append({"ph": "M", "name": "process_name", "pid": pid, "tid": 0,
                       "args": {"name": name}})  # fmt: skip
        events.append({"ph": "M", "name": "process_sort_index", "pid": pid, "tid": 0,
                       "args": {"sort_index": pid}})  # fmt: skip
        for tid in sorted(lanes.get(pid, ())):
            events.append({"ph": "M", "name": "thread_name", "pid": pid, "tid": tid,
                           "args": {"name": f"lane {tid}"}})  # fmt: skip
    return events


def _counter_events(a: Analysis, origin: float) -> list[dict[str, Any]]:
    if a.pressure_series is None:
        return []
    ts, values = a.pressure_series
    events: list[dict[str, Any]] = [
        {"ph": "M", "name": "process_name", "pid": 0, "tid": 0, "args": {"name": "queue"}},
        {"ph": "M", "name": "process_sort_index", "pid": 0, "tid": 0, "args": {"sort_index": 0}},
    ]
    for t, v in zip(ts, values, strict=True):
        if math.isfinite(t) and math.isfinite(v) and t >= origin:
            events.append({"ph": "C", "name": "runnable steps", "pid": 0, "tid": 0,
                           "ts": _us(t - origin), "args": {"runnable": float(v)}})  # fmt: skip
    return events


def chrome_trace(a: Analysis) -> dict[str, Any]:
    """The analysed run's steps as a Chrome Trace Event Format document.

    Parameters
    ----------
    a : Analysis
        An analysed run.

    Returns
    -------
    dict
        ``{"traceEvents": [...], "displayTimeUnit": "ms", "otherData": {...}}``: metadata
        events naming machines (processes) and slot lanes (threads), one complete event per
        step (``cat`` ``"step"``) and one per non-empty phase (``cat`` its attribution
        category, ``name`` the phase), ``ts``/``dur`` in microseconds from the run start.
    """
    steps = a.steps.reset_index(drop=True)
    origin = run_origin(a)
    machines = machine_names(steps)
    start, end = step_spans(steps)
    lanes = assign_lanes(machines, start, end)
    durations = phase_durations(steps).to_numpy(float)
    order = list(dict.fromkeys(machines.iloc[np.argsort(start, kind="stable")]))
    pid_of = {m: i for i, m in enumerate(order, start=1)}
    used: dict[int, set[int]] = {}
    events: list[dict[str, Any]] = []
    for i, row in enumerate(steps.to_dict(orient="records")):
        if lanes[i] < 0:
            continue
        pid, tid = pid_of[machines.iloc[i]], int(lanes[i])
        used.setdefault(pid, set()).add(tid)
        args = _step_args(row)
        label = args.get("job") or f"step {args['step']}"
        # rounded boundaries, so a phase ends exactly where the next begins and within its step
        bounds = [_us(b) for b in start[i] - origin + np.cumsum([0.0, *durations[i]])]
        last = max(_us(end[i] - origin), bounds[-1])
        events.append({"ph": "X", "name": str(label), "cat": "step", "pid": pid, "tid": tid,
                       "ts": bounds[0], "dur": round(last - bounds[0], 3),
                       "args": args})  # fmt: skip
        for k, (name, _, category) in enumerate(PHASES):
            if durations[i][k] > 0:
                events.append({"ph": "X", "name": name, "cat": category, "pid": pid, "tid": tid,
                               "ts": bounds[k], "dur": round(bounds[k + 1] - bounds[k], 3),
                               "args": {"step": args["step"], "build": args["build"],
                                        "drv": args["drv"]}})  # fmt: skip
    return {
        "traceEvents": _metadata(order, used) + _counter_events(a, origin) + events,
        "displayTimeUnit": "ms",
        "otherData": {
            "run": a.run,
            "generation": a.generation,
            "codec": a.codec,
            "origin_epoch_s": origin,
            "phases": [name for name, _, _ in PHASES],
        },
    }


class TraceRenderer:
    """:func:`chrome_trace` as a :class:`~profiler.report.render.Renderer` of the analysis:
    compact JSON, one line."""

    name = "Chrome trace"
    extension = ".json"
    binary = False

    def render(self, source: Analysis) -> str:
        return json.dumps(chrome_trace(source), separators=(",", ":")) + "\n"
