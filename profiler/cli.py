"""The ``hydra-profiler`` command: argument parsing and the one place errors become exits.

Each subcommand lives in ``profiler.commands.<name>`` with ``add_parser`` and ``run``;
``main`` maps ``ProfilerError`` to a one-line message and exit code 1 (2 for usage).
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

from profiler import __version__
from profiler.errors import ProfilerError, UsageError

PROG = "hydra-profiler"
EXAMPLES = """\
examples:
  hydra-profiler nar hash /usr/lib/git-core
  hydra-profiler nar dump ./result > result.nar
  hydra-profiler payloads default
  hydra-profiler bench --suite hydra
"""


class _Parser(argparse.ArgumentParser):
    """argparse with a one-line error (and exit code 2) instead of usage + error."""

    def error(self, message: str) -> None:  # type: ignore[override]
        raise UsageError(f"{message} (see '{self.prog} --help')")


def build_parser() -> argparse.ArgumentParser:
    from profiler.commands import analyze as analyze_cmd
    from profiler.commands import bench as bench_cmd
    from profiler.commands import collect as collect_cmd
    from profiler.commands import compare as compare_cmd
    from profiler.commands import demo as demo_cmd
    from profiler.commands import export as export_cmd
    from profiler.commands import nar as nar_cmd
    from profiler.commands import payloads as payloads_cmd
    from profiler.commands import report as report_cmd
    from profiler.commands import testbed as testbed_cmd

    parser = _Parser(
        prog=PROG,
        description="Measure where a Hydra build farm's step time "
        "goes, and what a NAR compression change would buy.",
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"{PROG} {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    sub.required = True
    for module in (
        analyze_cmd,
        bench_cmd,
        collect_cmd,
        compare_cmd,
        demo_cmd,
        export_cmd,
        nar_cmd,
        payloads_cmd,
        report_cmd,
        testbed_cmd,
    ):
        module.add_parser(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    try:
        args = build_parser().parse_args(argv)
        return int(args.run(args) or 0)
    except ProfilerError as exc:
        from profiler.store.redact import redact  # messages may echo a URL or an argument

        print(f"{PROG}: error: {redact(str(exc))}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # the reader went away (e.g. `| head`): stop quietly, like the coreutils do
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1
