"""A report of an analysed run (rendered by :mod:`profiler.report.render`).

:func:`build_report` collects everything once: the verdict sentence with its numbers first,
figures as PNG bytes, tables as DataFrames (each with the formatting people read it in), the
what-if projections, the codec trade-off of a bench result, and what the run covered. The
renderers in :mod:`profiler.report.render` only lay it out:

- :func:`to_html`: one self-contained file (inline CSS, figures as ``data:`` URIs, a Content
  Security Policy that lets nothing load and no script run), to mail or attach to an issue;
- :func:`to_markdown`: figures written as PNG files into a directory, linked relatively;
- :func:`to_json`: the ``analyze --format json`` document plus the what-ifs and codec table.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from profiler import __version__
from profiler.analyze.schema import CATEGORIES
from profiler.report import figures as fg
from profiler.report.cpu_section import SvgItem, cpu_section
from profiler.report.terminal import sentence
from profiler.report.trace import assign_lanes, machine_names, run_origin, step_spans
from profiler.units import format_bytes, format_seconds, format_share, format_utc_range

if TYPE_CHECKING:
    from matplotlib.figure import Figure

    from profiler.analyze.analysis import Analysis
    from profiler.analyze.whatif import Projection
    from profiler.bench.results import StoredResult

Formatter = Callable[[Any], str]
_NICE_WINDOWS = (1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 14400, 21600,
                 43200, 86400)  # fmt: skip


@dataclass
class FigureItem:
    """A figure: PNG bytes, or None with the reason in ``missing``."""

    id: str
    title: str
    caption: str
    alt: str
    png: bytes | None
    missing: str = ""


@dataclass
class TableItem:
    """A table: the DataFrame (numbers) and how each column is shown to people."""

    id: str
    title: str
    frame: pd.DataFrame
    caption: str = ""
    formats: dict[str, Formatter] = field(default_factory=dict)
    labels: dict[str, str] = field(default_factory=dict)

    def display(self) -> pd.DataFrame:
        """The table as strings, each column through its formatter (else :func:`_cell`) and
        under its label (else its name)."""
        out = pd.DataFrame(index=self.frame.index)
        for column in self.frame.columns:
            fmt = self.formats.get(str(column), _cell)
            out[self.labels.get(str(column), str(column))] = [fmt(v) for v in self.frame[column]]
        return out

    def numeric(self) -> list[bool]:
        """Per column, whether it holds numbers (right-aligned)."""
        return [
            pd.api.types.is_numeric_dtype(self.frame[c])
            and not pd.api.types.is_bool_dtype(self.frame[c])
            for c in self.frame.columns
        ]


@dataclass
class Section:
    """A titled part of the report: paragraphs, bullet points, then figures and tables."""

    id: str
    title: str
    paragraphs: list[str] = field(default_factory=list)
    bullets: list[str] = field(default_factory=list)
    items: list[FigureItem | TableItem | SvgItem] = field(default_factory=list)


@dataclass
class Report:
    """Everything a rendering shows; ``data`` is the JSON document."""

    title: str
    subtitle: str
    verdict: str
    highlights: list[tuple[str, str]]
    sections: list[Section]
    data: dict[str, Any]

    def figures(self) -> list[FigureItem]:
        """Every figure, in order (drawn or missing)."""
        return [i for s in self.sections for i in s.items if isinstance(i, FigureItem)]

    def tables(self) -> list[TableItem]:
        """Every table, in order."""
        return [i for s in self.sections for i in s.items if isinstance(i, TableItem)]


# ---------------------------------------------------------------------------- formatting


def _finite(value: Any) -> bool:
    return isinstance(value, int | float | np.number) and math.isfinite(float(value))


def _cell(value: Any) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    if isinstance(value, bool | np.bool_):
        return "yes" if value else ""
    if isinstance(value, int | np.integer):
        return f"{int(value):,}"
    if isinstance(value, float | np.floating):
        v = float(value)
        return f"{v:,.3g}" if abs(v) < 1000 else f"{v:,.0f}"
    return str(value)


def _signed_share(value: Any) -> str:
    return format_share(value, signed=True)


def _secs(value: Any) -> str:
    return format_seconds(float(value)) if _finite(value) and float(value) >= 0 else "-"


def _num(digits: int) -> Formatter:
    return lambda v: f"{float(v):,.{digits}f}" if _finite(v) else "-"


def _bytes(value: Any) -> str:
    return format_bytes(float(value)) if _finite(value) else "-"


def utc_iso(ts: float) -> str:
    """Epoch seconds as ``2026-01-02T03:04:05.678Z`` (or ``-`` when unknown)."""
    if not _finite(ts):
        return "-"
    stamp = datetime.fromtimestamp(float(ts), tz=UTC).isoformat(timespec="milliseconds")
    return stamp.replace("+00:00", "Z")


def run_name(path: str) -> str:
    """A run directory's name; with its parent's when it is just ``run`` (``wi-xz6/run``)."""
    parts = os.path.normpath(os.path.abspath(path)).split(os.sep)
    name = parts[-1]
    return f"{parts[-2]}/{name}" if name == "run" and len(parts) > 2 and parts[-2] else name


def auto_window(span_seconds: float) -> float:
    """A round window length giving about 24 windows over ``span_seconds``."""
    if not _finite(span_seconds) or span_seconds <= 0:
        return 3600.0
    for w in _NICE_WINDOWS:
        if w >= span_seconds / 24:
            return float(w)
    return float(_NICE_WINDOWS[-1])


def _png(fig: Figure | None) -> bytes | None:
    return fg.to_png(fig) if fig is not None else None


def _figure(
    id_: str, title: str, fig: Figure | None, alt: str, caption: str, missing: str
) -> FigureItem:
    png = _png(fig)
    return FigureItem(id_, title, caption, alt if png else "", png, "" if png else missing)


# ---------------------------------------------------------------------------- sections


def _verdict_section(a: Analysis) -> Section:

    att = a.attribution
    rows = [(c, att.seconds[c], att.shares[c], att.how(c)) for c in CATEGORIES]
    attribution = pd.DataFrame(rows, columns=["category", "step_seconds", "share", "how"])
    ranked = sorted(a.verdict.scores.items(), key=lambda kv: kv[1], reverse=True)
    scores = pd.DataFrame(ranked, columns=["bottleneck", "score"])
    return Section(
        "verdict",
        "Verdict",
        ["Evidence:"],
        list(a.verdict.evidence),
        [
            TableItem("table-attribution", "Attribution of step wall time", attribution,
                      "Shares of the total step wall time (queue wait counted in scheduling).",
                      {"step_seconds": _num(1), "share": format_share},
                      {"step_seconds": "step-seconds"}),
            TableItem("table-scores", "Bottleneck scores", scores,
                      "The headline's candidates: when the farm is saturated, the share of "
                      "slot time each held; otherwise each one's share of step wall time.",
                      {"score": _num(2)}),
        ],
    )  # fmt: skip


def _over_time_section(a: Analysis, window_s: float) -> Section:
    from profiler.analyze.attribution import by_window

    waits = a.table.queue_waits
    windows = by_window(a.steps, window_s, waits) if len(a.steps) else pd.DataFrame()
    running = a.running_series
    top = max(a.attribution.shares.items(), key=lambda kv: kv[1])
    span = (
        format_utc_range(float(windows.index.min()), float(windows.index.max()) + window_s)
        if len(windows) else "-"
    )  # fmt: skip
    att = a.attribution
    queue = (
        f"; queue wait (hatched) {format_share(att.queue_seconds / att.wall_seconds)} of step "
        "time, by when it was waited"
        if "queue_share" in windows and att.wall_seconds > 0
        else "; queue wait not observed"
    )
    alt_time = (
        f"Stacked bars of the share of step time per category in {len(windows)} windows of "
        f"{format_seconds(window_s)}, {span}; over the whole run {top[0]} is largest at "
        f"{format_share(top[1])}{queue}."
    )
    peak = (
        f"runnable steps peak at {a.pressure_series[1].max():g}"
        if a.pressure_series is not None and len(a.pressure_series[1])
        else "no runnable-steps samples"
    )
    busy = f"jobs running peak at {running[1].max():g}" if running else "no running-jobs samples"
    cap = a.pressure.capacity
    sampled = [t[0] for t in (a.pressure_series, running) if t is not None and len(t[0])]
    when = (
        format_utc_range(min(float(t.min()) for t in sampled), max(float(t.max()) for t in sampled))
        if sampled else "-"
    )  # fmt: skip
    alt_queue = (
        f"Step lines over time ({when}): {peak}; {busy}; capacity "
        f"{f'{cap:g} build slots' if _finite(cap) else 'unknown'}."
    )
    interval = (
        f"Sampled every {a.pressure.interval_s:.2g} s. "
        if _finite(a.pressure.interval_s) else ""
    )  # fmt: skip
    return Section(
        "over-time",
        "Over time",
        items=[
            _figure("fig-attribution-time", "Attribution over time",
                    fg.attribution_over_time(windows, window_s), alt_time,
                    "Share of step time per category, per window of step end; the number "
                    "of steps ending in each window above its bar. The queue wait (part of "
                    "scheduling, hatched) is placed by when it was waited: "
                    f"{a.table.queue_source or 'not observed'}.",
                    "No steps with an end time: nothing to show over time."),
            _figure("fig-queue-depth", "Queue depth against capacity",
                    fg.queue_depth(a.pressure_series, running, cap), alt_queue,
                    f"{interval}Runnable steps is the queue runner's own gauge; jobs running is "
                    "the sum over machines of their current jobs.",
                    "The run has no status or metrics samples (collect status/metrics): "
                    "queue depth unknown."),
        ],
    )  # fmt: skip


def _group_alt(table: pd.DataFrame, what: str) -> str:
    parts = []
    for group, row in fg.shown_groups(table, 5).iterrows():
        shares = {c: row[f"{c}_share"] for c in CATEGORIES}
        top = max(shares.items(), key=lambda kv: kv[1] if _finite(kv[1]) else -1)
        parts.append(f"{group}: {top[0]} {format_share(top[1])}")
    more = f" (first 5 of {len(table)})" if len(table) > 5 else ""
    return (
        f"Horizontal stacked bars of category shares for {len(table)} {what}s; largest category "
        f"per {what}{more}: " + "; ".join(parts) + "."
    )


def _breakdown_table(id_: str, title: str, table: pd.DataFrame, what: str) -> TableItem:
    frame = fg.shown_groups(table, 50).reset_index().rename(columns={"group": what})
    formats: dict[str, Formatter] = {
        c: format_share for c in frame.columns if str(c).endswith("_share")
    }
    formats.update({c: _secs for c in frame.columns if str(c).startswith("wall_p")})
    more = f" The 50 with the most steps of {len(table)}." if len(table) > 50 else ""
    labels = {f"wall_p{q}_s": f"wall p{q}" for q in (50, 90, 99)}
    labels.update({f"{c}_share": c for c in CATEGORIES})
    labels["slot_not_building_share"] = "slot not building"
    formats.update({"step_seconds": _num(1), "queue_s": _num(1)})
    labels.update({"step_seconds": "step-s", "queue_s": "queue wait s",
                   "queue_share": "queue wait"})  # fmt: skip
    queue = ""
    if "queue_s" in frame:
        queue = (
            " The queue wait (steps runnable, waiting for a machine) is in scheduling, as in "
            "the headline; "
            + ("it comes before a machine is chosen, so it is a row of its own."
               if what == "machine" else
               f"each {what} carries the wait of the steps that waited for it where the data "
               "says which (Rust's job_wait_time histogram, C++'s runnable count per machine "
               "type); the rest is a row of its own.")
        )  # fmt: skip
    caption = (
        "Step wall-time percentiles; step time (wall, plus queue wait) and its shares per "
        f"category; share of machine-slot time not spent building.{queue}{more}"
    )
    return TableItem(id_, title, frame, caption, formats, labels)


def _where_section(a: Analysis) -> Section:
    items: list[FigureItem | TableItem | SvgItem] = []
    for what, table in (("machine", a.by_machine), ("system", a.by_system)):
        fig = fg.attribution_by_group(table, what)
        alt = _group_alt(table, what) if fig is not None else ""
        items.append(_figure(f"fig-by-{what}", f"Attribution by {what}", fig, alt,
                             f"Share of step wall time per category, per {what}.",
                             f"No steps with a {what}."))  # fmt: skip
        if not table.empty:
            items.append(_breakdown_table(f"table-by-{what}", f"By {what}", table, what))
    if not a.by_jobset.empty:
        items.append(_breakdown_table("table-by-jobset", "By jobset", a.by_jobset, "jobset"))
    return Section("where", "By machine, system and jobset", items=items)


def _timeline_section(a: Analysis, origin: float) -> Section:
    fig = fg.step_timeline(a.steps)
    alt = ""
    if fig is not None:
        start, end = step_spans(a.steps)
        machines = machine_names(a.steps)
        lanes = assign_lanes(machines, start, end)
        n_lanes = pd.DataFrame({"m": machines, "l": lanes}).groupby("m")["l"].max().add(1).sum()
        alt = (
            f"Timeline of {len(a.steps)} steps on {int(n_lanes)} lanes of "
            f"{machines.nunique()} machines over {format_seconds(np.nanmax(end) - origin)} "
            f"({format_utc_range(origin, float(np.nanmax(end)))}), each step "
            "drawn as its phases (prepare, connect, send, build, slot_wait, receive, compress, "
            "upload, post) in colour."
        )
    return Section(
        "timeline",
        "Timeline",
        ["Each machine's steps on lanes (a step goes on the first lane free when it starts); "
         "each step is its phases laid end to end from its start. For the same timeline in "
         "Perfetto or chrome://tracing, use `hydra-profiler report RUN --trace trace.json`."],
        items=[_figure("fig-timeline", "Steps per machine, by phase", fig, alt,
                       "Phases take shades of their category's colour.",
                       "No step has a start time: no timeline.")],
    )  # fmt: skip


def _use_section(a: Analysis) -> Section:
    use = a.use.reset_index()
    return Section(
        "use",
        "Utilisation, saturation, errors",
        items=[TableItem("table-use", "USE per resource", use,
                         "Shares of the run's time unless the 'measures' column says otherwise.",
                         {"utilisation": _num(3), "saturation": _num(3),
                          "errors": _num(0)})],
    )  # fmt: skip


def _whatif_summary(whatifs: list[Projection]) -> pd.DataFrame:
    rows = []
    for w in whatifs:
        change = dict(zip(w.table["metric"], w.table["change"], strict=True))
        rows.append({
            "change": w.label,
            "throughput": change.get("throughput_steps_per_hour", math.nan),
            "p50_wall": change.get("p50_wall_s", math.nan),
            "p90_wall": change.get("p90_wall_s", math.nan),
            "makespan": change.get("makespan_s", math.nan),
            "replay_error": w.validation.makespan_rel_error,
        })  # fmt: skip
    return pd.DataFrame(rows)


def _whatif_section(whatifs: list[Projection], failed: list[str], front: list[str]) -> Section:
    sec = Section("whatif", "What if")
    if front:
        sec.paragraphs.append(
            "The bench's Pareto front (no codec both smaller and faster to compress): "
            f"{', '.join(front)}; without --whatif each is projected but the run's own codec."
        )
    if not whatifs:
        sec.paragraphs.append("No what-if was projected.")
    else:
        sec.paragraphs.append(
            "Each change is applied to a replay of this run in the simulator and compared with "
            "the unchanged replay; the replay error says how closely the simulator reproduces "
            "the run as observed."
        )
        sec.items.append(TableItem(
            "table-whatif-summary", "What-if summary", _whatif_summary(whatifs),
            "Relative change of each figure against the replay of this run.",
            dict.fromkeys(("throughput", "p50_wall", "p90_wall", "makespan", "replay_error"),
                          _signed_share),
            {"p50_wall": "p50 wall", "p90_wall": "p90 wall", "replay_error": "replay error"},
        ))  # fmt: skip
    sec.bullets.extend(failed)
    for i, w in enumerate(whatifs, start=1):
        v = w.validation
        caption = (
            f"Replay: makespan {v.simulated_makespan_s:.1f} s vs {v.observed_makespan_s:.1f} s "
            f"observed ({format_share(v.makespan_rel_error, signed=True)}); step ends off by "
            f"{v.end_mae_s:.2f} s on average."
            + (f" Notes: {'; '.join(n.rstrip('.') for n in w.notes)}." if w.notes else "")
        )
        sec.items.append(TableItem(f"table-whatif-{i}", f"What if: {w.label}", w.table, caption,
                                   {"current": _num(3), "projected": _num(3),
                                    "change": _signed_share}))  # fmt: skip
        if w.cost.empty:
            sec.bullets.append(
                f"{w.label}: no fleet cost: no NAR sizes in the run's steps to extrapolate a "
                "daily rate from (give --cache with the farm's narinfos, or collect the database)"
            )
        else:
            sec.items.append(TableItem(f"table-whatif-{i}-cost", f"Fleet cost: {w.label}",
                                       w.cost, f"At this run's rate of NAR bytes, "
                                       f"{w.basis.describe() if w.basis else 'from the run'}.",
                                       {"current": _num(2), "projected": _num(2)}))  # fmt: skip
    return sec


def codec_frame(result: StoredResult) -> tuple[pd.DataFrame, pd.DataFrame]:
    """A bench result's cells and its codec table (overall figures joined with the farm view)."""
    from profiler.bench import derive

    rows = result.rows
    table = derive.overall(rows)
    if table.empty:
        return rows, table.reset_index()
    view = derive.operator_view(table, derive.Assumptions())
    return rows, table.join(view).reset_index()


