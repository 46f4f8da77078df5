"""Report pieces on small hand-made inputs: lanes, the Chrome trace, figures (and None for
missing input), the HTML/Markdown/JSON renderings of a report, and the command's arguments."""

from __future__ import annotations

import argparse
import base64
import dataclasses
import itertools
import json
import re
from html.parser import HTMLParser
from pathlib import Path
from types import SimpleNamespace
from typing import Any, cast

import numpy as np
import pandas as pd
import pytest
from matplotlib.collections import PolyCollection
from matplotlib.colors import to_hex
from matplotlib.figure import Figure

from profiler.analyze.analysis import Analysis, running_jobs
from profiler.analyze.attribution import breakdown, by_window
from profiler.analyze.schema import CATEGORIES, QUEUED_GROUP, StepTable
from profiler.commands import report as report_cmd
from profiler.errors import UsageError
from profiler.report import build, figures, outputs, render
from profiler.report.trace import PHASES, assign_lanes, chrome_trace, phase_durations
from profiler.scenarios.analysis import analyze_run
from profiler.store import Run
from profiler.units import format_utc_range
from tests.unit.test_bench_plots import _cell

T0 = 1_795_900_000.0
PNG = b"\x89PNG\r\n\x1a\n"
BENCH = str(Path(__file__).parent.parent / "data" / "bench-v1")  # xz:6 and zstd:3


def _step(step: str, machine: str | None, start: float, **phases: float) -> dict[str, Any]:
    row: dict[str, Any] = {"step": step, "build": int(step.split("/")[0]), "stepnr": 1,
                           "drv_path": f"/nix/store/x-{step}.drv", "machine": machine,
                           "system": "x86_64-linux", "start_ts": start}  # fmt: skip
    for _, column, _ in PHASES:
        row[column] = phases.get(column.removesuffix("_s"), 0.0)
    row["end_ts"] = start + sum(phases.values())
    return row


def _steps() -> pd.DataFrame:
    return pd.DataFrame(
        [
            _step("1/1", "m1", T0, prepare=0.5, connect=1.0, build=4.0, compress=2.0, post=0.5),
            _step("2/1", "m1", T0 + 1, send=1.0, build=2.0, slot_wait=1.0, upload=1.0),
            _step("3/1", "m1", T0 + 8.5, build=1.0),  # after both: back on lane 0
            _step("4/1", "m2", T0 + 2, connect=0.5, build=3.0, receive=1.0),
            _step("5/1", None, T0 + 3, build=1.0),
        ]
    )


def _fake(steps: pd.DataFrame, series: tuple[np.ndarray, np.ndarray] | None = None) -> Analysis:
    table = StepTable(steps, "cxx", window=(T0 - 1.0, T0 + 10.0))
    return cast(Analysis, SimpleNamespace(steps=steps, table=table, pressure_series=series,
                                          run="r", generation="cxx", codec="xz:6"))  # fmt: skip


def test_lanes_never_overlap_and_reuse_the_first_free_lane() -> None:
    s = _steps()
    lanes = assign_lanes(s["machine"].fillna("unknown"), s["start_ts"].to_numpy(float),
                         s["end_ts"].to_numpy(float))  # fmt: skip
    assert lanes.tolist() == [0, 1, 0, 0, 0]
    d = phase_durations(s)
    assert list(d.columns) == [name for name, _, _ in PHASES]
    assert d.loc[0].tolist() == [0.5, 1.0, 0.0, 4.0, 0.0, 0.0, 2.0, 0.0, 0.5]
    nan_start = assign_lanes(pd.Series(["a"]), np.array([np.nan]), np.array([1.0]))
    assert nan_start.tolist() == [-1]


