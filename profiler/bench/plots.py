"""Plots of a bench result: the ratio/speed trade-off, decompression speed, ratio per class.

Every figure is a :class:`matplotlib.figure.Figure` drawn on the Agg canvas, so nothing here
touches pyplot's global state or needs a display. Only successful cells (``error`` unset) are
plotted; a codec's overall figures are byte-weighted over the payloads it succeeded on
(``sum compressed / sum NAR``, ``sum NAR / sum best seconds``), not means of per-cell ratios.
"""

from __future__ import annotations

import math
import os

import pandas as pd
from matplotlib import colormaps
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.text import Annotation
from matplotlib.transforms import Bbox

from profiler.bench.derive import class_ratios, overall, pareto_codecs, successful

DPI = 110
FILES = ("tradeoff.png", "decompress.png", "class_ratios.png")
# Label offsets (points) tried in turn around a tradeoff point until one does not overlap.
_LABEL_OFFSETS = [
    (6, 4),
    (6, -11),
    (-6, 4),
    (-6, -11),
    (0, 8),
    (0, -15),
    (6, 14),
    (6, -21),
    (-6, 14),
    (-6, -21),
]


def plot_tradeoff(rows: pd.DataFrame) -> Figure:
    """Overall ratio against compression speed, one labelled point per codec.

    Parameters
    ----------
    rows : pandas.DataFrame
        One row per payload x codec cell.

    Returns
    -------
    matplotlib.figure.Figure
        Log-scale speed on x, ratio on y (lower is better); the Pareto front is highlighted
        (scatter labelled ``"Pareto-optimal"``) and joined by a step line.
    """
    table = overall(rows)
    table = table[(table["compress_mb_per_s"] > 0) & table["compress_mb_per_s"].map(math.isfinite)]
    fig = Figure(figsize=(9.0, 6.0), dpi=DPI)
    canvas = FigureCanvasAgg(fig)
    fig.subplots_adjust(left=0.10, right=0.97, bottom=0.10, top=0.92)
    ax = fig.add_subplot()
    front = pareto_codecs(table)
    rest = table.drop(index=front)
    ax.scatter(
        rest["compress_mb_per_s"],
        rest["ratio"],
        s=28,
        color="tab:gray",
        alpha=0.8,
        label="dominated",
        zorder=2,
    )
    best = table.loc[front]
    ax.step(
        best["compress_mb_per_s"],
        best["ratio"],
        where="pre",
        color="tab:red",
        linewidth=1.2,
        alpha=0.7,
        zorder=1,
    )
    ax.scatter(
        best["compress_mb_per_s"],
        best["ratio"],
        s=48,
        color="tab:red",
        edgecolors="black",
        linewidths=0.6,
        label="Pareto-optimal",
        zorder=3,
    )
    ax.set_xscale("log")
    ax.margins(x=0.12, y=0.08)
    ax.set_xlabel("compression speed (MB/s, log scale)")
    ax.set_ylabel("compressed size / NAR size")
    ax.set_title("Codec trade-off: ratio vs compression speed")
    ax.grid(True, which="both", alpha=0.3)
    if not table.empty:
        ax.legend(loc="upper left", fontsize="small")
    _place_labels(ax, canvas, table, set(front))
    return fig


def plot_decompress(rows: pd.DataFrame) -> Figure:
    """Overall decompression speed per codec as horizontal bars.

    Parameters
    ----------
    rows : pandas.DataFrame
        One row per payload x codec cell.

    Returns
    -------
    matplotlib.figure.Figure
        One bar per codec, first codec at the top, each labelled with its MB/s.
    """
    table = overall(rows)
    speeds = table["decompress_mb_per_s"].replace([math.inf], math.nan)
    fig = Figure(figsize=(8.0, max(2.5, 0.9 + 0.32 * len(table))), dpi=DPI, layout="constrained")
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    positions = list(range(len(table)))
    bars = ax.barh(positions, speeds.fillna(0.0), color="tab:blue", height=0.7)
    ax.bar_label(bars, labels=[_speed_text(v) for v in speeds], padding=3, fontsize="small")
    ax.set_yticks(positions, [str(c) for c in table.index])
    ax.invert_yaxis()
    ax.margins(x=0.12)
    ax.set_xlabel("decompression speed (MB/s; higher is better)")
    ax.set_title("Decompression speed per codec")
    ax.grid(True, axis="x", alpha=0.3)
    return fig