def _codec_section(a: Analysis) -> tuple[Section, pd.DataFrame | None]:
    from profiler.bench import derive

    sec = Section("codecs", "Codecs")
    if a.bench is None:
        sec.items.append(FigureItem(
            "fig-codec-tradeoff", "Codec trade-off", "", "", None,
            "No bench result given: run `hydra-profiler bench` on your NARs and pass the result "
            "with --profiles to compare codecs.",
        ))  # fmt: skip
        return sec, None
    rows, table = codec_frame(a.bench)
    fig = fg.codec_tradeoff(rows, a.codec)
    alt = "Scatter of compressed size / NAR size against compression speed (log scale): " + (
        "; ".join(f"{r.codec} ratio {r.ratio:.3f} at {r.compress_mb_per_s:.1f} MB/s"
                  for r in table.itertuples())
    ) + "."  # fmt: skip
    sec.paragraphs.append(
        f"Measured by `hydra-profiler bench` in {a.bench.path}; this run compressed with {a.codec}."
    )
    sec.items.append(_figure("fig-codec-tradeoff", "Codec trade-off", fig, alt,
                             "Lower is smaller; right is faster. Pareto-optimal codecs in red.",
                             "The bench result has no successful cell."))  # fmt: skip
    if not table.empty:
        keep = [c for c in ("codec", "ratio", "size_vs_baseline", "compress_mb_per_s",
                            "decompress_mb_per_s", "compress_cpu_seconds_per_gib",
                            "cpu_hours_per_day", "storage_usd_per_month",
                            "client_seconds_per_gib", "pareto") if c in table]  # fmt: skip
        formats: dict[str, Formatter] = {
            "ratio": _num(3), "size_vs_baseline": _num(2), "compress_mb_per_s": _num(1),
            "decompress_mb_per_s": _num(0), "compress_cpu_seconds_per_gib": _num(0),
            "cpu_hours_per_day": _num(1), "storage_usd_per_month": _num(0),
            "client_seconds_per_gib": _num(1),
        }  # fmt: skip
        base = derive.baseline_codec(table.set_index("codec"))
        labels = {
            "size_vs_baseline": f"size vs {base}", "compress_mb_per_s": "comp MB/s",
            "decompress_mb_per_s": "decomp MB/s", "compress_cpu_seconds_per_gib": "CPU s/GiB",
            "cpu_hours_per_day": "CPU-h/day", "storage_usd_per_month": "$/month",
            "client_seconds_per_gib": "client s/GiB",
        }  # fmt: skip
        sec.items.append(TableItem("table-codecs", "Codecs measured", table[keep],
                                   "Ratio is compressed / NAR size; farm figures at 1 TiB of NAR "
                                   "a day, $23/TB-month, clients on 100 Mbit/s (the bench's "
                                   "default assumptions; client: download + decompress).",
                                   formats, labels))  # fmt: skip
    sec.items.extend(_fleet_item(a.bench))
    return sec, table