def test_chrome_trace_events() -> None:
    s = _steps()
    doc = json.loads(json.dumps(chrome_trace(_fake(s, (np.array([T0 - 5, T0, T0 + 1]),
                                                       np.array([0.0, 3.0, 1.0]))))))  # fmt: skip
    assert doc["displayTimeUnit"] == "ms"
    events = doc["traceEvents"]
    names = {(e["pid"], e["args"]["name"]) for e in events if e["name"] == "process_name"}
    assert names == {(0, "queue"), (1, "m1"), (2, "m2"), (3, "unknown")}
    threads = {(e["pid"], e["tid"]) for e in events if e["name"] == "thread_name"}
    assert threads == {(1, 0), (1, 1), (2, 0), (3, 0)}
    counters = [e for e in events if e["ph"] == "C"]
    # samples before the run start (T0 - 1) are left out; times from the run start
    assert [(c["ts"], c["args"]["runnable"]) for c in counters] == [(1e6, 3.0), (2e6, 1.0)]
    xs = [e for e in events if e["ph"] == "X"]
    steps = [e for e in xs if e["cat"] == "step"]
    assert len(steps) == 5
    assert all(e["ts"] >= 0 and e["dur"] >= 0 for e in xs)
    first = [e for e in xs if e["args"]["step"] == "1/1" and e["cat"] != "step"]
    assert [e["name"] for e in first] == ["prepare", "connect", "build", "compress", "post"]
    assert [e["cat"] for e in first] == ["post", "scheduling", "build", "compression", "post"]
    assert first[0]["ts"] == 1e6  # the run starts 1 s before the first step
    for a, b in itertools.pairwise(first):
        assert a["ts"] + a["dur"] == pytest.approx(b["ts"], abs=1e-3)
    assert first[-1]["ts"] + first[-1]["dur"] == pytest.approx(1e6 + 8e6, abs=1e-3)
    whole = next(e for e in steps if e["args"]["step"] == "1/1")
    assert (whole["pid"], whole["tid"], whole["dur"]) == (1, 0, 8e6)
    assert whole["args"]["drv"] == "/nix/store/x-1/1.drv" and whole["args"]["build"] == 1


def _colors(fig: Figure) -> list[str]:
    return [to_hex(p.get_facecolor()) for p in fig.axes[0].patches]


def test_attribution_figures_use_the_category_colours() -> None:
    windows = pd.DataFrame(
        {"steps": [2, 1], **{f"{c}_share": [0.2, 0.2] for c in CATEGORIES}},
        index=pd.Index([T0, T0 + 5], name="group"),
    )
    fig = figures.attribution_over_time(windows, 5.0)
    assert fig is not None
    wanted = {figures.CATEGORY_COLORS[c].lower() for c in CATEGORIES}
    assert set(_colors(fig)) == wanted and len(fig.axes[0].patches) == 10
    by = figures.attribution_by_group(windows.rename(index={T0: "a", T0 + 5: "b"}), "machine")
    assert by is not None and set(_colors(by)) == wanted
    assert figures.to_png(by).startswith(PNG)
    assert figures.attribution_over_time(None, 5.0) is None
    assert figures.attribution_over_time(windows.iloc[0:0], 5.0) is None
    assert figures.attribution_by_group(pd.DataFrame(), "system") is None


def test_attribution_over_time_from_by_window() -> None:
    s = _steps().assign(wall_s=lambda d: d["end_ts"] - d["start_ts"], slot_s=1.0, io_s=0.1,
                        scheduling_s=0.1, compression_s=0.1, post_total_s=0.1)  # fmt: skip
    fig = figures.attribution_over_time(by_window(s, 5.0), 5.0)
    assert fig is not None and figures.to_png(fig).startswith(PNG)


def test_step_timeline() -> None:
    fig = figures.step_timeline(_steps())
    assert fig is not None
    ax = fig.axes[0]
    bars = [c for c in ax.collections if isinstance(c, PolyCollection)]
    colours = {to_hex(c.get_facecolor()[0]) for c in bars}
    assert colours == {figures.PHASE_COLORS[n].lower() for n in
                       ("prepare", "connect", "send", "build", "slot_wait", "receive", "compress",
                        "upload", "post")}  # fmt: skip
    # lanes: m1 #0, m1 #1, m2, unknown
    assert len(ax.get_yticks()) == 4
    left, right = figures.utc_days(np.array([T0, T0 + 9.5]))
    assert ax.get_xlim()[0] <= left and ax.get_xlim()[1] >= right
    assert figures.step_timeline(None) is None
    assert figures.step_timeline(_steps().iloc[0:0]) is None
    many = pd.DataFrame([_step(f"{i}/1", f"m{i}", T0, build=1.0) for i in range(1, 101)])
    capped = figures.step_timeline(many)
    assert capped is not None
    assert len(capped.axes[0].get_yticks()) == figures.MAX_LANES
    assert f"{figures.MAX_LANES} of 100 machines shown" in capped.axes[0].get_title()