def plot_class_ratios(rows: pd.DataFrame) -> Figure:
    """Ratio per payload class, one bar per codec within each class.

    Parameters
    ----------
    rows : pandas.DataFrame
        One row per payload x codec cell.

    Returns
    -------
    matplotlib.figure.Figure
        Grouped bars: x is the payload class, bar height ``sum compressed / sum NAR``.
    """
    table = class_ratios(rows)
    n_classes, n_codecs = table.shape
    width = 0.8 / max(n_codecs, 1)
    fig = Figure(
        figsize=(min(16.0, max(7.0, 1.2 + n_classes * (0.6 + 0.16 * n_codecs))), 5.5),
        dpi=DPI,
        layout="constrained",
    )
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    cmap = colormaps["tab10" if n_codecs <= 10 else "tab20"]
    for i, codec in enumerate(table.columns):
        offsets = [c - 0.4 + width * (i + 0.5) for c in range(n_classes)]
        ax.bar(
            offsets, table[codec].fillna(0.0), width=width, label=str(codec), color=cmap(i % cmap.N)
        )
    ax.set_xticks(range(n_classes), [str(c) for c in table.index])
    ax.set_xlabel("payload class")
    ax.set_ylabel("compressed size / NAR size (lower is better)")
    ax.set_title("Compression ratio per payload class")
    ax.grid(True, axis="y", alpha=0.3)
    if n_codecs:
        ax.legend(
            title="codec",
            fontsize="small",
            loc="upper left",
            bbox_to_anchor=(1.01, 1.0),
            ncols=1 if n_codecs <= 16 else 2,
        )
    return fig


def write_plots(rows: pd.DataFrame, directory: str) -> list[str]:
    """Write ``tradeoff.png``, ``decompress.png`` and ``class_ratios.png`` into a directory.

    Parameters
    ----------
    rows : pandas.DataFrame
        One row per payload x codec cell.
    directory : str
        Where to write; created if missing.

    Returns
    -------
    list of str
        The paths written, or ``[]`` (and nothing written) when no cell succeeded.
    """
    if successful(rows).empty:
        return []
    import io

    from profiler import atomic
    from profiler.errors import BenchmarkError

    try:
        os.makedirs(directory, exist_ok=True)
    except OSError as exc:
        raise atomic.cannot_write(directory, exc, BenchmarkError) from None
    paths = []
    for name, draw in zip(FILES, (plot_tradeoff, plot_decompress, plot_class_ratios), strict=True):
        path = os.path.join(directory, name)
        png = io.BytesIO()
        draw(rows).savefig(png, format="png", dpi=DPI, bbox_inches="tight")
        atomic.write_bytes(path, png.getvalue(), error=BenchmarkError)  # whole or not at all
        paths.append(path)
    return paths


def _speed_text(value: float) -> str:
    if math.isnan(value):
        return "n/a"
    return f"{value:,.0f}" if value >= 10 else f"{value:.1f}"


def _place_labels(ax: Axes, canvas: FigureCanvasAgg, table: pd.DataFrame, front: set[str]) -> None:
    """Label each point where its label covers the fewest markers and earlier labels."""
    renderer = canvas.get_renderer()
    radius = 5.0 * ax.figure.dpi / 72  # a marker's half-width in pixels, with some room
    obstacles: list[Bbox] = []
    for x, y in ax.transData.transform(table[["compress_mb_per_s", "ratio"]].to_numpy(float)):
        obstacles.append(Bbox.from_extents(x - radius, y - radius, x + radius, y + radius))
    # Pareto codecs first so they get the best spots.
    order = [c for c in table.index if c in front] + [c for c in table.index if c not in front]
    for codec in order:
        xy = (table.at[codec, "compress_mb_per_s"], table.at[codec, "ratio"])
        best: tuple[int, Annotation] | None = None
        for dx, dy in _LABEL_OFFSETS:
            label = ax.annotate(
                str(codec),
                xy,
                xytext=(dx, dy),
                textcoords="offset points",
                ha="left" if dx > 0 else "right" if dx < 0 else "center",
                fontsize="small",
                fontweight="bold" if codec in front else "normal",
                bbox={"boxstyle": "round,pad=0.1", "fc": "white", "ec": "none", "alpha": 0.7},
                zorder=4,
            )
            box = label.get_window_extent(renderer)
            hits = sum(box.overlaps(other) for other in obstacles)
            if best is None or hits < best[0]:
                if best is not None:
                    best[1].remove()
                best = (hits, label)
            else:
                label.remove()
            if hits == 0:
                break
        if best is not None:
            obstacles.append(best[1].get_window_extent(renderer))
