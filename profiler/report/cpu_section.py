"""The report's CPU section, from the sampled CPU of ``collect cpu``: per process the
classes' CPU seconds, the classes over time (cores busy per class, at the samples' bucket
resolution, one panel per process), the classified flame graph (:mod:`profiler.report.flame`)
and the frames no rule classified. Absent (None) when the run has no cpu tables."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from profiler.report import figures as fg
from profiler.report.flame import CLASS_COLORS, NAMESPACE, flame_svg
from profiler.units import format_seconds

if TYPE_CHECKING:
    from matplotlib.figure import Figure

    from profiler.analyze.analysis import Analysis
    from profiler.analyze.cpu import CpuProfile
    from profiler.report.build import FigureItem, Section

MAX_PANELS = 4  # processes drawn over time; the table has every one
UNKNOWN_ROWS = 15
THREAD_ROWS = 15


@dataclass
class SvgItem:
    """A figure drawn as SVG markup: inline in HTML, a ``.svg`` file beside Markdown."""

    id: str
    title: str
    caption: str
    alt: str
    svg: str | None
    standalone: str | None = None  # the same with its namespace, for a file of its own
    missing: str = ""


def classes_over_time(cpu: CpuProfile) -> Figure | None:
    """Stacked cores busy per class over time (UTC), one panel per process (busiest
    first)."""
    processes = cpu.processes()[:MAX_PANELS]
    if not processes:
        return None
    fig = fg._new(11, 1.2 + 2.2 * len(processes))
    axes = fig.subplots(len(processes), 1, sharex=True, squeeze=False)[:, 0]
    for ax, process in zip(axes, processes, strict=True):
        table = cpu.over_time(process)
        t = table.index.to_numpy(float)
        edges = fg.utc_days(np.append(t, t[-1] + cpu.bucket_seconds))
        stacked = [np.append(table[c].to_numpy(float), 0.0) for c in table.columns]
        colors = [CLASS_COLORS.get(str(c), "#999999") for c in table.columns]
        ax.stackplot(edges, stacked, step="post", labels=list(table.columns), colors=colors)
        ax.set_ylabel("cores busy")
        ax.set_title(f"{process}: {cpu.cores_busy(process):.2f} cores on average", fontsize=10)
        ax.grid(axis="y", alpha=0.3)
    fg.utc_axis(axes[-1], f"; buckets of {format_seconds(cpu.bucket_seconds)}")
    handles, labels = axes[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="outside upper center", ncols=min(len(labels), 10),
               frameon=False, fontsize=9)  # fmt: skip
    return fig


def _flame(cpu: CpuProfile) -> SvgItem:
    stacks = cpu.stacks
    total = float(stacks["cpu_seconds"].sum()) if not stacks.empty else 0.0
    alt = f"Flame graph of {len(stacks)} distinct stacks, {total:.1f} CPU-s"
    svg = flame_svg(stacks, "fig-cpu-flame", alt)
    standalone = svg.replace("<svg ", f"<svg{NAMESPACE} ", 1) if svg else None
    return SvgItem(
        "fig-cpu-flame",
        "Flame graph by CPU class",
        "Root at the top: process, thread, then the stack root to leaf; widths are CPU "
        "seconds; colour is the class most of a frame's samples were in; hover a frame "
        "for its class, CPU seconds and share. Frames narrower than 0.2% are merged. The "
        "stacks have no times: they cover the whole sampling, whatever window was analysed.",
        alt if svg else "",
        svg,
        standalone,
        "" if svg else "No stacks in the run (cpu_stacks): only the classes were kept.",
    )


def cpu_section(a: Analysis) -> Section | None:
    """The section (None without sampled CPU)."""
    from profiler.report.build import Section, TableItem, _figure, _num, utc_iso
    from profiler.units import format_share, format_utc_range

    cpu = a.cpu
    if cpu is None:
        return None
    start, end = cpu.window
    paragraphs = [
        f"Sampled with {cpu.describe()} from {utc_iso(start)} to {utc_iso(end)} UTC "
        f"({cpu.span_seconds:.1f} s in buckets of {cpu.bucket_seconds:g} s).",
        f"Compression split: {a.attribution.how('compression')}.",
    ]
    top = ", ".join(f"{p} {cpu.cores_busy(p):.2f}" for p in cpu.processes()[:MAX_PANELS])
    unknown = cpu.unknown.sort_values("cpu_seconds", ascending=False).head(UNKNOWN_ROWS)
    over_time = classes_over_time(cpu)
    items: list[FigureItem | TableItem | SvgItem] = [
        TableItem("table-cpu-classes", "CPU by class", cpu.class_table(),
                  "CPU seconds of each process per class, and the share of its CPU.",
                  {"cpu_seconds": _num(2), "share": format_share}, {"cpu_seconds": "CPU-s"}),
        _figure("fig-cpu-classes", "CPU classes over time", over_time,
                f"Stacked cores busy per CPU class over time ({format_utc_range(start, end)}); "
                f"cores on average: {top}.",
                f"Cores busy per class in each {cpu.bucket_seconds:g} s bucket of the samples.",
                "No samples to draw."),
        _flame(cpu),
        TableItem("table-cpu-threads", "Busiest threads",
                  cpu.by_thread().head(THREAD_ROWS).rename(columns={"class": "mostly"}),
                  "CPU seconds per thread, cores busy on average over the sampled window, "
                  "and the class most of its CPU was in.",
                  {"cpu_seconds": _num(2), "cores": _num(2)}, {"cpu_seconds": "CPU-s"}),
    ]  # fmt: skip
    if not unknown.empty:
        cols = [c for c in ("frame", "dso", "samples", "cpu_seconds") if c in unknown]
        items.append(TableItem("table-cpu-unknown", "Frames classed other", unknown[cols],
                               "Leaf frames no rule classified, by CPU seconds.",
                               {"cpu_seconds": _num(3)}))  # fmt: skip
    return Section("cpu", "CPU of the sampled processes", paragraphs, [], items)