def test_queue_depth_and_running_jobs() -> None:
    samples = pd.DataFrame(
        [
            {"ts": T0 + t, "metric": "machine_current_jobs", "machine": m, "value": v,
             "source": src}
            for src in ("status", "metrics") for t, m, v in
            ((0, "m1", 1), (0, "m2", 2), (1, "m1", 0), (1, "m2", 1))
        ]
        + [{"ts": T0, "metric": "steps_runnable", "machine": None, "value": 9, "source": "status"}]
    )  # fmt: skip
    running = running_jobs(samples.iloc[1:])  # metrics has the most rows now
    assert running is not None
    assert running[0].tolist() == [T0, T0 + 1] and running[1].tolist() == [3.0, 1.0]
    assert running_jobs(samples[samples["metric"] == "steps_runnable"]) is None
    assert running_jobs(None) is None
    fig = figures.queue_depth((np.array([T0, T0 + 1]), np.array([5.0, 2.0])), running, 4.0)
    assert fig is not None
    labels = [t.get_text() for t in fig.axes[0].get_legend().get_texts()]
    assert labels[-1] == "capacity (4 build slots)" and len(labels) == 3
    assert figures.queue_depth(None, None, 4.0) is None
    only = figures.queue_depth(None, running, float("nan"))
    assert only is not None and len(only.axes[0].get_legend().get_texts()) == 1


def _tick_labels(fig: Figure) -> tuple[list[str], str, str]:
    fig.canvas.draw()
    ax = fig.axes[-1]
    labels = [t.get_text() for t in ax.get_xticklabels() if t.get_text()]
    return labels, ax.xaxis.get_offset_text().get_text(), ax.get_xlabel()


@pytest.mark.parametrize(
    ("span_s", "tick", "offset"),
    [
        (90.0, r"\d\d:\d\d|\d\d", "2026-11-28 21:"),  # seconds within the minute's hour
        (6 * 3600.0, r"\d\d:\d\d|2026-11-29", "2026-11-29"),  # hours, midnight as a date
        (10 * 86400.0, r"\d\d|[A-Z][a-z]{2}", "2026-"),  # days of the month
    ],
)
def test_time_axes_are_utc_dates_for_any_span(span_s: float, tick: str, offset: str) -> None:
    """1 minute, 6 hours or 10 days: the ticks are UTC clock times or dates for the span,
    the date they leave out is the axis offset, and the label says UTC (T0 is
    2026-11-28T21:06:40Z: a formatter in another zone would print other hours)."""
    ts = np.linspace(T0, T0 + span_s, 50)
    fig = figures.queue_depth((ts, np.ones(50)), None, float("nan"))
    assert fig is not None
    labels, off, xlabel = _tick_labels(fig)
    assert xlabel.startswith("time (UTC)")
    assert len(labels) >= 3 and all(re.fullmatch(tick, t) for t in labels), labels
    assert off.startswith(offset), off
    if span_s == 6 * 3600.0:
        assert labels[0] == "21:00" and "2026-11-29" in labels and labels[-1] == "03:00"


