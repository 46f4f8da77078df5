"""The ``hydra-profiler`` command: argument parsing and the one place errors become exits.

Each subcommand lives in ``profiler.commands.<name>`` with ``add_parser`` and ``run``;
``main`` maps ``ProfilerError`` to a one-line message and exit code 1 (2 for usage).
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from typing import Any

from profiler import __version__
from profiler.errors import OutputError, ProfilerError, UsageError

PROG = "hydra-profiler"
EXAMPLES = """\
examples:
  hydra-profiler nar hash /usr/lib/git-core
  hydra-profiler nar dump ./result > result.nar
  hydra-profiler payloads default
  hydra-profiler bench --suite hydra
  hydra-profiler cache audit ./cache --sample all
"""


class _Parser(argparse.ArgumentParser):
    """argparse with a one-line error (and exit code 2) instead of usage + error."""

    def error(self, message: str) -> None:  # type: ignore[override]
        raise UsageError(f"{message} (see '{self.prog} --help')")


def build_parser() -> argparse.ArgumentParser:
    from profiler.commands import analyze as analyze_cmd
    from profiler.commands import bench as bench_cmd
    from profiler.commands import cache as cache_cmd
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
        cache_cmd,
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


class _GuardedOutput:
    """stdout as the commands see it: a failed write (a full disk, ``> /dev/full``, an I/O
    error) becomes one-line ``OutputError`` instead of a traceback; a closed pipe stays
    ``BrokenPipeError`` (the reader's choice, handled quietly by :func:`main`)."""

    def __init__(self, stream: Any, name: str = "stdout") -> None:
        self._stream = stream
        self._name = name

    def _guard(self, call: Any, *args: Any) -> Any:
        try:
            return call(*args)
        except BrokenPipeError:
            raise
        except OSError as exc:
            raise OutputError(f"{self._name}: cannot write: {exc.strerror or exc}") from None

    def write(self, data: Any) -> Any:
        return self._guard(self._stream.write, data)

    def writelines(self, lines: Any) -> Any:
        return self._guard(self._stream.writelines, lines)

    def flush(self) -> Any:
        return self._guard(self._stream.flush)

    @property
    def buffer(self) -> _GuardedOutput:
        return _GuardedOutput(self._stream.buffer, self._name)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._stream, name)


def _silence_stdout() -> None:
    """Point fd 1 at /dev/null, so that the interpreter's last flush of what could not be
    written does not print a second error at exit."""
    try:
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    except (OSError, ValueError, AttributeError):  # no real fd (a test's captured stdout)
        pass


def _one_line(exc: object) -> str:
    """The message on one line whatever it quotes (a file name or value with a newline)."""
    return str(exc).replace("\r", "\\r").replace("\n", "\\n")


def main(argv: Sequence[str] | None = None) -> int:
    real_stdout = sys.stdout
    sys.stdout = _GuardedOutput(real_stdout)
    try:
        args = build_parser().parse_args(argv)
        code = int(args.run(args) or 0)
        sys.stdout.flush()  # a write error shows here, not at exit
        return code
    except OutputError as exc:
        print(f"{PROG}: error: {_one_line(exc)}", file=sys.stderr)
        _silence_stdout()
        return exc.exit_code
    except ProfilerError as exc:
        from profiler.store.redact import redact  # messages may echo a URL or an argument

        print(f"{PROG}: error: {_one_line(redact(str(exc)))}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # the reader went away (e.g. `| head`): stop quietly, like the coreutils do
        _silence_stdout()
        return 1
    finally:
        sys.stdout = real_stdout
        try:  # what an error left in the buffer must not fail again at exit
            real_stdout.flush()
        except OSError:
            _silence_stdout()
