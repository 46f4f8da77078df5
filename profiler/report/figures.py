"""The report's figures: matplotlib :class:`~matplotlib.figure.Figure` objects on the Agg canvas.

Nothing here touches pyplot's global state or needs a display. Every function returns None
when its input is empty or missing, so the report can say what is not shown and why.
Categories have one colour everywhere (:data:`CATEGORY_COLORS`); the timeline's phases take
shades of their category's colour (:data:`PHASE_COLORS`). Times on x axes are UTC dates
(:func:`utc_axis`), ticked for the span shown: seconds for a minute's run, hours for a day's,
days for a month's.
"""

from __future__ import annotations

import io
import math
from datetime import UTC, datetime
from typing import Any

import numpy as np
import pandas as pd
from matplotlib import dates as mdates
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.patches import Patch

from profiler.analyze.schema import CATEGORIES
from profiler.report.trace import PHASES, assign_lanes, machine_names, phase_durations, step_spans
from profiler.units import format_seconds

DPI = 100
CATEGORY_COLORS: dict[str, str] = {
    "scheduling": "#4C72B0",
    "io": "#DD8452",
    "compression": "#C44E52",
    "build": "#55A868",
    "post": "#8172B3",
}
PHASE_COLORS: dict[str, str] = {
    "prepare": "#B6ACDB",
    "connect": "#4C72B0",
    "send": "#F2B48A",
    "build": "#55A868",
    "slot_wait": "#EBA3A5",
    "receive": "#DD8452",
    "compress": "#C44E52",
    "upload": "#A85A22",
    "post": "#8172B3",
}
MAX_GROUPS = 30
QUEUE_LABEL = "scheduling: queue wait"
MAX_LANES = 80
DAY_SECONDS = 86400.0
# matplotlib's date numbers are days from its epoch (1970-01-01 unless configured otherwise)
_EPOCH_DAYS = float(mdates.date2num(datetime(1970, 1, 1, tzinfo=UTC)))
# the offset above the axis' right end says what the ticks leave out, ISO-ordered
_OFFSETS = ["", "%Y", "%Y-%m", "%Y-%m-%d", "%Y-%m-%d", "%Y-%m-%d %H:%M"]
# a tick where the next larger unit rolls over shows it: a new day as its ISO date
_ZEROS = ["", "%Y", "%b", "%Y-%m-%d", "%H:%M", "%H:%M"]


def utc_days(ts: float | np.ndarray) -> np.ndarray:
    """Epoch seconds as matplotlib date numbers (days), for a :func:`utc_axis`."""
    return _EPOCH_DAYS + np.asarray(ts, dtype=float) / DAY_SECONDS


def utc_axis(ax: Axes, note: str = "") -> None:
    """Date ticks in UTC on ``ax``'s x axis (whose data are :func:`utc_days`): concise labels
    for the span shown, with what they leave out (year, date) as the axis offset; the label
    says UTC and ``note``."""
    locator = mdates.AutoDateLocator(tz=UTC, minticks=4, maxticks=10)
    ax.xaxis.set_major_locator(locator)
    ax.xaxis.set_major_formatter(
        mdates.ConciseDateFormatter(locator, tz=UTC, zero_formats=_ZEROS, offset_formats=_OFFSETS)
    )
    ax.set_xlabel(f"time (UTC){note}")