def test_queue_wait_is_hatched_in_scheduling_over_time_and_a_row_by_machine() -> None:
    s = _steps().assign(wall_s=lambda d: d["end_ts"] - d["start_ts"], slot_s=1.0, io_s=0.1,
                        scheduling_s=0.1, compression_s=0.1, post_total_s=0.1)  # fmt: skip
    waits = pd.DataFrame({"ts": [T0 - 4, T0 + 1], "seconds": [6.0, 3.0], "machine_type": None})
    windows = by_window(s, 5.0, waits)
    # the window before the first step end has queue wait and no step
    assert windows["queue_s"].sum() == pytest.approx(9.0)
    early = windows.loc[(T0 - 4) // 5 * 5]
    assert early["steps"] == 0 and early["queue_share"] == early["scheduling_share"] == 1.0
    fig = figures.attribution_over_time(windows, 5.0)
    assert fig is not None
    hatched = [p for p in fig.axes[0].patches if p.get_hatch() == "//"]
    assert len(hatched) == len(windows)
    legend = [t.get_text() for t in fig.legends[0].get_texts()]
    assert figures.QUEUE_LABEL in legend
    machines = breakdown(s, "machine", pd.Series([9.0], index=[QUEUED_GROUP]))
    row = machines.loc[QUEUED_GROUP]
    assert row["steps"] == 0 and row["queue_s"] == 9.0 and row["scheduling_share"] == 1.0
    assert machines["step_seconds"].sum() == pytest.approx(s["wall_s"].sum() + 9.0)
    # the queue row is shown first even when the groups are capped
    assert figures.shown_groups(machines, 2).index[0] == QUEUED_GROUP


def test_codec_tradeoff_rings_the_runs_codec() -> None:
    rows = pd.DataFrame([_cell("p", "text", "xz:6", 1000, 250, 1.0, 0.1),
                         _cell("p", "text", "zstd:3", 1000, 300, 0.1, 0.01)])  # fmt: skip
    fig = figures.codec_tradeoff(rows, "zstd:3")
    assert fig is not None
    labels = [t.get_text() for t in fig.axes[0].get_legend().get_texts()]
    assert "this run (zstd:3)" in labels
    assert figures.codec_tradeoff(None) is None
    assert figures.codec_tradeoff(rows.assign(error="failed")) is None


# ---------------------------------------------------------------------------- whole report


def _write_run(path: Path) -> str:
    """Two machines, four C++ steps from the live phase tracker, runnable samples."""
    phases = [("preparing", 0.2), ("connecting", 0.3), ("building", 2.0),
              ("waiting-for-local-slot", 0.5), ("receiving-outputs", 1.0),
              ("post-processing", 0.2)]  # fmt: skip
    with Run.open(str(path)) as run:
        w = run.writer("db_phases")
        for build, (machine, start) in enumerate(
            [("ssh://b1", 0.0), ("ssh://b2", 0.5), ("ssh://b1", 4.5), ("ssh://b2", 5.0)], start=1
        ):
            t = T0 + start
            for name, seconds in phases:
                w.append({"build": build, "stepnr": 1, "phase": name, "start_ts": t,
                          "end_ts": t + seconds, "resolution_seconds": 0.1, "machine": machine,
                          "system": "x86_64-linux", "gap": False})  # fmt: skip
                t += seconds
        s = run.writer("samples")
        for i in range(40):
            s.append({"ts": T0 - 1 + i * 0.25, "metric": "steps_runnable",
                      "value": 1.0 if i < 20 else 0.0, "generation": "cxx"})  # fmt: skip
    return str(path)


class _Tags(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))


@pytest.fixture(scope="module")
def analysed(tmp_path_factory: pytest.TempPathFactory) -> Analysis:
    run = _write_run(tmp_path_factory.mktemp("report") / "run")
    return analyze_run(run, bench_dir=BENCH, codec="xz:6")


def test_report_renderings(analysed: Analysis, tmp_path: Path) -> None:
    without_bench = dataclasses.replace(analysed, bench=None)
    report = build.build_report(without_bench, whatifs=[], failed_whatifs=["x: y"])
    missing = {f.id: f.missing for f in report.figures() if f.png is None}
    assert set(missing) == {"fig-codec-tradeoff"} and "--profiles" in missing["fig-codec-tradeoff"]
    page = render.to_html(report)
    tags = _Tags()
    tags.feed(page)
    assert "<script" not in page and "http://" not in page and "https://" not in page
    imgs = [a for t, a in tags.tags if t == "img"]
    ids = {"fig-attribution-time", "fig-queue-depth", "fig-by-machine", "fig-by-system",
           "fig-timeline"}  # fmt: skip
    assert {a["id"] for a in imgs} == ids
    for a in imgs:
        src = a["src"] or ""
        assert src.startswith("data:image/png;base64,") and a["alt"]
        assert base64.b64decode(src.split(",", 1)[1]).startswith(PNG)
    assert all((a.get("href") or "#").startswith("#") for _, a in tags.tags)
    assert 'id="fig-codec-tradeoff-missing"' in page and "Not shown" in page
    assert page.index("Bottleneck: ") < page.index("<nav>")  # the verdict sentence first
    doc = json.loads(render.to_json(report))
    assert {"verdict", "attribution", "whatif", "codecs", "report", "coverage"} <= set(doc)
    assert sum(doc["attribution"].values()) == pytest.approx(1.0)
    assert doc["whatif"] == [] and doc["whatif_failed"] == ["x: y"] and doc["codecs"] is None
    shown = {f["id"]: f["shown"] for f in doc["report"]["figures"]}
    assert shown["fig-timeline"] and not shown["fig-codec-tradeoff"]
    text = render.to_markdown(report, str(tmp_path / "r-figures"))
    links = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", text)
    assert len(links) == 5 and all(link.startswith("r-figures/") for link in links)
    assert all((tmp_path / link).read_bytes().startswith(PNG) for link in links)
    assert "> Not shown: No bench result" in text
    assert "| category | step-seconds | share | how |" in text


