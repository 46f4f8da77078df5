"""hydra-profiler report: one HTML, Markdown or JSON report of a run, and a Chrome trace."""

from __future__ import annotations

import argparse
import math
import sys
from typing import Any

from profiler.commands.analyze import CODEC_HELP, add_cache_argument, add_farm_arguments
from profiler.commands.argtypes import codec_spec, when
from profiler.errors import UsageError

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
    p.add_argument(
        "--audit",
        metavar="AUDIT_DIR",
        help="include a `cache audit --out` result (its summary, bill and plots)",
    )
    p.add_argument("--profiles", metavar="BENCH_DIR", help="a hydra-profiler bench result")
    p.add_argument("--codec", type=codec_spec, help=CODEC_HELP)
    add_cache_argument(p)
    add_farm_arguments(p)
    p.add_argument("--whatif", action="append", default=[], metavar="SPEC",
                   help="a change to project (repeatable; see `analyze --help`)")  # fmt: skip
    p.add_argument("--window", help="time window of the over-time figure (default: automatic)")
    p.add_argument(
        "--since", type=when("--since"), metavar="TIME",
        help="only steps that stopped at or after TIME (as `analyze --since`)",
    )  # fmt: skip
    p.add_argument("--until", type=when("--until"), metavar="TIME", help="and before TIME")
    p.set_defaults(run=run)


def _check_args(args: argparse.Namespace) -> float | None:
    from profiler.units import parse_seconds

    if not args.out and not args.trace:
        raise UsageError("nothing to write: give -o OUT (.html, .md, .json) and/or --trace OUT")
    from profiler.report.outputs import renderer_for

    for out in args.out:
        renderer_for(out)
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


def run(args: argparse.Namespace) -> int:
    from profiler.analyze import whatif as wi
    from profiler.bench.profiles import canonical
    from profiler.report import outputs
    from profiler.scenarios.analysis import analyze_run

    window = _check_args(args)
    if args.audit:
        outputs.load_audit(args.audit)  # a bad --audit fails before the analysis
    asked = [wi.parse_change(text) for text in args.whatif]  # bad values fail before the work
    if args.codec is not None:
        canonical(args.codec)
    from profiler.analyze.history import Window
    from profiler.scenarios.analysis import HISTORY_AUTO_ROWS, pick_engine

    selected = None
    if args.since is not None or args.until is not None:
        selected = Window(args.since, args.until)
    elif pick_engine(args.run_dir, "auto") == "history":  # the report draws every step
        raise UsageError(
            f"{args.run_dir} holds more than {HISTORY_AUTO_ROWS:,} BuildSteps rows: the report "
            "draws every step, in memory; give it a window (--since/--until), or use "
            "`analyze --engine history` for the whole history"
        )
    print(f"analysing {args.run_dir}...", file=sys.stderr)
    a = analyze_run(
        args.run_dir,
        bench_dir=args.profiles,
        codec=args.codec,
        cache_dir=args.cache,
        generation=args.generation,
        slots=args.slots,
        local_workers=args.local_workers,
        runner_cores=args.runner_cores,
        window=selected,
    )
    outputs.write_reports(
        a,
        args.out,
        trace=args.trace,
        whatifs=asked or outputs.default_whatifs(a, a.profiles),
        slots=args.slots,
        window_seconds=window,
        say=print,
        progress=lambda message: print(message, file=sys.stderr),
        audit_dir=args.audit,
    )
    return 0