def _fleet_item(result: StoredResult) -> list[TableItem]:
    """The fleet side by side when the bench result is one host of a fleet (bench --fleet)."""
    from profiler.bench import fleet_render, fleet_view

    fleet = fleet_view.fleet_of(result)
    if fleet is None:
        return []
    wide, caption = fleet_render.wide_frame(fleet)
    formats = {c: _num(1 if c.endswith("MB/s") else 3) for c in wide.columns if c != "codec"}
    title = f"Fleet side by side ({os.path.dirname(os.path.normpath(result.path))})"
    return [TableItem("table-fleet", title, wide,
                      f"Codec profiles from {result.meta['fleet']['host']}. {caption}",
                      formats)]  # fmt: skip


def _coverage_section(a: Analysis) -> Section:
    cov = a.coverage()
    start, end = a.table.window
    sources = pd.DataFrame(cov["sources"], columns=["name", "rows", "detail", "precision"])
    span = end - start if _finite(start) and _finite(end) else math.nan
    paragraphs = [
        f"Time window (UTC): {utc_iso(start)} to {utc_iso(end)} ({_secs(span)}).",
        f"Queue runner: {a.generation}; codec: {a.codec}; compression split: {cov['compression']}.",
        f"Queue wait: {cov['queue_wait'] or 'not observed'}.",
        "Estimated (not observed directly): "
        + (", ".join(cov["estimated"]) if cov["estimated"] else "nothing")
        + ".",
    ]
    return Section(
        "coverage",
        "Coverage",
        paragraphs + (["Notes:"] if cov["notes"] else []),
        list(cov["notes"]),
        [TableItem("table-sources", "Sources", sources, "What the run was made of.",
                   {"rows": _cell})],
    )  # fmt: skip


