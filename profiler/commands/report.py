"""hydra-profiler report: one HTML, Markdown or JSON report of a run, and a Chrome trace."""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
from typing import Any

from profiler.commands.analyze import CODEC_HELP, add_farm_arguments
from profiler.errors import ProfilerError, UsageError

HELP = """\
OUT's suffix picks the format: .html (one self-contained file: figures embedded, nothing
loaded from the network), .md (figures as PNG files in OUT_stem-figures/ next to it) or .json
(the analyze JSON with the what-ifs and the codec table). --trace writes the steps in Chrome
Trace Event Format, to open in https://ui.perfetto.dev or chrome://tracing.

Without --whatif the report projects compression twice as fast (compress=0.5), and with
--profiles also codec=zstd:19 and codec=zstd:3 when the bench result measured them.

examples:
  hydra-profiler report run1 -o report.html
  hydra-profiler report run1 --profiles bench-results -o report.md
  hydra-profiler report run1 --whatif workers=4 --whatif codec=zstd:19 -o report.json
  hydra-profiler report run1 --trace run1-trace.json
"""
FORMATS = {".html": "html", ".htm": "html", ".md": "markdown", ".json": "json"}
DEFAULT_CODECS = ("zstd:19", "zstd:3")


def add_parser(sub: Any) -> None:
    p = sub.add_parser(
        "report",
        help="write an HTML/Markdown/JSON report of a run, or a Chrome trace",
        description=__doc__,
        epilog=HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("run_dir", metavar="RUN")
    p.add_argument(
        "-o",
        "--out",
        action="append",
        default=[],
        metavar="OUT",
        help="report file: .html, .md or .json (repeatable: one analysis, several formats)",
    )
    p.add_argument("--trace", metavar="OUT.json", help="also (or only) write a Chrome trace")
    p.add_argument("--profiles", metavar="BENCH_DIR", help="a hydra-profiler bench result")
    p.add_argument("--codec", help=CODEC_HELP)
    add_farm_arguments(p)
    p.add_argument("--whatif", action="append", default=[], metavar="SPEC",
                   help="a change to project (repeatable; see `analyze --help`)")  # fmt: skip
    p.add_argument("--window", help="time window of the over-time figure (default: automatic)")
    p.set_defaults(run=run)


def _format(out: str) -> str:
    suffix = os.path.splitext(out)[1].lower()
    if suffix not in FORMATS:
        raise UsageError(f"-o {out}: unknown report format {suffix or '(none)'!r}; "
                         "use .html, .md or .json")  # fmt: skip
    return FORMATS[suffix]


def _check_args(args: argparse.Namespace) -> float | None:
    from profiler.units import parse_seconds

    if not args.out and not args.trace:
        raise UsageError("nothing to write: give -o OUT (.html, .md, .json) and/or --trace OUT")
    for out in args.out:
        _format(out)
    if args.trace and not args.trace.lower().endswith(".json"):
        raise UsageError(f"--trace {args.trace}: a Chrome trace is a .json file")
    if args.window is None:
        return None
    try:
        window = parse_seconds(args.window)
    except ValueError as exc:
        raise UsageError(f"--window: {exc}") from None
    if not (math.isfinite(window) and window > 0):
        raise UsageError("--window must be a positive, finite duration")
    return window


def _default_changes(a: Any, profiles: str | None) -> list[str]:
    from profiler.bench.profiles import canonical

    specs = ["compress=0.5"]
    if profiles:
        measured = set(a.profiles)
        specs += [f"codec={c}" for c in DEFAULT_CODECS if c in measured and c != canonical(a.codec)]
    return specs


def _projections(
    a: Any, args: argparse.Namespace, asked: list[Any] | None = None
) -> tuple[list[Any], list[str]]:
    """The what-ifs asked for (``asked``: parsed already, else ``args.whatif``), else the
    defaults; those the data cannot support, as notes."""
    from profiler.analyze import whatif as wi

    if asked is None:
        asked = [wi.parse_change(t) for t in args.whatif]
    changes = asked or [wi.parse_change(t) for t in _default_changes(a, args.profiles)]
    done, failed = wi.project_all(a, changes, slots=args.slots)
    return done, [f"what-if {label} not projected: {reason}" for label, reason in failed]


def _write(path: str, text: str) -> None:
    from profiler import atomic

    parent = os.path.dirname(os.path.abspath(path))
    try:
        os.makedirs(parent, exist_ok=True)
    except OSError as exc:
        raise atomic.cannot_write(path, exc) from None
    atomic.write_text(path, text)


def figure_dir(out: str) -> str:
    """Where a Markdown report's figures go: ``OUT_stem-figures`` next to it."""
    stem, _ = os.path.splitext(out)
    return f"{stem}-figures"


def _write_report(report: Any, out: str, note: str) -> None:
    from profiler.report import render

    kind = _format(out)
    if kind == "html":
        _write(out, render.to_html(report))
    elif kind == "json":
        _write(out, render.to_json(report))
    else:
        figures = figure_dir(out)
        try:
            text = render.to_markdown(report, figures)
        except OSError as exc:
            raise ProfilerError(f"{figures}: cannot write figures: {exc.strerror or exc}") from None
        _write(out, text)
        print(f"wrote figures into {figures}/")
    print(f"wrote {kind} report {out}{note}")


def run(args: argparse.Namespace) -> int:
    from profiler.analyze import whatif as wi
    from profiler.bench.profiles import canonical
    from profiler.scenarios.analysis import analyze_run

    window = _check_args(args)
    asked = [wi.parse_change(text) for text in args.whatif]  # bad values fail before the work
    if args.codec is not None:
        canonical(args.codec)
    print(f"analysing {args.run_dir}...", file=sys.stderr)
    a = analyze_run(
        args.run_dir,
        bench_dir=args.profiles,
        codec=args.codec,
        generation=args.generation,
        slots=args.slots,
        local_workers=args.local_workers,
        runner_cores=args.runner_cores,
    )
    if args.trace:
        from profiler.report.trace import chrome_trace

        _write(args.trace, json.dumps(chrome_trace(a), separators=(",", ":")) + "\n")
        print(f"wrote Chrome trace {args.trace} (open in https://ui.perfetto.dev)")
    if not args.out:
        return 0
    from profiler.report import build

    whatifs, failed = _projections(a, args, asked)
    print("drawing figures...", file=sys.stderr)
    report = build.build_report(a, whatifs=whatifs, window_seconds=window, failed_whatifs=failed)
    missing = [f.title for f in report.figures() if f.png is None]
    note = f" ({len(missing)} figure(s) not shown: {', '.join(missing)})" if missing else ""
    for out in args.out:
        _write_report(report, out, note)
    return 0