def test_report_with_bench_and_default_whatifs(analysed: Analysis, tmp_path: Path) -> None:
    defaults = outputs.default_whatifs(analysed, analysed.profiles)
    whatifs, failed = outputs.projections(analysed, defaults)
    assert [w.label for w in whatifs] == ["compression time x0.5", "codec zstd:3"]
    assert failed == []
    report = build.build_report(analysed, whatifs=whatifs)
    assert all(f.png is not None for f in report.figures())
    doc = json.loads(render.to_json(report))
    assert [c["codec"] for c in doc["codecs"]] == ["xz:6", "zstd:3"]
    assert [w["change"] for w in doc["whatif"]] == ["compression time x0.5", "codec zstd:3"]
    ids = {t.id for t in report.tables()}
    assert {"table-whatif-summary", "table-whatif-1", "table-whatif-2", "table-codecs"} <= ids
    front = " ".join(p for sec in report.sections if sec.id == "whatif" for p in sec.paragraphs)
    assert "Pareto front" in front and "xz:6, zstd:3" in front
    # without NAR sizes there is no per-day cost, and the report says why
    assert doc["whatif"][1]["fleet_cost_basis"] is None
    assert any("no NAR sizes" in b for sec in report.sections if sec.id == "whatif"
               for b in sec.bullets)  # fmt: skip
    # with them, the per-day cost says the span it is extrapolated from, and that it is short
    sized = dataclasses.replace(analysed, steps=analysed.steps.assign(nar_bytes=2e6))
    whatifs, _ = outputs.projections(sized, defaults)
    doc = json.loads(render.to_json(build.build_report(sized, whatifs=whatifs)))
    basis = doc["whatif"][1]["fleet_cost_basis"]
    start, end = analysed.table.window
    assert (basis["start_utc"], basis["end_utc"]) == (start, end)
    assert basis["span_seconds"] < 86400 and "misses the farm's daily cycle" in basis["describe"]
    cost = next(t for t in build.build_report(sized, whatifs=whatifs).tables()
                if t.id == "table-whatif-2-cost")  # fmt: skip
    assert format_utc_range(start, end) in cost.caption and "for a day" in cost.caption


def test_a_cost_basis_longer_than_a_day_carries_no_daily_caveat() -> None:
    from profiler.analyze.whatif import CostBasis

    week = CostBasis(T0, T0 + 7 * 86400, 5e12, 900, 900).describe()
    assert "7d00h" in week and "daily cycle" not in week and "steps without" not in week
    short = CostBasis(T0, T0 + 3600, 5e9, 90, 100).describe()
    assert "1h00m" in short and "x24 for a day" in short


def test_helpers() -> None:
    assert build.utc_iso(0.0) == "1970-01-01T00:00:00.000Z"
    assert build.utc_iso(float("nan")) == "-"
    assert build.auto_window(20.0) == 1.0 and build.auto_window(3600.0) == 300.0
    assert build.auto_window(float("nan")) == 3600.0 and build.auto_window(1e9) == 86400.0
    assert build.run_name("/tmp/x/wi-xz6/run") == "wi-xz6/run"
    assert build.run_name("/tmp/x/run1/") == "run1"
    assert outputs.figure_dir("out/report.md") == "out/report-figures"


def _args(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    report_cmd.add_parser(parser.add_subparsers())
    return parser.parse_args(["report", *argv])


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["run"], "nothing to write"),
        (["run", "-o", "r.pdf"], "unknown report format '.pdf'"),
        (["run", "-o", "report"], "unknown report format '(none)'"),
        (["run", "--trace", "t.txt"], "a Chrome trace is a .json file"),
        (["run", "-o", "r.html", "--window", "soon"], "--window"),
        (["run", "-o", "r.html", "--window", "0"], "--window must be a positive"),
    ],
)
def test_command_usage_errors(argv: list[str], message: str) -> None:
    args = _args(*argv)
    with pytest.raises(UsageError, match=re.escape(message)):
        args.run(args)