def _highlights(a: Analysis) -> list[tuple[str, str]]:
    start, end = a.table.window
    wall = a.steps["wall_s"]
    return [
        ("steps", f"{a.attribution.steps:,}"),
        ("step time", _secs(a.attribution.wall_seconds)),
        ("window", _secs(end - start) if _finite(start) and _finite(end) else "-"),
        ("step wall p50 / p90", f"{_secs(wall.quantile(0.5))} / {_secs(wall.quantile(0.9))}"),
        ("machines", f"{machine_names(a.steps).nunique():,}"),
        ("queue runner", a.generation),
        ("codec", a.codec),
    ]


def build_report(
    a: Analysis,
    *,
    whatifs: list[Projection],
    window_seconds: float | None = None,
    failed_whatifs: list[str] | None = None,
) -> Report:
    """Collect the report of an analysed run.

    Parameters
    ----------
    a : Analysis
        The analysed run (with the bench result of its profiles for the codec trade-off:
        without one, it is said missing).
    whatifs : list of Projection
        What-if projections to show.
    window_seconds : float, optional
        Window of the attribution-over-time figure (default: about 24 windows over the run).
    failed_whatifs : list of str, optional
        What-ifs that could not be projected, with why (shown as notes).

    Returns
    -------
    Report
        Sections with figures (PNG bytes) and tables, and the JSON document in ``data``.
    """
    origin = run_origin(a)
    start, end = a.table.window
    window_s = window_seconds or auto_window(float(a.steps["end_ts"].max()) - origin)
    codecs, codec_table = _codec_section(a)
    cpu = cpu_section(a)
    sections = [
        _verdict_section(a),
        _over_time_section(a, window_s),
        *([cpu] if cpu is not None else []),
        _where_section(a),
        _timeline_section(a, origin),
        _use_section(a),
        _whatif_section(whatifs, list(failed_whatifs or []), a.pareto_codecs()),
        codecs,
        _coverage_section(a),
    ]
    title = f"Hydra queue runner profile: {run_name(a.run)}"
    subtitle = f"{a.run} · {a.generation} · {a.codec} · {utc_iso(start)} to {utc_iso(end)} UTC"
    data = a.as_dict()
    data["whatif"] = [w.as_dict() for w in whatifs]
    data["whatif_failed"] = list(failed_whatifs or [])
    data["codecs"] = codec_table.to_dict(orient="records") if codec_table is not None else None
    report = Report(title, subtitle, sentence(a), _highlights(a), sections, data)
    data["report"] = {
        "title": title,
        "hydra_profiler": __version__,
        "window_seconds": window_s,
        "figures": [
            {"id": f.id, "title": f.title, "shown": f.png is not None, "missing": f.missing}
            for f in report.figures()
        ]
        + [
            {"id": f.id, "title": f.title, "shown": f.svg is not None, "missing": f.missing}
            for s in sections
            for f in s.items
            if isinstance(f, SvgItem)
        ],
    }
    return report