def to_png(fig: Figure) -> bytes:
    """The figure as PNG bytes (tight bounding box, :data:`DPI`)."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=DPI, bbox_inches="tight", metadata={"Software": None})
    return buf.getvalue()


def _new(width: float, height: float) -> Figure:
    fig = Figure(figsize=(width, height), dpi=DPI, layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def _segments(table: pd.DataFrame) -> list[tuple[str, np.ndarray, dict[str, Any]]]:
    """A breakdown's stacked segments in order: each category's share with its colour, the
    queue wait (when the table has it) first inside scheduling, hatched."""
    out: list[tuple[str, np.ndarray, dict[str, Any]]] = []
    for c in CATEGORIES:
        share = table[f"{c}_share"].fillna(0.0).to_numpy(float)
        if c == "scheduling" and "queue_share" in table:
            queue = table["queue_share"].fillna(0.0).to_numpy(float)
            hatched: dict[str, Any] = {
                "color": CATEGORY_COLORS[c],
                "hatch": "//",
                "edgecolor": "white",
            }
            out.append((QUEUE_LABEL, queue, hatched))
            share = np.clip(share - queue, 0.0, None)
        out.append((c, share, {"color": CATEGORY_COLORS[c]}))
    return out


def _category_legend(fig: Figure, queue: bool = False) -> None:
    handles = [Patch(color=CATEGORY_COLORS[c], label=c) for c in CATEGORIES]
    if queue:  # the queue wait, part of scheduling, hatched
        wait = Patch(facecolor=CATEGORY_COLORS["scheduling"], edgecolor="white", hatch="//",
                     label=QUEUE_LABEL)  # fmt: skip
        handles.insert(1, wait)
    fig.legend(handles=handles, loc="outside upper center", ncols=len(handles), fontsize="small")


def attribution_over_time(windows: pd.DataFrame | None, window_seconds: float) -> Figure | None:
    """Stacked bars of the category shares of step wall time per time window.

    Parameters
    ----------
    windows : pandas.DataFrame or None
        :func:`profiler.analyze.attribution.by_window`'s table: indexed by window start (UTC
        epoch seconds, by step end), with ``steps`` and ``<category>_share`` columns.
    window_seconds : float
        The window length (bar width).

    Returns
    -------
    matplotlib.figure.Figure or None
        None when there is no window.
    """
    if windows is None or windows.empty or not window_seconds > 0:
        return None
    x = utc_days(windows.index.to_numpy(float))
    width = window_seconds / DAY_SECONDS
    fig = _new(10.0, 4.2)
    ax = fig.add_subplot()
    bottom = np.zeros(len(windows))
    for label, share, style in _segments(windows):
        ax.bar(x, share, width=width * 0.92, bottom=bottom, align="edge", label=label, **style)
        bottom += share
    if len(windows) <= 40:
        for xi, n in zip(x, windows["steps"], strict=True):
            ax.annotate(f"{int(n)}", (xi + width * 0.46, 1.0), xytext=(0, 2),
                        textcoords="offset points", ha="center", fontsize="x-small")  # fmt: skip
    ax.set_ylim(0, 1.08)
    ax.set_yticks([0, 0.25, 0.5, 0.75, 1.0], ["0%", "25%", "50%", "75%", "100%"])
    utc_axis(ax, f"; windows of {format_seconds(window_seconds)}, steps by their end")
    ax.set_ylabel("share of step time")
    ax.set_title("Where step time went, over time (number of steps above each bar)")
    _category_legend(fig, queue="queue_share" in windows)
    return fig


def attribution_by_group(table: pd.DataFrame | None, what: str) -> Figure | None:
    """Stacked horizontal bars of the category shares per group (machine, system...).

    Parameters
    ----------
    table : pandas.DataFrame or None
        :func:`profiler.analyze.attribution.breakdown`'s table (index: group; ``steps`` and
        ``<category>_share`` columns).
    what : str
        What a group is (``machine``, ``system``), for the title.

    Returns
    -------
    matplotlib.figure.Figure or None
        The :data:`MAX_GROUPS` groups with the most steps, most first; None when empty.
    """
    if table is None or table.empty:
        return None
    shown = shown_groups(table, MAX_GROUPS)
    labels = [
        f"{g} ({format_seconds(float(q))} waited)" if n == 0 and "queue_s" in shown
        else f"{g} ({int(n)} steps)"
        for g, n, q in zip(shown.index, shown["steps"], shown.get("queue_s", shown["steps"]),
                           strict=True)
    ]  # fmt: skip
    fig = _new(10.0, 1.3 + 0.38 * len(shown))
    ax = fig.add_subplot()
    y = np.arange(len(shown))
    left = np.zeros(len(shown))
    for label, share, style in _segments(shown):
        ax.barh(y, share, left=left, height=0.7, label=label, **style)
        left += share
    ax.set_yticks(y, labels, fontsize="small")
    ax.invert_yaxis()
    ax.set_xlim(0, 1)
    ax.set_xticks([0, 0.25, 0.5, 0.75, 1.0], ["0%", "25%", "50%", "75%", "100%"])
    ax.set_xlabel("share of step time (wall, plus queue wait where observed)")
    more = f" (the {len(shown)} of {len(table)} with most steps)" if len(table) > len(shown) else ""
    ax.set_title(f"Where step time went, by {what}{more}")
    _category_legend(fig, queue="queue_share" in shown)
    return fig


def shown_groups(table: pd.DataFrame, limit: int) -> pd.DataFrame:
    """A breakdown's ``limit`` groups with the most steps, most first, after the groups of
    queue wait alone (no steps: :data:`~profiler.analyze.schema.QUEUED_GROUP`), which are
    always shown."""
    ranked = table.sort_values("steps", ascending=False, kind="stable")
    queued = ranked[ranked["steps"] == 0] if "queue_s" in ranked else ranked.iloc[:0]
    rest = ranked.drop(queued.index)
    return pd.concat([queued, rest.head(max(limit - len(queued), 0))])


def step_timeline(steps: pd.DataFrame | None) -> Figure | None:
    """Each machine's steps on slot lanes, each step drawn as its phases in pipeline order.

    Parameters
    ----------
    steps : pandas.DataFrame or None
        The analysis' step table (``start_ts``, ``end_ts``, ``machine`` and phase columns).

    Returns
    -------
    matplotlib.figure.Figure or None
        One row per machine lane (at most :data:`MAX_LANES`, machines with most steps first);
        None without steps that have a start time.
    """
    if steps is None or steps.empty or "start_ts" not in steps:
        return None
    steps = steps.reset_index(drop=True)
    start, end = step_spans(steps)
    machines = machine_names(steps)
    lanes = assign_lanes(machines, start, end)
    if not (lanes >= 0).any():
        return None
    per_machine = pd.DataFrame({"machine": machines, "lane": lanes})[lanes >= 0]
    counts = per_machine.groupby("machine", sort=False)["lane"].agg(["size", "max"])
    counts = counts.sort_values("size", ascending=False, kind="stable")
    rows: dict[tuple[str, int], int] = {}
    for machine, n_lanes in zip(counts.index, counts["max"] + 1, strict=True):
        if rows and len(rows) + n_lanes > MAX_LANES:
            break
        for lane in range(int(n_lanes)):
            rows[(str(machine), lane)] = len(rows)
    durations = phase_durations(steps).to_numpy(float)
    fig = _new(11.0, 1.6 + 0.28 * len(rows))
    ax = fig.add_subplot()
    bars: dict[tuple[str, int], list[tuple[float, float]]] = {}
    for i in np.flatnonzero(lanes >= 0):
        row = rows.get((str(machines.iloc[i]), int(lanes[i])))
        if row is None:
            continue
        t = float(utc_days(start[i]))
        for (name, _, _), seconds in zip(PHASES, durations[i], strict=True):
            if seconds > 0:
                bars.setdefault((name, row), []).append((t, seconds / DAY_SECONDS))
            t += seconds / DAY_SECONDS
    for (name, row), spans in bars.items():
        ax.broken_barh(spans, (row - 0.4, 0.8), facecolors=PHASE_COLORS[name])
    labels = [f"{m} #{lane}" if lane else m for (m, lane) in rows]
    ax.set_yticks(range(len(rows)), labels, fontsize="x-small")
    ax.set_ylim(len(rows) - 0.5, -0.5)
    utc_axis(ax)
    shown = len({m for m, _ in rows})
    more = f"; {shown} of {len(counts)} machines shown" if shown < len(counts) else ""
    ax.set_title(f"Steps per machine lane, by phase{more}")
    ax.grid(True, axis="x", alpha=0.3)
    handles = [Patch(color=PHASE_COLORS[name], label=name) for name, _, _ in PHASES]
    fig.legend(handles=handles, loc="outside upper center", ncols=len(handles), fontsize="small")
    return fig


def queue_depth(
    runnable: tuple[np.ndarray, np.ndarray] | None,
    running: tuple[np.ndarray, np.ndarray] | None,
    capacity: float,
) -> Figure | None:
    """Runnable steps and running jobs over time against the build-slot capacity.

    Parameters
    ----------
    runnable : tuple of numpy.ndarray or None
        The runnable-steps gauge (``Analysis.pressure_series``): times and counts.
    running : tuple of numpy.ndarray or None
        Jobs running (:func:`profiler.analyze.analysis.running_jobs`).
    capacity : float
        Build slots over all machines (NaN when unknown: no line).

    Returns
    -------
    matplotlib.figure.Figure or None
        Step lines of both series; None when neither was sampled.
    """
    series = [(s, label, color) for s, label, color in (
        (runnable, "runnable steps (waiting for a slot)", "#C44E52"),
        (running, "jobs running on machines", "#4C72B0"),
    ) if s is not None and len(s[0])]  # fmt: skip
    if not series:
        return None
    fig = _new(10.0, 3.8)
    ax = fig.add_subplot()
    for (ts, values), label, color in series:
        ax.step(utc_days(ts), values, where="post", color=color, label=label)
    if math.isfinite(capacity) and capacity > 0:
        ax.axhline(capacity, color="black", linestyle="--", linewidth=1,
                   label=f"capacity ({capacity:g} build slots)")  # fmt: skip
    ax.set_ylim(bottom=0)
    utc_axis(ax)
    ax.set_ylabel("steps")
    ax.set_title("Queue depth against capacity")
    ax.grid(True, alpha=0.3)
    ax.legend(loc="upper right", fontsize="small")
    return fig


def codec_tradeoff(rows: pd.DataFrame | None, current: str | None = None) -> Figure | None:
    """The bench result's ratio against compression speed (:func:`plot_tradeoff`).

    Parameters
    ----------
    rows : pandas.DataFrame or None
        A bench result's cells (``load_result(dir).rows``).
    current : str, optional
        The run's codec, ringed when it was measured.

    Returns
    -------
    matplotlib.figure.Figure or None
        None when no cell succeeded.
    """
    from profiler.bench.derive import overall, successful
    from profiler.bench.plots import plot_tradeoff

    if rows is None or rows.empty or successful(rows).empty:
        return None
    fig = plot_tradeoff(rows)
    table = overall(rows)
    if current is not None and current in table.index:
        ax = fig.axes[0]
        point = table.loc[current, ["compress_mb_per_s", "ratio"]].to_numpy(float)
        ax.scatter([point[0]], [point[1]], s=220, facecolors="none", edgecolors="black",
                   linewidths=1.5, label=f"this run ({current})", zorder=5)  # fmt: skip
        ax.legend(loc="upper left", fontsize="small")
    return fig
